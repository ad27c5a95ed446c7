"""The memory-mapped vector stores of a loaded index: read-only, rebuilt under, corrupt, read lazily."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from rag.encode.cache import CachedPassageEmbedder
from rag.indexing import store as index_store
from rag.indexing.index import Index, IndexCorruptError, build_index
from rag.indexing.vectors import VectorIndex

from .conftest import FakeEmbedder
from .helpers_index import RecordingEmbedder, index_files, write_corpus

needs_mmap = pytest.mark.skipif(not index_store.MMAP, reason="vector stores are read fully on this OS")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


@pytest.fixture
def built(docs: Path, tmp_path: Path) -> Path:
    index_dir = tmp_path / "index"
    build_index(docs, index_dir, FakeEmbedder(), progress=False, crosslingual=xl())
    return index_dir


def xl() -> RecordingEmbedder:
    return RecordingEmbedder(dim=32, model_id="fake-xl-32")


def load(index_dir: Path) -> Index:
    return Index.load(index_dir, crosslingual=FakeEmbedder(dim=32, model_id="fake-xl-32"))


class BatchRecorder(FakeEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return super().embed_passages(texts)


# ---- memory-mapped stores ---------------------------------------------------------------------


@needs_mmap
def test_vector_stores_are_mapped_read_only(built):
    index = load(built)
    ex = index.extras
    for array in (index.vectors, ex.sentence_vectors, ex.xl_vectors, ex.xl_sentence_vectors):
        assert isinstance(array, np.memmap)
        with pytest.raises(ValueError, match="read-only"):
            array[0, 0] = 1.0
    assert index.vectors[[2, 0]].flags.writeable  # gathered rows are copies


def test_read_fully_where_mapping_is_off(built, monkeypatch):
    mapped = load(built)
    monkeypatch.setattr(index_store, "MMAP", False)
    plain = load(built)
    for name in ("vectors", "sentence_vectors"):
        assert not isinstance(getattr(plain, name), np.memmap)
        np.testing.assert_array_equal(getattr(plain, name), getattr(mapped, name))
    np.testing.assert_array_equal(plain.extras.xl_vectors, mapped.extras.xl_vectors)
    q = np.asarray(mapped.vectors[3])
    assert [h.chunk.id for h in plain.search_dense(q, 5)] == [h.chunk.id for h in mapped.search_dense(q, 5)]


def test_rebuild_replaces_the_folder_of_a_loaded_index(built, docs):
    old = load(built)
    before = np.array(old.vectors)
    paper = next(p for p in sorted(docs.iterdir()) if p.suffix in (".md", ".txt"))
    paper.write_text(paper.read_text(encoding="utf-8") + "\n新增一句话用于测试重建。\n", encoding="utf-8")
    report = build_index(docs, built, FakeEmbedder(), progress=False, crosslingual=xl())
    assert report.updated
    np.testing.assert_array_equal(old.vectors, before)  # the open index still reads its own files
    assert old.search_dense(before[0], 1)[0].chunk.id == old.chunks[0].id
    new = load(built)
    passages = [f"{c.title} | {c.section}\n{c.text}" for c in new.chunks]
    np.testing.assert_allclose(new.vectors, FakeEmbedder().embed_passages(passages), atol=1e-6)
    np.testing.assert_array_equal(new.sentence_vectors, FakeEmbedder().embed_passages(new.sentence_texts))


def _stores(index_dir: Path) -> dict[str, np.ndarray]:
    return {p.name: np.load(p) for p in sorted(index_dir.glob("*.npy"))}


@needs_mmap
def test_a_build_writes_its_vectors_into_the_new_folder_as_it_embeds(docs, tmp_path, monkeypatch):
    """The vector stores are file-backed arrays in the build folder while they are filled (a large
    corpus's vectors are not held in memory), and they end up as the arrays a build in memory makes."""
    from rag.indexing import build

    seen = {}
    write = build._write

    def spy(build_dir, manifest, documents, chunks, vectors, faiss_kind, extras, passages):
        for name, array in (
            ("embeddings", vectors),
            ("sentences", extras.sentence_vectors),
            ("in place", extras.context_vectors),
            ("titles", extras.title_vectors),
            ("cross-lingual", extras.xl_vectors),
            ("cross-lingual sentences", extras.xl_sentence_vectors),
        ):
            seen[name] = isinstance(array, np.memmap) and Path(array.filename).parent == build_dir
        return write(build_dir, manifest, documents, chunks, vectors, faiss_kind, extras, passages)

    monkeypatch.setattr(build, "_write", spy)
    build_index(docs, tmp_path / "mapped", FakeEmbedder(), progress=False, crosslingual=xl())
    assert seen and all(seen.values()), seen
    assert not [p.name for p in (tmp_path / "mapped").iterdir() if p.name.startswith(".")], "no scratch left"

    monkeypatch.setattr(index_store, "MMAP", False)
    build_index(docs, tmp_path / "plain", FakeEmbedder(), progress=False, crosslingual=xl())
    mapped, plain = _stores(tmp_path / "mapped"), _stores(tmp_path / "plain")
    assert mapped.keys() == plain.keys() and len(mapped) == 9  # six vector stores, sentences, two lexicons
    for name in plain:
        np.testing.assert_array_equal(mapped[name], plain[name], err_msg=name)


@pytest.mark.parametrize("mapped", [True, False])
def test_a_rebuild_that_reuses_and_embeds_writes_what_a_clean_build_writes(
    built, docs, tmp_path, mapped, monkeypatch
):
    """Rows reused from the old index (its mapped files, replaced by the swap) and rows embedded now,
    with a text repeated within a store, all land in their places; in memory where files are not
    mapped (Windows) too."""
    monkeypatch.setattr(index_store, "MMAP", mapped)
    paper = next(p for p in sorted(docs.iterdir()) if p.suffix in (".md", ".txt"))
    repeated = "\n新增一句话用于测试重建，它在这篇文章里出现两次。\n"
    paper.write_text(paper.read_text(encoding="utf-8") + repeated + "\n另一节\n" + repeated, encoding="utf-8")
    (docs / "new-paper.txt").write_text(
        "新论文\n\n摘要\n这是一篇新加入的论文，讨论抗凝治疗的时机。\n", encoding="utf-8"
    )
    report = build_index(docs, built, FakeEmbedder(), progress=False, crosslingual=xl())
    assert report.updated and report.added and report.unchanged
    clean = tmp_path / "clean"
    build_index(docs, clean, FakeEmbedder(), progress=False, crosslingual=xl())
    rebuilt, fresh = _stores(built), _stores(clean)
    assert rebuilt.keys() == fresh.keys()
    for name in fresh:
        np.testing.assert_array_equal(rebuilt[name], fresh[name], err_msg=name)
    assert not [p.name for p in built.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "name",
    ["sentence_embeddings.npy", "xl_embeddings.npy", "xl_sentence_embeddings.npy", "xl_faiss.index"],
)
@pytest.mark.parametrize("mapped", [True, False])
@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_truncated_store_is_corrupt(built, name, mapped, keep, monkeypatch):
    monkeypatch.setattr(index_store, "MMAP", mapped)
    path = built / name
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(IndexCorruptError, match=r"is corrupt .*Rebuild it with: rag index"):
        load(built)


def test_empty_store_of_the_previous_index_is_embedded_again(built, docs):
    (built / "sentence_embeddings.npy").write_bytes(b"")
    e5 = RecordingEmbedder()
    # Another FAISS kind, so the build does not return early as "nothing changed".
    build_index(docs, built, e5, progress=False, crosslingual=xl(), faiss_kind="flat")
    index = load(built)
    # nothing reusable: all embedded again, alone and in place
    assert set(e5.sentences) == set(index.sentence_texts) | set(index.context_texts)
    np.testing.assert_array_equal(index.sentence_vectors, FakeEmbedder().embed_passages(index.sentence_texts))


@pytest.mark.parametrize("name", ["embeddings.npy", "sentence_embeddings.npy", "context_embeddings.npy"])
def test_garbage_store_is_corrupt(built, name):
    (built / name).write_bytes(b"garbage")
    with pytest.raises(IndexCorruptError, match=r"is corrupt .*Rebuild it with: rag index"):
        load(built)


def test_cached_embedder_reads_only_the_rows_asked_for(built):
    index = load(built)
    inner = BatchRecorder()
    cached = CachedPassageEmbedder(inner, index.sentence_texts, index.sentence_vectors)
    assert np.shares_memory(np.asarray(cached._vectors), np.asarray(index.sentence_vectors))  # no copy
    texts = [index.sentence_texts[3], "一句索引里没有的话。", index.sentence_texts[0]]
    out = cached.embed_passages(texts)
    np.testing.assert_array_equal(out[[0, 2]], np.asarray(index.sentence_vectors)[[3, 0]])
    np.testing.assert_allclose(out[1], FakeEmbedder().embed_passages([texts[1]])[0], atol=1e-6)
    assert inner.batches == [[texts[1]]]
    out[:] = 0.0  # callers may scribble on what they get: it is never the mapped file
    assert np.asarray(index.sentence_vectors)[3].any()
    assert len(cached) == len(set(index.sentence_texts)) + 1


def test_cached_queries_answer_a_call_whose_misses_evict_its_hits():
    """A full query cache drops its oldest texts to keep a miss; a text of the same call that was a
    hit must still come back (it did not: a KeyError on the evicted hit)."""
    from rag.encode import cache

    cached = CachedPassageEmbedder(FakeEmbedder(), [], np.zeros((0, FakeEmbedder().dim), np.float32))
    first = [f"问题{i}" for i in range(cache._QUERY_CACHE)]
    cached.embed_queries(first)
    out = cached.embed_queries([first[0], "一个新问题"])  # first[0] is the oldest, evicted by the miss
    np.testing.assert_allclose(out, FakeEmbedder().embed_queries([first[0], "一个新问题"]), atol=1e-6)


# ---- FAISS ------------------------------------------------------------------------------------


def unit_rows(n: int, dim: int = 16) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_mapped_faiss_index_searches_like_the_read_one(tmp_path, kind):
    x = unit_rows(2000)
    VectorIndex.build(x, kind, nlist=8 if kind == "ivf" else None).save(tmp_path / "v.index")
    read, mapped = VectorIndex.load(tmp_path / "v.index"), VectorIndex.load(tmp_path / "v.index", mapped=True)
    assert mapped.kind == kind
    for a, b in zip(read.search(x[:10], 5), mapped.search(x[:10], 5), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_truncated_faiss_file_fails_mapped_too(tmp_path, kind):
    path = tmp_path / "v.index"
    VectorIndex.build(unit_rows(2000), kind, nlist=8 if kind == "ivf" else None).save(path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 3):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="corrupt or truncated; rebuild"):
            VectorIndex.load(path, mapped=True)


@pytest.mark.parametrize("rows", [0, 1, 1001])
def test_a_flat_index_written_block_by_block_is_the_file_faiss_writes(tmp_path, rows):
    from rag.indexing import vectors

    x = unit_rows(rows) if rows else np.empty((0, 16), np.float32)
    np.save(tmp_path / "x.npy", x)
    mapped = index_store.load_npy(tmp_path / "x.npy", mapped=True)
    assert vectors.write_flat(mapped, tmp_path / "streamed.index", block_rows=100)
    VectorIndex.build(x, "flat").save(tmp_path / "faiss.index")
    assert (tmp_path / "streamed.index").read_bytes() == (tmp_path / "faiss.index").read_bytes()
    if rows:
        loaded = VectorIndex.load(tmp_path / "streamed.index", mapped=True)
        assert loaded.kind == "flat" and loaded.ntotal == rows
        np.testing.assert_array_equal(loaded.search(x[:5], 3)[1][:, 0], np.arange(min(5, rows)))


def test_a_faiss_whose_flat_files_differ_gets_its_own_writer(tmp_path, monkeypatch):
    from rag.indexing import vectors

    monkeypatch.setattr(vectors, "_flat_layout_checked", lambda: False)
    x = unit_rows(50)
    assert not vectors.write_flat(x, tmp_path / "none.index")
    assert not (tmp_path / "none.index").exists()
    VectorIndex.write(x, "auto", tmp_path / "v.index")
    assert VectorIndex.load(tmp_path / "v.index").search(x[:1], 1)[1][0, 0] == 0


def test_a_flat_layout_this_faiss_does_not_write_is_detected(monkeypatch, caplog):
    from rag.indexing import vectors

    assert vectors._flat_layout_checked.__wrapped__()
    monkeypatch.setattr(vectors, "_flat_header", lambda n, dim: b"IxFI" + bytes(41))
    assert not vectors._flat_layout_checked.__wrapped__()
    assert "writes flat indexes otherwise" in caplog.text


@needs_mmap
def test_reused_rows_are_views_of_the_old_file(built):
    from rag.indexing.build import _load_previous, _previous_passages, passage_text
    from rag.settings import ChunkerSettings

    prev, reason = _load_previous(built, FakeEmbedder(), ChunkerSettings())
    assert reason is None and prev is not None
    reused = _previous_passages(prev)
    assert len(reused) == len(set(prev.passages)) > 1
    assert all(np.shares_memory(v, prev.vectors) for v in reused.values())  # no copy in memory
    stored = index_store.load_npy(built / index_store.EMBEDDINGS, mapped=False)
    for row, chunk in enumerate(prev.all_chunks):  # each text keeps the vector of its own row
        np.testing.assert_array_equal(reused[passage_text(chunk)], stored[row])


@needs_mmap
def test_a_full_disk_stops_the_build_with_a_clear_error_and_keeps_the_index(built, docs, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    before = index_files(built)
    paper = next(p for p in sorted(docs.iterdir()) if p.suffix in (".md", ".txt"))
    paper.write_text(paper.read_text(encoding="utf-8") + "\n一句新的话。\n", encoding="utf-8")
    monkeypatch.setattr(index_store.os, "posix_fallocate", full)
    with pytest.raises(OSError, match="Not enough disk space for the new index's vectors .*unchanged"):
        build_index(docs, built, FakeEmbedder(), progress=False, crosslingual=xl())
    assert index_files(built) == before
    assert not list(built.parent.glob(f".{built.name}.building-*"))

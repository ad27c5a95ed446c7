"""The memory-mapped vector stores of a loaded index: read-only, rebuilt under, corrupt, read lazily."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.encode.cache import CachedPassageEmbedder
from rag.indexing import store as index_store
from rag.indexing.index import Index, IndexCorruptError, build_index
from rag.indexing.vectors import VectorIndex

from .conftest import FakeEmbedder
from .helpers_index import RecordingEmbedder, write_corpus

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

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.indexing.extras import CONTEXT_VERSION
from rag.indexing.index import (
    Index,
    IndexCorruptError,
    IndexFileMissingError,
    IndexNotFoundError,
    IndexVersionError,
    ModelMismatchError,
    build_index,
    passage_text,
)
from rag.ingest.chunking import chunk_document
from rag.ingest.loading import load_folder
from rag.settings import ChunkerSettings

from .helpers_index import RecordingEmbedder, index_files, write_corpus

SETTINGS = ChunkerSettings(max_chars=80, overlap_chars=10)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


@pytest.fixture
def built(docs: Path, tmp_path: Path) -> Path:
    index_dir = tmp_path / "index"
    build_index(docs, index_dir, RecordingEmbedder(), SETTINGS, progress=False)
    return index_dir


def build(docs: Path, index_dir: Path, embedder=None, settings=SETTINGS):
    embedder = embedder or RecordingEmbedder()
    return build_index(docs, index_dir, embedder, settings, progress=False), embedder


def doc_passages(docs: Path, doc_id: str) -> set[str]:
    doc = next(d for d in load_folder(docs).documents if d.doc_id == doc_id)
    return {passage_text(c) for c in chunk_document(doc, SETTINGS)}


# ---- build and load -------------------------------------------------------------------------


def test_build_then_load_round_trip(docs, tmp_path):
    report, embedder = build(docs, tmp_path / "index")
    index = Index.load(tmp_path / "index", embedder)

    loaded = {d.doc_id: d for d in load_folder(docs).documents}
    assert index.documents == loaded
    assert {d: doc.meta for d, doc in index.documents.items()} == {d: doc.meta for d, doc in loaded.items()}
    expected_chunks = [c for d in sorted(loaded) for c in chunk_document(loaded[d], SETTINGS)]
    assert index.chunks == expected_chunks
    expected_vectors = RecordingEmbedder().embed_passages([passage_text(c) for c in expected_chunks])
    np.testing.assert_array_equal(index.vectors, expected_vectors)
    assert index.vector_index.ntotal == len(index.bm25) == len(index.chunks) == report.n_chunks
    assert sorted(report.added) == sorted(loaded) and not report.updated + report.removed + report.unchanged
    assert report.n_embedded == len(expected_chunks) == len(embedder.passages)


def test_chunks_are_verbatim_spans_of_stored_text(built):
    index = Index.load(built)
    for chunk in index.chunks:
        assert index.documents[chunk.doc_id].text[chunk.start : chunk.end] == chunk.text


def test_manifest_contents(built, docs):
    manifest = json.loads((built / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "rag-index" and manifest["format_version"] == 3
    assert manifest["package_version"] == rag.__version__
    assert (manifest["model_id"], manifest["dim"], manifest["normalised"]) == ("fake-hash-64", 64, True)
    assert manifest["chunker"] == SETTINGS.to_dict()
    assert manifest["embed_context"] == "title+section"
    assert manifest["faiss_kind"] == "flat" and manifest["faiss_kind_requested"] == "auto"
    assert manifest["docs_dir"] == str(docs)
    assert manifest["built_at"].endswith("+00:00")
    entries = {d["doc_id"]: d for d in manifest["documents"]}
    assert set(entries) == {"vte-zh", "angiosarcoma-en", "poems-mixed"}
    index = Index.load(built)
    for doc_id, entry in entries.items():
        doc = index.documents[doc_id]
        assert entry == {
            "doc_id": doc_id,
            "title": doc.title,
            "path": doc.path,
            "sha256": doc.sha256,
            "chars": len(doc.text),
            "chunks": sum(c.doc_id == doc_id for c in index.chunks),
        }
    assert manifest["counts"] == {
        "documents": 3,
        "chunks": len(index.chunks),
        "load_errors": 0,
        "sentences": len(index.sentence_texts),
    }
    assert manifest["crosslingual_model_id"] is None
    assert manifest["sentence_context"] == CONTEXT_VERSION
    # Chinese stays readable in the plain files
    assert "静脉血栓" in (built / "documents.jsonl").read_text(encoding="utf-8")
    assert "静脉血栓" in (built / "chunks.jsonl").read_text(encoding="utf-8")


def test_plain_files_only(built):
    assert sorted(p.name for p in built.iterdir()) == sorted(
        ["manifest.json", "documents.jsonl", "chunks.jsonl", "embeddings.npy", "faiss.index", "bm25"]
        + ["sentences.npy", "sentence_embeddings.npy", "context_embeddings.npy", "glossary.json"]
        + ["title_embeddings.npy"]
    )
    vectors = np.load(built / "embeddings.npy", allow_pickle=False)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_search_helpers(built):
    index = Index.load(built)
    hits = index.search_bm25("ALK重排的VTE风险", k=3)
    assert hits[0].chunk.doc_id == "vte-zh" and "ALK重排" in hits[0].chunk.text
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert index.search_bm25("everolimus paclitaxel", k=3)[0].chunk.doc_id == "angiosarcoma-en"
    assert index.search_bm25("", k=3) == []

    target = index.chunks[4]
    dense = index.search_dense(index.vectors[4], k=3)
    assert dense[0].chunk == target and dense[0].rank == 1
    assert isinstance(dense[0].score, float) and dense[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(index.search_dense(index.vectors[0], k=1000)) == len(index.chunks)


# ---- incremental re-indexing ----------------------------------------------------------------


def test_unchanged_reindex_embeds_nothing(built, docs):
    before = Index.load(built)
    report, embedder = build(docs, built)
    assert embedder.passages == [] and report.n_embedded == 0
    assert sorted(report.unchanged) == sorted(before.documents) and not report.added + report.updated
    after = Index.load(built)
    assert after.chunks == before.chunks
    np.testing.assert_array_equal(after.vectors, before.vectors)


def test_changed_document_is_the_only_one_embedded(built, docs):
    path = docs / "angiosarcoma-en.md"
    path.write_text(path.read_text(encoding="utf-8") + "\n## Conclusion\nEverolimus is a treatment option.\n")
    report, embedder = build(docs, built)
    assert report.updated == ["angiosarcoma-en"]
    assert sorted(report.unchanged) == ["poems-mixed", "vte-zh"]
    # Only passages of the changed paper are embedded, and unchanged passages of it are reused.
    assert embedder.passages and set(embedder.passages) <= doc_passages(docs, "angiosarcoma-en")
    assert any("Conclusion" in p for p in embedder.passages)
    index = Index.load(built)
    assert "Everolimus is a treatment option." in index.documents["angiosarcoma-en"].text
    np.testing.assert_allclose(
        index.vectors, RecordingEmbedder().embed_passages([passage_text(c) for c in index.chunks]), atol=1e-6
    )


def test_added_and_removed_documents(built, docs):
    (docs / "poems-mixed.txt").unlink()
    (docs / "new-en.txt").write_text(
        "Heparin\n\nLow molecular weight heparin prevents thrombosis.\n", encoding="utf-8"
    )
    report, embedder = build(docs, built)
    assert report.added == ["new-en"] and report.removed == ["poems-mixed"]
    assert set(embedder.passages) == doc_passages(docs, "new-en")
    index = Index.load(built)
    assert set(index.documents) == {"vte-zh", "angiosarcoma-en", "new-en"}
    assert {c.doc_id for c in index.chunks} == set(index.documents)
    assert index.search_bm25("heparin", 1)[0].chunk.doc_id == "new-en"


def test_catalog_title_change_re_embeds_that_paper(built, docs):
    (docs / "catalog.json").write_text(
        json.dumps([{"file": "poems-mixed.txt", "title": "POEMS 综合征治疗"}], ensure_ascii=False),
        encoding="utf-8",
    )
    report, embedder = build(docs, built)
    assert report.updated == ["poems-mixed"]
    assert embedder.passages and all(p.startswith("POEMS 综合征治疗 | ") for p in embedder.passages)


@pytest.mark.parametrize(
    ("embedder", "settings", "changed"),
    [
        (RecordingEmbedder(model_id="other-model"), SETTINGS, "model_id"),
        (RecordingEmbedder(dim=32), SETTINGS, "dim"),
        (RecordingEmbedder(), ChunkerSettings(max_chars=120, overlap_chars=20), "chunker"),
    ],
)
def test_other_model_or_settings_rebuilds_everything(built, docs, embedder, settings, changed):
    report, embedder = build(docs, built, embedder, settings)
    assert changed in report.full_rebuild
    assert sorted(report.added) == ["angiosarcoma-en", "poems-mixed", "vte-zh"]
    assert len(embedder.passages) == report.n_chunks
    assert Index.load(built, embedder).manifest["model_id"] == embedder.model_id


# ---- bad input ------------------------------------------------------------------------------


def test_unreadable_file_is_reported_and_the_rest_indexed(docs, tmp_path):
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    report, _ = build(docs, tmp_path / "index")
    assert [Path(e.path).name for e in report.errors] == ["broken.pdf"]
    assert sorted(report.added) == ["angiosarcoma-en", "poems-mixed", "vte-zh"]
    manifest = Index.load(tmp_path / "index").manifest
    assert manifest["counts"]["load_errors"] == 1
    assert manifest["load_errors"][0]["path"].endswith("broken.pdf")


def test_document_that_now_fails_to_load_is_kept(built, docs):
    before = Index.load(built)
    (docs / "poems-mixed.txt").write_text("   \n", encoding="utf-8")  # no text: a load error
    report, embedder = build(docs, built)
    assert report.kept == ["poems-mixed"] and not report.removed
    assert [Path(e.path).name for e in report.errors] == ["poems-mixed.txt"]
    assert embedder.passages == []
    after = Index.load(built)
    assert after.documents["poems-mixed"] == before.documents["poems-mixed"]
    assert after.chunks == before.chunks


def test_empty_docs_folder_refuses_and_keeps_index(built, tmp_path):
    before = index_files(built)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No documents could be loaded from .*existing index is unchanged"):
        build(tmp_path / "empty", built)
    assert index_files(built) == before


def test_a_folder_of_only_failing_files_says_why_each_failed(built, tmp_path):
    # A folder of links to papers elsewhere looks empty to the loader; the error must say why.
    before = index_files(built)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "paper.txt").write_text("Aspirin lowers the risk of stroke.", encoding="utf-8")
    links = tmp_path / "links"
    links.mkdir()
    (links / "paper.txt").symlink_to(elsewhere / "paper.txt")
    (links / "notes.xyz").write_text("not a paper", encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        build(links, built)
    message = str(caught.value)
    assert "existing index is unchanged" in message
    assert f"paper.txt: a link to {elsewhere / 'paper.txt'}, outside the documents folder" in message
    assert index_files(built) == before


def test_refuses_to_replace_a_folder_that_is_not_an_index(docs, tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(ValueError, match="exists and is not an index folder"):
        build(docs, other)
    assert (other / "mine.txt").read_text(encoding="utf-8") == "keep me"
    with pytest.raises(ValueError, match="must be separate folders"):
        build(docs, docs / "index")


def test_crash_mid_build_leaves_old_index_intact(built, docs, tmp_path):
    before = index_files(built)
    (docs / "vte-zh.txt").write_text(
        (docs / "vte-zh.txt").read_text(encoding="utf-8") + "\n4 结论\n抗凝治疗需个体化。\n", encoding="utf-8"
    )
    (docs / "more-en.txt").write_text("Aspirin\n\nAspirin was studied in 200 patients.\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(docs, built, RecordingEmbedder(fail_after=0))
    assert index_files(built) == before
    assert Index.load(built).manifest["counts"]["documents"] == 3
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".index.")]


def test_failure_while_writing_leaves_old_index_and_no_temp_dir(built, docs, tmp_path, monkeypatch):
    before = index_files(built)
    (docs / "more-en.txt").write_text("Aspirin\n\nAspirin was studied in 200 patients.\n", encoding="utf-8")

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("rag.indexing.build.BM25Index.build", disk_full)
    with pytest.raises(OSError, match="No space left"):
        build(docs, built)
    assert index_files(built) == before
    assert not list(tmp_path.glob(".index.building-*"))


def test_crash_between_renames_is_recovered(built, docs, tmp_path):
    built.rename(tmp_path / ".index.old-1234abcd")  # as if killed inside the swap
    (tmp_path / ".index.building-5678ef90").mkdir()  # a half-written build
    report, embedder = build(docs, built)
    assert (
        sorted(report.unchanged) == ["angiosarcoma-en", "poems-mixed", "vte-zh"] and embedder.passages == []
    )
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".index.")]


def test_progress_bar_when_asked(docs, tmp_path, capsys):
    build_index(docs, tmp_path / "index", RecordingEmbedder(), SETTINGS, progress=True)
    assert "Embedding" in capsys.readouterr().err
    build_index(docs, tmp_path / "index2", RecordingEmbedder(), SETTINGS, progress=False)
    assert "Embedding" not in capsys.readouterr().err


# ---- load errors ----------------------------------------------------------------------------


def test_missing_index_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(
        IndexNotFoundError, match=f"No index at {missing}. Build it with: rag index --docs DIR --index"
    ):
        Index.load(missing)


def test_model_mismatch_message(built, docs):
    with pytest.raises(
        ModelMismatchError,
        match=(
            rf"Index {built} was built with model fake-hash-64 but model e5-small is loaded\. "
            rf"Rebuild with: rag index --docs {docs} --index {built} --model e5-small \(or use --model fake-hash-64\)"
        ),
    ):
        Index.load(built, RecordingEmbedder(model_id="e5-small"))


def test_dimension_mismatch_message(built):
    with pytest.raises(
        ModelMismatchError, match="holds 64-dimensional vectors but model fake-hash-64 makes 32"
    ):
        Index.load(built, RecordingEmbedder(dim=32))


@pytest.mark.parametrize("name", ["chunks.jsonl", "documents.jsonl", "embeddings.npy", "faiss.index", "bm25"])
def test_missing_file_is_named(built, name):
    path = built / name
    if path.is_dir():
        for p in path.iterdir():
            p.unlink()
        path.rmdir()
    else:
        path.unlink()
    with pytest.raises(
        IndexFileMissingError, match=rf"{name} is missing\. Rebuild it with: rag index --docs"
    ):
        Index.load(built)


def test_missing_manifest(built):
    (built / "manifest.json").unlink()
    with pytest.raises(IndexFileMissingError, match="manifest.json is missing"):
        Index.load(built)


@pytest.mark.parametrize(
    "name",
    ["manifest.json", "chunks.jsonl", "documents.jsonl", "embeddings.npy", "faiss.index", "bm25/meta.json"],
)
def test_truncated_file_is_corrupt(built, name):
    path = built / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorruptError, match=r"is corrupt .*Rebuild it with: rag index"):
        Index.load(built)


def test_chunk_count_mismatch_is_corrupt(built):
    lines = (built / "chunks.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (built / "chunks.jsonl").write_text("".join(lines[:-1]), encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="chunks and .* embeddings on disk"):
        Index.load(built)


def test_newer_format_version(built):
    manifest = json.loads((built / "manifest.json").read_text(encoding="utf-8"))
    manifest["format_version"] = 99
    (built / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexVersionError, match="format version 99; this version of rag reads versions 2-3"):
        Index.load(built)


def test_corrupt_previous_index_is_rebuilt(built, docs):
    (built / "embeddings.npy").write_bytes(b"garbage")
    report, embedder = build(docs, built)
    assert "could not be read" in report.full_rebuild
    assert len(embedder.passages) == report.n_chunks
    Index.load(built)


def test_builds_wait_for_each_other(docs, tmp_path):
    import threading

    from rag.indexing.store import build_lock

    order = []
    with build_lock(tmp_path / "index"):
        thread = threading.Thread(target=lambda: order.append(build(docs, tmp_path / "index")[0].n_documents))
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive() and order == []  # blocked by the lock
    thread.join(timeout=30)
    assert order == [3]

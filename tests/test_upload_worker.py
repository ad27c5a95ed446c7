"""Uploads indexed in the background: questions answered meanwhile, an atomic swap, cancel and crash
recovery that leave the index and docs/ as they were."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from rag.answer.compose import AnswerSettings
from rag.indexing.index import build_index
from rag.pipeline import Pipeline
from webui import staging
from webui.worker import UploadWorker

from .conftest import FakeEmbedder

NEW_DOC = """佐拉替尼的一期临床研究

摘要
佐拉替尼是一种虚构的口服激酶抑制剂。推荐剂量为每日两次、每次137毫克。最常见的不良反应为味觉倒错。
"""
QUESTIONS = ["特鲁索综合征的一线治疗药物是什么？", "What is everolimus used for?", "抗凝治疗首选什么药物？"]


class GatedEmbedder(FakeEmbedder):
    """Builds embed only when the test lets them: the upload stays in flight as long as needed."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def embed_passages(self, texts):
        self.entered.set()
        assert self.release.wait(30), "the test never released the build"
        return super().embed_passages(texts)


def _tree(folder: Path) -> dict[str, str]:
    """Every file below folder (hidden ones too) and its hash: what 'as it was' means."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    } | {p.relative_to(folder).as_posix() + "/": "" for p in folder.rglob("*") if p.is_dir()}


@pytest.fixture
def app_state(tiny_corpus: Path, tmp_path: Path):
    index_dir = tmp_path / "index"
    build_index(tiny_corpus, index_dir, FakeEmbedder(), progress=False)
    pipeline = Pipeline.load(
        index_dir, embedder=FakeEmbedder(), answer_settings=AnswerSettings(min_score=0.1)
    )
    gate = GatedEmbedder()
    worker = UploadWorker(pipeline, tiny_corpus, embedders=lambda: (gate, None))
    return tiny_corpus, index_dir, pipeline, worker, gate


def _upload(tmp_path: Path, name: str, data: bytes) -> tuple[str, Path]:
    tmp = tmp_path / f"gradio-{name}"
    tmp.write_bytes(data)
    return name, tmp


def test_questions_are_answered_while_an_upload_indexes_then_the_index_swaps_whole(app_state, tmp_path):
    docs, _, pipeline, worker, gate = app_state
    old_index = pipeline.index
    assert worker.start([_upload(tmp_path, "zoratinib.txt", NEW_DOC.encode())]) is None
    assert gate.entered.wait(10)  # the build is embedding, and will wait there
    answers, errors = [], []

    def asker(question: str) -> None:
        try:
            for _ in range(3):
                answers.append(pipeline.ask(question))
        except Exception as exc:  # noqa: BLE001 - a failure in a thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=asker, args=(q,)) for q in QUESTIONS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Nine answers came back while the build was held mid-embedding, all from the old index.
    assert not errors and len(answers) == 9
    assert pipeline.index is old_index and "uploads/zoratinib" not in pipeline.documents
    progress = worker.progress()
    assert progress.running and "zoratinib.txt" in progress.message()
    gate.release.set()
    done = worker.wait(30)
    assert not done.running and done.result.added == ["uploads/zoratinib"], done.result.errors
    assert pipeline.index is not old_index and "uploads/zoratinib" in pipeline.documents
    assert not (docs / "uploads" / staging.JOURNAL).exists()
    answer = pipeline.ask("佐拉替尼的推荐剂量是多少？", k=3)
    assert answer.quotes and answer.quotes[0].doc_id == "uploads/zoratinib"


def test_a_cancelled_upload_leaves_index_and_docs_identical(app_state, tmp_path):
    docs, index_dir, pipeline, worker, gate = app_state
    docs_before, index_before = _tree(docs), _tree(index_dir)
    siblings_before = sorted(p.name for p in index_dir.parent.iterdir())
    old_index = pipeline.index
    worker.start([_upload(tmp_path, "zoratinib.txt", NEW_DOC.encode())])
    assert gate.entered.wait(10)
    assert (docs / "uploads" / "zoratinib.txt").exists()  # the file is in docs/ while it is built
    assert worker.cancel()
    gate.release.set()
    done = worker.wait(30)
    assert not done.running and done.result.added == []
    assert "cancelled" in done.result.message()
    assert _tree(docs) == docs_before and _tree(index_dir) == index_before
    assert sorted(p.name for p in index_dir.parent.iterdir()) == siblings_before  # no staging left
    assert pipeline.index is old_index
    # Nothing of it comes back with the next upload.
    gate2 = GatedEmbedder()
    gate2.release.set()
    worker._embedders = (gate2, None)
    worker.start([_upload(tmp_path, "other.txt", b"Hydroxyurea lowers the platelet count.\n")])
    assert worker.wait(30).result.added == ["uploads/other"]
    assert "uploads/zoratinib" not in pipeline.documents


def test_a_failed_build_leaves_index_and_docs_identical(app_state, tmp_path):
    docs, index_dir, pipeline, worker, _ = app_state

    class Broken(FakeEmbedder):
        def embed_passages(self, texts):
            raise RuntimeError("disk on fire")

    worker._embedders = (Broken(), None)
    docs_before, index_before = _tree(docs), _tree(index_dir)
    worker.start([_upload(tmp_path, "zoratinib.txt", NEW_DOC.encode())])
    result = worker.wait(30).result
    assert result.added == [] and "disk on fire" in result.errors[0]
    assert _tree(docs) == docs_before and _tree(index_dir) == index_before


def test_a_second_upload_while_one_runs_is_told_to_wait_and_identical_uploads_give_one_result(
    app_state, tmp_path
):
    docs, _, pipeline, worker, gate = app_state
    data = NEW_DOC.encode()
    assert worker.start([_upload(tmp_path, "a.txt", data)]) is None
    assert gate.entered.wait(10)
    busy = worker.start([_upload(tmp_path, "a-again.txt", data)])
    assert busy and "Another upload is being indexed (a.txt)" in busy
    assert not (tmp_path / "gradio-a-again.txt").exists()  # the refused copy is not kept either
    gate.release.set()
    assert worker.wait(30).result.added == ["uploads/a"]
    worker.start([_upload(tmp_path, "a.txt", data)])
    again = worker.wait(30).result
    assert again.added == [] and "already in the library" in again.errors[0]
    assert sorted(p.name for p in (docs / "uploads").iterdir()) == ["a.txt"]


def test_files_of_an_upload_killed_mid_way_are_removed_at_the_next_start(app_state):
    docs, _, pipeline, _, _ = app_state
    uploads = docs / "uploads"
    stray = uploads / "half.txt"
    uploads.mkdir()
    stray.write_text(NEW_DOC, encoding="utf-8")
    staging.write_journal(uploads, [stray])  # as save_upload leaves it until the swap
    worker = UploadWorker(pipeline, docs)
    assert worker.recovered == ["half.txt"] and not stray.exists()
    assert not (uploads / staging.JOURNAL).exists()

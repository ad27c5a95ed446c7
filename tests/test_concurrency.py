"""Several questions at once: the pipeline's ask from many threads, also while the index is swapped."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rag.answer.compose import AnswerSettings
from rag.encode.cache import CachedPassageEmbedder
from rag.indexing.index import build_index
from rag.pipeline import Pipeline

from .conftest import FakeEmbedder

QUESTIONS = [
    "特鲁索综合征的一线治疗药物是什么？",
    "What is everolimus used for?",
    "抗凝治疗首选什么药物？",
    "What was the main adverse event?",
    "POEMS综合征如何治疗？",
    "What is the main treatment for localised disease?",
]


class SlowFake(FakeEmbedder):
    """The fake embedder with a pause that lets other threads run mid-encode, as a real model does."""

    def _embed(self, texts: list[str]) -> np.ndarray:
        threading.Event().wait(0.002)
        return super()._embed(texts)


def _pipeline(index_dir: Path) -> Pipeline:
    embedder = SlowFake()
    return Pipeline.load(index_dir, embedder=embedder, answer_settings=AnswerSettings(min_score=0.1))


def _summary(answer) -> tuple:
    return answer.answer, answer.abstained, tuple((q.doc_id, q.start, q.end) for q in answer.quotes)


def test_many_questions_at_once_get_the_answers_they_get_one_by_one(fake_index):
    pipeline = _pipeline(fake_index)
    alone = {q: _summary(pipeline.ask(q)) for q in QUESTIONS}
    fresh = _pipeline(fake_index)  # empty caches: the threads fill them together
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda q: (q, _summary(fresh.ask(q))), QUESTIONS * 6))
    assert len(together) == len(QUESTIONS) * 6
    for question, summary in together:
        assert summary == alone[question], question


def test_asks_during_reload_each_read_one_whole_index(tiny_corpus, tmp_path):
    """An upload swaps the index while questions are answered: each answer comes from one index whole
    (its quotes verify against that index's documents), none fails, and the swap is seen at once."""
    index_dir = tmp_path / "index"
    build_index(tiny_corpus, index_dir, FakeEmbedder(), progress=False)
    pipeline = _pipeline(index_dir)
    before = pipeline.index
    (tiny_corpus / "zoratinib.txt").write_text(
        "佐拉替尼的一期研究\n\n摘要\n佐拉替尼是一种虚构的口服激酶抑制剂，推荐剂量为每日两次。\n",
        encoding="utf-8",
    )
    build_index(tiny_corpus, index_dir, FakeEmbedder(), progress=False)
    stop, errors, answers = threading.Event(), [], []

    def asker(question: str) -> None:
        while not stop.is_set():
            try:
                answer = pipeline.ask(question)
                docs = pipeline.documents  # may be newer than the answer's index: only ever grows here
                for q in answer.quotes:
                    assert docs[q.doc_id].text[q.start : q.end] == q.text
                answers.append(answer)
            except Exception as exc:  # noqa: BLE001 - any failure in a thread is the test failing
                errors.append(exc)
                return

    threads = [threading.Thread(target=asker, args=(q,)) for q in QUESTIONS[:4]]
    for t in threads:
        t.start()
    for _ in range(3):
        pipeline.reload(warm=True)
    assert "zoratinib" in pipeline.documents and pipeline.index is not before
    answer = pipeline.ask("佐拉替尼的推荐剂量是多少？")
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(answers) >= 4
    assert any(q.doc_id == "zoratinib" for q in answer.quotes), answer.answer


def test_a_pinned_state_survives_a_reload(tiny_corpus, tmp_path):
    """The streaming answer's steps read the index the question was prepared on."""
    index_dir = tmp_path / "index"
    build_index(tiny_corpus, index_dir, FakeEmbedder(), progress=False)
    pipeline = _pipeline(index_dir)
    old = pipeline.index
    with pipeline._pin():
        pipeline.reload()
        assert pipeline.index is old  # this ask keeps its index
    assert pipeline.index is not old  # the next one sees the new one


def test_query_cache_is_safe_under_concurrent_misses():
    inner = FakeEmbedder()
    cache = CachedPassageEmbedder(inner, ["a known sentence"], inner.embed_passages(["a known sentence"]))
    texts = [f"question number {i}" for i in range(400)]  # far more than the cache keeps
    expected = inner.embed_queries(texts)

    def run(i: int) -> bool:
        got = cache.embed_queries([texts[i], texts[(i * 7) % 400]])
        more = cache.embed_passages([texts[i], "a known sentence"])
        return np.allclose(got[0], expected[i]) and np.allclose(more[0], inner.embed_passages([texts[i]])[0])

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(run, list(range(400)) * 2))


@pytest.mark.parametrize("n", [8])
def test_glossary_matches_from_many_threads(fake_index, n):
    pipeline = _pipeline(fake_index)
    glossary = pipeline.glossary
    texts = [f"静脉血栓栓塞 VTE 组织因子 {i}" for i in range(3000)]
    expected = [tuple(glossary._find(t)) for t in texts[:10]]
    with ThreadPoolExecutor(n) as pool:
        got = list(pool.map(glossary.matches, texts))
    assert [tuple(g) for g in got[:10]] == expected


def test_a_streamed_answer_reads_the_index_it_was_prepared_on(tiny_corpus, tmp_path):
    """Gradio runs each step of a streamed answer in whichever worker thread is free; a reload
    between the steps must not mix the two indexes."""
    index_dir = tmp_path / "index"
    build_index(tiny_corpus, index_dir, FakeEmbedder(), progress=False)
    pipeline = _pipeline(index_dir)
    seen = []
    pipeline.generator.stream = lambda *a, **kw: iter(
        [_record(pipeline, seen), pipeline.generator.generate(*a, **kw)]
    )
    old = pipeline.index
    pieces = pipeline.ask_stream("抗凝治疗首选什么药物？")
    pipeline.reload()
    with ThreadPoolExecutor(1) as other_thread:
        first = other_thread.submit(next, pieces).result()
        answer = other_thread.submit(next, pieces).result()
    assert first == "draft" and seen == [old] and pipeline.index is not old
    assert answer.quotes and all(
        old.documents[q.doc_id].text[q.start : q.end] == q.text for q in answer.quotes
    )


def _record(pipeline: Pipeline, seen: list) -> str:
    seen.append(pipeline.index)  # evaluated when the step runs: inside the pin
    return "draft"

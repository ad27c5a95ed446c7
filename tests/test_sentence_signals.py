"""Sentence selection with retrieval's signals: standardised per sentence language, encodings reused."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from rag.answer.candidates import Sentence
from rag.answer.scoring import score_sentences
from rag.answer.signals import SentenceSignals, SignalColumns
from rag.query.analysis import analyse_text
from rag.settings import ScoringSettings


def _sentence(text: str, lang: str, pos: int = 0, start: int = 0) -> Sentence:
    return Sentence("d", "T", "S", start, start + len(text), text, lang, pos)


class _Columns:
    """Signals as fixed columns, standing in for the encoders so the arithmetic can be checked."""

    def __init__(self, dense, words=()):
        self.result = SignalColumns(np.array(dense), tuple(words))
        self.calls = []

    def __call__(self, query, texts, sentences=None):
        self.calls.append((query.text, query.lang, list(texts)))
        return self.result


def test_an_english_sentence_does_not_win_an_english_question_by_language_alone():
    # Raw e5 rates every English sentence above every Chinese one; within each language the Chinese
    # heparin sentence is the clear best, so after standardising it leads.
    sents = [
        _sentence("A French physician described a case of this kind in 1865.", "en", 1, 0),
        _sentence("The review covers the history of this condition in many cancers.", "en", 1, 100),
        _sentence("特鲁索综合征首选抗凝治疗,目前低分子肝素已成为一线治疗药物。", "zh", 1, 200),
        _sentence("本文回顾了特鲁索综合征的历史与发病机制的研究进展。", "zh", 1, 300),
        _sentence("恶性肿瘤患者常伴有高凝状态和血小板增多。", "zh", 1, 400),
    ]
    signals = _Columns(dense=[0.88, 0.87, 0.83, 0.80, 0.79])
    scored = score_sentences(
        analyse_text("What is the first-line drug for Trousseau syndrome?"), sents, None, None, signals
    )
    best = max(scored, key=lambda s: s.score)
    assert "低分子肝素" in best.sentence.text and best.standardised
    assert signals.calls[0][1] == "en" and signals.calls[0][2] == [s.text for s in sents]
    assert all(0.0 <= s.relevance <= 1.0 for s in scored)


def test_the_words_of_a_sentences_own_paper_title_weigh_less_in_the_ranking():
    # Every sentence of an article on 新西兰鸲鹟 names it or refers back to it; the answer does the latter.
    title = "新西兰鸲鹟"
    opening = "新西兰鸲鹟是鹟科的一种鸟类,分布于新西兰全境的森林。"
    answer = "牠们主要猎食无脊椎动物,也吃果实。"
    sents = [
        Sentence("d", title, "S", 0, len(opening), opening, "zh", 0),
        Sentence("d", title, "S", 100, 100 + len(answer), answer, "zh", 0),
    ]
    query = analyse_text("新西兰鸲鹟主要猎食什么？")
    columns = _Columns([0.8, 0.8])

    def scores(share: float) -> list[float]:
        return [
            s.score
            for s in score_sentences(
                query, sents, None, None, columns, ScoringSettings(title_word_share=share)
            )
        ]

    assert scores(1.0)[0] > scores(1.0)[1]
    assert scores(0.5)[0] == scores(0.5)[1]
    assert scores(0.0)[1] > scores(0.0)[0]
    # The word share itself, which judges answer.min_score, does not change.
    lexical = {
        s.lexical
        for share in (0.0, 1.0)
        for s in score_sentences(
            query, sents[:1], None, None, _Columns([0.8]), ScoringSettings(title_word_share=share)
        )
    }
    assert len(lexical) == 1


def test_induced_words_count_as_question_words():
    sents = [
        _sentence("目前低分子肝素已成为一线治疗药物。", "zh", 0, 0),
        _sentence("肿瘤患者常有血小板增多。", "zh", 0, 50),
    ]
    query = analyse_text("first-line drug?")
    without = score_sentences(query, sents, None, None, _Columns([0.8, 0.8]))
    with_words = score_sentences(query, sents, None, None, _Columns([0.8, 0.8], words=["肝素"]))
    assert [s.lexical for s in without] == [0.0, 0.0]
    assert with_words[0].lexical > 0 and with_words[0].score > with_words[1].score


def test_an_induced_english_word_as_written_counts_in_bm25s_form():
    # A Chinese question over English pages is given "patients" and "filters" as written; the
    # sentences' words are BM25's ("patient", "filter").
    sents = [
        _sentence("Each patient had a retrievable filter placed.", "en", 0, 0),
        _sentence("The review covers trauma care in general.", "en", 0, 60),
    ]
    query = analyse_text("滤器取出失败的患者有多少？")
    scored = score_sentences(query, sents, None, None, _Columns([0.8, 0.8], words=["patients", "filters"]))
    assert scored[0].lexical > 0 and scored[0].score > scored[1].score


def test_signals_reuse_the_questions_encoding_and_the_index_vectors(xl_pipeline):
    pipeline, xl = xl_pipeline
    query = pipeline.analyse("What is venous thromboembolism treated with?")
    pipeline.search(query, k=3)
    n_xl_calls, n_calls = len(xl.calls), len(pipeline.embedder.calls)
    texts = list(pipeline.index.extras.sentence_texts[:3])
    signals = SentenceSignals(pipeline.index, pipeline.answer_embedder)
    cols = signals(query, texts)
    assert len(xl.calls) == n_xl_calls, "the question was encoded again by the cross-lingual encoder"
    # The analysis holds the e5 query, and the stored sentences' vectors come from the index.
    assert len(pipeline.embedder.calls) == n_calls
    assert cols.extra_words == query.induced and query.induced
    dense_q = pipeline.embedder.embed_queries([query.dense_query])[0]
    np.testing.assert_allclose(cols.dense, pipeline.embedder.embed_passages(texts) @ dense_q, rtol=1e-5)
    # A sentence the index does not hold is embedded once, then kept.
    unseen = ["A sentence the index never saw."]
    n_calls = len(pipeline.embedder.calls)
    for _ in range(2):
        assert signals(query, unseen).dense.shape == (1,)
    assert pipeline.embedder.calls[n_calls:] == [1]  # the new sentence, once
    # A question that was not encoded cannot be scored with retrieval's signals.
    import pytest

    with pytest.raises(ValueError, match="encoded question"):
        signals(pipeline.analyse("What is VTE?", encode=False), texts)


def test_answers_quote_with_retrievers_signals(xl_pipeline):
    pipeline, _ = xl_pipeline
    (pipeline.index.index_dir / "settings.json").write_text('{"answer": {"min_score": 0.0}}', "utf-8")
    pipeline.reload()
    answer = pipeline.ask("抗凝治疗首选什么药物？")
    assert not answer.abstained and any("低分子肝素" in q.text for q in answer.quotes), answer.answer


def test_a_quantity_question_prefers_the_sentence_that_states_a_number():
    from rag.answer.scoring import has_quantity
    from rag.query.answer_type import asks_quantity

    assert asks_quantity("肿瘤患者中静脉血栓栓塞的发生率大约是多少？")
    assert asks_quantity("How many patients responded?") and asks_quantity("What was the median age?")
    assert not asks_quantity("What is the first-line drug for Trousseau syndrome?")
    assert has_quantity("发病率为 5%~14%。") and not has_quantity("仍呈增长趋势[1] [2]。")
    sents = [
        _sentence("肿瘤患者常伴有高凝状态[1]。", "zh", 0, 0),
        _sentence("其中有 12 例出现不良反应。", "zh", 0, 40),
    ]
    best = lambda q: max(  # noqa: E731
        score_sentences(analyse_text(q), sents, None, None, _Columns([0.85, 0.85])), key=lambda s: s.score
    )
    assert "12" in best("出现不良反应的有多少例？").sentence.text
    assert "12" not in best("为什么？").sentence.text  # equal signals: the better-placed first sentence


def test_a_quantity_is_stated_in_number_words_and_frequency_words_too():
    from rag.answer.scoring import has_quantity
    from rag.query.answer_type import asks_frequency

    # Number words and ordinals of either language, approximate Chinese counts.
    for text in (
        "澳门市再划分为五个堂区。",
        "已成为恶性肿瘤患者的第二大死因。",
        "Fifteen participants took part, seven from the rural hospital.",
        "The third dose was delayed; levels rose twofold.",
        "共纳入十余例患者，三成出现不良反应。",
    ):
        assert has_quantity(text), text
    # "一个" / "一种" (a, a kind of), 十分 (very), grades and list markers, compounds, citations are not.
    for text in (
        "它是一个城市。",
        "这是一种罕见的鱼，十分重要。",
        "在三级甲等医院做二级预防。",
        "第一，患者应戒烟。",
        "相关系数百分比不同。",
        "A double-blind, single-centre trial.",
        "The tendon is injured.",
        "见文献[3]。",
    ):
        assert not has_quantity(text), text
    # Words saying how often count for a question asking how often, and only for one.
    assert asks_frequency("How many people are affected by Alexander disease ?")
    assert asks_frequency("What is the prevalence of gout?") and not asks_frequency("When is it given?")
    for text in ("Adermatoglyphia appears to be a rare condition.", "The prevalence of X is unknown."):
        assert has_quantity(text, frequency=True) and not has_quantity(text), text
    sents = [
        _sentence("Beta-ketothiolase deficiency is an inherited disorder.", "en", 0, 0),
        _sentence("Beta-ketothiolase deficiency appears to be very rare.", "en", 0, 60),
    ]
    best = max(
        score_sentences(
            analyse_text("How many people are affected by beta-ketothiolase deficiency?"),
            sents,
            None,
            None,
            _Columns([0.85, 0.85]),
        ),
        key=lambda s: s.score,
    )
    assert "rare" in best.sentence.text


def test_a_sentence_pointing_back_is_quoted_with_the_one_it_continues():
    from rag.answer.candidates import with_continuation
    from rag.settings import ScoringSettings
    from rag.types import Document

    MAX_QUOTE_CHARS = ScoringSettings().max_quote_chars

    text = "SII 是反映炎症状态的指标。其计算方法是血小板乘以中性粒细胞。另一项研究纳入了 50 例患者。"
    doc = Document("d", "T", "d.txt", text, "", "zh")
    first = _sentence("SII 是反映炎症状态的指标。", "zh", 0, 0)
    joined = with_continuation(first, doc)
    assert joined.text == text[: text.index("另一项")].strip() and joined.start == 0
    assert text[joined.start : joined.end] == joined.text  # still verbatim
    second = _sentence("其计算方法是血小板乘以中性粒细胞。", "zh", 0, text.index("其"))
    assert with_continuation(second, doc) == second  # the next sentence does not point back
    long_doc = Document("d", "T", "d.txt", "甲" * MAX_QUOTE_CHARS + "。其为例外。", "", "zh")
    very_long = _sentence("甲" * MAX_QUOTE_CHARS + "。", "zh", 0, 0)
    assert with_continuation(very_long, long_doc, MAX_QUOTE_CHARS) == very_long
    assert with_continuation(very_long, long_doc, MAX_QUOTE_CHARS + 10).text.endswith("其为例外。")


def test_a_sentence_next_to_a_strong_match_is_lifted_towards_it():
    from rag.answer.candidates import ScoredSentence
    from rag.answer.scoring import lift_neighbours
    from rag.types import Document

    text = "肿瘤细胞到达骨髓后进入休眠状态。 DTC 进入 G0 期并降低代谢活性。\n另一段落讲述了骨转移的分类。"
    doc = Document("d", "T", "d.txt", text, "", "zh")
    parts = [
        "肿瘤细胞到达骨髓后进入休眠状态。",
        "DTC 进入 G0 期并降低代谢活性。",
        "另一段落讲述了骨转移的分类。",
    ]
    sents = [_sentence(p, "zh", 0, text.index(p)) for p in parts]
    scores = [4.0, -0.5, 0.2]
    scored = [
        ScoredSentence(s, 0.8, 0.5, 0.6, z, standardised=True) for s, z in zip(sents, scores, strict=True)
    ]
    share = 0.6
    lifted = [x.score for x in lift_neighbours(scored, {"d": doc}, share)]
    # The next sentence (a space between) takes its share of the match; the match keeps its own score,
    # and the sentence after the line break is not a neighbour.
    assert lifted == [4.0, share * 4.0, 0.2]
    assert lift_neighbours(scored, {"d": doc})[1].sentence == sents[1]
    plain = [ScoredSentence(s, 0.8, 0.5, 0.6, z) for s, z in zip(sents, scores, strict=True)]
    assert [x.score for x in lift_neighbours(plain, {"d": doc})] == scores  # relevance scale: untouched


def _sentences_of(pipeline, doc_id: str, parts: list[str]) -> list[Sentence]:
    doc = pipeline.documents[doc_id]
    chunk = next(c for c in pipeline.chunks if c.doc_id == doc_id and parts[0] in c.text)
    out = []
    for p in parts:
        start = doc.text.index(p)
        out.append(Sentence(doc_id, doc.title, chunk.section, start, start + len(p), p, "zh", 0))
    return out


def test_a_sentence_is_also_scored_as_it_reads_in_place(xl_pipeline):
    from rag.ingest.sentences import context_text

    pipeline, _ = xl_pipeline
    question = "首选低分子肝素"
    query = pipeline.analyse(question)
    match, after = _sentences_of(
        pipeline, "zh-thrombosis", ["抗凝治疗首选低分子肝素。", "华法林也可用于口服抗凝治疗。"]
    )
    share = 0.5
    signals = SentenceSignals(pipeline.index, pipeline.answer_embedder, share)
    texts = [match.text, after.text]
    alone = signals(query, texts).dense
    n_calls = len(pipeline.embedder.calls)
    mixed = signals(query, texts, [match, after]).dense
    assert len(pipeline.embedder.calls) == n_calls, (
        "in-place vectors of indexed sentences come from the index"
    )
    doc = pipeline.documents["zh-thrombosis"].text
    q = pipeline.embedder.embed_queries([question])[0]
    in_place = (
        pipeline.embedder.embed_passages(
            [context_text(doc, s.section, s.start, s.end) for s in (match, after)]
        )
        @ q
    )
    np.testing.assert_allclose(mixed, (1 - share) * alone + share * in_place, rtol=1e-5)
    # The sentence after the match reads, in place, with the match before it: it gains on its own score.
    assert mixed[1] > alone[1]
    off = SentenceSignals(pipeline.index, pipeline.answer_embedder, 0.0)
    np.testing.assert_allclose(off(query, texts, [match, after]).dense, alone)


class _NoStoredRows:
    """An index without stored sentences or title vectors: every text is embedded as it comes."""

    sentence_vectors = np.zeros((0, 64), np.float32)
    context_vectors = None

    extras = SimpleNamespace(stored_titles=lambda titles: {})  # no stored title vectors


def _encoded(question: str, embedder) -> object:
    from dataclasses import replace

    query = analyse_text(question)
    return replace(query, e5=embedder.embed_queries([query.text])[0])


def test_focus_text_drops_the_title_words_the_question_uses():
    from rag.answer.signals import focus_text

    assert focus_text("How many people are affected by Alagille syndrome ?", "Alagille syndrome") == (
        "How many people are affected by ?"
    )
    assert focus_text("紫冠雉的蛋有什么特征？", "紫冠雉") == "的蛋有什么特征？"
    assert focus_text("What causes gout?", "Alagille syndrome") == ""  # no title word: no focus
    assert focus_text("Alagille syndrome", "alagille syndrome") == ""  # nothing left but the title
    # A Latin title word counts whole, or as its plural: a title's "age" is not in "dosage".
    assert focus_text("What is the dosage?", "Age") == ""
    assert focus_text("Which drugs treat it?", "Drug trials") == "Which treat it?"
    assert focus_text("Is the trial in 2019 done?", "19 trials") == "Is the in 2019 done?"


def test_focus_lifts_the_sentence_that_answers_over_the_one_that_names_the_subject(fake_embedder):
    # Every sentence of the article names its subject; the opening one names it twice and wins the
    # whole question. Without the subject, the question asks about eggs, which the answer is about.
    opening = Sentence("d", "紫冠雉", "S", 0, 14, "紫冠雉紫冠雉是一种凤冠雉。", "zh", 0)
    answer = Sentence("d", "紫冠雉", "S", 20, 41, "雌鸡每次会生2-3只蛋,蛋表面粗糙及呈白色。", "zh", 0)
    query = _encoded("紫冠雉的蛋有什么特征？", fake_embedder)
    texts = [opening.text, answer.text]
    plain = SentenceSignals(_NoStoredRows(), fake_embedder, context_share=0.0)(
        query, texts, [opening, answer]
    )
    focused = SentenceSignals(_NoStoredRows(), fake_embedder, context_share=0.0, focus_share=0.5)(
        query, texts, [opening, answer]
    )
    assert plain.dense[0] > plain.dense[1]
    assert focused.dense[1] > focused.dense[0]


def test_no_focus_for_a_title_in_another_language(fake_embedder):
    # An English question names a Chinese paper's subject in other words: nothing to take out.
    s = Sentence("d", "特鲁索综合征的诊治进展", "S", 0, 20, "特鲁索综合征首选抗凝治疗。", "zh", 0)
    query = _encoded("What is Trousseau syndrome treated with?", fake_embedder)
    plain = SentenceSignals(_NoStoredRows(), fake_embedder, context_share=0.0)(query, [s.text], [s])
    n_calls = len(fake_embedder.calls)
    focused = SentenceSignals(_NoStoredRows(), fake_embedder, context_share=0.0, focus_share=0.5)(
        query, [s.text], [s]
    )
    np.testing.assert_allclose(focused.dense, plain.dense)
    assert len(fake_embedder.calls) == n_calls + 1  # the sentence only, no focus text


def test_a_clause_cut_at_a_semicolon_is_quoted_as_its_whole_sentence():
    from rag.answer.candidates import whole_sentence
    from rag.types import Document

    text = (
        "Overview\nA1D is an inherited disorder that can cause neurological problems; "
        "the severity varies widely; most cases are mild. It is rare.\n其一为甲；其二为乙。"
    )
    doc = Document("d", "T", "d.txt", text, "", "en")
    first = "A1D is an inherited disorder that can cause neurological problems;"
    whole = text[text.index("A1D") : text.index(" It is rare")]
    for clause in (first, "the severity varies widely;", "most cases are mild."):
        s = _sentence(clause, "en", 0, text.index(clause))
        widened = whole_sentence(s, doc)
        assert widened.text == whole == text[widened.start : widened.end]  # verbatim, the whole sentence
    rare = _sentence("It is rare.", "en", 0, text.index("It is rare"))
    assert whole_sentence(rare, doc) == rare  # a sentence with no clauses stays as it is
    zh = _sentence("其二为乙。", "zh", 0, text.index("其二"))
    assert whole_sentence(zh, doc).text == "其一为甲；其二为乙。"  # Chinese clauses too, within the line
    s = _sentence(first, "en", 0, text.index(first))
    assert whole_sentence(s, doc, max_chars=len(first) + 5) == s  # too long as a whole: the clause


def _ranked(query, sentences, embedder, share: float) -> list[str]:
    signals = SentenceSignals(_NoStoredRows(), embedder, context_share=0.0, topic=share > 0)
    settings = ScoringSettings(topic_share=share, rank_bonus_z=0.0)
    scored = score_sentences(query, sentences, None, None, signals, settings)
    return [s.sentence.text for s in sorted(scored, key=lambda s: -s.score)]


def test_the_sentence_that_only_restates_the_papers_subject_ranks_below_the_answer(fake_embedder):
    # The opening sentence is the most like the paper's title, and wins the whole question by it; taking
    # off its likeness to the title, within the paper, leaves what the question asks: eggs.
    title = "紫冠雉"
    opening = Sentence("d", title, "S", 0, 14, "紫冠雉紫冠雉是一种凤冠雉。", "zh", 0)
    answer = Sentence("d", title, "S", 20, 41, "雌鸡每次会生2-3只蛋,蛋表面粗糙及呈白色。", "zh", 0)
    other = Sentence("d", title, "S", 50, 66, "牠们栖息在低地的森林里。", "zh", 0)
    query = _encoded("紫冠雉的蛋有什么特征？", fake_embedder)
    sentences = [opening, answer, other]
    assert _ranked(query, sentences, fake_embedder, 0.0)[0] == opening.text
    assert _ranked(query, sentences, fake_embedder, ScoringSettings().topic_share)[0] == answer.text
    # What judges refusals (the similarity itself) is left as it was.
    signals = SentenceSignals(_NoStoredRows(), fake_embedder, context_share=0.0, topic=True)
    plain = SentenceSignals(_NoStoredRows(), fake_embedder, context_share=0.0, topic=False)
    texts = [s.text for s in sentences]
    np.testing.assert_allclose(signals(query, texts, sentences).dense, plain(query, texts, sentences).dense)


def test_the_title_is_taken_off_within_its_paper_only(fake_embedder):
    from rag.answer.scoring import _within_document

    a1, a2 = (Sentence("a", "A", "S", i, i + 1, "x", "zh", 0) for i in (0, 2))
    b = Sentence("b", "B", "S", 0, 1, "y", "zh", 0)
    np.testing.assert_allclose(_within_document(np.array([1.0, 2.0, 5.0]), [a1, a2, b]), [-0.5, 0.5, 0.0])
    # One sentence from each of two papers: nothing to contrast inside either, and no title embedded.
    a = Sentence("a", "紫冠雉", "S", 0, 14, "紫冠雉紫冠雉是一种凤冠雉。", "zh", 0)
    b = Sentence("b", "新西兰鸲鹟", "S", 0, 17, "牠们主要猎食无脊椎动物,也吃果实。", "zh", 0)
    query = _encoded("紫冠雉的蛋有什么特征？", fake_embedder)
    signals = SentenceSignals(_NoStoredRows(), fake_embedder, context_share=0.0)
    before = len(fake_embedder.calls)
    with_topic = score_sentences(query, [a, b], None, None, signals, ScoringSettings(topic_share=1.0))
    assert fake_embedder.calls[before:] == [2]  # the two sentences, no title
    # Two papers of the same title, one candidate each: still nothing to contrast.
    twin = Sentence("c", "紫冠雉", "S", 0, 14, "紫冠雉紫冠雉是一种凤冠雉。", "zh", 0)
    before = len(fake_embedder.calls)
    assert not signals(query, [a.text, twin.text], [a, twin]).topic.any()
    assert fake_embedder.calls[before:] == [2]
    without = score_sentences(query, [a, b], None, None, signals, ScoringSettings(topic_share=0.0))
    assert [s.score for s in with_topic] == [s.score for s in without]


def test_each_title_is_embedded_once_by_the_model_itself(fake_embedder):
    from rag.encode.cache import CachedPassageEmbedder

    title = "紫冠雉"
    texts = ["紫冠雉紫冠雉是一种凤冠雉。", "雌鸡每次会生2-3只蛋,蛋表面粗糙及呈白色。"]
    sents = [Sentence("d", title, "S", 20 * i, 20 * i + len(t), t, "zh", 0) for i, t in enumerate(texts)]
    cached = CachedPassageEmbedder(fake_embedder, texts, fake_embedder.embed_passages(texts))
    query = _encoded("紫冠雉的蛋有什么特征？", fake_embedder)
    signals = SentenceSignals(_NoStoredRows(), cached, context_share=0.0)
    before = len(fake_embedder.calls)
    columns = signals(query, texts, sents)
    again = signals(query, texts, sents)
    # The sentences come from the cache: the one model call is the title's, made once.
    assert fake_embedder.calls[before:] == [1]
    np.testing.assert_allclose(again.topic, columns.topic)
    assert columns.topic.any()
    assert title not in cached._queries  # the few cached query slots are left to the questions


def test_the_title_contrast_reads_the_index_rows_alone_and_in_place(xl_pipeline):
    from rag.pipeline import Pipeline

    pipeline, _ = xl_pipeline
    assert pipeline.sentence_signals.topic  # on by default (scoring.topic_share 0.5)
    off = Pipeline(pipeline.index, pipeline.embedder, overrides={"scoring.topic_share": 0.0})
    assert not off.sentence_signals.topic
    doc = pipeline.documents["zh-thrombosis"]
    sentences = [
        Sentence(doc.doc_id, doc.title, c.section, s, e, doc.text[s:e], "zh", 0, row)
        for c in pipeline.chunks
        if c.doc_id == doc.doc_id
        for row, s, e in pipeline.index.sentences_of(c)
    ]
    assert len(sentences) >= 2
    query = pipeline.analyse(f"{doc.title}首选什么药物治疗？")
    n_calls = len(pipeline.embedder.calls)
    columns = pipeline.sentence_signals(query, [s.text for s in sentences], sentences)
    assert pipeline.embedder.calls[n_calls:] == []  # the title's vector and every sentence's: the index's
    t = pipeline.embedder.embed_queries([doc.title])[0]
    np.testing.assert_allclose(pipeline.index.extras.stored_titles([doc.title])[doc.title], t, rtol=1e-6)
    rows = [s.row for s in sentences]
    index = pipeline.index
    expected = 0.5 * (index.sentence_vectors[rows] @ t) + 0.5 * (index.context_vectors[rows] @ t)
    np.testing.assert_allclose(columns.topic, expected, rtol=1e-5)


def test_a_question_asking_only_for_the_subject_keeps_the_sentence_that_restates_it(fake_embedder):
    # "紫冠雉是什么？" asks nothing beyond the paper's subject: the opening sentence is its answer.
    title = "紫冠雉"
    opening = Sentence("d", title, "S", 0, 14, "紫冠雉紫冠雉是一种凤冠雉。", "zh", 0)
    answer = Sentence("d", title, "S", 20, 41, "雌鸡每次会生2-3只蛋,蛋表面粗糙及呈白色。", "zh", 0)
    query = _encoded("紫冠雉是什么？", fake_embedder)
    signals = SentenceSignals(_NoStoredRows(), fake_embedder, context_share=0.0, topic=True)
    columns = signals(query, [opening.text, answer.text], [opening, answer])
    assert columns.topic is not None and not columns.topic.any()  # nothing to take off
    assert _ranked(query, [opening, answer], fake_embedder, 1.0)[0] == opening.text


def test_a_question_of_how_often_prefers_a_frequency_to_a_bare_number():
    from dataclasses import replace as with_

    from rag.query.answer_type import states_how_often

    question = analyse_text("How many people are affected by Xyz syndrome?")
    half = "About half of people with Xyz syndrome have a decline in intellectual function."
    for text in (
        "Xyz syndrome is a rare disorder.",
        "Its prevalence is estimated to be 1 in 10,000 people.",
        "Deep vein thrombosis occurred in 58% of them.",
        "每10万人中约有3人患病。",
    ):
        assert states_how_often(text), text
    assert not states_how_often(half) and not states_how_often("See reference [12].")
    sents = [
        _sentence(half, "en", 0, 0),
        _sentence("Xyz syndrome appears to be rare among people.", "en", 0, 100),
    ]

    def best(settings: ScoringSettings) -> str:
        scored = score_sentences(question, sents, None, None, _Columns([0.85, 0.85]), settings)
        return max(scored, key=lambda s: s.score).sentence.text

    assert best(ScoringSettings()) == sents[1].text
    # A bare number counting fully, the two tie and the first in the list wins.
    assert best(with_(ScoringSettings(), frequency_number_share=1.0)) == half
    # For a question asking for a number, not how often, the bare number still counts.
    count = analyse_text("How many patients with Xyz syndrome have a decline in intellectual function?")
    scored = score_sentences(count, sents, None, None, _Columns([0.85, 0.85]))
    assert max(scored, key=lambda s: s.score).sentence.text == half


def test_a_question_asking_for_a_measure_prefers_a_number_with_its_unit():
    from dataclasses import replace as with_

    question = analyse_text("How long did each focus group session last?")
    assert question.asks_measure == ("duration", "length")
    count = "Focus groups were conducted with fifteen participants at two hospitals."
    hour = "Each session lasted approximately one hour and was taped."
    sents = [_sentence(count, "en", 0, 0), _sentence(hour, "en", 0, 100)]

    def best(q, settings: ScoringSettings | None = None) -> str:
        scored = score_sentences(q, sents, None, None, _Columns([0.85, 0.85]), settings or ScoringSettings())
        return max(scored, key=lambda s: s.score).sentence.text

    assert best(question) == hour
    # A bare number counting fully, the count sentence wins ("one hour" holds no number the bonus counts).
    assert best(question, with_(ScoringSettings(), measure_number_share=1.0)) == count
    # "What was the mean age" asks no quantity word, and still prefers the sentence giving an age.
    age = analyse_text("What was the mean age of the participants?")
    sents = [_sentence(count, "en", 0, 0), _sentence("Their mean age was 64 years.", "en", 0, 100)]
    assert best(age) == sents[1].text

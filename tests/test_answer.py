from __future__ import annotations

import string
from dataclasses import replace
from pathlib import Path

import pytest

import rag.answer.compose
from rag.answer.candidates import candidate_sentences
from rag.answer.compose import verify_quote
from rag.answer.framing import templates
from rag.answer.scoring import score_sentences
from rag.evaluate.runner import answer_framing
from rag.ingest.chunking import chunk_document
from rag.ingest.headings import parse_heading
from rag.ingest.loading import load_folder
from rag.lang import detect_lang
from rag.query.analysis import analyse_text
from rag.query.answer_type import asks_rate, states_rate
from rag.settings import AnswerSettings, RefusalSettings
from rag.terms.glossary import Glossary, Term
from rag.types import Chunk, Document, Hit
from tests.conftest import DOCS
from tests.helpers_answer import compose

SETTINGS = AnswerSettings(min_score=0.1)

# A paper whose English abstract translates the Chinese one sentence by sentence.
BILINGUAL = (
    "摘要\n"
    "特鲁索综合征是一种与癌症相关的血栓形成综合征。特鲁索综合征首选抗凝治疗,目前低分子肝素已成为一线治疗药物。\n"
    "Abstract\n"
    "Trousseau syndrome is a cancer-related thrombotic syndrome. Anticoagulant therapy is the first "
    "choice, and low molecular weight heparin has become the first-line treatment.\n"
    "1. 引言\n"
    "组织因子(tissue factor, TF)是重要的促凝物质,可导致高凝状态。\n"
)


@pytest.fixture
def corpus(tiny_corpus: Path) -> dict[str, Document]:
    return {d.doc_id: d for d in load_folder(tiny_corpus).documents}


def _hits(documents: dict[str, Document], doc_id: str) -> list[Hit]:
    chunks = chunk_document(documents[doc_id])
    return [Hit(c, 1.0 / (i + 1), i) for i, c in enumerate(chunks)]


def _framing_lang(answer) -> str:
    return detect_lang(answer_framing(answer))


def test_quotes_are_verbatim_verified_and_at_most_three(corpus, fake_embedder):
    hits = _hits(corpus, "zh-thrombosis")
    glossary = Glossary.build(corpus.values())
    a = compose(
        "特鲁索综合征的一线治疗药物是什么？",
        "zh",
        hits,
        corpus,
        settings=SETTINGS,
        glossary=glossary,
        embedder=fake_embedder,
    )
    assert not a.abstained and 1 <= len(a.quotes) <= 3
    for q in a.quotes:
        assert q.text == corpus[q.doc_id].text[q.start : q.end] and verify_quote(q, corpus)
        assert parse_heading(q.text) is None
        assert f"「{q.text}」[{q.n}]" in a.answer
    assert [q.n for q in a.quotes] == list(range(1, len(a.quotes) + 1))
    assert any("低分子肝素已成为一线治疗药物" in q.text for q in a.quotes)
    assert a.answer.startswith("根据文献：") and _framing_lang(a) == "zh"
    assert a.hits == tuple(hits)
    one = compose("低分子肝素", "zh", hits, corpus, settings=AnswerSettings(max_quotes=1, min_score=0.1))
    assert len(one.quotes) == 1


def test_tampered_quote_is_rejected(corpus):
    a = compose("低分子肝素治疗", "zh", _hits(corpus, "zh-thrombosis"), corpus, settings=SETTINGS)
    q = a.quotes[0]
    assert verify_quote(q, corpus)
    assert not verify_quote(replace(q, text=q.text[:-1] + "X"), corpus)
    assert not verify_quote(replace(q, start=q.start + 1), corpus)
    assert not verify_quote(replace(q, start=-len(q.text), end=0), corpus)
    assert not verify_quote(replace(q, doc_id="missing"), corpus)


def test_a_quote_failing_verification_is_never_shown(corpus, monkeypatch):
    hits = _hits(corpus, "zh-thrombosis")
    good = compose("低分子肝素治疗", "zh", hits, corpus, settings=SETTINGS)
    rejected = good.quotes[0]
    monkeypatch.setattr(rag.answer.compose, "verify_quote", lambda q, docs: q.start != rejected.start)
    a = compose("低分子肝素治疗", "zh", hits, corpus, settings=SETTINGS)
    assert rejected.text not in a.answer and all(q.start != rejected.start for q in a.quotes)
    assert any("dropped a quote" in n for n in a.notes)


def test_english_question_gets_english_framing_and_glossed_chinese_quote(fake_embedder):
    text = "1. 引言\n组织因子(tissue factor, TF)是重要的促凝物质。\n2. 机制\n肿瘤细胞大量表达组织因子,从而促进血栓形成和肿瘤生长。\n"
    docs = {"tf": Document("tf", "组织因子综述 (Tissue factor: a review)", "tf.txt", text, "0")}
    mechanism = [h for h in _hits(docs, "tf") if h.chunk.section == "2 机制"]
    a = compose(
        "How does tissue factor promote thrombosis?",
        "en",
        mechanism,
        docs,
        settings=SETTINGS,
        glossary=Glossary.build(docs.values()),
        embedder=fake_embedder,
    )
    assert not a.abstained and a.quotes[0].text == "肿瘤细胞大量表达组织因子,从而促进血栓形成和肿瘤生长。"
    assert a.answer.startswith("According to the documents:")
    assert "Key terms: 组织因子 = tissue factor (TF)" in a.answer
    assert "[1] Tissue factor: a review, section 2" in a.answer and _framing_lang(a) == "en"


def test_a_quote_that_defines_its_term_needs_no_gloss(corpus):
    a = compose(
        "What is tissue factor (TF)?",
        "en",
        _hits(corpus, "zh-thrombosis"),
        corpus,
        settings=SETTINGS,
        glossary=Glossary.build(corpus.values()),
    )
    assert "组织因子(tissue factor, TF)" in a.quotes[0].text
    assert "Key terms: 组织因子" not in a.answer and _framing_lang(a) == "en"


def test_english_question_adds_the_english_abstract_sentence_of_the_same_fact():
    doc = Document("bi", "特鲁索综合征 (Trousseau syndrome)", "bi.txt", BILINGUAL, "0")
    docs = {"bi": doc}
    zh_hits = [h for h in _hits(docs, "bi") if h.chunk.section == "摘要"]
    # An English question naming the Chinese drug (no embedder or glossary needed to match it).
    a = compose("Is 低分子肝素 the first-line drug?", "en", zh_hits, docs, settings=SETTINGS)
    texts = [q.text for q in a.quotes]
    assert "低分子肝素已成为一线治疗药物" in texts[0]
    twin = "Anticoagulant therapy is the first choice, and low molecular weight heparin has become the first-line treatment."
    assert texts[1] == twin and all(verify_quote(q, docs) for q in a.quotes)
    assert f"The English abstract states the same: “{twin}” [2]" in a.answer


def test_chinese_question_counts_the_same_fact_once():
    doc = Document("bi", "特鲁索综合征 (Trousseau syndrome)", "bi.txt", BILINGUAL, "0")
    docs = {"bi": doc}
    hits = [h for h in _hits(docs, "bi") if h.chunk.section in ("摘要", "Abstract")]
    question = "低分子肝素是一线治疗药物吗？low molecular weight heparin first-line treatment"
    sentences, _ = candidate_sentences(hits, docs, 5)
    scored = {s.sentence.text: s for s in score_sentences(analyse_text(question), sentences, None)}
    zh_text = "特鲁索综合征首选抗凝治疗,目前低分子肝素已成为一线治疗药物。"
    en_text = "Anticoagulant therapy is the first choice, and low molecular weight heparin has become the first-line treatment."
    top = max(s.score for s in scored.values())
    # Both sentences would qualify as quotes on their scores alone...
    for text in (zh_text, en_text):
        s = scored[text]
        assert s.relevance >= SETTINGS.min_score and s.score >= SETTINGS.follow_ratio * top and s.lexical > 0
    # ...but they state one fact, so a Chinese question gets it once.
    quoted = [q.text for q in compose(question, "zh", hits, docs, settings=SETTINGS).quotes]
    assert (zh_text in quoted) + (en_text in quoted) == 1


@pytest.mark.parametrize(
    ("question", "lang", "message"),
    [
        ("What is the capital of France?", "en", "The documents do not answer this."),
        ("法国的首都是哪里？", "zh", "文档中未找到答案。"),
    ],
)
def test_abstains_below_the_threshold_in_the_question_language(
    corpus, fake_embedder, question, lang, message
):
    hits = _hits(corpus, "zh-thrombosis")
    sentences, _ = candidate_sentences(hits, corpus, 5)
    score = max(s.relevance for s in score_sentences(analyse_text(question), sentences, None, fake_embedder))
    assert 0.0 <= score <= 1.0
    a = compose(
        question,
        lang,
        hits,
        corpus,
        settings=AnswerSettings(min_score=min(1.0, score + 0.01)),
        embedder=fake_embedder,
    )
    assert a.abstained and a.quotes == () and a.hits == tuple(hits)
    assert a.answer.startswith(message) and templates(lang)["nearest"] in a.answer
    assert _framing_lang(a) == lang
    answered = compose(
        question,
        lang,
        hits,
        corpus,
        settings=AnswerSettings(min_score=max(0.0, score - 0.01)),
        embedder=fake_embedder,
    )
    assert not answered.abstained


def test_no_hits_abstains(corpus):
    for lang in ("en", "zh"):
        a = compose("anything", lang, [], corpus, settings=SETTINGS)
        assert a.abstained and a.quotes == () and a.hits == ()
        # The refusal says why, in the question's language, from the templates.
        assert a.refusal is not None and a.refusal.code == "no_relevant_sentence"
        t = templates(lang)
        reason = t["reason"].format(reason=t["refusal_no_relevant_sentence"])
        assert a.answer == f"{t['abstain']}\n{reason}"


def test_stale_chunk_is_skipped_and_noted(corpus):
    doc = corpus["zh-thrombosis"]
    stale = Chunk("zh:0-10", doc.doc_id, doc.title, "摘要", 0, 10, "不是这段文字的内容呀")
    a = compose("低分子肝素", "zh", [Hit(stale, 1.0)], corpus, settings=SETTINGS)
    assert a.abstained and any("rebuild the index" in n for n in a.notes)


def test_embedder_is_called_once_for_the_question_and_once_for_the_sentences(corpus, fake_embedder):
    compose(
        "低分子肝素", "zh", _hits(corpus, "zh-thrombosis"), corpus, settings=SETTINGS, embedder=fake_embedder
    )
    assert len(fake_embedder.calls) == 2


def test_relevance_is_in_the_unit_interval(corpus, fake_embedder):
    sentences, _ = candidate_sentences(_hits(corpus, "zh-thrombosis"), corpus, 5)
    for s in score_sentences(analyse_text("低分子肝素 heparin"), sentences, None, fake_embedder):
        assert 0.0 <= s.relevance <= 1.0 and 0.0 <= s.lexical <= 1.0


def test_templates_exist_for_both_languages_with_the_same_keys_and_fields():
    en, zh = templates("en"), templates("zh")
    assert en.keys() == zh.keys()
    for key in en:
        fields = {f for _, f, _, _ in string.Formatter().parse(en[key]) if f}
        assert fields == {f for _, f, _, _ in string.Formatter().parse(zh[key]) if f}, key
    assert zh["intro"] == "根据文献：" and en["abstain"] == "The documents do not answer this."
    with pytest.raises(ValueError, match="lang must be one of"):
        templates("fr")


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_quotes must be between 1 and 10"):
        AnswerSettings(max_quotes=0)
    with pytest.raises(ValueError, match="min_score must be between 0 and 1"):
        AnswerSettings(min_score=2.0)
    with pytest.raises(ValueError, match="candidate_chunks must be at least 1"):
        AnswerSettings(candidate_chunks=0)


def test_real_paper_english_question_chinese_quote_gloss_and_abstract_sentence():
    docs = {d.doc_id: d for d in load_folder(DOCS).documents}
    doc = docs["trousseau-syndrome-review"]
    zh_abstract = [h for h in _hits(docs, doc.doc_id) if h.chunk.section == "摘要"]
    a = compose(
        "Does it present with deep venous thrombosis or pulmonary embolism?",
        "en",
        zh_abstract,
        docs,
        settings=SETTINGS,
        glossary=Glossary.build(docs.values()),  # the glossary links the English terms to 深静脉血栓, 肺栓塞
    )
    assert not a.abstained and all(verify_quote(q, docs) for q in a.quotes) and len(a.quotes) <= 3
    assert "临床主要表现为深静脉血栓形成、肺栓塞" in a.quotes[0].text
    assert (
        "Key terms: 深静脉血栓 = deep venous thrombosis (DVT); 肺栓塞 = pulmonary embolism (PE)" in a.answer
    )
    assert a.quotes[1].text.startswith("The main clinical manifestations are deep vein thrombosis")
    assert "Trousseau syndrome: a review, Chinese abstract" in a.answer
    assert _framing_lang(a) == "en"


def test_duplicate_checks():
    from rag.answer.facts import near_duplicate, same_fact

    assert near_duplicate(
        "特鲁索综合征首选抗凝治疗,目前低分子肝素已成为一线治疗药物。",
        "目前低分子肝素已成为特鲁索综合征的一线治疗药物。",
    )
    assert not near_duplicate(
        "Anticoagulant therapy is the first choice, and heparin has become the first-line treatment.",
        "Trousseau syndrome is a thrombotic syndrome caused by cancer and has become a leading cause of death.",
    )
    glossary = Glossary([Term("静脉血栓栓塞", "venous thromboembolism", "VTE")])
    zh = "ALK 重排患者的静脉血栓栓塞发生率为 42.7%。"
    assert same_fact(
        zh, "The incidence of venous thromboembolism in ALK-rearranged patients was 42.7%.", glossary
    )
    # two shared topic terms do not make the same fact
    assert not same_fact(
        zh, "VTE risk factors in ALK and EGFR positive cancer were reviewed in 2019 and 2021.", glossary
    )


def test_headings_captions_table_rows_and_fragments_are_not_quotable_but_numeric_sentences_are():
    from rag.answer.candidates import quotable

    assert quotable("目前低分子肝素已成为 Trousseau 综合征的一线治疗药物。")
    # Many numbers inside a full sentence: still a sentence.
    assert quotable(
        "2013年11月至2018年9月本中心收治5例晚期血管肉瘤患者,男性3例、女性2例,年龄37~85岁,中位年龄61岁。"
    )
    assert quotable(
        "Of 547 patients, 57.8% had adenocarcinoma, 15.3% squamous cell carcinoma and 9% small cell lung cancer."
    )
    assert not quotable("1 男 62 左上肢 PR 12 2 女 71 头皮 SD 8 3 男 85 面部 PR 6")  # a table row
    assert not quotable("表1 5例患者的临床特征")  # a caption
    assert not quotable("1.1 一般资料")  # a heading
    assert not quotable("详见文献[25]。")  # a fragment
    assert not quotable("低分子肝素是一线治疗方法。", section="参考文献")


def test_the_title_line_is_no_candidate_sentence():
    # A title on its own line ("COL4A1-related brain small-vessel disease") is long enough to pass as
    # a sentence, names the subject of every question and answers none: it must not take a quote's place.
    title = "COL4A1-related brain small-vessel disease"
    text = (
        f"{title}\nCOL4A1-related brain small-vessel disease is a rare condition. At least 50 people have it."
    )
    doc = Document("d", title, "d.txt", text, "0", "en")
    chunk = Chunk("d#0", "d", title, "(Text)", 0, len(text), text, "en")
    sentences, _ = candidate_sentences([Hit(chunk, 1.0, 1)], {"d": doc}, 1)
    assert sentences[0].text == "COL4A1-related brain small-vessel disease is a rare condition."
    assert all(s.text != title for s in sentences)


def test_quotes_that_follow_each_other_become_one_passage():
    from rag.answer.candidates import Sentence
    from rag.answer.compose import _merge_adjacent

    text = "甲句说明了背景。 乙句给出了答案。\n丙句在下一段。"
    doc = Document("d", "T", "d.txt", text, "", "zh")

    def sent(part: str) -> Sentence:
        start = text.index(part)
        return Sentence("d", "T", "S", start, start + len(part), part, "zh", 0)

    a, b, c = sent("甲句说明了背景。"), sent("乙句给出了答案。"), sent("丙句在下一段。")
    merged = _merge_adjacent([(b, False), (c, False), (a, False)], {"d": doc})
    # b and a are neighbours on one line: one quote in b's (the better) place; c is after a line break.
    assert [s.text for s, _ in merged] == ["甲句说明了背景。 乙句给出了答案。", "丙句在下一段。"]
    first = merged[0][0]
    assert text[first.start : first.end] == first.text and (first.start, first.end) == (a.start, b.end)
    # An English-abstract counterpart is never joined to a Chinese quote.
    assert len(_merge_adjacent([(a, False), (b, True)], {"d": doc})) == 2


@pytest.mark.parametrize(
    "question, asks",
    [
        ("5年总生存率是多少？", True),
        ("What is the objective response rate of everolimus?", True),
        ("What is the 5-year overall survival after transplantation?", True),
        ("What proportion of patients carried the mutation?", True),
        ("What is the median overall survival?", False),  # a duration, not a rate
        ("依维莫司的作用靶点是什么？", False),
    ],
)
def test_questions_asking_for_a_rate(question, asks):
    assert asks_rate(question) is asks


@pytest.mark.parametrize(
    "text, states",
    [
        ("客观缓解率为 40%。", True),
        ("神经系统缓解的比例为5/6。", True),
        ("骨转移发生率提升 1.463 倍。", True),
        ("The risk was 2.5-fold higher.", True),
        ("It affects 1 to 10 in 1,000 children.", True),  # a fraction in words
        ("One in four adults is affected.", True),
        ("The incidence was 4.2 per 1,000 person-years.", True),
        ("每10万人中约有3例。", True),
        ("约三分之一的患者出现复发。", True),
        ("Twelve cases were seen in 2010 in 5 hospitals.", False),  # a year is no numerator
        ("45 in 2019 and 52 in 2020 were enrolled.", False),  # nor a denominator
        ("多西他赛75 mg/m²，每3周1次。", False),  # a schedule, not a fraction
        ("患者每6个月随访一次。", False),
        ("按每千克体重 2 mg 给药。", False),  # a dose per unit, not per people
        ("The dose was 5 mg per 1,000 kcal.", False),
        ("一项研究比较了 347例患者的疗效和生存率。", False),  # names a rate, gives none
        ("Four of five patients had a partial response.", False),
    ],
)
def test_sentences_stating_a_rate(text, states):
    assert states_rate(text) is states


def test_a_rate_question_is_refused_when_no_chosen_sentence_states_one(tmp_path, fake_embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    text = "Results\nEverolimus was given to five patients. Four of five patients had a partial response.\n"
    (folder / "study.md").write_text(text, encoding="utf-8")
    docs = {d.doc_id: d for d in load_folder(folder).documents}
    question = "What is the response rate of everolimus?"
    answer = compose(question, "en", _hits(docs, "study"), docs, settings=SETTINGS, embedder=fake_embedder)
    assert answer.abstained and answer.quotes == ()
    assert any("asks for a rate" in n for n in answer.notes)
    # The same sentences answer a question that asks for no rate; and the check can be turned off.
    assert not compose(
        "How many patients had a partial response?",
        "en",
        _hits(docs, "study"),
        docs,
        settings=SETTINGS,
        embedder=fake_embedder,
    ).abstained
    _answered_once_stated(
        folder,
        question,
        text,
        RefusalSettings(missing_rate=False),
        "The response rate of everolimus was 80%.",
        fake_embedder,
    )


def _answered_once_stated(
    folder, question: str, text: str, off: RefusalSettings, stated: str, embedder
) -> None:
    """The refused question is answered with its rule off, and, once a sentence states the figure, with it."""
    docs = {d.doc_id: d for d in load_folder(folder).documents}
    assert not compose(
        question, "en", _hits(docs, "study"), docs, settings=SETTINGS, embedder=embedder, refusal=off
    ).abstained
    (folder / "study.md").write_text(text + stated + "\n", encoding="utf-8")
    docs = {d.doc_id: d for d in load_folder(folder).documents}
    answer = compose(question, "en", _hits(docs, "study"), docs, settings=SETTINGS, embedder=embedder)
    assert not answer.abstained and any(stated.rstrip(".") in q.text for q in answer.quotes)


def test_a_measure_question_is_refused_when_no_chosen_sentence_states_one(tmp_path, fake_embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    text = (
        "Methods\nFocus groups were held in 2010 with fifteen participants at two hospitals.\n"
        "Each group met in a hospital seminar room.\n"
    )
    (folder / "study.md").write_text(text, encoding="utf-8")
    docs = {d.doc_id: d for d in load_folder(folder).documents}
    question = "How long did each focus group session last?"
    answer = compose(question, "en", _hits(docs, "study"), docs, settings=SETTINGS, embedder=fake_embedder)
    assert answer.abstained and answer.refusal.code == "missing_measure"
    assert any("duration or length" in n for n in answer.notes)
    _answered_once_stated(
        folder,
        question,
        text,
        RefusalSettings(missing_measure=False),
        "Each session lasted approximately one hour.",
        fake_embedder,
    )


# One line per chunk: the first answers the question's first part, the seventh its second part, and the
# five between answer neither (they share only 肿瘤 with it).
TWO_PART_LINES = [
    "组织因子是启动肿瘤相关静脉血栓的关键促凝分子。",
    "本研究纳入了一百二十例住院肿瘤患者的临床资料。",
    "患者的年龄在三十七岁至八十五岁之间,以男性为主。",
    "随访期间共有十二例肿瘤患者失访,未纳入分析。",
    "所有病例均经病理学检查确诊,并签署知情同意书。",
    "统计学处理采用卡方检验,以百分比表示计数资料。",
    "缺氧和炎症因素会让肿瘤细胞的组织因子表达上调。",
]
TWO_PART_QUESTION = "启动肿瘤相关静脉血栓的关键促凝分子是什么？肿瘤中哪些因素会让它上调？"


def _one_chunk_per_line(lines: list[str]) -> tuple[dict[str, Document], list[Hit]]:
    text = "\n".join(lines) + "\n"
    doc = Document("parts", "p.txt", "两部分", text, "zh")
    hits, start = [], 0
    for i, line in enumerate(lines):
        chunk = Chunk(f"parts:{start}", "parts", "两部分", "", start, start + len(line), line)
        hits.append(Hit(chunk, 1.0 / (i + 1), i + 1))
        start += len(line) + 1
    return {"parts": doc}, hits


def test_a_question_asking_two_things_gets_a_quote_for_each_part(fake_embedder):
    documents, hits = _one_chunk_per_line(TWO_PART_LINES)
    on = compose(TWO_PART_QUESTION, "zh", hits, documents, settings=SETTINGS, embedder=fake_embedder)
    texts = [q.text for q in on.quotes]
    # The second part's answer is in the 7th chunk, past the 5 the whole question's quotes come from.
    assert TWO_PART_LINES[0] in texts and TWO_PART_LINES[6] in texts
    assert all(verify_quote(q, documents) for q in on.quotes)
    off = compose(
        TWO_PART_QUESTION,
        "zh",
        hits,
        documents,
        settings=replace(SETTINGS, part_chunks=0),
        embedder=fake_embedder,
    )
    assert TWO_PART_LINES[6] not in [q.text for q in off.quotes]
    # A question asking one thing is answered as before.
    one = "启动肿瘤相关静脉血栓的关键促凝分子是什么？"
    for settings in (SETTINGS, replace(SETTINGS, part_chunks=0)):
        a = compose(one, "zh", hits, documents, settings=settings, embedder=fake_embedder)
        assert TWO_PART_LINES[6] not in [q.text for q in a.quotes]


def test_a_part_already_quoted_is_not_sought_again(fake_embedder, monkeypatch):
    both = "组织因子是启动肿瘤相关静脉血栓的关键促凝分子,缺氧和炎症因素会让它上调。"
    documents, hits = _one_chunk_per_line([both, *TWO_PART_LINES[1:6]])
    calls = []
    real = rag.answer.compose.score_sentences
    monkeypatch.setattr(rag.answer.compose, "score_sentences", lambda q, *a: calls.append(q) or real(q, *a))
    a = compose(TWO_PART_QUESTION, "zh", hits, documents, settings=SETTINGS, embedder=fake_embedder)
    assert both in [q.text for q in a.quotes]
    assert [c.text for c in calls] == [TWO_PART_QUESTION]  # no part was scored on its own

"""Refusal rules: one ordered list, switched by settings, used by ask, calibrate and eval alike."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import rag.pipeline
from rag.abstain.coverage import TermCoverage
from rag.abstain.rules import (
    QUESTION,
    QUOTES,
    AbsentTerms,
    EvidenceThreshold,
    MissingMeasure,
    MissingRate,
    NoRelevantSentence,
    NoVerifiedQuote,
    UncoveredTerms,
    UnknownNames,
    UnquotedNames,
    first_refusal,
    refusal_rules,
)
from rag.answer.compose import Draft
from rag.answer.framing import refusal_message
from rag.cli import main
from rag.pipeline import Pipeline
from rag.query.analysis import analyse_text
from rag.query.names import Name
from rag.settings import RefusalSettings, Settings
from rag.types import Chunk, Document, Hit, Quote

from .conftest import FakeEmbedder

DOC = Document("d", "T", "d.txt", "低分子肝素是一线治疗药物。有效率为 80%。", "", "zh")
QUOTE = Quote(1, "d", "T", "S", 0, 13, DOC.text[:13])


def draft(*quotes: Quote, best: float = 0.9, candidates: int = 3) -> Draft:
    return Draft(tuple((q, False) for q in quotes), best, candidates, ())


def test_the_rules_come_in_order_and_the_settings_switch_them():
    rules = refusal_rules(Settings().with_(**{"abstain.zh": 0.5}), {}, evidence=lambda q, h: 1.0)
    assert [r.code for r in rules] == [
        "unknown_names",
        "absent_terms",
        "absent_names",
        "evidence",
        "no_relevant_sentence",
        "no_verified_quote",
        "missing_rate",
        "missing_measure",
        "unquoted_names",
        "uncovered_terms",
    ]
    assert [r.stage for r in rules] == [*[QUESTION] * 4, *[QUOTES] * 6]
    off = Settings(
        refusal=RefusalSettings(
            unknown_names=False,
            absent_terms=False,
            absent_names=False,
            evidence=False,
            missing_rate=False,
            missing_measure=False,
            uncovered_terms=False,
        )
    )
    assert [r.code for r in refusal_rules(off, {}, evidence=lambda q, h: 1.0)] == [
        "no_relevant_sentence",
        "no_verified_quote",
        "unquoted_names",
    ]


def test_each_rule_refuses_for_its_own_reason_only():
    q = analyse_text("阿哌沙班的有效率是多少？")
    assert UnknownNames().check(q, [], None) is None
    named = replace(q, unknown_names=("阿哌沙班",))
    refusal = UnknownNames().check(named, [], None)
    assert refusal.code == "unknown_names" and dict(refusal.values) == {"names": "阿哌沙班"}
    assert "阿哌沙班" in refusal_message(refusal, "zh") and "阿哌沙班" in refusal_message(refusal, "en")

    assert AbsentTerms().check(q, [], None) is None
    absent = AbsentTerms().check(replace(q, absent_terms=("febrile",)), [], None)
    assert absent.code == "absent_terms" and "febrile" in refusal_message(absent, "zh")

    gate = EvidenceThreshold({"zh": 0.5}, evidence=lambda query, hits: 0.4)
    assert gate.check(q, [object()], None).note.startswith("evidence 0.400 below")
    assert gate.check(q, [], None) is None  # nothing retrieved: nothing to judge
    # The note says whose calibration set the bar, from the rules the settings make.
    (sourced,) = [
        r
        for r in refusal_rules(
            Settings().with_(**{"abstain.zh": 0.5}), {}, lambda a, h: 0.4, "index/settings.json"
        )
        if r.code == "evidence"
    ]
    assert sourced.check(q, [object()], None).note.endswith("(calibration: index/settings.json)")
    assert EvidenceThreshold({"en": 0.5}, evidence=lambda query, hits: 0.0).check(q, [object()], None) is None

    assert NoRelevantSentence(0.5).check(q, [], draft(best=0.4)).code == "no_relevant_sentence"
    assert NoRelevantSentence(0.0).check(q, [], draft(candidates=0)).code == "no_relevant_sentence"
    assert NoRelevantSentence(0.5).check(q, [], draft(QUOTE)) is None
    assert NoVerifiedQuote().check(q, [], draft()).code == "no_verified_quote"
    assert NoVerifiedQuote().check(q, [], draft(QUOTE)) is None

    assert q.asks_rate
    assert MissingRate().check(q, [], draft(QUOTE)).code == "missing_rate"
    rate = Quote(2, "d", "T", "S", 13, len(DOC.text), DOC.text[13:])
    assert MissingRate().check(q, [], draft(QUOTE, rate)) is None

    asks = analyse_text("华法林的疗效如何？", names=(Name("华法林", ("华法林",)),))
    assert UnquotedNames({"d": DOC}).check(asks, [], draft(QUOTE)).code == "unquoted_names"
    asks = analyse_text("低分子肝素的疗效如何？", names=(Name("低分子肝素", ("低分子肝素",)),))
    assert UnquotedNames({"d": DOC}).check(asks, [], draft(QUOTE)) is None


def _hit(lang: str) -> Hit:
    return Hit(Chunk("c", "d", "T", "S", 0, 4, "text", lang), 1.0)


def test_term_rules_judge_only_words_in_the_script_of_the_best_passage():
    # In a folder of Chinese and English papers, an English question about a Chinese paper asks in
    # English words that only the English papers could write: their absence proves nothing.
    en = replace(
        analyse_text("What does the CBC report show for febrile children?"), absent_terms=("febrile",)
    )
    assert AbsentTerms().check(en, [_hit("en")], None).code == "absent_terms"
    assert AbsentTerms().check(en, [_hit("zh"), _hit("en")], None) is None
    assert AbsentTerms().check(en, [], None).code == "absent_terms"  # nothing retrieved: as asked
    # A Chinese question about an English paper: its Chinese transliteration proves nothing, the
    # Latin name it also writes does.
    zh = replace(
        analyse_text("卡穆祖医院用奥马曲拉（omapatrilat）吗？"), unknown_names=("卡穆祖", "omapatrilat")
    )
    assert dict(UnknownNames().check(zh, [_hit("zh")], None).values) == {"names": "卡穆祖, omapatrilat"}
    assert dict(UnknownNames().check(zh, [_hit("en")], None).values) == {"names": "omapatrilat"}
    assert UnknownNames().check(replace(zh, unknown_names=("卡穆祖",)), [_hit("en")], None) is None


def test_term_rules_judge_words_in_the_scripts_the_best_paper_is_written_in():
    # A Chinese paper with an English abstract, retrieved by that abstract: an English question's
    # English words may be written only in Chinese in its body (the passage alone would say "en").
    zh_paper = Document("zh", "T", "zh.txt", "摘要" * 200 + " Abstract: CBC in children.", "", "zh")
    en_paper = Document("en", "T", "en.txt", "A complete blood count in febrile children. " * 20, "", "en")
    rules = refusal_rules(
        Settings(refusal=RefusalSettings(judge_by_paper=True)),
        {"zh": zh_paper, "en": en_paper},
        lambda q, h: 1.0,
    )
    absent = next(r for r in rules if r.code == "absent_terms")
    unknown = next(r for r in rules if r.code == "unknown_names")

    def hit(doc_id: str, lang: str) -> list[Hit]:
        return [Hit(Chunk("c", doc_id, "T", "S", 0, 4, "text", lang), 1.0)]

    en = replace(analyse_text("What does the CBC show for afebrile children?"), absent_terms=("afebrile",))
    assert absent.check(en, hit("zh", "en"), None) is None  # the passage is English, the paper is not
    assert AbsentTerms().check(en, hit("zh", "en"), None).code == "absent_terms"  # by passage: refused
    assert absent.check(en, hit("en", "en"), None).code == "absent_terms"
    # A Latin name kept in a Chinese question is written as such by Chinese papers too: still judged.
    zh = replace(analyse_text("卡穆祖医院用 omapatrilat 吗？"), unknown_names=("卡穆祖", "omapatrilat"))
    assert dict(unknown.check(zh, hit("zh", "zh"), None).values) == {"names": "卡穆祖, omapatrilat"}
    assert dict(unknown.check(zh, hit("en", "en"), None).values) == {"names": "omapatrilat"}
    assert unknown.check(zh, [], None).code == "unknown_names"  # nothing retrieved: as asked
    assert unknown.check(zh, hit("gone", "zh"), None).code == "unknown_names"  # unknown paper: by passage


def test_the_first_rule_of_the_stage_decides_and_skipped_rules_are_not_asked():
    q = analyse_text("有效率是多少？")
    rules = (NoVerifiedQuote(), MissingRate(), EvidenceThreshold({"zh": 0.9}, evidence=lambda a, h: 0.0))
    assert first_refusal(rules, QUOTES, q, [], draft()).code == "no_verified_quote"
    assert first_refusal(rules, QUOTES, q, [], draft(QUOTE)).code == "missing_rate"
    assert first_refusal(rules, QUESTION, q, [object()]).code == "evidence"
    assert first_refusal(rules, QUESTION, q, [object()], skip=("evidence",)) is None


@pytest.fixture
def uncalibrated(fake_index):
    # No thresholds: the packaged ones are for the real model, not the fake embedder.
    (fake_index / "settings.json").write_text('{"answer": {"min_score": 0.0}}', encoding="utf-8")
    return fake_index


def test_ask_says_which_rule_refused(uncalibrated):
    pipeline = Pipeline.load(uncalibrated, embedder=FakeEmbedder())
    answer = pipeline.ask("阿哌沙班和低分子肝素哪个更好？")
    assert answer.abstained and answer.refusal.code == "unknown_names"
    assert "阿哌沙班" in answer.answer.splitlines()[1]  # the reason, right under the refusal
    assert not pipeline.ask("低分子肝素是什么药物？").abstained
    assert pipeline.ask("低分子肝素是什么药物？").refusal is None
    assert pipeline.status()["refusal_rules"][0] == "unknown_names"


def test_cli_json_and_eval_report_the_refusing_rule(uncalibrated, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(rag.pipeline, "embedder_for", lambda built, model, runtime: FakeEmbedder())
    assert main(["ask", "阿哌沙班和低分子肝素哪个更好？", "--index", str(uncalibrated), "--json"]) == 0
    refusal = json.loads(capsys.readouterr().out)["refusal"]
    assert refusal["code"] == "unknown_names" and "阿哌沙班" in refusal["message"]

    gold = tmp_path / "gold.jsonl"
    rows = [
        {"id": "u1", "question": "阿哌沙班的剂量是多少？", "lang": "zh", "answerable": False,
         "evidence": [], "answer": []},
        {"id": "a1", "question": "抗凝治疗首选什么药物？", "lang": "zh", "answerable": True,
         "evidence": ["低分子肝素"], "answer": ["低分子肝素"]},
    ]  # fmt: skip
    gold.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    assert main(["eval", "--gold", str(gold), "--index", str(uncalibrated), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["refusals_by_rule"]["unknown_names"] == {"answerable": 0, "unanswerable": 1}
    assert out["calibration"] == str(uncalibrated / "settings.json")
    assert out["pipeline"]["refusal_rules"][0] == "unknown_names"
    # Switched off on the command line, the rule refuses nothing.
    assert main(["eval", "--gold", str(gold), "--index", str(uncalibrated), "--json",
                 "--set", "refusal.unknown_names=false"]) == 0  # fmt: skip
    assert "unknown_names" not in json.loads(capsys.readouterr().out)["refusals_by_rule"]


def test_a_chinese_question_about_english_papers_is_judged_by_the_cross_lingual_threshold(tmp_path):
    """e5 rates a Chinese question against English sentences lower than against Chinese ones, so the
    Chinese threshold refused every such question; the cross-lingual threshold is the one for a question
    in another language than its papers."""
    from rag.indexing.index import build_index

    from .conftest import FakeEmbedder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "dvt.txt").write_text(
        "Deep venous thrombosis prophylaxis\n\nDeep venous thrombosis is common after major trauma. "
        "Low molecular weight heparin reduces it by half in injured patients.\n",
        encoding="utf-8",
    )
    build_index(docs, tmp_path / "index", FakeEmbedder(), progress=False)
    pipeline = Pipeline.load(tmp_path / "index", embedder=FakeEmbedder())
    retriever = pipeline.retriever
    assert retriever.evidence_key(pipeline.analyse("创伤后深静脉血栓常见吗？", encode=False), ()) == "en"
    assert (
        retriever.evidence_key(pipeline.analyse("Is thrombosis common after trauma?", encode=False), ())
        == "en"
    )
    (evidence,) = [r for r in pipeline.rules if r.code == "evidence"]
    strict = EvidenceThreshold({"zh": 0.99, "en": 0.0}, lambda q, h: 0.5, key=retriever.evidence_key)
    hits = [Hit(pipeline.index.chunks[0], 1.0, 1)]  # its paper is English too
    assert strict.check(pipeline.analyse("创伤后深静脉血栓常见吗？", encode=False), hits, None) is None
    assert evidence.key == retriever.evidence_key  # the pipeline's rule asks the retriever too


def test_a_chinese_question_about_chinese_papers_keeps_the_chinese_threshold(fake_index):
    from .conftest import FakeEmbedder

    pipeline = Pipeline.load(fake_index, embedder=FakeEmbedder())
    assert (
        pipeline.retriever.evidence_key(pipeline.analyse("肿瘤患者的血栓怎么治疗？", encode=False), ())
        == "zh"
    )


def test_by_paper_a_chinese_question_is_judged_in_the_language_of_its_best_papers(fake_index):
    """In a mixed folder the corpus's majority says nothing about the paper a question is about."""
    from .conftest import FakeEmbedder

    def retriever(by_paper: bool):
        settings = {"retrieval": {"evidence_by_paper": by_paper}}
        (fake_index / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
        return Pipeline.load(fake_index, embedder=FakeEmbedder())

    pipeline = retriever(True)
    chunks = pipeline.index.chunks
    en = [Hit(next(c for c in chunks if c.doc_id == "en-angiosarcoma"), 1.0, 1)]
    zh = [Hit(next(c for c in chunks if c.doc_id == "zh-thrombosis"), 1.0, 1)]
    q = pipeline.analyse("血管肉瘤的主要治疗是什么？", encode=False)
    assert pipeline.retriever.evidence_key(q, en) == "en"
    assert pipeline.retriever.evidence_key(q, zh) == "zh"
    assert pipeline.retriever.evidence_key(q, ()) == "zh"  # no hits: the corpus's majority
    assert retriever(False).retriever.evidence_key(q, en) == "zh"
    english = pipeline.analyse("What is the main treatment of angiosarcoma?", encode=False)
    assert pipeline.retriever.evidence_key(english, zh) == "en"  # English: the cross-lingual measure


EN_DOCS = {
    "celiac": Document(
        "celiac", "Celiac disease", "celiac.txt",
        "Celiac disease is a common disorder. Its prevalence is about 1 in 100 people worldwide.", "", "en",
    ),
    "lattice": Document(
        "lattice", "Lattice corneal dystrophy", "lattice.txt",
        "Lattice corneal dystrophy type II is most common in Finland.", "", "en",
    ),
    "zh": Document("zh", "乳糜泻", "zh.txt", "乳糜泻是一种常见疾病，患病率约为1%。Celiac disease.", "", "zh"),
}  # fmt: skip


def _quote(doc_id: str) -> Quote:
    text = EN_DOCS[doc_id].text
    return Quote(1, doc_id, EN_DOCS[doc_id].title, "S", 0, len(text), text)


def test_quotes_from_papers_that_never_write_a_rare_word_of_the_question_are_refused():
    rule = UncoveredTerms(EN_DOCS)
    q = replace(analyse_text("How common is celiac disease in Finland?"), written_terms=("celiac", "finland"))
    refusal = rule.check(q, [], draft(_quote("celiac")))
    assert refusal.code == "uncovered_terms" and dict(refusal.values) == {"terms": "Finland"}  # as asked
    assert "Finland" in refusal_message(refusal, "en") and "Finland" in refusal_message(refusal, "zh")
    # Covered when any quoted paper writes it, anywhere in the paper.
    assert rule.check(q, [], draft(_quote("celiac"), _quote("lattice"))) is None
    assert rule.check(replace(q, written_terms=("celiac",)), [], draft(_quote("celiac"))) is None
    # A Chinese paper names in Chinese what an English question words in English: not judged, and
    # not with an English paper beside it either (the Chinese one may write the word).
    assert rule.check(q, [], draft(_quote("zh"))) is None
    assert rule.check(q, [], draft(_quote("celiac"), _quote("zh"))) is None
    gone = Quote(1, "gone", "T", "S", 0, 3, "abc")  # a paper the mapping lacks: not judged
    assert rule.check(q, [], draft(_quote("celiac"), gone)) is None
    # Tagged English by its words, but 40% Chinese: it may write the word in Chinese.
    half = Document(
        "half",
        "乳糜泻 celiac",
        "h.txt",
        "乳糜泻在芬兰常见 celiac disease is common in adults here.",
        "",
        "en",
    )
    assert (
        UncoveredTerms({"half": half}).check(q, [], draft(Quote(1, "half", "T", "S", 0, 9, half.text[:9])))
        is None
    )
    # Accents folded on both sides: the paper writes Sjögren, the question Sjogren.
    sjogren = Document("s", "Sjögren syndrome", "s.txt", "Sjögren syndrome dries the eyes.", "", "en")
    asks = replace(analyse_text("Is Sjogren syndrome rare?"), written_terms=("sjogren",))
    assert (
        UncoveredTerms({"s": sjogren}).check(asks, [], draft(Quote(1, "s", "T", "S", 0, 7, "Sjögren")))
        is None
    )
    assert rule.check(q, [], draft()) is None  # nothing quoted: NoVerifiedQuote's case
    assert [r.code for r in refusal_rules(Settings(), EN_DOCS, lambda a, h: 1.0)][-1] == "uncovered_terms"


def test_ask_refuses_a_fact_the_papers_hold_only_about_another_subject(tmp_path):
    """End to end: Finland is in the corpus, but only on the page of another condition."""
    from rag.indexing.index import build_index

    docs = tmp_path / "docs"
    docs.mkdir()
    for doc in EN_DOCS.values():
        if doc.lang == "en":
            (docs / doc.path).write_text(f"{doc.title}\n\n{doc.text}\n", encoding="utf-8")
    build_index(docs, tmp_path / "index", FakeEmbedder(), progress=False)
    # One quote: a two-page corpus would otherwise quote the Finland page too, which covers the word.
    settings = '{"answer": {"min_score": 0.0, "max_quotes": 1}}'
    (tmp_path / "index" / "settings.json").write_text(settings, encoding="utf-8")
    pipeline = Pipeline.load(tmp_path / "index", embedder=FakeEmbedder())
    answer = pipeline.ask("How common is celiac disease in Finland?")
    assert answer.abstained and answer.refusal.code == "uncovered_terms"
    assert "Finland" in answer.answer.splitlines()[1]
    answered = pipeline.ask("How common is celiac disease?")
    assert not answered.abstained and "1 in 100" in answered.answer


def _coverage(writing: dict[str, set[str]], n_documents: int = 40, **kw) -> TermCoverage:
    return TermCoverage(lambda term: frozenset(writing.get(term, ())), n_documents, **kw)


def _top(doc_id: str) -> list[Hit]:
    return [Hit(Chunk(f"{doc_id}#0", doc_id, "T", "S", 0, 1, "x", "zh"), 1.0, 1)]


def test_coverage_counts_separate_stretches_of_rare_words_the_best_paper_writes():
    writing = {"吉非": {"a"}, "替尼": {"a"}, "腺癌": {"a"}, "剂量": {"a", "b"}, "价格": {"a"}, "治疗": {"a"}}
    coverage = _coverage(writing)  # 40 documents, 5%: rare = written by 1 or 2 of them
    q = analyse_text("吉非替尼治疗肺腺癌的剂量是多少？")
    # 治疗 is written by one paper only, but is an everyday word of the language (Zipf >= 4)
    assert sorted(coverage.rare_terms(q.text)) == ["剂量", "吉非", "替尼", "腺癌"]
    assert sorted(coverage.covered(q, _top("a"))) == ["剂量", "吉非", "替尼", "腺癌"]
    assert coverage.covered(q, _top("b")) == []  # b writes 剂量 only: the subject is another paper's
    assert coverage.covered(q, [*_top("b"), *_top("a")]) == []  # the best hit decides, not any hit
    assert coverage.covered(q, []) == []
    # 吉非 + 替尼 are jieba's pieces of one name: three stretches (吉非替尼, 腺癌, 剂量), not four
    assert _coverage(writing, min_terms=3).covered(q, _top("a"))
    assert _coverage(writing, min_terms=4).covered(q, _top("a")) == []
    price = analyse_text("吉非替尼的价格是多少？")  # one name and an everyday word: nothing to go by
    assert (
        sorted(coverage.rare_terms(price.text)) == ["吉非", "替尼"]
        and coverage.covered(price, _top("a")) == []
    )
    # the share is of this corpus's documents: in 10 documents, two writing a word make it common
    assert sorted(_coverage(writing, n_documents=10).rare_terms(q.text)) == ["吉非", "替尼", "腺癌"]


def _titled(doc_id: str, title: str) -> list[Hit]:
    return [Hit(Chunk(f"{doc_id}#0", doc_id, title, "S", 0, 1, "x", "zh"), 1.0, 1)]


def test_one_rare_term_covers_when_the_best_paper_is_titled_by_it():
    writing = {"硕塞": {"a"}, "墓志铭": {"a"}}
    q = analyse_text("硕塞卒于哪一年？")
    assert _coverage(writing).rare_terms(q.text) == {"硕塞": {"a"}}
    assert _coverage(writing).covered(q, _titled("a", "硕塞")) == []  # off: one stretch is chance
    on = _coverage(writing, by_title=True)
    assert on.covered(q, _titled("a", "硕塞")) == ["硕塞"]
    assert on.covered(q, _titled("a", "硕塞 (清朝)")) == ["硕塞"]  # a qualifier in brackets is no part
    assert on.covered(q, _titled("a", "清朝宗室")) == []  # the question does not write the title
    assert on.covered(q, _titled("b", "硕塞")) == []  # b does not write the rare term
    # the title must be a rare term itself: one that many papers write says nothing of this one
    many = _coverage({"硕塞": set("abcdefghij"), "墓志铭": {"a"}}, by_title=True)
    assert many.covered(analyse_text("硕塞的墓志铭写了什么？"), _titled("a", "硕塞")) == []
    # an everyday word as a title names no particular subject
    garden = analyse_text("花园里的硕塞雕像在哪里？")
    assert on.covered(garden, _titled("a", "花园")) == [] and on.covered(garden, _titled("a", "硕塞"))
    # a Latin title counts as a whole word, not as letters inside another word
    latin = _coverage({"ada": {"a"}, "canadax": {"a"}}, by_title=True)
    assert latin.covered(analyse_text("Where is Canadax sold?"), _titled("a", "Ada")) == []
    # a one-word English title counts as BM25 reads it, plural folded
    measles = _coverage({"measle": {"a"}}, by_title=True)
    assert measles.covered(analyse_text("When was Measles first described?"), _titled("a", "Measles"))


def test_the_title_knob_reaches_the_evidence_rule():
    def coverage_of(settings):
        (rule,) = [
            r
            for r in refusal_rules(settings, {}, evidence=lambda q, h: 0.0, writing=lambda t: frozenset())
            if r.code == "evidence"
        ]
        return rule.covered.__self__

    assert not coverage_of(Settings().with_(**{"abstain.zh": 0.5})).by_title
    assert coverage_of(Settings().with_(**{"abstain.zh": 0.5, "refusal.covered_title": True})).by_title


def test_a_covered_question_is_not_refused_for_weak_evidence_and_others_still_are():
    q = analyse_text("战国无双是由哪两个公司合作开发的？")
    weak = {"evidence": lambda query, hits: 0.1}
    assert (
        EvidenceThreshold({"zh": 0.9}, **weak, covered=lambda query, hits: ["战国", "无双"]).check(
            q, _top("a"), None
        )
        is None
    )
    refusal = EvidenceThreshold({"zh": 0.9}, **weak, covered=lambda query, hits: []).check(q, _top("a"), None)
    assert refusal is not None and refusal.code == "evidence"


def test_ask_answers_weak_evidence_when_the_best_paper_writes_the_rare_terms(fake_index):
    def pipeline(covered: bool) -> Pipeline:
        settings = {
            "answer": {"min_score": 0.0},
            "abstain": {"zh": 0.99, "en": 0.99},
            "refusal": {"covered_terms": covered},
        }
        (fake_index / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
        return Pipeline.load(fake_index, embedder=FakeEmbedder())

    index = pipeline(True).index
    assert index.documents_writing("华法林") == {"zh-thrombosis"}
    assert index.documents_writing("综合征") == {"zh-thrombosis", "gbk-poems"}
    assert index.documents_writing("无此词") == frozenset()
    question = "华法林可用于口服抗凝吗？"  # two stretches (华法林, 口服抗凝) only one paper writes
    answered = pipeline(True).ask(question)
    assert not answered.abstained and "华法林" in answered.answer
    assert pipeline(False).ask(question).refusal.code == "evidence"
    # one rare word (首选) is not enough to overrule the evidence
    assert pipeline(True).ask("治疗的首选是什么？").refusal.code == "evidence"
    (fake_index / "settings.json").write_text(
        json.dumps(
            {"answer": {"min_score": 0.0}, "abstain": {"zh": 0.99, "en": 0.99}, "refusal": {"covered_min": 3}}
        ),
        encoding="utf-8",
    )
    assert Pipeline.load(fake_index, embedder=FakeEmbedder()).ask(question).refusal.code == "evidence"


def test_a_chinese_name_is_not_asked_of_quotes_from_a_paper_that_writes_no_chinese():
    page = Document(
        "p", "Blau syndrome", "p.txt", "Blau syndrome is rare. It affects the skin and eyes.", "", "en"
    )
    quote = Quote(1, "p", "Blau syndrome", "S", 0, 22, page.text[:22])
    asks = analyse_text(
        "Blau综合征与葡萄膜炎有关吗？", names=(Name("葡萄膜炎", ("葡萄膜炎",)), Name("Blau", ("Blau",)))
    )
    assert UnquotedNames({"p": page}).check(asks, [], draft(quote)) is None  # Blau is quoted
    # A Latin name is still asked of an English page, and a Chinese one of a paper writing Chinese.
    other = analyse_text("NOD2综合征与葡萄膜炎有关吗？", names=(Name("NOD2", ("NOD2",)),))
    refusal = UnquotedNames({"p": page}).check(other, [], draft(quote))
    assert refusal.code == "unquoted_names" and dict(refusal.values) == {"names": "NOD2"}
    # A stray Han glyph in an English page's OCR does not make it a Chinese paper; a paper written
    # in Chinese (a third of its text here) is asked for the Chinese name.
    scanned = replace(page, text=page.text + " 业")
    assert UnquotedNames({"p": scanned}).check(asks, [], draft(quote)) is None
    mixed = replace(page, text=page.text + " 葡萄膜炎少见，常累及双眼。")
    refusal = UnquotedNames({"p": mixed}).check(asks, [], draft(quote))
    assert refusal.code == "unquoted_names" and dict(refusal.values) == {"names": "葡萄膜炎"}


def test_a_rate_of_how_often_something_occurs_is_answered_by_a_fraction_or_by_how_rare():
    text = (
        "Blau syndrome appears to be uncommon; its prevalence is unknown. It affects about 1 in 50,000 "
        "people. Type 2 disease was described in 2008. About 50 families are known. "
        "本研究探讨了2型患病率的影响因素。"
    )
    page = Document("p", "Blau syndrome", "p.txt", text, "", "en")

    def quote(sentence: str) -> Quote:
        start = text.index(sentence)
        return Quote(1, "p", "Blau syndrome", "S", start, start + len(sentence), sentence)

    rare = quote("Blau syndrome appears to be uncommon;")
    fraction = quote("It affects about 1 in 50,000 people.")
    families = quote("About 50 families are known.")
    bare = quote("Type 2 disease was described in 2008.")
    topic = quote("本研究探讨了2型患病率的影响因素。")
    prevalence = analyse_text("Blau综合征的发病率是多少？")
    assert prevalence.asks_rate and prevalence.asks_frequency
    assert MissingRate().check(prevalence, [], draft(rare)) is None  # says how often in words
    assert MissingRate().check(prevalence, [], draft(fraction)) is None  # a fraction in words
    assert MissingRate().check(prevalence, [], draft(families)) is None  # a count of people or cases
    # A bare number, a study's sample, or the asked word itself, states no rate.
    assert MissingRate().check(prevalence, [], draft(bare)).code == "missing_rate"
    sample = Quote(1, "q", "Q", "S", 0, 12, "本研究纳入120例患者。")
    assert MissingRate().check(prevalence, [], draft(sample)).code == "missing_rate"
    assert MissingRate().check(prevalence, [], draft(topic)).code == "missing_rate"
    # A rate of another kind is answered by a fraction, not by how rare something is nor a count.
    response = analyse_text("Blau综合征的缓解率是多少？")
    assert response.asks_rate and not response.asks_frequency
    assert MissingRate().check(response, [], draft(rare)).code == "missing_rate"
    assert MissingRate().check(response, [], draft(families)).code == "missing_rate"
    assert MissingRate().check(response, [], draft(fraction)) is None
    assert all(page.text[q.start : q.end] == q.text for q in (rare, fraction, families, bare, topic))


def _said(text: str) -> Quote:
    return Quote(1, "d", "T", "S", 0, len(text), text)


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("How long did each focus group session last?", ("duration", "length")),
        ("What was the mean age of the patients?", ("age",)),
        ("At what age does the overgrowth usually become apparent?", ("age",)),
        ("患者的平均年龄是多少岁？", ("age",)),
        ("How much does a retrievable filter cost per patient?", ("money",)),
        ("How tall is the tower?", ("length",)),
        # "length" and 多长 ask for a time or a length, as "how long" does.
        ("What is the maximum length of stay on a working holiday visa?", ("duration", "length")),
        ("What was the length of follow-up?", ("duration", "length")),
        ("疗程多长？", ("duration", "length")),
        ("潜伏期有多长？", ("duration", "length")),
        ("What was the mean birth weight?", ("weight",)),
        ("How many square kilometres does the park cover?", ("area",)),
        ("内科住院患者的平均住院日是多少天？", ("duration",)),
        ("雌狸大约有多长？", ("duration", "length")),
        ("这项手术的费用是多少？", ("money",)),
        ("涞滩镇的面积是多少平方公里？", ("area",)),
        ("What daily dose of zinc is used for maintenance?", ("dose",)),
        ("泊马度胺治疗 POEMS 综合征的常用剂量是多少？", ("dose",)),
        # "low-dose" and 小剂量 name a regimen, they ask for no dose; nor does a dose-response question.
        ("How many patients completed the low-dose lenalidomide study?", ()),
        ("小剂量来那度胺治疗的前瞻性研究中有多少患者完成了疗程？", ()),
        ("What dose-response relation was found?", ()),
        ("What is the recommended loading dose of vancomycin?", ("dose",)),
        # Doses named, not asked for: adjustments, a missed dose, vaccine doses given.
        ("What dose adjustments are needed in renal impairment?", ()),
        ("What if a dose is missed?", ()),
        ("What vaccine doses are given at birth?", ()),
        # 多 inside 很多, 许多, 较多 and 多重 as "multiple" ask for nothing; neither do "near" years.
        ("多重耐药菌感染的危险因素有哪些？", ()),
        ("复发的可能性有多高？", ()),  # 多高 asks for a level or a risk as often as a height
        ("有多少年轻人患有高血压？", ()),
        ("多长时间复查一次？", ()),
        ("What is the recommended dose?", ("dose",)),
        ("为什么许多深静脉血栓患者没有症状？", ()),
        ("很多长期吸烟者会出现什么问题？", ()),
        ("近几年肺癌治疗有哪些进展？", ()),
        ("术后多久复查一次？", ()),  # how often, answered by 每年
        ("多少年来这种病一直难以治愈吗？", ()),
        ("How long ago was insulin discovered?", ()),
        ("What was the mean weight loss?", ()),
        ("What is the molecular weight of the protein?", ()),
        ("How far has the cancer spread?", ()),
        ("By how much might the labour needed to weave a given quantity of yarn have fallen?", ()),
        # Not measures: a rate (the rate is the answer type), a year, a count, a yes/no question, and
        # a word that only holds a unit word (cost-effectiveness, 青少年).
        ("How long is the median survival rate?", ()),
        ("大曲车站设站于几几年？", ()),
        ("How many patients were enrolled?", ()),
        ("Does the programme last long?", ()),
        ("What is the cost-effectiveness of screening?", ()),
        ("青少年型Batten病的发病率是多少？", ()),
        ("有关于青少年性健康的信息吗？", ()),
    ],
)
def test_the_measure_a_question_asks_for(question, kinds):
    assert analyse_text(question).asks_measure == kinds


def test_a_measure_asked_for_and_not_quoted_is_refused():
    rule = MissingMeasure()
    session = analyse_text("How long did each focus group session last?")
    topic = _said("Focus groups were conducted with fifteen participants in June 2010.")
    refusal = rule.check(session, [], draft(topic))
    assert refusal.code == "missing_measure" and "duration or length" in refusal.note
    assert "unit" in refusal_message(refusal, "en") and "单位" in refusal_message(refusal, "zh")
    # A number with a unit of the kind answers it, in words or digits, in either language's units.
    for text in ("Each session lasted approximately one hour.", "Sessions lasted 45 min.", "每次约 1 小时。"):
        assert rule.check(session, [], draft(topic, _said(text))) is None
    # Chinese papers write Latin units: "3 d" states a duration for a Chinese question.
    stay = analyse_text("患者的平均住院日是多少天？")
    assert rule.check(stay, [], draft(_said("平均住院 3 d。"))) is None
    assert rule.check(stay, [], draft(_said("共纳入 1015 例患者。"))).code == "missing_measure"
    # A price needs money, not any number; an age "aged 63" or "45-year-old" as well as "63 years".
    cost = analyse_text("How much does a filter cost per patient?")
    assert (
        rule.check(cost, [], draft(_said("Filters were placed in 212 patients."))).code == "missing_measure"
    )
    assert rule.check(cost, [], draft(_said("Each filter cost $1,200."))) is None
    dose = analyse_text("What starting dose of everolimus was used?")
    assert rule.check(dose, [], draft(_said("给予依维莫司5~10mg/d。"))) is None  # digits touch the unit
    assert rule.check(dose, [], draft(_said("Everolimus was given to 5 patients."))).code == "missing_measure"
    # How often it is taken answers it too: "twice daily", 每日两次; Gy is a dose of radiation.
    for text in ("Given 3 times daily.", "1次/d 口服。", "每晚1次。", "Patients received 78 Gy."):
        assert rule.check(dose, [], draft(_said(text))) is None, text
    assert rule.check(dose, [], draft(_said("The recommended dose is one tablet twice daily."))) is None
    assert rule.check(dose, [], draft(_said("推荐剂量为每日两次。"))) is None
    age = analyse_text("What was the mean age of the patients?")
    for text in ("Patients were aged 63 on average.", "A 45-year-old man.", "Mean (SD) age, 58.2 (9.1)."):
        assert rule.check(age, [], draft(_said(text))) is None
    # An age is no duration: "age 45" answers no waiting time.
    # A date is no age: 年 and 月 state a duration, only 岁 (or 个月大) an age.
    assert rule.check(
        analyse_text("患者的平均年龄是多少岁？"), [], draft(_said("2013年11月收治5例。"))
    ).code == ("missing_measure")
    # A lifespan asked in years is often answered as an age: 活到20岁 states a time.
    assert (
        rule.check(analyse_text("马岛獴最长能活多少年？"), [], draft(_said("圈养下可以活到20岁。"))) is None
    )
    wait = analyse_text("What was the mean waiting time?")
    assert rule.check(wait, [], draft(_said("Patients of age 45 waited."))).code == "missing_measure"
    # A Latin unit ends where its letters do, also before a Han character; brackets, fractions and
    # number words up to ninety count.
    for text in (
        "4例患者用药1~5d即可获得缓解。",
        "住院时间(12.5±3.2)d。",
        "It took 1½ hours.",
        "For eighteen months.",
    ):
        assert rule.check(session, [], draft(_said(text))) is None, text
    # An age in words: a decade or a stage of life.
    for text in (
        "It usually starts in a person's thirties.",
        "It begins in early childhood.",
        "多见于中年人。",
    ):
        assert rule.check(age, [], draft(_said(text))) is None, text
    # "over 50%" and "managed 3" state no age.
    for text in ("Over 50% of patients improved.", "Staff managed 3 clinics."):
        assert rule.check(age, [], draft(_said(text))).code == "missing_measure", text
    # Units are matched whole at their end: "3 in 10" is no length, "5 mg" no metres.
    far = analyse_text("How far is the clinic from the village?")
    for text in ("3 in 10 patients walked.", "They took 5 mg.", "Staff managed 3 clinics."):
        assert rule.check(far, [], draft(_said(text))).code == "missing_measure"
    # A question asking for no measure is never refused by it, and no draft means nothing to judge.
    assert rule.check(analyse_text("What did the patients say?"), [], draft(topic)) is None
    assert rule.check(session, [], None) is None

"""Evaluation harness against hand-computed numbers, with a scripted fake pipeline (no model, no index)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from rag.evaluate.gold import GoldItem
from rag.evaluate.report import TEXT_FAILURES, render_markdown, render_table, report_json, write_outputs
from rag.evaluate.runner import EvalError, answer_framing, load_eval_gold, run_eval
from rag.types import Answer, Chunk, Document, Hit, Quote

# ---- a tiny bilingual corpus: one Chinese and one English paper, four chunks each ----------------

ZH_PARTS = [
    "特鲁索综合征是一种与癌症相关的血栓形成综合征。",
    "抗凝治疗首选低分子肝素。",
    "华法林也可用于口服抗凝治疗。",
    "组织因子是重要的促凝物质。",
]
EN_PARTS = [
    "Everolimus is an mTOR inhibitor used for advanced angiosarcoma.",
    "Four of five patients had a partial response.",
    "Oral ulcers were the main adverse event.",
    "Surgery is the main treatment for localised disease.",
]


def make_doc(doc_id: str, lang: str, parts: list[str], prefix: str) -> tuple[Document, list[Chunk]]:
    """A document whose chunks are `parts`, with offsets computed from the joined text."""
    text = "\n".join(parts)
    chunks, start = [], 0
    for i, part in enumerate(parts, start=1):
        chunks.append(
            Chunk(f"{prefix}{i}", doc_id, doc_id, f"Section {i}", start, start + len(part), part, lang)
        )
        start += len(part) + 1
    return Document(doc_id, doc_id, f"{doc_id}.txt", text, "sha", lang), chunks


ZH_DOC, ZH_CHUNKS = make_doc("zh-vte", "zh", ZH_PARTS, "zh")
EN_DOC, EN_CHUNKS = make_doc("en-angio", "en", EN_PARTS, "en")
CHUNKS = {c.id: c for c in ZH_CHUNKS + EN_CHUNKS}


def quote(n: int, chunk_id: str, shift: int = 0, length: int | None = None) -> Quote:
    """A quote of a chunk's text; `shift` moves the offsets (not the text) to fake an offset bug."""
    c = CHUNKS[chunk_id]
    text = c.text if length is None else c.text[:length]
    return Quote(n, c.doc_id, c.title, c.section, c.start + shift, c.start + shift + len(text), text)


def hits(*chunk_ids: str) -> tuple[Hit, ...]:
    return tuple(Hit(CHUNKS[c], score=1.0 - 0.1 * i, rank=i + 1) for i, c in enumerate(chunk_ids))


class FakePipeline:
    """Scripted `Pipeline`: rankings per (question, mode) and one Answer per question."""

    def __init__(self, rankings: dict[tuple[str, str], list[str]], answers: dict[str, Answer]) -> None:
        self.documents = {ZH_DOC.doc_id: ZH_DOC, EN_DOC.doc_id: EN_DOC}
        self.chunks = list(CHUNKS.values())
        self.rankings = rankings
        self.answers = answers
        self.asked: list[tuple[str, int | None]] = []

    def retrieve(self, question: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        return list(hits(*self.rankings[(question, mode)][:k]))

    def ask(self, question: str, k: int | None = None, mode: str = "hybrid") -> Answer:
        self.asked.append((question, k))
        return self.answers[question]

    def status(self) -> dict:
        return {"index_dir": "fake", "model": "fake-model", "documents": 2, "chunks": 8, "built_at": "today"}


def item(id: str, question: str, lang: str, answerable: bool, evidence=(), answer=()) -> GoldItem:
    return GoldItem(id, question, lang, answerable, tuple(evidence), tuple(answer))


# q1 zh->zh, relevant at rank 1; q2 en->en, relevant at rank 3 (2 relevant chunks in the index);
# q3 en->zh, never relevant in the top 5; q4 unanswerable, correctly abstained.
Q1 = item("q1", "特鲁索综合征首选什么抗凝药物？", "zh", True, ["首选低分子肝素"], ["低分子肝素"])
Q2 = item(
    "q2",
    "What response did patients have?",
    "en",
    True,
    ["partial response", "Oral ulcers were"],
    ["partial response"],
)
Q3 = item(
    "q3",
    "What is the first-line anticoagulant?",
    "en",
    True,
    ["首选低分子肝素"],
    ["low molecular weight heparin", "低分子肝素"],
)
Q4 = item("q4", "POEMS综合征用什么治疗？", "zh", False)
GOLD = [Q1, Q2, Q3, Q4]

RANKINGS = {
    (Q1.question, "dense"): ["zh2", "zh1", "zh3"],
    (Q1.question, "bm25"): ["zh1", "zh2", "zh3"],
    (Q1.question, "hybrid"): ["zh2", "zh1"],
    (Q2.question, "dense"): ["en1", "zh1", "en2"],
    (Q2.question, "bm25"): ["en2", "en1"],
    (Q2.question, "hybrid"): ["en1", "en4", "en2"],
    (Q3.question, "dense"): ["en4", "en1", "zh1"],
    (Q3.question, "bm25"): ["en4"],
    (Q3.question, "hybrid"): ["en4", "en1", "zh1", "zh3", "zh4", "en2", "zh2"],  # relevant at 7
    (Q4.question, "dense"): ["zh4"],
    (Q4.question, "bm25"): ["zh4"],
    (Q4.question, "hybrid"): ["zh4"],
}


def answers() -> dict[str, Answer]:
    q1_quote = quote(1, "zh2")
    # q2's quote text is right but its offsets are one character off: a quote-verification bug.
    # It still lies inside relevant chunk en2's span, so it supports the answer.
    q2_quote = quote(1, "en2", shift=1, length=len("Four of five patients"))
    q3_quote = quote(1, "en4")
    return {
        Q1.question: Answer(
            Q1.question,
            "zh",
            False,
            f"首选低分子肝素：「{q1_quote.text}」[1]",
            (q1_quote,),
            hits("zh2", "zh1", "zh3"),
        ),
        Q2.question: Answer(
            Q2.question,
            "en",
            False,
            "Patients had a partial response [1].",
            (q2_quote,),
            hits("en1", "en4", "en2"),
        ),
        # Wrong answer, framed in Chinese for an English question, citing an irrelevant chunk.
        Q3.question: Answer(
            Q3.question,
            "en",
            False,
            f"手术是主要治疗方法 {q3_quote.text} [1]",
            (q3_quote,),
            hits("en4", "en1", "en3"),
        ),
        Q4.question: Answer(Q4.question, "zh", True, "文档中未找到答案。", (), hits("zh4")),
    }


def fake(**answer_changes: Answer) -> FakePipeline:
    return FakePipeline(RANKINGS, {**answers(), **answer_changes})


@pytest.fixture(scope="module")
def report():
    return run_eval(fake(), GOLD, index_load_ms=12.5)


def approx(block: dict, expected: dict) -> None:
    for key, value in expected.items():
        assert block[key] == pytest.approx(value), key


NDCG_RANK2 = 1 / math.log2(3)  # one relevant item in the index, found at rank 2
NDCG_Q2_RANK3 = (1 / math.log2(4)) / (1 + 1 / math.log2(3))  # 2 relevant in the index, 1 found at rank 3
NDCG_Q2_RANK1 = 1 / (1 + 1 / math.log2(3))


# ---- retrieval ----------------------------------------------------------------------------------


def test_dense_numbers_overall_by_language_and_direction(report):
    dense = report.retrieval["dense"]
    approx(
        dense,
        {
            "recall@1": 1 / 3,
            "recall@5": 2 / 3,
            "recall@10": 2 / 3,
            "mrr@10": 4 / 9,
            "ndcg@10": (1 + NDCG_Q2_RANK3) / 3,
        },
    )
    approx(dense["by_lang"]["zh"], {"recall@1": 1.0, "recall@5": 1.0, "mrr@10": 1.0, "ndcg@10": 1.0})
    approx(
        dense["by_lang"]["en"],
        {"recall@1": 0.0, "recall@5": 0.5, "recall@10": 0.5, "mrr@10": 1 / 6, "ndcg@10": NDCG_Q2_RANK3 / 2},
    )
    by_dir = dense["by_direction"]
    assert list(by_dir) == ["zh->zh", "en->zh", "en->en"]
    assert [v["n"] for v in by_dir.values()] == [1, 1, 1]
    approx(by_dir["en->zh"], {"recall@10": 0.0, "mrr@10": 0.0})
    approx(by_dir["en->en"], {"recall@5": 1.0, "mrr@10": 1 / 3})


def test_bm25_and_hybrid_are_scored_on_their_own_rankings(report):
    approx(
        report.retrieval["bm25"],
        {
            "recall@1": 1 / 3,
            "recall@5": 2 / 3,
            "recall@10": 2 / 3,
            "mrr@10": 0.5,
            "ndcg@10": (NDCG_RANK2 + NDCG_Q2_RANK1) / 3,
        },
    )
    # hybrid finds q3's evidence at rank 7: inside @10, outside @5.
    approx(
        report.retrieval["hybrid"],
        {
            "recall@1": 1 / 3,
            "recall@5": 2 / 3,
            "recall@10": 1.0,
            "mrr@10": (1 + 1 / 3 + 1 / 7) / 3,
            "ndcg@10": (1 + NDCG_Q2_RANK3 + 1 / 3) / 3,
        },
    )


def test_pipeline_row_uses_the_hits_ask_returned(report):
    approx(
        report.retrieval["pipeline"],
        {"recall@1": 1 / 3, "recall@5": 2 / 3, "recall@10": 2 / 3, "mrr@10": 4 / 9},
    )
    assert report.rows == ("dense", "bm25", "hybrid", "pipeline")


def test_ask_runs_with_its_own_default_depth_unless_ask_k_given():
    p = fake()
    run_eval(p, GOLD)
    assert {k for _, k in p.asked} == {None}
    p = fake()
    run_eval(p, GOLD, ask_k=3)
    assert {k for _, k in p.asked} == {3}


def test_direction_counts_both_languages_and_missing_evidence():
    mixed = item("m", "What causes thrombosis?", "en", True, ["促凝物质", "partial response"], ["x"])
    missing = item("x", "什么是 ABC？", "zh", True, ["this phrase is nowhere"], ["x"])
    rankings = {(q.question, "dense"): ["zh4"] for q in (mixed, missing)}
    answer = Answer("", "en", True, "Not found.")
    p = FakePipeline(rankings, {mixed.question: answer, missing.question: answer})
    rep = run_eval(p, [mixed, missing], modes=("dense",))
    assert [r.direction for r in rep.results] == ["en->zh+en", "zh->none"]
    assert [r.n_relevant for r in rep.results] == [2, 0]
    assert "no indexed chunk holds the evidence" in rep.failures[1]["reasons"][0]


# ---- answers ------------------------------------------------------------------------------------


def test_answer_hit_rate(report):
    assert report.answer["hit_rate"] == pytest.approx(2 / 3)
    assert report.answer_counts["hit_rate"] == (2, 3)


def test_quote_verification_detects_a_wrong_offset(report):
    assert report.answer["quote_verified"] == pytest.approx(2 / 3)
    [bad] = report.quote_failures
    assert (bad.question_id, bad.doc_id, bad.quoted) == ("q2", "en-angio", "Four of five patients")
    assert "our of five patients" in bad.problem  # the stored text at the shifted offsets
    q2 = next(f for f in report.failures if f["id"] == "q2")
    assert q2["reasons"] == [f"quote [1] does not match the document: {bad.problem}"]


def test_quote_of_unknown_document_or_out_of_range_offsets_fails():
    ghost = replace(quote(1, "zh2"), doc_id="gone")
    negative = replace(quote(2, "zh2"), start=-len("低分子肝素。"), end=len(ZH_DOC.text))  # slice would match
    negative = replace(negative, text=ZH_DOC.text[negative.start :])
    a = replace(answers()[Q1.question], quotes=(ghost, negative))
    rep = run_eval(fake(**{Q1.question: a}), GOLD)
    problems = [q.problem for q in rep.quote_failures if q.question_id == "q1"]
    assert problems[0] == "document 'gone' is not in the index"
    assert problems[1].startswith("offsets -6:")


def test_citation_support(report):
    # q1 quotes the evidence, q2 quotes inside relevant chunk en2, q3 quotes an irrelevant chunk.
    assert report.answer["citation_support"] == pytest.approx(2 / 3)
    assert report.answer_counts["citation_support"] == (2, 3)


def test_citation_support_skips_abstentions_and_needs_a_relevant_span():
    in_other_chunk = quote(1, "zh1")  # same document as the evidence, but not the relevant chunk
    a1 = replace(answers()[Q1.question], quotes=(in_other_chunk,))
    a3 = Answer(Q3.question, "en", True, "The documents do not answer this.")
    rep = run_eval(fake(**{Q1.question: a1, Q3.question: a3}), GOLD)
    assert rep.answer_counts["citation_support"] == (1, 2)  # q2 only; q3 abstained


def test_a_quote_supports_when_one_of_its_sentences_lies_in_a_relevant_chunk():
    from rag.evaluate.runner import _quote_supports

    text = "组织因子启动凝血。其次抗凝系统改变。另一项研究纳入患者。"
    relevant = [Chunk("c1", "d", "d", "S", 0, text.index("其次"), "组织因子启动凝血。", "zh")]
    gold = item("q", "什么启动凝血？", "zh", True, ["evidence phrase not quoted"], ["组织因子"])

    def q(start: int, end: int) -> Quote:
        return Quote(1, "d", "d", "S", start, end, text[start:end])

    # Two neighbouring sentences quoted as one passage run past the chunk's end: still the passage.
    assert _quote_supports(q(0, text.index("另一项")), gold, relevant)
    assert not _quote_supports(q(text.index("其次"), len(text)), gold, relevant)
    assert not _quote_supports(replace(q(0, text.index("其次")), doc_id="other"), gold, relevant)


def test_abstention_scores(report):
    assert report.answer["abstention"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    wrongly = Answer(Q3.question, "en", True, "The documents do not answer this.")
    rep = run_eval(fake(**{Q3.question: wrongly}), GOLD)
    approx(rep.answer["abstention"], {"precision": 0.5, "recall": 1.0, "f1": 2 / 3})
    assert (
        "abstained on an answerable question" in next(f for f in rep.failures if f["id"] == "q3")["reasons"]
    )
    answered = Answer(Q4.question, "zh", False, "用来那度胺。")
    rep = run_eval(fake(**{Q4.question: answered}), GOLD)
    approx(rep.answer["abstention"], {"precision": 0.0, "recall": 0.0, "f1": 0.0})
    assert next(f for f in rep.failures if f["id"] == "q4")["reasons"] == [
        "answered an unanswerable question"
    ]


def test_answer_language_rate(report):
    # q3 is an English question answered with Chinese framing; the rest match.
    assert report.answer["answer_lang"] == pytest.approx(3 / 4)
    assert [r.lang_ok for r in report.results] == [True, True, False, True]


def test_answer_made_only_of_quotes_counts_as_wrong_language():
    q = quote(1, "zh2")
    a = Answer(Q1.question, "zh", False, f"「{q.text}」[1]", (q,), hits("zh2"))
    assert answer_framing(a) == "「 」[1]"
    rep = run_eval(fake(**{Q1.question: a}), GOLD)
    assert rep.results[0].lang_ok is False


# ---- latency and failures -------------------------------------------------------------------------


def test_latency(report):
    lat = report.latency_ms
    assert lat["index_load"] == 12.5
    assert 0 <= lat["ask"]["p50"] <= lat["ask"]["p95"]
    assert set(lat["retrieve"]) == {"dense", "bm25", "hybrid"}


def test_failures_list_the_evidence_top_hits_and_answer(report):
    assert [f["id"] for f in report.failures] == ["q2", "q3"]
    q3 = report.failures[1]
    assert q3["reasons"] == [
        "no relevant passage in the top 5",
        "answer holds none of the accepted answer strings",
    ]
    assert q3["evidence"] == ["首选低分子肝素"]
    assert [(h["rank"], h["doc_id"]) for h in q3["top"]] == [
        (1, "en-angio"),
        (2, "en-angio"),
        (3, "en-angio"),
    ]
    assert q3["top"][0]["section"] == "Section 4" and q3["top"][0]["score"] == pytest.approx(1.0)
    assert all(len(h["text"]) <= 80 for h in q3["top"])
    assert q3["answer"].startswith("手术是主要治疗方法")


# ---- outputs ------------------------------------------------------------------------------------


RETRIEVAL_KEYS = {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"}


def test_report_json_keys(report):
    js = report_json(report)
    assert set(js) == {
        "n",
        "n_answerable",
        "n_unanswerable",
        "retrieval",
        "answer",
        "latency_ms",
        "modes",
        "failures",
        "refusals_by_rule",
        "calibration",
    }
    assert (js["n"], js["n_answerable"], js["n_unanswerable"]) == (4, 3, 1)
    # Every abstention is counted under the rule that refused it (a fake's, with no rule: "other").
    refused = sum(n["answerable"] + n["unanswerable"] for n in js["refusals_by_rule"].values())
    assert refused == sum(r.answer.abstained for r in report.results)
    assert set(js["retrieval"]) == RETRIEVAL_KEYS | {"by_lang", "by_direction"}
    assert set(js["retrieval"]["by_lang"]) == {"zh", "en"}
    assert all(set(v) == RETRIEVAL_KEYS for v in js["retrieval"]["by_lang"].values())
    assert set(js["answer"]) == {
        "hit_rate",
        "quote_verified",
        "citation_support",
        "abstention",
        "answer_lang",
    }
    assert set(js["answer"]["abstention"]) == {"precision", "recall", "f1"}
    assert set(js["latency_ms"]) == {"p50", "p95", "index_load"}
    assert list(js["modes"]) == ["dense", "bm25", "hybrid", "pipeline"]
    assert all(set(m) == set(js["retrieval"]) for m in js["modes"].values())
    # The top-level retrieval is the default pipeline's; values are rounded to 4 places.
    assert js["retrieval"] == js["modes"]["pipeline"]
    assert js["modes"]["hybrid"]["mrr@10"] == round((1 + 1 / 3 + 1 / 7) / 3, 4)
    assert js["answer"]["hit_rate"] == 0.6667
    json.dumps(js, allow_nan=False)


def test_undefined_metrics_are_null():
    js = report_json(run_eval(fake(), [Q4]))  # no answerable question: no retrieval score, no hit rate
    assert js["retrieval"]["recall@1"] is None and js["retrieval"]["by_lang"]["en"]["mrr@10"] is None
    assert js["answer"]["hit_rate"] is None and js["answer"]["quote_verified"] is None
    assert js["latency_ms"]["index_load"] is None


def test_render_table(report):
    text = render_table(report)
    for row in (
        "dense",
        "bm25",
        "hybrid",
        "pipeline",
        "R@1",
        "nDCG@10",
        "abstention P / R / F1",
        "retrieve bm25",
    ):
        assert row in text
    assert "QUOTE MISMATCHES" in text and "Failures: 2" in text


def test_render_table_truncates_failures():
    many = [item(f"u{i}", f"Unanswerable question {i}?", "en", False) for i in range(TEXT_FAILURES + 5)]
    rankings = {(q.question, "dense"): ["en1"] for q in many}
    p = FakePipeline(
        rankings, {q.question: Answer(q.question, "en", False, "It is everolimus.") for q in many}
    )
    rep = run_eval(p, many, modes=("dense",))
    text = render_table(rep)
    assert f"Failures: {TEXT_FAILURES + 5} (first {TEXT_FAILURES} shown)" in text
    assert "u29 " in text and "u30 " not in text
    assert "u34 " in render_markdown(rep)


def test_write_outputs(tmp_path, report):
    paths = write_outputs(report, tmp_path / "out")
    assert [p.name for p in paths] == ["report.md", "metrics.json", "recall.png"]
    assert (tmp_path / "out" / "recall.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8")) == report_json(report)
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "## Retrieval by direction" in md and "| en->zh | dense | 1 |" in md
    assert "| zh | pipeline | 1 | 1.000 |" in md
    assert "What is the first-line anticoagulant?" in md


# ---- errors -------------------------------------------------------------------------------------


def test_empty_gold_is_an_error(tmp_path):
    with pytest.raises(EvalError, match="has no questions"):
        run_eval(fake(), [])
    empty = tmp_path / "gold.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(EvalError, match=r"gold\.jsonl has no questions"):
        load_eval_gold(empty)


def test_bad_modes_are_errors():
    with pytest.raises(EvalError, match="'pipeline' is always evaluated"):
        run_eval(fake(), GOLD, modes=("dense", "pipeline"))
    with pytest.raises(EvalError, match="repeat a mode"):
        run_eval(fake(), GOLD, modes=("dense", "dense"))


class Strict(FakePipeline):
    """Rejects unknown modes, as the real pipeline does."""

    def retrieve(self, question: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        if mode not in ("dense", "bm25", "hybrid"):
            raise ValueError(f"unknown mode {mode!r}")
        return super().retrieve(question, k, mode)


def test_pipeline_errors_name_the_question():
    with pytest.raises(EvalError, match=r"question 'q1' \(mode 'sparse'\)"):
        run_eval(Strict(RANKINGS, answers()), GOLD, modes=("sparse",))

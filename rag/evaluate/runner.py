"""Evaluation harness: run gold questions through a pipeline and score retrieval, answers and latency.

Scoring rules (the metric functions themselves live in `rag.evaluate.metrics`):

* A retrieved chunk is relevant when its text holds any of the question's evidence phrases
  (`rag.evaluate.gold.contains_any`). Retrieval is scored on answerable questions only.
* Rows: every retrieval mode asked for (`pipeline.retrieve(q, k, mode)`) plus "pipeline", the
  hits that `pipeline.ask(q)` returned in `Answer.hits` (after any re-ranking), as the user sees them.
* nDCG's ideal ranking uses the number of relevant chunks in the whole index (`pipeline.chunks`).
* Direction ("en->zh", ...) is the question's language -> the languages (`Chunk.lang`) of the
  relevant chunks in the index. When relevant chunks exist in both languages the target is
  "zh+en" rather than the majority: such a question is no test of cross-lingual retrieval, and
  folding it into "en->zh" would flatter that row. No relevant chunk at all gives "->none".

Rendering (text table, markdown, JSON, chart) is in `rag.evaluate.report`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rag.evaluate.gold import LANGS, GoldItem, contains_any, load_gold, match_key
from rag.evaluate.metrics import abstention_prf, mean, mrr_at_k, ndcg_at_k, percentile, recall_at_k, relevance
from rag.ingest.sentences import sentence_spans
from rag.lang import detect_lang
from rag.types import Answer, Chunk, Document, Hit, Quote

PIPELINE = "pipeline"  # row name of the default pipeline, next to the retrieval modes
DEFAULT_MODES = ("dense", "bm25", "hybrid")
METRIC_KEYS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
FAILURE_DEPTH = 5  # an answerable question with no relevant hit in this many is a failure
DIRECTION_ORDER = ("zh->zh", "en->zh", "en->en", "zh->en")


class EvalError(ValueError):
    """The evaluation cannot run as asked; the message names the problem and the fix."""


class EvalPipeline(Protocol):
    """What the harness needs from `rag.pipeline.Pipeline` (tests pass a small fake)."""

    @property
    def documents(self) -> dict[str, Document]: ...

    @property
    def chunks(self) -> list[Chunk]: ...

    def retrieve(self, question: str, k: int = ..., mode: str = ...) -> list[Hit]: ...

    def ask(self, question: str, k: int = ..., mode: str = ...) -> Answer: ...

    def status(self) -> dict: ...


@dataclass(frozen=True)
class QuoteCheck:
    """A quote whose text is not the stored document text at its offsets (always a bug)."""

    question_id: str
    n: int
    doc_id: str
    start: int
    end: int
    quoted: str
    problem: str


@dataclass(frozen=True)
class QuestionResult:
    """Everything measured for one gold question; the report's aggregates are built from these."""

    item: GoldItem
    answer: Answer
    rankings: dict[str, tuple[Hit, ...]]  # row (mode or "pipeline") -> hits, best first
    rels: dict[str, tuple[bool, ...]]  # row -> relevance of each hit
    n_relevant: int  # relevant chunks in the whole index
    direction: str  # "en->zh", "zh->zh+en", "en->none"; "" for unanswerable questions
    answer_hit: bool | None  # None: unanswerable, or the gold lists no accepted answer
    cited: bool | None  # None: unanswerable, or abstained
    lang_ok: bool  # answer framed in the question's language
    n_quotes: int
    bad_quotes: tuple[QuoteCheck, ...]
    ask_ms: float
    retrieve_ms: dict[str, float]  # mode -> wall time of pipeline.retrieve


@dataclass(frozen=True)
class EvalReport:
    """Per-question results and the aggregates; all metric values unrounded, None when undefined."""

    k: int
    modes: tuple[str, ...]  # retrieval modes run (without "pipeline")
    results: tuple[QuestionResult, ...]
    retrieval: dict[str, dict[str, Any]]  # row -> {METRIC_KEYS..., "by_lang", "by_direction"}
    answer: dict[str, Any]  # hit_rate, quote_verified, citation_support, abstention{}, answer_lang
    refusals: dict[str, dict[str, int]]  # rule code -> {"answerable": n, "unanswerable": n} refused
    answer_counts: dict[str, tuple[int, int]]  # answer metric -> (numerator, denominator)
    latency_ms: dict[str, Any]  # {"ask": {"p50","p95"}, "retrieve": {mode: {...}}, "index_load"}
    failures: tuple[dict[str, Any], ...]
    quote_failures: tuple[QuoteCheck, ...]
    status: dict[str, Any]

    @property
    def rows(self) -> tuple[str, ...]:
        return (*self.modes, PIPELINE)

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def n_answerable(self) -> int:
        return sum(r.item.answerable for r in self.results)

    @property
    def n_unanswerable(self) -> int:
        return self.n - self.n_answerable

    def n_answerable_in(self, lang: str) -> int:
        return sum(r.item.answerable and r.item.lang == lang for r in self.results)


def load_eval_gold(path: str | Path) -> list[GoldItem]:
    """`load_gold`, refusing a file without questions (an empty file would score nothing)."""
    items = load_gold(path)
    if not items:
        raise EvalError(f"{path} has no questions; add one JSON object per line (see rag/evaluate/gold.py)")
    return items


def run_eval(
    pipeline: EvalPipeline,
    items: Sequence[GoldItem],
    modes: Sequence[str] = DEFAULT_MODES,
    k: int = 10,
    progress: bool = False,
    index_load_ms: float | None = None,
    ask_k: int | None = None,
) -> EvalReport:
    """Ask every gold question, retrieve it in every mode, and score the lot.

    `k` is the retrieval depth per mode (metrics @10 are over the top min(k, 10)); `ask_k` is passed
    to `pipeline.ask` when given, else `ask` runs with its own default depth.
    """
    modes = _check_args(items, modes, k)
    corpus = _CorpusRelevance(pipeline.chunks)
    _warm_up(pipeline, items[0], modes, k, ask_k)
    results = []
    for i, item in enumerate(items, start=1):
        if progress:
            print(f"eval {i}/{len(items)} {item.id}", file=sys.stderr, flush=True)
        results.append(_run_question(pipeline, corpus, item, modes, k, ask_k))
    return _build_report(results, modes, k, index_load_ms, pipeline.status())


def _check_args(items: Sequence[GoldItem], modes: Sequence[str], k: int) -> tuple[str, ...]:
    if not items:
        raise EvalError(
            "the gold set has no questions; pass at least one GoldItem (see rag/evaluate/gold.py)"
        )
    if isinstance(modes, str):  # "dense" would otherwise become the modes "d", "e", ...
        modes = (modes,)
    modes = tuple(modes)
    if PIPELINE in modes:
        raise EvalError(f"{PIPELINE!r} is always evaluated; list only retrieval modes, e.g. {DEFAULT_MODES}")
    if len(set(modes)) != len(modes):
        raise EvalError(f"modes {modes} repeat a mode; list each once")
    if k < 1:
        raise EvalError(f"k must be >= 1, got {k}")
    return modes


def _warm_up(
    pipeline: EvalPipeline, item: GoldItem, modes: tuple[str, ...], k: int, ask_k: int | None
) -> None:
    # The embedding model loads lazily on the first query; timing that call would put the model
    # load into p95. One untimed pass per mode and one ask absorb it.
    for mode in modes:
        _call(pipeline.retrieve, item.question, k, mode, item.id)
    _ask(pipeline, item.question, ask_k, item.id)


def _call(fn: Callable[..., Any], question: str, k: int, mode: str, item_id: str) -> Any:
    try:
        return fn(question, k=k, mode=mode)
    except ValueError as exc:  # QuestionError and unknown modes: name the gold item and mode
        raise EvalError(f"question {item_id!r} (mode {mode!r}): {exc}") from exc


def _ask(pipeline: EvalPipeline, question: str, ask_k: int | None, item_id: str) -> Answer:
    try:
        return pipeline.ask(question) if ask_k is None else pipeline.ask(question, k=ask_k)
    except ValueError as exc:
        raise EvalError(f"question {item_id!r}: {exc}") from exc


class _CorpusRelevance:
    """Which chunks of the whole index hold a question's evidence (same comparison as contains_any).

    Chunk texts are put through `match_key` once here; calling contains_any per chunk would
    normalise every chunk again for every question, which is slow at 10k chunks.
    """

    def __init__(self, chunks: Iterable[Chunk]) -> None:
        self._chunks = list(chunks)
        self._keys = [match_key(c.text) for c in self._chunks]
        self._cache: dict[tuple[str, ...], tuple[Chunk, ...]] = {}

    def relevant(self, evidence: tuple[str, ...]) -> tuple[Chunk, ...]:
        if evidence not in self._cache:  # paired zh/en questions share evidence
            phrases = [key for key in (match_key(p) for p in evidence) if key]
            self._cache[evidence] = tuple(
                c for c, key in zip(self._chunks, self._keys, strict=True) if any(p in key for p in phrases)
            )
        return self._cache[evidence]


def _run_question(
    pipeline: EvalPipeline,
    corpus: _CorpusRelevance,
    item: GoldItem,
    modes: tuple[str, ...],
    k: int,
    ask_k: int | None,
) -> QuestionResult:
    rankings: dict[str, tuple[Hit, ...]] = {}
    retrieve_ms: dict[str, float] = {}
    for mode in modes:
        t0 = time.perf_counter()
        rankings[mode] = tuple(_call(pipeline.retrieve, item.question, k, mode, item.id))
        retrieve_ms[mode] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    answer = _ask(pipeline, item.question, ask_k, item.id)
    ask_ms = (time.perf_counter() - t0) * 1000
    rankings[PIPELINE] = tuple(answer.hits)

    relevant = corpus.relevant(item.evidence) if item.answerable else ()
    bad_quotes = tuple(_check_quotes(item.id, answer, pipeline.documents))
    return QuestionResult(
        item=item,
        answer=answer,
        rankings=rankings,
        rels={
            row: tuple(relevance([h.chunk.text for h in hits], item.evidence))
            for row, hits in rankings.items()
        },
        n_relevant=len(relevant),
        direction=_direction(item.lang, relevant) if item.answerable else "",
        answer_hit=_answer_hit(item, answer),
        cited=_cited(item, answer, relevant),
        lang_ok=_framed_in(answer, item.lang),
        n_quotes=len(answer.quotes),
        bad_quotes=bad_quotes,
        ask_ms=ask_ms,
        retrieve_ms=retrieve_ms,
    )


def _direction(question_lang: str, relevant: Sequence[Chunk]) -> str:
    langs = {c.lang for c in relevant}
    order = {lang: i for i, lang in enumerate(LANGS)}
    target = "+".join(sorted(langs, key=lambda lang: (order.get(lang, len(order)), lang)))
    return f"{question_lang}->{target or 'none'}"


def _check_quotes(item_id: str, answer: Answer, documents: dict[str, Document]) -> list[QuoteCheck]:
    bad = []
    for q in answer.quotes:
        doc = documents.get(q.doc_id)
        if doc is not None and q.matches(doc.text):
            continue
        # Explain the failure the shared check found.
        if doc is None:
            problem = f"document {q.doc_id!r} is not in the index"
        elif not 0 <= q.start < q.end <= len(doc.text):
            problem = f"offsets {q.start}:{q.end} are outside the document (length {len(doc.text)})"
        else:
            problem = f"stored text at {q.start}:{q.end} is {doc.text[q.start : q.end][:80]!r}"
        bad.append(QuoteCheck(item_id, q.n, q.doc_id, q.start, q.end, q.text, problem))
    return bad


def answer_text(answer: Answer) -> str:
    """The text an answer hit is judged on: the answer plus its quotes."""
    return "\n".join([answer.answer, *(q.text for q in answer.quotes)])


def _answer_hit(item: GoldItem, answer: Answer) -> bool | None:
    if not item.answerable or not item.answer:
        return None  # nothing to score: the gold gives no accepted answer string
    # An abstention message that happens to echo a term ("no data on LMWH") is still no answer.
    return not answer.abstained and contains_any(answer_text(answer), item.answer)


def _cited(item: GoldItem, answer: Answer, relevant: Sequence[Chunk]) -> bool | None:
    if not item.answerable or answer.abstained:
        return None
    return any(_quote_supports(q, item, relevant) for q in answer.quotes)


def _quote_supports(quote: Quote, item: GoldItem, relevant: Sequence[Chunk]) -> bool:
    if contains_any(quote.text, item.evidence):
        return True
    # A quote with a sentence inside a relevant chunk cites the right passage even when it is shorter
    # than the evidence phrase. Sentence by sentence: a quote of two neighbouring sentences may run
    # past the end of the chunk that holds the first (chunk boundaries fall inside paragraphs).
    spans = [(quote.start + s, quote.start + e) for s, e in sentence_spans(quote.text)]
    return any(c.doc_id == quote.doc_id and c.start <= s and e <= c.end for c in relevant for s, e in spans)


def answer_framing(answer: Answer) -> str:
    """The answer with its quotes' texts removed: the words the system wrote itself."""
    text = answer.answer
    # Longest first, so a quote that contains another is removed whole.
    for quote in sorted(answer.quotes, key=lambda q: len(q.text), reverse=True):
        if quote.text:
            text = text.replace(quote.text, " ")
    return text.strip()


def _framed_in(answer: Answer, lang: str) -> bool:
    framing = answer_framing(answer)
    # Brackets and citation marks alone ("「」[1]") are no framing; detect_lang would call them "en".
    if not any(ch.isalpha() for ch in framing):
        return False
    return detect_lang(framing) == lang


def _build_report(
    results: list[QuestionResult],
    modes: tuple[str, ...],
    k: int,
    index_load_ms: float | None,
    status: dict[str, Any],
) -> EvalReport:
    answerable = [r for r in results if r.item.answerable]
    answer, counts = _answer_metrics(results)
    quote_failures = tuple(q for r in results for q in r.bad_quotes)
    return EvalReport(
        k=k,
        modes=modes,
        results=tuple(results),
        retrieval={row: _retrieval_block(answerable, row) for row in (*modes, PIPELINE)},
        answer=answer,
        refusals=refusals_by_rule(results),
        answer_counts=counts,
        latency_ms=_latency(results, modes, index_load_ms),
        failures=tuple(f for f in (_failure(r) for r in results) if f is not None),
        quote_failures=quote_failures,
        status=dict(status),
    )


def question_scores(rels: Sequence[bool], n_relevant: int) -> dict[str, float]:
    """The five retrieval metrics of one ranked list."""
    top = list(rels[:10])
    # A hit list holding chunks the index no longer has (or one chunk twice) can show more relevant
    # items than the index count; ndcg_at_k refuses that, so cap the ideal at what was found.
    ideal = max(n_relevant, sum(top))
    return {
        "recall@1": recall_at_k(rels, 1),
        "recall@5": recall_at_k(rels, 5),
        "recall@10": recall_at_k(rels, 10),
        "mrr@10": mrr_at_k(rels, 10),
        "ndcg@10": ndcg_at_k(top, 10, ideal),
    }


def _mean_scores(scored: Sequence[dict[str, float]]) -> dict[str, float | None]:
    return {key: mean(s[key] for s in scored) for key in METRIC_KEYS}


def _retrieval_block(answerable: Sequence[QuestionResult], row: str) -> dict[str, Any]:
    scored = [(r, question_scores(r.rels[row], r.n_relevant)) for r in answerable]
    block: dict[str, Any] = _mean_scores([s for _, s in scored])
    block["by_lang"] = {lang: _mean_scores([s for r, s in scored if r.item.lang == lang]) for lang in LANGS}
    directions = sorted(
        {r.direction for r in answerable},
        key=lambda d: (DIRECTION_ORDER.index(d) if d in DIRECTION_ORDER else len(DIRECTION_ORDER), d),
    )
    block["by_direction"] = {}
    for d in directions:
        group = [s for r, s in scored if r.direction == d]
        block["by_direction"][d] = {"n": len(group), **_mean_scores(group)}
    return block


def _rate(flags: Sequence[bool]) -> tuple[float | None, tuple[int, int]]:
    return mean(1.0 if f else 0.0 for f in flags), (sum(flags), len(flags))


def _answer_metrics(results: Sequence[QuestionResult]) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    hit_rate, hit_n = _rate([r.answer_hit for r in results if r.answer_hit is not None])
    cited, cited_n = _rate([r.cited for r in results if r.cited is not None])
    lang_rate, lang_n = _rate([r.lang_ok for r in results])
    n_quotes = sum(r.n_quotes for r in results)
    n_bad = sum(len(r.bad_quotes) for r in results)
    verified = (n_quotes - n_bad) / n_quotes if n_quotes else None
    prf = abstention_prf([r.answer.abstained for r in results], [not r.item.answerable for r in results])
    answer = {
        "hit_rate": hit_rate,
        "quote_verified": verified,
        "citation_support": cited,
        "abstention": {"precision": prf.precision, "recall": prf.recall, "f1": prf.f1},
        "answer_lang": lang_rate,
    }
    counts = {
        "hit_rate": hit_n,
        "quote_verified": (n_quotes - n_bad, n_quotes),
        "citation_support": cited_n,
        "abstained": (sum(r.answer.abstained for r in results), len(results)),
        "abstention_due": (sum(not r.item.answerable for r in results), len(results)),
        "answer_lang": lang_n,
    }
    return answer, counts


def refusals_by_rule(results: Sequence[QuestionResult]) -> dict[str, dict[str, int]]:
    """How many questions each refusal rule refused, answerable and unanswerable, in rule order of
    first appearance; an abstention without a rule (an LLM's) counts as "other"."""
    out: dict[str, dict[str, int]] = {}
    for r in results:
        if r.answer.abstained:
            code = r.answer.refusal.code if r.answer.refusal is not None else "other"
            row = out.setdefault(code, {"answerable": 0, "unanswerable": 0})
            row["answerable" if r.item.answerable else "unanswerable"] += 1
    return out


def _p50_p95(values: Sequence[float]) -> dict[str, float | None]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95)}


def _latency(
    results: Sequence[QuestionResult], modes: tuple[str, ...], index_load_ms: float | None
) -> dict[str, Any]:
    return {
        "ask": _p50_p95([r.ask_ms for r in results]),
        "retrieve": {mode: _p50_p95([r.retrieve_ms[mode] for r in results]) for mode in modes},
        "index_load": index_load_ms,
    }


def _failure(r: QuestionResult) -> dict[str, Any] | None:
    reasons = _failure_reasons(r)
    if not reasons:
        return None
    item, answer = r.item, r.answer
    return {
        "id": item.id,
        "question": item.question,
        "lang": item.lang,
        "direction": r.direction,
        "reasons": reasons,
        "evidence": list(item.evidence),
        "expected_answer": list(item.answer),
        "n_relevant_in_index": r.n_relevant,
        "top": [
            {
                "rank": i,
                "doc_id": h.chunk.doc_id,
                "section": h.chunk.section,
                "page": h.chunk.page,
                "ocr": h.chunk.ocr,
                "text": h.chunk.text[:80],
                "score": float(h.score),
                "relevant": rel,
            }
            for i, (h, rel) in enumerate(
                zip(r.rankings[PIPELINE][:3], r.rels[PIPELINE][:3], strict=True), start=1
            )
        ],
        "quotes": [
            {"n": q.n, "doc_id": q.doc_id, "section": q.section, "page": q.page, "ocr": q.ocr}
            for q in answer.quotes
        ],
        "abstained": answer.abstained,
        "refused_by": answer.refusal.code if answer.refusal is not None else None,
        "refusal_note": answer.refusal.note if answer.refusal is not None else None,
        "answer": answer.answer[:150],
    }


def _failure_reasons(r: QuestionResult) -> list[str]:
    reasons = []
    if r.item.answerable:
        if r.n_relevant == 0:
            reasons.append("no indexed chunk holds the evidence (check the gold phrases or the index)")
        elif not any(r.rels[PIPELINE][:FAILURE_DEPTH]):
            reasons.append(f"no relevant passage in the top {FAILURE_DEPTH}")
        if r.answer.abstained:
            reasons.append("abstained on an answerable question")
        elif r.answer_hit is False:
            reasons.append("answer holds none of the accepted answer strings")
    elif not r.answer.abstained:
        reasons.append("answered an unanswerable question")
    reasons += [f"quote [{q.n}] does not match the document: {q.problem}" for q in r.bad_quotes]
    return reasons

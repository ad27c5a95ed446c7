"""Ablation of the answerer: each answer component switched off in turn, per question language.

    .venv/bin/python -m eval.answer_ablation [--gold eval/gold.jsonl] [--index index] [--out FILE]

Full `ask` on every gold question (about 30 s per variant). Answer hit rate and citation support are
scored as `rag eval` scores them; abstention on the unanswerable questions, with the thresholds in the
index's settings.json (calibrated with every component on, so switching one off is judged against
thresholds tuned without it).
"""

from __future__ import annotations

import contextlib
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace

import rag.answer.compose
import rag.answer.scoring
import rag.answer.signals
from eval.ablation import parse_args, write_table
from rag.evaluate.metrics import abstention_prf
from rag.evaluate.runner import _answer_hit, _cited, _CorpusRelevance, load_eval_gold
from rag.pipeline import Pipeline


@contextlib.contextmanager
def _patched(obj, name: str, value) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _no_signals(p: Pipeline):
    return _patched(p, "sentence_signals", None)


def _no_in_place(p: Pipeline):
    return _patched(rag.answer.signals, "CONTEXT_SHARE", 0.0)


def _no_quantity(p: Pipeline):
    return _patched(rag.answer.scoring, "QUANTITY_BONUS_Z", 0.0)


def _no_continuation(p: Pipeline):
    return _patched(rag.answer.compose, "with_continuation", lambda s, doc: s)


def _no_neighbours(p: Pipeline):
    return _patched(rag.answer.compose, "lift_neighbours", lambda scored, documents: list(scored))


def _no_unknown_names(p: Pipeline):
    return _patched(p, "answer_settings", replace(p.answer_settings, refuse_unknown_names=False))


def _no_drug_names(p: Pipeline):
    class _NoDrugs:
        def find_zh(self, question: str, common_word=None) -> list[str]:
            return []

        def find_en(self, question: str, english_words=None) -> list[str]:
            return []

    p.unknown_names("", "zh")  # build the checker, so that its drug test can be switched off
    return _patched(p._unknown_names, "_drugs", _NoDrugs())


def _no_unquoted_names(p: Pipeline):
    return _patched(p, "answer_settings", replace(p.answer_settings, refuse_unquoted_names=False))


def _no_name_checks(p: Pipeline):
    settings = replace(p.answer_settings, refuse_unknown_names=False, refuse_unquoted_names=False)
    return _patched(p, "answer_settings", settings)


def _no_parts(p: Pipeline):
    return _patched(p, "answer_settings", replace(p.answer_settings, part_chunks=0))


def _no_rate_check(p: Pipeline):
    return _patched(p, "answer_settings", replace(p.answer_settings, refuse_missing_rate=False))


def _no_abstention(p: Pipeline):
    return _patched(p, "abstain", {})


VARIANTS: list[tuple[str, Callable[[Pipeline], contextlib.AbstractContextManager] | None]] = [
    ("answerer (default)", None),
    ("- retrieval's signals for sentences (e5 on the question only + words)", _no_signals),
    ("- sentences read in place (section name and sentence before)", _no_in_place),
    ("- number bonus for quantity questions", _no_quantity),
    ("- joining a sentence that points back", _no_continuation),
    ("- lifting a strong match's neighbours", _no_neighbours),
    ("- a quote for each part of a question asking two things", _no_parts),
    ("- refusing drug names the papers never write (by ending and sound)", _no_drug_names),
    ("- refusing unknown names (drug names included)", _no_unknown_names),
    ("- refusing quotes that leave out a drug, disease or acronym the question names", _no_unquoted_names),
    ("- both name checks (unknown names, names left out of the quotes)", _no_name_checks),
    ("- refusing a rate question no quote answers", _no_rate_check),
    ("- calibrated thresholds (name and rate checks only)", _no_abstention),
]


def evaluate(pipeline: Pipeline, items) -> dict[str, float]:
    relevance = _CorpusRelevance(pipeline.chunks)
    hits: dict[str, list[bool]] = {"zh": [], "en": []}
    cited, refused, unanswerable, n_quotes = [], [], [], []
    for item in items:
        answer = pipeline.ask(item.question)
        refused.append(answer.abstained)
        unanswerable.append(not item.answerable)
        if (hit := _answer_hit(item, answer)) is not None:
            hits[item.lang].append(hit)
        if (c := _cited(item, answer, relevance.relevant(item.evidence))) is not None:
            cited.append(c)
        if not answer.abstained:
            n_quotes.append(len(answer.quotes))
    prf = abstention_prf(refused, unanswerable)
    return {
        "hit zh": statistics.mean(hits["zh"]),
        "hit en": statistics.mean(hits["en"]),
        "hit all": statistics.mean(hits["zh"] + hits["en"]),
        "citation": statistics.mean(cited),
        "abstention F1": prf.f1 or 0.0,
        "refused answerable": sum(r and not u for r, u in zip(refused, unanswerable, strict=True)),
        "quotes/answer": statistics.mean(n_quotes),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    items = load_eval_gold(args.gold)
    pipeline = Pipeline.load(args.index)
    cols = ["hit zh", "hit en", "hit all", "citation", "abstention F1", "refused answerable", "quotes/answer"]
    lines = [
        f"Answer ablation on {args.gold} ({len(items)} questions; full ask, extractive)",
        "",
        "| variant | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    print("\n".join(lines), flush=True)
    for name, switch in VARIANTS:
        with switch(pipeline) if switch else contextlib.nullcontext():
            m = evaluate(pipeline, items)
        cells = [f"{m[c]:.3f}" if isinstance(m[c], float) else str(m[c]) for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Ablation of the answerer: each answer component switched off in turn, per question language.

    .venv/bin/python -m eval.answer_ablation [--gold eval/gold.jsonl] [--index index] [--out FILE]

Full `ask` on every gold question (about 30 s per variant). Answer hit rate and citation support are
scored as `rag eval` scores them; abstention on the unanswerable questions, with the thresholds in the
index's settings.json (calibrated with every component on, so switching one off is judged against
thresholds tuned without it).
"""

from __future__ import annotations

import statistics
import sys

from eval.ablation import parse_args, write_table
from rag.evaluate.metrics import abstention_prf
from rag.evaluate.runner import _answer_hit, _cited, _CorpusRelevance, load_eval_gold
from rag.pipeline import Pipeline

# Each variant switches components off through the settings tree (`rag config` lists the knobs).
VARIANTS: list[tuple[str, dict[str, object]]] = [
    ("answerer (default)", {}),
    (
        "- retrieval's signals for sentences (e5 on the question only + words)",
        {"scoring.use_retrieval_signals": False},
    ),
    ("- sentences read in place (section name and sentence before)", {"scoring.context_share": 0.0}),
    ("+ the question without its document's title words (off by default)", {"scoring.focus_share": 0.5}),
    (
        "+ title words at half in the ranking, names read in place (off by default)",
        {"scoring.title_word_share": 0.5, "refusal.names_in_place": True},
    ),
    ("- number bonus for quantity questions", {"scoring.quantity_bonus_z": 0.0}),
    (
        "- how-often questions: the bonus only for frequency words and rates",
        {"scoring.frequency_number_share": 1.0},
    ),
    (
        "- measure questions: the bonus only for numbers with the unit asked for",
        {"scoring.measure_number_share": 1.0},
    ),
    ("- joining a sentence that points back", {"scoring.join_continuations": False}),
    ("- lifting a strong match's neighbours", {"scoring.lift_neighbours": False}),
    ("- a quote for each part of a question asking two things", {"answer.part_chunks": 0}),
    (
        "- refusing drug names the papers never write (by ending and sound)",
        {"refusal.unknown_drug_names": False},
    ),
    ("- refusing unknown names (drug names included)", {"refusal.unknown_names": False}),
    (
        "- refusing quotes that leave out a drug, disease or acronym the question names",
        {"refusal.unquoted_names": False},
    ),
    (
        "- both name checks (unknown names, names left out of the quotes)",
        {"refusal.unknown_names": False, "refusal.unquoted_names": False},
    ),
    ("- refusing a rate question no quote answers", {"refusal.missing_rate": False}),
    ("- refusing a measure question (time, age, dose…) no quote answers", {"refusal.missing_measure": False}),
    ("- calibrated thresholds (name and rate checks only)", {"refusal.evidence": False}),
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
    base = Pipeline.load(args.index)
    cols = ["hit zh", "hit en", "hit all", "citation", "abstention F1", "refused answerable", "quotes/answer"]
    lines = [
        f"Answer ablation on {args.gold} ({len(items)} questions; full ask, extractive)",
        "",
        "| variant | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    print("\n".join(lines), flush=True)
    for name, overrides in VARIANTS:
        # One model for every variant: only the settings differ.
        pipeline = Pipeline.load(args.index, embedder=base.embedder, overrides=overrides)
        m = evaluate(pipeline, items)
        cells = [f"{m[c]:.3f}" if isinstance(m[c], float) else str(m[c]) for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

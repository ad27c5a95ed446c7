"""Ablation of the hybrid retriever: each component switched off in turn, per question language.

    .venv/bin/python -m eval.ablation [--gold eval/gold.jsonl] [--index index] [--out eval/out/ablation.md]

Retrieval only (Recall@1/@5, MRR@10 on answerable questions), so it runs in about a minute.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from rag.evaluate.gold import contains_any, load_gold
from rag.evaluate.metrics import mrr_at_k, recall_at_k
from rag.pipeline import Pipeline
from rag.query.analysis import QueryAnalyser
from rag.retrieve.retriever import Retriever
from rag.settings import RetrievalSettings

BASE = RetrievalSettings()
VARIANTS: list[tuple[str, str, RetrievalSettings | None]] = [
    ("dense (e5 chunks only)", "dense", None),
    ("bm25 (question as typed)", "bm25", None),
    ("naive RRF of e5, USE, BM25", "hybrid", BASE.with_(fusion="rrf")),
    ("hybrid (default)", "hybrid", BASE),
    ("- per-language standardisation", "hybrid", BASE.with_(by_language=False)),
    ("- e5 chunk vectors", "hybrid", BASE.with_(w_chunk=0.0)),
    ("- e5 best sentence", "hybrid", BASE.with_(w_sentence=0.0)),
    ("- USE chunk vectors", "hybrid", BASE.with_(w_xl_chunk=0.0)),
    ("- USE best sentence", "hybrid", BASE.with_(w_xl_sentence=0.0)),
    ("- USE altogether", "hybrid", BASE.with_(w_xl_chunk=0.0, w_xl_sentence=0.0)),
    ("- BM25 for zh questions", "hybrid", BASE.with_(w_bm25_zh=0.0)),
    ("- BM25 for en questions", "hybrid", BASE.with_(w_bm25_en=0.0)),
    ("+ glossary expansion of the BM25 query", "hybrid", BASE.with_(glossary=True)),
    ("- induced lexicon (en)", "hybrid", BASE.with_(lexicon=False)),
    ("- induced words in the e5 query", "hybrid", BASE.with_(lexicon_dense=False)),
    ("- drug names carried into Chinese by sound (en)", "hybrid", BASE.with_(drug_names=False)),
    ("- induced English words (zh, over English papers)", "hybrid", BASE.with_(induce_english=False)),
]


class CachedQueries:
    """Remembers query embeddings: every variant asks the same questions, only the scoring differs."""

    def __init__(self, embedder) -> None:
        self.inner, self.model_id, self.dim = embedder, embedder.model_id, embedder.dim
        self.cache: dict[str, object] = {}

    def embed_queries(self, texts: list[str]):
        import numpy as np

        missing = [t for t in texts if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed_queries(missing), strict=True))
        return np.stack([self.cache[t] for t in texts])

    def embed_passages(self, texts: list[str]):
        return self.inner.embed_passages(texts)


def evaluate(pipeline: Pipeline, items, mode: str, settings: RetrievalSettings | None) -> dict[str, tuple]:
    settings = settings or pipeline.retriever.settings
    retriever = Retriever(pipeline.index, pipeline.embedder, settings)
    # The retrieval settings also decide how an English question is encoded (induced words, drug names).
    tree = replace(pipeline.settings, retrieval=settings)
    analyser = QueryAnalyser(pipeline.index, pipeline.embedder, tree, lambda: pipeline.glossary)
    rows: dict[str, list[tuple[float, float, float]]] = {"zh": [], "en": []}
    for item in items:
        hits = retriever.search(analyser.analyse(item.question, encode=mode == "hybrid"), 10, mode)
        rels = [contains_any(h.chunk.text, item.evidence) for h in hits]
        rows[item.lang].append((recall_at_k(rels, 1), recall_at_k(rels, 5), mrr_at_k(rels, 10)))
    rows["all"] = rows["zh"] + rows["en"]
    return {
        lang: tuple(statistics.mean(col) for col in zip(*r, strict=True)) for lang, r in rows.items() if r
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    items = [g for g in load_gold(args.gold) if g.answerable]
    pipeline = Pipeline.load(args.index)
    pipeline.embedder = CachedQueries(pipeline.embedder)
    if pipeline.index.crosslingual is not None:
        pipeline.index.crosslingual = CachedQueries(pipeline.index.crosslingual)
    lines = [
        f"Retrieval ablation on {args.gold} ({len(items)} answerable questions; relevant = contains an evidence phrase)",
        "",
        "| variant | zh R@1 | zh R@5 | zh MRR@10 | en R@1 | en R@5 | en MRR@10 | all MRR@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for name, mode, settings in VARIANTS:
        m = evaluate(pipeline, items, mode, settings)
        # A set in one language has no figures for the other: "–", not a crash.
        cells = [*m.get("zh", (None,) * 3), *m.get("en", (None,) * 3), m["all"][2]]
        line = f"| {name} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in cells) + " |"
        lines.append(line)
        print(line, flush=True)
    write_table(lines, args.out)
    return 0


def parse_args(doc: str, argv: list[str] | None) -> argparse.Namespace:
    """The options both ablations take."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--gold", default="eval/gold.jsonl")
    parser.add_argument("--index", default="index")
    parser.add_argument("--out", default=None, help="also write the table as markdown to this file")
    return parser.parse_args(argv)


def write_table(lines: list[str], out: str | None) -> None:
    """Write a printed markdown table to `out` too, when one is given."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

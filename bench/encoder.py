"""e5 in onnxruntime against torch, in one process and interleaved per question, so load from other
processes hits both alike: query encode latency, a passage batch, and how close the vectors are."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.common import MS, Section, Table, fmt, stats, timed
from rag.encode.embedding import Embedder


def run_encoder(
    runtimes: dict[str, Embedder], questions: Sequence[str], passages: Sequence[str], repeats: int
) -> Section:
    """`runtimes`: name -> embedder (e.g. {"onnx": ..., "torch": ...}), each already warmed up."""
    names = list(runtimes)
    query_ms: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(repeats):
        for q in questions:
            for n in names:
                query_ms[n].append(timed(runtimes[n].embed_queries, [q])[1])
    batch_ms, vectors = {}, {}
    for n in names:  # one pass each: a batch is long enough to average the noise out
        vectors[n], batch_ms[n] = timed(runtimes[n].embed_passages, list(passages))
    query_stats = {n: stats(query_ms[n]) for n in names}
    table = Table(
        f"e5 by runtime: {len(questions)} questions x {repeats}, interleaved; {len(passages)} passages in batches",
        ["runtime", "query p50 ms", "query p95 ms", "passages s", "passages/s"],
    )
    for n in names:
        s = batch_ms[n] / MS
        table.rows.append(
            [n, fmt(query_stats[n]["p50"]), fmt(query_stats[n]["p95"]), fmt(s), fmt(len(passages) / s)]
        )
    base, other = names[0], names[-1]
    cosines = np.sum(vectors[base] * vectors[other], axis=1) if len(passages) else np.ones(1)
    ratio_q = query_stats[base]["p50"] / query_stats[other]["p50"] if query_stats[other]["p50"] else None
    ratio_b = batch_ms[base] / batch_ms[other] if batch_ms[other] else None
    return Section(
        key="encoder",
        title="e5 runtimes",
        tables=[table],
        breakdown=[
            f"{base} takes {fmt(ratio_q)}x {other}'s time for a query (p50) and {fmt(ratio_b)}x for the "
            f"passages; passage vectors of the two: min cosine {float(cosines.min()):.6f}.",
        ],
        data={
            "query_ms": query_stats,
            "passages_ms": batch_ms,
            "min_cosine": float(cosines.min()),
            "query_ratio": ratio_q,
            "passage_ratio": ratio_b,
        },
    )

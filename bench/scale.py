"""Section 4: how dense and BM25 search scale to 1M chunks, and where `auto` should leave exact search."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import Section, Table, fmt
from bench.footprint import add_footprint
from bench.scale_bm25 import BM25Row, scale_bm25, tokenize_rate
from bench.scale_vectors import History, VectorRow, scale_vectors
from bench.scale_verdict import add_targets, scale_sentences, threshold, threshold_sentences
from bench.synthetic import clustered_unit_vectors, random_unit_vectors


@dataclass
class ScaleConfig:
    sizes: Sequence[int] = (10_000, 100_000, 1_000_000)
    uniform_sizes: Sequence[int] = (10_000, 100_000)
    bm25_sizes: Sequence[int] = (10_000, 100_000, 1_000_000)
    kinds: Sequence[str] = ("flat", "hnsw", "ivf", "ivfpq")
    dim: int = 384
    n_queries: int = 200
    budget_s: float = 300.0  # longest single build we are willing to wait for
    ef_construction: int | None = 80  # None: rag.indexing.vectors' default
    seed: int = 0
    # Latency stats ({"p50", "p95", ...} in ms) of the other pieces of a hybrid query (embedding, BM25,
    # fusion, answer composition) on the bundled corpus, from the latency section when it ran.
    rest: dict[str, dict] = field(default_factory=dict)


def vector_rows(cfg: ScaleConfig, workdir: Path, warnings: list[str]) -> list[VectorRow]:
    rows: list[VectorRow] = []
    for data, sizes, make in (
        ("clustered", cfg.sizes, clustered_unit_vectors),
        ("uniform", cfg.uniform_sizes, random_unit_vectors),
    ):
        history: History = {}
        for n in sizes:
            x = make(n + cfg.n_queries, cfg.dim, np.random.default_rng(cfg.seed + n))
            corpus, queries = x[:n], np.ascontiguousarray(x[n:])  # held-out queries from the same law
            rows += scale_vectors(
                data, corpus, queries, cfg.kinds, workdir, cfg.budget_s, history,
                ef_construction=cfg.ef_construction, warnings=warnings,
            )  # fmt: skip
            print(f"  scale: {data} {n:,} done", flush=True)
            del x, corpus
            gc.collect()
    return rows


def vector_table(cfg: ScaleConfig, rows: list[VectorRow], notes: list[str]) -> Table:
    table = Table(
        f"FAISS kinds, dim {cfg.dim}, {cfg.n_queries} held-out single queries at depth 50, recall@10 vs exact",
        [
            "data",
            "n",
            "kind",
            "params",
            "build s",
            "p50 ms",
            "p95 ms",
            "recall@10",
            "file bytes/chunk",
            "disk MB",
        ],
    )
    for r in rows:
        head = [r.data, r.n, r.kind, r.params]
        if r.skipped:
            table.rows.append([*head, "skipped*", "", "", "", "", ""])
            notes.append(f"*skipped {r.data} {r.n:,} {r.kind}: {r.skipped}")
            continue
        numbers = (r.build_s, r.p50_ms, r.p95_ms, r.recall10, r.bytes_per_chunk, r.disk_mb)
        table.rows.append([*head, *map(fmt, numbers)])
    return table


def bm25_table(rows: list[BM25Row], notes: list[str]) -> Table:
    table = Table(
        "BM25 (rag.terms.lexical.BM25Index) on Zipf(1) token chunks, 50k vocab, ~120 tokens each; top 50",
        ["n", "build s", "p50 ms", "p95 ms", "scoring p50 ms", "chunks matched", "disk MB"],
    )
    for b in rows:
        if b.skipped:
            table.rows.append([b.n, "skipped*", "", "", "", "", ""])
            notes.append(f"*skipped BM25 {b.n:,}: {b.skipped}")
            continue
        numbers = map(fmt, (b.build_s, b.p50_ms, b.p95_ms, b.score_p50_ms))
        table.rows.append([b.n, *numbers, f"{100 * b.matched:.0f}%", fmt(b.disk_mb)])
    return table


def run_scale(
    cfg: ScaleConfig, workdir: Path, docs_dir: Path | None = None, index_dir: Path | None = None
) -> Section:
    sec = Section("scale", "4. Scale (synthetic corpora)")
    warnings: list[str] = []
    vrows = vector_rows(cfg, workdir, warnings)
    brows = scale_bm25(list(cfg.bm25_sizes), workdir, cfg.budget_s, cfg.seed, cfg.n_queries)
    sec.tables += [vector_table(cfg, vrows, sec.notes), bm25_table(brows, sec.notes)]
    rec = threshold(vrows, cfg.rest)
    sec.data = {
        "vectors": [r.to_dict() for r in vrows],
        "bm25": [b.to_dict() for b in brows],
        "threshold": rec,
    }
    sec.data["config"] = dict(vars(cfg))
    add_targets(sec, vrows, brows, cfg.rest)
    threshold_sentences(sec, vrows, rec)
    scale_sentences(sec, vrows, brows)
    if docs_dir is not None:
        per_s, chars = tokenize_rate(docs_dir)
        sec.data["tokenize_chars_per_s"], sec.data["passage_chars"] = per_s, chars
        n = max(cfg.bm25_sizes)
        sec.notes.append(
            f"BM25 build times exclude tokenising: tokenize() runs at {fmt(per_s)} chars/s on the bundled passages "
            f"({fmt(chars)} chars each), so {n:,} real chunks would add ~{fmt(n * chars / per_s)} s of jieba."
        )
    if index_dir is not None and (index_dir / "manifest.json").exists():
        add_footprint(sec, index_dir, max(cfg.sizes))
    kmeans = [w for w in warnings if "WARNING" in w]
    if kmeans:
        sec.notes.append(
            f"FAISS printed {len(kmeans)} k-means warnings (hidden), e.g. {kmeans[0].strip()!r}."
        )
    sec.notes.append(
        "FAISS file bytes per chunk are memory for ivf and ivfpq (read at load); flat and hnsw files are "
        "memory-mapped by Index.load (rag.indexing.store.MMAP): resident as searches touch them, all of a flat file "
        "(every query scans it), the visited nodes' vectors of an hnsw one (its graph is read into memory)."
    )
    sec.notes.append(
        "Clustered vectors (1000 Gaussian centres, cosine ~0.7 to the centre) are the headline: real embeddings are "
        "clustered by topic, and uniform random vectors (no neighbours at all) understate approximate recall."
    )
    return sec

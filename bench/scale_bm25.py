"""Section 4b: BM25 (rag.terms.lexical.BM25Index) on synthetic Zipf token corpora, and jieba's tokenising rate."""

from __future__ import annotations

import gc
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.common import MS, stats, timed
from bench.synthetic import zipf_documents, zipf_queries, zipf_vocab
from rag.indexing.index import passage_text
from rag.ingest.chunking import chunk_document
from rag.ingest.loading import load_folder
from rag.terms.lexical import BM25Index, tokenize


@dataclass
class BM25Row:
    n: int
    build_s: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    score_p50_ms: float | None = None  # bm25s summing the posting lists, the rest is ranking
    matched: float | None = None  # mean share of chunks with a positive score (what gets sorted)
    disk_mb: float | None = None
    skipped: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def tokenize_rate(docs_dir: Path) -> tuple[float, float]:
    """(characters per second of tokenize() on the bundled passages, mean characters per passage)."""
    texts = [passage_text(c) for d in load_folder(docs_dir).documents for c in chunk_document(d)]
    tokenize(texts[0])  # jieba's dictionary loads on first use
    _, ms = timed(lambda: [tokenize(t) for t in texts])
    chars = sum(map(len, texts))
    return chars / (ms / MS), chars / len(texts)


def _score_ms(index: BM25Index, tokens: list[str]) -> tuple[float, float]:
    # Reaches into bm25s (private) only to split scoring from ranking; fine for a benchmark.
    r = index._retriever
    ids = r.get_tokens_ids(tokens)
    if not ids:
        return 0.0, 0.0
    scores, ms = timed(r.get_scores_from_ids, ids)
    return ms, float(np.mean(np.asarray(scores) > 0))


def measure_bm25(
    n: int, rng: np.random.Generator, workdir: Path, n_queries: int, k: int, vocab_size: int
) -> BM25Row:
    vocab = zipf_vocab(vocab_size)
    docs = zipf_documents(n, vocab, rng)
    index, ms = timed(BM25Index.from_tokens, docs)
    del docs
    gc.collect()
    row = BM25Row(n, build_s=ms / MS)
    queries = zipf_queries(n_queries, vocab, rng)
    s = stats(timed(index.search_tokens, q, k)[1] for q in queries)
    split = [_score_ms(index, q) for q in queries]
    row.p50_ms, row.p95_ms = s["p50"], s["p95"]
    row.score_p50_ms = stats(a for a, _ in split)["p50"]
    row.matched = float(np.mean([b for _, b in split]))
    folder = workdir / "bench-bm25"
    index.save(folder)
    row.disk_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    shutil.rmtree(folder)
    return row


def scale_bm25(
    sizes: list[int],
    workdir: Path,
    budget_s: float,
    seed: int = 0,
    n_queries: int = 200,
    k: int = 50,
    vocab_size: int = 50_000,
) -> list[BM25Row]:
    """One row per size; a size whose build is estimated (linearly) above budget_s is skipped."""
    rng = np.random.default_rng(seed)
    rows: list[BM25Row] = []
    for n in sizes:
        done = [r for r in rows if r.build_s is not None]
        if done:
            estimate = done[-1].build_s * n / done[-1].n
            if estimate > budget_s:
                reason = f"build estimated at {estimate:,.0f} s > budget {budget_s:,.0f} s; raise --scale-budget to run it"
                rows.append(BM25Row(n, skipped=reason))
                continue
        rows.append(measure_bm25(n, rng, workdir, n_queries, k, vocab_size))
        gc.collect()
    return rows

"""Section 4a: every FAISS kind on synthetic corpora: build time, single-query latency, recall@10, size."""

from __future__ import annotations

import gc
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import rag.indexing.vectors as vectors
from bench.common import MS, stats, timed
from rag.indexing.vectors import VectorIndex, ivf_nlist, ivf_nprobe, pq_subquantizers


@dataclass
class VectorRow:
    data: str  # "clustered" or "uniform"
    kind: str
    n: int
    params: str
    build_s: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    recall10: float | None = None
    bytes_per_chunk: float | None = None
    disk_mb: float | None = None
    skipped: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


PQ_TRAIN_CAP = 256 * 256  # FAISS trains each PQ sub-quantizer on at most 256 points per centroid

# kind -> {n: build seconds} of the sizes measured so far (per data set), to extrapolate from.
History = dict[str, dict[int, float]]


def ivf_cost(n: int) -> float:
    """IVF build work: k-means over ~4 sqrt(n) centroids and assigning every vector, both ~ n x nlist."""
    return float(n) * ivf_nlist(n)


def estimate_build_s(kind: str, n: int, history: History) -> tuple[float, str] | None:
    """Extrapolated build seconds at n from the largest smaller size measured, and how; None if none."""
    sizes = [m for m in history.get(kind, {}) if m < n]
    if not sizes:
        return None
    n0 = max(sizes)
    t0 = history[kind][n0]
    how = f"from {t0:,.1f} s at {n0:,}"
    if kind == "flat":
        return t0 * n / n0, how
    if kind == "hnsw":  # each insert searches the graph, ~log n
        return t0 * (n * math.log2(n)) / (n0 * math.log2(max(n0, 2))), how
    t_ivf0 = history.get("ivf", {}).get(n0)
    if kind == "ivfpq" and t_ivf0 is not None:
        # The coarse IVF part grows like IVF; PQ training is capped at PQ_TRAIN_CAP points.
        pq0 = max(0.0, t0 - t_ivf0)
        ivf = t_ivf0 * ivf_cost(n) / ivf_cost(n0)
        return ivf + pq0 * min(n, PQ_TRAIN_CAP) / min(n0, PQ_TRAIN_CAP), how + f" (IVF part {t_ivf0:,.1f} s)"
    return t0 * ivf_cost(n) / ivf_cost(n0), how


@contextmanager
def captured_stderr(lines: list[str]) -> Iterator[None]:
    """FAISS prints k-means warnings from C++ straight to file descriptor 2; collect them instead of
    flooding the console (the section reports how many there were)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def params(kind: str, n: int, dim: int) -> str:
    if kind == "hnsw":
        return f"M={vectors.HNSW_M} efC={vectors.HNSW_EF_CONSTRUCTION} efS={vectors.HNSW_EF_SEARCH}"
    if kind in ("ivf", "ivfpq"):
        nlist = ivf_nlist(n)
        pq = f" PQ{pq_subquantizers(dim)}x{vectors.PQ_BITS}" if kind == "ivfpq" else ""
        return f"nlist={nlist} nprobe={ivf_nprobe(nlist)}{pq}"
    return "exact"


@contextmanager
def hnsw_ef_construction(ef: int | None) -> Iterator[None]:
    """Build HNSW with another efConstruction for this benchmark only (rag.indexing.vectors reads the constant
    at build time); restored afterwards."""
    old = vectors.HNSW_EF_CONSTRUCTION
    if ef is not None:
        vectors.HNSW_EF_CONSTRUCTION = ef
    try:
        yield
    finally:
        vectors.HNSW_EF_CONSTRUCTION = old


def recall_at(ids: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of the exact top k found in the approximate top k."""
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ids, truth, strict=True)]))


def measure_index(
    vi: VectorIndex, queries: np.ndarray, truth: np.ndarray, k: int, search_k: int, workdir: Path
) -> dict:
    """Single-query latency at the depth hybrid retrieval reads (search_k), recall@k of its top k, size."""
    times, found = [], []
    for q in queries:
        (_, ids), ms = timed(vi.search, q.reshape(1, -1), search_k)
        times.append(ms)
        found.append(ids[0])
    path = workdir / f"bench-{vi.kind}.faiss"
    vi.save(path)
    size = path.stat().st_size
    path.unlink()
    s = stats(times)
    return {
        "p50_ms": s["p50"],
        "p95_ms": s["p95"],
        "recall10": recall_at(np.array(found), truth, k),
        "bytes_per_chunk": size / vi.ntotal,
        "disk_mb": size / 1e6,
    }


def scale_vectors(
    data: str,
    corpus: np.ndarray,
    queries: np.ndarray,
    kinds: Sequence[str],
    workdir: Path,
    budget_s: float,
    history: History,
    k: int = 10,
    search_k: int = 50,
    ef_construction: int | None = None,
    warnings: list[str] | None = None,
) -> list[VectorRow]:
    """One row per kind at this size. `history` (updated here) holds the builds measured so far; a build
    estimated from it to exceed `budget_s` is skipped with the estimate as its reason. FAISS's stderr
    output goes to `warnings`."""
    n, dim = corpus.shape
    warnings = [] if warnings is None else warnings
    flat, t_flat = timed(VectorIndex.build, corpus, "flat")
    truth = flat.search(queries, k)[1]  # batched exact search is the reference
    rows = []
    for kind in kinds:
        with hnsw_ef_construction(ef_construction):
            row = VectorRow(data, kind, n, params(kind, n, dim))
            estimate = estimate_build_s(kind, n, history)
            if estimate is not None and estimate[0] > budget_s:
                row.skipped = (
                    f"build estimated at {estimate[0]:,.0f} s ({estimate[1]}) > budget {budget_s:,.0f} s; "
                    "raise --scale-budget to run it"
                )
                rows.append(row)
                continue
            try:
                with captured_stderr(warnings):
                    vi, ms = (flat, t_flat) if kind == "flat" else timed(VectorIndex.build, corpus, kind)
            except ValueError as exc:  # IVF kinds refuse too few training points
                row.skipped = str(exc)
                rows.append(row)
                continue
        row.build_s = ms / MS
        history.setdefault(kind, {})[n] = row.build_s
        for key, value in measure_index(vi, queries, truth, k, search_k, workdir).items():
            setattr(row, key, value)
        rows.append(row)
        del vi
        gc.collect()
    del flat
    gc.collect()
    return rows

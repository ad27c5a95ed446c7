"""Section 4c: from the scale measurements to targets and sentences, and the APPROX_THRESHOLD advice."""

from __future__ import annotations

from bench.common import Section, Table, Target, at_most, fmt, nice_floor
from bench.scale_bm25 import BM25Row
from bench.scale_vectors import VectorRow
from rag.indexing.vectors import APPROX_THRESHOLD

QUERY_TARGET_MS = 60.0  # bundled corpus, whole query
LARGE_TARGET_MS = 100.0  # at 1M chunks, whole query
RECALL_TARGET = 0.95


BUDGETS_MS = (10.0, 20.0, 30.0, 40.0, 60.0, 100.0)


def n_at(points: list[tuple[int, float]], ms: float) -> float | None:
    """The n at which flat p95 reaches `ms`: linear between measured sizes (from (0, 0) below the
    first), extrapolated from the last two above the last. Exact search is a linear scan, so this holds
    as long as the sizes measured bracket the answer."""
    pts = sorted(points)
    n0, t0 = 0, 0.0
    for n, t in pts:
        if t >= ms:
            return n0 + (n - n0) * (ms - t0) / (t - t0) if t > t0 else float(n)
        n0, t0 = n, t
    if len(pts) < 2 or pts[-1][1] <= pts[-2][1]:
        return None
    (n0, t0), (n1, t1) = pts[-2], pts[-1]
    return n1 + (n1 - n0) * (ms - t1) / (t1 - t0)


def threshold(rows: list[VectorRow], rest: dict[str, dict]) -> dict:
    """Largest n at which exact search still fits what the 60 ms budget leaves for vector search once
    the rest of a hybrid query (embedding, BM25, fusion, answer; p50 on the bundled corpus) is paid.

    The rest is taken at p50 because its p95 on a shared box is mostly other people's load; flat's own
    latency is taken at p95."""
    flat = [(r.n, r.p95_ms) for r in rows if r.kind == "flat" and r.data == "clustered" and r.p95_ms]
    others = sum(s["p50"] or 0.0 for s in rest.values())
    budget = QUERY_TARGET_MS - others
    out: dict = {
        "flat_p95_points": flat,
        "rest_p50_ms": others,
        "budget_ms": budget,
        "current": APPROX_THRESHOLD,
    }
    out["by_budget"] = {ms: n_at(flat, ms) for ms in BUDGETS_MS}
    n_max = n_at(flat, budget) if budget > 0 else None
    if n_max is None:
        why = (
            f"the rest of a hybrid query alone takes {fmt(others)} ms at p50 in this run, leaving no room in 60 ms"
            if budget <= 0
            else "flat p95 did not grow with n in this run"
        )
        return out | {"n_max": None, "recommended": None, "why": why}
    return out | {"n_max": n_max, "recommended": nice_floor(n_max)}


def add_targets(sec: Section, vrows: list[VectorRow], brows: list[BM25Row], rest: dict[str, dict]) -> None:
    """Whole-query p95 at the largest size, estimated as the sum of the pieces' p95s (conservative)."""
    measured = [r for r in vrows if r.data == "clustered" and r.p95_ms is not None]
    if not measured:
        return
    largest = max(r.n for r in measured)
    bm = next((b.p95_ms for b in brows if b.n == largest and b.p95_ms is not None), None)
    # BM25 from the synthetic corpus at this size; embedding, fusion, answer from the bundled-corpus run.
    others = sum(s["p95"] or 0.0 for k, s in rest.items() if not k.startswith("BM25"))
    for r in (r for r in measured if r.n == largest):
        total = r.p95_ms + others + (bm or 0.0)
        ok = total <= LARGE_TARGET_MS and r.recall10 >= RECALL_TARGET
        sec.targets.append(
            Target(
                f"query p95 at {largest:,} with {r.kind} (est. = vector + BM25 + embed/fusion/answer p95s)",
                f"{fmt(total)} ms, recall {fmt(r.recall10)}",
                f"<= {fmt(LARGE_TARGET_MS)} ms, recall >= {RECALL_TARGET}",
                ok,
            )
        )
    if not rest:
        sec.notes.append(
            "The latency section did not run: the estimates leave out embedding, fusion and answer time."
        )
    if bm is None:
        sec.notes.append(
            f"BM25 was not measured at {largest:,}; the whole-query estimates there leave it out."
        )


def budget_table(rec: dict) -> Table:
    rows = [[fmt(ms), fmt(n, 2) if n is not None else "n/a"] for ms, n in rec["by_budget"].items()]
    return Table(
        "Largest corpus exact (flat) search serves within a p95 budget (interpolated)",
        ["budget ms", "chunks"],
        rows,
    )


def threshold_sentences(sec: Section, vrows: list[VectorRow], rec: dict) -> None:
    if rec["flat_p95_points"]:
        sec.tables.append(budget_table(rec))
    if rec.get("recommended") is None:
        sec.breakdown.append(
            f"No APPROX_THRESHOLD advice from this run: {rec['why']}; read it off the budget table."
        )
    else:
        sec.breakdown.append(
            f"The rest of a hybrid query takes {fmt(rec['rest_p50_ms'])} ms (p50), leaving {fmt(rec['budget_ms'])} ms of "
            f"the 60 ms budget for vector search; flat's p95 reaches that at ~{fmt(rec['n_max'], 2)} chunks: "
            f"set APPROX_THRESHOLD = {rec['recommended']:,} (now {APPROX_THRESHOLD:,})."
        )
        sec.targets.append(
            at_most("APPROX_THRESHOLD within flat's budget", float(APPROX_THRESHOLD), rec["n_max"], "chunks")
        )
    pairs = {
        r.n: (r.p95_ms, h.p95_ms, h.recall10)
        for r in vrows
        for h in vrows
        if r.data == h.data == "clustered"
        and r.n == h.n
        and r.kind == "flat"
        and h.kind == "hnsw"
        and h.p95_ms
    }
    faster = [n for n, (f, h, _) in sorted(pairs.items()) if h < f]
    if faster:
        n = faster[0]
        sec.breakdown.append(
            f"HNSW beats flat from {n:,} chunks in this run ({fmt(pairs[n][1])} vs {fmt(pairs[n][0])} ms p95, recall "
            f"{fmt(pairs[n][2])}); below the threshold exact search is affordable, so its recall of 1.0 wins."
        )


def scale_sentences(sec: Section, vrows: list[VectorRow], brows: list[BM25Row]) -> None:
    hnsw = [r for r in vrows if r.kind == "hnsw" and r.recall10 is not None]
    if hnsw:
        worst = min(hnsw, key=lambda r: r.recall10)
        hard = (
            "uniform vectors are the hard case for graph search"
            if worst.data == "uniform"
            else "on clustered data"
        )
        sec.breakdown.append(
            f"HNSW's lowest recall@10 is {fmt(worst.recall10)} ({worst.data}, {worst.n:,}): {hard}."
        )
    done = [b for b in brows if b.p50_ms is not None]
    if done:
        big = done[-1]
        rank = big.p50_ms - big.score_p50_ms
        sec.breakdown.append(
            f"BM25 at {big.n:,} chunks takes {fmt(big.p50_ms)} ms p50 ({fmt(big.p95_ms)} p95): {fmt(big.score_p50_ms)} ms "
            f"summing posting lists and {fmt(rank)} ms ranking, which sorts all {100 * big.matched:.0f}% of chunks "
            "that match (np.lexsort), so it grows with the corpus too."
        )

"""Retrieval and abstention metrics as pure functions.

Relevance is binary: a retrieved chunk is relevant if it contains any of the question's evidence
phrases (`rag.evaluate.gold.contains_any`). Ranked lists are taken as the retriever returned them: ties in
score were already broken by its rank order, and these functions never re-sort.

Aggregates over nothing (`mean([])`, `percentile([], p)`, `abstention_prf([], [])`) return None
rather than 0.0 or NaN, so an empty slice can never pass for a real score; callers print "n/a".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from rag.evaluate.gold import contains_any


def relevance(ranked_texts: Sequence[str], evidence: Iterable[str]) -> list[bool]:
    """Binary relevance of each ranked text: does it contain any evidence phrase?"""
    evidence = tuple(evidence)
    return [contains_any(text, evidence) for text in ranked_texts]


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def recall_at_k(rels: Sequence[bool], k: int) -> float:
    """1.0 if any of the top k is relevant, else 0.0.

    This is "success@k" (hit rate), the usual recall for QA retrieval: one relevant passage is
    enough to answer, and overlapping chunks make "all relevant chunks" ill-defined.
    """
    _check_k(k)
    return 1.0 if any(rels[:k]) else 0.0


def mrr_at_k(rels: Sequence[bool], k: int) -> float:
    """Reciprocal rank of the first relevant item in the top k, 0.0 if none."""
    _check_k(k)
    for i, rel in enumerate(rels[:k]):
        if rel:
            return 1.0 / (i + 1)
    return 0.0


def ndcg_at_k(rels: Sequence[bool], k: int, n_relevant: int | None = None) -> float:
    """nDCG@k with binary gains: sum over the top k of rel_i / log2(i + 1), i 1-based.

    The ideal DCG puts min(n_relevant, k) relevant items first. `n_relevant` is the number of
    relevant items in the whole collection; when None, the relevant items in `rels` are counted
    (so a list that holds every relevant item in the best order scores 1.0). Returns 0.0 when
    there is nothing relevant.
    """
    _check_k(k)
    found = sum(1 for r in rels if r)
    if n_relevant is None:
        n_relevant = found
    elif n_relevant < found:
        # More relevant items in the list than in the collection would give nDCG > 1.
        raise ValueError(
            f"n_relevant={n_relevant} is less than the {found} relevant items in the list; "
            "pass the collection-wide count, or None to count the list"
        )
    if n_relevant == 0:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, rel in enumerate(rels[:k]) if rel)
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(n_relevant, k)))
    return dcg / idcg


def mean(values: Iterable[float]) -> float | None:
    """Arithmetic mean, or None for no values."""
    values = list(values)
    if not values:
        return None
    return math.fsum(values) / len(values)


def percentile(values: Iterable[float], p: float) -> float | None:
    """p-th percentile (0..100) with linear interpolation, as numpy's default; None for no values."""
    if not 0 <= p <= 100:
        raise ValueError(f"p must be between 0 and 100, got {p}")
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class AbstentionScores(NamedTuple):
    precision: float | None
    recall: float | None
    f1: float | None


def abstention_prf(pred_abstained: Sequence[bool], gold_unanswerable: Sequence[bool]) -> AbstentionScores:
    """Precision, recall and F1 of abstaining, the positive class being "should abstain".

    Zero denominators: when there is nothing to abstain on and the system never abstained
    (tp = fp = fn = 0) it made no abstention error, so all three are 1.0. Any other zero
    denominator gives 0.0: no abstentions while some were due is precision 0.0 (and recall 0.0),
    abstentions with none due is recall 0.0 (and precision 0.0). Empty input gives all None.
    """
    if len(pred_abstained) != len(gold_unanswerable):
        raise ValueError(
            f"pred_abstained has {len(pred_abstained)} items but gold_unanswerable has "
            f"{len(gold_unanswerable)}; pass one flag per question to both"
        )
    if not pred_abstained:
        return AbstentionScores(None, None, None)
    pairs = [(bool(p), bool(g)) for p, g in zip(pred_abstained, gold_unanswerable, strict=True)]
    tp = sum(p and g for p, g in pairs)
    fp = sum(p and not g for p, g in pairs)
    fn = sum(g and not p for p, g in pairs)
    if tp == fp == fn == 0:
        return AbstentionScores(1.0, 1.0, 1.0)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return AbstentionScores(precision, recall, f1)

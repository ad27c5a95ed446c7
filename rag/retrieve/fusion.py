"""Fusing ranked lists: weighted reciprocal-rank fusion, and z-scores within groups (a passage's
language), which let signals on different scales be summed."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def rrf_fuse(
    ranked: Sequence[Sequence[Hashable]], weights: Sequence[float], k: int = 60
) -> list[tuple[Hashable, float]]:
    """Weighted reciprocal-rank fusion of ranked id lists; best first, ties broken by first appearance."""
    scores: dict[Hashable, float] = {}
    for ids, weight in zip(ranked, weights, strict=True):
        for rank, i in enumerate(ids, 1):
            scores[i] = scores.get(i, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def standardise(scores: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """z-scores, computed separately within each group when groups are given; constant input gives 0."""
    out = np.zeros_like(scores, dtype=np.float64)
    for g in [None] if groups is None else np.unique(groups):
        mask = slice(None) if g is None else groups == g
        values = scores[mask]
        std = values.std()
        out[mask] = (values - values.mean()) / std if std > 1e-9 else 0.0
    return out

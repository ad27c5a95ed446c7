"""Retrieval modes over a loaded index: dense (FAISS), bm25 (jieba + words) and hybrid (fusion)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.types import Hit

if TYPE_CHECKING:
    from rag.embedding import Embedder
    from rag.index import Index

MODES = ("dense", "bm25", "hybrid")


@dataclass(frozen=True)
class RetrievalSettings:
    candidates: int = 50  # how deep each list is read before fusion
    rrf_k: int = 60  # reciprocal-rank-fusion constant (Cormack et al. 2009)
    dense_weight: float = 1.0
    bm25_weight: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def rrf_fuse(
    ranked: Sequence[Sequence[Hashable]], weights: Sequence[float], k: int = 60
) -> list[tuple[Hashable, float]]:
    """Weighted reciprocal-rank fusion of ranked id lists; best first, ties broken by first appearance."""
    scores: dict[Hashable, float] = {}
    for ids, weight in zip(ranked, weights, strict=True):
        for rank, i in enumerate(ids, 1):
            scores[i] = scores.get(i, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


class Retriever:
    """Ranks an index's chunks for a question. The embedder must be the one the index was built with."""

    def __init__(self, index: Index, embedder: Embedder, settings: RetrievalSettings | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings or RetrievalSettings()

    def query_vector(self, question: str) -> np.ndarray:
        return self.embedder.embed_queries([question])[0]

    def search(self, question: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}.")
        if mode == "dense":
            return self.index.search_dense(self.query_vector(question), k)
        if mode == "bm25":
            return self.index.search_bm25(question, k)
        return self._hybrid(question, k)

    def _hybrid(self, question: str, k: int) -> list[Hit]:
        s = self.settings
        depth = max(k, s.candidates)
        dense = self.index.search_dense(self.query_vector(question), depth)
        lexical = self.index.search_bm25(question, depth)
        chunks = {h.chunk.id: h.chunk for h in (*dense, *lexical)}
        fused = rrf_fuse(
            [[h.chunk.id for h in dense], [h.chunk.id for h in lexical]],
            [s.dense_weight, s.bm25_weight],
            s.rrf_k,
        )
        return [Hit(chunks[cid], score, rank) for rank, (cid, score) in enumerate(fused[:k], 1)]

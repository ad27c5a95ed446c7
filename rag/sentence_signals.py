"""What retrieval knows about a question, turned on the candidate sentences of an answer.

The answerer picks 1-3 sentences out of the best chunks. Scoring them with the plain question's e5
vector alone repeats the weakness retrieval already fixed: for an English question e5 prefers any
English abstract sentence, and a Chinese sentence shares no word with the question. So sentences are
scored with what the hybrid retriever knows about the question: e5 against the question as retrieval
embedded it (an English question with its induced Chinese words), and those induced words as extra
lexical matches.

The cross-lingual encoder is not a sentence signal. It finds the right chunks for an English question,
but inside them it rates highest the sentences that restate the question's topic ("Trousseau's
syndrome is…"), not the one that answers it: with it, the answer sentence was among the top three for
0.80 of the English gold questions; without it, 0.84 (0.76 -> 0.82 and 0.84 -> 0.86 on the two halves
of the gold pairs), with Chinese questions unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rag.retrieval import Retriever


@dataclass(frozen=True)
class SignalColumns:
    """What sentence selection takes from retrieval for one question and its candidate sentences."""

    dense: np.ndarray  # e5 cosine to the question as retrieval embedded it, in [-1, 1]
    extra_words: tuple[str, ...]  # words to count as question words (induced Chinese for English)


class SentenceSignals:
    """Scores sentence texts against a question with a retriever's encoders and caches.

    The question's encoding is the one retrieval just made; sentence vectors come from the retriever's
    embedder, which the pipeline wraps in a cache over the index's sentence vectors.
    """

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever

    def __call__(self, question: str, lang: str, texts: list[str]) -> SignalColumns:
        r = self.retriever
        _, induced = r.question_encoding(question, lang)
        dense_query = r.dense_query(question, induced)
        q = np.asarray(r.embedder.embed_queries([dense_query])[0], dtype=np.float32)
        dense = np.asarray(r.embedder.embed_passages(texts), dtype=np.float32) @ q if texts else np.zeros(0)
        return SignalColumns(dense, tuple(induced))

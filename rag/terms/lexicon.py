"""An English -> Chinese term lexicon induced from the corpus's own Chinese vocabulary.

BM25 cannot match an English question to Chinese text. The mined glossary covers only terms the
papers define in parentheses, so we also induce a lexicon: every Chinese word of the corpus (jieba)
is embedded once with the cross-lingual encoder, and each English word or two-word phrase of a
question is mapped to its nearest Chinese words above a similarity threshold. Nothing is hand-written.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.lang import HAN
from rag.terms.lexical import STOPWORDS, tokenize

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder

_ZH_WORD = re.compile(f"[{HAN}]{{2,8}}")
_EN_WORD = re.compile(r"[a-z][a-z0-9\-]*[a-z0-9]|[a-z]")
VOCAB_FILE, VECTORS_FILE = "lexicon.json", "lexicon.npy"


class Lexicon:
    def __init__(self, vocab: list[str], vectors: np.ndarray) -> None:
        if len(vocab) != len(vectors):
            raise ValueError(f"lexicon has {len(vocab)} words but {len(vectors)} vectors")
        self.vocab = vocab
        self.vectors = np.asarray(vectors, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.vocab)

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        encoder: Embedder,
        max_words: int = 50_000,
        cache: dict | None = None,
        embed: Callable[[list[str]], np.ndarray] | None = None,
    ) -> Lexicon:
        """Embed the most frequent Chinese words of `texts` (bounded, so huge corpora stay cheap);
        words in `cache` (word -> vector, from the previous index) are not embedded again. `embed`
        (default: the encoder's `embed_passages`) lets a build embed them in batches it can resume."""
        counts = Counter(t for text in texts for t in tokenize(text) if _ZH_WORD.fullmatch(t))
        vocab = sorted(w for w, _ in counts.most_common(max_words))
        cache = dict(cache or {})
        todo = [w for w in vocab if w not in cache]
        if todo:
            cache.update(zip(todo, (embed or encoder.embed_passages)(todo), strict=True))
        vectors = np.stack([cache[w] for w in vocab]) if vocab else np.empty((0, encoder.dim), np.float32)
        return cls(vocab, vectors)

    @staticmethod
    def phrases(question: str) -> list[str]:
        """Content words of an English question and their adjacent pairs ("first-line", "first-line drug")."""
        words = [w for w in _EN_WORD.findall(question.lower()) if w not in STOPWORDS and len(w) > 1]
        return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]

    def translate(
        self, question: str, encoder: Embedder, threshold: float = 0.5, per_phrase: int = 2
    ) -> list[str]:
        """Chinese words nearest to the question's English phrases, best phrase matches first."""
        phrases = self.phrases(question)
        if not phrases or not self.vocab:
            return []
        return self.translate_vectors(encoder.embed_queries(phrases), threshold, per_phrase)

    def translate_vectors(
        self, phrase_vectors: np.ndarray, threshold: float = 0.5, per_phrase: int = 2
    ) -> list[str]:
        """`translate` for phrase vectors already encoded (the retriever encodes them with the question)."""
        if not len(phrase_vectors) or not self.vocab:
            return []
        sims = phrase_vectors @ self.vectors.T
        found: dict[str, float] = {}
        for row in sims:
            for j in np.argsort(-row)[:per_phrase]:
                if row[j] >= threshold:
                    found[self.vocab[j]] = max(found.get(self.vocab[j], 0.0), float(row[j]))
        return sorted(found, key=lambda w: -found[w])

    def save(self, folder: Path) -> None:
        (folder / VOCAB_FILE).write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        np.save(folder / VECTORS_FILE, self.vectors, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> Lexicon:
        vocab = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
        return cls(vocab, np.load(folder / VECTORS_FILE, allow_pickle=False))

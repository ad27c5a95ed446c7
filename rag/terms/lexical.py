"""Lexical retrieval: a bilingual tokenizer (jieba for Chinese, words for English) and a BM25 index."""

from __future__ import annotations

import functools
import json
import logging
import re
import unicodedata
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from rag.knowledge import language
from rag.lang import HAN

# Bump when tokenize() changes output: a BM25 index built with another version must be rebuilt.
TOKENIZER_VERSION = 1

# Han runs go to jieba; decimals stay whole ("2.3", "0.05"); other letters/digits form words, so
# "her2", "t790m" and Greek letters ("tnf", "α") survive; hyphens and underscores split words.
_TOKEN_RE = re.compile(rf"(?P<han>[{HAN}]+)|(?P<num>\d+(?:\.\d+)+)|(?P<word>[^\W_{HAN}]+)")

# Words too common to count as terms (rag/data/lang/*.json).
ZH_STOPWORDS = frozenset(language("zh")["stopwords"])
EN_STOPWORDS = frozenset(language("en")["stopwords"])
STOPWORDS = ZH_STOPWORDS | EN_STOPWORDS


@functools.cache
def _jieba():
    """The jieba tokenizer, built on first use (about 0.5 s with its dictionary cache)."""
    import jieba

    # jieba logs "Building prefix dict..." to stderr on first use; the CLI output should stay clean.
    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def fold_plural(word: str) -> str:
    """Fold simple English plurals ("mutations" -> "mutation") so queries match either form: the
    BM25 form of a written word (`written_words`)."""
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")) and word.isalpha():
        return word[:-1]
    return word


def written_words(text: str) -> list[str]:
    """The non-Chinese words of `text` as `tokenize` reads them (NFKC, lower case, stopwords out), but
    before plurals are folded: "diabetes", where BM25 holds "diabete"."""
    text = unicodedata.normalize("NFKC", text).lower()
    return [
        m.group() for m in _TOKEN_RE.finditer(text) if m.lastgroup == "word" and m.group() not in STOPWORDS
    ]


def jieba_words(text: str) -> list[tuple[str, int, int]]:
    """jieba's words of `text` (its default mode, no parts) with their offsets."""
    text = unicodedata.normalize("NFKC", text)
    return list(_jieba().tokenize(text))


def tokenize(text: str) -> list[str]:
    """Split bilingual text into BM25 terms: jieba search-mode words for Chinese, lower-cased
    words and numbers for everything else; punctuation, whitespace and stopwords are dropped.

    >>> tokenize("EGFR突变与VTE")
    ['egfr', '突变', 'vte']
    """
    # NFKC so full-width query text ("ＥＧＦＲ") matches the normalised documents.
    text = unicodedata.normalize("NFKC", text).lower()
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(text):
        if match.lastgroup == "han":
            # Search mode also yields the parts of long words ("基因突变" -> 基因, 突变, 基因突变),
            # so a query for "突变" still matches.
            tokens.extend(t for t in _jieba().cut_for_search(match.group()) if t not in STOPWORDS)
        elif match.lastgroup == "num":
            tokens.append(match.group())
        else:
            word = match.group()
            if word not in STOPWORDS:
                tokens.append(fold_plural(word))
    return tokens


class BM25Index:
    """BM25 (bm25s, Lucene variant) over pre-tokenised passages; ids are passage positions."""

    _META = "meta.json"

    def __init__(self, retriever, n_docs: int) -> None:
        # retriever is a bm25s.BM25, or None when no passage has a single token (bm25s cannot
        # build a vocabulary from nothing); such an index simply finds nothing.
        self._retriever = retriever
        self.n_docs = n_docs

    def __len__(self) -> int:
        return self.n_docs

    @classmethod
    def build(cls, texts: Iterable[str]) -> BM25Index:
        """Tokenise `texts` with `tokenize` and index them."""
        return cls.from_tokens(map(tokenize, texts))

    @classmethod
    def from_tokens(cls, corpus_tokens: Iterable[Sequence[str]]) -> BM25Index:
        """Index token lists as given (no further tokenising, so Chinese terms are kept).

        Each passage's tokens become term ids (4 bytes each) as they come, and bm25s is given the ids
        and the vocabulary: given the token strings, a build held every passage's tokens as string
        objects (about 16 KB per Chinese chunk) and bm25s a list of Python ints besides. bm25s reads
        the ids the same either way (its own vocabulary is a set, so its term ids were never stable)."""
        import bm25s

        vocab: dict[str, int] = {}
        ids = [array("i", [vocab.setdefault(t, len(vocab)) for t in tokens]) for tokens in corpus_tokens]
        if not vocab:
            return cls(None, len(ids))
        retriever = bm25s.BM25()
        retriever.index((ids, vocab), show_progress=False)
        return cls(retriever, len(ids))

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        """Top-k (position, score) pairs, highest first; only positive scores."""
        return self.search_tokens(tokenize(query), k)

    def search_tokens(self, tokens: Sequence[str], k: int = 10) -> list[tuple[int, float]]:
        """Like `search`, for an already tokenised query."""
        if k <= 0 or self._retriever is None:
            return []
        ids = self._retriever.get_tokens_ids(list(tokens))
        if not ids:
            return []
        scores = np.asarray(self._retriever.get_scores_from_ids(ids), dtype=np.float64)
        positive = np.flatnonzero(scores > 0)
        # Highest score first; ties by position, so results are deterministic.
        order = np.lexsort((positive, -scores[positive]))[:k]
        return [(int(positive[i]), float(scores[positive[i]])) for i in order]

    def positions_with(self, token: str) -> np.ndarray:
        """Positions of the passages that contain `token` (a term as `tokenize` makes them)."""
        if self._retriever is None:
            return np.zeros(0, dtype=np.int64)
        ids = self._retriever.get_tokens_ids([token])
        scores = self._retriever.scores  # per term, the passages holding it (CSC: indptr, indices)
        indptr = scores["indptr"]
        if not ids or not 0 <= ids[0] < len(indptr) - 1:  # bm25s keeps "" past the matrix's end
            return np.zeros(0, dtype=np.int64)
        start, end = int(indptr[ids[0]]), int(indptr[ids[0] + 1])
        return np.unique(np.asarray(scores["indices"][start:end], dtype=np.int64))

    def save(self, directory: str | Path) -> None:
        """Write the index as JSON + .npy files (no pickle) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self._retriever is not None:
            self._retriever.save(directory, allow_pickle=False, show_progress=False)
        meta = {
            "tokenizer_version": TOKENIZER_VERSION,
            "n_docs": self.n_docs,
            "empty": self._retriever is None,
        }
        (directory / self._META).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> BM25Index:
        """Read an index written by `save`; raises FileNotFoundError or ValueError with the fix."""
        import bm25s

        directory = Path(directory)
        meta_path = directory / cls._META
        if not meta_path.is_file():
            raise FileNotFoundError(f"No BM25 index at {directory} (missing {cls._META}); rebuild the index.")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            n_docs = int(meta["n_docs"])
            version = meta["tokenizer_version"]
            empty = bool(meta["empty"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"BM25 index at {directory} is corrupt ({meta_path.name}: {exc}); rebuild the index."
            ) from exc
        if version != TOKENIZER_VERSION:
            raise ValueError(
                f"BM25 index at {directory} was built with tokenizer version {version}, "
                f"this code uses {TOKENIZER_VERSION}; rebuild the index."
            )
        if empty:
            return cls(None, n_docs)
        try:
            retriever = bm25s.BM25.load(directory, allow_pickle=False, show_progress=False)
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"BM25 index at {directory} is incomplete ({exc}); rebuild the index."
            ) from exc
        except (ValueError, KeyError, TypeError, EOFError) as exc:
            raise ValueError(f"BM25 index at {directory} is corrupt ({exc}); rebuild the index.") from exc
        if retriever.scores.get("num_docs") != n_docs:
            raise ValueError(
                f"BM25 index at {directory} is corrupt: {retriever.scores.get('num_docs')} passages in the "
                f"scores but {n_docs} in {cls._META}; rebuild the index."
            )
        return cls(retriever, n_docs)

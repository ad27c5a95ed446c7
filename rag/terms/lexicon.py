"""Term lexicons induced from the corpus's own vocabulary, one per direction.

BM25 cannot match an English question to Chinese text, nor a Chinese question to English text. The
mined glossary covers only terms the papers define in parentheses, so we also induce lexicons: every
Chinese word of the corpus's Chinese passages (jieba), and every English word of its English ones, is
embedded once with the cross-lingual encoder, and each English word or two-word phrase of an English
question is mapped to its nearest Chinese words above a similarity threshold, each Chinese word of a
Chinese question to its nearest English words. Nothing is hand-written.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.lang import HAN
from rag.terms.lexical import STOPWORDS, fold_plural, jieba_words, tokenize, written_words

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder

_ZH_WORD = re.compile(f"[{HAN}]{{2,8}}")
_EN_WORD = re.compile(r"[a-z][a-z0-9\-]*[a-z0-9]|[a-z]")
# An English vocabulary word: at least three characters, starting with a letter.
_EN_VOCAB_WORD = re.compile(r"[a-z][a-z0-9]+[a-z0-9]")
_HAN_WORD = re.compile(f"[{HAN}]{{2,}}")  # a Chinese question's word, however long
VOCAB_FILE, VECTORS_FILE = "lexicon.json", "lexicon.npy"  # Chinese words, for English questions
EN_VOCAB_FILE, EN_VECTORS_FILE = "lexicon_en.json", "lexicon_en.npy"  # English words, for Chinese ones
FILES = {"zh": (VOCAB_FILE, VECTORS_FILE), "en": (EN_VOCAB_FILE, EN_VECTORS_FILE)}


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
        script: str = "zh",
    ) -> Lexicon:
        """Embed the most frequent words of `texts` in `script` ("zh": Chinese words, "en": English
        words), bounded, so huge corpora stay cheap; words in `cache` (word -> vector, from the
        previous index) are not embedded again. `embed` (default: the encoder's `embed_passages`)
        lets a build embed them in batches it can resume."""
        if script == "zh":
            counts = Counter(t for text in texts for t in tokenize(text) if _ZH_WORD.fullmatch(t))
        elif script == "en":
            counts = _english_words(texts)
        else:
            raise ValueError(f'script must be "zh" or "en", got {script!r}.')
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

    @staticmethod
    def chinese_words(question: str, leave_out: Iterable[str] = ()) -> list[str]:
        """Chinese words of a question as BM25 reads them (jieba's search mode also gives the parts of
        a long word: 深静脉血栓 -> 静脉, 血栓, ...), each once, stopwords out; without the pieces of
        the words that hold any of `leave_out` (阿替利珠单抗 for 珠单抗: not 阿替, 利珠 or 单抗)."""
        # One text for the words, the names and jieba's offsets: NFKC lengthens some characters (㎏).
        question = unicodedata.normalize("NFKC", question)
        words = [t for t in tokenize(question) if _HAN_WORD.fullmatch(t)]
        names = [unicodedata.normalize("NFKC", n) for n in leave_out]
        spans = [(m.start(), m.end()) for name in names for m in re.finditer(re.escape(name), question)]
        if spans:
            held = [w for w, s, e in jieba_words(question) if any(s < b and a < e for a, b in spans)]
            held.append("".join(held))  # a name jieba splits: its pieces may straddle the split
            words = [w for w in words if not any(w in h for h in held)]
        return list(dict.fromkeys(words))

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
        """`translate` for phrase vectors already encoded (the query analyser keeps each phrase's
        `nearest` words instead, for later questions, and merges them itself)."""
        return self.merge(self.nearest(phrase_vectors, per_phrase), threshold)

    def nearest(self, phrase_vectors: np.ndarray, per_phrase: int = 2) -> list[tuple[tuple[str, float], ...]]:
        """Each phrase's `per_phrase` closest corpus words with their cosines, closest first: what a
        phrase translates to whatever the threshold, so it can be kept for the next question."""
        if not len(phrase_vectors) or not self.vocab:
            return [() for _ in range(len(phrase_vectors))]
        sims = np.asarray(phrase_vectors, np.float32) @ self.vectors.T
        k = min(per_phrase, sims.shape[1])
        # A partial sort: a large corpus's lexicon has 50,000 words, and only the first few are read.
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out = []
        for row, cols in zip(sims, top, strict=True):
            best = sorted(cols.tolist(), key=lambda j: (-row[j], j))
            out.append(tuple((self.vocab[j], float(row[j])) for j in best))
        return out

    @staticmethod
    def merge(per_phrase: Iterable[Iterable[tuple[str, float]]], threshold: float = 0.5) -> list[str]:
        """The words of `nearest` at or above `threshold`, each at its best cosine over the phrases,
        closest first (ties: the first phrase's word first)."""
        found: dict[str, float] = {}
        for pairs in per_phrase:
            for word, sim in pairs:
                if sim >= threshold:
                    found[word] = max(found.get(word, 0.0), sim)
        return sorted(found, key=lambda w: -found[w])

    def save(self, folder: Path, script: str = "zh") -> None:
        vocab_file, vectors_file = _files(script)
        (folder / vocab_file).write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        np.save(folder / vectors_file, self.vectors, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, script: str = "zh") -> Lexicon:
        vocab_file, vectors_file = _files(script)
        vocab = json.loads((folder / vocab_file).read_text(encoding="utf-8"))
        return cls(vocab, np.load(folder / vectors_file, allow_pickle=False))


def _files(script: str) -> tuple[str, str]:
    if script not in FILES:
        raise ValueError(f'script must be "zh" or "en", got {script!r}.')
    return FILES[script]


def _english_words(texts: Iterable[str]) -> Counter:
    """Each English word of the texts counted as BM25 counts it (plurals folded), under its most
    frequent written form: "diabetes" is what the encoder and e5 read, BM25 folds it again."""
    forms = Counter(w for text in texts for w in written_words(text) if _EN_VOCAB_WORD.fullmatch(w))
    counts: Counter = Counter()
    best: dict[str, str] = {}
    for word, n in sorted(forms.items()):
        key = fold_plural(word)
        counts[key] += n
        if key not in best or n > forms[best[key]]:
            best[key] = word
    return Counter({best[key]: n for key, n in counts.items()})


class PhraseCache:
    """Each phrase's nearest corpus words (`Lexicon.nearest`), kept for later questions.

    A question's phrases ("lenalidomide", "poems syndrome", 血栓) recur from one question to the
    next about the same papers; each new one costs a cross-lingual encode and a pass over a lexicon.
    At most `size` phrases are kept, the least recently used leaving first. One cache belongs to one
    index's two lexicons (the query analyser's): an English phrase is looked up in the Chinese words
    only and a Chinese word in the English ones, so their keys never meet. Several questions use it
    at once in the app.
    """

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._pairs: OrderedDict[str, tuple[tuple[str, float], ...]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pairs)

    def get(self, phrases: Iterable[str]) -> dict[str, tuple[tuple[str, float], ...]]:
        """The phrases already known, marked as used."""
        with self._lock:
            found = {p: self._pairs[p] for p in phrases if p in self._pairs}
            for p in found:
                self._pairs.move_to_end(p)
        return found

    def put(self, pairs: dict[str, tuple[tuple[str, float], ...]]) -> None:
        if not self.size:
            return
        with self._lock:
            self._pairs.update(pairs)
            for p in pairs:
                self._pairs.move_to_end(p)
            while len(self._pairs) > self.size:
                self._pairs.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._pairs.clear()

"""Retrieval modes over a loaded index: dense (e5 + FAISS), bm25 (jieba + words) and hybrid.

The hybrid mode is language-aware. Candidates come from e5, the cross-lingual encoder and BM25;
each candidate is then scored by several signals (chunk and best-sentence similarity under both
encoders, BM25), every dense signal standardised *within the passage's language* — e5 scores a
passage in the question's language higher whatever it says, which would let English abstracts crowd
out the Chinese body text for an English question — and the signals are summed with weights.
For an English question, Chinese words induced from the corpus (rag.terms.lexicon) are added to the BM25
query and to the e5 query, which moves both toward the Chinese text that holds the facts.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from rag.lang import detect_lang
from rag.terms.drug_names import DrugNames
from rag.types import Hit

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder
    from rag.indexing.index import Index

MODES = ("dense", "bm25", "hybrid")
# Sentences that stand for the whole index when an English question's mean similarity is taken
# (Retriever.evidence); 4,096 rows of 512 floats are 8 MB, and the mean over them barely moves.
BACKGROUND_SENTENCES = 4096


@dataclass(frozen=True)
class RetrievalSettings:
    candidates: int = 50  # how deep each source list is read before scoring
    fusion: str = "zscore"  # "zscore" (language-aware weighted sum) or "rrf" (naive reciprocal rank)
    rrf_k: int = 60
    w_chunk: float = 1.0  # e5, chunk vector
    w_sentence: float = 1.0  # e5, best sentence of the chunk
    # The cross-lingual encoder ranks questions against passages less well than e5 (eval/ablation.py:
    # at full weight, dropping it raised MRR@10). Any weight from 0.3 to 0.7 beat 1.0 on both halves of
    # the gold questions in each language; 0.3 also kept Recall@5.
    w_xl_chunk: float = 0.3  # cross-lingual encoder, chunk vector
    w_xl_sentence: float = 0.3  # cross-lingual encoder, best sentence
    w_bm25_zh: float = 0.5  # BM25 weight for a Chinese question
    w_bm25_en: float = 0.25  # for an English question: only through the glossary and the induced lexicon
    by_language: bool = True  # standardise dense scores within each passage language
    glossary: bool = (
        False  # expand the BM25 query with glossary terms (no gain over the lexicon: eval/ablation.py)
    )
    lexicon: bool = True  # add induced Chinese words of an English question to its BM25 query
    lexicon_threshold: float = 0.5
    lexicon_dense: bool = True  # also append the induced Chinese words to an English question's e5 query
    # ... but only the closest ones: an English question induces about 20 words, and e5's time grows with
    # its input (English hybrid retrieval p50 60 ms with all of them, 48 ms with 12; MRR@10 en 0.845 vs 0.832).
    lexicon_dense_max: int = 12
    drug_names: bool = True  # an English drug name's Chinese comes from its sound, not the lexicon

    def __post_init__(self) -> None:
        if self.fusion not in ("zscore", "rrf"):
            raise ValueError(f"fusion must be 'zscore' or 'rrf', got {self.fusion!r}.")
        if self.candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {self.candidates}.")

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> RetrievalSettings:
        return replace(self, **changes)


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


class Retriever:
    """Ranks an index's chunks for a question. The embedder must be the one the index was built with."""

    def __init__(self, index: Index, embedder: Embedder, settings: RetrievalSettings | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings or RetrievalSettings()
        self._ranges = index.extras.chunk_sentence_ranges(len(index.chunks))
        self._chunk_lang = np.array([c.lang for c in index.chunks])
        # The last question's cross-lingual vector and induced words: the evidence check and the
        # answerer's sentence scoring right after retrieval reuse them instead of encoding again.
        self._last_encoding: tuple[str, str, np.ndarray | None, list[str]] | None = None
        self._xl_background: np.ndarray | None = None
        self._drugs: DrugNames | None = None

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

    def induced_chinese(self, question: str, lang: str) -> list[str]:
        """Chinese words of the corpus nearest to an English question's phrases (empty for Chinese)."""
        return self.question_encoding(question, lang)[1]

    def dense_query(self, question: str, induced: list[str]) -> str:
        """The text e5 embeds for the question in hybrid mode."""
        s = self.settings
        return (
            " ".join([question, *induced[: s.lexicon_dense_max]]) if s.lexicon_dense and induced else question
        )

    def question_encoding(self, question: str, lang: str) -> tuple[np.ndarray | None, list[str]]:
        """The question's cross-lingual vector and its induced Chinese words, in one encoder call."""
        last = self._last_encoding
        if last is not None and last[:2] == (question, lang):
            return last[2], last[3]
        s, ex, xl = self.settings, self.index.extras, self.index.crosslingual
        if xl is None or ex.xl_index is None:
            return None, []
        use_lexicon = s.lexicon and lang == "en" and ex.lexicon is not None
        # A drug name's Chinese is found by its sound (rag.terms.drug_names): the lexicon has no vector for
        # a name it never saw and maps it to whatever is near (everolimus -> 紫杉醇).
        named = self._chinese_drug_names(question) if use_lexicon and s.drug_names else {}
        phrases = ex.lexicon.phrases(question) if use_lexicon else []
        phrases = [p for p in phrases if not named.keys() & set(p.split())]
        vectors = xl.embed_queries([question, *phrases])
        induced = ex.lexicon.translate_vectors(vectors[1:], s.lexicon_threshold) if phrases else []
        induced = [*named.values(), *(w for w in induced if w not in named.values())]
        self._last_encoding = (question, lang, vectors[0], induced)
        return vectors[0], induced

    def drug_names(self) -> DrugNames:
        """The papers' drug names, read from the documents on first use (an English question)."""
        if self._drugs is None:
            self._drugs = DrugNames(d.text for d in self.index.documents.values())
        return self._drugs

    def _chinese_drug_names(self, question: str) -> dict[str, str]:
        """English drug names of the question -> the papers' Chinese name for each, where one sounds alike."""
        found = {}
        for word in dict.fromkeys(re.findall(r"[a-z]+", question.lower())):
            names = self.drug_names().chinese_names(word)
            if names:
                found[word] = names[0]
        return found

    def bm25_query(self, question: str, lang: str, induced: list[str] | None = None) -> str:
        """The question as BM25 reads it in hybrid mode: glossary terms and, for English, induced Chinese."""
        query = (
            self.index.extras.glossary.expand_query(question, lang) if self.settings.glossary else question
        )
        induced = self.induced_chinese(question, lang) if induced is None else induced
        return " ".join([query, *induced])

    def _hybrid(self, question: str, k: int) -> list[Hit]:
        s, ex, index = self.settings, self.index.extras, self.index
        lang = detect_lang(question)
        depth = max(k, s.candidates)
        qx, induced = self.question_encoding(question, lang)
        q = self.query_vector(self.dense_query(question, induced))

        lists = [[h.chunk.id for h in index.search_dense(q, depth)]]
        if qx is not None:
            _, ids = ex.xl_index.search(qx.reshape(1, -1), depth)
            lists.append([index.chunks[i].id for i in ids[0] if i >= 0])
        bm25_hits = index.search_bm25(self.bm25_query(question, lang, induced), depth)
        lists.append([h.chunk.id for h in bm25_hits])
        if s.fusion == "rrf":
            chunks = {cid: index.chunks[index.position(cid)] for ids in lists for cid in ids}
            fused = rrf_fuse(lists, [1.0] * len(lists), s.rrf_k)
            return [Hit(chunks[cid], score, rank) for rank, (cid, score) in enumerate(fused[:k], 1)]

        ids = np.array(
            sorted({index.position(cid) for cid in (c for lst in lists for c in lst)}), dtype=np.int64
        )
        groups = self._chunk_lang[ids] if s.by_language else None
        bm25 = {index.position(h.chunk.id): h.score for h in bm25_hits}
        score = np.zeros(len(ids))
        score += s.w_chunk * standardise(index.vectors[ids] @ q, groups)
        score += s.w_sentence * standardise(self._best_sentence(ids, ex.sentence_vectors, q), groups)
        if qx is not None:
            score += s.w_xl_chunk * standardise(ex.xl_vectors[ids] @ qx, groups)
            score += s.w_xl_sentence * standardise(
                self._best_sentence(ids, ex.xl_sentence_vectors, qx), groups
            )
        w_bm25 = s.w_bm25_zh if lang == "zh" else s.w_bm25_en
        if w_bm25:
            score += w_bm25 * standardise(np.array([bm25.get(int(i), 0.0) for i in ids]))
        order = np.argsort(-score, kind="stable")[:k]
        return [Hit(index.chunks[ids[j]], float(score[j]), rank) for rank, j in enumerate(order, 1)]

    def evidence(self, question: str, lang: str, hits: Sequence[Hit]) -> float:
        """How well the best sentence of the hits matches the question, in [0, 1], for abstention.

        Absolute similarities mean something only for an encoder that treats the language pair
        evenly: e5 for a Chinese question (Chinese text), the cross-lingual encoder for an English one
        (e5 rates any English abstract sentence high for an English question). Each language gets its
        own calibrated threshold (rag.abstain.calibration).

        Cross-lingual cosines also carry an offset of their own per question: some English questions
        sit close to every Chinese sentence, others far from all. So an English question's evidence is
        how far its best sentence stands above its mean similarity to the index's sentences. On the
        gold questions this lifted the ranking AUC of answerable over unanswerable from 0.84 to 0.89
        and, with a threshold chosen on one half of the pairs, held-out F1 from 0.36 / 0.40 to
        0.40 / 0.75. Centring did not help Chinese questions (e5), which keep the plain similarity.
        """
        if not hits:
            return 0.0
        ids = np.array([self.index.position(h.chunk.id) for h in hits], dtype=np.int64)
        ex, xl = self.index.extras, self.index.crosslingual
        if lang == "en" and xl is not None and ex.xl_sentence_vectors is not None:
            qx = self.question_encoding(question, lang)[0]
            best = self._best_sentence(ids, ex.xl_sentence_vectors, qx).max()
            best -= float((self._background() @ qx).mean())
        else:
            best = self._best_sentence(ids, ex.sentence_vectors, self.query_vector(question)).max()
        return float(np.clip(best, 0.0, 1.0))

    def _background(self) -> np.ndarray:
        """Cross-lingual vectors of up to BACKGROUND_SENTENCES sentences spread evenly over the index:
        the mean similarity to them stands for the mean over all, at a fixed cost per question."""
        if self._xl_background is None:
            vectors = self.index.extras.xl_sentence_vectors
            rows = np.unique(
                np.linspace(0, len(vectors) - 1, min(len(vectors), BACKGROUND_SENTENCES)).astype(int)
            )
            self._xl_background = np.ascontiguousarray(vectors[rows], dtype=np.float32)
        return self._xl_background

    def _best_sentence(self, ids: np.ndarray, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
        """For each chunk in ids, the similarity of its best-matching sentence to the query."""
        ranges = self._ranges[ids]
        rows = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
        lengths = ranges[:, 1] - ranges[:, 0]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return np.maximum.reduceat(vectors[rows] @ query, starts)

"""Retrieval modes over a loaded index: dense (e5 + FAISS), bm25 (jieba + words) and hybrid.

The hybrid mode is language-aware. Candidates come from e5, the cross-lingual encoder and BM25;
each candidate is then scored by several signals (chunk and best-sentence similarity under both
encoders, BM25), every dense signal standardised *within the passage's language* — e5 scores a
passage in the question's language higher whatever it says, which would let English abstracts crowd
out the Chinese body text for an English question — and the signals are summed with weights.
For an English question, Chinese words induced from the corpus (rag.terms.lexicon) are added to the BM25
query and to the e5 query, which moves both toward the Chinese text that holds the facts; for a Chinese
question over a corpus at least `refusal.language_share` English, English words likewise.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rag.retrieve.fusion import rrf_fuse, standardise
from rag.settings import RetrievalSettings
from rag.types import Hit

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder
    from rag.indexing.index import Index
    from rag.query.analysis import QueryAnalysis

MODES = ("dense", "bm25", "hybrid")


class Retriever:
    """Ranks an index's chunks for an analysed question (`rag.query.analysis`). The embedder must be
    the one the index was built with."""

    def __init__(self, index: Index, embedder: Embedder, settings: RetrievalSettings | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings or RetrievalSettings()
        self._ranges = index.extras.chunk_sentence_ranges(len(index.chunks))
        self._chunk_lang = np.array([c.lang for c in index.chunks])
        self._xl_background: np.ndarray | None = None

    def query_vector(self, text: str) -> np.ndarray:
        return self.embedder.embed_queries([text])[0]

    def search(self, query: QueryAnalysis, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        """The k best chunks; the hybrid mode needs an encoded analysis (`QueryAnalyser.analyse`)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}.")
        if mode == "dense":
            return self.index.search_dense(self.query_vector(query.text), k)
        if mode == "bm25":
            return self.index.search_bm25(query.text, k)
        if not query.encoded:
            raise ValueError(
                "hybrid retrieval needs an encoded question: QueryAnalyser.analyse(text, encode=True)"
            )
        return self._hybrid(query, k)

    def bm25_query(self, query: QueryAnalysis) -> str:
        """The question as BM25 reads it in hybrid mode: glossary terms and the induced words."""
        text = (
            self.index.extras.glossary.expand_query(query.text, query.lang)
            if self.settings.glossary
            else query.text
        )
        return " ".join([text, *query.induced])

    def _hybrid(self, query: QueryAnalysis, k: int) -> list[Hit]:
        s, ex, index = self.settings, self.index.extras, self.index
        lang, depth = query.lang, max(k, s.candidates)
        qx, q = query.crosslingual, query.e5

        lists = [[h.chunk.id for h in index.search_dense(q, depth)]]
        if qx is not None:
            _, ids = ex.xl_index.search(qx.reshape(1, -1), depth)
            lists.append([index.chunks[i].id for i in ids[0] if i >= 0])
        bm25_hits = index.search_bm25(self.bm25_query(query), depth)
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

    def evidence(self, query: QueryAnalysis, hits: Sequence[Hit]) -> float:
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
        ex = self.index.extras
        if (
            self.evidence_key(query, hits) == "en"
            and query.crosslingual is not None
            and ex.xl_sentence_vectors is not None
        ):
            qx = query.crosslingual
            best = self._best_sentence(ids, ex.xl_sentence_vectors, qx).max()
            best -= float((self._background() @ qx).mean())
        else:
            # The plain question's e5 vector: the dense query may add induced words.
            q = (
                query.e5
                if query.e5 is not None and query.dense_query == query.text
                else self.query_vector(query.text)
            )
            best = self._best_sentence(ids, ex.sentence_vectors, q).max()
        return float(np.clip(best, 0.0, 1.0))

    def evidence_key(self, query: QueryAnalysis, hits: Sequence[Hit]) -> str:
        """Which measure, and so which calibrated threshold (`abstain.zh` / `abstain.en`), judges the
        question's evidence: "zh", e5's plain similarity, for a Chinese question over papers mostly in
        Chinese; "en", the cross-lingual one, otherwise. e5 cosines across languages run lower than
        within one, so a Chinese question about English papers judged by the Chinese threshold was
        refused whatever it asked (all 16 answerable ones of `eval/pdfs_en.jsonl`); the cross-lingual
        threshold was calibrated on questions in another language than their papers.

        With `retrieval.evidence_by_paper`, "mostly in Chinese" is said of the best hit's paper: in a
        folder of Chinese Wikipedia articles and more English pages, a Chinese question about a Chinese
        article was judged as a cross-lingual one, and the cross-lingual threshold refused none of
        them, answerable or not."""
        if query.lang != "zh":
            return "en"
        if self.settings.evidence_by_paper and hits:
            lang = self._paper_lang.get(hits[0].chunk.doc_id)
            if lang is not None:
                return "zh" if lang == "zh" else "en"
        return "zh" if self._corpus_lang == "zh" else "en"

    @functools.cached_property
    def _corpus_lang(self) -> str:
        return _majority(self._chunk_lang)

    @functools.cached_property
    def _paper_lang(self) -> dict[str, str]:
        """doc id -> the language most of its chunks are in: the chunks are what the evidence measure
        reads, so a Chinese paper with English reference chunks still counts as Chinese."""
        by_doc: dict[str, list[str]] = {}
        for chunk in self.index.chunks:
            by_doc.setdefault(chunk.doc_id, []).append(chunk.lang)
        return {doc: _majority(np.array(langs)) for doc, langs in by_doc.items()}

    def _background(self) -> np.ndarray:
        """Cross-lingual vectors of up to `background_sentences` sentences spread evenly over the index:
        the mean similarity to them stands for the mean over all, at a fixed cost per question."""
        if self._xl_background is None:
            vectors = self.index.extras.xl_sentence_vectors
            rows = np.unique(
                np.linspace(
                    0, len(vectors) - 1, min(len(vectors), self.settings.background_sentences)
                ).astype(int)
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


def _majority(langs: np.ndarray) -> str:
    values, counts = np.unique(langs, return_counts=True)
    return str(values[counts.argmax()]) if len(values) else "zh"

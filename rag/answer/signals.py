"""What retrieval knows about a question, turned on the candidate sentences of an answer.

The answerer picks 1-3 sentences out of the best chunks. Scoring them with the plain question's e5
vector alone repeats the weakness retrieval already fixed: for an English question e5 prefers any
English abstract sentence, and a Chinese sentence shares no word with the question. So sentences are
scored with what the hybrid retriever knows about the question: e5 against the question as retrieval
embedded it (with the words induced in the other language: Chinese for an English question, English
for a Chinese one over English papers), and those induced words as extra lexical matches.

The cross-lingual encoder is not a sentence signal. It finds the right chunks for an English question,
but inside them it rates highest the sentences that restate the question's topic ("Trousseau's
syndrome is…"), not the one that answers it: with it, the answer sentence was among the top three for
0.80 of the English gold questions; without it, 0.84 (0.76 -> 0.82 and 0.84 -> 0.86 on the two halves
of the gold pairs), with Chinese questions unchanged.

A sentence's e5 similarity is half its own and half that of the sentence read in place: its section's
name and the sentence before it (`rag.ingest.sentences.context_text`). The sentence that answers often names
neither the question's subject nor its wording ("DTC 进入 G0 期并降低代谢活性", after "…进入单细胞休眠
状态"); in place, it does. On the gold questions the answer hit rate went 0.898 -> 0.918 with it (each
half of the gold pairs gained or held).

The question also names its subject, and every sentence of a paper about that subject matches the
name: "加利福尼亚滑银汉鱼的体长是多少？" scores the article's opening sentence ("加利福尼亚滑银汉鱼…为辐鳍鱼纲…
的一种") above "…体长可达15公分". So `focus_share` of the e5 similarity to a document's sentences can
be to the question without the words of that document's title (`focus_text`: "的体长是多少？"), which is what it
asks about the subject. Only when the title is in the question's language: an English question about a
Chinese paper names it in other words, and its text without them would lose the induced Chinese words
retrieval added. Off by default: at 0.5 it lifted CMRC's answer hit from 0.819 to 0.852 and MedQuAD's
from 0.645 to 0.662, and cost one refusal of heldout's 24 unanswerable questions (eval/README.md).

`topic` is the cheaper, kept form of the same idea, for the ranking alone. Each sentence is also
compared with its paper's title asked as a question ("What is the outlook for Aicardi syndrome?"
against "Aicardi syndrome"), and the ranking takes `scoring.topic_share` of that likeness off, measured
against the paper's other candidate sentences: the opening sentence that restates the subject loses
what it won by being the most like the title, the answer ("The prognosis for girls with Aicardi
syndrome varies…") keeps what it shares with what is asked. Only for papers whose title words the
question uses while asking more than the subject (not "What is X?"). The similarity that judges
refusals is left as it was, but a different first quote can change what the quote rules see
(eval/README.md, "Sentences contrasted with their paper's title").
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.answer.candidates import rows_by_doc
from rag.encode.cache import CachedPassageEmbedder
from rag.ingest.sentences import context_text
from rag.lang import detect_lang
from rag.terms.lexical import tokenize

if TYPE_CHECKING:
    from rag.answer.candidates import Sentence
    from rag.encode.embedding import Embedder
    from rag.indexing.index import Index
    from rag.query.analysis import QueryAnalysis


@dataclass(frozen=True)
class SignalColumns:
    """What sentence selection takes from retrieval for one question and its candidate sentences."""

    dense: np.ndarray  # e5 cosine to the question as retrieval embedded it, in [-1, 1]
    extra_words: tuple[str, ...]  # words to count as question words (those induced in the other language)
    # e5 similarity (alone and in place, as `dense`) to the sentence's paper title asked as a question;
    # 0 for the papers `SentenceSignals._topic` leaves alone
    topic: np.ndarray | None = None


class SentenceSignals:
    """Scores sentence texts against an analysed question with retrieval's encodings.

    The question's e5 vector is the one retrieval embedded (`QueryAnalysis.e5`); sentence vectors come
    from `embedder`, which the pipeline wraps in a cache over the index's sentence vectors. In-place
    vectors come from the index too (built with it); a sentence the index does not hold is embedded once.
    Paper titles, for `SignalColumns.topic`, come from the index (embedded at build time as queries);
    a title it lacks (an index built before) is embedded the first time a question meets it, and kept.
    """

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        context_share: float = 0.5,
        focus_share: float = 0.0,
        topic: bool = True,
    ) -> None:
        """`context_share`: of a sentence's e5 similarity, the share from reading it in place;
        `focus_share`: the share from the question without its document's title words; `topic`: also
        give each sentence's similarity to its paper's title (`SignalColumns.topic`)."""
        self.index = index
        self.embedder = embedder
        self.context_share = context_share
        self.focus_share = focus_share
        self.topic = topic
        self._in_place: CachedPassageEmbedder | None = None
        self._titles: dict[str, np.ndarray] = {}  # e5 query vector of each paper title met so far
        self._lock = threading.Lock()  # the app answers several questions at once

    def __call__(
        self, query: QueryAnalysis, texts: list[str], sentences: Sequence[Sentence] | None = None
    ) -> SignalColumns:
        """`sentences`, where the texts sit, add the in-place similarity (left out when not given, or
        when the index has no in-place vectors)."""
        if query.e5 is None:
            raise ValueError("sentence signals need an encoded question (QueryAnalyser.analyse)")
        q = np.asarray(query.e5, dtype=np.float32)
        if not texts:
            return SignalColumns(np.zeros(0), query.induced)
        rows = [s.row for s in sentences] if sentences is not None else [None] * len(texts)
        alone = self._vectors(texts, rows, self.index.sentence_vectors, self.embedder)
        dense = alone @ q
        in_place = self._in_place_embedder() if sentences is not None and self.context_share else None
        around = None
        if in_place is not None:
            docs = self.index.documents
            contexts = [
                ""
                if s.row is not None
                else context_text(docs[s.doc_id].text, s.section, s.start, s.end, docs[s.doc_id].title)
                for s in sentences
            ]
            around = self._vectors(contexts, rows, self.index.context_vectors, in_place)
            dense = (1 - self.context_share) * dense + self.context_share * (around @ q)
        topic = None
        if sentences is not None and self.topic:
            topic = self._topic(query, sentences, alone, around)
        if sentences is not None and self.focus_share:
            dense = self._with_focus(query, sentences, alone, dense)
        return SignalColumns(dense, query.induced, topic)

    def _topic(
        self,
        query: QueryAnalysis,
        sentences: Sequence[Sentence],
        alone: np.ndarray,
        around: np.ndarray | None,
    ) -> np.ndarray:
        """Each sentence's e5 similarity to its paper's title asked as a question, mixed with the
        in-place similarity as the question's is, so that the two differ only by what is asked; 0 for
        a paper the contrast leaves alone."""
        by_doc = rows_by_doc(sentences)
        # Only a paper whose subject the question names (its title words: the words as written, so an
        # English question names a Chinese paper in other words and is left alone) and asks something
        # about beyond it: "What is Aicardi syndrome?" is answered by the sentence that restates the
        # subject. A paper with one candidate has nothing to contrast it with.
        titles = {doc: sentences[at[0]].title for doc, at in by_doc.items() if len(at) > 1}
        named = {t: bool(tokenize(focus_text(query.text, t))) for t in set(titles.values())}
        papers = {doc: title for doc, title in titles.items() if named[title]}
        with self._lock:
            new = [t for t in dict.fromkeys(papers.values()) if t not in self._titles]
        if new:
            found = self.index.extras.stored_titles(new)  # the index's (an older index: none)
            missing = [t for t in new if t not in found]
            if missing:
                # One e5 call for the titles not held, kept: the cache grows to the papers' count. The
                # model itself, not the cached embedder, whose few query slots belong to the questions.
                model = getattr(self.embedder, "embedder", self.embedder)
                found.update(zip(missing, np.asarray(model.embed_queries(missing), np.float32), strict=True))
            with self._lock:
                self._titles.update(found)
        out = np.zeros(len(sentences), np.float32)
        for doc, title in papers.items():
            at = by_doc[doc]
            v = self._titles[title]
            sim = alone[at] @ v
            if around is not None:
                sim = (1 - self.context_share) * sim + self.context_share * (around[at] @ v)
            out[at] = sim
        return out

    def _with_focus(
        self, query: QueryAnalysis, sentences: Sequence[Sentence], alone: np.ndarray, dense: np.ndarray
    ) -> np.ndarray:
        """`dense` mixed, for each document whose title words the question uses, with the similarity
        to the question without them; the focus texts are embedded in one call."""
        base = query.dense_query or query.text
        focus: dict[str, str] = {}
        for s in sentences:
            if s.doc_id not in focus and detect_lang(s.title) == query.lang:
                focus[s.doc_id] = focus_text(base, s.title)
        wanted = list(dict.fromkeys(t for t in focus.values() if t))
        if not wanted:
            return dense
        vectors = dict(zip(wanted, np.asarray(self.embedder.embed_queries(wanted), np.float32), strict=True))
        out = dense.copy()
        by_doc = rows_by_doc(sentences)
        for doc_id, text in focus.items():
            if not text:
                continue
            at = by_doc[doc_id]
            out[at] = (1 - self.focus_share) * dense[at] + self.focus_share * (alone[at] @ vectors[text])
        return out

    @staticmethod
    def _vectors(texts: list[str], rows: list[int | None], vectors, embedder) -> np.ndarray:
        """The texts' e5 vectors: a sentence of the index's table by its row, any other (a sentence
        extended over the next one) embedded now."""
        out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        known = [i for i, r in enumerate(rows) if r is not None]
        if known:
            out[known] = np.asarray(vectors[[rows[i] for i in known]], dtype=np.float32)
        fresh = [i for i, r in enumerate(rows) if r is None]
        if fresh:
            out[fresh] = np.asarray(embedder.embed_passages([texts[i] for i in fresh]), dtype=np.float32)
        return out

    def _in_place_embedder(self) -> CachedPassageEmbedder | None:
        if self._in_place is None:
            if self.index.context_vectors is None:
                return None
            self._in_place = CachedPassageEmbedder(
                self.embedder, self.index.context_texts, self.index.context_vectors
            )
        return self._in_place


def focus_text(question: str, title: str) -> str:
    """The question without the words of a document's title (longest first, any case), or "" when it
    uses none of them or nothing but them: what it asks about that document's subject."""
    words = sorted({w for w in tokenize(title) if len(w) >= 2}, key=len, reverse=True)
    text = question
    for word in words:
        text = re.sub(_as_written(word), " ", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+", " ", text).strip()
    return text if text != question.strip() and re.search(r"\w", text) else ""


def _as_written(word: str) -> str:
    """A title word as a question writes it: a Latin word whole, or with its plural (a title's "age" is
    not in "dosage", "CT" not in "effect"); a Chinese one anywhere, as Chinese has no spaces."""
    if re.fullmatch(r"[a-z0-9]+", word):
        return rf"(?<![a-z0-9]){re.escape(word)}(?:e?s)?(?![a-z0-9])"
    return re.escape(word)

"""Whether the best passage's paper writes the question's rare terms: the counter-evidence to a low
evidence score.

e5's similarity of a question to its best sentence is a blunt measure: on Chinese Wikipedia an
answerable question scored 0.88 where the threshold was 0.9, while the words of its subject (战国无双)
and of what it asks (开发) are written by a few articles only, the one retrieved first among them. A
question about a subject the corpus lacks has no such words: its rare words are written, if at all,
by other documents.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.lang import HAN_RE
from rag.query.absent_terms import MIN_LATIN, zipf
from rag.terms.lexical import fold_plural, tokenize
from rag.types import Hit

if TYPE_CHECKING:
    from rag.query.analysis import QueryAnalysis


@dataclass(frozen=True)
class TermCoverage:
    writing: Callable[[str], frozenset[str]]  # term -> the documents writing it (Index.documents_writing)
    n_documents: int
    max_share: float = 0.05  # refusal.covered_share: rare = written by at most this share (at least 1)
    min_terms: int = 2  # refusal.covered_min: one shared rare word is chance; two name the subject
    common_zipf: float = 4.0  # refusal.common_zipf: words this frequent in the language are never rare
    # refusal.covered_title: a rare term that is the best paper's whole title names its subject
    by_title: bool = False

    def rare_terms(self, text: str) -> dict[str, frozenset[str]]:
        """The question's terms (as BM25 reads them) that at least one and at most `max_share` of the
        documents write, with those documents. In a library of five papers every word is written by
        one of them or none, so a term must also be rare in its language (wordfreq's Zipf, as for
        `absent_terms`). Short pieces say nothing: a Han character alone, Latin under three letters,
        numbers."""
        limit = max(1, int(self.max_share * self.n_documents))
        rare: dict[str, frozenset[str]] = {}
        for term in dict.fromkeys(tokenize(text)):
            han = bool(HAN_RE.search(term))
            if len(term) < (2 if han else MIN_LATIN) or not (han or any(c.isalpha() for c in term)):
                continue
            if zipf(term, "zh" if han else "en") >= self.common_zipf:
                continue
            docs = self.writing(term)
            if 1 <= len(docs) <= limit:
                rare[term] = docs
        return rare

    def covered(self, query: QueryAnalysis, hits: Sequence[Hit]) -> list[str]:
        """The rare terms when the best hit's document writes every one of them and they make at
        least `min_terms` separate stretches of the question; else []. jieba's search mode cuts one
        name into pieces (吉非替尼: 吉非, 替尼; 胰腺癌: 胰腺, 胰腺癌): pieces that overlap or touch
        in the question are one term."""
        if not hits:
            return []
        rare = self.rare_terms(query.text)
        top = hits[0].chunk.doc_id
        if not rare or any(top not in docs for docs in rare.values()):
            return []
        # One stretch is chance, unless it is the best paper's whole title: the paper is about what
        # the question names (an article 硕塞 for "硕塞卒于哪一年？"). A rare term is no everyday word
        # and is written by few papers, so a title many papers write, or one a term merely contains,
        # does not count.
        by_title = self.by_title and _title_key(hits[0].chunk.title) in rare
        if _stretches(rare, query.text) < self.min_terms and not by_title:
            return []
        return list(rare)


def _title_key(title: str) -> str:
    """A title as `tokenize` reads a term, without a qualifier in brackets: 纽波特 (罗得岛州) -> 纽波特,
    "Measles" -> measle (BM25 folds plurals)."""
    title = re.sub(r"\s*\([^()]*\)\s*$", "", unicodedata.normalize("NFKC", title))  # NFKC: （） are ()
    return fold_plural(title.strip().lower())


def _stretches(terms: Iterable[str], text: str) -> int:
    """How many separate stretches of `text` the terms cover (each at its first place in the text)."""
    text = unicodedata.normalize("NFKC", text).lower()  # as `tokenize` reads it
    spans = sorted((i, i + len(t)) for t in terms if (i := text.find(t)) >= 0)
    count, end = 0, -1
    for start, stop in spans:
        if start > end:
            count += 1
        end = max(end, stop)
    return count

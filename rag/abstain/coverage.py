"""Whether the best passage's paper writes the question's rare terms: the counter-evidence to a low
evidence score.

e5's similarity of a question to its best sentence is a blunt measure: on Chinese Wikipedia an
answerable question scored 0.88 where the threshold was 0.9, while its rarest words (战国, 无双) are
written by one article only, and that article is the one retrieved first. A question about a subject
the corpus lacks has no such words: its rare words are written, if at all, by other documents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.lang import HAN_RE
from rag.terms.lexical import tokenize
from rag.types import Hit

if TYPE_CHECKING:
    from rag.query.analysis import QueryAnalysis


@dataclass(frozen=True)
class TermCoverage:
    writing: Callable[[str], frozenset[str]]  # term -> the documents writing it (Index.documents_writing)
    n_documents: int
    max_share: float = 0.05  # refusal.covered_share: rare = written by at most this share (at least 1)
    min_terms: int = 2  # refusal.covered_min: one shared rare word is chance; two name the subject

    def rare_terms(self, text: str) -> dict[str, frozenset[str]]:
        """The question's terms (as BM25 reads them) that at least one and at most `max_share` of the
        documents write, with those documents. Short pieces say nothing: a Han character alone, a
        Latin token under three letters, numbers."""
        limit = max(1, int(self.max_share * self.n_documents))
        rare: dict[str, frozenset[str]] = {}
        for term in dict.fromkeys(tokenize(text)):
            han = bool(HAN_RE.search(term))
            if len(term) < (2 if han else 3) or not (han or any(c.isalpha() for c in term)):
                continue
            docs = self.writing(term)
            if 1 <= len(docs) <= limit:
                rare[term] = docs
        return rare

    def covered(self, query: QueryAnalysis, hits: Sequence[Hit]) -> list[str]:
        """The rare terms when there are at least `min_terms` and the best hit's document writes every
        one of them; else []."""
        if not hits:
            return []
        rare = self.rare_terms(query.text)
        top = hits[0].chunk.doc_id
        if len(rare) < self.min_terms or any(top not in docs for docs in rare.values()):
            return []
        return list(rare)

"""Data types shared by every stage. Offsets are character offsets into the normalised document text."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One source document after loading and normalisation.

    `text` is the normalised text; every chunk, hit and quote offset refers to it. A paged format
    (PDF) keeps where each page starts in it, so any offset knows its page.
    """

    doc_id: str
    title: str
    path: str
    text: str
    sha256: str  # hash of the raw file bytes, for incremental re-indexing
    lang: str = "zh"  # dominant language of the body text: "zh" or "en"
    meta: dict = field(default_factory=dict, hash=False, compare=False)
    pages: tuple[int, ...] = ()  # offset in `text` where page i + 1 starts; () for unpaged formats
    ocr_pages: tuple[int, ...] = ()  # 1-based numbers of the pages whose text came from OCR

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding `offset`, or None for an unpaged format. A page left empty (a
        blank page) starts where the next one does, so the text there belongs to the later page."""
        if not self.pages:
            return None
        return max(1, bisect.bisect_right(self.pages, offset))

    def page_and_ocr(self, offset: int) -> tuple[int | None, bool]:
        """The page holding `offset` (see `page_at`) and whether that page was read by OCR."""
        page = self.page_at(offset)
        return page, page is not None and page in self.ocr_pages


@dataclass(frozen=True)
class Section:
    """A heading and the span of normalised text it governs (heading line included)."""

    path: tuple[str, ...]  # e.g. ("2 肿瘤相关VTE形成的分子机制", "2.3 ALK 基因突变与 VTE 的研究")
    start: int
    end: int

    @property
    def title(self) -> str:
        return " > ".join(self.path)


@dataclass(frozen=True)
class Chunk:
    """A retrievable span: `document.text[start:end] == text` always holds."""

    id: str
    doc_id: str
    title: str
    section: str  # section path joined with " > "
    start: int
    end: int
    text: str
    lang: str = "zh"
    page: int | None = None  # 1-based page where the chunk starts (paged formats only)
    ocr: bool = False  # that page's text came from OCR


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    rank: int = 0


@dataclass(frozen=True)
class Quote:
    """A verbatim span of a stored normalised document, cited as [n]."""

    n: int
    doc_id: str
    title: str
    section: str
    start: int
    end: int
    text: str
    page: int | None = None  # 1-based page where the quote starts (paged formats only)
    ocr: bool = False  # that page's text came from OCR

    def matches(self, doc_text: str) -> bool:
        """True when the quote is exactly `doc_text[start:end]`, the one check every caller shares."""
        # Offsets are checked before slicing: negative ones would slice from the end and might match.
        return 0 <= self.start < self.end <= len(doc_text) and doc_text[self.start : self.end] == self.text


@dataclass(frozen=True)
class Refusal:
    """Why an answer was refused: the rule's code, its detail for the notes, and the values its
    message (`refusal_<code>` in rag/templates/{zh,en}.json) is filled with, in either language."""

    code: str  # the rule's code, e.g. "unknown_names", "evidence" (rag.abstain.rules)
    note: str  # the detail, as the notes show it
    values: tuple[tuple[str, str], ...] = ()  # template fields, e.g. (("names", "KRAS"),)


@dataclass(frozen=True)
class Answer:
    question: str
    lang: str  # language of the question, and of the answer's framing
    abstained: bool
    answer: str
    quotes: tuple[Quote, ...] = ()
    hits: tuple[Hit, ...] = ()
    notes: tuple[str, ...] = ()  # e.g. why an LLM answer fell back to the extractive one
    refusal: Refusal | None = None  # why it abstained (None: answered, or abstained by an LLM)

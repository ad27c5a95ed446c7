"""Data types shared by every stage. Offsets are character offsets into the normalised document text."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One source document after loading and normalisation.

    `text` is the normalised text; every chunk, hit and quote offset refers to it.
    """

    doc_id: str
    title: str
    path: str
    text: str
    sha256: str  # hash of the raw file bytes, for incremental re-indexing
    lang: str = "zh"  # dominant language of the body text: "zh" or "en"
    meta: dict = field(default_factory=dict, hash=False, compare=False)


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

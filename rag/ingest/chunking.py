"""Split a normalised document into sections, then into chunks that never cross a section boundary."""

from __future__ import annotations

import re
from dataclasses import replace

from rag.ingest.headings import ABSTRACT_LABELS, UNTITLED, WHOLE, Heading, parse_heading
from rag.ingest.sentences import sentence_spans
from rag.lang import detect_lang
from rag.settings import ChunkerSettings
from rag.types import Chunk, Document, Section

_UNTITLED, _WHOLE = UNTITLED, WHOLE
# Text before the first heading that is this short and has no sentence is a title block, not a section.
_FRONT_MATTER_MAX = 200


def _lines(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text)]


class _Outline:
    """Accepts headings in document order and keeps the current section path."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, str]] = []  # (level, label)
        self.numbers: tuple[int, ...] = ()  # last accepted heading number, for sequence checks
        self.cn: tuple[int, ...] = ()
        self.abstract_parts: set[str] = set()  # structured-abstract labels seen in the open abstract

    def accept(self, h: Heading) -> bool:
        in_abstract = bool(self.stack) and self.stack[0][1] in ABSTRACT_LABELS
        if h.kind == "abstract":
            self.abstract_parts = set()
        if h.kind == "structured":
            # A part of the open abstract, unless the abstract already had it: then the paper's own
            # "Methods" has begun, a top-level section (as it is in a paper with no abstract heading).
            part = h.label.lower()
            if in_abstract and part not in self.abstract_parts:
                self.abstract_parts.add(part)
            else:
                h = replace(h, level=1)
        if h.kind == "numbered":
            if not _follows(self.numbers, h.number):
                return False
            self.numbers = h.number
        elif h.kind == "cn":
            new = (*self.cn[: h.level - 1], *h.number)
            if len(new) != h.level or not _follows(self.cn, new):
                return False
            self.cn = new
        elif h.kind == "keywords" and not in_abstract:
            return False  # keywords belong under an abstract
        while self.stack and self.stack[-1][0] >= h.level:
            self.stack.pop()
        self.stack.append((h.level, h.label))
        return True

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(label for _, label in self.stack)


def _follows(prev: tuple[int, ...], new: tuple[int, ...]) -> bool:
    """Whether `new` may come next after `prev` (one heading may be lost by the PDF extraction)."""
    depth = len(new)
    if depth > len(prev) + 1:
        return False
    if depth == len(prev) + 1:  # first child: 2 -> 2.1
        return new[:-1] == prev and new[-1] in (1, 2)
    # sibling or a return to a higher level: 2.3 -> 2.4, 2.3 -> 3
    return new[:-1] == prev[: depth - 1] and prev[depth - 1] < new[-1] <= prev[depth - 1] + 2


def find_sections(text: str, lang: str | None = None) -> list[Section]:
    """Sections in order; each spans from its heading line to the next accepted heading."""
    lang = lang or detect_lang(text)
    outline = _Outline()
    starts: list[tuple[int, tuple[str, ...]]] = []
    abstract_run_in_end: int | None = None  # a run-in abstract ("［摘要］ 目的…") is one paragraph
    lines = _lines(text)
    for i, (s, e) in enumerate(lines):
        heading = parse_heading(text[s:e])
        if heading and outline.accept(heading):
            starts.append((s, outline.path))
            if heading.kind == "abstract" and i + 1 < len(lines):
                abstract_run_in_end = lines[i + 1][1] if text[s:e].startswith(("[", "【")) else None
        elif abstract_run_in_end is not None and s > abstract_run_in_end:
            starts.append((s, (_UNTITLED[lang],)))
            abstract_run_in_end = None
    if not starts:
        return [Section((_WHOLE[lang],), 0, len(text))] if text.strip() else []
    sections = []
    lead = text[: starts[0][0]].strip()
    if lead and (len(lead) > _FRONT_MATTER_MAX or re.search(r"[。.!?]\s", lead + " ")):
        sections.append(Section((_UNTITLED[lang],), 0, starts[0][0]))
    bounds = [s for s, _ in starts] + [len(text)]
    for (start, path), end in zip(starts, bounds[1:], strict=False):
        sections.append(Section(path, start, end))
    return [_trim(text, sec) for sec in sections if text[sec.start : sec.end].strip()]


def _trim(text: str, sec: Section) -> Section:
    start, end = sec.start, sec.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Section(sec.path, start, end)


def _windows(spans: list[tuple[int, int]], settings: ChunkerSettings) -> list[tuple[int, int]]:
    """Group sentence spans into windows of at most max_chars, overlapping by up to overlap_chars."""
    pieces: list[tuple[int, int]] = []
    for s, e in spans:  # a sentence longer than a window is cut into window-sized pieces
        while e - s > settings.max_chars:
            pieces.append((s, s + settings.max_chars))
            s += settings.max_chars
        pieces.append((s, e))
    windows = []
    i = 0
    while i < len(pieces):
        j = i
        while j + 1 < len(pieces) and pieces[j + 1][1] - pieces[i][0] <= settings.max_chars:
            j += 1
        windows.append((pieces[i][0], pieces[j][1]))
        if j + 1 >= len(pieces):
            break
        k = j + 1  # step back over trailing sentences that fit in the overlap, but always advance
        while k - 1 > i and pieces[j][1] - pieces[k - 1][0] <= settings.overlap_chars:
            k -= 1
        i = k
    return windows


def chunk_document(doc: Document, settings: ChunkerSettings | None = None) -> list[Chunk]:
    """Chunks of doc.text; `doc.text[c.start:c.end] == c.text` holds for every chunk, and a chunk of a
    paged document knows the page it starts on."""
    settings = settings or ChunkerSettings()
    chunks = []
    for sec in find_sections(doc.text, doc.lang):
        spans = sentence_spans(doc.text, sec.start, sec.end)
        if len(spans) == 1 and parse_heading(doc.text[spans[0][0] : spans[0][1]]):
            continue  # a heading whose text is all in its subsections: nothing to retrieve
        for start, end in _windows(spans, settings):
            body = doc.text[start:end]
            page, ocr = doc.page_and_ocr(start)
            chunks.append(
                Chunk(
                    id=f"{doc.doc_id}:{start}-{end}",
                    doc_id=doc.doc_id,
                    title=doc.title,
                    section=sec.title,
                    start=start,
                    end=end,
                    text=body,
                    lang=detect_lang(body),
                    page=page,
                    ocr=ocr,
                )
            )
    return chunks

"""Sentence spans in mixed Chinese/English text, as character offsets (no whitespace tokenising)."""

from __future__ import annotations

import bisect
import functools
import re

from rag.ingest.headings import WHOLE
from rag.knowledge import language, languages
from rag.lang import HAN

# A sentence ends at Chinese or full stops/marks, or at ". " before a capital, CJK or a line end;
# "2.3", "e.g. x" and "et al. (" do not end one. NFKC has already turned "；？！" into ";?!".
_END = re.compile(rf"[。！？!?;；]+[”’\"」)）]*|\.(?=\s*$|\s+[A-Z{HAN}(\[]|[{HAN}])|\n")
# A full stop after an abbreviation (rag/data/lang/en.json) or an initial ("J. Smith") ends nothing.
_ABBREVIATIONS = "|".join(map(re.escape, language("en")["dot_abbreviations"]))
_NO_BREAK_BEFORE_DOT = re.compile(rf"(?:\b(?:{_ABBREVIATIONS})|\b[A-Z])$")
# Openings that point back to the sentence before (rag/data/lang/*.json): whole words where words are
# spaced apart ("It", not "Items").
_ANAPHOR = re.compile(
    "|".join(
        rf"{re.escape(w)}\b" if language(code).get("word_boundaries") else re.escape(w)
        for code in languages()
        for w in language(code).get("anaphors", ())
    )
    or "(?!)"
)


def points_back(text: str) -> bool:
    """Whether a sentence opens by pointing back to the one before it ("其计算方法是…", "It is…")."""
    return _ANAPHOR.match(text) is not None


# The names given to a text without sections ("(Text)"). Not to the untitled front of a paper with
# headings: there the title was no better a context (on the bundled papers it cost one gold answer).
_PLACEHOLDERS = frozenset(WHOLE.values())


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Return (start, end) spans of the sentences of text[start:end], whitespace trimmed."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _END.finditer(text, start, end):
        if m.group().startswith(".") and _NO_BREAK_BEFORE_DOT.search(
            text, max(start, m.start() - 8), m.start()
        ):
            continue
        _add(text, spans, pos, m.end())
        pos = m.end()
    _add(text, spans, pos, end)
    return spans


def chunk_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sentences overlapping text[start:end], whole: the chunker cuts a sentence longer than a
    chunk, and a quote should not start or end mid-word. Sentences never cross a line break, so
    splitting from the start of the chunk's first line gives true sentence boundaries. The one
    splitter of the index's sentence table, which the answerer scores."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    spans = sentence_spans(text, line_start, len(text) if line_end < 0 else line_end)
    return [(s, e) for s, e in spans if s < end and e > start]


def _add(text: str, spans: list[tuple[int, int]], s: int, e: int) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if e > s:
        spans.append((s, e))


def context_text(text: str, section: str, start: int, end: int, title: str = "") -> str:
    """A sentence as it reads in place, for embedding: its section's name, then the sentence before it
    on the same line and the sentence itself, verbatim ("1.1 一般资料: …收治5例患者。年龄37~85岁…").

    A sentence that answers a question often leans on the one before ("DTC 进入 G0 期" after
    "…进入单细胞休眠状态"), and its section says what it is about; alone, neither is in its text.
    A text with no sections has only a placeholder for a section name ("(Text)"), which says
    nothing: there the document's `title` names the subject instead (a web page's or a catalog's title:
    "Allergic asthma" for "Asthma is a breathing disorder…").
    """
    leaf = section.rsplit(" > ", 1)[-1].strip()
    if leaf in _PLACEHOLDERS:
        leaf = title.strip()
    passage = text[previous_start(text, start) : end]
    return f"{leaf}: {passage}" if leaf else passage


def previous_start(text: str, start: int) -> int:
    """Where the last sentence ending before `start` on the same line begins (`start` when none)."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    starts, ends = _line_spans(text, line_start, len(text) if line_end < 0 else line_end)
    i = bisect.bisect_right(ends, start)
    return starts[i - 1] if i else start


@functools.lru_cache(maxsize=256)  # building walks line by line; a question reads a few lines
def _line_spans(text: str, line_start: int, line_end: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The sentences of one line, kept: building an index asks for every sentence of a long line, and
    splitting the line again each time would cost the square of its length. (A document's text hashes
    once and is compared by identity, so the cache key is cheap.)"""
    spans = sentence_spans(text, line_start, line_end)
    return tuple(s for s, _ in spans), tuple(e for _, e in spans)

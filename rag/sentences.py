"""Sentence spans in mixed Chinese/English text, as character offsets (no whitespace tokenising)."""

from __future__ import annotations

import re

# A sentence ends at Chinese or full stops/marks, or at ". " before a capital, CJK or a line end;
# "2.3", "e.g. x" and "et al. (" do not end one. NFKC has already turned "；？！" into ";?!".
_END = re.compile(r"[。！？!?;；]+[”’\"」)）]*|\.(?=\s*$|\s+[A-Z\u4e00-\u9fff(\[]|[\u4e00-\u9fff])|\n")
_NO_BREAK_BEFORE_DOT = re.compile(r"(?:\b(?:e\.g|i\.e|et al|vs|Fig|Ref|No|Dr)|\b[A-Z])$")


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


def _add(text: str, spans: list[tuple[int, int]], s: int, e: int) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if e > s:
        spans.append((s, e))

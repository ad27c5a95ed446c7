"""Normalise PDF-extracted text: NFKC, page furniture, broken lines, spaced-out CJK, hyphenation.

Every offset used later (chunks, hits, quotes) refers to the string this module returns, and the index
stores it, so a quote can always be checked against it. Heading lines are kept on lines of their own so
that `rag.ingest.chunking` can find sections; `headings.py` holds the patterns both modules share.
"""

from __future__ import annotations

import re
import unicodedata

from rag.ingest.headings import is_heading_line, split_run_in_heading
from rag.knowledge import domain_blocks


def _furniture() -> list[re.Pattern[str]]:
    """Lines that are page furniture in journal PDFs, never content. Any journal's URLs, DOIs, running
    heads and page numbers are here; what a journal prints in words ("Open Access", "收稿日期:") is in
    rag/data/domain/papers.json: whole lines, and labels that open a line with a colon."""
    blocks = [furniture for _, furniture in domain_blocks("furniture")]
    labels = "|".join(label for f in blocks for label in f["labels"])
    return [
        re.compile(r"^(https?://|www\.)\S*$", re.I),
        re.compile(r"^DOI\s*[:：]?\s*10\.\S+.*$", re.I),
        *(re.compile(f"^(?:{line})$", re.I) for f in blocks for line in f["lines"]),
        *([re.compile(rf"^({labels})\s*[:：].*$", re.I)] if labels else []),
        # journal running head: "Advances in Clinical Medicine 临床医学进展, 2025, 15(12), 2623-2631"
        re.compile(r"^.{0,80}\b(19|20)\d\d\s*,\s*\d+\s*\(\d+\)\s*,\s*\d+\s*-\s*\d+$"),
        re.compile(r"^\d{1,4}$"),  # bare page number
    ]


_FURNITURE = _furniture()
_CJK = r"\u2e80-\u2fff\u3001-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACE_BETWEEN_CJK = re.compile(rf"(?<=[{_CJK}])[ \t]+(?=[{_CJK}])")
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_SENTENCE_END = re.compile(r"[。！？!?]$|(?<![A-Z0-9])\.$|[。！？!?.][”’\")）]$")
_LIST_ITEM = re.compile(r"^(\(?\d{1,2}[)）]|[（(][一二三四五六七八九十]+[)）]|[①-⑳•·▪])")
_HYPHEN_BREAK = re.compile(r"[A-Za-z]-$")


def is_cjk(ch: str) -> bool:
    return bool(_CJK_CHAR.match(ch))


def _is_furniture(line: str) -> bool:
    return any(p.match(line) for p in _FURNITURE)


def _clean_line(raw: str) -> tuple[str, bool]:
    """NFKC one raw line; return it stripped and whether it opened an indented paragraph."""
    # A leading ideographic indent ("　　") is the only reliable paragraph mark these PDFs keep.
    indented = raw.lstrip(" ").startswith("\u3000\u3000")
    line = unicodedata.normalize("NFKC", raw).replace("⁃", "-").replace("\u00ad", "")
    line = _SPACE_BETWEEN_CJK.sub("", line.strip())
    return re.sub(r"[ \t]{2,}", " ", line), indented


def _drop_running_heads(lines: list[tuple[str, bool, bool]]) -> list[tuple[str, bool, bool]]:
    """Drop short lines (author running heads) wedged between two furniture lines."""
    kept = []
    for i, (line, indented, furniture) in enumerate(lines):
        if not furniture and len(line) <= 20 and "。" not in line and not is_heading_line(line):
            before = lines[i - 1][2] if i > 0 else False
            after = lines[i + 1][2] if i + 1 < len(lines) else False
            if before and after:
                continue
        kept.append((line, indented, furniture))
    return kept


def _join(prev: str, nxt: str) -> str:
    """Join two fragments of one sentence that a PDF line break split."""
    if _HYPHEN_BREAK.search(prev) and nxt[:1].islower():
        return prev[:-1] + nxt  # "ma-" + "nifestations"
    if is_cjk(prev[-1]) or is_cjk(nxt[0]):
        return prev + nxt
    return prev + " " + nxt


def normalise(raw: str) -> str:
    """Return the normalised text: one paragraph or heading per line, no blank lines."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    lines: list[tuple[str, bool, bool]] = []
    for raw_line in text.split("\n"):
        for part in split_run_in_heading(raw_line):
            line, indented = _clean_line(part)
            if line:
                lines.append((line, indented, _is_furniture(line)))
    lines = [entry for entry in _drop_running_heads(lines) if not entry[2]]

    paragraphs: list[str] = []
    open_para = False  # whether the last paragraph may continue on the next line
    for line, indented, _ in lines:
        heading = is_heading_line(line)
        if heading or indented or not open_para or _LIST_ITEM.match(line) or not paragraphs:
            paragraphs.append(line)
        else:
            paragraphs[-1] = _join(paragraphs[-1], line)
        open_para = not heading and not _SENTENCE_END.search(paragraphs[-1])
    return "\n".join(paragraphs)

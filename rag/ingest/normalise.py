"""Normalise PDF-extracted text: NFKC (but for characters it would change the meaning of, and with
radical look-alikes mapped), page furniture, broken lines, spaced-out CJK, hyphenation.

Every offset used later (chunks, hits, quotes) refers to the string this module returns, and the index
stores it, so a quote can always be checked against it. Heading lines are kept on lines of their own so
that `rag.ingest.chunking` can find sections; `headings.py` holds the patterns both modules share.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from rag.ingest.headings import is_heading_line, split_run_in_heading
from rag.ingest.pdf import radical_table
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
# A first line this short with no full stop is a title (when the catalog gives none).
TITLE_MAX_CHARS = 120
_MIN_SPACING_LINES = 3
_TITLE_WIDTH_SHARE = 0.8


@cache
def _kept() -> re.Pattern[str]:
    """The characters NFKC would rewrite into something else (rag/data/normalise.json), as a class."""
    data = json.loads(resources.files("rag").joinpath("data/normalise.json").read_text(encoding="utf-8"))
    return re.compile(f"([{re.escape(''.join(data['keep'].values()))}])")


def nfkc(text: str) -> str:
    """NFKC, but for the characters whose NFKC form changes the meaning (6½ stays 6½, not 61⁄2), and
    with radical look-alikes mapped to the ideographs they show (⻔ -> 门, which NFKC leaves)."""
    parts = _kept().split(text.translate(radical_table()))
    # split() with a group puts the kept characters at the odd positions
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def is_cjk(ch: str) -> bool:
    return bool(_CJK_CHAR.match(ch))


def _is_furniture(line: str) -> bool:
    return any(p.match(line) for p in _FURNITURE)


def _clean_line(raw: str) -> tuple[str, bool]:
    """NFKC one raw line; return it stripped and whether it opened an indented paragraph."""
    # A leading ideographic indent ("　　") is the only reliable paragraph mark these PDFs keep.
    indented = raw.lstrip(" ").startswith("\u3000\u3000")
    line = nfkc(raw).replace("⁃", "-").replace("\u00ad", "")
    line = _SPACE_BETWEEN_CJK.sub("", line.strip())
    return re.sub(r"[ \t]{2,}", " ", line), indented


@dataclass(frozen=True)
class _Line:
    text: str
    indented: bool  # opened an indented paragraph
    furniture: bool
    page: int  # 0-based page the line came from
    after_blank: bool  # a blank line came before it on its page: a paragraph boundary


def _drop_running_heads(lines: list[_Line]) -> list[_Line]:
    """Drop short lines (author running heads) wedged between two furniture lines."""
    kept = []
    for i, line in enumerate(lines):
        if (
            not line.furniture
            and len(line.text) <= 20
            and "。" not in line.text
            and not is_heading_line(line.text)
        ):
            before = lines[i - 1].furniture if i > 0 else False
            after = lines[i + 1].furniture if i + 1 < len(lines) else False
            if before and after:
                continue
        kept.append(line)
    return kept


def _join(prev: str, nxt: str) -> str:
    """Join two fragments of one sentence that a PDF line break split (`nxt` always ends the result)."""
    if _HYPHEN_BREAK.search(prev) and nxt[:1].islower():
        return prev[:-1] + nxt  # "ma-" + "nifestations"
    if is_cjk(prev[-1]) or is_cjk(nxt[0]):
        return prev + nxt
    return prev + " " + nxt


def _line_spaced(raw_lines: list[str]) -> bool:
    """Whether blank lines are line spacing, not paragraph marks: text extracted from a PDF with a
    blank line after every line (the bundled papers), where most lines before a blank one (after the
    first, a title) stop mid-sentence. A few such lines are lists or headings, not spacing."""
    first = next((i for i, ln in enumerate(raw_lines) if ln.strip()), len(raw_lines))
    before = [
        raw_lines[i].strip()
        for i in range(first + 1, len(raw_lines) - 1)
        if raw_lines[i].strip() and not raw_lines[i + 1].strip()
    ]
    mid = sum(not _SENTENCE_END.search(ln) for ln in before)
    return mid >= _MIN_SPACING_LINES and mid >= 0.5 * len(before)


def _lines(pages: Sequence[str]) -> list[_Line]:
    lines: list[_Line] = []
    for page, raw in enumerate(pages):
        text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
        raw_lines = text.split("\n")
        spacing = _line_spaced(raw_lines)
        blank = False  # a page break is no paragraph boundary: a paragraph runs on to the next page
        for raw_line in raw_lines:
            if not raw_line.strip():
                blank = bool(lines) and lines[-1].page == page and not spacing
                continue
            for part in split_run_in_heading(raw_line):
                line, indented = _clean_line(part)
                if line:
                    lines.append(_Line(line, indented, _is_furniture(line), page, blank))
                    blank = False
    return lines


def normalise_pages(pages: Sequence[str]) -> tuple[str, tuple[int, ...]]:
    """The normalised text of a paged document (one raw string per page) and the offset in it where
    each page starts. A paragraph that runs over a page break is joined, so a page may start
    mid-line; a page left with no text starts where the next one does."""
    lines = [line for line in _drop_running_heads(_lines(pages)) if not line.furniture]
    paragraphs: list[str] = []
    para_start = 0  # offset of the last paragraph in the joined text
    page_starts: dict[int, int] = {}
    open_para = False  # whether the last paragraph may continue on the next line
    for i, line in enumerate(lines):
        heading = is_heading_line(line.text)
        new = heading or line.indented or line.after_blank or not open_para or _LIST_ITEM.match(line.text)
        if new or not paragraphs:
            if paragraphs:
                para_start += len(paragraphs[-1]) + 1
            paragraphs.append(line.text)
        else:
            paragraphs[-1] = _join(paragraphs[-1], line.text)
        page_starts.setdefault(line.page, para_start + len(paragraphs[-1]) - len(line.text))
        open_para = not heading and not _SENTENCE_END.search(paragraphs[-1])
        if i == 0 and len(lines) > 1 and _title_like(line.text) and _after_title(line, lines[1]):
            open_para = False  # a title line is never glued to the first paragraph
    text = "\n".join(paragraphs)
    starts = [len(text)] * len(pages)
    nxt = len(text)
    for page in range(len(pages) - 1, -1, -1):
        nxt = page_starts.get(page, nxt)
        starts[page] = nxt
    if starts:
        starts[0] = 0  # whatever precedes the first page with text is on page 1 or a blank page
    return text, tuple(starts)


def normalise(raw: str) -> str:
    """Return the normalised text: one paragraph or heading per line, no blank lines."""
    return normalise_pages([raw])[0]


def _title_like(line: str, clauses: bool = False) -> bool:
    """A short line without a sentence's end: what a title looks like; and, unless `clauses`, without
    a clause mark either (a wrapped first sentence would have one, a title seldom does)."""
    marks = r"[。！？!?;；.]" if clauses else r"[。！？!?;；.,，、]"
    return len(line) <= TITLE_MAX_CHARS and not re.search(marks, line)


def _after_title(first: _Line, nxt: _Line) -> bool:
    """Whether the line after a title-like first line opens the text rather than finishing the first
    line's sentence: it comes after a blank line, or it does not go on in lower case and the first
    line is clearly shorter (a wrapped first line is as wide as the next one)."""
    if nxt.after_blank:
        return True
    return not nxt.text[:1].islower() and len(first.text) < _TITLE_WIDTH_SHARE * len(nxt.text)


def first_line_title(text: str) -> str | None:
    """The document's first line when it looks like a title (short, no full stop), else None; the
    title of a paper whose catalog gives none."""
    first = text.split("\n", 1)[0].strip()
    if not first or is_heading_line(first) or not _title_like(first, clauses=True) or "\n" not in text:
        return None
    return first

"""PDF pages to clean text with pypdfium2, and the pages that need OCR.

pypdfium2 is about 10x faster than pypdf on ../shared/pdfs, decodes the GBK-font Chinese page and does
not glue English words together. What its text still needs, page by page:

- soft-hyphen marks (\\x02, U+FFFE) where a word was split at a line end: the word is joined;
- radical look-alikes (U+2E80-U+2FDF) in place of the ideographs they show: mapped back;
- control characters (the \\x04 of a circled C, \\r): dropped;
- running headers and footers (lines repeated at the edges of most pages) and bare page numbers: dropped.

A page that is a scan, or whose text is mostly unreadable characters, is read by offline OCR
(rag/ingest/ocr.py) when an OCR reader is given; a page that still yields nothing (or with OCR off) is
reported by page number. The rules and thresholds are in rag/data/pdf_text.json.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.ingest.ocr import PageOcr


class PdfError(Exception):
    """The file cannot be opened as a PDF (damaged, encrypted, not a PDF)."""


@dataclass(frozen=True)
class Page:
    number: int  # 1-based
    text: str  # cleaned; "" when the page is blank or needs OCR
    problem: str | None = None  # why the page needs OCR, if it does and OCR did not read it
    ocr: bool = False  # the text came from OCR


@cache
def rules() -> dict[str, Any]:
    return json.loads(resources.files("rag").joinpath("data/pdf_text.json").read_text(encoding="utf-8"))


@cache
def radical_table() -> dict[int, str]:
    """str.translate table: radical look-alikes (U+2E80-U+2FDF) -> the ideographs they show."""
    table = {ord(k): v for k, v in rules()["radicals"]["map"].items()}
    # NFKC maps each Kangxi radical to its ideograph; applied to that block only, as NFKC elsewhere
    # (full-width punctuation) is normalise()'s business.
    table.update({c: unicodedata.normalize("NFKC", chr(c)) for c in range(0x2F00, 0x2FE0)})
    return table


@cache
def _soft_hyphen() -> re.Pattern[str]:
    return re.compile(f"[{re.escape(rules()['soft_hyphens']['chars'])}](?:\r?\n)?")


@cache
def _page_number() -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in rules()["page_numbers"]["patterns"]), re.I)


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def _unreadable(ch: str) -> bool:
    """NUL and other controls, private-use and replacement characters (whitespace is not looked at)."""
    return unicodedata.category(ch) in ("Cc", "Co", "Cs") or ch == "\ufffd"


def page_problem(raw: str, has_images: bool) -> str | None:
    """Why a page's raw text cannot be indexed and needs OCR, or None (a blank page needs nothing)."""
    chars = [c for c in raw if not c.isspace()]
    if not chars:
        return "no text layer, only images (a scan)" if has_images else None
    g = rules()["garbage"]
    bad = sum(map(_unreadable, chars))
    if bad / len(chars) >= g["bad_share"]:
        return f"{bad / len(chars):.0%} of its characters are NUL, control, private-use or replacement"
    latin1 = sum("\u00c0" <= c <= "\u00ff" for c in chars)
    if not any(map(_is_cjk, chars)) and (bad + latin1) / len(chars) >= g["mojibake_share"]:
        return f"unreadable text ({(bad + latin1) / len(chars):.0%} control or Latin-1 characters, no CJK)"
    return None


def clean_page(raw: str) -> str:
    """Join soft-hyphenated words, map radical look-alikes, drop control characters but \\n and \\t."""
    text = _soft_hyphen().sub("", raw.replace("\r\n", "\n")).translate(radical_table())
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cs", "Cn"))


def _key(line: str) -> str:
    """A line as compared across pages: its letters only, as digits are page numbers ("2 / 4 …")."""
    return re.sub(r"[\W\d_]+", "", line)


def drop_furniture(pages: list[str]) -> list[str]:
    """Each page without its running headers/footers and its bare page-number lines."""
    r = rules()["running_lines"]
    split = [[ln.strip() for ln in page.split("\n") if ln.strip()] for page in pages]
    edges = [
        set(range(min(r["edge_lines"], len(ls)))) | set(range(len(ls) - r["edge_lines"], len(ls)))
        for ls in split
    ]
    # Count each page once per line, and only where the line sits at the page's top or bottom.
    seen = [
        {_key(ln) for i, ln in enumerate(ls) if i in edge and len(ln) <= r["max_chars"] and _key(ln)}
        for ls, edge in zip(split, edges, strict=True)
    ]

    def repeated(group: list[set[str]]) -> set[str]:
        counts = Counter(k for keys in group for k in keys)
        return {k for k, n in counts.items() if n >= r["min_share"] * len(group)}

    total = Counter(k for keys in seen for k in keys)
    running = repeated(seen) | repeated(seen[0::2]) | repeated(seen[1::2])
    running = {k for k in running if total[k] >= r["min_pages"]}
    page_number = _page_number()
    return [
        "\n".join(
            ln
            for i, ln in enumerate(ls)
            if not (i in edge and (_key(ln) in running or page_number.fullmatch(ln)))
        )
        for ls, edge in zip(split, edges, strict=True)
    ]


def title_from_metadata(value: str | None) -> str | None:
    """A PDF's Title entry when it reads as a title (rules in rag/data/pdf_text.json, `metadata_title`),
    else None: producers often leave a file name, a job number or "untitled" there."""
    r = rules()["metadata_title"]
    title = " ".join((value or "").split())
    for prefix in r["drop_prefixes"]:
        if title.lower().startswith(prefix.lower()):
            title = title[len(prefix) :].strip()
    title = re.sub(rf"\.(?:{'|'.join(map(re.escape, r['extensions']))})$", "", title, flags=re.I).strip()
    chars = [c for c in title if not c.isspace()]
    if not chars or title.lower() in r["reject"]:
        return None
    if sum(c.isdigit() for c in chars) > r["max_digit_share"] * len(chars):
        return None
    words = re.findall(r"[^\W\d_]{2,}", re.sub(r"[\u3400-\u9fff]", " ", title))
    han = sum(_is_cjk(c) for c in chars)
    return title if len(words) >= r["min_words"] or han >= r["min_han"] else None


def metadata_title(path: Path) -> str | None:
    """The title a PDF's metadata gives, if it reads as one (`title_from_metadata`)."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError:
        return None
    try:
        return title_from_metadata(doc.get_metadata_dict().get("Title"))
    finally:
        doc.close()


def read_pages(path: Path, ocr: PageOcr | None = None) -> list[Page]:
    """Every page of a PDF, cleaned. A page that needs OCR is read by `ocr` when given; the pages
    left without text keep their problem (with OCR's failure added)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        raise PdfError(str(exc)) from exc
    raws: list[str] = []
    problems: list[str | None] = []
    by_ocr: list[bool] = []
    try:
        for page in doc:
            textpage = page.get_textpage()
            raw = textpage.get_text_range()
            textpage.close()
            images = any(o.type == pdfium_c.FPDF_PAGEOBJ_IMAGE for o in page.get_objects())
            problem = page_problem(raw, images)
            read = False
            if problem is not None and ocr is not None:
                bitmap = page.render(scale=ocr.scale(*page.get_size()))
                text = ocr.read(bitmap.to_numpy())
                if text.strip():
                    raw, problem, read = text, None, True
                else:
                    problem += "; OCR found no text on it"
            page.close()
            raws.append(raw)
            problems.append(problem)
            by_ocr.append(read)
    finally:
        doc.close()
    # Furniture is counted over the pages that have text: blank and unread pages repeat nothing.
    texts = [clean_page(raw) if problem is None else "" for raw, problem in zip(raws, problems, strict=True)]
    with_text = [i for i, t in enumerate(texts) if t.strip()]
    for i, text in zip(with_text, drop_furniture([texts[i] for i in with_text]), strict=True):
        texts[i] = text
    return [Page(i + 1, t, p, o) for i, (t, p, o) in enumerate(zip(texts, problems, by_ocr, strict=True))]

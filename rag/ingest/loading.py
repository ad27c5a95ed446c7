"""Load a folder of papers (.txt .md .pdf .docx .html) into normalised `Document`s.

A file that cannot be read is reported by name and skipped; it never stops the others. PDF pages that
need OCR are read by offline OCR (`ingest.ocr`, rag/ingest/ocr.py); a page that still yields nothing
is left out and reported by file and page as a warning (rag/ingest/pdf.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from rag.ingest.normalise import first_line_title, normalise_pages
from rag.ingest.ocr import OcrUnavailable, PageOcr
from rag.ingest.pdf import Page, PdfError, metadata_title, read_pages
from rag.lang import detect_lang
from rag.settings import IngestSettings
from rag.types import Document

SUPPORTED = (".txt", ".md", ".pdf", ".docx", ".html", ".htm")
CATALOG = "catalog.json"
# Bump when normalisation changes, so incremental re-indexing re-reads every document.
# 2: PDFs through pypdfium2, furniture and OCR pages dropped; 3: page offsets, paragraphs, titles
NORMALISER_VERSION = "3"
MAX_FILE_BYTES = 50 * 1024 * 1024
# Plain text has at least one character per 4 bytes (UTF-8, UTF-16), so a text file of more than
# 4 × ingest.max_file_chars bytes is over the limit before it is read: a 50 MB file is refused at once,
# not after it has been read and normalised into memory. The bound is on the characters as read; the
# limit counts them normalised (runs of spaces collapsed), so a file that is mostly padding may be
# refused that would have fitted. Markup (.html, .docx) shrinks a great deal: not judged by size.
_PLAIN = (".txt", ".md")
_MAX_BYTES_PER_CHAR = 4

log = logging.getLogger(__name__)


class LoadFailure(Exception):
    """A single file could not be turned into text."""


@dataclass(frozen=True)
class LoadError:
    path: str
    message: str


@dataclass(frozen=True)
class RawText:
    """A file's text before normalisation: one string per page of a paged format (PDF), else one."""

    pages: tuple[str, ...]
    paged: bool = False
    ocr_pages: tuple[int, ...] = ()  # 1-based pages whose text came from OCR
    title: str | None = None  # the title the file's own metadata gives (PDF), if it reads as one


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)
    warnings: list[LoadError] = field(default_factory=list)  # loaded, but parts left out (PDF pages)


def decode_text(data: bytes) -> str:
    """Decode UTF-8 (with or without BOM), then GB18030 (a superset of GBK/GB2312), then a best guess."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise LoadFailure("cannot decode the text: save it as UTF-8 and index again")
    return str(best)


def _page_list(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> "pages 1-3, 7"."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    spans = [f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs]
    return ("pages " if len(numbers) > 1 else "page ") + ", ".join(spans)


def _ocr_notes(pages: list[Page], why_not: str) -> list[str]:
    """One line per kind of problem, naming its pages; `why_not` says why OCR did not run ("" if it did)."""
    by_problem: dict[str, list[int]] = {}
    for page in pages:
        by_problem.setdefault(page.problem or "", []).append(page.number)
    tail = f"; needs OCR, {why_not}" if why_not else ""
    return [f"{_page_list(numbers)}: {problem}{tail}" for problem, numbers in by_problem.items()]


def _pdf_text(path: Path, warnings: list[str], ocr: PageOcr | None) -> RawText:
    why_not = "" if ocr is not None else "which is switched off (ingest.ocr = false)"
    try:
        try:
            pages = read_pages(path, ocr)
        except OcrUnavailable as exc:
            why_not = str(exc)
            pages = read_pages(path)
    except PdfError as exc:
        raise LoadFailure(f"cannot read the PDF ({exc}); is it damaged or encrypted?") from exc
    unread = [p for p in pages if p.problem]
    if not any(p.text.strip() for p in pages):
        if unread:
            raise LoadFailure("no readable text, nothing indexed: " + "; ".join(_ocr_notes(unread, why_not)))
        raise LoadFailure("empty PDF: no page has text or images")
    warnings += [f"not indexed: {note}" for note in _ocr_notes(unread, why_not)]
    ocr_pages = tuple(p.number for p in pages if p.ocr)
    if ocr_pages:
        log.info("%s: read by OCR: %s", path, _page_list(list(ocr_pages)))
    return RawText(tuple(p.text for p in pages), paged=True, ocr_pages=ocr_pages, title=metadata_title(path))


def _docx_text(path: Path) -> str:
    try:
        import docx
    except ImportError as exc:
        raise LoadFailure("reading .docx needs python-docx: pip install python-docx") from exc
    try:
        return "\n".join(p.text for p in docx.Document(str(path)).paragraphs)
    except Exception as exc:  # python-docx raises several unrelated types for a bad file
        raise LoadFailure(f"cannot read the .docx file ({exc})") from exc


def _html_text(data: bytes) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer"]):
        tag.decompose()
    return soup.get_text("\n")


def read_raw_text(
    path: Path, warnings: list[str] | None = None, ocr: PageOcr | None = None
) -> tuple[RawText, bytes]:
    """Return the raw text of one file (page by page for a PDF) and its bytes; raise LoadFailure with
    a readable reason.
    Parts left out (PDF pages that need OCR) are described in `warnings`."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise LoadFailure(f"unsupported file type {suffix or '(none)'}; supported: {', '.join(SUPPORTED)}")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise LoadFailure(f"file is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB limit")
        data = path.read_bytes()
    except OSError as exc:
        raise LoadFailure(f"cannot read the file ({exc.strerror or exc})") from exc
    if not data:
        raise LoadFailure("empty file (0 bytes)")
    if suffix == ".pdf":
        return _pdf_text(path, [] if warnings is None else warnings, ocr), data
    if suffix == ".docx":
        return RawText((_docx_text(path),)), data
    if suffix in (".html", ".htm"):
        return RawText((_html_text(data),)), data
    return RawText((decode_text(data),)), data


def read_catalog(folder: Path) -> dict[str, dict]:
    """Catalog entries by file name; a missing catalog is fine, a broken one is reported and ignored.

    The catalog is a JSON list of objects with a "file" key, or an object holding that list under
    "files" (a catalog that also records how it was made, as ../shared/pdfs/catalog.json does).
    """
    path = folder / CATALOG
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(entries, dict):
            entries = entries["files"]
        if not isinstance(entries, list):
            raise TypeError(f"a JSON {type(entries).__name__}")
        return {e["file"]: e for e in entries}
    except (ValueError, KeyError, TypeError) as exc:
        log.warning(
            "ignoring %s: %s (expected a JSON list of objects with a 'file' key, or an object with that"
            " list under 'files')",
            path,
            exc,
        )
        return {}


def title_of(entry: dict, stem: str, text: str = "", metadata: str | None = None) -> str:
    """The catalog's title, else the file's metadata title (PDF), else the text's first line when it
    reads as a title, else the file name."""
    catalog = entry.get("title") or entry.get("title_zh") or entry.get("topic_en")
    return catalog or metadata or first_line_title(text) or stem


def page_ocr(ingest: IngestSettings | None) -> PageOcr | None:
    """The OCR reader the settings ask for (its engine loads on the first page that needs it), or None."""
    ingest = ingest or IngestSettings()
    return PageOcr(ingest) if ingest.ocr else None


def load_file(
    path: Path,
    doc_id: str,
    entry: dict | None = None,
    warnings: list[str] | None = None,
    ingest: IngestSettings | None = None,
    ocr: PageOcr | None = None,
) -> Document:
    """Load and normalise one file; raise LoadFailure if it has no usable text. What was left out of it
    (PDF pages no OCR could read) is logged and added to `warnings`. `ocr` (shared by the files of a
    folder) defaults to the reader `ingest` asks for."""
    ingest = ingest or IngestSettings()
    _refuse_if_too_big(path, ingest.max_file_chars)
    notes: list[str] = []
    raw, data = read_raw_text(path, notes, ocr if ocr is not None else page_ocr(ingest))
    for note in notes:
        log.warning("%s: %s", path, note)
    if warnings is not None:
        warnings += notes
    text, starts = normalise_pages(raw.pages)
    if not text.strip():
        # Scanned PDFs are caught page by page above; this file really holds no text.
        raise LoadFailure("empty: no text in the file")
    entry = entry or {}
    digest = hashlib.sha256(data + NORMALISER_VERSION.encode()).hexdigest()
    meta = {k: v for k, v in entry.items() if k != "file"}
    # A PDF's first line is a journal's running head as often as its title: only text files use it.
    title = title_of(entry, path.stem, "" if raw.paged else text, raw.title)
    pages = starts if raw.paged else ()
    return Document(doc_id, title, str(path), text, digest, detect_lang(text), meta, pages, raw.ocr_pages)


def _refuse_if_too_big(path: Path, limit: int) -> None:
    if path.suffix.lower() not in _PLAIN:
        return
    try:
        size = path.stat().st_size
    except OSError:
        return  # read_raw_text says why it cannot be read
    if size > _MAX_BYTES_PER_CHAR * limit:
        from rag.answer.framing import templates  # the message files; framing reads no index

        raise LoadFailure(
            " / ".join(templates(lang)["too_big"].format(size=size, limit=limit) for lang in ("en", "zh"))
        )


def load_folder(folder: str | Path, ingest: IngestSettings | None = None) -> LoadResult:
    """Load every supported file below `folder` (recursively); doc ids are paths without suffix."""
    folder = Path(folder)
    ocr = page_ocr(ingest)
    if not folder.is_dir():
        raise FileNotFoundError(f"No documents folder at {folder}. Pass --docs DIR with your papers.")
    catalog = read_catalog(folder)
    result = LoadResult()
    root = folder.resolve()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if path.name == CATALOG or any(part.startswith(".") for part in rel.parts):
            continue
        target = path.resolve()
        if not target.is_relative_to(root):  # e.g. docs/x.txt -> /etc/passwd: never read it
            result.errors.append(LoadError(str(path), _outside_link(target)))
            continue
        notes: list[str] = []
        try:
            doc_id = rel.with_suffix("").as_posix()
            entry = catalog.get(rel.as_posix())
            result.documents.append(load_file(path, doc_id, entry, notes, ingest, ocr))
            result.warnings += [LoadError(str(path), note) for note in notes]
        except LoadFailure as exc:
            result.errors.append(LoadError(str(path), str(exc)))
    return result


def _outside_link(target: Path) -> str:
    from rag.answer.framing import templates  # the message files; framing loads no documents

    return " / ".join(templates(lang)["outside_link"].format(target=target) for lang in ("en", "zh"))

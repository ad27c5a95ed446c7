"""Offline OCR (rag/ingest/ocr.py): reading order of boxes on made-up pages, then rapidocr on the scans
of ../shared/pdfs (catalog.json): a strip of each scan here, whole files in the `slow` tests."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from rag.ingest.chunking import chunk_document
from rag.ingest.loading import load_file, load_folder
from rag.ingest.ocr import Box, PageOcr, reading_order
from rag.settings import IngestSettings

from .conftest import REPO

SHARED = REPO / ".." / "shared" / "pdfs"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no real PDFs at {SHARED}")
EN_SCAN = "en-scanned-clinical-proteomics-2015-p6.pdf"
ZH_SCAN = "zh-scanned-book-8p.pdf"
ZH_STRIP, EN_STRIP = (0, 0.55, 0.45, 0.1), (0, 0.6, 0.5, 0.08)  # shares cut: left, bottom, right, top


def _row(y: float, *cells: tuple[float, float, str]) -> list[Box]:
    return [Box(x0, y, x1, y + 20, text) for x0, x1, text in cells]


def test_two_columns_are_read_left_column_first_under_a_header_and_a_full_width_title():
    boxes = [
        *_row(0, (0, 200, "Journal 2015"), (800, 1000, "Page 6 of 14")),
        *_row(60, (0, 1000, "A title that spans both columns of the page")),
    ]
    for i in range(4):
        boxes += _row(100 + 30 * i, (0, 480, f"left {i}"), (520, 1000, f"right {i}"))
    boxes += _row(260, (0, 1000, "a figure caption under both columns"))
    boxes += _row(300, (0, 480, "left after"), (520, 1000, "right after"))
    lines = reading_order(boxes[::-1])  # the engine's order does not matter
    assert lines == [
        "Journal 2015",
        "Page 6 of 14",
        "A title that spans both columns of the page",
        *(f"left {i}" for i in range(4)),
        *(f"right {i}" for i in range(4)),
        "a figure caption under both columns",
        "left after",
        "right after",
    ]


def test_one_column_boxes_of_a_line_are_joined_and_chinese_without_spaces():
    boxes = [
        *_row(0, (0, 300, "第一章"), (320, 600, "商品")),
        *_row(30, (0, 300, "Heparin"), (310, 600, "is given daily.")),
        *_row(60, (0, 1000, "一行很长的中文文字")),
    ]
    assert reading_order(boxes) == ["第一章商品", "Heparin is given daily.", "一行很长的中文文字"]
    assert reading_order([]) == []


def test_ocr_settings_are_checked():
    with pytest.raises(ValueError, match="ocr_dpi must be between 50 and 600"):
        IngestSettings(ocr_dpi=10)
    with pytest.raises(ValueError, match="ocr_min_score must be between 0 and 1"):
        IngestSettings(ocr_min_score=2)


def _strip(name: str, page: int, crop: tuple[float, float, float, float], ocr: PageOcr):
    """A strip of a page, rendered as for OCR (crop: left, bottom, right, top shares cut away)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(SHARED / name))
    p = pdf[page]
    w, h = p.get_size()
    left, bottom, right, top = crop
    return p.render(scale=ocr.scale(w, h), crop=(left * w, bottom * h, right * w, top * h)).to_numpy()


@pytest.fixture
def offline(monkeypatch):
    """No network: any connection attempt fails the test (the models must come from the wheel)."""

    def refuse(*args, **kwargs):
        raise AssertionError("OCR tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@needs_shared
def test_ocr_reads_real_words_from_a_strip_of_each_scan_offline(offline, tmp_path: Path):
    ocr = PageOcr(IngestSettings(), cache_dir=tmp_path)
    # Square strips: the detector scales an image's short side up to 736 px, so a thin one costs more.
    zh = ocr.read(_strip(ZH_SCAN, 1, ZH_STRIP, ocr))  # the top left of page 2
    assert "交换价值" in zh and "经院哲学家" in zh and "一夸特小麦" in zh
    en = ocr.read(_strip(EN_SCAN, 0, EN_STRIP, ocr))  # the top of the left column
    assert "Principal component analysis" in en and "lymph node" in en
    assert ocr.pages_read == 2
    # read again: from the cache, the engine not asked
    assert ocr.read(_strip(ZH_SCAN, 1, ZH_STRIP, ocr)) == zh and ocr.pages_read == 2


@pytest.fixture
def without_rapidocr(monkeypatch):
    """Importing rapidocr fails, as on a machine where it is not installed."""
    import builtins

    real_import = builtins.__import__

    def no_rapidocr(name, *args, **kwargs):
        if name == "rapidocr":
            raise ImportError("No module named 'rapidocr'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rapidocr)


def test_ocr_off_or_missing_is_reported(tmp_path: Path, without_rapidocr):
    with pytest.raises(Exception, match=r"pip install 'rapidocr>=3,<4' onnxruntime.*ingest.ocr=false"):
        PageOcr(IngestSettings(), cache_dir=False).warm_up()


@pytest.mark.slow
@needs_shared
def test_scanned_pdfs_index_to_ocr_text_marked_as_ocr(offline, tmp_path: Path):
    ingest = IngestSettings()
    ocr = PageOcr(ingest, cache_dir=tmp_path / "cache")
    en = load_file(SHARED / EN_SCAN, "en-scan", ocr=ocr)
    assert en.ocr_pages == (1,) and en.page_at(0) == 1
    # the left column is read before the right one: its sentence runs on unbroken
    assert "Further analysis of the changes occurring between glycoprotein expression" in en.text
    zh = load_file(SHARED / ZH_SCAN, "zh-scan", ocr=ocr)
    assert zh.ocr_pages == tuple(range(1, 9)) and len(zh.pages) == 8
    assert "内在的交换价值似乎是经院哲学家所说的形容语的矛盾" in zh.text
    at = zh.text.index("现在我们进一步考察这个问题")
    assert zh.page_at(at) == 2
    chunks = chunk_document(zh)
    assert chunks and all(c.ocr and c.page is not None for c in chunks)
    assert all(zh.text[c.start : c.end] == c.text for c in chunks)


@pytest.mark.slow
@needs_shared
def test_a_text_pdf_with_a_scanned_page_marks_only_that_page_as_ocr(tmp_path: Path, monkeypatch):
    import pypdfium2 as pdfium

    monkeypatch.setenv("RAG_OCR_CACHE", str(tmp_path / "cache"))

    mixed = pdfium.PdfDocument.new()
    mixed.import_pages(pdfium.PdfDocument(str(SHARED / "zh-blood-routine-kangxi-radicals.pdf")))
    mixed.import_pages(pdfium.PdfDocument(str(SHARED / EN_SCAN)))
    docs = tmp_path / "docs"
    docs.mkdir()
    mixed.save(str(docs / "mixed.pdf"))
    result = load_folder(docs, IngestSettings())
    assert not result.errors and not result.warnings
    doc = result.documents[0]
    assert doc.ocr_pages == (2,)
    chunks = chunk_document(doc)
    assert {c.page: c.ocr for c in chunks} == {1: False, 2: True}
    assert "glycoprotein" in doc.text[doc.pages[1] :] and "血常规" in doc.text[: doc.pages[1]]
    assert list((tmp_path / "cache").glob("*.txt"))  # kept for the next build


@pytest.mark.slow  # the engine on a whole page: seconds
def test_a_scanned_page_ocr_cannot_read_is_still_reported_by_file_and_page(tmp_path: Path):
    from fpdf import FPDF
    from PIL import Image

    Image.new("RGB", (400, 300), "white").save(tmp_path / "blank.png")  # a scan of an empty page
    pdf = FPDF(format=(120, 90))  # small pages: OCR time grows with the pixels
    pdf.set_font("Helvetica", size=8)
    pdf.add_page()
    pdf.cell(0, 8, "Heparin prevents deep vein thrombosis after surgery.")
    pdf.add_page()
    pdf.image(str(tmp_path / "blank.png"), x=5, y=5, w=100)
    docs = tmp_path / "docs"
    docs.mkdir()
    pdf.output(str(docs / "paper.pdf"))
    result = load_folder(docs, IngestSettings())
    assert [w.message for w in result.warnings] == [
        "not indexed: page 2: no text layer, only images (a scan); OCR found no text on it"
    ]
    assert result.documents[0].ocr_pages == () and "Heparin prevents" in result.documents[0].text


@needs_shared
def test_without_rapidocr_scans_are_reported_with_how_to_install_it(without_rapidocr):
    from rag.ingest.loading import LoadFailure

    with pytest.raises(LoadFailure, match=r"page 1: no text layer.*needs OCR, OCR needs rapidocr 3.x"):
        load_file(SHARED / EN_SCAN, "en-scan", ingest=IngestSettings())

"""PDF text (rag/ingest/pdf.py): the cleaning rules on synthetic pages, then the real PDFs of
../shared/pdfs (catalog.json there names each file's source, licence and what each library extracts)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rag.ingest.loading import LoadFailure, load_file, load_folder
from rag.ingest.pdf import clean_page, drop_furniture, page_problem, read_pages
from rag.settings import IngestSettings

from .conftest import REPO

SHARED = REPO / ".." / "shared" / "pdfs"
NO_OCR = IngestSettings(ocr=False)  # the text layers alone (OCR: tests/test_ocr.py)


# --- synthetic pages -------------------------------------------------------------------------


WORDS = "heparin warfarin aspirin dosing bleeding thrombosis platelets embolism trauma surgery".split()


def _body(page: int, n: int = 10) -> list[str]:
    # Lines that differ in words, not only in digits (digits are ignored when lines are compared).
    return [
        f"The {WORDS[(page + i) % 10]} arm differs from {WORDS[(page * 3 + i) % 10]}, trial {i}."
        for i in range(n)
    ]


def test_running_header_footer_and_page_numbers_are_dropped_body_kept():
    pages = [
        "\n".join(
            ["Datta et al. Journal of Trauma 2010, 4:1", *_body(p), f"Page {p} of 5", str(p)]
            + (["Table 2 (Continued)"] if p in (2, 3) else [])
        )
        for p in range(1, 6)
    ]
    out = drop_furniture(pages)
    for p, text in enumerate(out, 1):
        lines = text.split("\n")
        assert lines[: len(_body(p))] == _body(p)  # every body line kept, in order
        assert not any(ln.startswith(("Datta et al.", "Page ")) or ln == str(p) for ln in lines)
    assert "Table 2 (Continued)" in out[1]  # on 2 of 5 pages: not a running line


def test_alternating_running_heads_are_dropped():
    # Even pages print the authors, odd pages the short title: each on half the pages or fewer.
    heads = ["R. G. Douglas and others", "Fragment-based design of ACE inhibitors"]
    pages = ["\n".join([heads[p % 2], *_body(p)]) for p in range(7)]
    out = drop_furniture(pages)
    assert all(not any(h in text for h in heads) for text in out)


def test_a_line_repeated_in_the_middle_of_pages_is_content():
    # Repeated, but never among a page's first or last lines: a table row, not a running head.
    pages = ["\n".join([*_body(p, 8), "Yes No Total", *_body(p + 10, 8)]) for p in range(4)]
    assert all("Yes No Total" in text for text in drop_furniture(pages))


def test_too_few_pages_have_no_running_lines():
    pages = ["\n".join(["Journal of Things", *_body(p)]) for p in range(2)]
    assert all(text.startswith("Journal of Things") for text in drop_furniture(pages))


def test_soft_hyphens_radicals_and_control_characters():
    assert clean_page("bradykinin accumula\ufffetion by dual") == "bradykinin accumulation by dual"
    assert clean_page("angiotensin inhibi\x02\r\ntor") == "angiotensin inhibitor"
    assert clean_page("\u2f8e\u5e38\u89c4\u2ed4\u8bca") == "血常规门诊"  # Kangxi 血 and supplement 门
    assert clean_page("\x04C 2014 The Authors\x00\r\nnext\tline") == "C 2014 The Authors\nnext\tline"


def test_garbage_pages_need_ocr_and_blank_or_good_pages_do_not():
    assert page_problem("", has_images=True) == "no text layer, only images (a scan)"
    assert page_problem(" \n\x0c", has_images=False) is None  # blank page
    assert "NUL" in page_problem("\x00摘\x00要\x00\x00\x00\ue000\ufffd", has_images=False)
    assert "Latin-1" in page_problem("ÍÆ#(ØK) 1õ œ Ã±: +°) ¥¸†EÍ. y²3¸†EÍ", has_images=False)
    assert page_problem("Café au lait spots and naïve T cells in Zürich.", has_images=False) is None
    assert page_problem("特鲁索综合征首选抗凝治疗。Café", has_images=False) is None


def test_empty_files_are_reported_as_empty_not_as_scans(tmp_path: Path):
    from fpdf import FPDF

    (tmp_path / "zero.pdf").write_bytes(b"")
    pdf = FPDF()
    pdf.add_page()  # a page with nothing on it
    pdf.output(str(tmp_path / "blank.pdf"))
    errors = {Path(e.path).name: e.message for e in load_folder(tmp_path).errors}
    assert errors == {
        "zero.pdf": "empty file (0 bytes)",
        "blank.pdf": "empty PDF: no page has text or images",
    }


# --- the real PDFs -------------------------------------------------------------------------------

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no real PDFs at {SHARED}")


def _cjk_share(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    return sum("\u4e00" <= c <= "\u9fff" for c in chars) / max(len(chars), 1)


@pytest.fixture(scope="module")
def catalog() -> dict[str, dict]:
    return {e["file"]: e for e in json.loads((SHARED / "catalog.json").read_text(encoding="utf-8"))["files"]}


@pytest.fixture(scope="module")
def loaded(catalog) -> dict[str, str | LoadFailure]:
    """File name -> its loaded text, or the LoadFailure it raised."""
    out: dict[str, str | LoadFailure] = {}
    for name in catalog:
        try:
            out[name] = load_file(SHARED / name, Path(name).stem, ingest=NO_OCR).text
        except LoadFailure as exc:
            out[name] = exc
    return out


# Files whose text layer every library fails to read (catalog.json: "readable": "no ...").
UNREADABLE = {
    "en-scanned-clinical-proteomics-2015-p6.pdf",
    "zh-scanned-book-8p.pdf",
    "zh-math-problems-no-tounicode.pdf",
}
CJK_SHARE = {  # lowest share of CJK among non-space characters (measured 0.86, 0.78, 0.55)
    "zh-blood-routine-kangxi-radicals.pdf": 0.75,
    "zh-digital-anthropomorphic-products-p1.pdf": 0.65,
    "zh-research-report-two-column.pdf": 0.45,
}


@needs_shared
def test_every_text_layer_pdf_loads_to_readable_text(catalog, loaded):
    assert set(catalog) - UNREADABLE == {n for n, t in loaded.items() if isinstance(t, str)}
    for name, text in loaded.items():
        if isinstance(text, str):
            assert len(text) > 300, name
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\ufffd\ufffe\u2e80-\u2fdf]", text), name
            if catalog[name]["lang"] == "en":
                assert _cjk_share(text) == 0, name
    for name, share in CJK_SHARE.items():
        assert _cjk_share(loaded[name]) >= share, name


@needs_shared
def test_english_words_are_not_glued(loaded):
    # pypdf wrote "deliveryiscommoninmanylowandmiddleincome" on this page.
    text = loaded["en-quality-improvement-malawi-bmchsr2014.pdf"]
    assert "delivery is common in many low and middle income" in text
    for name in ("en-quality-improvement-malawi-bmchsr2014.pdf", "en-heart-failure-programmes-rrp2010.pdf"):
        words = re.findall(r"[A-Za-z]+", loaded[name])
        assert sum(map(len, words)) / len(words) < 6.0, name  # measured 5.5 and 5.2
        assert max(map(len, words)) < 22, name  # no run of glued words
    ace = loaded["en-ace-inhibitor-design-clinsci2014.pdf"]
    assert "bradykinin accumulation by dual" in ace  # a soft-hyphenated word joined


@needs_shared
def test_gbk_font_page_and_radical_look_alikes_decode(loaded):
    # pypdf: "Í¼" mojibake. pdfium decodes this page through a system CJK font (scripts/install-fonts.sh).
    assert "基因外显子" in loaded["zh-fhit-gene-pcr-figures-garbled.pdf"], (
        "no CJK font? run scripts/install-fonts.sh"
    )
    blood = loaded["zh-blood-routine-kangxi-radicals.pdf"]
    assert "血常规" in blood and "门" in blood  # from ⾎ (U+2F8E) and ⻔ (U+2ED4)


@needs_shared
def test_scans_and_garbage_pages_are_reported_by_file_and_page_when_ocr_is_off(loaded):
    for name, pages in [
        ("en-scanned-clinical-proteomics-2015-p6.pdf", "page 1:"),
        ("zh-scanned-book-8p.pdf", "pages 1-8:"),
        ("zh-math-problems-no-tounicode.pdf", "page 1:"),
    ]:
        message = str(loaded[name])
        assert isinstance(loaded[name], LoadFailure) and pages in message, name
        assert "needs OCR, which is switched off (ingest.ocr = false)" in message, name
        assert "empty" not in message


@needs_shared
def test_a_text_pdf_with_a_scanned_page_is_indexed_with_a_warning(tmp_path: Path, caplog):
    import pypdfium2 as pdfium

    mixed = pdfium.PdfDocument.new()
    mixed.import_pages(pdfium.PdfDocument(str(SHARED / "zh-blood-routine-kangxi-radicals.pdf")))
    mixed.import_pages(pdfium.PdfDocument(str(SHARED / "en-scanned-clinical-proteomics-2015-p6.pdf")))
    docs = tmp_path / "docs"
    docs.mkdir()
    mixed.save(str(docs / "mixed.pdf"))
    result = load_folder(docs, NO_OCR)
    assert "血常规" in result.documents[0].text and not result.errors
    assert [w.message for w in result.warnings] == [
        "not indexed: page 2: no text layer, only images (a scan); needs OCR, which is switched off "
        "(ingest.ocr = false)"
    ]
    assert "mixed.pdf: not indexed: page 2" in caplog.text

    from rag.indexing.index import build_index

    from .helpers_index import RecordingEmbedder

    report = build_index(docs, tmp_path / "index", RecordingEmbedder(), progress=False, ingest=NO_OCR)
    assert f"warning {docs / 'mixed.pdf'}: not indexed: page 2: no text layer" in report.summary()
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text(encoding="utf-8"))
    assert [w["message"][:20] for w in manifest["load_warnings"]] == ["not indexed: page 2:"]


@needs_shared
def test_running_headers_are_removed_from_multi_page_articles():
    cases = {
        "en-quality-improvement-malawi-bmchsr2014.pdf": "BMC Health Services Research 2014, 14:1 Page",
        "en-dvt-prophylaxis-trauma-review-jtmo2010.pdf": "Datta et al. Journal of Trauma Management",
        "en-heart-failure-programmes-rrp2010.pdf": "Rehabilitation Research and Practice",
        "en-ace-inhibitor-design-clinsci2014.pdf": "R. G. Douglas and others",
        "zh-research-report-two-column.pdf": "请务必阅读正文之后的信息披露和法律声明",
    }
    for name, furniture in cases.items():
        pages = read_pages(SHARED / name)
        assert len(pages) >= 4
        assert not any(furniture in p.text for p in pages), name
        assert all(len(p.text) > 400 for p in pages), name  # the body stays (a table page: 442)
    malawi = read_pages(SHARED / "en-quality-improvement-malawi-bmchsr2014.pdf")
    assert malawi[1].text.startswith("Background\nThe desire to improve on health systems")


def test_a_pdf_metadata_title_is_used_only_when_it_reads_as_a_title():
    from rag.ingest.pdf import title_from_metadata

    assert (
        title_from_metadata("Heart failure  outcomes in Ireland.pdf") == "Heart failure outcomes in Ireland"
    )
    assert title_from_metadata("肺癌骨转移血液标志物研究") == "肺癌骨转移血液标志物研究"
    assert title_from_metadata("Microsoft Word - Patient experiences of heart failure care.docx") == (
        "Patient experiences of heart failure care"
    )
    for junk in (None, "", "untitled", "Slide 1", "6489122611071476 1..10", "draft.pdf", "骨转移"):
        assert title_from_metadata(junk) is None, junk


@needs_shared
def test_real_pdfs_take_their_metadata_title_or_their_file_name():
    dvt = load_file(SHARED / "en-dvt-prophylaxis-trauma-review-jtmo2010.pdf", "dvt", ingest=NO_OCR)
    assert dvt.title == (
        "Complications related to deep venous thrombosis prophylaxis in trauma: "
        "a systematic review of the literature"
    )
    # its Title entry is a job number ("6489122611071476 1..10"): the file name stands in
    malawi = SHARED / "en-quality-improvement-malawi-bmchsr2014.pdf"
    assert load_file(malawi, "m", ingest=NO_OCR).title == malawi.stem

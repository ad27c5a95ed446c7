from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.ingest.loading import decode_text, load_folder

from .conftest import DOCS


def test_bundled_corpus_loads_with_catalog_titles():
    result = load_folder(DOCS)
    assert not result.errors
    docs = {d.doc_id: d for d in result.documents}
    assert len(docs) == 5
    assert docs["lung-cancer-bone-metastasis-blood-markers"].title.startswith(
        "血检指标与肺癌骨转移相关性及进展 ("
    )
    assert docs["trousseau-syndrome-review"].meta["doi"] == "10.12677/acm.2024.142339"
    assert all(d.lang == "zh" for d in docs.values())


def test_gbk_and_utf8_load_to_the_same_text(tmp_path: Path):
    text = "特鲁索综合征首选抗凝治疗,低分子肝素是一线药物。"
    (tmp_path / "a.txt").write_bytes(text.encode("utf-8"))
    (tmp_path / "b.txt").write_bytes(text.encode("gbk"))
    (tmp_path / "c.txt").write_bytes(text.encode("gb18030"))
    (tmp_path / "d.txt").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    docs = load_folder(tmp_path).documents
    assert [d.text for d in docs] == [text] * 4


def test_document_without_catalog_entry_uses_file_name_as_title(tiny_corpus: Path):
    docs = {d.doc_id: d for d in load_folder(tiny_corpus).documents}
    assert docs["gbk-poems"].title == "gbk-poems"
    assert docs["en-angiosarcoma"].lang == "en"
    assert "treatment for localised" in docs["en-angiosarcoma"].text


def test_catalog_title_is_used(tiny_corpus: Path):
    (tiny_corpus / "catalog.json").write_text(
        json.dumps([{"file": "gbk-poems.txt", "title": "POEMS 综合征病例"}], ensure_ascii=False),
        encoding="utf-8",
    )
    docs = {d.doc_id: d for d in load_folder(tiny_corpus).documents}
    assert docs["gbk-poems"].title == "POEMS 综合征病例"


def test_catalog_may_hold_its_entries_under_files(tiny_corpus: Path):
    (tiny_corpus / "catalog.json").write_text(
        json.dumps(
            {"generated_with": {"pypdf": "7"}, "files": [{"file": "gbk-poems.txt", "title": "POEMS 病例"}]},
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    docs = {d.doc_id: d for d in load_folder(tiny_corpus).documents}
    assert docs["gbk-poems"].title == "POEMS 病例"


@pytest.mark.parametrize("content", ['{"entries": []}', '"a title"', '[{"title": "no file key"}]', "{"])
def test_a_catalog_of_another_shape_is_reported_and_ignored(tiny_corpus: Path, content: str, caplog):
    (tiny_corpus / "catalog.json").write_text(content, encoding="utf-8")
    with caplog.at_level("WARNING"):
        docs = {d.doc_id: d for d in load_folder(tiny_corpus).documents}
    assert docs["gbk-poems"].title == "gbk-poems"
    assert "ignoring" in caplog.text and "'files'" in caplog.text


def test_generated_pdf_loads_through_its_text_layer(tmp_path: Path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 10, "1 Introduction\nLow molecular weight heparin is the first-line treatment.")
    pdf.output(str(tmp_path / "paper.pdf"))
    docs = load_folder(tmp_path).documents
    assert "Low molecular weight heparin is the first-line treatment." in docs[0].text


def test_docx_and_html_load(tmp_path: Path):
    import docx

    d = docx.Document()
    d.add_paragraph("组织因子是重要的促凝物质。")
    d.save(str(tmp_path / "a.docx"))
    (tmp_path / "b.html").write_text(
        "<html><head><style>p{}</style><script>x=1</script></head><body><p>华法林用于口服抗凝。</p></body></html>",
        encoding="utf-8",
    )
    texts = {d.doc_id: d.text for d in load_folder(tmp_path).documents}
    assert texts == {"a": "组织因子是重要的促凝物质。", "b": "华法林用于口服抗凝。"}


def test_unreadable_files_are_reported_by_name_and_skipped(tiny_corpus: Path, monkeypatch):
    (tiny_corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (tiny_corpus / "empty.txt").write_bytes(b"")
    (tiny_corpus / "image.png").write_bytes(b"\x89PNG")
    (tiny_corpus / "locked.txt").write_text("secret", encoding="utf-8")
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "locked.txt":  # the tests run as root, which chmod 0 does not stop
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = load_folder(tiny_corpus)
    assert sorted(d.doc_id for d in result.documents) == ["en-angiosarcoma", "gbk-poems", "zh-thrombosis"]
    errors = {Path(e.path).name: e.message for e in result.errors}
    assert "PDF" in errors["broken.pdf"]
    assert errors["empty.txt"] == "empty file (0 bytes)"
    assert "unsupported file type .png" in errors["image.png"]
    assert errors["locked.txt"] == "cannot read the file (Permission denied)"


def test_missing_folder_says_what_to_do(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="Pass --docs DIR"):
        load_folder(tmp_path / "nope")


def test_decode_falls_back_for_other_encodings():
    assert decode_text("Café thrombose".encode("cp1252")).startswith("Caf")

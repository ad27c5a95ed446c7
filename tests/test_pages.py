"""Page numbers end to end: page offsets from loading, chunks and quotes that know their page, the index
files that keep them, and the citations that show them (answer text, CLI, JSON, app, eval report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answer.framing import page_label, where
from rag.indexing.index import Index, build_index
from rag.ingest.chunking import chunk_document
from rag.ingest.loading import load_file, load_folder
from rag.ingest.normalise import normalise
from rag.ingest.pdf import read_pages
from rag.types import Document, Quote

from .conftest import REPO, FakeEmbedder

SHARED = REPO / ".." / "shared" / "pdfs"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/pdfs is not beside the repo")

# One distinct sentence per page; the one on page 2 runs over onto page 3.
PAGES = [
    ["1 Introduction", "Heparin prevents deep vein thrombosis after surgery in most trauma patients."],
    ["2 Methods", "Warfarin dosing was adjusted weekly by the anticoagulation clinic nurses and"],
    ["the pharmacists of the hospital.", "Aspirin was given to every patient with a stent."],
    ["3 Discussion", "Bleeding was rare with low molecular weight heparin in this trial."],
]


def _pdf(path: Path, pages: list[list[str]]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for lines in pages:
        pdf.add_page()
        for line in lines:
            pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


@pytest.fixture
def paged(tmp_path: Path) -> Document:
    folder = tmp_path / "pdf"
    folder.mkdir()
    _pdf(folder / "trial.pdf", PAGES)
    return load_file(folder / "trial.pdf", "trial")


def test_document_keeps_page_start_offsets(paged: Document):
    assert len(paged.pages) == 4 and paged.pages[0] == 0
    assert list(paged.pages) == sorted(paged.pages)
    for n, lines in enumerate(PAGES, 1):
        at = paged.text.index(normalise(lines[-1]))
        assert paged.page_at(at) == n, (n, lines[-1])
    # the sentence that runs over the page break is one line; page 3 starts inside it
    run_over = paged.text.index("Warfarin dosing")
    assert paged.text[run_over:].startswith(
        "Warfarin dosing was adjusted weekly by the anticoagulation clinic nurses and the"
    )
    assert paged.page_at(run_over) == 2 and paged.text[paged.pages[2] :].startswith("the pharmacists")


def test_chunks_know_their_first_page_and_keep_their_offsets(paged: Document):
    chunks = chunk_document(paged)
    assert chunks
    for c in chunks:
        assert paged.text[c.start : c.end] == c.text
        assert c.page == paged.page_at(c.start) and c.ocr is False
    by_section = {c.section: c.page for c in chunks}
    assert (
        by_section["1 Introduction"] == 1 and by_section["2 Methods"] == 2 and by_section["3 Discussion"] == 4
    )


def test_unpaged_formats_have_no_page(tiny_corpus: Path):
    for doc in load_folder(tiny_corpus).documents:
        assert doc.pages == () and doc.page_at(0) is None
        assert all(c.page is None for c in chunk_document(doc))
    assert page_label(None, False, "en") == ""
    assert "p." not in where(None, "1 Introduction", "en", None)


def test_citation_labels_in_both_languages():
    assert page_label(4, False, "en") == "p. 4" and page_label(4, True, "en") == "p. 4 (OCR)"
    assert page_label(4, False, "zh") == "第 4 页"
    assert where(None, "3 讨论", "zh", 4) == "3 讨论 · 第 4 页"
    assert where(None, "3 Discussion", "en", 4) == "3 Discussion · p. 4"


@pytest.fixture
def paged_index(tmp_path: Path, fake_embedder) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    _pdf(folder / "trial.pdf", PAGES)
    index_dir = tmp_path / "index"
    build_index(folder, index_dir, fake_embedder, progress=False)
    return index_dir


def test_the_index_keeps_pages_and_reads_an_older_index_without_them(paged_index: Path, paged: Document):
    index = Index.load(paged_index)
    doc = index.documents["trial"]
    assert doc.pages == paged.pages
    assert [c.page for c in index.chunks] == [c.page for c in chunk_document(doc)]
    # a version-2 index (written before pages) still loads; it simply names no page
    manifest = json.loads((paged_index / "manifest.json").read_text(encoding="utf-8"))
    manifest["format_version"] = 2
    (paged_index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for name, keys in (("documents.jsonl", ("pages", "ocr_pages")), ("chunks.jsonl", ("page", "ocr"))):
        path = paged_index / name
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        path.write_text(
            "".join(json.dumps({k: v for k, v in r.items() if k not in keys}) + "\n" for r in rows),
            encoding="utf-8",
        )
    old = Index.load(paged_index)
    assert old.documents["trial"].pages == () and all(c.page is None for c in old.chunks)


# The fake embedder's similarities are not e5's: the rules that judge evidence and terms are off.
NO_RULES = [f"--set=refusal.{rule}=false" for rule in ("evidence", "absent_terms", "unknown_names")]


def test_quotes_and_citations_name_the_page(paged_index: Path, monkeypatch, capsys):
    import rag.pipeline
    from rag.cli import main

    monkeypatch.setattr(rag.pipeline, "embedder_for", lambda built, model, runtime: FakeEmbedder())
    question = "Was bleeding rare with low molecular weight heparin in this trial?"
    assert main(["ask", question, "--index", str(paged_index), "--json", *NO_RULES]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quotes"], out["answer"]
    doc = Index.load(paged_index).documents["trial"]
    for q in out["quotes"]:
        assert q["page"] == doc.page_at(q["start"]) and q["ocr"] is False
        assert f"p. {q['page']}" in out["answer"]
    for h in out["hits"]:
        assert h["page"] == doc.page_at(h["start"])
    assert main(["ask", question, "--index", str(paged_index), *NO_RULES]) == 0
    printed = capsys.readouterr().out
    assert f"[1] trial · p. {out['quotes'][0]['page']} [" in printed
    assert main(["inspect", "--index", str(paged_index)]) == 0
    assert "chunks, 4 pages): trial" in capsys.readouterr().out


def test_the_app_card_shows_the_page(paged: Document):
    from webui.render import quote_from_json, render_quote

    start = paged.text.index("Bleeding was rare")
    end = paged.text.index(".", start) + 1
    q = Quote(
        1, "trial", "trial", "3 Discussion", start, end, paged.text[start:end], *paged.page_and_ocr(start)
    )
    card = render_quote(q, {"trial": paged}, "en")
    assert "§ 3 Discussion · p. 4" in card
    assert "3 Discussion · 第 4 页" in render_quote(q, {"trial": paged}, "zh")
    row = {
        "n": 1,
        "doc_id": "trial",
        "title": "t",
        "section": "s",
        "start": start,
        "end": end,
        "text": q.text,
    }
    assert quote_from_json(row).page is None  # rows saved before pages
    assert quote_from_json({**row, "page": 4, "ocr": True}).page == 4


def test_the_eval_report_names_the_page():
    from rag.evaluate.report import _failure_lines

    failure = {
        "id": "q1",
        "question": "?",
        "lang": "en",
        "direction": "en->en",
        "reasons": ["abstained"],
        "evidence": [],
        "top": [
            {
                "rank": 1,
                "doc_id": "trial",
                "section": "3 Discussion",
                "page": 4,
                "text": "x",
                "score": 0.5,
                "relevant": True,
            }
        ],
        "quotes": [{"n": 1, "doc_id": "trial", "section": "3 Discussion", "page": 4, "ocr": True}],
        "abstained": False,
        "answer": "a",
    }
    lines = _failure_lines(failure)
    assert "top 1: trial > 3 Discussion · p. 4 [0.500] (relevant): x" in lines
    assert "quote [1]: trial > 3 Discussion · p. 4 (OCR)" in lines


@needs_shared
def test_real_pdf_pages_match_their_text_layer():
    path = SHARED / "en-quality-improvement-malawi-bmchsr2014.pdf"
    doc = load_file(path, "malawi")
    pages = read_pages(path)
    assert len(doc.pages) == len(pages) == 10
    checked = 0
    for page in pages:
        for line in page.text.split("\n"):
            line = normalise(line)
            if len(line) >= 40 and not line.endswith("-") and doc.text.count(line) == 1:
                assert doc.page_at(doc.text.index(line)) == page.number, (page.number, line)
                checked += 1
    assert checked > 100
    for c in chunk_document(doc):
        assert doc.text[c.start : c.end] == c.text and c.page == doc.page_at(c.start)


def test_an_llm_answers_verified_quotes_know_their_page(paged: Document):
    from rag.answer.generate import verify_answer
    from rag.types import Hit

    hits = [Hit(c, 1.0, i) for i, c in enumerate(chunk_document(paged))]
    n = next(i for i, h in enumerate(hits, 1) if "Bleeding was rare" in h.chunk.text)
    v = verify_answer(
        f"“Bleeding was rare with low molecular weight heparin” [{n}]", "en", hits, {"trial": paged}
    )
    assert [(q.page, q.ocr) for q in v.quotes] == [(4, False)]

"""Section labels of structured abstracts (rag/data/domain/papers.json, `structured`): inline and on
their own line, the label the section and not the start of its first sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.ingest.chunking import chunk_document, find_sections
from rag.ingest.headings import parse_heading, split_run_in_heading
from rag.ingest.loading import load_file
from rag.ingest.normalise import normalise
from rag.ingest.sentences import sentence_spans
from rag.settings import IngestSettings
from rag.types import Document

from .conftest import REPO

SHARED = REPO / ".." / "shared" / "pdfs"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no real PDFs at {SHARED}")

PUBMED = (
    "Effect of heparin on thrombosis after trauma\n\n"
    "OBJECTIVE To determine whether heparin prevents thrombosis. DESIGN Randomised controlled trial. "
    "SETTING Two hospitals in Canada. PARTICIPANTS 120 adults after trauma. INTERVENTIONS Heparin or "
    "placebo. MAIN OUTCOME MEASURES Deep vein thrombosis at 30 days. RESULTS: Forty patients had a "
    "thrombosis. CONCLUSIONS Heparin prevents thrombosis.\n"
)


def _sections(text: str) -> list[tuple[tuple[str, ...], str]]:
    return [(s.path, text[s.start : s.end]) for s in find_sections(text, "en")]


def test_inline_labels_of_a_one_paragraph_abstract_become_its_sections():
    text = normalise(PUBMED)
    got = _sections(text)
    assert [path for path, _ in got] == [
        ("OBJECTIVE",),
        ("DESIGN",),
        ("SETTING",),
        ("PARTICIPANTS",),
        ("INTERVENTIONS",),
        ("MAIN OUTCOME MEASURES",),
        ("RESULTS",),
        ("CONCLUSIONS",),
    ]
    assert got[0][1] == "OBJECTIVE\nTo determine whether heparin prevents thrombosis."
    # the label is not glued into the first sentence
    spans = [text[s:e] for s, e in sentence_spans(text)]
    assert "To determine whether heparin prevents thrombosis." in spans
    assert "Forty patients had a thrombosis." in spans and not any(
        s.startswith("OBJECTIVE To") for s in spans
    )
    doc = Document("d", "t", "d.txt", text, "x", "en")
    assert {c.section for c in chunk_document(doc)} >= {"OBJECTIVE", "RESULTS", "CONCLUSIONS"}


def test_labels_on_their_own_line_and_with_a_colon_or_full_stop():
    text = normalise(
        "Abstract\nObjectives\nTo compare two drugs.\nMethods: A survey of 40 wards.\nResults. All wards took part."
    )
    assert [p for p, _ in _sections(text)] == [
        ("Abstract",),
        ("Abstract", "Objectives"),
        ("Abstract", "Methods"),
        ("Abstract", "Results"),
    ]
    for line in (
        "OBJECTIVE",
        "Objectives:",
        "AIMS",
        "Purpose",
        "MAIN OUTCOME MEASURES",
        "INTERPRETATION",
        "FINDINGS",
    ):
        assert parse_heading(line) is not None, line


def test_words_that_only_look_like_labels_are_left_alone():
    assert split_run_in_heading("Setting up a quality process is hard.") == [
        "Setting up a quality process is hard."
    ]
    assert split_run_in_heading("PURPOSE OF THE STUDY") == ["PURPOSE OF THE STUDY"]
    assert split_run_in_heading("We enrolled them. Patients were young.") == [
        "We enrolled them. Patients were young."
    ]
    assert split_run_in_heading("Results of a multicenter study.") == ["Results of a multicenter study."]
    assert parse_heading("patients") is None  # a word cut off a table cell


def test_the_papers_own_sections_after_a_structured_abstract_are_top_level():
    text = normalise(
        "Abstract\nBackground: Care is poor.\nMethods: A survey.\nResults: Staff are few.\nConclusions: It works.\n"
        "Keywords: quality\nBackground\nMalawi is a country in Africa.\nMethods\nWe asked the staff.\n"
        "Discussion\nThe staff were few.\nReferences\nSmith J. A paper on care. Lancet 2010."
    )
    assert [p for p, _ in _sections(text)] == [
        ("Abstract",),
        ("Abstract", "Background"),
        ("Abstract", "Methods"),
        ("Abstract", "Results"),
        ("Abstract", "Conclusions"),
        ("Abstract", "Keywords"),
        ("Background",),
        ("Methods",),
        ("Discussion",),
        ("References",),
    ]


@needs_shared
def test_real_papers_abstract_labels_are_sections():
    no_ocr = IngestSettings(ocr=False)
    malawi = load_file(SHARED / "en-quality-improvement-malawi-bmchsr2014.pdf", "m", ingest=no_ocr)
    titles = [s.title for s in find_sections(malawi.text, malawi.lang)]
    for t in ("Abstract > Background", "Abstract > Methods", "Abstract > Results", "Abstract > Conclusions"):
        assert t in titles
    assert titles.index("Abstract > Conclusions") < titles.index("Background") < titles.index("Discussion")
    heart = load_file(SHARED / "en-heart-failure-programmes-rrp2010.pdf", "h", ingest=no_ocr)
    titles = [s.title for s in find_sections(heart.text, heart.lang)]
    assert titles[:5] == ["(Introduction)", "Objectives", "Methods", "Results", "Conclusion"]
    assert "1 Introduction" in titles and "11 Discussion" in titles
    results = next(s for s in find_sections(heart.text, heart.lang) if s.title == "Results")
    assert heart.text[results.start : results.end].startswith("Results\nParticipants indicated")


def test_loading_a_text_file_takes_its_first_line_as_title(tmp_path: Path):
    (tmp_path / "a.txt").write_text(PUBMED, encoding="utf-8")
    (tmp_path / "b.txt").write_text("One sentence. Another sentence.\nMore text.", encoding="utf-8")
    a = load_file(tmp_path / "a.txt", "a")
    assert a.title == "Effect of heparin on thrombosis after trauma"
    assert a.text.startswith("Effect of heparin on thrombosis after trauma\nOBJECTIVE\n")
    assert load_file(tmp_path / "b.txt", "b").title == "b"  # no title line: the file name


MEDQUAD = REPO / ".." / "shared" / "devsets" / "medquad" / "docs"


@pytest.mark.skipif(not MEDQUAD.is_dir(), reason=f"no MedQuAD pages at {MEDQUAD}")
def test_medquad_pages_keep_their_title_line_apart_from_the_first_sentence(tmp_path):
    import json
    import shutil

    from rag.ingest.loading import load_folder

    entries = json.loads((MEDQUAD / "catalog.json").read_text(encoding="utf-8"))[:25]
    for entry in entries:
        shutil.copy(MEDQUAD / entry["file"], tmp_path / entry["file"])
    (tmp_path / "catalog.json").write_text(json.dumps(entries), encoding="utf-8")
    loaded = load_folder(tmp_path, IngestSettings(ocr=False))
    assert not loaded.errors and len(loaded.documents) == len(entries)
    for doc in loaded.documents:
        (s1, e1), (s2, _) = sentence_spans(doc.text)[:2]
        first = doc.text[s1:e1]
        # The page's own first line is its title: a sentence of its own, ended by its line break.
        assert first.casefold() == doc.title.casefold(), doc.doc_id
        assert doc.text[e1:s2] == "\n", doc.doc_id
        chunk = chunk_document(doc)[0]
        assert chunk.text.startswith(first + "\n"), doc.doc_id

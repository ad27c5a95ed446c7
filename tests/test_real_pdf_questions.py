"""One question per real PDF of ../shared/pdfs, asked in the paper's own language through the whole
pipeline (pypdfium2, OCR for the scans, e5 + USE, the refusal rules): the answer quotes that paper,
the quote holds the fact, and it names the page the fact is on.

The questions are those of `eval/pdfs_all.jsonl` whose language is the paper's, written by a helper who
had not read the code, from the text of each page; the questions in the other language are measured
by `rag eval` on that file (eval/README.md), not asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_pdf import SHARED, needs_shared

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "eval" / "pdfs_all.jsonl"


def _own_language_questions() -> list[dict]:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
    return [q for q in rows if q["answerable"] and q["doc"].startswith(f"{q['lang']}-")]


def test_there_is_one_question_in_its_own_language_for_every_real_pdf():
    pdfs = {p.stem for p in SHARED.glob("*.pdf")} if SHARED.is_dir() else set()
    asked = [q["doc"] for q in _own_language_questions()]
    assert len(asked) == len(set(asked)) == 11
    assert not pdfs or set(asked) == pdfs


@pytest.fixture(scope="module")
def pdf_pipeline(tmp_path_factory, real_embedder):
    from rag.encode.use import USEEmbedder
    from rag.indexing.index import build_index
    from rag.pipeline import Pipeline

    index_dir = tmp_path_factory.mktemp("real-pdfs") / "index"
    report = build_index(SHARED, index_dir, real_embedder, progress=False, crosslingual=USEEmbedder())
    assert not report.errors, report.summary()
    return Pipeline.load(index_dir)


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("q", _own_language_questions(), ids=lambda q: q["doc"])
def test_each_real_pdf_answers_its_question_with_the_quote_and_its_page(pdf_pipeline, q):
    answer = pdf_pipeline.ask(q["question"])
    assert not answer.abstained, answer.refusal
    doc = pdf_pipeline.index.documents[q["doc"]]
    holding = [x for x in answer.quotes if x.doc_id == q["doc"] and q["answer"][0] in x.text]
    assert holding, [(x.doc_id, x.text) for x in answer.quotes]
    quote = holding[0]
    assert quote.matches(doc.text)
    assert quote.page == q["page"] == doc.page_at(quote.start + quote.text.index(q["answer"][0]))
    assert quote.ocr == (q["page"] in doc.ocr_pages)


def _chinese_questions_about_english_papers() -> list[dict]:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
    return [q for q in rows if q["answerable"] and q["lang"] == "zh" and q["doc"].startswith("en-")]


@pytest.mark.slow
@needs_shared
def test_chinese_questions_find_english_papers_through_induced_english_words(pdf_pipeline, real_embedder):
    """The folder is mostly English (eval/README.md: 66.8% of its words), so a Chinese question gets
    the English words of its own nearest to BM25 and e5; without them retrieval found 2 of these 5
    papers' passages in the top 5, with them 4 (`rag eval` on eval/pdfs_all.jsonl)."""
    from rag.evaluate.gold import contains_any
    from rag.pipeline import Pipeline

    questions = _chinese_questions_about_english_papers()
    assert len(questions) == 5
    lexicon = set(pdf_pipeline.index.extras.english_lexicon.vocab)
    off = Pipeline.load(
        pdf_pipeline.index.index_dir, embedder=real_embedder, overrides={"retrieval.induce_english": False}
    )

    def found(pipeline) -> int:
        n = 0
        for q in questions:
            analysis = pipeline.analyse(q["question"])
            hits = pipeline.search(analysis, 5)
            n += any(contains_any(h.chunk.text, q["evidence"]) for h in hits)
        return n

    for q in questions:
        induced = pdf_pipeline.analyse(q["question"]).induced
        assert induced and set(induced) <= lexicon, (q["id"], induced)
        assert off.analyse(q["question"]).induced == ()
    assert found(pdf_pipeline) >= 4 > found(off)

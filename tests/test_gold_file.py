"""The shipped gold set is well formed and every evidence phrase is really in the bundled papers."""

from __future__ import annotations

from collections import Counter

import pytest

from rag.evaluate.gold import load_gold, match_key
from rag.ingest.loading import load_folder

from .conftest import DOCS, REPO

GOLD = REPO / "eval" / "gold.jsonl"


@pytest.fixture(scope="module")
def gold():
    return load_gold(GOLD)


@pytest.fixture(scope="module")
def doc_keys():
    return {d.doc_id: match_key(d.text) for d in load_folder(DOCS).documents}


def test_every_evidence_phrase_occurs_in_a_normalised_document(gold, doc_keys):
    missing = [
        (g.id, e) for g in gold for e in g.evidence if not any(match_key(e) in t for t in doc_keys.values())
    ]
    assert not missing


def test_every_answerable_question_has_an_answer_string_in_its_documents(gold, doc_keys):
    texts = "\n".join(doc_keys.values())
    missing = [g.id for g in gold if g.answerable and not any(match_key(a) in texts for a in g.answer)]
    assert not missing


def test_size_coverage_and_pairs(gold):
    assert len(gold) >= 80
    assert sum(not g.answerable for g in gold) >= 12
    assert {g.lang for g in gold} == {"zh", "en"}
    docs = {d for g in gold if g.answerable for d in g.doc.split(",")}
    assert docs == {d.stem for d in DOCS.glob("*.txt")}
    pairs = Counter(g.pair for g in gold if g.answerable)
    assert all(n == 2 for n in pairs.values())
    for pair in pairs:
        assert {g.lang for g in gold if g.pair == pair} == {"zh", "en"}
    assert sum(g.kind == "multi-doc" for g in gold) >= 2


OTHER_FILES = ("heldout.jsonl", "heldout2.jsonl", "heldout3.jsonl", "dev.jsonl", "frequency_bundled.jsonl")


@pytest.mark.parametrize("name", OTHER_FILES)
def test_the_held_out_questions_are_well_formed_and_their_evidence_is_in_the_papers(doc_keys, name):
    # The held-out and dev files measure questions the pipeline was not built on; a phrase that
    # matches no chunk would make an answerable question look unretrieved.
    held_out = load_gold(REPO / "eval" / name)
    assert {g.answerable for g in held_out} == {True, False} and {g.lang for g in held_out} == {"zh", "en"}
    missing = [
        (g.id, e)
        for g in held_out
        for e in g.evidence
        if not any(match_key(e) in t for t in doc_keys.values())
    ]
    assert missing == []
    others = [GOLD, *(REPO / "eval" / f for f in OTHER_FILES if f != name)]
    assert not {g.question for g in held_out} & {g.question for f in others for g in load_gold(f)}


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "eval").glob("*.jsonl")))
def test_every_question_file_loads_with_unique_ids_and_evidence(name):
    # A file rag eval cannot read (a null doc, a missing key) would only fail when someone runs it.
    questions = load_gold(REPO / "eval" / name)
    assert questions and len({g.id for g in questions}) == len(questions)
    assert all(g.evidence for g in questions if g.answerable)

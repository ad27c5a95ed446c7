"""Judging by the best hit's paper: names and terms in its scripts, the evidence measure in its language,
calibration keyed as the rule is (`refusal.judge_by_paper`, `retrieval.evidence_by_paper`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rag.abstain.calibration import _scored
from rag.abstain.rules import refusal_rules
from rag.evaluate.gold import GoldItem
from rag.pipeline import Pipeline
from rag.query.analysis import analyse_text
from rag.settings import RefusalSettings, Settings
from rag.types import Chunk, Document, Hit

from .conftest import FakeEmbedder


def _hit(doc_id, lang):
    return [Hit(Chunk("c", doc_id, "T", "S", 0, 4, "text", lang), 1.0)]


def test_names_are_judged_by_the_paper_and_an_unknown_or_letterless_paper_falls_back_to_the_passage():
    zh_paper = Document("zh", "T", "zh.txt", "摘要" * 200 + " Abstract: CBC in children.", "", "zh")
    rules = refusal_rules(
        Settings(refusal=RefusalSettings(judge_by_paper=True)), {"zh": zh_paper}, lambda q, h: 1.0
    )
    unknown = next(r for r in rules if r.code == "unknown_names")
    zh = replace(analyse_text("卡穆祖医院用 omapatrilat 吗？"), unknown_names=("卡穆祖", "omapatrilat"))
    # English passage of a Chinese paper: the paper decides, both names judged
    assert dict(unknown.check(zh, _hit("zh", "en"), None).values) == {"names": "卡穆祖, omapatrilat"}
    # unknown paper: by passage, so both names
    assert dict(unknown.check(zh, _hit("gone", "zh"), None).values) == {"names": "卡穆祖, omapatrilat"}
    # a paper without letters (numbers only, failed OCR) says nothing: by passage
    digits = Document("n", "1", "n.txt", "12 34 56", "", "zh")
    rules = refusal_rules(
        Settings(refusal=RefusalSettings(judge_by_paper=True)), {"n": digits}, lambda q, h: 1.0
    )
    absent = next(r for r in rules if r.code == "absent_terms")
    en = replace(analyse_text("Is afebrile common?"), absent_terms=("afebrile",))
    assert absent.check(en, _hit("n", "en"), None).code == "absent_terms"


def test_the_key_is_the_language_of_most_chunks_of_the_first_hits_paper(tmp_path):
    from rag.indexing.index import build_index

    docs = tmp_path / "docs"
    docs.mkdir()
    # first chunk English (abstract), most chunks Chinese
    en_head = (
        "Abstract\n" + "Angiosarcoma is a rare tumour of endothelial cells treated by surgery. " * 30 + "\n"
    )
    zh_body = "".join(
        f"{i}. 第{i}节\n" + "血管肉瘤是一种罕见的内皮细胞恶性肿瘤，手术是主要治疗。" * 30 + "\n"
        for i in range(1, 5)
    )
    (docs / "mixed.txt").write_text(en_head + zh_body, encoding="utf-8")
    (docs / "en.txt").write_text("Deep venous thrombosis is common after trauma. " * 5, encoding="utf-8")
    build_index(docs, tmp_path / "index", FakeEmbedder(), progress=False)
    p = Pipeline.load(tmp_path / "index", embedder=FakeEmbedder())
    langs = [c.lang for c in p.index.chunks if c.doc_id == "mixed"]
    assert langs[0] == "en" and langs.count("zh") > langs.count("en"), langs
    mixed = next(c for c in p.index.chunks if c.doc_id == "mixed" and c.lang == "en")
    en = next(c for c in p.index.chunks if c.doc_id == "en")
    q = p.analyse("血管肉瘤的主要治疗是什么？", encode=False)
    assert p.retriever.evidence_key(q, [Hit(mixed, 1.0, 1)]) == "zh"  # most of its chunks, not its first
    assert p.retriever.evidence_key(q, [Hit(en, 2.0, 1), Hit(mixed, 1.0, 2)]) == "en"  # the first hit's paper


def test_calibration_keys_as_the_rule_in_a_mixed_folder(fake_index):
    pipeline = Pipeline.load(fake_index, embedder=FakeEmbedder())
    assert pipeline.retriever._corpus_lang == "zh"
    item = GoldItem("q", "angiosarcoma 的 everolimus 治疗是什么？", "zh", True, (), ())
    (row,) = _scored(pipeline, [item], 5, "bm25", None)
    hits = pipeline.search(pipeline.analyse(item.question), 5, "bm25")
    assert hits[0].chunk.doc_id == "en-angiosarcoma"
    assert row[1] == "en"  # by its best paper, English, as the rule keys it


def test_evidence_measure_follows_the_key(xl_pipeline):
    pipeline, _ = xl_pipeline
    r, ex = pipeline.retriever, pipeline.index.extras
    assert r._corpus_lang == "zh"
    zh = pipeline.analyse("血管肉瘤的主要治疗是什么？")
    hits = [Hit(c, 1.0, 1) for c in pipeline.index.chunks if c.doc_id == "en-angiosarcoma"][:2]
    assert r.evidence_key(zh, hits) == "en" and zh.crosslingual is not None
    rows = np.concatenate([np.arange(*r._ranges[pipeline.index.position(h.chunk.id)]) for h in hits])
    sims = ex.xl_sentence_vectors @ zh.crosslingual
    expected = np.clip(sims[rows].max() - (r._background() @ zh.crosslingual).mean(), 0.0, 1.0)
    assert r.evidence(zh, hits) == pytest.approx(
        expected, abs=1e-6
    )  # the cross-lingual measure, as the key says

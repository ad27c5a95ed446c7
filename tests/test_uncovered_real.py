"""`uncovered_terms` with the real encoders, on real MedQuAD pages: a fact asked about one condition that
the corpus holds only for another is refused; the same question without it is answered."""

from __future__ import annotations

import json
import shutil

import pytest

from rag.pipeline import Pipeline

from .conftest import REPO

MEDQUAD = REPO / ".." / "shared" / "devsets" / "medquad" / "docs"
CELIAC = "ghr_0000163.txt"  # "prevalence … about 1 in 100 people worldwide"
FINLAND = ("ghr_0000074.txt", "ghr_0000545.txt", "ghr_0000586.txt")  # the only pages naming Finland


@pytest.mark.slow
@pytest.mark.skipif(not MEDQUAD.is_dir(), reason=f"no MedQuAD pages at {MEDQUAD}")
def test_a_fact_the_pages_hold_only_for_other_conditions_is_refused(tmp_path, real_embedder):
    from rag.encode.use import USEEmbedder
    from rag.indexing.index import build_index

    # 84 pages: enough that 3 pages naming Finland are few (the rule judges words at most 5% write).
    catalog = json.loads((MEDQUAD / "catalog.json").read_text(encoding="utf-8"))
    wanted = {CELIAC, *FINLAND}
    entries = [e for e in catalog if e["file"] in wanted] + [e for e in catalog if e["file"] not in wanted][
        :80
    ]
    docs = tmp_path / "docs"
    docs.mkdir()
    for entry in entries:
        shutil.copy(MEDQUAD / entry["file"], docs / entry["file"])
    (docs / "catalog.json").write_text(json.dumps(entries), encoding="utf-8")
    build_index(docs, tmp_path / "index", real_embedder, progress=False, crosslingual=USEEmbedder())
    pipeline = Pipeline.load(tmp_path / "index", embedder=real_embedder)

    refused = pipeline.ask("How common is celiac disease in Finland?")
    assert refused.abstained and refused.refusal.code == "uncovered_terms", refused.answer
    assert dict(refused.refusal.values) == {"terms": "Finland"}
    answered = pipeline.ask("How common is celiac disease?")
    assert not answered.abstained, answered.answer
    assert any("1 in 100" in q.text and q.doc_id == CELIAC.removesuffix(".txt") for q in answered.quotes)
    # Switched off, the rule lets the first question through: it, not another rule, refused it.
    off = Pipeline.load(
        tmp_path / "index", embedder=real_embedder, overrides={"refusal.uncovered_terms": False}
    )
    assert not off.ask("How common is celiac disease in Finland?").abstained

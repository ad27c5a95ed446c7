"""The retrieval ablation runs every variant for real, also on a set in one language."""

from __future__ import annotations

import json

import rag.pipeline
from eval import ablation

from .conftest import FakeEmbedder


def test_every_variant_is_measured_on_a_set_in_one_language(fake_index, tmp_path, monkeypatch):
    monkeypatch.setattr(rag.pipeline, "embedder_for", lambda built, model, runtime: FakeEmbedder())
    rows = [
        {"id": "a", "question": "抗凝治疗首选什么药物？", "lang": "zh", "answerable": True,
         "evidence": ["低分子肝素"], "answer": ["低分子肝素"]},
        {"id": "u", "question": "阿哌沙班的剂量是多少？", "lang": "zh", "answerable": False,
         "evidence": [], "answer": []},
    ]  # fmt: skip
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    out = tmp_path / "ablation.md"
    assert ablation.main(["--gold", str(gold), "--index", str(fake_index), "--out", str(out)]) == 0
    table = [line for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(ablation.VARIANTS)  # the header, one row per variant
    by_name = {r.split(" | ")[0][2:]: r.split(" | ")[1:] for r in table[1:]}
    hybrid = by_name["hybrid (default)"]
    assert float(hybrid[1]) == 1.0  # zh R@5: the one answerable question's passage is found
    assert hybrid[3:6] == ["–", "–", "–"]  # no English question: no English figures
    assert "- induced English words (zh, over English papers)" in by_name

"""Thresholds moved to each index's pseudo-questions (rag.abstain.adaptive), on fake and real encoders."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from rag.abstain.adaptive import (
    SOURCE,
    PseudoSpec,
    equal_error_point,
    pseudo_questions,
    write_adapted,
)
from rag.indexing.index import Index, build_index
from rag.settings import load_settings
from tests.conftest import FakeEmbedder

# Sentences of at least 12 Han characters, in several documents, so both sides get scored.
TOPICS = {
    "heart": [
        "心力衰竭患者的住院率在出院后三十天内明显升高",
        "血管紧张素转换酶抑制剂可以降低心衰患者的死亡风险",
    ],
    "lung": [
        "慢性阻塞性肺疾病患者长期吸入支气管扩张剂可以改善症状",
        "肺功能检查是诊断慢性阻塞性肺疾病的主要依据之一",
    ],
    "liver": [
        "乙型肝炎病毒感染是我国肝硬化和肝癌最常见的病因",
        "抗病毒治疗能够明显降低慢性乙型肝炎患者的肝癌发生率",
    ],
    "kidney": [
        "慢性肾脏病患者应当定期监测血清肌酐和估算肾小球滤过率",
        "控制血压和血糖是延缓慢性肾脏病进展的基本措施",
    ],
}


@pytest.fixture
def zh_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, lines in TOPICS.items():
        body = "\n".join(f"{i}. 第{i}节\n" + "。".join(lines) + "。" for i in range(1, 4))
        (folder / f"{name}.txt").write_text(body, encoding="utf-8")
    return folder


@pytest.fixture
def spec() -> PseudoSpec:
    return replace(PseudoSpec.packaged(), n_questions=40, min_each=5, reference=0.5)


def _index(folder: Path, tmp_path: Path) -> Path:
    index_dir = tmp_path / "index"
    build_index(folder, index_dir, FakeEmbedder(), progress=False)
    return index_dir


def _written(index_dir: Path) -> dict:
    return json.loads((index_dir / "settings.json").read_text(encoding="utf-8"))


def _in_order(part: str, whole: str) -> bool:
    it = iter(whole)
    return all(ch in it for ch in part)


def test_equal_error_point_meets_both_error_rates():
    answerable, unanswerable = [0.5, 0.6, 0.7, 0.8, 0.9], [0.3, 0.4, 0.55, 0.65, 0.75]
    t = equal_error_point(answerable, unanswerable)

    # Whatever other cut is taken, the two error rates are no closer than at t.
    def gap(c: float) -> float:
        return abs(sum(a < c for a in answerable) / 5 - sum(u >= c for u in unanswerable) / 5)

    assert all(gap(t) <= gap(c) for c in answerable + unanswerable)
    assert equal_error_point([0.8, 0.9], [0.1, 0.2]) == 0.8  # separable: no error either side
    with pytest.raises(ValueError, match="both sides"):
        equal_error_point([0.5], [])


def test_pseudo_questions_keep_words_of_one_chinese_sentence(zh_folder, tmp_path, spec):
    index = Index.load(_index(zh_folder, tmp_path), FakeEmbedder())
    made = pseudo_questions(index, spec)
    assert made and made == pseudo_questions(index, spec)  # the same index, the same questions
    sentences = {
        doc: [
            t
            for r, t in zip(index.extras.sentences, index.extras.sentence_texts, strict=True)
            if index.chunks[int(r[0])].doc_id == doc
        ]
        for doc in TOPICS
    }
    for doc_id, question in made:
        assert question.endswith(spec.ending)
        body = question[: -len(spec.ending)]
        # Its characters appear, in order, in one sentence of its own document.
        assert any(_in_order(body, s) for s in sentences[doc_id]), (doc_id, question)
        assert len(body) < max(len(s) for s in sentences[doc_id])


def test_rag_index_moves_the_chinese_threshold_by_the_pseudo_questions(zh_folder, tmp_path, spec):
    index_dir = _index(zh_folder, tmp_path)
    line = write_adapted(index_dir, FakeEmbedder(), spec=spec)
    written = _written(index_dir)
    record = written["calibration"]
    packaged = load_settings().settings.abstain
    assert record["source"] == SOURCE and "moved by" in line
    assert record["zh"]["reference"] == 0.5
    expected = round(packaged.zh + record["zh"]["point"] - 0.5, 4)
    assert written["abstain"]["zh"] == pytest.approx(min(max(expected, 0.0), 1.0))
    assert written["abstain"]["en"] == packaged.en  # English evidence is not moved
    # The index's pipeline judges by the moved threshold, and says what set it.
    from rag.pipeline import Pipeline

    pipeline = Pipeline.load(index_dir, embedder=FakeEmbedder())
    assert pipeline.abstain["zh"] == written["abstain"]["zh"]
    assert pipeline.status()["calibrated_by"].startswith("pseudo-questions of this index")
    # Again: moved from the packaged threshold, not from the one written before.
    write_adapted(index_dir, FakeEmbedder(), spec=spec)
    assert _written(index_dir)["abstain"] == written["abstain"]


def test_a_gold_calibration_is_kept(zh_folder, tmp_path, spec):
    index_dir = _index(zh_folder, tmp_path)
    mine = {"abstain": {"zh": 0.77}, "calibration": {"gold": "my.jsonl", "model_id": "fake-hash-64"}}
    (index_dir / "settings.json").write_text(json.dumps(mine), encoding="utf-8")
    assert "my.jsonl" in write_adapted(index_dir, FakeEmbedder(), spec=spec)
    assert _written(index_dir) == mine
    by_hand = {"abstain": {"zh": 0.8}}  # thresholds a user wrote: theirs too
    (index_dir / "settings.json").write_text(json.dumps(by_hand), encoding="utf-8")
    assert "kept" in write_adapted(index_dir, FakeEmbedder(), spec=spec)
    assert _written(index_dir) == by_hand


def test_the_knob_turns_it_off(zh_folder, tmp_path, spec):
    index_dir = _index(zh_folder, tmp_path)
    (index_dir / "settings.json").write_text(json.dumps({"refusal": {"adapt_thresholds": False}}), "utf-8")
    assert "off" in write_adapted(index_dir, FakeEmbedder(), spec=spec)
    assert _written(index_dir) == {"refusal": {"adapt_thresholds": False}}


def test_an_english_corpus_keeps_the_packaged_thresholds_and_drops_an_old_adaptation(tmp_path, spec):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "en.md").write_text(
        "Abstract\nEverolimus is an mTOR inhibitor used for angiosarcoma.\n", "utf-8"
    )
    index_dir = _index(folder, tmp_path)
    stale = {"answer": {"max_quotes": 2}, "abstain": {"zh": 0.5}, "calibration": {"source": SOURCE}}
    (index_dir / "settings.json").write_text(json.dumps(stale), encoding="utf-8")
    assert "packaged" in write_adapted(index_dir, FakeEmbedder(), spec=spec)
    written = _written(index_dir)
    assert written["answer"] == {"max_quotes": 2}  # other knobs kept
    # The index's own file carries the packaged thresholds (its file's thresholds are the ones in force).
    assert load_settings(index_dir).settings.abstain == load_settings().settings.abstain
    assert written["calibration"]["source"] == "packaged thresholds"
    # Without other knobs, no file of its own: the packaged tree is in force.
    (index_dir / "settings.json").write_text(
        json.dumps({k: v for k, v in stale.items() if k != "answer"}), "utf-8"
    )
    write_adapted(index_dir, FakeEmbedder(), spec=spec)
    assert not (index_dir / "settings.json").exists()


def test_rag_index_reports_the_thresholds(zh_folder, tmp_path, monkeypatch, capsys):
    import rag.encode.embedding
    from rag.cli import main

    monkeypatch.setattr(rag.encode.embedding, "SentenceTransformerEmbedder", lambda *a, **kw: FakeEmbedder())
    index_dir = tmp_path / "index"
    assert (
        main(["index", "--docs", str(zh_folder), "--index", str(index_dir), "--quiet", "--no-crosslingual"])
        == 0
    )
    # Twelve sentences make fewer pseudo-questions than the packaged minimum: nothing moves.
    assert "abstention thresholds: the packaged ones (too few Chinese sentences" in capsys.readouterr().out
    assert not (index_dir / "settings.json").exists()


@pytest.mark.slow
def test_the_bundled_index_is_the_reference_point(bundled_index, real_embedder):
    """The packaged reference is what the bundled papers measure, so their threshold stays as calibrated
    on their gold questions; the build is deterministic, so a fresh build measures it again."""
    from rag.abstain.adaptive import measure
    from rag.pipeline import Pipeline

    spec = PseudoSpec.packaged()
    found = measure(Pipeline.load(bundled_index, embedder=real_embedder), spec)
    assert found["n_answerable"] >= spec.min_each and found["n_unanswerable"] >= spec.min_each
    assert found["point"] == pytest.approx(spec.reference, abs=0.002)

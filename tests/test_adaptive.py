"""Thresholds moved to each index's pseudo-questions (rag.abstain.adaptive), on fake and real encoders."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.abstain.adaptive import (
    SOURCE,
    PseudoSpec,
    Stopped,
    equal_error_point,
    measure,
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


def _spec(**changes) -> PseudoSpec:
    base = load_settings().calibration
    small = replace(
        PseudoSpec.packaged(),
        n_questions=40,
        min_each=5,
        reference_model="fake-hash-64",
        reference_base=base.get("date"),
    )
    return replace(small, **changes)


def _index(folder: Path, tmp_path: Path) -> Path:
    index_dir = tmp_path / "index"
    build_index(folder, index_dir, FakeEmbedder(), progress=False)
    return index_dir


def _point(index_dir: Path) -> float:
    from rag.pipeline import Pipeline

    return measure(Pipeline.load(index_dir, embedder=FakeEmbedder()), _spec())["point"]


@pytest.fixture
def zh_index(zh_folder, tmp_path) -> tuple[Path, PseudoSpec]:
    """A Chinese index, and a spec whose reference lies 0.03 above its point: the threshold moves by
    -0.03, whatever point the fake encoder gives."""
    index_dir = _index(zh_folder, tmp_path)
    return index_dir, _spec(reference=_point(index_dir) + 0.03)


def _use_spec(monkeypatch, spec: PseudoSpec) -> None:
    """Make `spec` the packaged one, as `rag index` and the uploads read it."""
    monkeypatch.setattr(PseudoSpec, "packaged", classmethod(lambda cls: spec))


def _written(index_dir: Path) -> dict:
    return json.loads((index_dir / "settings.json").read_text(encoding="utf-8"))


PACKAGED_ZH = load_settings().settings.abstain.zh


def test_equal_error_point_meets_both_error_rates():
    # At 0.65: answerable below it 2 of 5 (0.5, 0.6), unanswerable at or above it 2 of 5 (0.65, 0.75).
    assert equal_error_point([0.5, 0.6, 0.7, 0.8, 0.9], [0.3, 0.4, 0.55, 0.65, 0.75]) == 0.65
    assert equal_error_point([0.8, 0.9], [0.1, 0.2]) == 0.8  # separable: no error either side
    with pytest.raises(ValueError, match="both sides"):
        equal_error_point([0.5], [])


def _in_order(part: str, whole: str) -> bool:
    it = iter(whole)
    return all(ch in it for ch in part)


def test_pseudo_questions_keep_words_of_one_chinese_sentence(zh_folder, tmp_path):
    index = Index.load(_index(zh_folder, tmp_path), FakeEmbedder())
    spec = _spec()
    made = pseudo_questions(index, spec)
    assert made and made == pseudo_questions(index, spec)  # the same index, the same questions
    rows = zip(index.extras.sentences, index.extras.sentence_texts, strict=True)
    sentences: dict[str, list[str]] = {}
    for row, text in rows:
        sentences.setdefault(index.chunks[int(row[0])].doc_id, []).append(text)
    for doc_id, question in made:
        assert question.endswith(spec.ending)
        body = question[: -len(spec.ending)]
        # Its characters appear, in order, in one sentence of its own document, and fewer of them.
        assert any(_in_order(body, s) and len(body) < len(s) for s in sentences[doc_id]), (doc_id, question)


def test_the_same_papers_give_the_same_questions_whatever_the_row_order(zh_folder, tmp_path):
    # Uploads append rows: the same sentences in another order must make the same questions.
    index = Index.load(_index(zh_folder, tmp_path), FakeEmbedder())
    permuted = SimpleNamespace(
        chunks=index.chunks,
        extras=SimpleNamespace(
            sentences=index.extras.sentences[::-1], sentence_texts=index.extras.sentence_texts[::-1]
        ),
    )
    assert pseudo_questions(permuted, _spec()) == pseudo_questions(index, _spec())


def test_rag_index_moves_the_chinese_threshold_by_the_pseudo_questions(zh_index):
    from rag.pipeline import Pipeline

    index_dir, spec = zh_index
    line = write_adapted(index_dir, FakeEmbedder(), spec=spec)
    written = _written(index_dir)
    assert "moved by -0.03" in line
    assert written["abstain"] == {
        "zh": round(PACKAGED_ZH - 0.03, 4),
        "en": load_settings().settings.abstain.en,
    }
    assert written["calibration"]["source"] == SOURCE
    # The index's pipeline judges by the moved threshold, and says what set it.
    pipeline = Pipeline.load(index_dir, embedder=FakeEmbedder())
    assert pipeline.abstain["zh"] == round(PACKAGED_ZH - 0.03, 4)
    assert pipeline.status()["calibrated_by"].startswith("pseudo-questions of this index")
    # Again on the same build: not measured again.
    assert "as measured for this build before" in write_adapted(index_dir, FakeEmbedder(), spec=spec)
    assert _written(index_dir) == written
    # Another reference measures again, from the packaged threshold, not from the one written before.
    write_adapted(index_dir, FakeEmbedder(), spec=replace(spec, reference=spec.reference + 0.01))
    assert _written(index_dir)["abstain"]["zh"] == round(PACKAGED_ZH - 0.04, 4)


def test_thresholds_from_rag_calibrate_or_by_hand_are_kept(zh_index):
    index_dir, spec = zh_index
    mine = {"abstain": {"zh": 0.77}, "calibration": {"gold": "my.jsonl", "model_id": "fake-hash-64"}}
    (index_dir / "settings.json").write_text(json.dumps(mine), encoding="utf-8")
    assert "my.jsonl" in write_adapted(index_dir, FakeEmbedder(), spec=spec)
    assert _written(index_dir) == mine
    # An adaptation edited by hand afterwards is the user's.
    (index_dir / "settings.json").unlink()
    write_adapted(index_dir, FakeEmbedder(), spec=spec)
    edited = _written(index_dir)
    edited["abstain"]["zh"] = 0.42
    (index_dir / "settings.json").write_text(json.dumps(edited), encoding="utf-8")
    assert "kept" in write_adapted(
        index_dir, FakeEmbedder(), spec=replace(spec, reference=spec.reference + 0.01)
    )
    assert _written(index_dir)["abstain"]["zh"] == 0.42


def test_the_knob_turns_it_off_and_drops_an_earlier_adaptation(zh_index):
    index_dir, spec = zh_index
    write_adapted(index_dir, FakeEmbedder(), spec=spec)
    assert _written(index_dir)["calibration"]["source"] == SOURCE
    off = {"refusal.adapt_thresholds": False}  # as `rag index --set refusal.adapt_thresholds=false`
    assert "off" in write_adapted(index_dir, FakeEmbedder(), spec=spec, overrides=off)
    assert not (index_dir / "settings.json").exists()  # the packaged thresholds are in force
    (index_dir / "settings.json").write_text(json.dumps({"refusal": {"adapt_thresholds": False}}), "utf-8")
    assert "off" in write_adapted(index_dir, FakeEmbedder(), spec=spec)
    assert load_settings(index_dir).settings.abstain == load_settings().settings.abstain


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"reference_model": "another-model"}, "measured with another-model"),
        ({"reference_base": "1999-01-01"}, "packaged calibration is newer"),
        ({"max_shift": 0.01}, "beyond ±0.01"),
        ({"min_each": 10_000}, "too few Chinese sentences"),
    ],
)
def test_no_move_where_the_reference_does_not_apply(zh_index, changes, why):
    index_dir, spec = zh_index
    write_adapted(index_dir, FakeEmbedder(), spec=spec)  # an earlier adaptation, dropped below
    assert _written(index_dir)["calibration"]["source"] == SOURCE
    line = write_adapted(index_dir, FakeEmbedder(), spec=replace(spec, **changes))
    assert why in line and "the packaged ones" in line
    assert not (index_dir / "settings.json").exists()


def test_an_english_corpus_keeps_the_packaged_thresholds_and_drops_an_old_adaptation(zh_index, tmp_path):
    folder = tmp_path / "en-docs"
    folder.mkdir()
    (folder / "en.md").write_text(
        "Abstract\nEverolimus is an mTOR inhibitor used for angiosarcoma.\n", "utf-8"
    )
    index_dir = tmp_path / "en-index"
    build_index(folder, index_dir, FakeEmbedder(), progress=False)
    _, spec = zh_index
    stale = {"abstain": {"zh": 0.5}, "calibration": {"source": SOURCE, "written": {"zh": 0.5}}}
    (index_dir / "settings.json").write_text(json.dumps({**stale, "answer": {"max_quotes": 2}}), "utf-8")
    assert "too few Chinese sentences" in write_adapted(index_dir, FakeEmbedder(), spec=spec)
    written = _written(index_dir)
    assert written["answer"] == {"max_quotes": 2}  # other knobs kept
    # The index's own file carries the packaged thresholds (its file's thresholds are the ones in force).
    assert load_settings(index_dir).settings.abstain == load_settings().settings.abstain
    assert written["calibration"]["source"] == "packaged thresholds"
    # Without other knobs, no file of its own: the packaged tree is in force.
    (index_dir / "settings.json").write_text(json.dumps(stale), "utf-8")
    write_adapted(index_dir, FakeEmbedder(), spec=spec)
    assert not (index_dir / "settings.json").exists()


def test_a_stop_leaves_the_settings_as_they_were(zh_index):
    index_dir, spec = zh_index
    with pytest.raises(Stopped):
        write_adapted(index_dir, FakeEmbedder(), spec=spec, stop=lambda: True)
    assert not (index_dir / "settings.json").exists()
    write_adapted(index_dir, FakeEmbedder(), spec=spec)
    before = _written(index_dir)
    with pytest.raises(Stopped):  # another reference: measured again, and stopped
        write_adapted(index_dir, FakeEmbedder(), spec=replace(spec, reference=0.1), stop=lambda: True)
    assert _written(index_dir) == before


def test_a_changed_setting_measures_again(zh_index):
    index_dir, spec = zh_index
    write_adapted(index_dir, FakeEmbedder(), spec=spec)
    assert "before" in write_adapted(index_dir, FakeEmbedder(), spec=spec)
    line = write_adapted(index_dir, FakeEmbedder(), spec=spec, overrides={"retrieval.w_bm25_zh": 0.0})
    assert "before" not in line and "moved by" in line


def test_rag_index_reports_the_thresholds(zh_folder, tmp_path, monkeypatch, capsys):
    import rag.encode.embedding
    from rag.cli import main

    monkeypatch.setattr(rag.encode.embedding, "SentenceTransformerEmbedder", lambda *a, **kw: FakeEmbedder())
    index_dir = tmp_path / "index"
    args = ["index", "--docs", str(zh_folder), "--index", str(index_dir), "--quiet", "--no-crosslingual"]
    assert main(args) == 0
    # The packaged reference was measured with e5, not the fake encoder: nothing moves, and it says so.
    assert (
        "abstention thresholds: the packaged ones (the reference point was measured with"
        in capsys.readouterr().out
    )
    _use_spec(monkeypatch, _spec(reference=_point(index_dir) + 0.03))
    assert main([*args, "--set", "refusal.adapt_thresholds=false"]) == 0
    assert "adapt_thresholds is off" in capsys.readouterr().out
    assert main(args) == 0
    assert "moved by -0.03" in capsys.readouterr().out
    assert _written(index_dir)["abstain"]["zh"] == round(PACKAGED_ZH - 0.03, 4)


def test_an_upload_adapts_the_thresholds_and_a_failure_there_costs_it_nothing(
    zh_folder, tmp_path, monkeypatch
):
    import webui.uploads
    from rag.pipeline import Pipeline
    from webui.uploads import add_documents

    index_dir = _index(zh_folder, tmp_path)
    _use_spec(monkeypatch, _spec(reference=_point(index_dir) + 0.03))
    pipeline = Pipeline.load(index_dir, embedder=FakeEmbedder())
    new = tmp_path / "gradio-bone.txt"
    new.write_text("骨质疏松症患者应当补充钙剂和维生素D以降低骨折风险。", encoding="utf-8")
    result = add_documents([("bone.txt", new)], zh_folder, pipeline)
    assert result.added == ["uploads/bone"]
    assert _written(index_dir)["calibration"]["source"] == SOURCE  # measured on the new index, swapped in
    assert pipeline.abstain["zh"] == _written(index_dir)["abstain"]["zh"]

    def broken(*args, **kwargs):
        raise RuntimeError("no memory left")

    monkeypatch.setattr(webui.uploads, "write_adapted", broken)
    before = _written(index_dir)
    again = tmp_path / "gradio-eye.txt"
    again.write_text("青光眼患者需要长期使用降眼压药物并定期复查视野。", encoding="utf-8")
    result = add_documents([("eye.txt", again)], zh_folder, pipeline)
    assert result.added == ["uploads/eye"] and "uploads/eye" in pipeline.documents
    assert _written(index_dir) == before  # the thresholds it had

    # Cancel pressed while it calibrates: the measure stops at its next question, nothing is added.
    monkeypatch.setattr(webui.uploads, "write_adapted", write_adapted)
    cancel = threading.Event()

    def progress(stage: str, n: int) -> None:
        if stage == "calibrating":
            cancel.set()

    last = tmp_path / "gradio-skin.txt"
    last.write_text("银屑病是一种慢性炎症性皮肤病，常见于四肢伸侧和头皮。", encoding="utf-8")
    siblings = sorted(p.name for p in index_dir.parent.iterdir())
    settings_before = _written(index_dir)
    result = add_documents([("skin.txt", last)], zh_folder, pipeline, cancel=cancel, progress=progress)
    assert result.added == [] and "cancelled" in result.message()
    assert "uploads/skin" not in pipeline.documents and not (zh_folder / "uploads" / "skin.txt").exists()
    assert sorted(p.name for p in index_dir.parent.iterdir()) == siblings  # no stage left behind
    assert _written(index_dir) == settings_before


def test_a_failed_adaptation_after_a_build_says_why_and_leaves_the_index(tmp_path, monkeypatch):
    """`rag index` and the app's first build report a failure to adapt instead of stopping on it."""
    from rag.abstain import adaptive

    calls = []

    def fails(index_dir, embedder, crosslingual, overrides=None):
        calls.append((index_dir, overrides))
        raise OSError("settings.json is read-only")

    monkeypatch.setattr(adaptive, "write_adapted", fails)
    adapted, line = adaptive.adapt_after_build(tmp_path, None, None, overrides={"a": 1})
    assert not adapted and calls == [(tmp_path, {"a": 1})]
    assert "not adapted to this index (settings.json is read-only)" in line
    assert "Run `rag index` again to retry" in line
    monkeypatch.setattr(adaptive, "write_adapted", lambda *a, **k: "abstention thresholds: kept")
    assert adaptive.adapt_after_build(tmp_path, None, None) == (True, "abstention thresholds: kept")

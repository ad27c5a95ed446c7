"""Choosing the abstention threshold, settings.json, and `rag calibrate` on the fake index."""

from __future__ import annotations

import json
import random

import pytest

import rag.abstain.calibration
import rag.pipeline
import rag.settings
from rag.abstain.calibration import _scored, choose_threshold, evidence_scores, settings_dict, write_settings
from rag.cli import main
from rag.evaluate.gold import GoldItem, load_gold
from rag.evaluate.metrics import abstention_prf
from rag.pipeline import Pipeline

from .conftest import FakeEmbedder

# --- choose_threshold, by hand ---------------------------------------------------------------------


def test_separable_scores_put_the_threshold_mid_gap():
    t, stats = choose_threshold([0.8, 0.9], [0.1, 0.3])
    assert t == pytest.approx(0.55)  # midpoint of the gap 0.3 .. 0.8
    assert (stats["f1"], stats["precision"], stats["recall"]) == (1.0, 1.0, 1.0)
    assert stats["wrongly_refused"] == 0 and stats["wrongly_answered"] == 0
    assert stats["gap"] == [0.3, 0.8]


def test_overlapping_scores_maximise_f1_and_count_the_refused():
    # Cuts: refuse {.2} F1 2/3; {.2,.6} 1/2; {.2,.6,.7} 4/5; all 2/3. Best: refuse below (0.7+0.8)/2.
    t, stats = choose_threshold([0.6, 0.8], [0.2, 0.7])
    assert t == pytest.approx(0.75)
    assert stats["f1"] == pytest.approx(0.8)
    assert stats["precision"] == pytest.approx(2 / 3) and stats["recall"] == 1.0
    assert stats["wrongly_refused"] == 1  # the answerable 0.6


def test_a_tie_in_f1_goes_to_refusing_fewer_answerable_questions():
    # Refusing {.2}: P 1, R 1/2, F1 2/3. Refusing everything: P 1/2, R 1, F1 2/3. Same F1.
    t, stats = choose_threshold([0.4, 0.6], [0.2, 0.8])
    assert stats["f1"] == pytest.approx(2 / 3)
    assert t == pytest.approx(0.3)  # mid-gap between 0.2 and 0.4, not above 0.8
    assert stats["wrongly_refused"] == 0 and stats["wrongly_answered"] == 1


def test_all_answerable_refuses_nothing():
    t, stats = choose_threshold([0.4, 0.7], [])
    assert t == pytest.approx(0.2)  # halfway below the weakest answerable score
    assert stats["f1"] == 1.0 and stats["wrongly_refused"] == 0 and stats["n_unanswerable"] == 0


def test_all_unanswerable_refuses_everything():
    t, stats = choose_threshold([], [0.1, 0.3])
    assert t == pytest.approx(0.65)  # midpoint of 0.3 .. 1.0
    assert stats["recall"] == 1.0 and stats["wrongly_answered"] == 0


def test_equal_scores_in_both_classes_cannot_be_split():
    t, stats = choose_threshold([0.5, 0.5], [0.5])
    # Either everything is answered (F1 0) or everything refused (F1 0.5).
    assert t == pytest.approx(0.75) and stats["f1"] == pytest.approx(0.5)
    assert stats["wrongly_refused"] == 2


def test_zero_scores_keep_the_threshold_in_range():
    t, stats = choose_threshold([0.0, 0.3], [])
    assert t == 0.0 and stats["wrongly_refused"] == 0  # score < 0 never happens: nothing refused


@pytest.mark.parametrize(
    ("ans", "una", "match"), [([], [], "at least one score"), ([1.2], [0.1], r"\[0, 1\]")]
)
def test_bad_scores_are_refused(ans, una, match):
    with pytest.raises(ValueError, match=match):
        choose_threshold(ans, una)


def _f1(ans: list[float], una: list[float], threshold: float) -> float:
    pred = [s < threshold for s in (*ans, *una)]
    return abstention_prf(pred, [False] * len(ans) + [True] * len(una)).f1


def test_threshold_is_as_good_as_any_by_brute_force():
    """Oracle: no threshold on a fine grid gives a better abstention F1."""
    rng = random.Random(7)
    for _ in range(50):
        ans = [round(rng.uniform(0.2, 1.0), 2) for _ in range(rng.randint(1, 8))]
        una = [round(rng.uniform(0.0, 0.7), 2) for _ in range(rng.randint(0, 5))]
        t, stats = choose_threshold(ans, una)
        assert _f1(ans, una, t) == pytest.approx(stats["f1"])
        assert max(_f1(ans, una, i / 1000) for i in range(1001)) <= stats["f1"] + 1e-12
        assert sum(s < t for s in ans) == stats["wrongly_refused"]


# --- settings.json (reading it: tests/test_settings.py) -------------------------------------------


def test_write_settings_is_atomic_and_keeps_chinese(tmp_path):
    path = tmp_path / "index" / "settings.json"
    data = settings_dict({"gold": "金标准.jsonl", "model_id": "m"}, {"zh": 0.5})
    write_settings(path, data)
    write_settings(path, data)  # replacing an existing file works too
    assert "金标准" in path.read_text(encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == data
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temp file left


# --- rag calibrate, end to end on the fake index --------------------------------------------------

GOLD = [
    ("a1", "特鲁索综合征的一线治疗药物是什么？", "zh", True, ["低分子肝素"]),
    ("a2", "低分子肝素是什么？", "zh", True, ["低分子肝素"]),
    ("a3", "Oral ulcers adverse event of everolimus", "en", True, ["Oral ulcers"]),
    ("u1", "Who won the 2022 World Cup final?", "en", False, []),
    ("u2", "今天股市行情如何？", "zh", False, []),
]


@pytest.fixture
def gold_file(tmp_path):
    path = tmp_path / "gold.jsonl"
    rows = [
        {"id": i, "question": q, "lang": lang, "answerable": ok, "evidence": ev, "answer": ev}
        for i, q, lang, ok, ev in GOLD
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def fake_model(monkeypatch):
    monkeypatch.setattr(rag.pipeline, "embedder_for", lambda built, model, runtime: FakeEmbedder())


def test_rag_calibrate_writes_settings_and_the_pipeline_uses_them(
    fake_index, fake_model, gold_file, tmp_path, monkeypatch, capsys
):
    default = tmp_path / "packaged" / "settings.json"
    monkeypatch.setattr(rag.settings, "default_settings_path", lambda: default)
    default.parent.mkdir()
    default.write_text(json.dumps({"answer": {"max_quotes": 2}, "calibration": {"old": 1}}), encoding="utf-8")
    code = main(["calibrate", "--gold", str(gold_file), "--index", str(fake_index), "--save-default"])
    assert code == 0
    out = capsys.readouterr().out
    assert "threshold" in out and "answerable questions refused" in out

    written = json.loads((fake_index / "settings.json").read_text(encoding="utf-8"))
    # The packaged tree keeps its other knobs; the calibration's record and thresholds replace the old.
    packaged = json.loads(default.read_text(encoding="utf-8"))
    assert packaged["answer"] == {"max_quotes": 2, "min_score": 0.0}
    assert {k: v for k, v in packaged.items() if k != "answer"} == {
        k: v for k, v in written.items() if k != "answer"
    }
    assert set(written) == {"answer", "calibration", "abstain"}
    assert set(written["abstain"]) == {"zh", "en"}
    assert written["answer"] == {"min_score": 0.0}
    cal = written["calibration"]
    assert {"gold", "n_answerable", "n_unanswerable", "f1", "model_id", "date"} <= set(cal)
    assert (cal["n_answerable"], cal["n_unanswerable"], cal["model_id"]) == (3, 2, "fake-hash-64")
    assert cal["gold"] == str(gold_file)

    pipeline = Pipeline.load(fake_index, embedder=FakeEmbedder())
    assert pipeline.abstain == written["abstain"] and pipeline.settings_notes == ()
    # The pipeline abstains exactly where the calibration said it would; no threshold acts on a
    # question whose best paper writes its rare terms (the evidence rule waives it).
    scored = _scored(pipeline, load_gold(gold_file), 5, "hybrid", None)
    assert any(waived for *_, waived in scored) and not all(waived for *_, waived in scored)
    refused = [not waived and score < written["abstain"][key] for _, key, score, _, waived in scored]
    for (item, *_), refuse in zip(scored, refused, strict=True):
        assert pipeline.ask(item.question).abstained == refuse, item.id
    prf = abstention_prf(refused, [not item.answerable for item, *_ in scored])
    assert cal["f1"] == pytest.approx(prf.f1, abs=1e-4)


def test_rag_calibrate_json(fake_index, fake_model, gold_file, capsys):
    assert main(["calibrate", "--gold", str(gold_file), "--index", str(fake_index), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["abstain"] == {
        lang: st["threshold"] for lang, st in out["stats"]["by_lang"].items()
    }
    assert out["written"] == [str(fake_index / "settings.json")]


def test_questions_the_answerer_refuses_anyway_do_not_move_the_threshold(
    fake_index, fake_model, gold_file, tmp_path, capsys
):
    # The papers give no response rate, so the answerer refuses this question whatever its evidence.
    rate = {
        "id": "u3",
        "question": "What is the response rate of everolimus?",
        "lang": "en",
        "answerable": False,
        "evidence": [],
        "answer": [],
    }
    with_rate = tmp_path / "with-rate.jsonl"
    with_rate.write_text(gold_file.read_text(encoding="utf-8") + "\n" + json.dumps(rate), encoding="utf-8")
    runs = []
    for path in (gold_file, with_rate):
        assert main(["calibrate", "--gold", str(path), "--index", str(fake_index), "--json"]) == 0
        runs.append(json.loads(capsys.readouterr().out)["settings"])
    assert runs[1]["calibration"]["refused_by_the_answerer"] == 1
    assert runs[0]["calibration"]["refused_by_the_answerer"] == 0
    assert runs[1]["abstain"] == runs[0]["abstain"]
    assert Pipeline.load(fake_index, embedder=FakeEmbedder()).ask(rate["question"]).abstained


def test_rag_calibrate_needs_a_gold_file(fake_index, fake_model, tmp_path, capsys):
    assert main(["calibrate", "--gold", str(tmp_path / "none.jsonl"), "--index", str(fake_index)]) == 2
    assert "none.jsonl" in capsys.readouterr().err
    assert not (fake_index / "settings.json").exists()


def test_evidence_scores_use_the_hits_ask_uses(fake_index):
    pipeline = Pipeline.load(fake_index, embedder=FakeEmbedder())
    items = [GoldItem(i, q, lang, ok, tuple(ev), tuple(ev)) for i, q, lang, ok, ev in GOLD]
    scored = evidence_scores(pipeline, items, k=3, mode="bm25")
    assert [item for item, _ in scored] == items
    for item, score in scored:
        assert 0.0 <= score <= 1.0
        answer = pipeline.ask(item.question, k=3, mode="bm25")
        assert [h.chunk.id for h in answer.hits] == [
            h.chunk.id for h in pipeline.retrieve(item.question, k=3, mode="bm25")
        ]


def test_a_chinese_question_about_english_papers_calibrates_the_threshold_it_is_judged_by(tmp_path):
    # The evidence rule judges it by the cross-lingual ("en") threshold, so calibration must choose
    # that threshold on its score, not the Chinese one.

    from rag.evaluate.gold import GoldItem
    from rag.indexing.index import build_index
    from rag.pipeline import Pipeline

    from .conftest import FakeEmbedder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "dvt.txt").write_text(
        "Deep venous thrombosis prophylaxis\n\nDeep venous thrombosis is common after major trauma. "
        "Low molecular weight heparin reduces it by half in injured patients.\n",
        encoding="utf-8",
    )
    build_index(docs, tmp_path / "index", FakeEmbedder(), progress=False)
    pipeline = Pipeline.load(tmp_path / "index", embedder=FakeEmbedder())
    items = [
        GoldItem("q-zh", "创伤后深静脉血栓常见吗？", "zh", True, (), ()),
        GoldItem("q-en", "Is thrombosis common after trauma?", "en", True, (), ()),
    ]
    assert [key for _, key, *_ in _scored(pipeline, items, 5, "hybrid", None)] == ["en", "en"]


def test_waived_questions_count_in_the_f1_but_do_not_move_the_threshold():
    from rag.abstain.calibration import _thresholds

    def row(i: str, answerable: bool, score: float, waived: bool = False):
        item = GoldItem(i, "q", "zh", answerable, (), ())
        return (item, "zh", score, None, waived)

    decided = [row("a1", True, 0.8), row("a2", True, 0.9), row("u1", False, 0.3)]
    plain, _ = _thresholds(decided)
    # A waived answerable question scoring 0.1 would drag the threshold below 0.1 if it were searched.
    thresholds, stats = _thresholds([*decided, row("a3", True, 0.1, True), row("u2", False, 0.95, True)])
    assert 0.3 < thresholds["zh"] == plain["zh"] <= 0.8
    zh = stats["zh"]
    assert (zh["n_answerable"], zh["n_unanswerable"], zh["waived"]) == (3, 2, 2)
    assert (zh["wrongly_refused"], zh["wrongly_answered"]) == (0, 1)  # u2 is answered whatever the threshold
    assert zh["f1"] == pytest.approx(2 / 3)

"""The settings tree: every knob documented and packaged, layered with sources, checked with clear errors."""

from __future__ import annotations

import json

import pytest

import rag.settings
from rag.cli import main
from rag.settings import (
    SECTIONS,
    AnswerSettings,
    RefusalSettings,
    Settings,
    SettingsError,
    knobs,
    load_settings,
    packaged_settings,
    parse_overrides,
)


def all_knobs() -> set[str]:
    return {f"{s}.{k}" for s, cls in SECTIONS.items() for k in knobs(cls)}


def test_every_knob_has_a_doc_and_the_packaged_tree_lists_every_knob():
    for section, cls in SECTIONS.items():
        for name, f in knobs(cls).items():
            assert f.metadata.get("doc"), f"{section}.{name} has no doc"
    packaged = json.loads(packaged_settings().read_text("utf-8"))
    listed = {f"{s}.{k}" for s, values in packaged.items() if s in SECTIONS for k in values}
    assert listed == all_knobs()
    loaded = load_settings()
    assert set(loaded.sources.values()) == {"packaged"}
    assert loaded.calibration["model_id"] and loaded.calibration_source.startswith("rag/data/settings.json")


def test_layers_override_in_order_and_say_where_each_value_came_from(tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    (index / "settings.json").write_text(
        json.dumps({"answer": {"max_quotes": 2}, "abstain": {"zh": 0.5}, "calibration": {"model_id": "m"}}),
        encoding="utf-8",
    )
    loaded = load_settings(
        index, "m", overrides={"answer.candidate_chunks": "7"}, chunking={"max_chars": 300}
    )
    s = loaded.settings
    assert (s.answer.max_quotes, s.answer.candidate_chunks, s.chunking.max_chars) == (2, 7, 300)
    assert loaded.sources["answer.max_quotes"] == "index"
    assert loaded.sources["answer.candidate_chunks"] == "command line"
    assert loaded.sources["chunking.max_chars"] == "index"
    assert loaded.sources["retrieval.candidates"] == "packaged"
    # The index's own calibration is in force: its zh threshold, and none for en (it gave none).
    assert loaded.abstain == {"zh": 0.5} and loaded.calibration_source == str(index / "settings.json")
    assert loaded.notes == ()


def test_a_calibration_for_another_model_is_used_with_a_note(tmp_path):
    (tmp_path / "settings.json").write_text(
        json.dumps({"abstain": {"zh": 0.5}, "calibration": {"model_id": "other"}}), encoding="utf-8"
    )
    loaded = load_settings(tmp_path, "mine")
    assert loaded.abstain == {"zh": 0.5}
    assert "calibrated for model other, not mine" in loaded.notes[0] and "rag calibrate" in loaded.notes[0]


def test_without_any_settings_file_the_code_defaults_are_used_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(rag.settings, "packaged_settings", lambda: tmp_path / "missing.json")
    loaded = load_settings(tmp_path, "m")
    assert loaded.settings == Settings() and loaded.abstain == {}
    assert set(loaded.sources.values()) == {"default"}
    assert "not calibrated" in loaded.notes[0] and "rag calibrate --index" in loaded.notes[0]


def test_an_older_settings_file_keeps_working():
    # Before the refusal section, the rule switches lived under "answer".
    old = {"answer": {"min_score": 0.1, "refuse_unknown_names": False, "refuse_missing_rate": False}}
    changes, _ = rag.settings.parse_file(json.dumps(old), "old.json")
    s, _ = rag.settings.apply(Settings(), changes, "index")
    assert s.answer.min_score == 0.1
    assert s.refusal == RefusalSettings(unknown_names=False, missing_rate=False)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "bad JSON"),
        ("[]", "expected"),
        ('{"answer": {"min_scor": 0.5}}', r"unknown answer setting\(s\) \['min_scor'\]"),
        ('{"answer": {"min_score": 7}}', "min_score must be between 0 and 1"),
        ('{"answer": {"max_quotes": "three"}}', "answer.max_quotes must be a whole number"),
        ('{"refusal": {"evidence": 1.5}}', "refusal.evidence must be true or false"),
        ('{"abstain": {"fr": 0.5}}', '"abstain" must map "zh"/"en"'),
        ('{"answers": {}}', r"unknown section\(s\) \['answers'\]"),
    ],
)
def test_a_bad_settings_file_says_what_to_fix(tmp_path, text, match):
    (tmp_path / "settings.json").write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match=match) as err:
        load_settings(tmp_path, "m")
    assert "settings.json" in str(err.value) and "rag calibrate" in str(err.value)


def test_command_line_overrides_are_typed_and_checked():
    assert parse_overrides(["answer.max_quotes=2", "refusal.evidence=off"]) == {
        "answer.max_quotes": "2",
        "refusal.evidence": "off",
    }
    s = Settings().with_(**{"answer.max_quotes": "2", "refusal.evidence": "off", "abstain.zh": "none"})
    assert s.answer.max_quotes == 2 and s.refusal.evidence is False and s.abstain.zh is None
    with pytest.raises(SettingsError, match="expected SECTION.KNOB=VALUE"):
        parse_overrides(["max_quotes=2"])
    with pytest.raises(SettingsError, match=r"unknown answer setting\(s\) \['quotes'\]"):
        Settings().with_(**{"answer.quotes": "2"})
    with pytest.raises(SettingsError, match="max_quotes must be between 1 and 10"):
        Settings().with_(**{"answer.max_quotes": "0"})
    assert Settings().with_(answer=AnswerSettings(max_quotes=1)).answer.max_quotes == 1


def test_rag_config_prints_every_knob_with_its_value_source_and_doc(capsys):
    assert main(["config", "--json", "--set", "answer.max_quotes=2"]) == 0
    out = json.loads(capsys.readouterr().out)
    tree = out["settings"]
    assert {f"{s}.{k}" for s, values in tree.items() for k in values} == all_knobs()
    assert tree["answer"]["max_quotes"] == {
        "value": 2,
        "source": "command line",
        "doc": knobs(AnswerSettings)["max_quotes"].metadata["doc"],
    }
    assert tree["retrieval"]["candidates"]["source"] == "packaged"
    assert out["calibration_source"].startswith("rag/data/settings.json")
    assert main(["config"]) == 0
    text = capsys.readouterr().out
    assert "[refusal]" in text and "refusal.unquoted_names" in text and "calibration:" in text


def test_rag_config_reads_an_index(fake_index, capsys):
    (fake_index / "settings.json").write_text('{"answer": {"max_quotes": 1}}', encoding="utf-8")
    assert main(["config", "--json", "--index", str(fake_index)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["answer"]["max_quotes"] == {
        "value": 1,
        "source": "index",
        "doc": knobs(AnswerSettings)["max_quotes"].metadata["doc"],
    }
    assert out["settings"]["chunking"]["max_chars"]["source"] == "index"  # from the manifest
    assert out["settings"]["abstain"]["zh"]["value"] is None  # the index's file brings no thresholds


def test_a_bad_override_on_the_command_line_is_a_clear_error(fake_index, capsys):
    assert main(["config", "--set", "answer.max_quotes=lots"]) == 2
    assert "answer.max_quotes must be a whole number" in capsys.readouterr().err


def test_the_blas_opt_out_reaches_the_encoder_an_index_is_queried_with(tmp_path):
    from rag.pipeline import embedder_for
    from rag.settings import load_settings

    encoder = load_settings(tmp_path, "m", overrides={"encoder.limit_blas_threads": "false"}).settings.encoder
    assert encoder.limit_blas_threads is False
    assert embedder_for("m", None, encoder).limit_blas is False  # not loaded: nothing is limited yet
    assert embedder_for("m", None).limit_blas is True

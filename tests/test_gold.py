"""Gold file reading and phrase matching."""

from __future__ import annotations

import json

import pytest

from rag.evaluate.gold import GoldFormatError, GoldItem, contains_any, load_gold, match_key

GOOD = {
    "id": "zh-1",
    "question": "ALK 基因突变与 VTE 有什么关系？",
    "lang": "zh",
    "answerable": True,
    "evidence": ["ALK基因突变"],
    "answer": ["风险增加"],
}


def write_lines(tmp_path, lines, name="gold.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def dumps(**changes):
    obj = {**GOOD, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not ...}, ensure_ascii=False)


# --- match_key / contains_any ---------------------------------------------------------------


def test_match_key_full_width_and_case():
    assert match_key("ＡＬＫ　ＶＴＥ １２３") == "alkvte123"


def test_match_key_removes_spaces_inside_chinese():
    assert match_key("肿瘤 相关\nVTE\t形成") == "肿瘤相关vte形成"
    assert match_key("  \u3000\n") == ""


def test_match_key_hyphen_bullet():
    assert match_key("IL⁃6") == "il-6"
    assert match_key("IL－6") == "il-6"  # full-width hyphen-minus, via NFKC


def test_contains_any():
    text = "2.3 ALK 基因 突变 与 VTE 的研究"
    assert contains_any(text, ["alk基因突变"])
    assert contains_any(text, ("nope", "ＶＴＥ的研究"))
    assert not contains_any(text, ["EGFR"])
    assert not contains_any(text, [])
    assert not contains_any(text, ["  "])  # an empty key must not match everything


# --- load_gold ------------------------------------------------------------------------------


def test_load_good_file(tmp_path):
    en = {
        "id": "en-1",
        "question": "Is ALK linked to VTE?",
        "lang": "en",
        "answerable": False,
        "evidence": [],
        "answer": [],
        "doc": "paper-1",
        "section": "2.3",
        "pair": "zh-1",
        "kind": "negation",
        "note": "extra keys are ignored",
    }
    path = write_lines(tmp_path, [dumps(), "", "   ", json.dumps(en)])
    items = load_gold(path)
    assert items == [
        GoldItem("zh-1", GOOD["question"], "zh", True, ("ALK基因突变",), ("风险增加",)),
        GoldItem(
            "en-1",
            en["question"],
            "en",
            False,
            (),
            (),
            "paper-1",
            "2.3",
            "zh-1",
            "negation",
        ),
    ]
    assert items[0].doc == items[0].section == items[0].pair == items[0].kind == ""


def test_load_accepts_bom_and_crlf(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_bytes(("\ufeff" + dumps() + "\r\n" + dumps(id="zh-2") + "\r\n").encode("utf-8"))
    assert [g.id for g in load_gold(path)] == ["zh-1", "zh-2"]


def test_load_empty_file(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text("", encoding="utf-8")
    assert load_gold(path) == []
    path.write_text("\n\n", encoding="utf-8")
    assert load_gold(path) == []


def test_bad_json_names_file_and_line(tmp_path):
    path = write_lines(tmp_path, [dumps(id="a"), dumps(id="b"), '{"id": "c", '])
    with pytest.raises(GoldFormatError, match="line 3") as err:
        load_gold(path)
    assert str(path) in str(err.value)
    assert "bad JSON" in str(err.value)


def test_line_numbers_count_blank_lines(tmp_path):
    path = write_lines(tmp_path, [dumps(id="a"), "", "[1, 2]"])
    with pytest.raises(GoldFormatError, match=r"line 3: expected a JSON object, got list"):
        load_gold(path)


def test_wrong_lang(tmp_path):
    path = write_lines(tmp_path, [dumps(lang="fr")])
    with pytest.raises(GoldFormatError, match=r"line 1: 'lang' must be 'zh' or 'en', got 'fr'"):
        load_gold(path)


def test_missing_key(tmp_path):
    path = write_lines(tmp_path, [dumps(id="a"), dumps(id="b", evidence=..., answer=...)])
    with pytest.raises(GoldFormatError, match=r"line 2: missing key\(s\) 'evidence', 'answer'"):
        load_gold(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"answerable": 1}, r"'answerable' must be true or false, got 1"),
        ({"evidence": "ALK"}, r"'evidence' must be a list of strings"),
        ({"answer": [1]}, r"'answer' must be a list of strings"),
        ({"id": ""}, r"'id' must be a non-empty string"),
        ({"question": 5}, r"'question' must be a non-empty string"),
        ({"pair": 7}, r"'pair' must be a string, got int"),
        ({"evidence": []}, r"answerable item 'zh-1' has no evidence"),
        ({"evidence": ["ALK", " "]}, r"'evidence' holds an empty phrase"),
    ],
)
def test_wrong_types(tmp_path, change, message):
    path = write_lines(tmp_path, [dumps(**change)])
    with pytest.raises(GoldFormatError, match=r"line 1: " + message):
        load_gold(path)


def test_duplicate_id(tmp_path):
    path = write_lines(tmp_path, [dumps(), dumps(question="again")])
    with pytest.raises(GoldFormatError, match=r"line 2: duplicate id 'zh-1' \(first on line 1\)"):
        load_gold(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_bytes(dumps().encode("utf-8") + b"\n" + dumps(id="zh-2").encode("gb18030") + b"\n")
    with pytest.raises(GoldFormatError, match="line 2: not UTF-8"):
        load_gold(path)

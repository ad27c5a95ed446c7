"""The knowledge files under rag/data/ load, have the shape rag/knowledge.py expects, and fail loudly
when they do not; the rules built from them still read the words they held as code."""

from __future__ import annotations

import json
from importlib import resources
from types import MappingProxyType

import pytest

from rag import knowledge
from rag.knowledge import DOMAIN_BLOCK, DRUG_STEMS, LANGUAGE, check, check_domain

DATA = resources.files("rag").joinpath("data")


def _names(folder: str) -> list[str]:
    return sorted(f.name for f in DATA.joinpath(folder).iterdir() if f.name.endswith(".json"))


def test_every_language_and_domain_file_is_found():
    assert knowledge.languages() == tuple(n.removesuffix(".json") for n in _names("lang"))
    assert knowledge.domains() == tuple(n.removesuffix(".json") for n in _names("domain"))
    assert {"zh", "en"} <= set(knowledge.languages())
    assert {"medical", "papers"} <= set(knowledge.domains())


@pytest.mark.parametrize("name", _names("lang"))
def test_every_language_file_has_the_language_shape(name):
    raw = json.loads(DATA.joinpath("lang", name).read_text("utf-8"))
    assert set(raw) <= set(LANGUAGE) | {"about"}
    data = knowledge.language(name.removesuffix(".json"))
    assert isinstance(data, MappingProxyType)
    if "both_and" in data:
        assert len(data["both_and"]) == 2, "both_and is one pair: 既 … 又 …"
    for key in ("sound_classes", "pinyin_classes"):
        # both tables speak the same sound classes, or no English onset could meet a Chinese one
        table = data.get(key, {})
        assert all(k.isalpha() and k.islower() for k in table), key
        assert set("".join(table.values())) <= set("PMNLTSK"), key


@pytest.mark.parametrize("name", _names("domain"))
def test_every_domain_file_has_blocks_of_known_languages(name):
    data = knowledge.domain(name.removesuffix(".json"))
    blocks = [code for code in data if code != "about"]
    assert blocks and set(blocks) <= set(knowledge.languages())
    for code in blocks:
        assert set(data[code]) <= set(DOMAIN_BLOCK) | {"about"}


def test_drug_stems_file_has_its_shape():
    stems = knowledge.drug_stems()["stems"]
    assert stems and all(s["en"] and s["zh"] for s in stems)


def test_data_is_read_only():
    zh = knowledge.language("zh")
    assert isinstance(zh["stopwords"], tuple)
    with pytest.raises(TypeError):
        zh["stopwords"] = ()  # type: ignore[index]


def test_an_unknown_key_fails_and_names_the_file_and_key():
    with pytest.raises(
        ValueError, match=r"lang/xx.json: unknown key 'stopword'; known keys: word_boundaries"
    ):
        check({"stopword": ["a"]}, LANGUAGE, "lang/xx.json")
    block = {"sections": {"abstract": [], "keywords": [], "named": [], "run_in_bracketed": [],
                          "run_in_colon": [], "untitled": "", "whole": "", "headings": []}}  # fmt: skip
    with pytest.raises(ValueError, match=r"domain/x.json: en.sections: unknown key 'headings'"):
        check_domain({"en": block}, "domain/x.json")
    with pytest.raises(ValueError, match=r"drug_stems.json: stems\[0\]: unknown key 'fr'"):
        check({"stems": [{"en": ["mab"], "zh": ["单抗"], "fr": ["mab"]}]}, DRUG_STEMS, "drug_stems.json")


def test_a_wrong_type_a_missing_key_or_an_unknown_language_fails():
    with pytest.raises(ValueError, match=r"x: stopwords: expected a list of non-empty strings, got 'a b'"):
        check({"stopwords": "a b"}, LANGUAGE, "x")
    with pytest.raises(ValueError, match="expected single characters"):
        check({"term_boundaries": {"words": ["的"], "endings": ["于在"], "modifiers": []}}, LANGUAGE, "x")
    with pytest.raises(ValueError, match=r"x: furniture: missing key 'labels'"):
        check({"furniture": {"lines": []}}, DOMAIN_BLOCK, "x")
    with pytest.raises(
        ValueError, match=r"domain/x.json: block 'fr' names no language file \(rag/data/lang/fr.json\)"
    ):
        check_domain({"about": "", "fr": {}}, "domain/x.json")
    with pytest.raises(ValueError, match="no language file rag/data/lang/fr.json; there are: en, zh"):
        knowledge.language("fr")
    with pytest.raises(ValueError, match="unknown domain key 'diseases'"):
        knowledge.domain_blocks("diseases")


def test_domain_blocks_come_in_file_order():
    assert [code for code, _ in knowledge.domain_blocks("sections")] == ["zh", "en"]
    assert [code for code, _ in knowledge.domain_blocks("disease_names")] == ["zh"]


def test_rules_built_from_the_data_read_its_words():
    from rag.ingest.chunking import ABSTRACT_LABELS
    from rag.ingest.headings import parse_heading, split_run_in_heading
    from rag.ingest.normalise import _is_furniture
    from rag.ingest.sentences import sentence_spans
    from rag.lang import detect_lang, question_lang
    from rag.query.answer_type import asks_rate, states_rate
    from rag.query.names import paper_acronyms
    from rag.query.parts import question_parts
    from rag.query.unknown_names import disease_name
    from rag.terms.lexical import STOPWORDS

    assert ABSTRACT_LABELS == ("摘要", "Abstract", "ABSTRACT", "Summary", "SUMMARY")
    assert [parse_heading(t).kind for t in ("【摘要】", "Key words:", "关键字", "材料与方法", "conclusion")] == [
        "abstract", "keywords", "keywords", "named", "named",
    ]  # fmt: skip
    assert split_run_in_heading("［摘 要］　目的：探讨") == ["［摘 要］", "目的：探讨"]
    assert split_run_in_heading("Keywords: VTE") == ["Keywords", "VTE"]
    assert (
        _is_furniture("收稿日期：2025年1月")
        and _is_furniture("open access")
        and not _is_furniture("Received well")
    )
    assert len(sentence_spans("Smith et al. reported it. It rose.")) == 2
    assert question_lang("What is 特鲁索综合征?") == "en"
    # A passage is judged by its share of Han characters only: a Chinese sentence quoting an English
    # title stays Chinese.
    quoting = "该研究发表于《What is the role of D-dimer in VTE》，纳入了一百二十例肺癌患者并随访两年。"
    assert detect_lang(quoting) == "zh" and question_lang(quoting) == "en"
    assert (
        asks_rate("5年总生存率是多少") and asks_rate("the 3-year overall survival") and not asks_rate("生存")
    )
    assert states_rate("提升 1.463 倍") and states_rate("a 2.5-fold rise") and not states_rate("two times")
    assert paper_acronyms(["CYFRA 21-1 与 NSE"]) == {"CYFRA211", "NSE"}  # squashed
    assert question_parts("既能提示预后又与复发相关吗") == ["能提示预后", "与复发相关吗"]
    assert question_parts("Which drug is used, and what is the dose?") == [
        "Which drug is used",
        "what is the dose",
    ]
    assert disease_name("中耳炎") and not disease_name("并发症") and not disease_name("血栓性疾病")
    assert not disease_name("抗肿瘤")
    assert {"的", "the"} <= STOPWORDS

"""Drug names are checked across languages by their shared endings and their sound."""

from __future__ import annotations

import pytest

from rag.query.unknown_names import UnknownNames
from rag.terms.drug_names import DrugNames, sounds_alike

PAPERS = (
    "患者口服利伐沙班或依维莫司治疗,也有采用阿帕替尼的报道。低分子肝素是一线药物。"
    "Low molecular weight heparin is the first choice."
)


def _common(word: str) -> bool:
    return word in {"普通", "轻松", "使用"}


ENGLISH = {"low", "molecular", "weight", "heparin", "is", "the", "first", "choice"}  # the papers' words


@pytest.fixture
def drugs() -> DrugNames:
    return DrugNames(PAPERS)


@pytest.mark.parametrize(
    "english, chinese",
    [
        ("rivaro", "利伐"),  # rivaroxaban = 利伐沙班: r/l, v/f
        ("evero", "依维"),  # everolimus = 依维莫司: a vowel, then v/w
        ("bevacizu", "贝伐珠"),  # bevacizumab = 贝伐珠单抗
        ("osimer", "奥希"),  # osimertinib = 奥希替尼
        ("denosu", "地舒"),  # denosumab = 地舒单抗: the n is dropped
        ("gefi", "吉非"),  # a soft g
        ("dexametha", "地塞米"),  # dexamethasone = 地塞米松
    ],
)
def test_transliterations_sound_alike(english, chinese):
    assert sounds_alike(english, chinese)


@pytest.mark.parametrize(
    "english, chinese",
    [
        ("osimer", "阿西"),  # osimertinib is not axitinib: o is not a
        ("api", "利伐"),  # apixaban is not rivaroxaban
        ("siro", "依维"),  # sirolimus is not everolimus
        ("denosu", "贝伐珠"),
    ],
)
def test_different_names_do_not(english, chinese):
    assert not sounds_alike(english, chinese)


def test_an_english_drug_name_is_found_in_chinese_by_sound(drugs):
    assert drugs.find_en("Does rivaroxaban or everolimus work better?", ENGLISH) == []
    assert drugs.find_en("What is the dose of apixaban and sirolimus?", ENGLISH) == ["apixaban", "sirolimus"]
    # A drug the papers write in English is known; a word without a drug ending is not judged.
    assert drugs.find_en("Is heparin better than warfarin for this?", ENGLISH) == []
    # No Chinese name has the ending at all: pazopanib is reported, apatinib is not.
    assert drugs.find_en("Compare pazopanib with apatinib.", ENGLISH) == ["pazopanib"]


def test_a_class_named_by_meaning_cannot_be_checked_by_sound():
    # paclitaxel is 紫杉醇, not a transliteration: with it in the papers, -taxel names are left alone.
    without = DrugNames("多西他赛的疗效。")
    assert without.find_en("What about cabazitaxel?") == ["cabazitaxel"]
    with_meaning = DrugNames("紫杉醇的疗效。")
    assert with_meaning.find_en("What about docetaxel?") == []


def test_a_chinese_drug_name_the_papers_never_write_is_found(drugs):
    assert drugs.find_zh("帕唑帕尼治疗血管肉瘤有效吗？", _common) == ["唑帕尼"]
    assert drugs.find_zh("阿哌沙班和利伐沙班哪个好？", _common) == ["阿哌沙班"]
    assert drugs.find_zh("阿帕替尼和依维莫司的剂量是多少？", _common) == []


def test_two_characters_are_compared_when_names_share_the_one_before_the_ending():
    from rag.query.unknown_names import common_word

    drugs = DrugNames("患者接受贝伐珠单抗治疗。予来那度胺联合地塞米松。")
    # 帕博利珠单抗 ends like 贝伐珠单抗 (珠单抗) but is another drug.
    assert drugs.find_zh("帕博利珠单抗的疗效如何？", common_word) == ["利珠单抗"]
    # The character before a known name that ends an ordinary word (接受, 予) is not part of it.
    assert drugs.find_zh("患者接受贝伐珠单抗后如何？", common_word) == []
    assert drugs.find_zh("予地塞米松后如何？", common_word) == []


def test_endings_of_everyday_drug_classes_are_checked_too():
    # -profen (洛芬) and the like: an English name of the class that the papers never write is reported.
    assert DrugNames(PAPERS).find_en("Is ibuprofen safe with rivaroxaban?", ENGLISH) == ["ibuprofen"]
    # ibuprofen is 布洛芬, not a transliteration: papers that write it leave -profen names unchecked.
    assert DrugNames("布洛芬止痛。").find_en("Is ibuprofen safe?") == []


def test_a_drug_ending_after_an_ordinary_word_is_a_class_not_a_name(drugs):
    # 普通肝素 (unfractionated heparin) is a kind of heparin; 轻松 is an everyday word ending in 松.
    assert drugs.find_zh("普通肝素和低分子肝素有何区别？", _common) == []
    assert drugs.find_zh("患者能轻松完成治疗吗？", _common) == []


def test_an_ending_that_is_a_drug_itself_after_a_function_word_is_that_drug(drugs):
    from rag.query.unknown_names import common_word
    from rag.terms.drug_names import zh_drug_endings

    # 患者在肝素抗凝: 在 then 肝素 (heparin), not a name "在肝素" that the papers never write.
    assert drugs.find_zh("特鲁索综合征患者在肝素抗凝时要注意什么？", common_word) == []
    assert list(zh_drug_endings("与肝素相比，利伐沙班如何？", common_word))[0][0].group() == "利伐沙班"
    # A transliterated name that jieba cuts into everyday characters is still one (唑/来/膦/酸).
    assert drugs.find_zh("地舒单抗和唑来膦酸哪个更好？", common_word) == ["地舒单抗", "唑来膦酸"]
    assert drugs.find_zh("用依诺肝素时要注意什么？", common_word) == ["依诺肝素"]


def test_unknown_names_report_english_drug_names_for_questions_in_either_language():
    names = UnknownNames([PAPERS])
    assert names.find("Does osimertinib raise the risk of thrombosis?", "en") == ["osimertinib"]
    assert names.find("osimertinib 会增加血栓风险吗？", "zh") == ["osimertinib"]
    assert names.find("Does rivaroxaban raise the risk of bleeding?", "en") == []


def test_the_chinese_name_of_an_english_drug_name_most_frequent_start_first():
    papers = "予来那度胺治疗。来那度胺联合地塞米松。了来那度胺。沙利度胺也有效。"
    drugs = DrugNames(papers)
    # Where a name starts is a guess; the start that recurs wins (了来那度胺 is 来那度胺 after 了).
    assert drugs.chinese_names("lenalidomide")[0] == "来那度胺"
    assert drugs.chinese_names("thalidomide")[0] == "沙利度胺"
    assert drugs.chinese_names("dexamethasone") == ["地塞米松"]
    assert drugs.chinese_names("pomalidomide") == [] and drugs.chinese_names("angiosarcoma") == []


def test_the_drug_name_check_on_names_outside_the_gold_set(capsys, fake_index, monkeypatch):
    import rag.pipeline
    from eval import drug_names

    from .conftest import FakeEmbedder

    monkeypatch.setattr(rag.pipeline, "embedder_for", lambda built, model, runtime: FakeEmbedder())

    assert drug_names.main(["--index", str(fake_index)]) == 0
    out = capsys.readouterr().out
    matched, total = map(int, out.split("true pairs: ")[1].split(" ")[0].split("/"))
    assert total == 103 and matched >= 97  # transliterations match
    false, pairs = map(int, out.split("same ending: ")[1].split(" ")[0].split("/"))
    assert false / pairs < 0.05  # different drugs mostly do not
    # The tiny corpus names no drug of the "not used" lists. The misses: English names too short
    # before their ending to judge (a-ciclovir, di-azepam), and Chinese names after 使用 whose first
    # character makes a dictionary word with 用 (用布, 用地), which reads as a class (普通肝素).
    assert (
        "not used, reported: en 35/37 (missed ['aciclovir', 'diazepam']), "
        "zh 31/33 (missed ['布洛芬', '地西泮'])" in out
    )

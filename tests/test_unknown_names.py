"""A question naming something no indexed paper mentions is refused, whatever its similarity."""

from __future__ import annotations

import json

import pytest

from rag.abstain.calibration import choose_threshold
from rag.pipeline import Pipeline
from rag.query.unknown_names import UnknownNames

from .conftest import FakeEmbedder

PAPERS = [
    "特鲁索综合征首选抗凝治疗,目前低分子肝素已成为一线治疗药物。新型口服抗凝药(DOAC)也可使用。",
    "Everolimus is an mTOR inhibitor. 依维莫司用于晚期血管肉瘤。",
]


@pytest.fixture
def names() -> UnknownNames:
    return UnknownNames(PAPERS)


@pytest.mark.parametrize(
    "question, lang, expected",
    [
        ("阿哌沙班治疗肿瘤相关血栓的效果如何？", "zh", ["阿哌沙班"]),  # a drug the papers never name
        ("Khorana 评分包括哪些变量？", "zh", ["Khorana"]),  # a capitalised Latin name
        ("What did the trial show about 阿哌沙班?", "en", ["阿哌沙班"]),
        # A drug name is checked in English too: its ending and sound say how it is written in Chinese.
        ("What did the Caravaggio trial show about apixaban?", "en", ["apixaban"]),
        ("依维莫司治疗结节性硬化症的剂量是多少？", "zh", ["硬化症"]),  # a disease the papers never name
        ("白血病患者能用低分子肝素吗？", "zh", ["白血病"]),
    ],
)
def test_names_the_papers_never_mention_are_found(names, question, lang, expected):
    assert names.find(question, lang) == expected


@pytest.mark.parametrize(
    "question, lang",
    [
        ("特鲁索综合征的一线治疗药物是哪种？", "zh"),  # 哪种: new characters, but ordinary words
        ("哪些患者携带突变时不宜使用 DOAC？", "zh"),  # an acronym may be spelt out in the papers
        ("依维莫司的作用靶点是什么？", "zh"),  # a name the papers do use
        ("Which drug class does everolimus belong to?", "en"),
        ("What did the Caravaggio trial show about heparin?", "en"),  # English: absence proves nothing
        ("Does everolimus inhibit mTOR?", "en"),  # written 依维莫司 in the papers
        ("晚期血管肉瘤患者用什么药？", "zh"),  # a disease name the papers use
        ("依维莫司有哪些并发症？", "zh"),  # a kind of illness, not a name: the papers may word it otherwise
        ("特鲁索综合征的病因是什么？", "zh"),  # 病因 (cause) ends in 因: no disease name
        # jieba joins a question's everyday characters the papers never use into unknown words
        # (哪类): not the sounds of a name.
        ("血管肉瘤主要由哪类细胞分泌？", "zh"),
        ("依维莫司治疗后要做哪类检查？", "zh"),
        # 这篇 ("this [paper]"): jieba joins a pronoun and a measure word the papers never write
        ("这篇论文的通讯作者是谁？", "zh"),
    ],
)
def test_ordinary_words_and_names_the_papers_use_are_not(names, question, lang):
    assert names.find(question, lang) == []


def test_grammar_words_are_no_name_but_a_name_beside_them_still_is(names):
    from rag.query.unknown_names import grammar
    from rag.terms.lexical import _jieba

    assert grammar("这篇") and not grammar("阿哌沙班")
    assert grammar("这位篇")  # 这位/rz + 篇/q: tags are read as prefixes
    assert "这篇" in _jieba().lcut("这篇论文的通讯作者是谁？", HMM=True)  # what jieba joins
    assert names.find("这篇论文里阿哌沙班的剂量是多少？", "zh") == ["阿哌沙班"]


def test_a_variant_of_a_disease_name_the_papers_use_is_not_unknown():
    # 血栓症 is not in the papers, but 血栓栓塞症 is: the same stem with the ending two characters on.
    names = UnknownNames(["肿瘤患者易发生静脉血栓栓塞症。"])
    assert names.find("肿瘤患者血栓症的发生率是多少？", "zh") == []
    assert names.find("肿瘤患者中耳炎的发生率是多少？", "zh") == ["中耳炎"]
    # Spaces of the PDF text ("栓 塞 症") do not hide a name the papers write.
    assert UnknownNames(["静脉血栓 栓 塞 症。"]).find("静脉血栓栓塞症怎么治？", "zh") == []


def test_the_pipeline_refuses_a_question_naming_an_unknown_drug_and_says_why(fake_index):
    settings = {"answer": {"min_score": 0.0}}  # no calibration, so no evidence threshold: names decide
    (fake_index / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    pipeline = Pipeline.load(fake_index, embedder=FakeEmbedder())
    answer = pipeline.ask("阿哌沙班和低分子肝素哪个更好？")
    assert answer.abstained and answer.quotes == ()
    assert any("阿哌沙班" in n and "no indexed document mentions" in n for n in answer.notes)
    assert not pipeline.ask("低分子肝素是什么药物？").abstained
    # The papers are read for drug names once: the retriever's reading serves the name check too.
    assert pipeline.analyser.unknown_checker()._drugs is pipeline.analyser.drug_names()
    # The check can be turned off in settings.json. A name no paper writes is in no quote either, so
    # the answerer's check on the quotes (rag.query.names) still refuses, until it is off too.
    settings["refusal"] = {"unknown_names": False}
    (fake_index / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    pipeline.reload()
    answer = pipeline.ask("阿哌沙班和低分子肝素哪个更好？")
    assert answer.abstained and any("阿哌沙班" in n and "no sentence chosen" in n for n in answer.notes)
    settings["refusal"]["unquoted_names"] = False
    (fake_index / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    pipeline.reload()
    assert not pipeline.ask("阿哌沙班和低分子肝素哪个更好？").abstained


def test_threshold_search_counts_questions_refused_anyway():
    # Two unanswerable questions are refused by name; they count in the F1 the search maximises.
    t, stats = choose_threshold([0.8, 0.9], [0.85], refused_anyway=(0, 2))
    assert stats["n_unanswerable"] == 3 and stats["wrongly_answered"] == 0
    assert 0.85 < t <= 0.9 and stats["wrongly_refused"] == 1
    assert (stats["precision"], stats["recall"]) == (pytest.approx(0.75), 1.0)
    # A forced refusal of an answerable question counts against precision.
    _, stats = choose_threshold([0.8, 0.9], [0.1], refused_anyway=(1, 0))
    assert stats["wrongly_refused"] == 1 and stats["precision"] == pytest.approx(0.5)


def test_chinese_words_are_not_judged_over_papers_written_in_english():
    # A Chinese question about English papers writes their names in Chinese (卡穆祖 for Kamuzu): that
    # the papers never write those characters proves nothing.
    english = UnknownNames(
        ["Kamuzu Central Hospital serves central Malawi. Patients at the outpatient department waited long."]
    )
    assert english.find("卡穆祖中心医院的门诊患者等了多久？", "zh") == []
    # The same question over Chinese papers does name something they never mention.
    assert UnknownNames(PAPERS).find("卡穆祖中心医院的门诊患者等了多久？", "zh") != []
    # English drug names are still checked over English papers.
    assert english.find("Does apixaban shorten the wait?", "en") == ["apixaban"]


def test_chinese_names_are_not_judged_over_papers_written_in_english():
    # An English paper quoting one Chinese place name: its words, counted with their spaces, make it
    # English, so a Chinese question's names are not judged against it.
    english = UnknownNames(["The trial enrolled patients at Kamuzu Central Hospital (卡穆祖). " * 5])
    assert english.find("阿哌沙班治疗血栓的效果如何？", "zh") == []
    chinese = UnknownNames(["卡穆祖中央医院的试验纳入了血栓患者。" * 5])
    assert chinese.find("阿哌沙班治疗血栓的效果如何？", "zh") == ["阿哌沙班"]

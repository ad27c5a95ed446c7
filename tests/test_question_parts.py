"""Questions that ask two things: split into parts, and which parts the chosen quotes leave out."""

from __future__ import annotations

import pytest

from rag.query.parts import question_parts, uncovered_parts


def test_two_chinese_questions_are_two_parts():
    assert question_parts("启动肿瘤相关静脉血栓的关键促凝分子是什么？肿瘤中哪些因素会让它上调？") == [
        "启动肿瘤相关静脉血栓的关键促凝分子是什么",
        "肿瘤中哪些因素会让它上调",
    ]


def test_the_shared_setting_opens_every_part():
    parts = question_parts("服用依维莫司出现2级口腔黏膜炎时，本组病例是怎么调整的？调整后结果如何？")
    assert parts == [
        "服用依维莫司出现2级口腔黏膜炎时，本组病例是怎么调整的",
        "服用依维莫司出现2级口腔黏膜炎时，调整后结果如何",
    ]


def test_ji_you_is_split_and_keeps_its_subject():
    assert question_parts("哪项凝血指标既能提示脑梗死，又与肺癌的血栓事件相关？") == [
        "哪项凝血指标能提示脑梗死",
        "哪项凝血指标与肺癌的血栓事件相关？",
    ]


@pytest.mark.parametrize(
    "question, parts",
    [
        (
            "What is the role of warfarin in cancer-associated thrombosis, and why is its use limited?",
            ["What is the role of warfarin in cancer-associated thrombosis", "why is its use limited"],
        ),
        (
            "Which marker both flags cancer-related stroke and is associated with thrombosis in lung cancer?",
            ["Which marker both flags cancer-related stroke", "is associated with thrombosis in lung cancer"],
        ),
        (
            "What drug class is everolimus? What is its target?",
            ["What drug class is everolimus", "What is its target"],
        ),
    ],
)
def test_english_questions_split_at_and_before_a_question_word_or_verb(question, parts):
    assert question_parts(question) == parts


@pytest.mark.parametrize(
    "question",
    [
        "特鲁索综合征的一线治疗药物是什么？",
        "低分子肝素和华法林哪个更好？",
        "肿瘤患者中，静脉血栓栓塞的发生率大约是多少？",  # a setting and one question
        "What are the risks and benefits of heparin in cancer patients?",
        "What is the incidence of VTE in cancer patients?",
    ],
)
def test_a_question_asking_one_thing_has_no_parts(question):
    assert question_parts(question) == []


def test_a_part_is_left_out_when_no_quote_has_its_own_words():
    parts = ["哪种驱动基因突变对血栓起保护作用", "哪些融合基因是危险因素"]
    assert uncovered_parts(parts, ["EGFR 基因突变可能对血栓起保护作用。"], None) == [parts[1]]
    assert uncovered_parts(parts, ["ALK 融合基因可能为危险因素。", "突变起保护作用。"], None) == []
    # Words both parts share (血栓) do not tell them apart; a part with no words of its own is covered.
    assert uncovered_parts(["血栓的发生率是多少", "血栓如何"], ["无关的句子。"], None) == [
        "血栓的发生率是多少"
    ]

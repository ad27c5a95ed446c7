from __future__ import annotations

from rag.ingest.normalise import first_line_title, normalise, normalise_pages


def test_nfkc_turns_full_width_letters_and_digits_into_ascii():
    assert normalise("ｍＴＯＲ抑制剂于２０１３年上市。") == "mTOR抑制剂于2013年上市。"


def test_spaces_between_cjk_characters_are_removed_but_not_around_latin():
    assert normalise("该 疾 病 与 EGFR 突 变 有 关。") == "该疾病与 EGFR 突变有关。"


def test_lines_broken_mid_sentence_are_joined():
    raw = "Trousseau’s 首次报告了一例胃癌患者,此后该\n疾病被定义为血栓性静脉炎。\n下一句。"
    assert normalise(raw) == "Trousseau’s 首次报告了一例胃癌患者,此后该疾病被定义为血栓性静脉炎。\n下一句。"


def test_a_blank_line_is_a_paragraph_boundary():
    # A list item without a full stop runs into the next one unless the blank line parts them.
    raw = "What are the symptoms\n\nFever and cough\n\nsometimes a rash\nof the skin."
    assert normalise(raw).split("\n") == [
        "What are the symptoms",
        "Fever and cough",
        "sometimes a rash of the skin.",
    ]


def test_blank_lines_after_every_line_are_line_spacing():
    # text extracted from a PDF with a blank line after each line: the blank lines mark nothing
    raw = "标题\n\n特鲁索综合征是一种与癌症相关的\n\n血栓形成综合征,已成为恶性肿瘤\n\n患者的第二大死因,仅次于\n\n恶性肿瘤本身。\n\n下一段。\n"
    assert normalise(raw).split("\n") == [
        "标题",
        "特鲁索综合征是一种与癌症相关的血栓形成综合征,已成为恶性肿瘤患者的第二大死因,仅次于恶性肿瘤本身。",
        "下一段。",
    ]


def test_a_title_line_is_not_glued_to_the_first_paragraph():
    assert normalise("津蓟铁路\n\n津蓟铁路是中国的一条铁路。").split("\n") == [
        "津蓟铁路",
        "津蓟铁路是中国的一条铁路。",
    ]
    # no blank line: a short first line with no full stop or clause mark is still a title
    assert normalise("Super Bowl 50\nThe Panthers lost.").split("\n") == [
        "Super Bowl 50",
        "The Panthers lost.",
    ]
    # a wrapped first sentence is joined: it goes on in lower case, or has a clause mark
    assert (
        normalise("The main clinical\nmanifestations are DVT.") == "The main clinical manifestations are DVT."
    )
    assert normalise("第一句,\n第二句。") == "第一句,第二句。"


def test_first_line_title():
    assert first_line_title("abetalipoproteinemia\nAbetalipoproteinemia is an inherited disorder.") == (
        "abetalipoproteinemia"
    )
    assert first_line_title("Deep vein thrombosis: a review\nText.") == "Deep vein thrombosis: a review"
    assert first_line_title("One sentence only.\nAnother.") is None
    assert first_line_title("2. 流行病学\n该病可发生在任何年龄段。") is None  # a heading, not a title
    assert first_line_title("Single line") is None


def test_page_offsets_of_normalise_pages():
    pages = ["第一页的内容。\n", "", "第三页开头的句子没有写\n", "完,在第四页写完。\n第四页。"]
    text, starts = normalise_pages(pages)
    assert text == "第一页的内容。\n第三页开头的句子没有写完,在第四页写完。\n第四页。"
    assert starts[0] == 0
    assert text[starts[2] :].startswith("第三页开头")
    assert starts[1] == starts[2]  # the blank page starts where the next one does
    # a sentence run over the break: page 4 starts mid-line
    assert text[starts[3] :].startswith("完,在第四页")


def test_english_words_hyphenated_across_lines_are_rejoined_and_lines_joined_with_a_space():
    raw = "The main clinical ma-\nnifestations are deep vein\nthrombosis."
    assert normalise(raw) == "The main clinical manifestations are deep vein thrombosis."


def test_special_hyphen_becomes_ascii_and_rejoins():
    assert normalise("autologous hema⁃\ntopoietic stem cells.") == "autologous hematopoietic stem cells."


def test_page_furniture_is_dropped():
    raw = (
        "肿瘤细胞分泌凝血因子,即组织因子,是导致\n"
        "Open Access\n"
        "https://doi.org/10.12677/acm.2024.142339\n"
        "http://creativecommons.org/licenses/by/4.0/\n"
        "张楚楚 等\n"
        "DOI: 10.12677/acm.2024.142339 2422 临床医学进展\n"
        "高凝状态的重要原因。\n"
        "Copyright © 2023 by author(s) and Hans Publishers Inc.\n"
        "This work is licensed under the Creative Commons Attribution International License (CC BY 4.0).\n"
    )
    assert normalise(raw) == "肿瘤细胞分泌凝血因子,即组织因子,是导致高凝状态的重要原因。"


def test_headings_stay_on_their_own_lines():
    raw = "前文结束\n 2. 流行病学 \n该病可发生在任何年龄段。"
    assert normalise(raw).split("\n") == ["前文结束", "2. 流行病学", "该病可发生在任何年龄段。"]


def test_run_in_headings_are_split_from_their_body_text():
    raw = "１．１\u3000一般资料\u3000２０１３年１１月至２０１８年９月本中\n心收治５例患者。"
    assert normalise(raw).split("\n") == ["1.1 一般资料", "2013年11月至2018年9月本中心收治5例患者。"]
    raw = " \u3000\u3000［摘要］\u3000目的：探讨疗效。\n\u3000\u3000血管肉瘤是一种罕见恶性肿瘤。"
    assert normalise(raw).split("\n") == ["[摘要]", "目的:探讨疗效。", "血管肉瘤是一种罕见恶性肿瘤。"]


def test_crlf_and_bom_are_handled():
    assert normalise("\ufeff第一句,\r\n第二句。\r\n") == "第一句,第二句。"


def test_characters_whose_nfkc_form_changes_the_meaning_are_kept():
    # NFKC would write 6½ as 61⁄2 (read "61/2") and 10⁹/L as 109/L
    assert normalise("患儿6½岁,白细胞 12×10⁹/L。") == "患儿6½岁,白细胞 12×10⁹/L。"
    assert normalise("A dose of ¾ tablet per m² for CD4⁺ cells and H₂O.") == (
        "A dose of ¾ tablet per m² for CD4⁺ cells and H₂O."
    )
    # everything else is still NFKC: full-width letters, digits and punctuation
    assert normalise("ＣＤ４⁺细胞，约２½倍。") == "CD4⁺细胞,约2½倍。"


def test_radical_look_alikes_in_any_format_become_the_ideographs():
    # U+2ED4 (CJK Radicals Supplement, left alone by NFKC) and U+2F8E (a Kangxi radical)
    assert normalise("\u2ed4诊\u2f8e常规检查。") == "门诊血常规检查。"

from __future__ import annotations

import re

import pytest

from rag.ingest.loading import load_folder
from rag.terms.glossary import Glossary, Term, TermStats, choose_zh_term, is_abbreviation, long_form_matches
from rag.types import Document
from tests.conftest import DOCS


def _doc(text: str, doc_id: str = "d") -> Document:
    return Document(doc_id, doc_id, f"{doc_id}.txt", text, "0")


SYNTHETIC = (
    "摘要\n目前,对影响非小细胞肺癌(NSCLC)患者静脉血栓栓塞发生的风险因素进行了大量研究。\n"
    "Abstract\nRisk factors for venous thromboembolism (VTE) in patients with non-small cell lung "
    "cancer (NSCLC) have been extensively studied.\n"
    "1. 引言\n肿瘤相关性静脉血栓栓塞(venous thromboembolic disease, VTE)包含深静脉血栓"
    "(deep venous thrombosis, DVT)和肺栓塞(pulmonary embolism, PE)。首先,肿瘤细胞分泌凝血因子III,"
    "即组织因子(tissue factor, TF),是重要原因。患者中静脉血栓栓塞较常见。"
    "肿瘤浸润的淋巴细胞(TIL)很重要。近一半的患者(n = 20, 48%)发生血栓(图1)。"
    "常见的驱动基因突变(EGFR, ALK, ROS1, KRAS等)与此有关。细胞角蛋白 19 片段(CYFRA 21-1)升高。\n"
)


def _triples(g: Glossary) -> set[tuple[str, str, str]]:
    return {(t.zh, t.en, t.abbr) for t in g.terms}


def test_mines_chinese_definitions_with_sensible_left_boundaries():
    triples = _triples(Glossary.build([_doc(SYNTHETIC)]))
    assert ("组织因子", "tissue factor", "TF") in triples  # cut at 即
    assert ("深静脉血栓", "deep venous thrombosis", "DVT") in triples  # cut at the verb 包含
    assert ("肺栓塞", "pulmonary embolism", "PE") in triples  # cut at 和
    # 11 characters after punctuation: the suffix that recurs in the corpus is the term
    assert ("静脉血栓栓塞", "venous thromboembolic disease", "VTE") in triples
    # the English abstract's definition is linked to the Chinese term through the abbreviation
    assert ("非小细胞肺癌", "non-small cell lung cancer", "NSCLC") in triples
    assert ("静脉血栓栓塞", "venous thromboembolism", "VTE") in triples


def test_skips_what_is_not_a_definition():
    zh_terms = {t.zh for t in Glossary.build([_doc(SYNTHETIC)]).terms}
    assert "淋巴细胞" not in zh_terms  # "肿瘤浸润的淋巴细胞(TIL)": the scope of 的 is unclear
    assert not zh_terms & {"片段", "患者", "发生血栓", "突变"}  # cut-off term, counts, figures, lists
    assert all(t.abbr not in ("EGFR", "n") for t in Glossary.build([_doc(SYNTHETIC)]).terms)


def test_left_boundary_rules():
    stats = TermStats(["中性粒细胞与淋巴细胞比率(NLR)是指标。如中性粒细胞与淋巴细胞比率、指数。"])
    assert choose_zh_term("和肺栓塞", stats) == "肺栓塞"
    assert choose_zh_term("肿瘤浸润的淋巴细胞", stats) is None
    # 淋巴细胞比率 never occurs without its left part, so the term spans the 与
    assert choose_zh_term("中性粒细胞与淋巴细胞比率", stats) == "中性粒细胞与淋巴细胞比率"
    assert choose_zh_term("POEMS综合征", stats) == "POEMS综合征"


def test_abbreviation_checks():
    assert long_form_matches("TF", "tissue factor")
    assert long_form_matches("mTOR", "mammaliantargetofrapamycin")  # glued by PDF extraction
    assert long_form_matches("SREs", "skeletal related events")
    assert not long_form_matches("PD", "disease progression")  # letters out of order
    assert is_abbreviation("CYFRA 21-1") and is_abbreviation("E2") and is_abbreviation("CTCs")
    assert not is_abbreviation("n=79") and not is_abbreviation("Table")


@pytest.fixture
def glossary() -> Glossary:
    return Glossary(
        [
            Term("深静脉血栓", "deep venous thrombosis", "DVT"),
            Term("静脉血栓", "venous thrombosis", ""),
            Term("部分缓解", "partialresponse", "PR"),
            Term("总生存期", "", "OS"),
            Term("疾病进展", "", "PD"),
            Term("非小细胞肺癌", "non-small cell lung cancer", "NSCLC"),
            Term("循环肿瘤细胞", "", "CTCs"),
        ]
    )


def test_zh_terms_for_matches_whole_words_longest_first(glossary):
    assert glossary.zh_terms_for("Risk of Deep Venous Thrombosis?") == ["深静脉血栓"]  # not also 静脉血栓
    assert glossary.zh_terms_for("venous thrombosis and nsclc") == ["静脉血栓", "非小细胞肺癌"]
    assert glossary.zh_terms_for("a partial response") == ["部分缓解"]  # glued long form still matches
    assert glossary.zh_terms_for("DVTs and CTC counts") == ["深静脉血栓", "循环肿瘤细胞"]  # plurals fold
    # short abbreviations need their case; a hyphenated name is one word
    assert glossary.zh_terms_for("os and pd are words; PD-1 is a receptor") == []
    assert glossary.zh_terms_for("median OS") == ["总生存期"]
    assert glossary.zh_terms_for("subvenous thrombosisx") == []


def test_en_terms_for_glosses_chinese_terms(glossary):
    assert glossary.en_terms_for("非小细胞肺癌患者的深静脉血栓") == [
        ("非小细胞肺癌", "non-small cell lung cancer (NSCLC)"),
        ("深静脉血栓", "deep venous thrombosis (DVT)"),
    ]
    assert glossary.en_terms_for("没有术语") == []


def test_expand_query_both_directions(glossary):
    assert (
        glossary.expand_query("What is the OS of NSCLC?", "en")
        == "What is the OS of NSCLC? 总生存期 非小细胞肺癌"
    )
    assert (
        glossary.expand_query("deep venous thrombosis risk", "en")
        == "deep venous thrombosis risk 深静脉血栓 DVT"
    )
    assert glossary.expand_query("非小细胞肺癌的总生存期", "zh") == (
        "非小细胞肺癌的总生存期 NSCLC non-small cell lung cancer OS"
    )
    assert glossary.expand_query("没有术语", "zh") == "没有术语"
    with pytest.raises(ValueError, match="lang must be 'zh' or 'en'"):
        glossary.expand_query("x", "fr")


def test_json_round_trip(glossary):
    again = Glossary.from_json(glossary.to_json())
    assert again.terms == glossary.terms
    assert "深静脉血栓" in glossary.to_json()  # ensure_ascii=False: readable in the index folder
    with pytest.raises(ValueError, match="rebuild the index"):
        Glossary.from_json('{"version": 0, "terms": []}')
    with pytest.raises(ValueError, match="lacks the key 'abbr'"):
        Glossary.from_json('{"version": 1, "terms": [{"zh": "组织因子", "en": "tissue factor"}]}')


def test_real_corpus_entries_can_be_checked_in_the_text():
    docs = load_folder(DOCS).documents
    g = Glossary.build(docs)
    triples = _triples(g)
    # Each of these is written out in a bundled paper, e.g. "即组织因子(tissue factor, TF)".
    assert ("组织因子", "tissue factor", "TF") in triples
    assert ("深静脉血栓", "deep venous thrombosis", "DVT") in triples
    assert ("非小细胞肺癌", "non-small cell lung cancer", "NSCLC") in triples
    assert ("中性粒细胞与淋巴细胞比率", "", "NLR") in triples
    assert ("自体造血干细胞移植", "autologous hematopoietic stem cell transplantation", "AHSCT") in triples
    assert ("美国东部肿瘤协作组", "Eastern Cooperative Oncology Group", "ECOG") in triples
    # "跨膜糖蛋白组织因子(TF)" in another paper is recognised as the same 组织因子
    assert {d for t in g.terms if t.zh == "组织因子" for d in t.docs} == {
        "nsclc-driver-genes-vte-review",
        "trousseau-syndrome-review",
    }
    # Every Chinese term is found in the corpus right before an opening parenthesis.
    text = "\n".join(d.text for d in docs)
    for t in g.terms:
        if t.zh:
            assert re.search(re.escape(t.zh) + r" ?\(", text), t
    assert g.zh_terms_for("What is tissue factor?") == ["组织因子"]


def test_an_abbreviation_with_another_meaning_is_not_linked():
    docs = [
        _doc("疗效评价为部分缓解(partial response, PR)的患者。部分缓解较多见。", "a"),
        _doc("Abstract\nBreast tumours that express the progesterone receptor (PR) were studied.", "b"),
    ]
    triples = _triples(Glossary.build(docs))
    assert ("部分缓解", "partial response", "PR") in triples
    assert ("部分缓解", "progesterone receptor", "PR") not in triples
    assert ("", "progesterone receptor", "PR") in triples


def test_repeated_matches_are_equal_and_callers_cannot_change_them(glossary):
    text = "恶性肿瘤患者容易发生静脉血栓栓塞(VTE),组织因子是促凝物质。"
    first = glossary.matches(text)
    assert first and [m.zh for m in first] == [m.zh for m in glossary.matches(text)]
    first.clear()  # the answerer keeps matches per sentence; a caller's list is its own
    assert glossary.matches(text) == glossary.matches(text) != []


def test_a_term_of_english_papers_with_no_chinese_name_gets_no_empty_gloss():
    from rag.answer.framing import glosses

    doc = _doc(
        "Deep venous thrombosis (DVT) is common after trauma. Prophylaxis against DVT reduces it.", "en"
    )
    g = Glossary.build([doc])
    assert any(t.abbr == "DVT" and not t.zh for t in g.terms)  # the term is known, in English only
    assert glosses(doc.text, "zh", g) == []  # a Chinese answer has nothing to gloss it with


def _every_window(g: Glossary, text: str) -> list:
    """The matches of every window of the text (what `_find` did before it skipped the windows no term
    begins): the reference the pruned search must agree with."""
    from rag.terms.glossary import _WORD_RE, Match, _key, longest_first

    found = []
    for i in range(len(text)):
        for n in range(2, min(g._max_zh, len(text) - i) + 1):
            if terms := g._by_zh.get(text[i : i + n]):
                found.append(Match(i, i + n, text[i : i + n], tuple(terms)))
    words = list(_WORD_RE.finditer(text))
    for i, first in enumerate(words):
        for last in words[i : i + g._max_words]:
            surface = text[first.start() : last.end()]
            terms = [t for t in g._by_key.get(_key(surface), []) if g._names(t, surface)]
            for zh in dict.fromkeys(t.zh for t in terms):
                found.append(Match(first.start(), last.end(), zh, tuple(terms)))
    return longest_first(found)


def test_matches_skip_only_windows_that_no_term_begins(glossary):
    from rag.ingest.sentences import sentence_spans

    docs = load_folder(DOCS).documents
    real = Glossary.build(docs)
    texts = [d.text[a:b] for d in docs for a, b in sentence_spans(d.text)] + [SYNTHETIC]
    texts += ["DVTs and CTC counts", "a partial response, median OS", "Deep-Venous Thrombosis events"]
    assert len(texts) > 300
    for g in (real, glossary):
        found = 0
        for text in texts:
            assert g._find(text) == _every_window(g, text), text
            found += len(g._find(text))
        assert found > 20

"""The drugs and diseases a question names, and the answerer's refusal of quotes that leave one out."""

from __future__ import annotations

from dataclasses import replace

from rag.answer import AnswerSettings, compose_answer
from rag.chunking import chunk_document
from rag.drug_names import DrugNames
from rag.loading import load_folder
from rag.question_names import question_names, unquoted
from rag.types import Document, Hit, Quote

# A case report that lists bortezomib among the options and reports another drug's effect; its
# abstract is about lenalidomide.
POEMS = (
    "摘要\n"
    "本文报道来那度胺治疗POEMS综合征一例。\n"
    "1 讨论\n"
    "系统性治疗包括来那度胺+地塞米松、硼替佐米+地塞米松及自体外周血干细胞移植等。\n"
    "来那度胺因其较好的抗骨髓瘤疗效和较低的神经毒性,适用于治疗POEMS综合征。\n"
    "血栓事件在胰腺癌患者中也很常见。\n"
)
DRUGS = DrugNames(POEMS)


def _doc(text: str = POEMS, title: str = "POEMS case") -> Document:
    return Document("poems", title, "zh", text, {})


def _quote(text: str, doc: Document) -> Quote:
    start = doc.text.index(text)
    return Quote(1, doc.doc_id, doc.title, "", start, start + len(text), text)


def test_a_question_names_its_drugs_and_diseases_but_not_kinds_of_illness():
    assert [n.text for n in question_names("POEMS综合征患者使用硼替佐米的疗效如何？", DRUGS)] == ["硼替佐米"]
    assert [n.text for n in question_names("胰腺癌患者的血栓发生率是多少？", DRUGS)] == ["胰腺癌"]
    for question in ("抗肿瘤治疗有哪些并发症？", "实体肿瘤和血栓性疾病有什么关系？"):
        assert question_names(question, DRUGS) == [], question
    # An English drug name is named by the papers' Chinese name that sounds like it, too.
    (name,) = question_names("How well does lenalidomide work in POEMS syndrome?", DRUGS)
    assert name.text == "lenalidomide" and "来那度胺" in name.forms


def test_a_name_is_found_through_pdf_spacing_case_and_variant_forms():
    (drug,) = question_names("硼替佐米有效吗？", DRUGS)
    assert drug.named_in("硼 替 佐 米 + 地塞米松") and not drug.named_in("来那度胺+地塞米松")
    (english,) = question_names("Is lenalidomide effective?", DRUGS)
    assert english.named_in("Lenalidomide was given.") and english.named_in("来那度胺治疗")
    (disease,) = question_names("心内膜炎怎么治？", DRUGS)
    assert disease.named_in("合并非细菌性血栓性心 内 膜 炎。") and not disease.named_in("内膜")
    # 血栓症 is a variant of 血栓栓塞症: the same stem, the ending two characters on.
    (short,) = question_names("肿瘤患者血栓症的发生率是多少？", DRUGS)
    assert short.named_in("静脉血栓栓塞症") and not short.named_in("静脉血栓")


def test_quotes_name_what_their_paper_is_about_through_its_title_and_abstract():
    doc = _doc()
    about_lenalidomide = _quote("来那度胺因其较好的抗骨髓瘤疗效和较低的神经毒性,适用于治疗POEMS综合征。", doc)
    names = question_names("来那度胺和硼替佐米治疗POEMS综合征的疗效如何？", DRUGS)
    # Bortezomib is named in the paper's body only, and not in the quote: it is left out.
    assert unquoted(names, [about_lenalidomide], {"poems": doc}) == ["硼替佐米"]
    listing = _quote("系统性治疗包括来那度胺+地塞米松、硼替佐米+地塞米松及自体外周血干细胞移植等。", doc)
    assert unquoted(names, [about_lenalidomide, listing], {"poems": doc}) == []
    # A quote that names neither drug still names the one its paper is about: its abstract names it.
    other = _quote("血栓事件在胰腺癌患者中也很常见。", doc)
    assert unquoted(question_names("来那度胺的疗效如何？", DRUGS), [other], {"poems": doc}) == []
    titled = _doc(title="硼替佐米治疗POEMS综合征")
    assert unquoted(names, [_quote(about_lenalidomide.text, titled)], {"poems": titled}) == []


REPORT = (
    "摘要\n"
    "本文报道来那度胺治疗POEMS综合征一例。\n"
    "1 结果\n"
    "患者接受治疗后症状明显缓解,双下肢无力和麻木逐渐好转。\n"
    "2 讨论\n"
    "硼替佐米联合地塞米松也是POEMS综合征的系统性治疗方案之一。\n"
)


def test_the_answerer_refuses_quotes_that_leave_out_a_named_drug_and_says_which(tmp_path, fake_embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "report.txt").write_text(REPORT, encoding="utf-8")
    docs = {d.doc_id: d for d in load_folder(folder).documents}
    chunks = chunk_document(docs["report"])
    drugs = DrugNames([d.text for d in docs.values()])
    settings = AnswerSettings(min_score=0.0)

    def ask(question: str, section: str, s: AnswerSettings = settings):
        hits = [Hit(c, 1.0, 0) for c in chunks if section in c.section]
        assert hits, section
        names = question_names(question, drugs)
        return compose_answer(question, "zh", hits, docs, settings=s, embedder=fake_embedder, names=names)

    question = "POEMS综合征患者使用硼替佐米的疗效如何？"
    # The results section never names bortezomib: its sentences answer another question.
    answer = ask(question, "结果")
    assert answer.abstained and answer.quotes == ()
    assert any("硼替佐米" in n and "no sentence chosen" in n for n in answer.notes)
    assert not ask(question, "结果", replace(settings, refuse_unquoted_names=False)).abstained
    # A passage that names it is quoted.
    answer = ask(question, "讨论")
    assert not answer.abstained and "硼替佐米" in answer.quotes[0].text
    # The same results answer a question about the drug the report is about (its abstract names it).
    assert not ask("来那度胺治疗后患者的症状有何变化？", "结果").abstained

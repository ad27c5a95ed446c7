"""The drugs, diseases and acronyms a question names, and the answerer's refusal of quotes that leave one out."""

from __future__ import annotations

from rag.ingest.chunking import chunk_document
from rag.ingest.loading import load_folder
from rag.query.names import paper_acronyms, question_names, unquoted
from rag.settings import AnswerSettings, RefusalSettings
from rag.terms.drug_names import DrugNames
from rag.terms.glossary import Glossary
from rag.types import Document, Hit, Quote
from tests.helpers_answer import compose

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


def test_a_quote_that_points_back_names_what_the_sentence_before_it_names():
    text = (
        "摘要\n本文报道来那度胺治疗POEMS综合征一例。\n1 讨论\n"
        "一项研究发现小剂量来那度胺联合地塞米松可逆转皮肤变化。该研究共入组41例患者,26/34完全缓解。"
        "另有36例患者完成了治疗。\n"
    )
    doc = _doc(text)
    names = question_names("地塞米松治疗后的完全缓解率是多少？", DrugNames(text))
    asked = [n.text for n in names]
    assert asked and all(any(n.named_in(s) for s in ("地塞米松",)) for n in names)
    points_back = _quote("该研究共入组41例患者,26/34完全缓解。", doc)
    # Alone, the quote does not name dexamethasone; read in place, "该研究" is the study that does.
    assert unquoted(names, [points_back], {"poems": doc}) == asked
    assert unquoted(names, [points_back], {"poems": doc}, in_place=True) == []
    # A quote that does not point back is not credited with its neighbour's names.
    after = _quote("另有36例患者完成了治疗。", doc)
    assert unquoted(names, [after], {"poems": doc}, in_place=True) == asked
    # Nor a quote whose offsets are not its document's text.
    moved = Quote(1, "poems", doc.title, "", 0, len(points_back.text), points_back.text)
    assert unquoted(names, [moved], {"poems": doc}, in_place=True) == asked


MARKERS = (
    "血清神经元特异性烯醇酸酶(NSE)与肺癌骨转移相关。CYFRA 21-1 的敏感度为 48.8%。"
    "参加 METROS 研究的 ROS1 重排患者中,KRAS 突变少见。高浓度神经元特异性烯醇酸酶(NSE)提示神经内分泌肿瘤。"
)


def test_a_question_names_the_acronyms_the_papers_write_and_what_they_stand_for():
    docs = [Document("m", "markers", "zh", MARKERS, {})]
    written, glossary = paper_acronyms(d.text for d in docs), Glossary.build(docs)
    names = question_names(
        "NSE 和 LMWH 对 MET 扩增患者有何意义？", DRUGS, acronyms=written, glossary=glossary
    )
    # LMWH and MET are not written by the papers (METROS is another word): their absence proves
    # nothing, since a Chinese paper may write the drug or gene in Chinese only.
    assert [n.text for n in names] == ["NSE"]
    (nse,) = names
    assert nse.named_in("血清神经元特异性烯醇酸酶升高。") and nse.named_in("NSE 升高")
    assert not nse.named_in("CEA 升高")
    (cyfra,) = question_names("CYFRA21-1 的敏感度是多少？", DRUGS, acronyms=written)
    assert cyfra.named_in("CYFRA 21-1 的敏感度为 48.8%") and not cyfra.named_in("CEA 的敏感度")
    (kras,) = question_names("How common are KRAS mutations?", DRUGS, acronyms=written)
    assert not kras.named_in("KRASX") and kras.named_in("KRAS 突变")


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

    def ask(question: str, section: str, refusal: RefusalSettings | None = None):
        hits = [Hit(c, 1.0, 0) for c in chunks if section in c.section]
        assert hits, section
        names = question_names(question, drugs)
        return compose(
            question,
            "zh",
            hits,
            docs,
            settings=settings,
            embedder=fake_embedder,
            names=names,
            refusal=refusal,
        )

    question = "POEMS综合征患者使用硼替佐米的疗效如何？"
    # The results section never names bortezomib: its sentences answer another question.
    answer = ask(question, "结果")
    assert answer.abstained and answer.quotes == ()
    assert any("硼替佐米" in n and "no sentence chosen" in n for n in answer.notes)
    assert answer.refusal is not None and answer.refusal.code == "unquoted_names"
    assert not ask(question, "结果", RefusalSettings(unquoted_names=False)).abstained
    # A passage that names it is quoted.
    answer = ask(question, "讨论")
    assert not answer.abstained and "硼替佐米" in answer.quotes[0].text
    # The same results answer a question about the drug the report is about (its abstract names it).
    assert not ask("来那度胺治疗后患者的症状有何变化？", "结果").abstained


def test_the_pipeline_refuses_quotes_that_leave_out_an_acronym_the_papers_write(tmp_path, fake_embedder):
    import json

    from rag.indexing.index import build_index
    from rag.pipeline import Pipeline

    from .helpers_index import write_corpus

    build_index(write_corpus(tmp_path / "docs"), tmp_path / "index", fake_embedder, progress=False)
    (tmp_path / "index" / "settings.json").write_text(json.dumps({"answer": {"min_score": 0.0}}), "utf-8")
    pipeline = Pipeline.load(tmp_path / "index", embedder=fake_embedder)
    docs = pipeline.documents
    egfr = [Hit(c, 1.0, 1) for c in pipeline.chunks if c.section.startswith("2 EGFR")]
    assert egfr
    # The EGFR section never writes ALK, which another section of the papers does: another question.
    answer = pipeline.compose("ALK重排会增加VTE风险吗？", "zh", egfr, docs)
    assert answer.abstained and any("ALK" in n and "no sentence chosen" in n for n in answer.notes)
    assert not pipeline.compose("EGFR突变会增加VTE风险吗？", "zh", egfr, docs).abstained
    # An acronym no paper writes (HER2) proves nothing: it may be written in Chinese only.
    assert not pipeline.compose("HER2突变会增加VTE风险吗？", "zh", egfr, docs).abstained

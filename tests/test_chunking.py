from __future__ import annotations

import re

import pytest

from rag.ingest.chunking import chunk_document, find_sections
from rag.ingest.headings import parse_heading
from rag.ingest.loading import load_folder
from rag.settings import ChunkerSettings
from rag.types import Document

from .conftest import DOCS, ZH_DOC

EXPECTED_OUTLINES = {
    "trousseau-syndrome-review": [
        "摘要",
        "Abstract",
        "1 背景与引言",
        "2 流行病学",
        "3 发病机制",
        "4 危险因素",
        "5 临床表现",
        "6 治疗方式",
        "7 预后",
    ],
    "nsclc-driver-genes-vte-review": ["摘要", "Abstract", "1 引言", "2 肿瘤相关VTE形成的分子机制", "3 结论"],
    "lung-cancer-bone-metastasis-blood-markers": [
        "摘要",
        "Abstract",
        "1 引言",
        "2 肺癌骨转移相关机制",
        "3 与肺癌骨转移相关指标",
        "4 结语与展望",
    ],
    "everolimus-advanced-angiosarcoma": ["摘要", "(引言)", "1 资料与方法", "2 结果", "3 讨论"],
    "poems-syndrome-lenalidomide-ahsct": ["(引言)", "1 病例资料", "2 讨论"],
}
EXPECTED_SUBSECTIONS = {
    "nsclc-driver-genes-vte-review": ("2 肿瘤相关VTE形成的分子机制", ["2.1", "2.2", "2.3", "2.4"]),
    "lung-cancer-bone-metastasis-blood-markers": ("2 肺癌骨转移相关机制", ["2.1", "2.2", "2.3", "2.4"]),
    "everolimus-advanced-angiosarcoma": ("1 资料与方法", ["1.1", "1.2", "1.3"]),
}


def _key(s: str) -> str:
    return re.sub(r"\s+", "", s)  # the issue writes "肿瘤相关VTE" where the paper has "肿瘤相关 VTE"


@pytest.fixture(scope="module")
def corpus():
    result = load_folder(DOCS)
    assert not result.errors
    return {d.doc_id: d for d in result.documents}


@pytest.mark.parametrize("doc_id", sorted(EXPECTED_OUTLINES))
def test_top_level_outline_of_bundled_papers(corpus, doc_id):
    doc = corpus[doc_id]
    top = [s.path[0] for s in find_sections(doc.text, doc.lang)]
    outline = [t for i, t in enumerate(top) if i == 0 or top[i - 1] != t]
    assert [_key(t) for t in outline] == [_key(t) for t in EXPECTED_OUTLINES[doc_id]]


@pytest.mark.parametrize("doc_id", sorted(EXPECTED_SUBSECTIONS))
def test_subsections_and_paths(corpus, doc_id):
    parent, numbers = EXPECTED_SUBSECTIONS[doc_id]
    doc = corpus[doc_id]
    subs = [
        s for s in find_sections(doc.text, doc.lang) if len(s.path) == 2 and _key(s.path[0]) == _key(parent)
    ]
    assert [s.path[1].split(" ")[0] for s in subs] == numbers
    assert " > " in subs[0].title


def test_nsclc_section_path_names_parent_and_child(corpus):
    doc = corpus["nsclc-driver-genes-vte-review"]
    titles = [s.title for s in find_sections(doc.text, doc.lang)]
    assert "2 肿瘤相关 VTE 形成的分子机制 > 2.3 ALK 基因突变与 VTE 的研究" in titles
    assert "Abstract > Keywords" in titles


@pytest.mark.parametrize("doc_id", sorted(EXPECTED_OUTLINES))
def test_chunks_round_trip_offsets_and_stay_inside_sections(corpus, doc_id):
    doc = corpus[doc_id]
    settings = ChunkerSettings()
    sections = find_sections(doc.text, doc.lang)
    chunks = chunk_document(doc, settings)
    assert chunks
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert len(c.text) <= settings.max_chars
        inside = [s for s in sections if s.start <= c.start and c.end <= s.end]
        assert inside and inside[0].title == c.section
    assert len({c.id for c in chunks}) == len(chunks)
    # every sentence of every section is covered by some chunk
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    body = [i for s in sections for i in range(s.start, s.end) if not doc.text[i].isspace()]
    missing = [i for i in body if i not in covered]
    assert len(missing) <= sum(len(s.path[-1]) + 8 for s in sections)  # only heading-only parents


def test_long_section_is_split_at_sentence_ends_with_overlap():
    sentences = [f"第{i}句话讲的是血栓形成的第{i}个危险因素。" for i in range(40)]
    text = "1. 危险因素\n" + "".join(sentences)
    doc = Document("d", "t", "p", text, "x")
    chunks = chunk_document(doc, ChunkerSettings(max_chars=120, overlap_chars=40))
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end  # overlap
        assert b.start > a.start  # progress
        assert text[a.end - 1] == "。" or a.end == len(text)


def test_sentence_longer_than_a_window_is_cut():
    text = "1. 长句\n" + "很" * 1000 + "。"
    chunks = chunk_document(
        Document("d", "t", "p", text, "x"), ChunkerSettings(max_chars=200, overlap_chars=20)
    )
    assert all(len(c.text) <= 200 for c in chunks)
    assert chunks[-1].end == len(text)


def test_chunk_ids_are_stable():
    doc = Document("d", "t", "p", ZH_DOC, "x")
    assert [c.id for c in chunk_document(doc)] == [c.id for c in chunk_document(doc)]


def test_text_without_headings_is_one_section():
    doc = Document("note", "t", "p", "这是一段没有标题的笔记。它讲了两件事。", "x")
    sections = find_sections(doc.text, "zh")
    assert [s.path for s in sections] == [("(正文)",)]


def test_table_rows_and_out_of_sequence_numbers_are_not_headings():
    text = "1. 引言\n正文。\n159 KRAS\n3 PR >7 >7 5 10 1级口腔溃疡\n2. 方法\n正文。\n1 与 ALP 联合。"
    titles = [s.title for s in find_sections(text, "zh")]
    assert titles == ["1 引言", "2 方法"]


@pytest.mark.parametrize(
    "line, label, level",
    [
        ("1. 背景与引言", "1 背景与引言", 1),
        ("2.1. EGFR 基因突变与 VTE 的研究", "2.1 EGFR 基因突变与 VTE 的研究", 2),
        ("1.1 一般资料", "1.1 一般资料", 2),
        ("2 讨论", "2 讨论", 1),
        ("摘要", "摘要", 1),
        ("[摘要]", "摘要", 1),
        ("Abstract", "Abstract", 1),
        ("Keywords", "Keywords", 2),
        ("一、研究背景", "一、研究背景", 1),
        ("(二)治疗方法", "（二）治疗方法", 2),
        ("1 Introduction", "1 Introduction", 1),
        ("## Methods", "Methods", 2),
    ],
)
def test_heading_forms(line, label, level):
    h = parse_heading(line)
    assert h is not None and (h.label, h.level) == (label, level)


@pytest.mark.parametrize(
    "line", ["159 KRAS 12", "2.51~5.44, P < 0.001)", "1吉首大学医学院", "3例为血管肉瘤。", "EGFR"]
)
def test_not_headings(line):
    assert parse_heading(line) is None


def test_settings_are_checked():
    with pytest.raises(ValueError, match="overlap_chars must be"):
        ChunkerSettings(max_chars=100, overlap_chars=60)
    with pytest.raises(ValueError, match="max_chars must be at least 50"):
        ChunkerSettings(max_chars=10, overlap_chars=0)

"""Fast tests for the web UI helpers (webui/) and the app wiring, with the fake embedder."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rag.answer.compose import AnswerSettings
from rag.indexing.index import build_index
from rag.pipeline import Pipeline, QuestionError, check_question
from rag.types import Answer, Document, Quote
from webui import uploads
from webui.chat import check_settings, open_document, respond, respond_stream
from webui.render import (
    context_window,
    escape_markdown,
    format_answer,
    format_draft,
    render_document,
    render_quote,
    render_sources,
    status_line,
)
from webui.uploads import UploadError, add_documents, check_upload, safe_filename

from .conftest import REPO, FakeEmbedder

XSS_DOC = """Safety notes
The trial drug is safe.
Evidence
A line before.
<script>alert("x")</script> The trial drug is safe & <b>well</b> tolerated.
A line after.
Methods
Unrelated methods text.
"""

ZORATINIB = """佐拉替尼的一期临床研究

摘要
佐拉替尼是一种虚构的口服激酶抑制剂。推荐剂量为每日两次、每次137毫克。最常见的不良反应为味觉倒错。
"""


@pytest.fixture
def library(tiny_corpus: Path, tmp_path: Path) -> tuple[Path, Path, Pipeline]:
    """The tiny corpus plus an HTML-laden document, indexed with the fake embedder."""
    (tiny_corpus / "xss.txt").write_text(XSS_DOC, encoding="utf-8")
    index_dir = tmp_path / "index"
    embedder = FakeEmbedder()
    build_index(tiny_corpus, index_dir, embedder, progress=False)
    # A threshold for the fake embedder: the packaged default is calibrated for the real model.
    settings = AnswerSettings(min_score=0.1)
    return tiny_corpus, index_dir, Pipeline.load(index_dir, embedder=embedder, answer_settings=settings)


def _quote(doc: Document, start: int, end: int, n: int = 1) -> Quote:
    return Quote(n, doc.doc_id, doc.title, "Evidence", start, end, doc.text[start:end])


def _marks(fragment: str) -> list[str]:
    return re.findall(r"<mark[^>]*>(.*?)</mark>", fragment, flags=re.S)


# --- answer formatting -------------------------------------------------------------------------


def test_format_answer_styles_only_our_citations():
    quote = Quote(1, "d", "T", "S", 0, 3, "abc")
    md = format_answer(Answer("q", "en", False, "Heparin is first-line [1], as reported [12].", (quote,)))
    assert '<span class="cite">[1]</span>' in md
    assert r"\[12\]" in md  # the paper's own reference number stays plain text


def test_format_answer_escapes_html_and_markdown_from_documents():
    text = "「<script>alert(1)</script> see [here](javascript:alert(1)) and ![x](http://e/x.png) $x$」[1]"
    md = format_answer(Answer("q", "en", False, text, (Quote(1, "d", "T", "S", 0, 1, "a"),)))
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "](" not in md.replace(r"\](", "")  # no live Markdown link or image
    assert r"\$x\$" in md


def test_format_answer_flags_abstention_in_the_question_language():
    zh = format_answer(Answer("q", "zh", True, "文档中未找到答案。\n原因：证据不足。"))
    en = format_answer(Answer("q", "en", True, "The documents do not answer this.\nWhy: too little."))
    assert zh.startswith("⚠️ **文档中未找到答案。**") and "原因：证据不足。" in zh
    assert en.startswith("⚠️ **The documents do not answer this.**") and "Why: too little." in en
    # Said once: the flag does not add a second sentence of its own.
    assert en.count("do not answer") == 1 and zh.count("未找到答案") == 1


def test_format_answer_shows_notes_escaped():
    md = format_answer(
        Answer("q", "en", False, "x", (), (), ("LLM unavailable (<b>timeout</b>); showing [1]",))
    )
    assert r"<small>ⓘ LLM unavailable \(&lt;b&gt;timeout&lt;/b&gt;\); showing \[1\]</small>" in md
    assert format_answer(Answer("q", "en", False, "x")) == "x"  # no notes, no extra lines


def test_format_draft_is_literal_and_marked_as_a_draft():
    md = format_draft("「<img src=x>」 **bold** [1]", "zh")
    assert "<img" not in md and r"\*\*bold\*\*" in md
    assert md.endswith("*草稿：正在与原文核对引文……*")
    assert "Draft" in format_draft("x", "en")


def test_escape_markdown_keeps_the_text_readable():
    assert escape_markdown("a_b*c") == r"a\_b\*c"
    assert escape_markdown("x < y & z") == "x &lt; y &amp; z"


# --- highlight by offsets ------------------------------------------------------------------------


def test_highlight_is_exactly_the_quote_at_its_offsets_and_escaped(library):
    _, _, pipeline = library
    doc = pipeline.documents["xss"]
    # The phrase occurs twice; the quote is the second occurrence, so a string search would be wrong.
    start = doc.text.index("The trial drug is safe", doc.text.index("<script>"))
    end = doc.text.index("tolerated.") + len("tolerated.")
    card = render_quote(_quote(doc, start, end), pipeline.documents)
    assert _marks(card) == [html.escape(doc.text[start:end])]
    assert "<script>" not in card and "<b>" not in card
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in card  # context shown, escaped
    assert "&lt;/script&gt; <mark>The trial drug" in card


def test_sources_panel_shows_title_section_and_open_button(library):
    _, _, pipeline = library
    doc = pipeline.documents["xss"]
    start = doc.text.index("A line after")
    panel = render_sources([_quote(doc, start, start + 12)], pipeline.documents, "en")
    assert "<h3>Sources</h3>" in panel and "§ Evidence" in panel
    assert 'data-quote="1"' in panel and "Open in full document" in panel


def test_quote_that_no_longer_matches_its_document_is_not_misplaced(library):
    _, _, pipeline = library
    doc = pipeline.documents["xss"]
    stale = Quote(1, "xss", doc.title, "Evidence", 0, 5, "<i>old text</i>")
    card = render_quote(stale, pipeline.documents, "zh")
    assert _marks(card) == ["&lt;i&gt;old text&lt;/i&gt;"] and "请重新提问" in card


def test_abstained_answer_without_quotes_lists_nearest_passages_plainly(library):
    _, _, pipeline = library
    hits = pipeline.retrieve("low molecular weight heparin", k=2)
    panel = render_sources([], pipeline.documents, "en", abstained=True, hits=hits)
    assert "Nearest passages" in panel and "<mark" not in panel
    assert panel.count('class="src-card"') == 2


# --- context windows -----------------------------------------------------------------------------


def test_context_window_cuts_at_line_boundaries_and_keeps_the_quote():
    text = "line one is here\nline two has the QUOTE inside\nline three\nline four\n"
    start = text.index("QUOTE")
    lo, hi = context_window(text, start, start + 5, radius=12)
    assert text[lo:hi] == "line two has the QUOTE inside"


def test_context_window_falls_back_to_sentence_ends_in_a_long_paragraph():
    text = "第一句" + "很长" * 7 + "。第二句也长。这里是引文所在的句子。后面一句。再后面一句话" + "很长" * 8
    start = text.index("这里")
    end = text.index("。", start) + 1
    lo, hi = context_window(text, start, end, radius=10)
    assert text[lo:hi] == "第二句也长。这里是引文所在的句子。后面一句。"


def test_context_window_stays_inside_bounds_and_never_cuts_the_quote():
    text = "A" * 50 + "\nSECTION\n" + "quoted words here" + "\nnext\n"
    start = text.index("quoted")
    lo, hi = context_window(
        text, start, start + 17, radius=1000, bounds=(text.index("SECTION"), len(text) - 6)
    )
    assert text[lo:hi] == "SECTION\nquoted words here"
    assert context_window(text, start, start + 17, radius=0) == (start, start + 17)


def test_sources_context_does_not_cross_into_the_next_section(library):
    _, _, pipeline = library
    doc = pipeline.documents["xss"]
    start = doc.text.index("A line after")
    card = render_quote(_quote(doc, start, start + 12), pipeline.documents)
    assert "Unrelated methods" not in card and "Methods" not in card


# --- the full-document view ----------------------------------------------------------------------


def test_document_view_marks_quotes_with_anchors_and_keeps_all_text(library):
    _, _, pipeline = library
    doc = pipeline.documents["xss"]
    a = doc.text.index("<script>")
    b = doc.text.index("Unrelated")
    quotes = [_quote(doc, a, a + 30, 1), _quote(doc, a + 10, a + 40, 2), _quote(doc, b, b + 9, 3)]
    view = render_document(doc, quotes, focus=2)
    assert 'id="q2" class="focus"' in view and 'href="#q2"' in view
    assert 'id="q1"' not in view  # overlaps the focused quote: not marked twice
    assert _marks(view) == [html.escape(doc.text[a + 10 : a + 40]), "Unrelated"]
    body = view.split('<div class="doc-text"', 1)[1].split(">", 1)[1]
    visible = re.sub(r"<sup[^>]*>.*?</sup>|<[^>]+>", "", body)
    assert html.unescape(visible) == doc.text  # the document, complete and only escaped


def test_open_document_for_a_quote_of_the_last_answer(library):
    _, _, pipeline = library
    turn = respond(pipeline, "Everolimus angiosarcoma adverse event", [], "hybrid", 3)
    view = open_document(pipeline, turn.quotes, 1)
    assert 'id="q1" class="focus"' in view
    assert "Ask a question" in open_document(pipeline, [], 1)


# --- chat handler --------------------------------------------------------------------------------


def test_respond_appends_the_turn_and_renders_sources(library):
    _, _, pipeline = library
    turn = respond(pipeline, "特鲁索综合征的一线治疗药物是什么？", [], "hybrid", 5)
    assert [m["role"] for m in turn.history] == ["user", "assistant"]
    assert '<span class="cite">[1]</span>' in turn.history[1]["content"]
    assert "<mark>" in turn.sources_html and turn.quotes[0]["n"] == 1


def test_respond_remembers_the_turn_and_streams_whole_without_an_llm(library):
    _, _, pipeline = library
    pairs = [("特鲁索综合征是什么？", "一种血栓综合征。")]  # no chat model: the history is not used
    turn = respond(pipeline, "特鲁索综合征的一线治疗药物是什么？", [], "hybrid", 5, pairs)
    assert turn.pair[0] == "特鲁索综合征的一线治疗药物是什么？" and turn.pair[1].startswith("根据文献")
    turns = list(respond_stream(pipeline, "特鲁索综合征的一线治疗药物是什么？", [], "hybrid", 5, pairs))
    assert len(turns) == 1 and not turns[0].draft and turns[0].history == turn.history


def test_the_question_is_echoed_literally(library):
    _, _, pipeline = library
    turn = respond(pipeline, "what is <b>TF</b> and tissue_factor_pathway?", [], "bm25", 3)
    assert turn.history[0]["content"] == r"what is &lt;b&gt;TF&lt;/b&gt; and tissue\_factor\_pathway?"


@pytest.mark.parametrize("question", ["   ", "为什么" * 400])
def test_question_errors_become_chat_messages(library, question):
    _, _, pipeline = library
    with pytest.raises(QuestionError) as expected:
        check_question(question)
    turn = respond(pipeline, question, [{"role": "user", "content": "earlier"}], "hybrid", 5)
    assert turn.history[-1] == {"role": "assistant", "content": f"⚠️ {expected.value}"}
    assert turn.history[0]["content"] == "earlier" and turn.sources_html is None
    assert all(len(m["content"]) < 400 for m in turn.history)  # a huge question is echoed shortened


def test_settings_are_checked():
    assert check_settings("bm25", 3.0) == ("bm25", 3)
    with pytest.raises(ValueError, match="mode must be one of dense, bm25, hybrid"):
        check_settings("semantic", 5)
    with pytest.raises(ValueError, match="from 1 to 10"):
        check_settings("hybrid", 11)


def test_status_line():
    line = status_line(
        {"documents": 5, "chunks": 106, "model": "m<x>", "built_at": "2026-11-21T10:18:04+00:00"}
    )
    assert line == "5 documents · 106 passages · model m&lt;x&gt; · built 2026-11-21 10:18 UTC"


# --- upload checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\evil.MD", "evil.md"),
        (".hidden.txt", "hidden.txt"),
        ("佐拉替尼 研究(2024).txt", "佐拉替尼-研究-2024.txt"),
        ("..txt", "upload.txt"),
        ("a/../../b.pdf", "b.pdf"),
    ],
)
def test_safe_filename(name, expected):
    assert safe_filename(name) == expected


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("tool.exe", b"MZ...", r"\.exe cannot be added; upload \.txt, \.md, \.pdf, \.docx, \.html, \.htm"),
        ("paper.doc", b"\xd0\xcf\x11\xe0", r"\.doc cannot be added"),
        ("paper.docx", b"just text", r"not a Word \.docx file"),
        ("notes", b"text", "files without an extension cannot be added"),
        ("empty.txt", b"", "the file is empty"),
        ("fake.pdf", b"just text", r"not a PDF file \(no %PDF header\)"),
        ("image.txt", b"\x89PNG\r\n\x1a\n....", "this is a PNG image file, not text"),
        ("zeros.txt", b"\x00\x01\x02\x03" * 500, "looks like a binary file"),
        ("blank.md", b"  \n\n  ", "the file has no text"),
    ],
)
def test_check_upload_rejects(name, data, message):
    with pytest.raises(UploadError, match=message):
        check_upload(name, data)


def test_check_upload_rejects_a_too_big_file(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(UploadError, match=r"big\.txt: the file is 0\.0 MB; the limit is 0 MB"):
        check_upload("big.txt", b"x" * 1001)


def test_check_upload_accepts_gbk_text_and_pdf_header():
    check_upload("gbk.txt", "来那度胺联合地塞米松".encode("gbk"))
    check_upload("p.pdf", b"%PDF-1.7\n...")


def _upload(tmp_path: Path, name: str, data: bytes) -> tuple[str, Path]:
    """A file as Gradio hands it over: the browser's name and a temporary copy."""
    folder = tmp_path / "gradio-tmp"
    folder.mkdir(exist_ok=True)
    tmp = folder / f"f{len(list(folder.iterdir()))}"
    tmp.write_bytes(data)
    return name, tmp


def _index_bytes(index_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(index_dir).as_posix(): p.read_bytes() for p in index_dir.rglob("*") if p.is_file()}


def test_good_upload_is_indexed_and_searchable_without_restart(library, tmp_path):
    docs, _, pipeline = library
    before = pipeline.status()["documents"]
    result = add_documents([_upload(tmp_path, "../佐拉替尼.txt", ZORATINIB.encode())], docs, pipeline)
    assert result.added == ["uploads/佐拉替尼"] and result.errors == []
    assert (docs / "uploads" / "佐拉替尼.txt").read_text(encoding="utf-8") == ZORATINIB
    assert pipeline.status()["documents"] == before + 1
    answer = pipeline.ask("佐拉替尼的推荐剂量是多少？", k=3)
    assert answer.quotes[0].doc_id == "uploads/佐拉替尼" and "137毫克" in answer.answer
    assert result.message() == "✓ Added / 已添加: uploads/佐拉替尼"


def test_same_file_twice_is_refused_and_a_name_clash_gets_a_suffix(library, tmp_path):
    docs, _, pipeline = library
    add_documents([_upload(tmp_path, "z.txt", ZORATINIB.encode())], docs, pipeline)
    again = add_documents([_upload(tmp_path, "z.txt", ZORATINIB.encode())], docs, pipeline)
    assert again.added == [] and "already in the library" in again.errors[0]
    other = add_documents([_upload(tmp_path, "z.txt", ZORATINIB.encode() + b"\nv2\n")], docs, pipeline)
    assert other.added == ["uploads/z-2"]


def test_bad_files_are_reported_and_good_ones_still_added(library, tmp_path):
    docs, _, pipeline = library
    files = [
        _upload(tmp_path, "virus.exe", b"MZ"),
        _upload(tmp_path, "broken.pdf", b"%PDF-1.4\nthis is not really a pdf"),
        _upload(tmp_path, "ok.md", ZORATINIB.encode()),
    ]
    result = add_documents(files, docs, pipeline)
    assert result.added == ["uploads/ok"]
    assert len(result.errors) == 2 and result.errors[1].startswith("broken.pdf: ")
    assert sorted(p.name for p in (docs / "uploads").iterdir()) == ["ok.md"]


def test_failed_indexing_keeps_the_existing_index_and_removes_the_copy(library, tmp_path):
    docs, index_dir, pipeline = library

    class CrashingEmbedder(FakeEmbedder):
        def embed_passages(self, texts):
            raise RuntimeError("simulated crash while embedding")

    pipeline.embedder = CrashingEmbedder()
    before = _index_bytes(index_dir)
    result = add_documents([_upload(tmp_path, "new.txt", ZORATINIB.encode())], docs, pipeline)
    assert result.added == [] and "Indexing failed, nothing was added" in result.errors[0]
    assert "simulated crash" in result.errors[0]
    assert _index_bytes(index_dir) == before
    assert not (docs / "uploads").exists()  # the folder the upload made goes too: docs/ is as it was
    assert "佐拉替尼" not in "".join(d.text for d in pipeline.documents.values())


def test_an_index_that_cannot_be_reopened_after_the_commit_says_the_files_were_added(
    library, tmp_path, monkeypatch
):
    docs, index_dir, pipeline = library

    def broken(warm=False):
        raise OSError("simulated: the new index could not be read")

    monkeypatch.setattr(pipeline, "reload", broken)
    result = add_documents([_upload(tmp_path, "new.txt", ZORATINIB.encode())], docs, pipeline)
    assert result.added == ["uploads/new"]  # committed: the file stays and the index on disk has it
    assert "restart the app" in result.errors[0] and "simulated" in result.errors[0]
    assert (docs / "uploads" / "new.txt").exists()
    assert "uploads/new" in {json.loads(line)["doc_id"] for line in (index_dir / "documents.jsonl").open()}
    # The next upload reopens the newer index first, instead of failing its commit as "rebuilt
    # during the upload", and the first upload's paper is searchable with it.
    monkeypatch.undo()
    again = add_documents([_upload(tmp_path, "again.md", ZORATINIB.encode() + b"\nv2\n")], docs, pipeline)
    assert again.added == ["uploads/again"] and again.errors == []
    assert {"uploads/new", "uploads/again"} <= set(pipeline.documents)


def test_an_upload_refuses_at_once_when_the_newer_index_cannot_be_opened(library, tmp_path, monkeypatch):
    docs, index_dir, pipeline = library
    manifest = json.loads((index_dir / "manifest.json").read_text())
    manifest["built_at"] = "2000-01-01T00:00:00"  # a newer build than the one answering, as after `rag index`
    (index_dir / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(pipeline, "reload", lambda warm=False: (_ for _ in ()).throw(OSError("unreadable")))
    result = add_documents([_upload(tmp_path, "new.txt", ZORATINIB.encode())], docs, pipeline)
    assert result.added == [] and "restart the app" in result.errors[0] and "unreadable" in result.errors[0]
    assert not (docs / "uploads").exists()  # nothing copied


def test_uploads_are_refused_when_the_index_came_from_another_folder(library, tmp_path):
    _, _, pipeline = library
    other = tmp_path / "elsewhere"
    other.mkdir()
    result = add_documents([_upload(tmp_path, "a.txt", ZORATINIB.encode())], other, pipeline)
    assert "Adding documents is off: the index was built from" in result.errors[0]
    assert not (other / "uploads").exists()


# --- app wiring ----------------------------------------------------------------------------------


def test_app_exposes_only_the_ask_endpoint(library):
    import app

    docs, _, pipeline = library
    demo = app.build_app(pipeline, docs)
    public = [fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"]
    assert public == ["ask"]


def test_parse_auth():
    import app

    assert app.parse_auth("ann:s3:cret") == ("ann", "s3:cret")
    assert app.parse_auth(None) is None
    with pytest.raises(ValueError, match="--auth must look like user:password"):
        app.parse_auth("ann")


def test_core_does_not_import_gradio():
    code = (
        "import sys, rag.pipeline, rag.cli, rag.indexing.index, rag.retrieve.retriever, rag.ingest.loading\n"
        "assert 'gradio' not in sys.modules, 'rag/ imports gradio'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)

"""Big and bad inputs: the per-file limit, duplicate texts, links out of the folder, UTF-16 uploads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.answer.compose import AnswerSettings
from rag.indexing.index import Index, build_index
from rag.pipeline import Pipeline
from rag.settings import load_settings
from webui.uploads import add_documents

from .conftest import EN_DOC, FakeEmbedder

NEW_DOC = (
    "佐拉替尼的一期研究\n\n摘要\n佐拉替尼是一种虚构的口服激酶抑制剂。推荐剂量为每日两次、每次137毫克。\n"
)


def _pipeline(index_dir: Path) -> Pipeline:
    return Pipeline.load(index_dir, embedder=FakeEmbedder(), answer_settings=AnswerSettings(min_score=0.1))


def _upload(tmp_path: Path, name: str, data: bytes) -> tuple[str, Path]:
    tmp = tmp_path / f"gradio-{name}"
    tmp.write_bytes(data)
    return name, tmp


def test_a_file_over_the_limit_is_refused_with_the_limit_and_the_fix(tiny_corpus, tmp_path):
    (tiny_corpus / "huge.txt").write_text("血小板计数。" * 400, encoding="utf-8")  # 2,400 characters
    report = build_index(tiny_corpus, tmp_path / "index", FakeEmbedder(), progress=False, max_file_chars=2000)
    [error] = [e for e in report.errors if e.path.endswith("huge.txt")]
    assert "2,400 characters, more than the limit of 2,000 (setting ingest.max_file_chars)" in error.message
    assert "--set ingest.max_file_chars=N" in error.message
    assert "huge" not in Index.load(tmp_path / "index").documents and report.n_documents == 3
    # Raised, it goes in (and the other papers are not embedded again).
    again = build_index(tiny_corpus, tmp_path / "index", FakeEmbedder(), progress=False, max_file_chars=3000)
    assert again.added == ["huge"] and again.unchanged and not again.errors


def test_a_50_mb_text_file_is_refused_before_it_is_read(tiny_corpus, tmp_path, monkeypatch):
    import rag.ingest.loading as loading

    with open(tiny_corpus / "dump.txt", "wb") as f:  # 50 MB: far over the packaged 1,000,000 characters
        f.write(("血小板计数。" * 10_000 + "\n").encode() * 278)
    read = []
    real = loading.read_raw_text
    monkeypatch.setattr(
        loading, "read_raw_text", lambda path, *a, **k: read.append(path.name) or real(path, *a, **k)
    )
    report = build_index(tiny_corpus, tmp_path / "index", FakeEmbedder(), progress=False)
    [error] = [e for e in report.errors if e.path.endswith("dump.txt")]
    assert "refused unread" in error.message and "ingest.max_file_chars=N" in error.message
    assert "the 1,000,000 characters allowed" in error.message and "未读取即拒绝" in error.message
    assert "dump.txt" not in read and len(read) == 3  # the other papers were read and indexed
    assert report.n_documents == 3 and "dump" not in Index.load(tmp_path / "index").documents
    # Under 4 bytes a character of the limit, a long file is read and judged by its characters.
    (tiny_corpus / "dump.txt").write_text("血小板计数。" * 400, encoding="utf-8")  # 7,200 bytes, 2,400 chars
    report = build_index(tiny_corpus, tmp_path / "index", FakeEmbedder(), progress=False, max_file_chars=2000)
    [error] = [e for e in report.errors if e.path.endswith("dump.txt")]
    assert "2,400 characters, more than the limit of 2,000" in error.message
    # The build's limit reaches the size check: 7,200 bytes are over 4 × 1,000, refused unread.
    report = build_index(tiny_corpus, tmp_path / "index", FakeEmbedder(), progress=False, max_file_chars=1000)
    [error] = [e for e in report.errors if e.path.endswith("dump.txt")]
    assert "7,200 bytes" in error.message and "refused unread" in error.message


def test_an_upload_under_a_raised_limit_is_not_refused_by_its_size(tiny_corpus):
    from webui.uploads import UploadError, save_upload

    data = b"The platelet count was normal.\n" * 140_000  # 4,480,000 bytes and characters
    with pytest.raises(UploadError, match="refused unread"):  # over 4 bytes a character of 1,000,000
        save_upload("long.txt", data, tiny_corpus, max_chars=1_000_000)
    assert not list((tiny_corpus / "uploads").glob("long*"))
    # The index raised its limit: the upload is read and judged by its characters.
    path = save_upload("long.txt", data, tiny_corpus, max_chars=5_000_000)
    assert path.read_bytes() == data


def test_the_limit_is_a_setting_with_a_unit():
    loaded = load_settings(overrides={"ingest.max_file_chars": 5000})
    assert loaded.settings.ingest.max_file_chars == 5000 and loaded.sources["ingest.max_file_chars"]
    assert load_settings().settings.ingest.max_file_chars == 1_000_000  # the packaged value
    with pytest.raises(ValueError, match="max_file_chars must be at least 1"):
        load_settings(overrides={"ingest.max_file_chars": 0})


def test_an_upload_over_the_limit_is_refused_before_indexing(fake_index, tiny_corpus, tmp_path):
    pipeline = Pipeline.load(fake_index, embedder=FakeEmbedder(), overrides={"ingest.max_file_chars": 100})
    result = add_documents([_upload(tmp_path, "long.txt", ("长句子。" * 60).encode())], tiny_corpus, pipeline)
    assert result.added == [] and "100 characters allowed" in result.errors[0]  # 720 bytes: refused unread
    assert not (tiny_corpus / "uploads").exists()
    # 360 bytes (under 4 × 100) are read, then refused for their 120 characters.
    result = add_documents([_upload(tmp_path, "long.txt", ("长句子。" * 30).encode())], tiny_corpus, pipeline)
    assert result.added == [] and "120 characters, more than the limit of 100" in result.errors[0]
    assert not list((tiny_corpus / "uploads").glob("long*"))


def test_the_same_text_under_two_names_is_indexed_once_and_reported(tiny_corpus, tmp_path):
    (tiny_corpus / "copy-of-angiosarcoma.md").write_text(EN_DOC, encoding="utf-8")
    (tiny_corpus / "crlf-copy.txt").write_bytes(EN_DOC.replace("\n", "\r\n").encode())  # same once normalised
    report = build_index(tiny_corpus, tmp_path / "index", FakeEmbedder(), progress=False)
    # None was indexed before: the first by doc id stays.
    assert sorted(report.duplicates) == [
        ("crlf-copy", "copy-of-angiosarcoma"),
        ("en-angiosarcoma", "copy-of-angiosarcoma"),
    ]
    assert report.n_documents == 3
    assert "has the same text as" in report.summary()
    index = Index.load(tmp_path / "index")
    assert [d["doc_id"] for d in index.manifest["duplicates"]] == sorted(d for d, _ in report.duplicates)
    assert sum(1 for c in index.chunks if "Everolimus" in c.text) == 1


def test_an_upload_duplicating_an_indexed_paper_is_reported_and_not_kept(fake_index, tiny_corpus, tmp_path):
    pipeline = _pipeline(fake_index)
    result = add_documents([_upload(tmp_path, "renamed.md", EN_DOC.encode())], tiny_corpus, pipeline)
    assert result.added == []
    assert "uploads/renamed has the same text as en-angiosarcoma" in result.errors[0]
    assert not (tiny_corpus / "uploads" / "renamed.md").exists()
    assert "uploads/renamed" not in pipeline.documents


def test_a_link_out_of_the_docs_folder_is_not_followed(tiny_corpus, tmp_path):
    secret = tmp_path / "outside" / "passwd.txt"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    inside = tiny_corpus / "inside-link.txt"
    os.symlink(tiny_corpus / "zh-thrombosis.txt", inside)  # a link within the folder still works
    os.symlink(secret, tiny_corpus / "passwd.txt")
    report = build_index(tiny_corpus, tmp_path / "index", FakeEmbedder(), progress=False)
    [error] = [e for e in report.errors if e.path.endswith("passwd.txt")]
    assert f"a link to {secret}, outside the documents folder: not followed" in error.message
    documents = Index.load(tmp_path / "index").documents
    assert "passwd" not in documents and not any("root:x" in d.text for d in documents.values())
    assert ("zh-thrombosis", "inside-link") in report.duplicates and "inside-link" in documents


def test_a_link_indexed_by_an_older_build_is_removed(tiny_corpus, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("The vault code is 1234.\n", encoding="utf-8")
    link = tiny_corpus / "vault.txt"
    link.write_text(secret.read_text(), encoding="utf-8")  # as an older build read through the link
    build_index(tiny_corpus, tmp_path / "index", FakeEmbedder(), progress=False)
    link.unlink()
    os.symlink(secret, link)
    report = build_index(tiny_corpus, tmp_path / "index", FakeEmbedder(), progress=False)
    assert "vault" in report.removed and "vault" not in Index.load(tmp_path / "index").documents


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_an_upload_accepts_utf16_text_as_rag_index_does(fake_index, tiny_corpus, tmp_path, encoding):
    pipeline = _pipeline(fake_index)
    result = add_documents([_upload(tmp_path, "wide.txt", NEW_DOC.encode(encoding))], tiny_corpus, pipeline)
    assert result.added == ["uploads/wide"], result.errors
    assert pipeline.documents["uploads/wide"].text.startswith("佐拉替尼的一期研究")
    answer = pipeline.ask("佐拉替尼的推荐剂量是多少？", k=3)
    assert answer.quotes and answer.quotes[0].doc_id == "uploads/wide"


def test_an_upload_accepts_word_and_html_papers_as_rag_index_does(fake_index, tiny_corpus, tmp_path):
    import io

    import docx

    paper = docx.Document()
    paper.add_paragraph("佐拉替尼的一期研究")
    paper.add_paragraph("佐拉替尼是一种虚构的口服激酶抑制剂。推荐剂量为每日两次、每次137毫克。")
    buffer = io.BytesIO()
    paper.save(buffer)
    page = "<html><body><h1>Hydroxyurea note</h1><p>Hydroxyurea lowers the platelet count.</p></body></html>"
    pipeline = _pipeline(fake_index)
    files = [_upload(tmp_path, "word.docx", buffer.getvalue()), _upload(tmp_path, "page.html", page.encode())]
    result = add_documents(files, tiny_corpus, pipeline)
    assert result.added == ["uploads/word", "uploads/page"], result.errors
    assert "137毫克" in pipeline.documents["uploads/word"].text
    assert "platelet count" in pipeline.documents["uploads/page"].text

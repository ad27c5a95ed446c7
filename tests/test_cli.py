from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

import rag.pipeline
from rag.cli import main

from .conftest import DOCS, FakeEmbedder

ASK_KEYS = {"question", "lang", "abstained", "answer", "quotes", "hits"}
QUOTE_KEYS = {"n", "doc_id", "title", "section", "start", "end", "text", "page", "ocr"}
HIT_KEYS = {"rank", "chunk_id", "doc_id", "title", "section", "start", "end", "score", "text", "page", "ocr"}


@pytest.fixture
def fake_model(monkeypatch):
    monkeypatch.setattr(rag.pipeline, "embedder_for", lambda built, model, runtime: FakeEmbedder())


def test_ask_json_schema(fake_index, fake_model, capsys):
    assert main(["ask", "低分子肝素是什么？", "--index", str(fake_index), "--json", "--k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == ASK_KEYS | {"notes", "refusal"}  # extra keys; the spec'd ones stay
    assert isinstance(out["notes"], list)
    # A refusal says which rule refused, with its note and its message in the question's language.
    assert out["refusal"] is None or set(out["refusal"]) == {"code", "note", "message"}
    assert out["lang"] == "zh" and len(out["hits"]) <= 3
    assert all(set(h) == HIT_KEYS for h in out["hits"]) and all(set(q) == QUOTE_KEYS for q in out["quotes"])
    assert [h["rank"] for h in out["hits"]] == list(range(1, len(out["hits"]) + 1))


def test_inspect_json_schema(fake_index, capsys):
    assert main(["inspect", "--index", str(fake_index), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"model", "chunks", "documents"}
    assert out["model"] == "fake-hash-64"
    docs = {d["doc_id"]: d for d in out["documents"]}
    assert set(docs["zh-thrombosis"]) == {
        "doc_id", "title", "path", "chars", "chunks", "pages", "ocr_pages", "sections",
    }  # fmt: skip
    assert docs["zh-thrombosis"]["pages"] is None and docs["zh-thrombosis"]["ocr_pages"] == []
    assert docs["zh-thrombosis"]["sections"] == ["摘要", "1 引言", "2 治疗"]
    assert sum(d["chunks"] for d in out["documents"]) == out["chunks"]


def test_missing_index_says_how_to_build_it(tmp_path, capsys):
    assert main(["inspect", "--index", str(tmp_path / "none")]) == 2
    assert "rag index" in capsys.readouterr().err


def test_empty_question_is_an_error_not_a_crash(fake_index, fake_model, capsys):
    assert main(["ask", "  ", "--index", str(fake_index)]) == 2
    assert "empty" in capsys.readouterr().err


def _rag(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.mark.slow
def test_cli_end_to_end_on_bundled_docs(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    index = tmp_path / "index"
    built = _rag("index", "--docs", str(docs), "--index", str(index), "--quiet")
    assert built.returncode == 0, built.stderr
    assert "5 documents" in built.stdout
    # The bundled papers are the reference of the pseudo-question calibration: their threshold stays.
    moved = re.search(r"abstention thresholds: zh ([\d.]+) \(packaged 0.9, moved by", built.stdout)
    assert moved and abs(float(moved.group(1)) - 0.9) <= 0.002, built.stdout
    again = _rag("index", "--docs", str(docs), "--index", str(index), "--quiet")
    # nothing changed, nothing re-embedded (chunks, sentences or cross-lingual vectors)
    assert "(0 embedded, 0 sentence/cross-lingual texts embedded)" in again.stdout

    inspected = json.loads(_rag("inspect", "--index", str(index), "--json").stdout)
    sections = {d["doc_id"]: d["sections"] for d in inspected["documents"]}
    assert sections["poems-syndrome-lenalidomide-ahsct"] == ["(引言)", "1 病例资料", "2 讨论"]

    for question in ("特鲁索综合征的首选治疗是什么？", "What is the first-line drug for Trousseau syndrome?"):
        asked = _rag("ask", question, "--index", str(index), "--json")
        assert asked.returncode == 0, asked.stderr
        out = json.loads(asked.stdout)
        assert out["lang"] == ("zh" if question.startswith("特") else "en")
        heparin = [
            h for h in out["hits"] if "低分子肝素" in h["text"] or "low molecular weight heparin" in h["text"]
        ]
        assert heparin and heparin[0]["rank"] <= 3
        docs_text = {d["doc_id"]: d for d in inspected["documents"]}
        assert heparin[0]["doc_id"] in docs_text


def test_eval_end_to_end_on_a_small_gold_file(fake_index, fake_model, tmp_path, capsys):
    gold = tmp_path / "gold.jsonl"
    rows = [
        {
            "id": "q1",
            "question": "低分子肝素",
            "lang": "zh",
            "answerable": True,
            "evidence": ["低分子肝素"],
            "answer": ["低分子肝素"],
        },
        {
            "id": "q2",
            "question": "oral ulcers adverse event",
            "lang": "en",
            "answerable": True,
            "evidence": ["Oral ulcers were the main adverse event"],
            "answer": ["oral ulcers"],
        },
        {
            "id": "q3",
            "question": "Who won the 2022 World Cup?",
            "lang": "en",
            "answerable": False,
            "evidence": [],
            "answer": [],
        },
    ]
    gold.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    out_dir = tmp_path / "out"
    code = main(["eval", "--gold", str(gold), "--index", str(fake_index), "--json", "--out", str(out_dir)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 3
    assert set(report["modes"]) >= {"dense", "bm25", "hybrid"}
    assert 0.0 <= report["retrieval"]["recall@5"] <= 1.0
    assert report["answer"]["quote_verified"] == 1.0
    assert sorted(p.name for p in out_dir.iterdir()) == ["metrics.json", "recall.png", "report.md"]


def test_eval_reports_a_malformed_gold_line(fake_index, fake_model, tmp_path, capsys):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "q1"}\n', encoding="utf-8")
    assert main(["eval", "--gold", str(gold), "--index", str(fake_index)]) == 2
    assert "line 1" in capsys.readouterr().err


@pytest.fixture
def fake_llm(monkeypatch):
    """--llm-model builds LangChain's fake chat model, which answers with a quote found in no paper."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    import rag.answer.llm

    made = []

    def make_chat_model(base_url, model, api_key=None, timeout_s=30, temperature=0):
        made.append(model)
        return FakeListChatModel(responses=["「低分子肝素可以治愈所有癌症。」[1]"])

    monkeypatch.setattr(rag.answer.llm, "make_chat_model", make_chat_model)
    return made


def test_ask_with_an_llm_reports_the_fallback_in_notes(fake_index, fake_model, fake_llm, capsys):
    # The packaged thresholds are for the real model: on this fake index, never abstain, so the LLM runs.
    (fake_index / "settings.json").write_text(
        json.dumps({"answer": {"min_score": 0.0}, "abstain": {"zh": 0.0, "en": 0.0}}), encoding="utf-8"
    )
    argv = ["ask", "低分子肝素是什么？", "--index", str(fake_index), "--json", "--llm-model", "fake"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert fake_llm and all(m == "fake" for m in fake_llm)
    assert any(n.startswith("未采用大模型答案") for n in out["notes"])
    assert "治愈所有癌症" not in out["answer"]
    assert "note: 未采用大模型答案" in captured.err


def test_translate_queries_needs_an_llm(fake_index, fake_model, capsys):
    assert main(["ask", "What is VTE?", "--index", str(fake_index), "--translate-queries"]) == 2
    assert "--translate-queries needs a chat model" in capsys.readouterr().err


def test_eval_notes_the_generator_and_translation(fake_index, fake_model, fake_llm, tmp_path, capsys):
    gold = tmp_path / "gold.jsonl"
    row = {"id": "q1", "question": "What is VTE?", "lang": "en", "answerable": True}
    gold.write_text(json.dumps({**row, "evidence": ["VTE"], "answer": ["VTE"]}), encoding="utf-8")
    argv = ["eval", "--gold", str(gold), "--index", str(fake_index), "--modes", "bm25"]
    assert main([*argv, "--llm-model", "fake", "--translate-queries"]) == 0
    out = capsys.readouterr().out
    assert "note: answers by LLMGenerator(" in out and "translated for retrieval: on" in out
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pipeline"]["generator"] == "extractive"


def test_eval_notes_the_abstention_thresholds_it_ran_with(fake_index, fake_model, tmp_path, capsys):
    (fake_index / "settings.json").write_text(
        json.dumps({"answer": {"min_score": 0.0}, "abstain": {"zh": 0.5, "en": 0.25}}), "utf-8"
    )
    gold = tmp_path / "gold.jsonl"
    row = {"id": "q1", "question": "What is VTE?", "lang": "en", "answerable": True}
    gold.write_text(json.dumps({**row, "evidence": ["VTE"], "answer": ["VTE"]}), encoding="utf-8")
    assert main(["eval", "--gold", str(gold), "--index", str(fake_index), "--modes", "bm25"]) == 0
    assert "abstention thresholds zh 0.5, en 0.25" in capsys.readouterr().out


def test_index_takes_the_file_limit_from_set(tiny_corpus, tmp_path, monkeypatch, capsys):
    import rag.encode.embedding

    monkeypatch.setattr(rag.encode.embedding, "SentenceTransformerEmbedder", lambda *a, **kw: FakeEmbedder())
    index = tmp_path / "index"
    args = ["index", "--docs", str(tiny_corpus), "--index", str(index), "--quiet", "--no-crosslingual"]
    assert main([*args, "--set", "ingest.max_file_chars=200"]) == 0
    out = capsys.readouterr()
    assert "2 documents" in out.out  # the 299-character English paper is over the limit
    assert "more than the limit of 200 (setting ingest.max_file_chars)" in out.err
    assert main(args) == 0  # the packaged limit (1,000,000) lets it in
    assert "added 1" in capsys.readouterr().out

"""Smoke tests of every benchmark section at tiny sizes with the fake embedder.

They check the shape of what each section reports, never a timing: speed is the benchmark's output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.build import run_build
from bench.coldstart import run_coldstart
from bench.common import Section, Table, Target, fmt, nice_floor, spread
from bench.encoder import run_encoder
from bench.langchain_baseline import run_langchain
from bench.latency import EMBED_XL, PIECES, forget_queries, phrase_session, run_latency
from bench.memory import run_memory
from bench.report import text_section, write
from bench.run import parse_args
from bench.scale import ScaleConfig, run_scale
from bench.scale_vectors import VectorRow, estimate_build_s, scale_vectors
from bench.scale_verdict import n_at, threshold
from bench.synthetic import clustered_unit_vectors, zipf_documents, zipf_vocab
from rag.evaluate.gold import GoldItem
from rag.indexing.index import build_index
from rag.pipeline import Pipeline

from .conftest import REPO, FakeEmbedder
from .helpers_index import write_corpus

FAKE = "tests.conftest:FakeEmbedder"  # what the child processes instantiate
STATUSES = {"PASS", "MISS"}
QUESTIONS = ["低分子肝素 抗凝治疗", "oral ulcers partial response"]

# A stand-in for app.py: answers 200 on / at the port it is given, like the real app's flags.
FAKE_APP = """
import argparse, http.server
ap = argparse.ArgumentParser()
for flag in ("--index", "--docs", "--host", "--port"):
    ap.add_argument(flag)
a = ap.parse_args()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
http.server.HTTPServer(("127.0.0.1", int(a.port)), H).serve_forever()
"""


def assert_tables(sec: Section) -> None:
    assert sec.tables and sec.breakdown
    for table in sec.tables:
        assert table.rows and all(len(row) == len(table.columns) for row in table.rows)
    assert all(t.status in STATUSES for t in sec.targets)


def test_latency_reports_every_mode_and_piece(fake_index, fake_embedder):
    p = Pipeline.load(fake_index, embedder=fake_embedder)
    sec = run_latency(p, QUESTIONS, repeats=1, warmup=1)
    assert_tables(sec)
    assert [row[0] for row in sec.tables[0].rows][:3] == [
        "retrieve dense",
        "retrieve bm25",
        "retrieve hybrid",
    ]
    assert set(PIECES) - {EMBED_XL} <= set(
        sec.data["stats_ms"]
    )  # the fake index has no cross-lingual vectors
    assert sec.data["stats_ms"]["ask"]["n"] == len(QUESTIONS)


def test_english_questions_are_timed_with_and_without_the_phrases_of_earlier_ones(xl_pipeline):
    pipeline, _ = xl_pipeline
    questions = ["What is venous thromboembolism?", "How is venous thromboembolism treated?", "肝素 抗凝"]
    own = pipeline.analyser.phrases
    series = phrase_session(pipeline, questions)
    assert len(series["new"]) == len(series["kept"]) == 2  # the English questions only
    # The first question finds nothing kept; the second finds "venous", "thromboembolism" and the pair.
    assert series["found"] == [0.0, 3 / 5]
    assert pipeline.analyser.phrases is own and len(own) == 0  # the pipeline's own cache is left alone
    sec = run_latency(pipeline, questions, repeats=1, warmup=1)
    assert EMBED_XL in sec.data["stats_ms"]  # the cross-lingual piece, timed with the phrases
    assert "english_ask_phrases" in sec.data and any("phrases kept" in t.title for t in sec.tables)


def test_forget_queries_empties_the_query_cache(fake_index, fake_embedder):
    p = Pipeline.load(fake_index, embedder=fake_embedder)
    p.retrieve(QUESTIONS[0], 3, "dense")
    calls = len(fake_embedder.calls)
    p.retrieve(QUESTIONS[0], 3, "dense")  # may come from the pipeline's query cache
    forget_queries(p)
    p.retrieve(QUESTIONS[0], 3, "dense")
    assert len(fake_embedder.calls) > calls  # after forgetting, the question is embedded again


def test_coldstart_times_a_child_and_the_app(fake_index, tiny_corpus, tmp_path):
    app = tmp_path / "app.py"
    app.write_text(FAKE_APP, encoding="utf-8")
    sec = run_coldstart(
        sys.executable,
        REPO,
        fake_index,
        tiny_corpus,
        (QUESTIONS[0], QUESTIONS[1]),
        app=app,
        embedder_spec=FAKE,
    )
    assert_tables(sec)
    run = sec.data["runs"][0]
    assert run["first_answer_s"] >= run["index_load_s"] > 0
    assert sec.data["app"][0]["ready_s"] > 0


def test_build_reports_throughput_and_reindex(tiny_corpus, fake_embedder, tmp_path):
    xl = FakeEmbedder(dim=32, model_id="fake-xl-32")  # stands in for the cross-lingual encoder
    sec = run_build(tiny_corpus, fake_embedder, tmp_path / "work", repeats=1, crosslingual=xl)
    assert_tables(sec)
    steps = [row[0] for row in sec.tables[0].rows]
    assert (
        steps[:2] == ["full build", "raw encode: e5 chunks"] and "raw encode: cross-lingual chunks" in steps
    )
    assert steps[-2:] == ["re-index, nothing changed", "re-index, one document changed"]
    assert len(sec.targets) == 3
    assert sec.data["one_changed_embedded"] > 0  # the appended sentence was re-embedded


def test_scale_rows_for_every_kind_and_size(tiny_corpus, fake_index, tmp_path):
    cfg = ScaleConfig(
        sizes=(300,), uniform_sizes=(300,), bm25_sizes=(100, 200), dim=8, n_queries=5, budget_s=600,
        rest={"embed question (e5)": {"p50": 5.0, "p95": 9.0}, "BM25": {"p50": 1.0, "p95": 2.0}},
    )  # fmt: skip
    sec = run_scale(cfg, tmp_path, tiny_corpus, fake_index)
    assert_tables(sec)
    rows = sec.data["vectors"]
    assert {(r["data"], r["kind"]) for r in rows} == {
        (d, k) for d in ("clustered", "uniform") for k in ("flat", "hnsw", "ivf", "ivfpq")
    }
    assert all(r["recall10"] == 1.0 for r in rows if r["kind"] == "flat")
    assert [b["n"] for b in sec.data["bm25"]] == [100, 200]
    assert "threshold" in sec.data
    assert sec.data["index_folder"]["chunks"] > 0 and "manifest.json" in sec.data["index_folder"]["bytes"]


def test_scale_skips_a_build_over_budget(tmp_path):
    x = clustered_unit_vectors(310, 8, np.random.default_rng(0))
    rows = scale_vectors("clustered", x[:300], x[300:], ["flat", "hnsw"], tmp_path, 0.0, {"hnsw": {100: 1.0}})
    assert rows[0].build_s is not None and "raise --scale-budget" in rows[1].skipped


def test_ivfpq_estimate_caps_pq_training():
    history = {"ivf": {10_000: 1.0}, "ivfpq": {10_000: 11.0}}
    est, _ = estimate_build_s("ivfpq", 1_000_000, history)
    ivf_part = 1.0 * (1_000_000 * 4000) / (10_000 * 256)  # n x nlist
    assert est == pytest.approx(ivf_part + 10.0 * 65_536 / 10_000)
    assert estimate_build_s("flat", 5_000, history) is None  # nothing smaller measured


def test_threshold_from_a_linear_flat_curve():
    rows = [
        VectorRow("clustered", "flat", n, "exact", p95_ms=n / 10_000) for n in (10_000, 100_000, 1_000_000)
    ]
    rest = {"embed question (e5)": {"p50": 15.0, "p95": 50.0}, "BM25": {"p50": 5.0, "p95": 9.0}}
    rec = threshold(rows, rest)  # 60 - 20 ms (p50s) = 40 ms for flat, reached at 400k
    assert rec["n_max"] == pytest.approx(400_000)
    assert rec["recommended"] == 200_000
    assert rec["by_budget"][100.0] == pytest.approx(1_000_000)
    assert threshold(rows, {"embed question (e5)": {"p50": 70.0}})["recommended"] is None  # no room left


def test_n_at_interpolates_and_extrapolates():
    points = [(10_000, 1.0), (100_000, 10.0)]
    assert n_at(points, 0.5) == pytest.approx(5_000)
    assert n_at(points, 5.5) == pytest.approx(55_000)
    assert n_at(points, 20.0) == pytest.approx(200_000)
    assert n_at([(10_000, 1.0)], 5.0) is None


def test_langchain_side_by_side(tmp_path, fake_embedder):
    docs = write_corpus(tmp_path / "docs")
    build_index(docs, tmp_path / "index", fake_embedder, progress=False)
    p = Pipeline.load(tmp_path / "index", embedder=fake_embedder)
    gold = [
        GoldItem("q1", "ALK重排与VTE的风险", "zh", True, ("约为其他患者的3倍",), ("3倍",)),
        GoldItem(
            "q2", "What drug was given after paclitaxel?", "en", True, ("everolimus 10 mg",), ("everolimus",)
        ),
        GoldItem("q3", "Unanswerable?", "en", False, (), ()),
    ]
    sec = run_langchain(p, docs, fake_embedder, gold)
    assert_tables(sec)
    assert {row[0] for row in sec.tables[0].rows} == {
        "LangChain tutorial",
        "ours dense",
        "ours hybrid",
        "ours ask() hits",
    }
    assert sec.data["systems"]["ours hybrid"]["all"]["n"] == 2  # answerable only
    assert sec.data["tutorial"]["chunks"] > 0


def test_encoder_compares_runtimes_on_the_same_texts(fake_embedder):
    class Flipped(type(fake_embedder)):
        def embed_passages(self, texts):
            return -super().embed_passages(texts)  # opposite vectors: the cosine must show it

    sec = run_encoder({"a": fake_embedder, "b": fake_embedder}, ["肺栓塞", "What is VTE?"], ["x y", "z"], 2)
    assert_tables(sec)
    assert [row[0] for row in sec.tables[0].rows] == ["a", "b"]
    assert sec.data["query_ms"]["a"]["n"] == 4
    assert sec.data["min_cosine"] == pytest.approx(1.0)
    flipped = run_encoder({"a": fake_embedder, "b": Flipped()}, ["q"], ["x y"], 1)
    assert flipped.data["min_cosine"] == pytest.approx(-1.0)


def test_memory_falls_back_to_a_pipeline_process(fake_index, tiny_corpus, tmp_path):
    sec = run_memory(
        sys.executable, REPO, fake_index, tiny_corpus, QUESTIONS, 3, tmp_path / "no-app.py", FAKE
    )
    assert_tables(sec)
    assert any("does not exist yet" in n for n in sec.notes)
    readings = sec.data["readings_bytes"]
    assert list(readings)[-1] == "after all queries"
    assert all(r["VmHWM"] >= r["VmRSS"] > 0 for r in readings.values())


def test_build_memory_builds_each_size_in_a_fresh_process(tmp_path):
    from bench.build_memory import copied_corpus, run_build_memory

    docs = write_corpus(tmp_path / "docs")
    copies = copied_corpus(docs, tmp_path / "copied", 3)
    assert len(list(copies.iterdir())) == 9
    sec = run_build_memory(sys.executable, REPO, docs, (1, 3), tmp_path / "work")
    assert_tables(sec)
    small, large = sec.data["builds"]
    assert (small["documents"], large["documents"]) == (3, 9), "no copy is dropped as a duplicate"
    assert large["chunks"] >= 3 * small["chunks"] - 3 and large["sentences"] > small["sentences"]
    assert all(r["hwm"] >= r["peak_anon"] > r["base"] > 0 for r in sec.data["builds"])
    # Not 3x: the lexicons hold each word once, however many copies write it.
    assert large["index_bytes"] > 1.5 * small["index_bytes"] > 0
    assert "% of the index's" in sec.targets[0].measured
    assert not list((tmp_path / "work").iterdir()), "corpora and indexes are removed"


def test_report_files(tmp_path):
    sec = Section(
        "demo", "Demo", [Table("t", ["a", "b"], [["x|y", 1]])], [Target("goal", "1 ms", "<= 2 ms", True)]
    )
    sec.breakdown.append("all of it")
    write(tmp_path, [sec], {"mode": "quick"})
    data = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert data["sections"]["demo"]["targets"][0]["status"] == "PASS"
    assert "x\\|y" in (tmp_path / "bench.md").read_text(encoding="utf-8")
    assert "[PASS] goal" in text_section(sec)


def test_helpers():
    assert [nice_floor(x) for x in (0.5, 7, 19, 400_000)] == [0, 5, 10, 200_000]
    assert fmt(None) == "n/a" and fmt(12.345) == "12.3" and fmt(1234) == "1,234"
    assert spread(list(range(10)), 3) == [0, 3, 6]
    docs = zipf_documents(20, zipf_vocab(100), np.random.default_rng(0), mean_len=30)
    assert len(docs) == 20 and all(20 <= len(d) <= 40 for d in docs)


def test_cli_rejects_an_unknown_section():
    assert parse_args(["--quick", "--only", "scale"]).sections == ["scale"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "speed"])


def test_paths_resolve():
    assert parse_args([]).index.is_absolute() and isinstance(parse_args([]).out, Path)


def test_concurrency_section_reports_every_run_and_target(fake_index, tiny_corpus):
    from bench.concurrency import run_concurrency
    from rag.answer.compose import AnswerSettings

    def load(index_dir, docs_dir, **options):
        return Pipeline.load(
            index_dir, embedder=FakeEmbedder(), answer_settings=AnswerSettings(min_score=0.1), **options
        )

    questions = [
        "特鲁索综合征的一线治疗药物是什么？",
        "What is everolimus used for?",
        "抗凝治疗首选什么药物？",
    ]
    sec = run_concurrency(
        fake_index, tiny_corpus, questions, 3, 2, 3, llm_timeout=0.5, upload_sentences=40, load=load
    )
    extractive, llm = sec.tables
    assert [r[1] for r in extractive.rows] == [3, 6, 6] and all(r[2] == 0 for r in extractive.rows)
    assert [r[1] for r in llm.rows] == [4, 4, 2, 6]  # 2 others x 2, the hung client's 2, 3 x 2
    hung = sec.data["hung_client"]
    assert hung["p50"] >= 500  # each of its calls waited the LLM timeout, then got the extractive answer
    assert {t.name.split(":")[0] for t in sec.targets} >= {"3 concurrent clients"}
    assert len(sec.targets) == 4 and all(t.passed is not None for t in sec.targets)
    assert not (tiny_corpus / "uploads").exists()  # the bench worked on copies

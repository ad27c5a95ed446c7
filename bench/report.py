"""Render sections as console text, bench.md and bench.json."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import Section, Table


def _width(text: str) -> int:
    # CJK characters take two terminal columns.
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def text_table(table: Table) -> str:
    cells = [table.columns] + [[str(c) for c in row] for row in table.rows]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(table.columns))]
    lines = [table.title]
    for j, row in enumerate(cells):
        lines.append("  ".join(c + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def text_section(sec: Section) -> str:
    out = [f"== {sec.title} ({sec.seconds:.0f} s) =="]
    if sec.skipped:
        return "\n".join([*out, f"skipped: {sec.skipped}"])
    out += [text_table(t) + "\n" for t in sec.tables]
    out += [f"[{t.status}] {t.name}: {t.measured} (target {t.goal})" for t in sec.targets]
    out += [f"Where the time goes: {b}" for b in sec.breakdown]
    out += [f"Note: {n}" for n in sec.notes]
    return "\n".join(out) + "\n"


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(table: Table) -> str:
    lines = [f"**{table.title}**", "", "| " + " | ".join(map(_md_cell, table.columns)) + " |"]
    lines.append("|" + "---|" * len(table.columns))
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in table.rows]
    return "\n".join(lines)


def markdown(sections: list[Section], meta: dict) -> str:
    out = [
        "# Benchmark",
        "",
        " ".join(f"{k}: `{v}`;" for k, v in meta.items() if not isinstance(v, dict)),
        "",
    ]
    targets = [(s, t) for s in sections for t in s.targets]
    if targets:
        out += ["## Targets", "", "| section | target | measured | goal | status |", "|---|---|---|---|---|"]
        out += [
            f"| {s.key} | {_md_cell(t.name)} | {_md_cell(t.measured)} | {_md_cell(t.goal)} | **{t.status}** |"
            for s, t in targets
        ]
        out.append("")
    for sec in sections:
        out += [f"## {sec.title}", ""]
        if sec.skipped:
            out += [f"Skipped: {sec.skipped}", ""]
            continue
        for t in sec.tables:
            out += [md_table(t), ""]
        out += [f"- Where the time goes: {b}" for b in sec.breakdown]
        out += [f"- Note: {n}" for n in sec.notes]
        out.append("")
    return "\n".join(out)


def write(out_dir: Path, sections: list[Section], meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "meta": meta,
        "sections": {
            s.key: asdict(s) | {"targets": [asdict(t) | {"status": t.status} for t in s.targets]}
            for s in sections
        },
    }
    (out_dir / "bench.json").write_text(
        json.dumps(payload, ensure_ascii=False, indent=1, default=str), encoding="utf-8"
    )
    (out_dir / "bench.md").write_text(markdown(sections, meta), encoding="utf-8")

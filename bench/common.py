"""What every benchmark section shares: result types, percentiles, number formatting, timers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.evaluate.metrics import mean, percentile

MS = 1000.0


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class Target:
    """A goal from the brief and whether this run met it (None: not measured in this run)."""

    name: str
    measured: str
    goal: str
    passed: bool | None

    @property
    def status(self) -> str:
        return "n/a" if self.passed is None else ("PASS" if self.passed else "MISS")


@dataclass
class Section:
    key: str
    title: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    breakdown: list[str] = field(default_factory=list)  # sentences computed from the measurements
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # raw numbers for bench.json
    skipped: str | None = None
    seconds: float = 0.0


def stats(values_ms: Iterable[float]) -> dict[str, float | None]:
    """n, p50, p95, p99 and mean of a list of milliseconds (None when empty, as rag.evaluate.metrics does)."""
    xs = list(values_ms)
    return {
        "n": len(xs),
        "p50": percentile(xs, 50),
        "p95": percentile(xs, 95),
        "p99": percentile(xs, 99),
        "mean": mean(xs),
    }


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """(result, milliseconds) of one call."""
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - t0) * MS


def fmt(x: Any, digits: int = 3) -> str:
    """Numbers with `digits` significant figures (no exponent below 1e9); None as n/a."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        if x == 0:
            return "0"
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
        return f"{x:,.{decimals}f}"
    return str(x)


def at_most(name: str, value: float | None, limit: float, unit: str = "ms") -> Target:
    passed = None if value is None else value <= limit
    return Target(name, f"{fmt(value)} {unit}", f"<= {fmt(limit)} {unit}", passed)


def at_least(name: str, value: float | None, limit: float, unit: str = "") -> Target:
    passed = None if value is None else value >= limit
    return Target(name, f"{fmt(value)} {unit}".strip(), f">= {fmt(limit)} {unit}".strip(), passed)


def share(part: float | None, whole: float | None) -> str:
    if part is None or not whole:
        return "n/a"
    return f"{100 * part / whole:.0f}%"


def nice_floor(x: float) -> int:
    """The largest 1-2-5 x 10^k number not above x (a threshold worth writing into code)."""
    if x < 1:
        return 0
    power = 10 ** math.floor(math.log10(x))
    return int(max(m * power for m in (1, 2, 5) if m * power <= x))


def spread(items: Sequence[Any], n: int) -> list[Any]:
    """n items spread evenly over the sequence (so a quick run still mixes both languages)."""
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]

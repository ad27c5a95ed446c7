"""Reading the gold question file (`eval/gold.jsonl`) and matching evidence phrases against text.

One JSON object per line::

    {"id": "q1", "question": "...", "lang": "zh", "answerable": true,
     "evidence": ["verbatim phrase", ...], "answer": ["phrase", ...],
     "doc": "...", "section": "...", "pair": "...", "kind": "..."}

`doc`, `section`, `pair` and `kind` are optional; other extra keys are ignored.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

LANGS = ("zh", "en")
_REQUIRED = ("id", "question", "lang", "answerable", "evidence", "answer")
_OPTIONAL = ("doc", "section", "pair", "kind")


class GoldFormatError(ValueError):
    """A gold file line that does not follow the schema; the message names file, line and problem."""


@dataclass(frozen=True)
class GoldItem:
    id: str
    question: str
    lang: str  # "zh" or "en"
    answerable: bool
    evidence: tuple[str, ...]  # phrases whose presence makes a retrieved chunk relevant
    answer: tuple[str, ...]  # phrases a correct answer should contain
    doc: str = ""
    section: str = ""
    pair: str = ""  # id of the same question in the other language, if any
    kind: str = ""


def match_key(text: str) -> str:
    """Canonical form for phrase matching: NFKC, '⁃' -> '-', lower-case, no whitespace at all.

    Whitespace is dropped entirely because PDF extraction and normalisation put spaces and line
    breaks in different places inside Chinese text and around numbers ("2 . 3", "ALK 基因").
    """
    text = unicodedata.normalize("NFKC", text).replace("\u2043", "-").lower()
    return "".join(text.split())


@lru_cache(maxsize=4096)
def _phrase_keys(phrases: tuple[str, ...]) -> tuple[str, ...]:
    # Cached because the same evidence tuple is matched against every retrieved chunk of a
    # question, in every mode. Empty keys are dropped: "" is a substring of everything.
    return tuple(k for k in (match_key(p) for p in phrases) if k)


def contains_any(text: str, phrases: Iterable[str]) -> bool:
    """True if any phrase occurs in `text`, compared by `match_key` on both sides.

    Phrases that are empty after `match_key` never match.
    """
    keys = _phrase_keys(tuple(phrases))
    if not keys:
        return False
    haystack = match_key(text)
    return any(k in haystack for k in keys)


def load_gold(path: str | Path) -> list[GoldItem]:
    """Read a gold JSONL file strictly; blank lines are skipped and an empty file gives [].

    Raises `GoldFormatError` naming the file, the 1-based line number and the problem.
    """
    path = Path(path)
    items: list[GoldItem] = []
    first_line: dict[str, int] = {}
    # Split bytes on b"\n" rather than str.splitlines(): JSON strings may legally hold U+2028,
    # which splitlines() would treat as a line break and so shift every later line number.
    for n, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        where = f"{path}: line {n}"
        try:
            # utf-8-sig on the first line only: editors on Windows add a BOM.
            line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise GoldFormatError(f"{where}: not UTF-8 ({exc.reason}); save the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldFormatError(f"{where}: bad JSON: {exc.msg} at column {exc.colno}") from None
        item = _parse_item(obj, where)
        if item.id in first_line:
            raise GoldFormatError(f"{where}: duplicate id {item.id!r} (first on line {first_line[item.id]})")
        first_line[item.id] = n
        items.append(item)
    return items


def _parse_item(obj: object, where: str) -> GoldItem:
    if not isinstance(obj, dict):
        raise GoldFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise GoldFormatError(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}")

    for key in ("id", "question"):
        value = obj[key]
        if not isinstance(value, str) or not value.strip():
            raise GoldFormatError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    if obj["lang"] not in LANGS:
        raise GoldFormatError(f"{where}: 'lang' must be 'zh' or 'en', got {obj['lang']!r}")
    # JSON 1/0 would pass a truthiness check; insist on true/false so typos are caught.
    if not isinstance(obj["answerable"], bool):
        raise GoldFormatError(f"{where}: 'answerable' must be true or false, got {obj['answerable']!r}")
    evidence = _str_list(obj, "evidence", where)
    answer = _str_list(obj, "answer", where)
    for phrase in evidence:
        if not match_key(phrase):
            raise GoldFormatError(f"{where}: 'evidence' holds an empty phrase, which would match every chunk")
    if obj["answerable"] and not evidence:
        raise GoldFormatError(
            f"{where}: answerable item {obj['id']!r} has no evidence; add at least one phrase"
        )

    optional = {}
    for key in _OPTIONAL:
        value = obj.get(key, "")
        if not isinstance(value, str):
            raise GoldFormatError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
        optional[key] = value

    return GoldItem(
        id=obj["id"],
        question=obj["question"],
        lang=obj["lang"],
        answerable=obj["answerable"],
        evidence=evidence,
        answer=answer,
        **optional,
    )


def _str_list(obj: dict, key: str, where: str) -> tuple[str, ...]:
    value = obj[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GoldFormatError(f"{where}: {key!r} must be a list of strings, got {value!r}")
    return tuple(value)

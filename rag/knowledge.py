"""Language and domain knowledge kept as data: the words, labels and small pattern pieces under
rag/data/ (layout and keys in rag/data/README.md).

Files are read once, checked against the keys below and returned read-only. A misspelt key, a wrong
type or a domain block for a language with no file fails at import, naming the file and the key, so a
typo cannot quietly switch a rule off. This module imports nothing from the other stages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

TEXT, FLAG, WORDS, CHARS, TABLE = "text", "flag", "words", "chars", "table"


@dataclass(frozen=True)
class Omittable:
    """A key a file may leave out (a language or a domain need not hold every kind of knowledge)."""

    spec: Any


# Keys of rag/data/lang/<code>.json.
LANGUAGE = {
    "word_boundaries": Omittable(FLAG),
    "function_words": Omittable(WORDS),
    "stopwords": Omittable(WORDS),
    "question_words": Omittable(WORDS),
    "yes_no": Omittable(WORDS),
    "anaphors": Omittable(WORDS),
    "proper_noun_tags": Omittable(WORDS),
    "grammar_tags": Omittable(WORDS),
    "part_marks": Omittable(TEXT),
    "part_conjunction": Omittable(TEXT),
    "part_openers": Omittable(WORDS),
    "both_and": Omittable(WORDS),
    "number_words": Omittable(WORDS),
    "dot_abbreviations": Omittable(WORDS),
    "term_boundaries": Omittable({"words": WORDS, "endings": CHARS, "modifiers": WORDS}),
    "sound_classes": Omittable(TABLE),
    "pinyin_classes": Omittable(TABLE),
    "pinyin_vowels": Omittable(TABLE),
    "pinyin_surnames": Omittable(WORDS),
    "measure_numbers": Omittable(WORDS),
    "measures": Omittable([{"kind": TEXT, "asks": WORDS, "units": WORDS, "states": Omittable(WORDS)}]),
}
# Keys of one language's block in rag/data/domain/<name>.json.
DOMAIN_BLOCK = {
    "sections": Omittable(
        {
            "abstract": WORDS,
            "keywords": WORDS,
            "named": WORDS,
            "run_in_bracketed": WORDS,
            "run_in_colon": WORDS,
            "structured": Omittable(WORDS),
            "untitled": TEXT,
            "whole": TEXT,
        }
    ),
    "furniture": Omittable({"lines": WORDS, "labels": WORDS}),
    "disease_names": Omittable(
        {"endings": CHARS, "classes": WORDS, "kind_endings": WORDS, "treatment_prefixes": WORDS}
    ),
    "rates": Omittable(
        {
            "asks": WORDS,
            "asks_phrases": WORDS,
            "percent_words": WORDS,
            "multiples": WORDS,
            "fractions": Omittable(WORDS),
            "not_asks": Omittable(WORDS),
        }
    ),
    "quantities": Omittable({"asks": WORDS, "frequency": Omittable({"asks": WORDS, "states": WORDS})}),
    "acronyms": Omittable({"number_suffixes": WORDS, "not_acronyms": Omittable(WORDS)}),
}
DRUG_STEMS = {"stems": [{"en": WORDS, "zh": WORDS, "zh_other": Omittable(WORDS)}]}


def _files(folder: str) -> list[str]:
    """The names (without .json) of the data files in rag/data/<folder>, sorted."""
    root = resources.files("rag").joinpath("data", folder)
    return sorted(f.name[: -len(".json")] for f in root.iterdir() if f.name.endswith(".json"))


def _read(path: str) -> Any:
    return json.loads(resources.files("rag").joinpath("data", *path.split("/")).read_text("utf-8"))


@cache
def languages() -> tuple[str, ...]:
    """The codes of the languages with a file in rag/data/lang/ ("en", "zh")."""
    return tuple(_files("lang"))


@cache
def domains() -> tuple[str, ...]:
    """The names of the domain files in rag/data/domain/, sorted ("medical", "papers")."""
    return tuple(_files("domain"))


@cache
def language(code: str) -> Mapping[str, Any]:
    """rag/data/lang/<code>.json, checked and read-only."""
    if code not in languages():
        raise ValueError(f"no language file rag/data/lang/{code}.json; there are: {', '.join(languages())}")
    return check(_read(f"lang/{code}.json"), LANGUAGE, f"rag/data/lang/{code}.json")


@cache
def domain(name: str) -> Mapping[str, Any]:
    """rag/data/domain/<name>.json, checked and read-only: its "about" and one block per language."""
    if name not in domains():
        raise ValueError(f"no domain file rag/data/domain/{name}.json; there are: {', '.join(domains())}")
    return check_domain(_read(f"domain/{name}.json"), f"rag/data/domain/{name}.json")


@cache
def drug_stems() -> Mapping[str, Any]:
    """rag/data/drug_stems.json, checked and read-only."""
    return check(_read("drug_stems.json"), DRUG_STEMS, "rag/data/drug_stems.json")


@cache
def domain_blocks(key: str) -> tuple[tuple[str, Any], ...]:
    """(language, value) for every language block holding `key`, in every domain file (by name),
    each file's blocks in the order it writes them."""
    if key not in DOMAIN_BLOCK:
        raise ValueError(f"unknown domain key {key!r}; known keys: {', '.join(DOMAIN_BLOCK)}")
    return tuple(
        (code, block[key]) for name in domains() for code, block in _blocks(domain(name)) if key in block
    )


def _blocks(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(code, block) for code, block in data.items() if code != "about"]


def check_domain(data: Any, where: str) -> Mapping[str, Any]:
    """A domain file checked: an "about" and blocks named by language codes with a lang file."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object of language blocks, got {type(data).__name__}")
    out: dict[str, Any] = {}
    for code, block in data.items():
        if code == "about":
            out[code] = check(block, TEXT, where, code)
        elif code not in languages():
            raise ValueError(
                f"{where}: block {code!r} names no language file (rag/data/lang/{code}.json); "
                f"languages: {', '.join(languages())}"
            )
        else:
            out[code] = check(block, DOMAIN_BLOCK, where, code)
    return MappingProxyType(out)


def check(value: Any, spec: Any, where: str, path: str = "") -> Any:
    """`value` checked against `spec` and made read-only (lists become tuples); raises ValueError
    naming the file (`where`) and the key (`path`). An object may always hold an "about" text."""
    at = f"{where}: {path}" if path else where
    if spec == TEXT or spec == FLAG:
        if not isinstance(value, str if spec == TEXT else bool):
            raise ValueError(
                f"{at}: expected {'a string' if spec == TEXT else 'true or false'}, got {value!r}"
            )
        return value
    if spec in (WORDS, CHARS):
        if not isinstance(value, list) or not all(isinstance(w, str) and w for w in value):
            raise ValueError(f"{at}: expected a list of non-empty strings, got {value!r}")
        if spec == CHARS and any(len(w) != 1 for w in value):
            raise ValueError(f"{at}: expected single characters, got {value!r}")
        return tuple(value)
    if spec == TABLE:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValueError(f"{at}: expected an object of strings, got {value!r}")
        return MappingProxyType(dict(value))
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise ValueError(f"{at}: expected a list, got {type(value).__name__}")
        return tuple(check(item, spec[0], where, f"{path}[{i}]") for i, item in enumerate(value))
    if not isinstance(value, dict):
        raise ValueError(f"{at}: expected an object, got {type(value).__name__}")
    unknown = [k for k in value if k not in spec and k != "about"]
    if unknown:
        raise ValueError(f"{at}: unknown key {unknown[0]!r}; known keys: {', '.join(spec)}")
    missing = [k for k, s in spec.items() if k not in value and not isinstance(s, Omittable)]
    if missing:
        raise ValueError(f"{at}: missing key {missing[0]!r}")
    out = {}
    for k, v in value.items():
        s = spec.get(k, TEXT)
        out[k] = check(v, s.spec if isinstance(s, Omittable) else s, where, f"{path}.{k}" if path else k)
    return MappingProxyType(out)

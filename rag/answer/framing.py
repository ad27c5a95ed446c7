"""The text the user reads: an answer framed in the question's language around its verified quotes,
or a refusal with its reason and the nearest passages. Every string comes from rag/templates/{lang}.json.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING

from rag.ingest.headings import ABSTRACT_LABELS_BY_LANG, UNTITLED, WHOLE, parse_heading
from rag.lang import HAN_RE
from rag.types import Answer, Document, Hit, Quote, Refusal

if TYPE_CHECKING:
    from rag.terms.glossary import Glossary

_NEAREST, _EXCERPT_CHARS = 3, 60
_LANGS = ("zh", "en")


@functools.cache
def templates(lang: str) -> dict[str, str]:
    """Answer framing for one language, from rag/templates/{lang}.json."""
    if lang not in _LANGS:
        raise ValueError(f"lang must be one of {_LANGS}, got {lang!r}.")
    return json.loads(resources.files("rag").joinpath("templates", f"{lang}.json").read_text("utf-8"))


def refusal_message(refusal: Refusal, lang: str) -> str:
    """The refusal's reason in `lang`, for the user."""
    return templates(lang)[f"refusal_{refusal.code}"].format(**dict(refusal.values))


def glosses(text: str, lang: str, glossary: Glossary | None, limit: int = 4) -> list[tuple[str, str]]:
    """Key terms of a passage in the other language: English glosses of its Chinese terms for an
    English question; Chinese terms for its English names for a Chinese question. A term the passage
    already names in both languages ("组织因子(tissue factor, TF)") needs no gloss."""
    if glossary is None:
        return []
    matches = glossary.matches(text)
    in_zh = {m.zh for m in matches if text[m.start : m.end] == m.zh}
    in_en = {m.zh for m in matches if text[m.start : m.end] != m.zh}
    if lang == "en":
        pairs = [(zh, en) for zh, en in glossary.en_terms_for(text) if zh not in in_en]
    else:
        # A term of English papers may have no Chinese name at all: nothing to gloss it with.
        pairs = [(text[m.start : m.end], m.zh) for m in matches if m.zh and m.zh in in_en - in_zh]
    return list(dict.fromkeys(pairs))[:limit]


def _gloss_items(pairs: list[tuple[str, str]], t: dict[str, str]) -> str:
    return t["gloss_sep"].join(t["gloss_item"].format(term=a, gloss=b) for a, b in pairs)


def display_title(doc: Document, lang: str) -> str:
    """The document's title in the answer's language, or "" when the catalog gives none (the Quote
    still carries the original title)."""
    title, zh_title = doc.title, bool(HAN_RE.search(doc.title))
    if lang == "en":
        if not zh_title:
            return title
        m = re.search(r"\(([A-Za-z][^()]*)\)\s*$", title)
        return m.group(1) if m else doc.meta.get("topic_en") or ""
    if zh_title:
        return re.sub(r"\s*\([A-Za-z][^()]*\)\s*$", "", title)
    return doc.meta.get("title_zh") or ""


def display_section(section: str, lang: str) -> str:
    """The innermost section label in the answer's language: kept when it is in that language,
    otherwise reduced to its number or a known label ("摘要" -> "Chinese abstract")."""
    t = templates(lang)
    leaf = section.split(" > ")[-1].strip()
    known = dict.fromkeys(UNTITLED.values(), "section_intro")
    for label_lang, labels in ABSTRACT_LABELS_BY_LANG.items():
        known |= dict.fromkeys(labels, f"section_{label_lang}_abstract")
    if leaf in known:
        return t[known[leaf]]
    if leaf in WHOLE.values() or bool(HAN_RE.search(leaf)) != (lang == "zh"):
        num = re.match(r"\d+(?:\.\d+)*", leaf)
        return t["section_number"].format(num=num.group()) if num else ""
    return leaf


def page_label(page: int | None, ocr: bool, lang: str) -> str:
    """The page's label in `lang`: "p. 4", "p. 4 (OCR)" for a page read by OCR, "" when unpaged."""
    if page is None:
        return ""
    return templates(lang)["page_ocr" if ocr else "page"].format(page=page)


def where(doc: Document | None, section: str, lang: str, page: int | None = None, ocr: bool = False) -> str:
    """Title, section and page of a passage as the answer names them: "Title, section 3 · p. 4"."""
    t = templates(lang)
    parts = [display_title(doc, lang) if doc else "", display_section(section, lang)]
    place = t["where_sep"].join(p for p in parts if p)
    return t["page_sep"].join(p for p in (place, page_label(page, ocr, lang)) if p)


def _excerpt(text: str) -> str:
    lines = text.split("\n")
    while len(lines) > 1 and parse_heading(lines[0]):
        lines = lines[1:]  # the chunk's heading is already named as its section
    flat = " ".join(" ".join(lines).split())
    return flat if len(flat) <= _EXCERPT_CHARS else flat[:_EXCERPT_CHARS] + "…"


def frame_answer(
    question: str,
    lang: str,
    hits: Sequence[Hit],
    documents: Mapping[str, Document],
    quotes: Sequence[tuple[Quote, bool]],
    notes: Sequence[str],
    glossary: Glossary | None,
    max_glosses: int = 4,
) -> Answer:
    """The answer around its verified quotes, each with whether it is an English-abstract counterpart."""
    t = templates(lang)
    lines = [t["intro"]]
    for q, is_counterpart in quotes:
        lines.append(t["counterpart_line" if is_counterpart else "quote_line"].format(text=q.text, n=q.n))
        if pairs := glosses(q.text, lang, glossary, max_glosses):
            lines.append(t["gloss_line"].format(items=_gloss_items(pairs, t)))
    lines += ["", t["sources"]]
    lines += [
        t["source_line"].format(n=q.n, where=where(documents[q.doc_id], q.section, lang, q.page, q.ocr))
        for q, _ in quotes
    ]
    return Answer(
        question, lang, False, "\n".join(lines), tuple(q for q, _ in quotes), tuple(hits), tuple(notes)
    )


def abstain_answer(
    question: str,
    lang: str,
    hits: Sequence[Hit],
    documents: Mapping[str, Document],
    glossary: Glossary | None,
    notes: Sequence[str],
    refusal: Refusal | None = None,
) -> Answer:
    """The abstention message, its reason, and the nearest passages: an excerpt when a passage is in
    the question's language, otherwise its key terms glossed, so the answer stays in one language."""
    t = templates(lang)
    lines = [t["abstain"]]
    if refusal is not None:
        lines.append(t["reason"].format(reason=refusal_message(refusal, lang)))
    if hits:
        lines.append(t["nearest"])
    for h in sorted(hits, key=lambda h: h.rank)[:_NEAREST]:
        c = h.chunk
        line = t["nearest_line"].format(where=where(documents.get(c.doc_id), c.section, lang, c.page, c.ocr))
        if h.chunk.lang == lang:
            line += t["nearest_excerpt"].format(excerpt=_excerpt(h.chunk.text))
        elif pairs := glosses(h.chunk.text, lang, glossary)[:3]:
            line += t["nearest_terms"].format(items=_gloss_items(pairs, t))
        lines.append(line)
    notes = (*notes, refusal.note) if refusal is not None else tuple(notes)
    return Answer(question, lang, True, "\n".join(lines), (), tuple(hits), notes, refusal)

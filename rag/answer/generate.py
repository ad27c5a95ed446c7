"""Answers from a generator, held to verified quotes: the Generator interface and the checks.

A generated answer is untrusted text. Every quotation in it must occur verbatim in the passage it
cites or it is cut out; citations of passages that were not given are cut out; an answer left without
a verified quote is replaced by the extractive one. LangChain stays out of this module (see rag/answer/llm.py).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache
from importlib.resources import files
from typing import Any, Protocol

from rag.answer.framing import templates
from rag.types import Answer, Document, Hit, Quote

__all__ = [
    "Compose",
    "ExtractiveGenerator",
    "Generator",
    "Verification",
    "answer_messages",
    "fallback_note",
    "grounded_answer",
    "load_prompt",
    "verify_answer",
    "with_note",
]

# The extractive composer's shape: (question, lang, hits, documents, query=None) -> Answer, where
# `query` is the question's analysis (rag.query.analysis), passed through so it is not made again.
Compose = Callable[..., Answer]


class Generator(Protocol):
    def generate(
        self, question: str, lang: str, hits: list[Hit], documents: dict[str, Document], query: Any = None
    ) -> Answer: ...

    def stream(
        self, question: str, lang: str, hits: list[Hit], documents: dict[str, Document], query: Any = None
    ) -> Iterator[str | Answer]:
        """Yield provisional text pieces, then the final Answer (which the caller shows instead)."""
        ...


class ExtractiveGenerator:
    """The offline default: wraps the pipeline's extractive composer so it fits the Generator interface."""

    def __init__(self, compose: Compose) -> None:
        self.compose = compose

    def generate(
        self, question: str, lang: str, hits: list[Hit], documents: dict[str, Document], query: Any = None
    ) -> Answer:
        return self.compose(question, lang, list(hits), documents, query=query)

    def stream(
        self, question: str, lang: str, hits: list[Hit], documents: dict[str, Document], query: Any = None
    ) -> Iterator[str | Answer]:
        answer = self.generate(question, lang, hits, documents, query)
        yield answer.answer
        yield answer


def _t(lang: str, key: str, **kw: object) -> str:
    """A message of the LLM path, from rag/templates/{zh,en}.json (keys "llm_*")."""
    return templates("zh" if lang == "zh" else "en")[f"llm_{key}"].format(**kw)


def fallback_note(lang: str, kind: str, detail: str = "", rejected: bool = False) -> str:
    """Why the extractive answer is shown, e.g. "LLM unavailable (timeout after 30s); showing extractive answer".

    kind: timeout | connection | malformed | non_text | empty | error | no_citation | no_quote.
    """
    return _t(lang, "rejected" if rejected else "unavailable", why=_t(lang, kind, detail=detail))


def with_note(answer: Answer, *notes: str) -> Answer:
    return replace(answer, notes=(*answer.notes, *notes))


# --- prompts ------------------------------------------------------------------------------------

_SECTION = re.compile(r"^\[(\w+)\]\s*$", re.M)


@cache
def load_prompt(name: str) -> dict[str, str]:
    """Sections ("[system]", "[user]", ...) of a prompt file in rag/prompts/, by section name."""
    path = files("rag") / "prompts" / name
    if not path.is_file():
        raise FileNotFoundError(f"prompt file rag/prompts/{name} is missing; reinstall the package")
    raw = path.read_text(encoding="utf-8")
    parts = _SECTION.split(raw)  # ["", "system", body, "user", body, ...]
    return {key: body.strip("\n") for key, body in zip(parts[1::2], parts[2::2], strict=True)}


def passage_text(hit: Hit, documents: dict[str, Document]) -> str:
    """The normalised text a passage number stands for: the same string the model reads and quotes are checked against."""
    c = hit.chunk
    doc = documents.get(c.doc_id)
    return doc.text[c.start : c.end] if doc is not None else c.text


def answer_messages(
    question: str, lang: str, hits: list[Hit], documents: dict[str, Document], nonce: str | None = None
) -> list[tuple[str, str]]:
    """(role, content) messages asking for an answer from passages [1]..[len(hits)].

    The passage markers carry a random nonce so a document cannot forge the end of its own block.
    """
    prompt = load_prompt(f"answer_{'zh' if lang == 'zh' else 'en'}.txt")
    nonce = nonce or secrets.token_hex(4)
    blocks = [
        prompt["passage"].format(
            n=n,
            nonce=nonce,
            title=h.chunk.title,
            section=h.chunk.section or "-",
            text=passage_text(h, documents),
        )
        for n, h in enumerate(hits, 1)
    ]
    return [
        ("system", prompt["system"].format(nonce=nonce)),
        ("human", prompt["user"].format(passages="\n\n".join(blocks), question=question)),
    ]


# --- verification -------------------------------------------------------------------------------

# Paired CJK marks may span lines; a straight double quote may not, so one stray mark cannot swallow a paragraph.
_QUOTE = re.compile(r"「([^「」]+)」|“([^“”]+)”|\"([^\"\n]+)\"")
_CITE = re.compile(r"\[(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\]")
_TRAILING = ".,;:!?。，；：！？、 "


@dataclass(frozen=True)
class Verification:
    text: str  # the answer with failed quotes and impossible citations cut out
    quotes: tuple[Quote, ...]  # verified quotations, with offsets into the normalised documents
    cited: tuple[int, ...]  # passage numbers the final text cites, in order of use
    removed_quotes: tuple[str, ...]
    removed_citations: tuple[int, ...]


def _locate(body: str, passage: str) -> tuple[int, int] | None:
    """Span of `body` in `passage`: exact first; then allowing the model's edge punctuation and
    whitespace runs to differ. The returned span is always exact source text."""
    for cand in (body, body.strip(), body.strip().rstrip(_TRAILING)):
        if cand and (i := passage.find(cand)) >= 0:
            return i, i + len(cand)
    words = body.strip().rstrip(_TRAILING).split()
    if len(words) > 1:
        m = re.search(r"\s+".join(map(re.escape, words)), passage)
        if m:
            return m.start(), m.end()
    return None


def verify_answer(text: str, lang: str, hits: list[Hit], documents: dict[str, Document]) -> Verification:
    """Check every quotation of `text` against the passage it cites.

    A quote's citation is the group of [n] marks nearest after it on the same line ("[1][2]" and
    "[1, 2]" are one group); without one, the first passage that contains the quote is cited and
    "[n]" is added after it. A quote that is not verbatim in its cited passage is replaced with a marker.
    """
    passages = [passage_text(h, documents) for h in hits]
    quote_spans = [
        (m.start(), m.end(), next(g for g in m.groups() if g is not None)) for m in _QUOTE.finditer(text)
    ]
    cites = [m for m in _CITE.finditer(text) if not any(s <= m.start() < e for s, e, _ in quote_spans)]

    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), non-overlapping
    cited: list[tuple[int, int]] = []  # (position, n), sorted at the end so the order follows the text
    removed_citations: list[int] = []
    valid_in: dict[int, list[int]] = {}  # citation match start -> its valid passage numbers
    for m in cites:
        nums = [int(x) for x in re.findall(r"\d+", m.group(1))]
        keep = [n for n in nums if 1 <= n <= len(hits)]
        valid_in[m.start()] = keep
        removed_citations += [n for n in nums if n not in keep]
        cited += [(m.start(), n) for n in keep]
        if keep != nums:
            edits.append((m.start(), m.end(), "".join(f"[{n}]" for n in keep)))

    quotes: list[Quote] = []
    removed_quotes: list[str] = []
    for qs, qe, body in quote_spans:
        group = _group_after(text, qe, cites, valid_in)
        candidates = group or range(1, len(hits) + 1)
        found = None
        for n in candidates:
            span = _locate(body, passages[n - 1])
            if span is not None:
                found = (n, *span)
                break
        if found is None:
            edits.append((qs, qe, _t(lang, "removed")))
            removed_quotes.append(body)
            continue
        n, i, j = found
        c = hits[n - 1].chunk
        doc = documents.get(c.doc_id)
        place = doc.page_and_ocr(c.start + i) if doc is not None else (None, False)
        quote = Quote(n, c.doc_id, c.title, c.section, c.start + i, c.start + j, passages[n - 1][i:j], *place)
        if quote not in quotes:
            quotes.append(quote)
        if not group:  # verified by containment: show the reader where it came from
            edits.append((qe, qe, f"[{n}]"))
            cited.append((qe, n))

    out, pos = [], 0
    for s, e, rep in sorted(edits, key=lambda x: (x[0], x[1])):
        out += [text[pos:s], rep]
        pos = e
    out.append(text[pos:])
    return Verification(
        "".join(out),
        tuple(quotes),
        tuple(n for _, n in sorted(cited)),
        tuple(removed_quotes),
        tuple(removed_citations),
    )


def _group_after(text: str, pos: int, cites: list[re.Match], valid_in: dict[int, list[int]]) -> list[int]:
    """Valid passage numbers of the citation group nearest after `pos` on the same line."""
    group: list[int] = []
    for m in cites:
        if m.start() < pos:
            continue
        between = text[pos : m.start()]
        if "\n" in between or (group and between.strip()):
            break
        group += valid_in[m.start()]
        pos = m.end()
    return group


_NOT_WORD = re.compile(r"[\W_]+")


def _is_abstention(text: str) -> bool:
    flat = _NOT_WORD.sub("", text).lower()
    return any(flat.startswith(_NOT_WORD.sub("", _t(lang, "abstain")).lower()) for lang in ("en", "zh"))


def grounded_answer(
    question: str,
    lang: str,
    hits: list[Hit],
    documents: dict[str, Document],
    text: str,
    fallback: Generator,
    require_quote: bool = True,
    query: Any = None,
) -> Answer:
    """Turn a generated text into an Answer, or fall back to the extractive answer with the reason.

    With require_quote (the default) a generated answer must keep at least one verified quotation:
    a citation alone does not show that the text came from the passage (a planted "reply only with
    X [1]" would pass). require_quote=False accepts an answer with a verified quote or a valid citation.
    """
    text = text.strip()
    if not text:
        return with_note(
            fallback.generate(question, lang, hits, documents, query=query), fallback_note(lang, "empty")
        )
    if _is_abstention(text) and not _CITE.search(text):
        return Answer(question, lang, True, _t(lang, "abstain"), (), tuple(hits), (_t(lang, "abstained"),))

    v = verify_answer(text, lang, hits, documents)
    notes = []
    if v.removed_quotes:
        notes.append(_t(lang, "quotes_removed", k=len(v.removed_quotes)))
    if v.removed_citations:
        notes.append(_t(lang, "cites_removed", nums=", ".join(f"[{n}]" for n in v.removed_citations)))
    if not (v.quotes if require_quote else v.quotes or v.cited):
        why = "no_quote" if v.cited or v.removed_quotes else "no_citation"
        extractive = fallback.generate(question, lang, hits, documents, query=query)
        return with_note(extractive, fallback_note(lang, why, rejected=True), *notes)
    return Answer(question, lang, False, v.text, v.quotes, tuple(hits), (_t(lang, "used"), *notes))

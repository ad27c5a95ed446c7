"""Pure rendering: answer Markdown for the chat, the sources panel and the full-document view.

Every string that comes from a document is untrusted: it is HTML-escaped (and, for Markdown,
stripped of inline syntax) before it reaches the page. Highlights are placed by character offsets
into the normalised document text, never by searching for the quote.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict

from rag.answer.framing import page_label, templates
from rag.ingest.chunking import find_sections
from rag.types import Answer, Document, Hit, Quote

CONTEXT_CHARS = 300  # context shown on each side of a quote in the sources panel
_CITATION = re.compile(r"\\\[(\d+)\\\]")  # a citation after Markdown escaping: \[1\]
# Inline Markdown that a document could use to inject links, images, emphasis or LaTeX into the chat.
_MARKDOWN_INLINE = re.compile(r"([\\`*_{}\[\]()#|~$!])")
_SENTENCE_END = "。！？；.!?;"


def _labels(lang: str) -> dict[str, str]:
    """The page's words, from the answer templates (rag/templates/{zh,en}.json, keys "ui_*")."""
    t = templates("zh" if lang == "zh" else "en")
    return {k[3:]: v for k, v in t.items() if k.startswith("ui_")}


def escape_markdown(text: str) -> str:
    """Show text literally in a Markdown message: no HTML, links, images, emphasis or maths from it."""
    return _MARKDOWN_INLINE.sub(r"\\\1", html.escape(text, quote=False))


def format_answer(answer: Answer) -> str:
    """The chat message for an answer: escaped text, cited numbers styled, abstention flagged."""
    cited = {q.n for q in answer.quotes}

    def cite(m: re.Match[str]) -> str:
        n = int(m.group(1))
        # Only our own citations are styled: papers carry their own reference numbers like [12].
        return f'<span class="cite">[{n}]</span>' if n in cited else m.group(0)

    body = _CITATION.sub(cite, escape_markdown(answer.answer.strip()))
    if answer.abstained:
        # The abstention's first line already says the documents do not answer; it is only flagged.
        first, _, rest = body.partition("\n")
        body = f"⚠️ **{first}**" + (f"\n\n{rest}" if rest else "")
    # Notes say how the answer was made (an LLM fallback, a condensed follow-up, an uncalibrated
    # threshold); they come from models and documents too, so they are escaped like the answer.
    notes = "".join(f"\n\n<small>ⓘ {escape_markdown(n)}</small>" for n in answer.notes)
    return body + notes


def format_draft(text: str, lang: str) -> str:
    """A streamed LLM draft: unverified model output, shown literally and marked as a draft until the
    checked answer replaces it."""
    return f"{escape_markdown(text.strip())}\n\n{_labels(lang)['draft']}"


def quotes_json(answer: Answer) -> list[dict]:
    """The quotes as plain JSON rows (API output and UI state)."""
    return [asdict(q) for q in answer.quotes]  # n, doc_id, title, section, start, end, text, page, ocr


def quote_from_json(row: Mapping) -> Quote:
    return Quote(
        int(row["n"]),
        str(row["doc_id"]),
        str(row["title"]),
        str(row["section"]),
        int(row["start"]),
        int(row["end"]),
        str(row["text"]),
        None if row.get("page") is None else int(row["page"]),
        bool(row.get("ocr", False)),
    )


def section_bounds(doc: Document, offset: int) -> tuple[int, int]:
    """Span of the section holding `offset`, so the context never runs into another section."""
    for sec in find_sections(doc.text, doc.lang):
        if sec.start <= offset < sec.end:
            return sec.start, sec.end
    return 0, len(doc.text)


def context_window(
    text: str, start: int, end: int, radius: int = CONTEXT_CHARS, bounds: tuple[int, int] | None = None
) -> tuple[int, int]:
    """About `radius` characters either side of text[start:end], cut at line (else sentence) boundaries.

    The window stays inside `bounds` (e.g. the section) and always contains the whole quote.
    """
    lo_bound, hi_bound = bounds or (0, len(text))
    lo, hi = max(lo_bound, start - radius), min(hi_bound, end + radius)
    if lo > lo_bound and text[lo - 1] != "\n":
        nl = text.find("\n", lo, start)
        line_start = max(lo_bound, text.rfind("\n", 0, start) + 1)
        if nl != -1:  # whole lines before the quote
            lo = nl + 1
        elif start - line_start <= 2 * radius:  # the quote's own line, if it is not too long
            lo = line_start
        else:  # one long paragraph: start after a sentence end rather than mid-sentence
            ends = [i for i in range(lo, start) if text[i] in _SENTENCE_END]
            lo = ends[0] + 1 if ends else lo
    if hi < hi_bound and text[hi] != "\n":
        nl = text.rfind("\n", end, hi)
        line_end = text.find("\n", end, hi_bound)
        line_end = hi_bound if line_end == -1 else line_end
        if nl != -1:
            hi = nl
        elif line_end - end <= 2 * radius:
            hi = line_end
        else:
            ends = [i for i in range(end, hi) if text[i] in _SENTENCE_END]
            hi = ends[-1] + 1 if ends else hi
    return min(lo, start), max(hi, end)


def _quote_matches(doc: Document | None, q: Quote) -> bool:
    return doc is not None and q.matches(doc.text)


def highlight(text: str, start: int, end: int, lo: int, hi: int, mark_attrs: str = "") -> str:
    """Escaped text[lo:hi] with text[start:end] wrapped in <mark>; "…" where the window cuts a line."""
    lead = "…" if lo > 0 and text[lo - 1] != "\n" else ""
    tail = "…" if hi < len(text) and text[hi] != "\n" else ""
    return (
        f"{lead}{html.escape(text[lo:start])}<mark{mark_attrs}>{html.escape(text[start:end])}</mark>"
        f"{html.escape(text[end:hi])}{tail}"
    )


def _card(n: int, title: str, section: str, body: str, button: str, page: str = "") -> str:
    """`page`: the page label ("p. 4"), "" for an unpaged format."""
    if page:
        section = f"{section}{templates('en')['page_sep']}{page}"
    return (
        f'<article class="src-card" data-n="{n}">'
        f'<div class="src-head"><span class="src-n">{n}</span>'
        f'<span class="src-title">{html.escape(title)}</span></div>'
        f'<div class="src-section">§ {html.escape(section)}</div>'
        f'<div class="src-context">{body}</div>{button}</article>'
    )


def render_quote(q: Quote, documents: Mapping[str, Document], lang: str = "en") -> str:
    """One source card: title, section path, and the quote highlighted inside its context."""
    labels = _labels(lang)
    doc = documents.get(q.doc_id)
    if not _quote_matches(doc, q):
        body = f'<mark>{html.escape(q.text)}</mark><div class="src-note">{labels["changed"]}</div>'
        return _card(q.n, q.title, q.section, body, "", page_label(q.page, q.ocr, lang))
    lo, hi = context_window(doc.text, q.start, q.end, bounds=section_bounds(doc, q.start))
    button = f'<button type="button" class="src-open" data-quote="{q.n}">{labels["open"]} ↗</button>'
    page = page_label(q.page, q.ocr, lang)
    return _card(q.n, q.title, q.section, highlight(doc.text, q.start, q.end, lo, hi), button, page)


def render_sources(
    quotes: Sequence[Quote],
    documents: Mapping[str, Document],
    lang: str = "en",
    abstained: bool = False,
    hits: Sequence[Hit] = (),
    max_hits: int = 3,
) -> str:
    """The sources panel for one answer; when nothing is quoted, the nearest retrieved passages."""
    labels = _labels(lang)
    heading = labels["nearest"] if abstained else labels["sources"]
    if quotes:
        cards = [render_quote(q, documents, lang) for q in quotes]
    elif hits:
        # Retrieved passages are context, not evidence: shown plain, without a highlight.
        cards = [
            _card(
                i,
                h.chunk.title,
                h.chunk.section,
                html.escape(h.chunk.text),
                "",
                page_label(h.chunk.page, h.chunk.ocr, lang),
            )
            for i, h in enumerate(hits[:max_hits], 1)
        ]
    else:
        return ""
    return f'<section class="sources{" abstained" if abstained else ""}"><h3>{heading}</h3>{"".join(cards)}</section>'


def _non_overlapping(quotes: Iterable[Quote], focus: int) -> list[Quote]:
    """The quotes to mark in one document: the focused one first, then any that do not overlap it."""
    chosen: list[Quote] = []
    for q in sorted(quotes, key=lambda q: (q.n != focus, q.start)):
        if all(q.end <= c.start or q.start >= c.end for c in chosen):
            chosen.append(q)
    return sorted(chosen, key=lambda q: q.start)


def render_document(doc: Document, quotes: Sequence[Quote], focus: int) -> str:
    """The whole document, escaped, with its quotes marked; the focused one is `#q<n>` for scrolling."""
    marked = _non_overlapping([q for q in quotes if _quote_matches(doc, q)], focus)
    parts: list[str] = []
    pos = 0
    for q in marked:
        cls = "focus" if q.n == focus else ""
        parts.append(html.escape(doc.text[pos : q.start]))
        parts.append(f'<sup class="mark-n">[{q.n}]</sup><mark id="q{q.n}" class="{cls}">')
        parts.append(html.escape(doc.text[q.start : q.end]) + "</mark>")
        pos = q.end
    parts.append(html.escape(doc.text[pos:]))
    jump = f' · <a href="#q{focus}">↓ [{focus}]</a>' if any(q.n == focus for q in marked) else ""
    return (
        f'<div class="doc-view"><div class="doc-head"><b>{html.escape(doc.title)}</b>'
        f' <span class="doc-id">{html.escape(doc.doc_id)}</span>{jump}</div>'
        f'<div class="doc-text" lang="{"zh" if doc.lang == "zh" else "en"}">{"".join(parts)}</div></div>'
    )


def status_line(status: Mapping) -> str:
    """One line about the index, e.g. for the settings panel."""
    built = str(status.get("built_at", "")).replace("T", " ")
    built = re.sub(r":\d\d\+00:00$", " UTC", built)
    return (
        f"{int(status.get('documents', 0))} documents · {int(status.get('chunks', 0))} passages · "
        f"model {html.escape(str(status.get('model', '?')))} · built {html.escape(built or '?')}"
    )

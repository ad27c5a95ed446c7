"""What the UI and the API do with a question; no Gradio here, so the tests call these directly."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.pipeline import MODES, QuestionError
from webui.render import (
    escape_markdown,
    format_answer,
    quote_from_json,
    quotes_json,
    render_document,
    render_sources,
)

if TYPE_CHECKING:
    from rag.pipeline import Pipeline
    from rag.types import Answer

MAX_K = 10
_SHOWN_QUESTION_CHARS = 300  # an over-long question is echoed shortened in the chat


def check_settings(mode: str, k: int | float) -> tuple[str, int]:
    """Validate what the settings panel or an API caller sent."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    if k is None or int(k) != k or not 1 <= int(k) <= MAX_K:
        raise ValueError(f"k (number of passages) must be a whole number from 1 to {MAX_K}, got {k!r}.")
    return mode, int(k)


def ask(pipeline: Pipeline, question: str, mode: str = "hybrid", k: int = 5) -> Answer:
    """The one code path behind both the chat and the `ask` API endpoint."""
    mode, k = check_settings(mode, k)
    return pipeline.ask(question, k=k, mode=mode)


@dataclass
class Turn:
    """The result of one chat submission: the new history, and the sources panel if it changed."""

    history: list[dict]
    sources_html: str | None = None  # None: keep the panel as it was (e.g. after an error)
    quotes: list[dict] | None = None


def respond(pipeline: Pipeline, question: str, history: Sequence[dict] | None, mode: str, k: int) -> Turn:
    """Answer one chat message; a bad question becomes a chat message instead of an exception."""
    history = list(history or [])
    shown = (question or "").strip()
    if len(shown) > _SHOWN_QUESTION_CHARS:
        shown = shown[:_SHOWN_QUESTION_CHARS] + "…"
    try:
        answer = ask(pipeline, question, mode, k)
    except (QuestionError, ValueError) as exc:  # QuestionError is a ValueError with a user message
        if shown:
            history.append({"role": "user", "content": escape_markdown(shown)})
        history.append({"role": "assistant", "content": f"⚠️ {exc}"})
        return Turn(history)
    # The question is shown literally, like the answer: "a_b" or "<x>" must not become formatting.
    history.append({"role": "user", "content": escape_markdown(answer.question)})
    history.append({"role": "assistant", "content": format_answer(answer)})
    sources = render_sources(answer.quotes, pipeline.documents, answer.lang, answer.abstained, answer.hits)
    return Turn(history, sources, quotes_json(answer))


def open_document(pipeline: Pipeline, quotes: Sequence[dict] | None, n: int) -> str:
    """The full-document view for quote [n] of the last answer."""
    rows = [quote_from_json(row) for row in quotes or []]
    focus = next((q for q in rows if q.n == n), None)
    if focus is None:
        return '<div class="doc-view empty">Ask a question, then open one of its sources. / 请先提问。</div>'
    doc = pipeline.documents.get(focus.doc_id)
    if doc is None:
        return (
            f'<div class="doc-view empty">{html.escape(focus.doc_id)}: no longer in the index; ask again. '
            "/ 文档已移除，请重新提问。</div>"
        )
    return render_document(doc, [q for q in rows if q.doc_id == focus.doc_id], n)

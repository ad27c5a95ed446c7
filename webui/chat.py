"""What the UI and the API do with a question; no Gradio here, so the tests call these directly."""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.lang import question_lang
from rag.pipeline import MODES, Pipeline, QuestionError
from rag.types import Answer
from webui.render import (
    escape_markdown,
    format_answer,
    format_draft,
    quote_from_json,
    quotes_json,
    render_document,
    render_sources,
)

MAX_K = 10
_SHOWN_QUESTION_CHARS = 300  # an over-long question is echoed shortened in the chat


def check_settings(mode: str, k: int | float) -> tuple[str, int]:
    """Validate what the settings panel or an API caller sent."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    if k is None or int(k) != k or not 1 <= int(k) <= MAX_K:
        raise ValueError(f"k (number of passages) must be a whole number from 1 to {MAX_K}, got {k!r}.")
    return mode, int(k)


# (question, answer text) of earlier turns, which the pipeline uses to read a follow-up question.
Pairs = Sequence[Sequence[str]]


def ask(
    pipeline: Pipeline, question: str, mode: str = "hybrid", k: int = 5, history: Pairs | None = None
) -> Answer:
    """The one code path behind both the chat and the `ask` API endpoint."""
    mode, k = check_settings(mode, k)
    return pipeline.ask(question, k=k, mode=mode, history=_pairs(history))


def _pairs(history: Pairs | None) -> list[tuple[str, str]]:
    return [(str(q), str(a)) for q, a in history or []]


@dataclass
class Turn:
    """The result of one chat submission: the new history, and the sources panel if it changed."""

    history: list[dict]
    sources_html: str | None = None  # None: keep the panel as it was (e.g. after an error or a draft)
    quotes: list[dict] | None = None
    pair: tuple[str, str] | None = None  # (question, answer) to remember for follow-ups
    draft: bool = False  # an unverified LLM draft; the final Turn replaces it


def _shown(question: str) -> str:
    shown = (question or "").strip()
    return shown[:_SHOWN_QUESTION_CHARS] + "…" if len(shown) > _SHOWN_QUESTION_CHARS else shown


def _error_turn(history: list[dict], question: str, exc: Exception) -> Turn:
    if shown := _shown(question):
        history.append({"role": "user", "content": escape_markdown(shown)})
    history.append({"role": "assistant", "content": f"⚠️ {exc}"})
    return Turn(history)


def _answer_turn(pipeline: Pipeline, history: list[dict], answer: Answer) -> Turn:
    # The question is shown literally, like the answer: "a_b" or "<x>" must not become formatting.
    history.append({"role": "user", "content": escape_markdown(answer.question)})
    history.append({"role": "assistant", "content": format_answer(answer)})
    sources = render_sources(answer.quotes, pipeline.documents, answer.lang, answer.abstained, answer.hits)
    return Turn(history, sources, quotes_json(answer), (answer.question, answer.answer))


def respond(
    pipeline: Pipeline,
    question: str,
    history: Sequence[dict] | None,
    mode: str,
    k: int,
    pairs: Pairs | None = None,
) -> Turn:
    """Answer one chat message; a bad question becomes a chat message instead of an exception."""
    history = list(history or [])
    try:
        answer = ask(pipeline, question, mode, k, pairs)
    except (QuestionError, ValueError) as exc:  # QuestionError is a ValueError with a user message
        return _error_turn(history, question, exc)
    return _answer_turn(pipeline, history, answer)


def respond_stream(
    pipeline: Pipeline,
    question: str,
    history: Sequence[dict] | None,
    mode: str,
    k: int,
    pairs: Pairs | None = None,
) -> Iterator[Turn]:
    """Like `respond`, but with an LLM generator: draft Turns as the model writes, then the final one.

    The draft is the model's raw text; the final answer (quotes verified, or the extractive fallback)
    replaces it, so nothing unverified stays on screen.
    """
    if not pipeline.streams:  # extractive answers arrive whole: no draft to show
        yield respond(pipeline, question, history, mode, k, pairs)
        return
    history = list(history or [])
    try:
        mode, k = check_settings(mode, k)
        pieces = pipeline.ask_stream(question, k=k, mode=mode, history=_pairs(pairs))
    except (QuestionError, ValueError) as exc:
        yield _error_turn(history, question, exc)
        return
    user = {"role": "user", "content": escape_markdown(_shown(question))}
    lang, draft = question_lang(question), ""
    for piece in pieces:
        if isinstance(piece, Answer):
            yield _answer_turn(pipeline, history, piece)
            return
        draft += piece
        yield Turn([*history, user, {"role": "assistant", "content": format_draft(draft, lang)}], draft=True)


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

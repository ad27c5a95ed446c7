"""The LLM edge: build a LangChain chat model, answer with it, rewrite questions with it.

Only `make_chat_model` imports LangChain. Everything else needs just the model's `.invoke(messages)`
and `.stream(messages)`, so tests pass LangChain's fake chat models. Every failure of the model
(timeout, refused connection, malformed reply) ends in the extractive answer with the reason in notes.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from rag.answer.generate import (
    Compose,
    ExtractiveGenerator,
    Generator,
    answer_messages,
    fallback_note,
    grounded_answer,
    load_prompt,
    with_note,
)
from rag.lang import HAN_RE
from rag.types import Answer, Document, Hit

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

__all__ = [
    "LLMConfigError",
    "LLMGenerator",
    "add_llm_arguments",
    "chat_model_from_args",
    "condense_question",
    "generator_from_args",
    "make_chat_model",
    "translate_for_retrieval",
]

MAX_REWRITE_CHARS = 1000  # same bound as a question typed by the user (rag.pipeline.MAX_QUESTION_CHARS)


class LLMConfigError(ValueError):
    """The LLM settings cannot work as given; the message says how to fix them."""


class MalformedResponse(Exception):
    def __init__(self, kind: str) -> None:  # kind: "empty" | "non_text" | "malformed"
        super().__init__(kind)
        self.kind = kind


def make_chat_model(
    base_url: str | None,
    model: str,
    api_key: str | None = None,
    timeout_s: float = 30,
    temperature: float = 0,
) -> BaseChatModel:
    """An OpenAI-compatible chat model (OpenAI, Ollama at http://127.0.0.1:11434/v1, vLLM, llama.cpp ...).

    max_retries=0: a retry would double the wait, and we show the extractive answer instead.
    """
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise LLMConfigError("LLM answers need the llm extra: pip install -e '.[llm]'") from exc
    if not model:
        raise LLMConfigError("name the chat model, e.g. --llm-model qwen2.5:7b-instruct")
    # Local servers ignore the key but the client refuses to start without one.
    key = api_key or os.environ.get("RAG_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "not-needed"
    return ChatOpenAI(
        model=model,
        base_url=base_url or None,
        api_key=key,
        timeout=timeout_s,
        max_retries=0,
        temperature=temperature,
    )


# --- calling the model --------------------------------------------------------------------------


def _text_of(message: Any) -> str:
    """The text of a chat message or chunk; MalformedResponse when it carries no text at all."""
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            b if isinstance(b, str) else b.get("text", "")
            for b in content
            if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")
        ]
        if texts or not content:
            return "".join(texts)
    raise MalformedResponse("non_text")


def _invoke_text(chat_model: Any, messages: list[tuple[str, str]], timeout_s: float) -> str:
    """The model's reply, or TimeoutError after timeout_s.

    The call runs in a daemon thread so that a model without its own timeout (or a hung server)
    cannot hold the question, nor keep the process alive at exit.
    """
    done: Future = Future()

    def run() -> None:
        try:
            done.set_result(chat_model.invoke(messages))
        except BaseException as exc:  # handed to the caller, which decides
            done.set_exception(exc)

    threading.Thread(target=run, name="rag-llm", daemon=True).start()
    text = _text_of(done.result(timeout=timeout_s))
    if not text.strip():
        raise MalformedResponse("empty")
    return text


def _stream_pieces(chat_model: Any, messages: list[tuple[str, str]], timeout_s: float) -> Iterator[str]:
    """Text pieces as the model streams them; TimeoutError when none arrives for timeout_s."""
    pieces: queue.Queue = queue.Queue()
    stop = threading.Event()

    def run() -> None:
        try:
            for chunk in chat_model.stream(messages):
                if stop.is_set():  # the reader went away: closing the stream frees the connection
                    break
                pieces.put(("piece", chunk))
            pieces.put(("done", None))
        except BaseException as exc:
            pieces.put(("error", exc))

    threading.Thread(target=run, name="rag-llm-stream", daemon=True).start()
    try:
        while True:
            try:
                kind, item = pieces.get(timeout=timeout_s)
            except queue.Empty:
                raise TimeoutError from None
            if kind == "done":
                return
            if kind == "error":
                raise item
            text = _text_of(item)
            if text:
                yield text
    finally:
        stop.set()


def _failure(exc: BaseException, timeout_s: float) -> tuple[str, str]:
    """(kind, detail) for fallback_note. Judged by class name so openai/httpx need not be imported."""
    name = type(exc).__name__
    if isinstance(exc, MalformedResponse):
        return exc.kind, ""
    if isinstance(exc, TimeoutError) or "Timeout" in name:  # openai.APITimeoutError, httpx.ReadTimeout
        return "timeout", f"{timeout_s:g}"
    if isinstance(exc, ConnectionError) or "Connect" in name:  # openai.APIConnectionError, httpx.ConnectError
        return "connection", ""
    if isinstance(exc, ValueError) or "Decode" in name or "Validation" in name:
        return "malformed", ""
    return "error", f"{name}: {str(exc)[:120]}".rstrip(": ")


_THINK = re.compile(r"<think>.*?</think>", re.S)  # reasoning models on local servers put this in content


class LLMGenerator:
    """Answers written by a chat model from the numbered passages, verified by rag.answer.generate."""

    def __init__(
        self, chat_model: Any, fallback: Generator, timeout_s: float = 30, require_quote: bool = True
    ) -> None:
        if timeout_s <= 0:
            raise LLMConfigError(f"timeout_s must be more than 0 seconds, got {timeout_s}")
        self.chat_model = chat_model
        self.fallback = fallback
        self.timeout_s = timeout_s
        self.require_quote = require_quote

    def generate(
        self, question: str, lang: str, hits: list[Hit], documents: dict[str, Document], query: Any = None
    ) -> Answer:
        """`query`, the question's analysis, is passed to the extractive fallback."""
        if not hits:  # nothing to ground an answer in: the extractive composer abstains
            return self.fallback.generate(question, lang, hits, documents, query=query)
        try:
            text = _invoke_text(
                self.chat_model, answer_messages(question, lang, hits, documents), self.timeout_s
            )
        except Exception as exc:
            return self._unavailable(question, lang, hits, documents, exc, query)
        return self._finish(question, lang, hits, documents, text, query)

    def stream(
        self, question: str, lang: str, hits: list[Hit], documents: dict[str, Document], query: Any = None
    ) -> Iterator[str | Answer]:
        """Yield the model's raw pieces as they come (unverified: show them as a draft), then the
        verified Answer, which replaces the draft. The timeout applies to the wait for each piece."""
        if not hits:
            yield from self.fallback.stream(question, lang, hits, documents, query=query)
            return
        parts: list[str] = []
        try:
            for piece in _stream_pieces(
                self.chat_model, answer_messages(question, lang, hits, documents), self.timeout_s
            ):
                parts.append(piece)
                yield piece
        except Exception as exc:
            yield self._unavailable(question, lang, hits, documents, exc, query)
            return
        yield self._finish(question, lang, hits, documents, "".join(parts), query)

    def _finish(
        self,
        question: str,
        lang: str,
        hits: list[Hit],
        documents: dict[str, Document],
        text: str,
        query: Any = None,
    ) -> Answer:
        text = _THINK.sub("", text)
        return grounded_answer(
            question, lang, hits, documents, text, self.fallback, self.require_quote, query=query
        )

    def _unavailable(
        self,
        question: str,
        lang: str,
        hits: list[Hit],
        documents: dict[str, Document],
        exc: BaseException,
        query: Any = None,
    ) -> Answer:
        kind, detail = _failure(exc, self.timeout_s)
        return with_note(
            self.fallback.generate(question, lang, hits, documents, query=query),
            fallback_note(lang, kind, detail),
        )


# --- question rewriting (condense a follow-up, translate for retrieval) ---------------------------

_LABEL = re.compile(
    r"^\s*(standalone question|rewritten question|question|translation|问题|独立问题|改写后的问题|翻译)\s*[:：]\s*",
    re.I,
)


def _one_line(text: str) -> str:
    """The first non-empty line, without a "Question:" label or wrapping quotes that models like to add."""
    line = next((ln.strip() for ln in _THINK.sub("", text).splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line).strip()
    return line.strip("\"'“”「」").strip()


def _rewrite(
    chat_model: Any,
    messages: list[tuple[str, str]],
    question: str,
    timeout_s: float,
    accept: Callable[[str], bool] = bool,
) -> str:
    try:
        out = _one_line(_invoke_text(chat_model, messages, timeout_s))
    except Exception:  # any failure: retrieval goes on with the question as asked
        return question
    return out if out and len(out) <= MAX_REWRITE_CHARS and accept(out) else question


def condense_question(
    chat_model: Any, history: list[tuple[str, str]], question: str, lang: str, timeout_s: float = 30
) -> str:
    """A standalone version of a follow-up question, using (question, answer) pairs of earlier turns.

    Returns `question` itself when there is no history, and on any error or unusable reply.
    """
    if not history:
        return question
    prompt = load_prompt(f"condense_{'zh' if lang == 'zh' else 'en'}.txt")
    # The last few turns carry the reference; answers are cut so the prompt stays small.
    turns = [prompt["turn"].format(question=q, answer=a[:400]) for q, a in history[-3:]]
    messages = [
        ("system", prompt["system"]),
        ("human", prompt["user"].format(history="\n\n".join(turns), question=question)),
    ]
    return _rewrite(chat_model, messages, question, timeout_s)


def translate_for_retrieval(chat_model: Any, question: str, timeout_s: float = 30) -> str:
    """The English question in Chinese, to search Chinese papers; `question` itself on any error
    or when the reply has no Chinese in it."""
    prompt = load_prompt("translate_en_zh.txt")
    messages = [("system", prompt["system"]), ("human", prompt["user"].format(question=question))]
    return _rewrite(chat_model, messages, question, timeout_s, accept=lambda s: bool(HAN_RE.search(s)))


# --- command-line wiring --------------------------------------------------------------------------


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    """--llm-base-url, --llm-model, --llm-timeout; generative answers are on when a model is named."""
    g = parser.add_argument_group("generative answers (optional, needs the llm extra)")
    g.add_argument(
        "--llm-base-url",
        default=os.environ.get("RAG_LLM_BASE_URL") or None,
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1 for Ollama "
        "(default: $RAG_LLM_BASE_URL, else the OpenAI API); key from $RAG_LLM_API_KEY or $OPENAI_API_KEY",
    )
    g.add_argument(
        "--llm-model",
        default=os.environ.get("RAG_LLM_MODEL") or None,
        help="chat model that writes the answer, e.g. qwen2.5:7b-instruct; quotes are still verified "
        "(default: $RAG_LLM_MODEL, else extractive answers only)",
    )
    g.add_argument(
        "--llm-timeout",
        type=float,
        default=30,
        help="seconds to wait for the model before showing the extractive answer (default: %(default)s)",
    )
    parser.add_argument(
        "--translate-queries",
        action="store_true",
        help="with --llm-model: also search English questions with their Chinese translation",
    )


def chat_model_from_args(args: argparse.Namespace) -> BaseChatModel | None:
    """The configured chat model, or None when no --llm-model is given."""
    base_url, model = getattr(args, "llm_base_url", None), getattr(args, "llm_model", None)
    timeout_s = getattr(args, "llm_timeout", 30)
    if timeout_s is None or timeout_s <= 0:
        raise LLMConfigError(f"--llm-timeout must be more than 0 seconds, got {timeout_s}")
    if not model:
        if base_url:
            raise LLMConfigError(
                f"--llm-base-url {base_url} is set but no model is: add --llm-model (e.g. --llm-model qwen2.5:7b-instruct)"
            )
        return None
    return make_chat_model(base_url, model, timeout_s=timeout_s)


def generator_from_args(args: argparse.Namespace, extractive: Compose | Generator) -> Generator:
    """The extractive generator, wrapped in an LLMGenerator when --llm-model is given.

    `extractive` is the pipeline's composer `(question, lang, hits, documents) -> Answer`, or a Generator.
    """
    fallback = extractive if hasattr(extractive, "generate") else ExtractiveGenerator(extractive)
    chat_model = chat_model_from_args(args)
    if chat_model is None:
        return fallback
    return LLMGenerator(chat_model, fallback, timeout_s=args.llm_timeout)

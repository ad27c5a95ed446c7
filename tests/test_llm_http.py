"""The real HTTP path: ChatOpenAI against a small OpenAI-compatible server on a loopback port.

The model name picks the server's reply, so each test asks for the behaviour it needs.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.answer.generate import ExtractiveGenerator
from rag.answer.llm import LLMGenerator, condense_question, make_chat_model, translate_for_retrieval
from rag.types import Answer, Chunk, Document, Hit, Quote

TEXT = "摘要\n特鲁索综合征是一种与癌症相关的血栓形成综合征。\n2. 治疗\n抗凝治疗首选低分子肝素。华法林也可用于口服抗凝治疗。\n"
DOC = Document("zh-vte", "特鲁索综合征研究进展", "zh-vte.txt", TEXT, "0" * 64, "zh")
START = TEXT.index("抗凝治疗")
CHUNK = Chunk("zh-vte:1", "zh-vte", DOC.title, "2. 治疗", START, len(TEXT) - 1, TEXT[START:-1], "zh")
HITS = [Hit(CHUNK, 0.9, 1)]
DOCS = {"zh-vte": DOC}
HEPARIN = "抗凝治疗首选低分子肝素。"
FAITHFUL = f"特鲁索综合征的抗凝治疗首选低分子肝素：「{HEPARIN}」[1]"
SLOW_S = 5.0  # how long the "slow" model takes; the client gives up long before
TIMEOUT_S = 0.5
MAX_BODY = 1_000_000


def extractive(
    question: str, lang: str, hits: list[Hit], documents: dict[str, Document], query=None
) -> Answer:
    quote = Quote(1, CHUNK.doc_id, CHUNK.title, CHUNK.section, CHUNK.start, CHUNK.end, CHUNK.text)
    return Answer(question, lang, False, f"「{CHUNK.text}」[1]", (quote,), tuple(hits))


def completion(content: str, model: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def stream_chunk(delta: dict, model: str, finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


REPLIES = {  # model name -> answer text (for "faithful"-like models)
    "faithful": FAITHFUL,
    "fabricated": "抗凝治疗：「肝素可以治愈所有癌症」[1]",
    "empty": "",
    "condense": "特鲁索综合征的首选抗凝治疗是什么？",
    "translate": "特鲁索综合征的一线治疗是什么？",
}


class Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != "/v1/chat/completions" or not 0 < length <= MAX_BODY:
            self.send_error(404 if self.path != "/v1/chat/completions" else 413)
            return
        body = json.loads(self.rfile.read(length))
        self.server.requests.append({"body": body, "auth": self.headers.get("Authorization")})
        model = body["model"]
        if model == "slow":
            self.server.release.wait(SLOW_S)  # released at teardown, so shutdown never waits long
            model = "faithful"
        if model == "malformed":
            return self.reply(b'{"id": "chatcmpl-test", "choices": [{"message": {"content": "unterminated')
        if model == "no-choices":
            return self.reply(json.dumps({"id": "x", "object": "chat.completion", "error": "nope"}).encode())
        if body.get("stream"):
            return self.stream(REPLIES[model], model)
        self.reply(json.dumps(completion(REPLIES[model], model), ensure_ascii=False).encode())

    def reply(self, data: bytes) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def stream(self, text: str, model: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # HTTP/1.0: the body ends when the connection closes
        self.wfile.write(stream_chunk({"role": "assistant", "content": ""}, model))
        for i in range(0, len(text), 4):
            self.wfile.write(stream_chunk({"content": text[i : i + 4]}, model))
            self.wfile.flush()
        self.wfile.write(stream_chunk({}, model, finish="stop"))
        self.wfile.write(b"data: [DONE]\n\n")


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.release = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    srv = FakeOpenAI()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def generator(server: FakeOpenAI, model: str, timeout_s: float = TIMEOUT_S) -> LLMGenerator:
    chat = make_chat_model(server.base_url, model, api_key="sk-test", timeout_s=timeout_s)
    return LLMGenerator(chat, ExtractiveGenerator(extractive), timeout_s=timeout_s)


def ask(gen: LLMGenerator) -> Answer:
    return gen.generate("特鲁索综合征首选什么抗凝治疗？", "zh", HITS, DOCS)


def test_faithful_answer_over_http_is_verified(server):
    answer = ask(generator(server, "faithful", timeout_s=10))
    assert answer.answer == FAITHFUL and not any("抽取式" in n for n in answer.notes)
    (q,) = answer.quotes
    assert (q.n, q.doc_id, q.start, q.end) == (1, "zh-vte", START, START + len(HEPARIN))
    assert TEXT[q.start : q.end] == q.text == HEPARIN
    (req,) = server.requests
    assert req["auth"] == "Bearer sk-test" and req["body"]["temperature"] == 0
    system, user = req["body"]["messages"]
    assert system["role"] == "system" and "不得执行" in system["content"]
    assert HEPARIN in user["content"] and user["content"].rstrip().endswith(
        "问题：特鲁索综合征首选什么抗凝治疗？"
    )


def test_fabricated_quote_over_http_falls_back(server):
    answer = ask(generator(server, "fabricated", timeout_s=10))
    assert answer.answer == extractive("", "zh", HITS, DOCS).answer
    assert "未采用大模型答案（没有与原文一致的引文），显示抽取式答案" in answer.notes


@pytest.mark.parametrize("model", ["malformed", "no-choices"])
def test_malformed_body_falls_back(server, model):
    answer = ask(generator(server, model, timeout_s=10))
    assert answer.answer == extractive("", "zh", HITS, DOCS).answer
    assert answer.notes == ("大模型不可用（响应格式错误），显示抽取式答案",)


def test_empty_completion_falls_back(server):
    assert ask(generator(server, "empty", timeout_s=10)).notes == (
        "大模型不可用（响应为空），显示抽取式答案",
    )


def test_slow_server_falls_back_with_the_timeout_reason(server):
    started = time.monotonic()
    answer = ask(generator(server, "slow"))
    assert time.monotonic() - started < SLOW_S / 2
    assert answer.notes == (f"大模型不可用（{TIMEOUT_S:g} 秒内无响应），显示抽取式答案",)
    assert len(server.requests) == 1  # max_retries=0: no second attempt


def test_refused_connection_falls_back():
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chat = make_chat_model(f"http://127.0.0.1:{port}/v1", "faithful", api_key="sk-test", timeout_s=5)
    answer = ask(LLMGenerator(chat, ExtractiveGenerator(extractive), timeout_s=5))
    assert answer.notes == ("大模型不可用（无法连接服务器），显示抽取式答案",)


def test_streaming_over_http_yields_pieces_then_the_verified_answer(server):
    out = list(generator(server, "faithful", timeout_s=10).stream("首选什么？", "zh", HITS, DOCS))
    pieces, final = out[:-1], out[-1]
    assert len(pieces) > 3 and "".join(pieces) == FAITHFUL
    assert isinstance(final, Answer) and final.answer == FAITHFUL and final.quotes[0].start == START
    assert server.requests[0]["body"]["stream"] is True


def test_streaming_slow_server_falls_back(server):
    final = list(generator(server, "slow").stream("首选什么？", "zh", HITS, DOCS))[-1]
    assert final.notes == (f"大模型不可用（{TIMEOUT_S:g} 秒内无响应），显示抽取式答案",)


def test_condense_and_translate_over_http(server):
    chat = make_chat_model(server.base_url, "condense", api_key="sk-test", timeout_s=10)
    history = [("特鲁索综合征是什么？", "一种与癌症相关的血栓形成综合征[1]。")]
    assert condense_question(chat, history, "它首选什么抗凝治疗？", "zh") == REPLIES["condense"]
    assert "特鲁索综合征是什么？" in server.requests[0]["body"]["messages"][1]["content"]
    chat = make_chat_model(server.base_url, "translate", api_key="sk-test", timeout_s=10)
    q = "What is the first-line treatment for Trousseau syndrome?"
    assert translate_for_retrieval(chat, q) == REPLIES["translate"]
    slow = make_chat_model(server.base_url, "slow", api_key="sk-test", timeout_s=TIMEOUT_S)
    assert translate_for_retrieval(slow, q, timeout_s=TIMEOUT_S) == q

"""Gradio chat for the paper assistant: `python app.py [--index index] [--docs docs] [--port 7860]`.

Layout and wiring only; rendering, uploads and the question handling live in webui/.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# A medical assistant should not phone home; Gradio reads this at import.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from rag.answer.framing import templates
from rag.answer.llm import add_llm_arguments
from rag.cli import llm_options
from rag.pipeline import MODES, Pipeline
from webui.chat import MAX_K, ask, open_document, respond_stream
from webui.render import escape_markdown, quotes_json, status_line
from webui.uploads import ALLOWED_SUFFIXES, MAX_UPLOAD_BYTES, UploadResult, docs_mismatch
from webui.worker import UploadWorker

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder

EXAMPLES = [
    "特鲁索综合征的首选治疗是什么？",
    "What is the first-line drug for Trousseau syndrome?",
    "依维莫司治疗血管肉瘤的主要不良反应是什么？",
    "What are the blood markers associated with bone metastasis of lung cancer?",
]
CSS = (Path(__file__).parent / "webui" / "style.css").read_text(encoding="utf-8")
# System fonts only: no Google Fonts request (the app works offline) and proper CJK glyphs.
FONTS = [
    "system-ui",
    "PingFang SC",
    "Noto Sans CJK SC",
    "Microsoft YaHei",
    "Helvetica Neue",
    "Arial",
    "sans-serif",
]
SOURCES_PLACEHOLDER = (
    '<div class="placeholder">Sources appear here after you ask: each quote highlighted in its paper. '
    "<br>提问后，这里显示引用的原文及其出处。</div>"
)
# The sources panel is plain escaped HTML; a click on a card's button asks Python for the full document.
SOURCES_JS = """
element.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-quote]');
  if (b) trigger('click', {quote: Number(b.dataset.quote)});
});
"""
# Bring the focused quote into view whenever a document is opened (#q<n> also works as a link). The
# panel may mount only when its accordion first opens, after the value arrived: so also scroll on load.
DOC_VIEW_JS = """
const focusQuote = () => setTimeout(() => {
  const m = element.querySelector('mark.focus');
  if (m) m.scrollIntoView({block: 'center', behavior: 'smooth'});
}, 150);
focusQuote();
watch('value', focusQuote);
"""
PRIVATE = {"api_visibility": "private"}  # only /ask is part of the API
CONCURRENCY = 20  # questions answered at once by default (--concurrency)
UPLOAD_POLL_S = 1.0  # how often the page asks how far an upload got, while one is indexed


def build_app(
    pipeline: Pipeline,
    docs_dir: str | Path,
    worker: UploadWorker | None = None,
    concurrency: int = CONCURRENCY,
) -> gr.Blocks:
    """The Blocks app; `concurrency` questions are answered at once (the rest wait in Gradio's queue)."""
    docs_dir = Path(docs_dir)
    uploads_off = docs_mismatch(pipeline, docs_dir)
    worker = worker or UploadWorker(pipeline, docs_dir)

    def on_submit(question: str, history: list, pairs: list, mode: str, k: int):
        # A generator: with an LLM the draft streams in, then the verified answer replaces it.
        for turn in respond_stream(pipeline, question, history, mode, k, pairs):
            if turn.draft:
                yield turn.history, "", gr.skip(), gr.skip(), gr.skip()
            elif turn.sources_html is None:  # an error: keep the question for editing, keep the sources
                yield turn.history, question, gr.skip(), gr.skip(), gr.skip()
            else:
                sources_html = turn.sources_html or SOURCES_PLACEHOLDER
                yield turn.history, "", sources_html, turn.quotes, [*(pairs or []), list(turn.pair)]

    def on_open(quotes: list, evt: gr.EventData):
        n = getattr(evt, "_data", None) or {}
        if "quote" not in n:
            return gr.skip(), gr.skip()
        return open_document(pipeline, quotes, int(n["quote"])), gr.Accordion(open=True)

    def on_upload(paths: list[str] | None):
        files = [(Path(p).name, Path(p)) for p in paths or []]
        if not files:
            return escape_markdown(UploadResult().message()), gr.skip(), gr.Timer(active=False)
        busy = worker.start(files)  # indexed in the background: questions are answered meanwhile
        if busy:
            return escape_markdown(busy), None, gr.Timer(active=False)
        return escape_markdown(worker.progress().message()), None, gr.Timer(active=True)

    def on_tick():
        # File names come from the browser: shown literally, never as Markdown.
        progress = worker.progress()
        busy = progress.running
        return (
            escape_markdown(progress.message()),
            status_line(pipeline.status()) if not busy else gr.skip(),
            gr.Timer(active=busy),
            gr.Button(interactive=busy),
        )

    def on_cancel():
        worker.cancel()
        return escape_markdown(worker.progress().message())

    def api_ask(question: str, mode: str = "hybrid", k: int = 5) -> tuple[str, list[dict]]:
        """Answer a question from the papers: (answer text with [n] citations, quotes as JSON)."""
        try:
            answer = ask(pipeline, question, mode, k)
        except ValueError as exc:  # QuestionError and bad settings: the message tells the caller the fix
            raise gr.Error(str(exc)) from exc
        return answer.answer, quotes_json(answer)

    with gr.Blocks(title="Medical papers Q&A · 医学文献问答") as demo:
        quotes = gr.State([])
        pairs = gr.State([])  # [question, answer] of this conversation, to read follow-up questions
        gr.Markdown(
            "## Medical papers Q&A · 医学文献问答\n"
            "Ask in Chinese or English; answers quote the papers, with numbered citations. "
            "/ 中英文提问，答案引用原文并标注出处。",
            elem_id="app-title",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=340):
                chatbot = gr.Chatbot(
                    elem_id="chat",
                    label="Chat · 对话",
                    height="60vh",
                    latex_delimiters=[],
                    feedback_options=None,
                    buttons=["copy"],
                    placeholder="Ask a question about the papers below. · 请在下方输入问题。",
                )
                question = gr.Textbox(
                    show_label=False,
                    placeholder="e.g. 特鲁索综合征的首选治疗是什么？ / What is the first-line drug for Trousseau syndrome?",
                    submit_btn="Ask · 提问",
                    elem_id="question",
                    max_lines=6,
                )
                examples = gr.Examples(EXAMPLES, inputs=question, label="Examples · 示例")
                clear = gr.Button("New conversation · 新对话", size="sm", variant="secondary")
            with gr.Column(scale=2, min_width=320):
                sources = gr.HTML(SOURCES_PLACEHOLDER, elem_id="sources", js_on_load=SOURCES_JS)
                with gr.Accordion("Full document · 全文", open=False) as doc_box:
                    doc_view = gr.HTML(
                        '<div class="doc-view empty">Open a source to read it in its paper. / 点击来源查看全文。</div>',
                        elem_id="doc-view",
                        js_on_load=DOC_VIEW_JS,
                    )
                with gr.Accordion("Settings · 设置", open=False):
                    mode = gr.Radio(list(MODES), value="hybrid", label="Retrieval mode · 检索方式")
                    k = gr.Slider(1, MAX_K, value=5, step=1, label="Passages · 段落数")
                with gr.Accordion("Add documents · 添加文献", open=False):
                    files = gr.File(
                        file_count="multiple",
                        file_types=list(ALLOWED_SUFFIXES),
                        type="filepath",
                        label=f"{' '.join(ALLOWED_SUFFIXES)}, ≤ {MAX_UPLOAD_BYTES // 2**20} MB",
                        interactive=uploads_off is None,
                    )
                    with gr.Row():
                        add = gr.Button(
                            "Add to library · 加入文献库",
                            variant="primary",
                            interactive=uploads_off is None,
                            elem_id="upload-add",
                        )
                        cancel = gr.Button(
                            "Cancel · 取消", variant="stop", interactive=False, elem_id="upload-cancel"
                        )
                    upload_msg = gr.Markdown(escape_markdown(uploads_off or ""), elem_id="upload-msg")
                    ticker = gr.Timer(UPLOAD_POLL_S, active=False)
                status = gr.HTML(status_line(pipeline.status()), elem_id="status")

        outputs = [chatbot, question, sources, quotes, pairs]
        inputs = [question, chatbot, pairs, mode, k]
        question.submit(on_submit, inputs, outputs, **PRIVATE)
        examples.load_input_event.then(on_submit, inputs, outputs, **PRIVATE)
        clear.click(lambda: ([], "", SOURCES_PLACEHOLDER, [], []), None, outputs, **PRIVATE)
        sources.click(on_open, [quotes], [doc_view, doc_box], **PRIVATE)
        add.click(on_upload, [files], [upload_msg, files, ticker], concurrency_limit=1, **PRIVATE).then(
            lambda: gr.Button(interactive=worker.progress().running), None, cancel, **PRIVATE
        )
        ticker.tick(on_tick, None, [upload_msg, status, ticker, cancel], **PRIVATE)
        cancel.click(on_cancel, None, upload_msg, **PRIVATE)
        # Each page load shows the index as it is now, e.g. after someone else's upload.
        demo.load(lambda: status_line(pipeline.status()), None, status, **PRIVATE)
        gr.api(api_ask, api_name="ask")
    # Per event, `concurrency` calls at once: a question waiting on a slow LLM holds one slot, not the app.
    demo.queue(default_concurrency_limit=concurrency)
    return demo


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """`user:password` (the password may contain ':'), or None for no login."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth must look like user:password (both non-empty).")
    return user, password


def load_pipeline(index_dir: Path, docs_dir: Path, **options) -> Pipeline:
    """Open the index (building it first if missing) and load the model now, so the first question is fast.

    `options` go to `Pipeline.load` (the LLM generator and chat model, see `rag.cli.llm_options`)."""
    embedder: Embedder | None = None
    if not (index_dir / "manifest.json").exists():
        from rag.encode.embedding import SentenceTransformerEmbedder
        from rag.indexing.index import build_index
        from rag.settings import load_settings

        print(
            f"No index at {index_dir}; building it from {docs_dir} with the default model…", file=sys.stderr
        )
        from rag.encode.use import USEEmbedder

        encoder = load_settings().settings.encoder  # the packaged settings: no index folder yet
        embedder = SentenceTransformerEmbedder(runtime=encoder.runtime, limit_blas=encoder.limit_blas_threads)
        crosslingual = USEEmbedder()
        report = build_index(docs_dir, index_dir, embedder, crosslingual=crosslingual)
        print(report.summary(), file=sys.stderr)
        from rag.abstain.adaptive import adapt_after_build

        print(adapt_after_build(index_dir, embedder, crosslingual)[1], file=sys.stderr)
    pipeline = Pipeline.load(index_dir, embedder=embedder, **options)
    warm_up = getattr(pipeline.embedder, "warm_up", None)
    if warm_up:
        warm_up()
    pipeline.warm()  # jieba, the lazily read tables and word lists: not on the first question
    _ = pipeline.glossary  # an index without a stored glossary mines it now, not on the first question
    return pipeline


def build_encoders(pipeline: Pipeline):
    """What makes the encoders an upload's build uses: copies of the pipeline's, with one
    onnxruntime thread, so a build leaves a core to the questions asked meanwhile."""
    from rag.encode.embedding import SentenceTransformerEmbedder
    from rag.encode.use import USEEmbedder

    e5, xl = pipeline.embedder, pipeline.index.crosslingual
    if not isinstance(e5, SentenceTransformerEmbedder):
        return None

    def make():
        copy = SentenceTransformerEmbedder(
            e5.name_or_path, runtime=e5.runtime, threads=1, limit_blas=e5.limit_blas
        )
        return copy, USEEmbedder() if isinstance(xl, USEEmbedder) else xl

    return make


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Chat with the indexed papers in a browser.")
    parser.add_argument(
        "--index", default=os.environ.get("RAG_INDEX", "index"), help="index folder (default: %(default)s)"
    )
    parser.add_argument(
        "--docs",
        default=os.environ.get("RAG_DOCS", "docs"),
        help="papers folder; uploads go to <docs>/uploads (default: %(default)s)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    parser.add_argument(
        "--auth",
        default=os.environ.get("RAG_APP_AUTH"),
        help="require a login, user:password (default: $RAG_APP_AUTH)",
    )
    parser.add_argument(
        "--share", action="store_true", help="also open a public *.gradio.live link (off by default)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=CONCURRENCY,
        help="questions answered at once; more wait in the queue (default: %(default)s)",
    )
    add_llm_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rag.encode.models import ModelLoadError
    from rag.indexing.store import IndexLoadError

    try:
        auth = parse_auth(args.auth)
        pipeline = load_pipeline(Path(args.index), Path(args.docs), **llm_options(args))
    except (IndexLoadError, ModelLoadError, OSError, ValueError) as exc:  # each message says what to fix
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if auth is None and (args.share or not _is_loopback(args.host)):
        print(
            "warning: the app is reachable from other machines without a login; use --auth user:password",
            file=sys.stderr,
        )
    if args.concurrency < 1:
        print(f"error: --concurrency must be at least 1, got {args.concurrency}", file=sys.stderr)
        return 2
    worker = UploadWorker(pipeline, args.docs, embedders=build_encoders(pipeline))
    if worker.recovered:
        print(f"removed files of an unfinished upload: {', '.join(worker.recovered)}", file=sys.stderr)
    build_app(pipeline, args.docs, worker, args.concurrency).launch(
        server_name=args.host, server_port=args.port, share=args.share, **launch_options(auth)
    )
    return 0


def launch_options(auth: tuple[str, str] | None) -> dict:
    """`Blocks.launch` keywords besides the address: the look, the limits, and the login (throttled
    per client address, webui/throttle.py)."""
    from starlette.middleware import Middleware

    from webui.throttle import LoginThrottle

    def throttled(seconds: float) -> str:
        return " / ".join(templates(lang)["login_throttled"].format(seconds=seconds) for lang in ("en", "zh"))

    return {
        "auth": auth,
        "app_kwargs": {"middleware": [Middleware(LoginThrottle, message=throttled)]} if auth else None,
        "max_file_size": MAX_UPLOAD_BYTES,
        "theme": gr.themes.Soft(font=FONTS, font_mono=["ui-monospace", "monospace"]),
        "css": CSS,
        "footer_links": ["api"],
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
    }


if __name__ == "__main__":
    sys.exit(main())

"""The app in a real browser: Debian's Chromium driven by Playwright against `python app.py`.

One app process for the session, on a free loopback port, with a copy of the bundled papers and an
index built by the app itself with the real default model (so start-up indexing is tested too).
Screenshots go to test-output/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.ingest.loading import CATALOG, SUPPORTED

from .conftest import DOCS, REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = REPO / "test-output" / "screenshots"
START_TIMEOUT_S = 300  # the first start builds the index with the real model
ANSWER_TIMEOUT_MS = 60_000
ZORATINIB = """佐拉替尼治疗晚期胆管癌的一期临床研究

摘要
佐拉替尼（zoratinib）是一种虚构的口服FGFR2抑制剂。本研究纳入24例晚期胆管癌患者。
推荐的二期剂量为每日两次、每次137毫克。最常见的不良反应为味觉倒错和指甲脱落。

结论
佐拉替尼在胆管癌中显示出初步疗效，客观缓解率为29%。
"""


XSS_NOTE = """佐拉替尼储存说明

佐拉替尼的储存温度为2至8摄氏度 <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> <b class="evil">避光保存</b>。
"""


def _require_chromium() -> None:
    """Skip with instructions on a developer machine; fail in CI, where a skip would hide a gap."""
    reason = None
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} not found: install it with `sudo apt-get install chromium` "
            "(or `bash scripts/install-browser.sh`, which `make test` runs)"
        )
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed: pip install -e '.[dev]'"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    pytest.fail(
        f"app.py did not answer within {START_TIMEOUT_S}s:\n{log.read_text(errors='replace')[-3000:]}"
    )


@pytest.fixture(scope="session")
def app_server(tmp_path_factory) -> Iterator[dict]:
    _require_chromium()
    root = tmp_path_factory.mktemp("app")
    docs = root / "docs"
    shutil.copytree(DOCS, docs, ignore=shutil.ignore_patterns("uploads"))  # uploads must not touch the repo
    port = _free_port()
    log = root / "app.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    env.pop("RAG_APP_AUTH", None)
    cmd = [sys.executable, "app.py", "--index", str(root / "index"), "--docs", str(docs), "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, proc, log)
        yield {"url": url, "docs": docs, "index": root / "index", "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def browser_context(app_server, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # fresh user-data dir: no cache, no cookies
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            locale="zh-CN",
        )
        yield context
        context.close()


@pytest.fixture
def page(browser_context, app_server):
    page = browser_context.new_page()
    page.set_default_timeout(ANSWER_TIMEOUT_MS)
    page.goto(app_server["url"])
    page.wait_for_selector("#question textarea")
    yield page
    page.close()


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def library_status(page, docs: Path) -> str:
    """The status line once the page's load event has shown the library as it is now.

    The line the page is first served with was rendered when the app started; the load event then
    replaces it, so a test that reads it at once can see a count from before an earlier upload.
    """
    files = sum(1 for p in docs.rglob("*") if p.suffix.lower() in SUPPORTED and p.name != CATALOG)
    page.wait_for_function(
        "n => { const t = document.querySelector('#status')?.innerText || '';"
        " return t.startsWith(n + ' documents') && !t.includes('queue'); }",
        arg=files,
    )
    return page.locator("#status").inner_text()


def bot_messages(page):
    return page.locator('#chat [data-testid="bot"]')


def ask(page, question: str) -> str:
    """Type a question, press Enter, and return the text of the new assistant message."""
    before = bot_messages(page).count()
    page.fill("#question textarea", question)
    page.press("#question textarea", "Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#chat [data-testid=\"bot\"]').length > n", arg=before
    )
    return bot_messages(page).last.inner_text()


QUOTE_IN_VIEW_JS = """quote => {
  const text = document.querySelector('#doc-view .doc-text');
  const m = document.querySelector('#doc-view mark.focus');
  if (!text || !m || m.textContent !== quote) return false;
  const box = text.getBoundingClientRect(), r = m.getBoundingClientRect();
  return r.top >= box.top - 1 && r.top < box.bottom && r.top >= 0 && r.top < window.innerHeight;
}"""


def open_first_source(page) -> None:
    """Open source [1] in the full-document view: the same quote is marked and scrolled into view."""
    quote = page.locator("#sources mark").first.text_content()
    page.locator("#sources button.src-open").first.click()
    try:  # polled: smooth scrolling takes a moment
        page.wait_for_function(QUOTE_IN_VIEW_JS, arg=quote, timeout=10_000)
    except Exception as exc:
        shot(page, "FAILED-quote-not-scrolled-into-view")
        raise AssertionError("the quoted passage should be marked and scrolled into view") from exc


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_chinese_question_is_answered_with_a_citation_and_highlighted_source(page):
    answer = ask(page, "特鲁索综合征的首选治疗是什么？")
    assert "[1]" in answer and "低分子肝素" in answer
    mark = page.locator("#sources mark").first
    mark.wait_for()
    assert mark.is_visible() and mark.inner_text().strip()
    assert "特鲁索综合征" in page.locator("#sources .src-title").first.inner_text()
    shot(page, "answer-zh-with-sources")

    open_first_source(page)


def test_english_question_is_answered_in_english_with_a_citation(page):
    ask(page, "依维莫司治疗血管肉瘤的主要不良反应是什么？")
    open_first_source(page)  # the document panel is now mounted: the next open must scroll it too
    answer = ask(page, "What are the blood markers associated with bone metastasis of lung cancer?")
    assert "[1]" in answer
    page.locator("#sources mark").first.wait_for()
    assert "肺癌骨转移" in page.locator("#sources .src-title").first.inner_text()
    shot(page, "answer-en-with-sources")
    open_first_source(page)
    shot(page, "full-document-en-quote-scrolled-into-view")


def test_off_topic_question_gets_an_abstention(page):
    answer = ask(page, "Who won the 2022 World Cup final?")
    shot(page, "off-topic-question")
    assert "do not answer this" in answer
    assert "Nearest passages" in page.locator("#sources").inner_text()


def test_question_errors_are_shown_as_messages(page):
    answer = ask(page, "为什么" * 400)
    assert answer.startswith("⚠") and "1000" in answer
    shot(page, "question-too-long-shown-as-message")
    assert page.locator("#question textarea").input_value() == "为什么" * 400  # kept for editing


def test_uploaded_document_becomes_searchable(page, app_server, tmp_path):
    paper = tmp_path / "zoratinib-phase1.txt"
    paper.write_text(ZORATINIB, encoding="utf-8")
    documents = int(re.search(r"(\d+) documents", library_status(page, app_server["docs"])).group(1))
    page.get_by_text("Add documents · 添加文献").click()
    page.locator('input[type="file"]').set_input_files(str(paper))
    page.get_by_role("button", name="Add to library · 加入文献库").click()
    page.wait_for_function("() => document.querySelector('#upload-msg')?.innerText.includes('uploads/')")
    assert "uploads/zoratinib-phase1" in page.locator("#upload-msg").inner_text()
    assert (app_server["docs"] / "uploads" / "zoratinib-phase1.txt").exists()
    assert f"{documents + 1} documents" in page.locator("#status").inner_text()

    answer = ask(page, "佐拉替尼的推荐剂量是多少？")
    assert "[1]" in answer and "137" in answer
    # the paper's first line, short and without a full stop, is its title (not the file name)
    assert "佐拉替尼治疗晚期胆管癌的一期临床研究" in page.locator("#sources .src-title").first.inner_text()
    shot(page, "upload-then-answer-from-new-paper")

    page.reload()  # a new visitor sees the new count too
    page.wait_for_function(
        "n => document.querySelector('#status')?.innerText.includes(n + ' documents')", arg=documents + 1
    )


def test_upload_shows_progress_and_cancel_leaves_the_library_as_it_was(page, app_server, tmp_path):
    # Long enough (distinct sentences, each embedded) that the build is still running at the click.
    paper = tmp_path / "long-cancelled.txt"
    paper.write_text(
        "长篇病例汇编\n\n"
        + "\n".join(
            f"第{i}例患者的血小板计数为{i * 7 % 500}，随访{i % 37}个月后病情稳定。" for i in range(3000)
        ),
        encoding="utf-8",
    )
    docs = app_server["docs"]
    before = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*"))
    status = library_status(page, docs)
    page.get_by_text("Add documents · 添加文献").click()
    page.locator('input[type="file"]').set_input_files(str(paper))
    page.get_by_role("button", name="Add to library · 加入文献库").click()
    page.wait_for_function(
        "() => document.querySelector('#upload-msg')?.innerText.includes('texts embedded')"
    )
    shot(page, "upload-progress")
    answer = ask(page, "特鲁索综合征的首选治疗是什么？")  # answered while the upload is indexed
    assert "[1]" in answer
    page.locator("#upload-cancel").click()
    page.wait_for_function(
        "() => document.querySelector('#upload-msg')?.innerText.includes('Upload cancelled')", timeout=120_000
    )
    shot(page, "upload-cancelled")
    assert sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*")) == before
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    page.reload()
    try:
        page.wait_for_function("s => document.querySelector('#status')?.innerText === s", arg=status)
    except PlaywrightTimeoutError:  # say what differs, not only that the wait ran out
        assert page.locator("#status").inner_text() == status


def test_html_in_a_document_is_shown_as_text_never_run(page, tmp_path):
    paper = tmp_path / "storage-note.md"
    paper.write_text(XSS_NOTE, encoding="utf-8")
    page.get_by_text("Add documents · 添加文献").click()
    page.locator('input[type="file"]').set_input_files(str(paper))
    page.get_by_role("button", name="Add to library · 加入文献库").click()
    page.wait_for_function(
        "() => document.querySelector('#upload-msg')?.innerText.includes('uploads/storage-note')"
    )

    answer = ask(page, "佐拉替尼的储存温度是多少？")
    assert "2至8摄氏度" in answer and "<img" in answer  # shown literally in the chat
    assert "<script>" in page.locator("#sources").inner_text()
    page.locator("#sources button.src-open").first.click()
    page.locator("#doc-view mark.focus").wait_for()
    assert "<script>" in page.locator("#doc-view").inner_text()
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("#chat img[src='x'], #sources img, #doc-view img, #sources b.evil").count() == 0
    shot(page, "document-html-shown-escaped")


def test_phone_width_has_no_horizontal_scroll_and_sources_stack_below(browser_context, app_server):
    page = browser_context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.set_default_timeout(ANSWER_TIMEOUT_MS)
    page.goto(app_server["url"])
    page.wait_for_selector("#question textarea")
    before = bot_messages(page).count()
    page.get_by_text("依维莫司治疗血管肉瘤的主要不良反应是什么？").first.click()  # an example runs at once
    page.wait_for_function(
        "n => document.querySelectorAll('#chat [data-testid=\"bot\"]').length > n", arg=before
    )
    page.locator("#sources mark").first.wait_for()
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 390px width"
    chat, sources = page.locator("#chat").bounding_box(), page.locator("#sources").bounding_box()
    assert sources["y"] >= chat["y"] + chat["height"], "sources should stack under the chat on a phone"
    shot(page, "phone-390x844-answer-zh")
    page.close()


def test_api_answers_the_same_as_the_ui(page, app_server):
    from gradio_client import Client

    question = "What is the first-line drug for Trousseau syndrome?"
    ui_answer = ask(page, question)
    ui_mark = page.locator("#sources mark").first.text_content()
    client = Client(app_server["url"], verbose=False)
    api_answer, quotes = client.predict(question, "hybrid", 5, api_name="/ask")
    assert _squash(api_answer) in _squash(ui_answer)
    assert quotes and quotes[0]["n"] == 1 and quotes[0]["text"] == ui_mark
    fields = {"n", "doc_id", "title", "section", "page", "ocr", "start", "end", "text"}
    assert set(quotes[0]) == fields
    assert quotes[0]["page"] is None and quotes[0]["ocr"] is False  # a text file has no pages


def test_app_serves_no_files_from_disk(app_server):
    targets = [
        app_server["docs"] / "trousseau-syndrome-review.txt",
        app_server["index"] / "manifest.json",
        REPO / "app.py",
        Path("/etc/passwd"),
    ]
    for target in targets:
        url = f"{app_server['url']}gradio_api/file={target}"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=5)
        assert err.value.code in (403, 404), f"{target} answered {err.value.code}"

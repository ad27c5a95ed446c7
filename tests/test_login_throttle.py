"""With --auth, wrong logins are throttled per client address: the real Gradio app, launched here."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from rag.answer.compose import AnswerSettings
from rag.pipeline import Pipeline
from webui.throttle import FREE_FAILURES, LoginThrottle

from .conftest import FakeEmbedder


def _login(url: str, password: str) -> tuple[int, dict]:
    data = urllib.parse.urlencode({"username": "doc", "password": password}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}login", data=data), timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture
def launched(fake_index, tiny_corpus):
    import app

    pipeline = Pipeline.load(
        fake_index, embedder=FakeEmbedder(), answer_settings=AnswerSettings(min_score=0.1)
    )
    demo = app.build_app(pipeline, tiny_corpus)
    _, url, _ = demo.launch(
        server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.launch_options(("doc", "s3cret"))
    )
    try:
        yield url
    finally:
        demo.close()


def test_wrong_logins_are_throttled_and_the_right_one_waits_too(launched):
    answers = [_login(launched, f"guess-{i}") for i in range(50)]
    codes = [code for code, _ in answers]
    assert codes[:FREE_FAILURES] == [400] * FREE_FAILURES  # typos are answered as wrong
    # Then a wait: refused without checking the password (a slow machine may let one more through).
    assert codes[FREE_FAILURES] == 400 and codes[FREE_FAILURES + 1 :].count(429) >= 40
    detail = next(body["detail"] for code, body in reversed(answers) if code == 429)
    assert "Too many failed logins from this address; try again in" in detail and "秒后再试" in detail
    assert _login(launched, "s3cret")[0] == 429  # even the right password waits its turn


def test_the_wait_grows_and_a_success_clears_it():
    now = [0.0]
    throttle = LoginThrottle(app=None, free=2, first_wait=1.0, longest=8.0, clock=lambda: now[0])
    for _ in range(2):
        throttle._record("1.2.3.4", ok=False)
    assert throttle.wait_left("1.2.3.4") == 0  # the free ones
    waits = []
    for _ in range(6):
        throttle._record("1.2.3.4", ok=False)
        waits.append(throttle.wait_left("1.2.3.4"))
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert throttle.wait_left("5.6.7.8") == 0  # another client is not held
    throttle._record("1.2.3.4", ok=True)
    assert throttle.wait_left("1.2.3.4") == 0

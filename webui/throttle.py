"""Login attempts throttled per client (with --auth): a few wrong passwords, then a growing wait.

An ASGI middleware in front of Gradio's POST /login: it counts the failed answers (HTTP 400) per
client address and, past `free` failures, refuses further attempts from that address with HTTP 429
until the wait is over; the wait doubles with every failure after that, up to `longest`. A
successful login clears the count. Other clients are not affected.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

FREE_FAILURES = 5  # wrong passwords allowed before any wait (typos happen)
FIRST_WAIT_S = 2.0  # the wait after the first failure past those, in seconds; doubled per failure
LONGEST_WAIT_S = 300.0  # the wait never grows beyond this, in seconds
_MAX_CLIENTS = 10_000  # addresses remembered; the oldest are forgotten first


class LoginThrottle:
    def __init__(
        self,
        app: Any,
        free: int = FREE_FAILURES,
        first_wait: float = FIRST_WAIT_S,
        longest: float = LONGEST_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        message: Callable[[float], str] | None = None,
    ) -> None:
        self.app, self.free, self.first_wait, self.longest, self.clock = app, free, first_wait, longest, clock
        self.message = message or (lambda s: f"Too many failed logins; try again in {s:.0f} s.")
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (failures, blocked until)
        self._lock = threading.Lock()

    def wait_left(self, client: str) -> float:
        with self._lock:
            _, until = self._failures.get(client, (0, 0.0))
        return max(0.0, until - self.clock())

    def _record(self, client: str, ok: bool) -> None:
        with self._lock:
            if ok:
                self._failures.pop(client, None)
                return
            failures = self._failures.pop(client, (0, 0.0))[0] + 1
            over = failures - self.free
            wait = min(self.longest, self.first_wait * 2 ** (over - 1)) if over > 0 else 0.0
            self._failures[client] = (failures, self.clock() + wait)
            while len(self._failures) > _MAX_CLIENTS:
                self._failures.pop(next(iter(self._failures)))

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or not _is_login(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        left = self.wait_left(client)
        if left > 0:
            body = json.dumps({"detail": self.message(left)}, ensure_ascii=False).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"retry-after", str(int(left) + 1).encode()),
            ]
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        status: list[int] = []

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        if status and status[0] in (200, 400):  # 400: Gradio's "Incorrect credentials."
            self._record(client, status[0] == 200)


def _is_login(path: str) -> bool:
    return path.rstrip("/").endswith("/login")

"""Child processes for the cold-start and memory sections: python -c children, the app, /proc readings."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Loads an embedder from "module:Class" so tests can run the children with the fake embedder.
EMBEDDER_SNIPPET = """
def _embedder(spec):
    if not spec:
        return None
    import importlib
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)()
"""

STATUS_SNIPPET = """
def _status(folder=None):
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024
    if folder is not None:
        import os
        folder, mapped, inside = os.path.realpath(folder) + os.sep, 0, False
        with open("/proc/self/smaps") as f:
            for line in f:
                head = line.split(None, 5)
                if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
                    inside = len(head) == 6 and head[5].strip().startswith(folder)
                elif inside and line.startswith("Rss:"):
                    mapped += int(line.split()[1]) * 1024
        out["MappedIndex"] = mapped
    return out
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int | str = "self", folder: Path | None = None) -> dict[str, int]:
    """VmHWM (peak resident) and VmRSS (resident now) of a process, in bytes; with `folder`, also
    MappedIndex: the part of VmRSS that is pages of files mapped from that folder (the index's vectors)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024
    if folder is not None:
        out["MappedIndex"] = mapped_resident(pid, folder)
    return out


def mapped_resident(pid: int | str, folder: Path) -> int:
    """Resident bytes of the memory mappings of files under `folder` (/proc/<pid>/smaps)."""
    prefix, total, inside = os.path.realpath(folder) + os.sep, 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(None, 5)
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            inside = len(head) == 6 and head[5].strip().startswith(prefix)
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1]) * 1024
    return total


def run_child(python: str, code: str, args: list[str], cwd: Path, timeout: float) -> tuple[dict, float]:
    """Run `python -c code args...`; returns (the JSON its last stdout line holds, parent wall start).

    The start is time.time() taken just before the process is created, so a child's own time.time()
    stamps measure from process creation (same clock).
    """
    started = time.time()
    done = subprocess.run(
        [python, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"child exited with {done.returncode}: {done.stderr.strip()[-800:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"child printed no JSON; stdout: {done.stdout[-400:]!r}")
    return json.loads(lines[-1]), started


@dataclass
class App:
    proc: subprocess.Popen
    port: int
    log: Path
    started: float  # time.time() just before the process was created

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def log_tail(self, chars: int = 600) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_app(python: str, app: Path, index_dir: Path, docs_dir: Path, log: Path) -> App:
    """Start app.py with the Makefile's flags on a free port; its own session, so stop() ends all of it."""
    port = free_port()
    cmd = [python, str(app), "--index", str(index_dir), "--docs", str(docs_dir)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    started = time.time()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=app.parent, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return App(proc, port, log, started)


def wait_http(app: App, timeout: float) -> float | None:
    """Poll the app's / until HTTP 200; seconds since the process was created, or None if it died
    or did not answer within `timeout` seconds."""
    while time.time() - app.started < timeout:
        if app.proc.poll() is not None:
            return None
        try:
            with urllib.request.urlopen(app.url, timeout=2) as resp:
                if resp.status == 200:
                    return time.time() - app.started
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.05)
    return None


def stop(app: App) -> None:
    """End the app's process group (only what start_app created)."""
    if app.proc.poll() is None:
        try:
            os.killpg(app.proc.pid, signal.SIGTERM)
            app.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(app.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            app.proc.wait(timeout=10)

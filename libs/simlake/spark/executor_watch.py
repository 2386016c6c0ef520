"""Fail, instead of waiting forever, when a cluster run has no executor left.

On a standalone (or YARN, k8s) cluster, a run whose workers are all lost does not fail: its
jobs wait for executors that no worker will start, and a nightly ingest would hang until
someone kills it. A watch thread of the driver cancels the running jobs once no executor has
been registered for ``spark.simlake.executorLossTimeout`` seconds (default
:data:`DEFAULT_TIMEOUT_S`; ``0`` turns it off) while a job waits, with a reason that
:func:`simlake.faults.describe` turns into the run's one line. Nothing of the batch is
committed (its commit comes after its jobs), so the next run completes the work. Local
masters run their tasks in the driver and are not watched.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark import SparkContext

log = logging.getLogger(__name__)

TIMEOUT_KEY = "spark.simlake.executorLossTimeout"
#: Seconds without an executor, while a job waits, before the jobs are cancelled: longer than
#: a worker takes to start an executor, short enough for a nightly schedule.
DEFAULT_TIMEOUT_S = 300.0
#: Start of the reason the cancelled jobs carry (``Job N cancelled <reason>``).
REASON_PREFIX = "no Spark executor"
_POLL_S = 2.0
_LOCK = threading.Lock()
#: The watch thread of each context (by id; a stopped context's thread has ended).
_WATCHED: dict[int, threading.Thread] = {}


def watch_executors(sc: SparkContext) -> threading.Thread | None:
    """Start the watch of ``sc`` (a daemon thread that ends with the context), once per
    context; None when the master is local or the timeout is 0."""
    master = sc.master or ""
    timeout = float(sc.getConf().get(TIMEOUT_KEY, str(DEFAULT_TIMEOUT_S)))
    if master.startswith("local") or timeout <= 0:
        return None
    with _LOCK:
        thread = _WATCHED.get(id(sc))
        if thread is None or not thread.is_alive():
            thread = threading.Thread(target=_watch, args=(sc, timeout), daemon=True,
                                      name="simlake-executor-watch")
            thread.start()
            _WATCHED[id(sc)] = thread
    return thread


def _executors(sc: SparkContext) -> int | None:
    """Executors registered with the driver (the driver itself not counted); None once the
    context is stopped."""
    jsc = sc._jsc
    if jsc is None:
        return None
    return int(jsc.sc().getExecutorMemoryStatus().size()) - 1


def _watch(sc: SparkContext, timeout: float) -> None:
    without_since: float | None = None
    while True:
        time.sleep(_POLL_S)
        try:
            executors = _executors(sc)
            if executors is None:
                return
            waiting = bool(sc.statusTracker().getActiveJobsIds())
        except Exception:  # the context is stopping: nothing to watch any more
            return
        if executors > 0 or not waiting:
            without_since = None
            continue
        now = time.monotonic()
        without_since = without_since or now
        if now - without_since < timeout:
            continue
        reason = (f"{REASON_PREFIX} for {timeout:g} s while jobs waited (the workers were "
                  "lost, or none has free resources)")
        log.error("%s: cancelling the running jobs", reason)
        try:
            jvm_sc = sc._jsc.sc()  # type: ignore[union-attr]
            for job_id in sc.statusTracker().getActiveJobsIds():
                jvm_sc.cancelJob(int(job_id), reason)
        except Exception:
            log.exception("cancelling the jobs failed")
            return
        without_since = None

"""The commit phase of an ingest batch: the decoded data files of the good folders committed,
one Delta commit per table, several tables side by side.

Each commit replaces whatever the table held for the batch's target folders (like
``replaceWhere sim_run IN (...)``) through delta-spark's transaction: idempotent, so a rerun
replaces what a crashed or concurrent run left. Files of failed folders are never committed
and are deleted, as is everything uncommitted when a commit fails. The completion record
(``metadata``) is not committed here: it comes last, alone (``simlake.spark.complete``).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from simlake.checkpoint import Checkpoint
from simlake.ingest_decide import Decision
from simlake.ingest_options import IngestOptions
from simlake.spark import tables
from simlake.spark.decode import SPIKE_TABLES, DataFiles, discard
from simlake.spark.delta_commit import Replace

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

#: Tables decoded from raw files, in commit order.
DECODED_TABLES = ("voltage_traces", "synapse_activation", "cell_activation", "dendritic_recordings")

#: Tables committed side by side: each commit is ~0.2 s of driver work (mostly JVM), and the
#: logs of different tables are independent.
COMMIT_THREADS = 4


def commit_decoded(spark: SparkSession, opts: IngestOptions, files: DataFiles,
                   decision: Decision, checkpoint: Checkpoint, batch: int) -> dict[str, int]:
    """Commit the data ``files`` of the decision's good folders (decoded tables and the spike
    times derived from them), each table's in one commit replacing the targets' rows, up to
    :data:`COMMIT_THREADS` tables at once; returns the rows added per table.

    ``checkpoint`` is told each table's key from the thread that committed it, right after
    the commit: a checkpoint that holds one thread leaves the other commits running. A failed
    commit fails the batch once the others have finished (each failure logged). Every data file
    not committed is deleted before this returns or raises."""
    good = set(decision.good_runs)
    keys = [k for k in (*DECODED_TABLES, *SPIKE_TABLES) if k in files]
    committed: dict[str, set[str]] = {}

    def commit(key: str) -> int:
        keep = [f for f in files[key] if set(f.sim_runs) <= good]
        mixed = [f.path for f in files[key] if set(f.sim_runs) & good
                 and not set(f.sim_runs) <= good]
        if mixed:  # cannot happen: a folder fails with rows only in strict mode (split files)
            raise RuntimeError(f"{key}: data files mix good and failed folders: {mixed}")
        if not decision.targets:
            return 0
        replace = (Replace(list(decision.targets), "threshold",
                           getattr(opts, SPIKE_TABLES[key][1]))
                   if key in SPIKE_TABLES else Replace(list(decision.targets)))
        started = time.monotonic()
        rows = tables.commit(spark, opts.db_path, key, keep, replace)
        committed[key] = {f.path for f in keep}
        log.info("batch %d: %s committed in %.1fs", batch, key, time.monotonic() - started)
        checkpoint.reached(key, batch)
        return rows

    pool = ThreadPoolExecutor(max_workers=COMMIT_THREADS, thread_name_prefix="simlake-commit")
    futures = {key: pool.submit(commit, key) for key in keys}
    try:
        for future in futures.values():
            future.exception()  # wait for all
    finally:  # also on an interrupt: no data file is deleted under a commit still running
        pool.shutdown(wait=True, cancel_futures=True)
        discard(opts.db_path, {k: [f for f in files[k] if f.path not in committed.get(k, ())]
                               for k in keys})
    failures = [(key, exc) for key, f in futures.items()
                if not f.cancelled() and (exc := f.exception()) is not None]
    for key, exc in failures[1:]:
        log.error("%s: commit failed too: %s", key, exc)
    if failures:
        raise failures[0][1]
    return {key: f.result() for key, f in futures.items() if decision.targets}

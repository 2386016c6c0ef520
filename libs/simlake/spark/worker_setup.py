"""Once-per-process setup of Spark's Python workers (called by every executor function).

PySpark calls ``importlib.invalidate_caches()`` at the start of every task. Since Python 3.10 a
``zipimporter`` answers that by re-reading its archive's whole directory, and a Spark worker has
several large archives on ``sys.path``: ``pyspark.zip``, py4j, the spark-core jar and the jars of
``--packages`` (Delta's is 7.7 MB). Measured on the 2-core test machine: 0.13-0.37 s per task,
nearly all of a trivial task's cost, paid again by every task. The archives do not change while
a worker lives, so the re-read is skipped (directory caches of new archives still fill on first
use). Nothing else of the import system is touched.

Switch: ``SIMLAKE_WORKER_IMPORT_PATCH=false`` in the workers' environment turns it off (on a
cluster: ``--conf spark.executorEnv.SIMLAKE_WORKER_IMPORT_PATCH=false``).
"""

from __future__ import annotations

import os
import zipimport

#: Environment variable of the switch (on unless set to a false value).
SWITCH_ENV = "SIMLAKE_WORKER_IMPORT_PATCH"

_MARK = "_simlake_keeps_directory"


def _keep_directory(self) -> None:
    """``zipimporter.invalidate_caches`` that keeps the directory read at first use."""


setattr(_keep_directory, _MARK, True)


def prepare_worker() -> None:
    """Make this Python worker's later tasks skip re-reading archive directories (idempotent),
    unless the switch is off."""
    if os.environ.get(SWITCH_ENV, "true").strip().lower() in ("0", "false", "no", "off"):
        return
    if not getattr(zipimport.zipimporter.invalidate_caches, _MARK, False):
        zipimport.zipimporter.invalidate_caches = _keep_directory  # type: ignore[method-assign]

"""How long the run logs of a database are kept (``simlake vacuum`` prunes them).

Every ingest keeps its log in ``<db>/_simlake_logs/`` (tens of KB to a few MB each, one per
nightly run). ``simlake vacuum`` deletes those older than its retention, except the newest
:data:`KEEP_LAST_LOGS` and every log that a kept run record of a failed run (exit code not
0) names: the detail of a failure stays as long as its record. Run records
(``<db>/_simlake_runs/``, a few KB each) are the database's history (``simlake history``,
``DataBase(path, as_of=run_id)``) and are never deleted.
"""

from __future__ import annotations

import os
import time

from simlake.runlog import logs_path
from simlake.runrecords import read_run_records

#: Run logs kept whatever their age.
KEEP_LAST_LOGS = 20


def logs_to_prune(db_root: str, retention_hours: float, keep_last: int = KEEP_LAST_LOGS,
                  now: float | None = None) -> list[str]:
    """Paths of the run logs of ``db_root`` that are older than ``retention_hours`` (by
    modification time), not among the ``keep_last`` newest, and not named by the record of a
    failed run; sorted."""
    folder = logs_path(db_root)
    try:
        names = [n for n in os.listdir(folder) if n.endswith(".log") and not n.startswith(".")]
    except FileNotFoundError:
        return []
    mtimes = {n: os.stat(os.path.join(folder, n)).st_mtime for n in names}
    newest = sorted(names, key=lambda n: (mtimes[n], n), reverse=True)[:max(0, keep_last)]
    failed = {os.path.basename(str(r["log"])) for r in read_run_records(db_root)
              if r.get("log") and r.get("exit_code") not in (0, None)}
    cutoff = (time.time() if now is None else now) - retention_hours * 3600
    keep = set(newest) | failed
    return sorted(os.path.join(folder, n) for n in names
                  if n not in keep and mtimes[n] < cutoff)


def prune_logs(db_root: str, retention_hours: float, keep_last: int = KEEP_LAST_LOGS,
               dry_run: bool = False) -> list[str]:
    """Delete (unless ``dry_run``) the logs :func:`logs_to_prune` names; returns them."""
    victims = logs_to_prune(db_root, retention_hours, keep_last)
    if not dry_run:
        for path in victims:
            try:
                os.remove(path)
            except FileNotFoundError:  # a second vacuum at the same time took it
                pass
    return victims

"""The kept record of every ingest run: ``<db>/_simlake_runs/<start>_<run_id>.json``.

One small JSON document per run (the same record ``simlake ingest --summary-json`` writes),
so that ``simlake history``, ``DataBase.history()`` and ``DataBase(path, as_of=run_id)`` can
say which ingests ran, when, and what each added, without a JVM. Fields every record has:
``run_id`` (str), ``started`` and ``finished`` (ISO-8601 UTC strings), ``exit_code`` (int);
``table_versions`` ({table name: its Delta version once the run's commits are done}; what
``as_of=run_id`` opens); the rest (folders, trials, files, bytes, rows per table, rejected
files with reasons) is whatever the run knew. Each record is written atomically (temp file +
rename), so a reader never sees half of one; a run killed before it writes its record simply
has none.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

RUNS_DIR = "_simlake_runs"
REQUIRED_FIELDS = ("run_id", "started", "finished", "exit_code")


def runs_path(db_root: str) -> str:
    """Folder that holds the run records of the database ``db_root``."""
    return os.path.join(os.path.abspath(db_root), RUNS_DIR)


def write_run_record(db_root: str, record: dict[str, Any]) -> str:
    """Store ``record`` (JSON-serialisable, with :data:`REQUIRED_FIELDS`); returns its path."""
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise ValueError(f"run record lacks {missing}")
    folder = runs_path(db_root)
    os.makedirs(folder, exist_ok=True)
    stamp = str(record["started"]).replace(":", "").replace("-", "")
    final = os.path.join(folder, f"{stamp}_{record['run_id']}.json")
    fd, tmp = tempfile.mkstemp(prefix=".run.", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1, sort_keys=True, default=str)
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return final


def read_run_records(db_root: str) -> list[dict[str, Any]]:
    """Every kept run record of ``db_root``, oldest first (by start time); [] when none."""
    folder = runs_path(db_root)
    try:
        names = sorted(n for n in os.listdir(folder)
                       if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return []
    records = []
    for name in names:
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            records.append(json.load(fh))
    return sorted(records, key=lambda r: str(r.get("started", "")))

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
    write_json(final, record)
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


def table_versions(db_root: str) -> dict[str, int]:
    """{table name: current Delta version} of every Delta table in ``db_root`` (read with
    ``deltalake``, no JVM)."""
    from deltalake import DeltaTable

    versions: dict[str, int] = {}
    try:
        names = sorted(os.listdir(db_root))
    except OSError:
        return versions
    for name in names:
        if os.path.isdir(os.path.join(db_root, name, "_delta_log")):
            try:
                versions[name] = DeltaTable(os.path.join(db_root, name)).version()
            except Exception:  # a table that cannot be read is left out, not fatal
                continue
    return versions


def ingest_record(run_id: str, summary, *, started: str, finished: str, exit_code: int,
                  table_versions: dict[str, int], error: str | None = None,
                  log_path: str | None = None) -> dict[str, Any]:
    """The run record of an ingest from its summary (``simlake.ingest_report.IngestSummary``,
    or None when the run stopped before it had one)."""
    record: dict[str, Any] = {"run_id": run_id, "started": started, "finished": finished,
                              "exit_code": exit_code, "error": error, "log": log_path,
                              "table_versions": table_versions}
    if summary is None:
        return record
    record.update({
        "simresult_path": summary.simresult_path,
        "db_path": summary.db_path,
        "folders": {
            "found": summary.folders_found,
            "new": list(summary.folders_new),
            "already_present": summary.folders_already_present,
            "changed": list(summary.folders_changed),
            "refreshed": list(summary.folders_refreshed),
            "failed": list(summary.folders_failed),
            "failed_before": list(summary.folders_failed_before),
            "done_concurrently": list(summary.folders_done_concurrently),
            "skipped_running": list(summary.skipped_running),
        },
        "folders_added": list(summary.folders_new),
        "trials": summary.trials,
        "trials_added": summary.trials,
        "files": summary.files_read,
        "bytes": summary.bytes_read,
        "rows": dict(summary.rows),
        "rejected": [{"path": r.path, "sim_run": r.sim_run, "kind": r.kind, "reason": r.reason}
                     for r in summary.rejections],
        "notes": list(summary.notes),
        "nothing_new": summary.nothing_new,
        "seconds": round(summary.seconds, 3),
    })
    return record


def write_json(path: str, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically (a hidden temp file, then a rename): a reader
    never sees half of it (the kept records, ``--summary-json``)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".run.", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

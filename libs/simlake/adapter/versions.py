"""A database at an earlier moment, and the list of ingest runs (no JVM).

``DataBase(path, as_of=...)`` pins every table to its Delta version of one moment:

- ``as_of`` = the run id of an ingest: with a kept run record (:mod:`simlake.runrecords`), the
  versions the run recorded once its commits were done (its end time for tables it did not
  record); without one, every table as it was when the run's completion record committed;
- ``as_of`` = a time (``datetime``, ``pandas.Timestamp`` or ISO string; naive means UTC): for
  each table the last version committed at or before it; a table created later is absent.

The tables are consistent with each other because the completion record (``metadata``) is
pinned too: data of a folder whose completion record came after the moment is hidden like
that of a killed run. Versions that ``vacuum`` has already deleted the files of cannot be
read: ``optimize`` keeps Delta's default retention of 7 days unless told otherwise.
"""

from __future__ import annotations

import datetime
import json
import os
import urllib.parse
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from deltalake import DeltaTable

from simlake.layout import delta_tables
from simlake.runrecords import read_run_records


def _timestamp_ms(value: Any) -> int:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


def _version_at(path: str, when_ms: int) -> int | None:
    """Last version of the table at ``path`` committed at or before ``when_ms``."""
    commits = DeltaTable(path).history()
    versions = [int(c["version"]) for c in commits if int(c["timestamp"]) <= when_ms]
    return max(versions) if versions else None


def commit_time(path: str, version: int) -> str | None:
    """ISO time (UTC) of the commit of ``version`` of the table at ``path``."""
    for c in DeltaTable(path).history():
        if int(c["version"]) == version:
            when = datetime.datetime.fromtimestamp(int(c["timestamp"]) / 1000, datetime.UTC)
            return when.isoformat(timespec="seconds")
    return None


def table_versions_as_of(root: str, as_of: Any) -> dict[str, int | None]:
    """Table name -> the Delta version to read for ``as_of`` (None: not there yet)."""
    tables = delta_tables(root)
    record = None
    if isinstance(as_of, str):
        record = next((r for r in read_run_records(root) if r.get("run_id") == as_of), None)
    if record is not None:
        recorded = record.get("table_versions") or {}
        when_ms = _timestamp_ms(record["finished"])
        return {t: (int(recorded[t]) if recorded.get(t) is not None
                    else _version_at(os.path.join(root, t), when_ms)) for t in tables}
    completed = _completion_ms(root, as_of) if isinstance(as_of, str) else None
    if completed is not None:
        return {t: _version_at(os.path.join(root, t), completed) for t in tables}
    try:
        when_ms = _timestamp_ms(as_of)
    except (ValueError, TypeError) as err:
        raise ValueError(f"as_of={as_of!r} is neither the run id of an ingest with a kept "
                         f"record in {root} nor a time") from err
    return {t: _version_at(os.path.join(root, t), when_ms) for t in tables}


def _completion_ms(root: str, run_id: str) -> int | None:
    """Commit time of the completion record (``metadata``) of the run ``run_id``, for runs
    without a kept record: the first commit that added a metadata file holding its rows."""
    log_dir = os.path.join(root, "metadata", "_delta_log")
    if not os.path.isdir(log_dir):
        return None
    for name in sorted(n for n in os.listdir(log_dir) if n.endswith(".json")):
        added, when = [], None
        with open(os.path.join(log_dir, name), encoding="utf-8") as fh:
            for line in fh:
                action = json.loads(line)
                if "add" in action:
                    added.append(urllib.parse.unquote(action["add"]["path"]))
                elif "commitInfo" in action:
                    when = action["commitInfo"].get("timestamp")
        for rel in added:
            path = os.path.join(root, "metadata", rel)
            if os.path.exists(path) and run_id in pq.read_table(
                    path, columns=["run_id"]).column("run_id").to_pylist():
                return int(when) if when is not None else int(os.path.getmtime(path) * 1000)
    return None


def _count(value: Any) -> int | None:
    if value is None:
        return None
    return len(value) if isinstance(value, list | tuple | dict) else int(value)


def ingest_history(root: str) -> pd.DataFrame:
    """One row per ingest run, oldest first (see ``DataBase.history``), from the runs that
    ``simlake history`` lists (:func:`simlake.ops.info.run_history`: the kept run records,
    or where none were kept, the completion record's run ids and commit times)."""
    from simlake.ops.info import run_history

    _, runs = run_history(root)
    rows = [{"run_id": r.get("run_id"), "started": r.get("started"),
             "finished": r.get("finished"), "exit_code": r.get("exit_code"),
             "folders_added": _count(r.get("folders_added", r.get("folders"))),
             "trials_added": _count(r.get("trials_added", r.get("trials")))} for r in runs]
    columns = ["run_id", "started", "finished", "exit_code", "folders_added", "trials_added"]
    return pd.DataFrame(rows, columns=columns)

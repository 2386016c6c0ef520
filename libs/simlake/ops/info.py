"""``simlake info`` and ``simlake history``: what a database holds and which ingests ran.

Both read the Delta logs, the small ``metadata`` table and the kept run records
(:mod:`simlake.runrecords`); the big tables' data files are never opened. Where a database
has no run records (written before simlake kept them, or by a run killed before its end),
the history comes from the ``metadata`` table: its ``run_id`` column says which run
completed each trial, and the Delta log when the files holding its rows were added.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from simlake import runrecords
from simlake.adapter import deltafiles as df_
from simlake.manifest import read_manifest
from simlake.ops.tables import delta_tables


@dataclass(frozen=True)
class TableInfo:
    """One Delta table as its log describes it (live files only)."""

    name: str
    version: int
    files: int
    rows: int | None  # None when some add action has no numRecords
    bytes: int
    last_commit: str | None  # ISO-8601 UTC
    last_operation: str | None


def _iso(ms: Any) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC).isoformat(timespec="seconds")


def table_info(db_root: str, name: str) -> TableInfo:
    """Version, live files, rows and bytes of table ``name`` from its Delta log."""
    table = DeltaTable(os.path.join(db_root, name))
    actions = pa.table(table.get_add_actions(flatten=True))
    counts = actions.column("num_records").to_pylist() if "num_records" in \
        actions.column_names else [None] * actions.num_rows
    last = (table.history(limit=1) or [{}])[0]
    return TableInfo(
        name=name,
        version=table.version(),
        files=actions.num_rows,
        rows=None if None in counts else int(sum(counts)),
        bytes=int(pc.sum(actions.column("size_bytes")).as_py() or 0),
        last_commit=_iso(last.get("timestamp")),
        last_operation=last.get("operation"),
    )


def _metadata_rows(db_root: str, columns: list[str]) -> pa.Table | None:
    path = os.path.join(db_root, "metadata")
    if not df_.is_delta_table(path):
        return None
    snap = df_.open_table(path, stats_columns=())
    cols = [c for c in columns if c in snap.schema.names]
    return df_.read_files(snap.files, cols, snap.schema, sort_key=None, parallel=True)


def _disk_bytes(db_root: str) -> int:
    total = 0
    for folder, _, names in os.walk(db_root):
        for n in names:
            try:
                total += os.lstat(os.path.join(folder, n)).st_size
            except OSError:  # removed meanwhile (vacuum, an ingest's scratch)
                continue
    return total


def database_info(db_root: str) -> dict[str, Any]:
    """What ``simlake info`` prints, as a JSON-serialisable dict."""
    root = os.path.abspath(db_root)
    tables = [table_info(root, name) for name in delta_tables(root)]
    meta = _metadata_rows(root, ["sim_trial_index", "sim_run"])
    records = runrecords.read_run_records(root)
    return {
        "database": root,
        "simresult_path": read_manifest(root).get("simresult_path"),
        "trials": None if meta is None else len(pc.unique(meta.column("sim_trial_index"))),
        "folders": None if meta is None else len(pc.unique(meta.column("sim_run"))),
        "tables": [asdict(t) for t in tables],
        "live_bytes": sum(t.bytes for t in tables),
        "disk_bytes": _disk_bytes(root),
        "runs_recorded": len(records),
        "last_ingest": _last_ingest(root, records),
    }


def _last_ingest(root: str, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    if records:
        last = records[-1]
        return {k: last.get(k) for k in ("run_id", "started", "finished", "exit_code")} | {
            "source": "run record"}
    runs = runs_from_metadata(root)
    if not runs:
        return None
    last = max(runs, key=lambda r: r["finished"] or "")
    return {"run_id": last["run_id"], "finished": last["finished"], "source": "delta log"}


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_info(info: dict[str, Any]) -> list[str]:
    """The lines ``simlake info`` prints."""
    lines = [f"database   {info['database']}"]
    if info["simresult_path"]:
        lines.append(f"raw tree   {info['simresult_path']}")
    if info["trials"] is None:
        lines.append("trials     none completed (no metadata table)")
    else:
        lines.append(f"trials     {info['trials']} in {info['folders']} sim-run folders")
    last = info["last_ingest"]
    if last is None:
        lines.append("last ingest  none recorded")
    else:
        exit_code = f", exit {last['exit_code']}" if last.get("exit_code") is not None else ""
        lines.append(f"last ingest  {last['run_id']} finished {last.get('finished') or '?'}"
                     f"{exit_code} (from the {last['source']}; `simlake history` lists all)")
    freed = info["disk_bytes"] - info["live_bytes"]
    lines.append(f"size       {_size(info['live_bytes'])} in the tables' live files, "
                 f"{_size(info['disk_bytes'])} on disk ({_size(max(freed, 0))} other: old "
                 "table versions that vacuum may free, param files, logs)")
    width = max([len(t["name"]) for t in info["tables"]] + [5])
    lines.append(f"{'table':<{width}}  {'version':>7}  {'files':>6}  {'rows':>10}  "
                 f"{'size':>10}  last commit")
    for t in info["tables"]:
        rows = "?" if t["rows"] is None else str(t["rows"])
        lines.append(f"{t['name']:<{width}}  {t['version']:>7}  {t['files']:>6}  {rows:>10}  "
                     f"{_size(t['bytes']):>10}  {t['last_commit'] or '?'} "
                     f"{t['last_operation'] or ''}".rstrip())
    return lines


# --------------------------------------------------------------------------------------------
# history


def runs_from_metadata(db_root: str) -> list[dict[str, Any]]:
    """One entry per ``run_id`` of the ``metadata`` table: trials and folders it completed,
    and when (the latest add time of the data files holding its rows), oldest first."""
    path = os.path.join(os.path.abspath(db_root), "metadata")
    if not df_.is_delta_table(path):
        return []
    actions = pa.table(DeltaTable(path).get_add_actions(flatten=True))
    runs: dict[str, dict[str, Any]] = {}
    for log_path, added in zip(actions.column("path").to_pylist(),
                               actions.column("modification_time").to_pylist(), strict=True):
        # the add action's time survives copies of the database (file mtimes do not)
        rows = pq.read_table(df_.file_path(path, log_path))  # small: one row per trial
        if "run_id" not in rows.column_names:  # written before runs were recorded
            rows = rows.append_column("run_id", pa.nulls(rows.num_rows, pa.string()))
        for run_id, group in _groups(rows, "run_id"):
            entry = runs.setdefault(run_id, {"run_id": run_id, "trials": set(),
                                             "folders": set(), "times": []})
            entry["trials"].update(group.column("sim_trial_index").to_pylist())
            entry["folders"].update(group.column("sim_run").to_pylist())
            entry["times"].append(added)
    out = []
    for entry in runs.values():
        stamps = [_stamp(t) for t in entry.pop("times") if t is not None]
        entry["trials"], entry["folders"] = len(entry["trials"]), len(entry["folders"])
        entry["finished"] = max(stamps) if stamps else None
        out.append(entry)
    return sorted(out, key=lambda r: r["finished"] or "")


def _stamp(value: Any) -> str:
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    return _iso(value) or ""


def _groups(rows: pa.Table, column: str):
    col = rows.column(column)
    for value in pc.unique(col).to_pylist():
        mask = pc.is_null(col) if value is None else pc.fill_null(pc.equal(col, value), False)
        yield (value or "(unknown run)"), rows.filter(mask)


def run_history(db_root: str) -> tuple[str, list[dict[str, Any]]]:
    """``(source, runs)``: the kept run records, or (none kept) runs from the metadata table."""
    records = runrecords.read_run_records(db_root)
    if records:
        return "run records", records
    return "metadata table and Delta log", runs_from_metadata(db_root)


#: Fields of a run record shown on its own line's head; the others follow as ``name=value``.
_HEAD = ("started", "finished", "run_id", "exit_code")


def format_history(source: str, runs: list[dict[str, Any]]) -> list[str]:
    """The lines ``simlake history`` prints: one per run, oldest first."""
    if not runs:
        return ["no ingest runs recorded"]
    lines = [f"{len(runs)} ingest run(s), from the {source}:"]
    for run in runs:
        head = [str(run.get(k)) for k in _HEAD if run.get(k) is not None]
        tail = [f"{k}={_short(v)}" for k, v in run.items()
                if k not in _HEAD and k != "table_versions" and _short(v) is not None]
        lines.append("  ".join(head + tail))
    return lines


def _short(value: Any) -> str | None:
    """A record field in a few characters: scalars as they are, collections by their size."""
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, str):
        return value if len(value) <= 40 else value[:37] + "..."
    if isinstance(value, list | dict):
        return str(len(value))
    return None

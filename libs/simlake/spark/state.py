"""What a database holds, read on the driver with ``deltalake`` (small reads, no Spark job):
the committed folders, the recorded failures, the trials of stored folders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from simlake.ingest_select import DatabaseState, FailedFolder
from simlake.spark import tables


def committed_folders(db_path: str) -> dict[str, str | None]:
    """sim_run -> folder fingerprint of every folder whose metadata is committed."""
    meta = tables.read_columns(db_path, "metadata", ["sim_run", "folder_fingerprint"])
    out: dict[str, str | None] = {}
    if meta is None:
        return out
    pairs = meta.group_by(["sim_run", "folder_fingerprint"]).aggregate([])
    for sim_run, fp in zip(pairs.column("sim_run").to_pylist(),
                           pairs.column("folder_fingerprint").to_pylist(), strict=True):
        # an older version's rows (no fingerprint) and ours can mix in one folder
        out[sim_run] = fp if out.get(sim_run) is None else out[sim_run]
    return out


def read_state(db_path: str) -> DatabaseState:
    """The committed folders and the recorded failures of the database ``db_path``."""
    committed = committed_folders(db_path)
    failed: dict[str, FailedFolder] = {}
    failures = tables.read_columns(db_path, "ingest_failed_folders",
                                   ["sim_run", "folder_fingerprint", "strict", "reason",
                                    "run_id", "time"])
    if failures is not None:
        rows = failures.to_pylist()
        for r in sorted(rows, key=lambda r: (r["time"], r["run_id"] or "")):
            if r["sim_run"] not in committed:
                failed[r["sim_run"]] = FailedFolder(r["folder_fingerprint"], bool(r["strict"]),
                                                    r["reason"] or "", r["run_id"] or "")
    return DatabaseState(committed, failed)


def trials_of(db_path: str, sim_runs: Sequence[str]) -> dict[str, set[int]]:
    """sim_run -> trial numbers of these folders in the stored completion record."""
    rows = tables.read_columns(db_path, "metadata", ["sim_run", "trialnr"], sim_runs)
    trials: dict[str, set[int]] = defaultdict(set)
    if rows is not None:
        for sim_run, trialnr in zip(rows.column("sim_run").to_pylist(),
                                    rows.column("trialnr").to_pylist(), strict=True):
            trials[sim_run].add(int(trialnr))
    return dict(trials)

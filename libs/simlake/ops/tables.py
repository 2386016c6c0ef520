"""The Delta tables of a database folder and the completion rule, for the operator commands."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc

from simlake.adapter import deltafiles as df_
from simlake.layout import MANIFEST_NAME, TRIAL_TABLES, delta_tables

__all__ = ["TRIAL_TABLES", "database_problem", "delta_tables", "completed_sim_runs"]


def database_problem(db_root: str) -> str | None:
    """Why ``db_root`` is no simlake database (one line), or None when it is one."""
    if not os.path.exists(db_root):
        return f"{db_root}: no such database folder"
    if not os.path.isdir(db_root):
        return f"{db_root}: not a folder"
    if not delta_tables(db_root) and not os.path.isfile(os.path.join(db_root, MANIFEST_NAME)):
        return f"{db_root}: not a simlake database (no Delta tables, no {MANIFEST_NAME})"
    return None


def completed_sim_runs(db_root: str) -> pa.Array:
    """Distinct ``sim_run`` values of the ``metadata`` table (the completion record); an
    empty array when there is none."""
    path = os.path.join(db_root, "metadata")
    if not df_.is_delta_table(path):
        return pa.array([], pa.string())
    snap = df_.open_table(path, stats_columns=())
    table = df_.read_files(snap.files, ["sim_run"], snap.schema, sort_key=None, parallel=True)
    return pc.unique(table.column("sim_run").combine_chunks())

"""Table-by-table comparison of databases, read back with ``deltalake`` (no JVM).

Used by the crash, concurrency, refresh and bad-input tests: a database after kills/reruns or
concurrent runs must hold exactly the rows of a clean ingest; between a kill and the rerun, the
reader-visible view (rows of ``sim_run`` values present in ``metadata``, the rule the adapter
applies) must show no half-written folder. Also builds the expected tables of a raw tree from
``reference`` (the independent plain reading).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from deltalake import DeltaTable

import reference as ref

#: Every table of a database that the ingest writes per trial.
KEYS = ("metadata", "voltage_traces", "synapse_activation", "cell_activation", "spike_times",
        "dendritic_recordings", "dendritic_spike_times", "parameterfiles")
#: Per-run bookkeeping columns: differ between two runs that write the same data.
RUN_COLUMNS = ("run_id", "time")


def has_table(db: str, key: str) -> bool:
    return os.path.isdir(os.path.join(db, key, "_delta_log"))


def version(db: str, key: str) -> int | None:
    return DeltaTable(os.path.join(db, key)).version() if has_table(db, key) else None


def versions(db: str, keys=KEYS + ("ingest_errors", "ingest_failed_folders")) -> dict:
    return {key: version(db, key) for key in keys}


def _hashable(value):
    if isinstance(value, (list, np.ndarray)):
        return tuple(float(v) for v in value)
    return value


def table_frame(db: str, key: str) -> pd.DataFrame:
    """All rows of a table, list columns as tuples, bookkeeping columns dropped, sorted."""
    if not has_table(db, key):
        return pd.DataFrame()
    frame = DeltaTable(os.path.join(db, key)).to_pyarrow_table().to_pandas()
    frame = frame.drop(columns=[c for c in RUN_COLUMNS if c in frame.columns])
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(_hashable)
    return canonical(frame)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by every column (None/NaN-safe), index reset."""
    if frame.empty:
        return frame.reset_index(drop=True)
    keys = frame.map(lambda v: (v is None, repr(v))) if len(frame.columns) else frame
    order = sorted(range(len(frame)), key=lambda i: tuple(keys.iloc[i]))
    return frame.iloc[order].reset_index(drop=True)


def committed_sim_runs(db: str) -> set[str]:
    if not has_table(db, "metadata"):
        return set()
    return set(DeltaTable(os.path.join(db, "metadata")).to_pyarrow_table(
        columns=["sim_run"]).column(0).to_pylist())


def visible(frame: pd.DataFrame, sim_runs: set[str]) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[frame["sim_run"].isin(sim_runs)].reset_index(drop=True)


def assert_frames_equal(got: pd.DataFrame, expected: pd.DataFrame, what: str) -> None:
    assert list(got.columns) == list(expected.columns), (what, list(got.columns))
    assert len(got) == len(expected), f"{what}: {len(got)} rows, expected {len(expected)}"
    dup = got.duplicated()
    assert not dup.any(), f"{what}: duplicate rows {got[dup].head(3)}"
    for col in got.columns:
        a, b = got[col].tolist(), expected[col].tolist()
        if a != b:
            bad = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
            raise AssertionError(f"{what}: column {col} differs at row {bad}: {a[bad]!r} != "
                                 f"{b[bad]!r}")


def assert_same_tables(db: str, clean_db: str, keys=KEYS) -> None:
    """Every table of ``db`` holds exactly the rows of the same table of ``clean_db``."""
    for key in keys:
        assert_frames_equal(table_frame(db, key), table_frame(clean_db, key), f"{db}/{key}")


def assert_visible_is_complete(db: str, clean_db: str, keys=KEYS) -> set[str]:
    """The reader-visible rows of ``db`` are, for every committed folder, exactly its rows in
    ``clean_db``: no half-written folder is visible. Returns the committed folders."""
    done = committed_sim_runs(db)
    for key in keys:
        got = visible(table_frame(db, key), done)
        expected = visible(table_frame(clean_db, key), done)
        if got.empty and expected.empty:  # e.g. no table yet: nothing visible, as expected
            continue
        assert_frames_equal(got, expected, f"visible {db}/{key}")
    return done


def error_set(db: str) -> set[tuple]:
    """Distinct (path, sim_run, kind, reason) of the ``ingest_errors`` log."""
    if not has_table(db, "ingest_errors"):
        return set()
    frame = DeltaTable(os.path.join(db, "ingest_errors")).to_pyarrow_table().to_pandas()
    return set(frame[["path", "sim_run", "kind", "reason"]].itertuples(index=False, name=None))


# --------------------------------------------------------------------------- expectations


def expected_tables(raw: str, sim_runs: set[str] | None = None) -> dict[str, pd.DataFrame]:
    """The per-trial tables a correct ingest of ``raw`` holds, from the plain reference reading
    (restricted to ``sim_runs`` if given), in the column layout of :func:`table_frame`."""
    volt = ref.voltage_rows(raw)
    dend = ref.dendritic_rows(raw)
    syn = ref.activation_rows(raw, "synapses")
    cells = ref.activation_rows(raw, "cells")
    if sim_runs is not None:
        volt, dend, syn, cells = (f[f["sim_run"].isin(sim_runs)] for f in (volt, dend, syn, cells))
    out = {
        "voltage_traces": volt[["sim_trial_index", "sim_run", "trialnr", "t", "vm"]],
        "synapse_activation": syn,
        "cell_activation": cells,
        "dendritic_recordings": dend[["recording_site", "sim_trial_index", "sim_run", "trialnr",
                                      "t", "vm"]],
    }
    spikes = [(r.sim_trial_index, r.sim_run, r.trialnr, 0.0, ref.crossings(r.t, r.vm, 0.0))
              for r in volt.itertuples()]
    out["spike_times"] = pd.DataFrame(spikes, columns=["sim_trial_index", "sim_run", "trialnr",
                                                       "threshold", "spike_times"])
    dspikes = [(r.recording_site, -30.0, r.sim_trial_index, r.sim_run, r.trialnr,
                ref.crossings(r.t, r.vm, -30.0)) for r in dend.itertuples()]
    out["dendritic_spike_times"] = pd.DataFrame(dspikes, columns=[
        "recording_site", "threshold", "sim_trial_index", "sim_run", "trialnr", "spike_times"])
    out["metadata"] = volt[["sim_trial_index", "sim_run", "trialnr"]]
    result = {}
    for key, frame in out.items():
        frame = frame.copy()
        for col in frame.columns:
            if frame[col].dtype == object:
                frame[col] = frame[col].map(_hashable)
        if "trialnr" in frame.columns:
            frame["trialnr"] = frame["trialnr"].astype("int64")
        result[key] = canonical(frame.reset_index(drop=True))
    return result


def assert_matches_reference(db: str, expected: dict[str, pd.DataFrame]) -> None:
    """The per-trial tables of ``db`` equal the reference expectations (metadata: its key
    columns)."""
    for key, exp in expected.items():
        got = table_frame(db, key)
        got = canonical(got[list(exp.columns)]) if not got.empty else got
        assert_frames_equal(got, exp, f"{db}/{key} vs reference")

"""Link mode: keys served straight from a raw tree (synth generator, every format variant),
compared with an independent plain reading (``reference``), then materialised by optimize."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import reference as ref
from simlake import synth
from simlake.adapter import DataBase, optimize, readfiles
from simlake.adapter import deltafiles as df_
from simlake.adapter.link import LINKABLE
from simlake.manifest import read_manifest, write_manifest

SOMA, DEND = 0.0, -30.0


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("link") / "raw")
    synth.generate_tree(root, runs=6, trials=3, times=300, synapses=40, cells=30, seed=5)
    return root


def linked_db(raw: str, path: str) -> DataBase:
    os.makedirs(path)
    write_manifest(path, {"simresult_path": raw, "filelist": [], "user_keys": {},
                          "link_keys": {k: {} for k in LINKABLE}})
    return DataBase(path)


def _idx(values) -> pd.Index:
    return pd.Index(list(values), dtype="str", name="sim_trial_index")


def wide(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.sort_values("sim_trial_index", kind="stable")
    times = sorted({x for t in rows["t"] for x in t})
    col = {x: i for i, x in enumerate(times)}
    mat = np.full((len(rows), len(times)), np.nan)
    for i, (t, vm) in enumerate(zip(rows["t"], rows["vm"], strict=True)):
        for x, v in zip(t, vm, strict=True):
            mat[i, col[float(x)]] = v
    return pd.DataFrame(mat, index=_idx(rows["sim_trial_index"]),
                        columns=pd.Index(times, dtype="float64"))


def activation(rows: pd.DataFrame, scalars: list[str], lists: str,
               dtypes: list[str]) -> pd.DataFrame:
    rows = rows.sort_values("sim_trial_index", kind="stable")
    k = max((len(x) for x in rows[lists]), default=0)
    data = {c: pd.Series(rows[c].tolist(), dtype=d) for c, d in zip(scalars, dtypes,
                                                                   strict=True)}
    for i in range(k):
        data[str(i)] = pd.Series([x[i] if i < len(x) else np.nan for x in rows[lists]],
                                 dtype="float64")
    out = pd.DataFrame(data)
    out.index = _idx(rows["sim_trial_index"])
    return out


def spikes(rows: pd.DataFrame, threshold: float, trials: list[str]) -> pd.DataFrame:
    trains = {s: ref.crossings(np.asarray(t), np.asarray(v), threshold)
              for s, t, v in zip(rows["sim_trial_index"], rows["t"], rows["vm"], strict=True)}
    k = max((len(v) for v in trains.values()), default=0)
    mat = np.full((len(trials), k), np.nan)
    for i, s in enumerate(trials):
        mat[i, :len(trains.get(s, []))] = trains.get(s, [])
    return pd.DataFrame(mat, index=_idx(trials), columns=pd.RangeIndex(k))


@pytest.fixture(scope="module")
def expected(raw) -> dict:
    volt = ref.voltage_rows(raw)
    trials = sorted(volt["sim_trial_index"])
    out = {"trials": trials, "voltage_traces": wide(volt),
           "synapse_activation": activation(
               ref.activation_rows(raw, "synapses"),
               ["synapse_type", "synapse_ID", "soma_distance", "section_ID", "section_pt_ID",
                "dendrite_label"], "activation_times",
               ["str", "int64", "float64", "int64", "int64", "str"]),
           "cell_activation": activation(ref.activation_rows(raw, "cells"),
                                         ["presynaptic_cell_type", "cell_ID"], "spike_times",
                                         ["str", "int64"]),
           "spike_times": spikes(volt, SOMA, trials)}
    dend = ref.dendritic_rows(raw)
    out["dendritic_recordings"] = {s: wide(g) for s, g in dend.groupby("recording_site")}
    out["dendritic_spike_times"] = {f"{s}_{DEND!r}": spikes(g, DEND, trials)
                                    for s, g in dend.groupby("recording_site")}
    return out


def check_all(db: DataBase, expected: dict) -> None:
    assert list(db["sim_trial_index"]) == expected["trials"]
    meta = db["metadata"]
    assert list(meta["sim_trial_index"]) == expected["trials"]
    assert list(meta.columns) == ["sim_trial_index", "path", "trialnr",
                                  "voltage_traces_file_name", "synapses_file_name",
                                  "cells_file_name"]
    assert all(len(x) == 6 for x in meta["trialnr"])
    for key in ("voltage_traces", "synapse_activation", "cell_activation"):
        frame = db[key]
        assert frame.known_divisions, key
        pd.testing.assert_frame_equal(frame.compute(), expected[key], check_exact=True)
    pd.testing.assert_frame_equal(db["spike_times"], expected["spike_times"], check_exact=True)
    dr = db["dendritic_recordings"]
    assert dr.keys() == tuple(sorted(expected["dendritic_recordings"]))
    for site, frame in expected["dendritic_recordings"].items():
        pd.testing.assert_frame_equal(dr[site].compute(), frame, check_exact=True)
    ds = db["dendritic_spike_times"]
    assert ds.keys() == tuple(sorted(expected["dendritic_spike_times"]))
    for key, frame in expected["dendritic_spike_times"].items():
        pd.testing.assert_frame_equal(ds[key], frame, check_exact=True)


def test_link_frames_equal_an_independent_reading(raw, expected, tmp_path):
    db = linked_db(raw, str(tmp_path / "db"))
    assert [k for k in db.keys() if k in LINKABLE + ("sim_trial_index",)] == [
        "sim_trial_index", "metadata", "voltage_traces", "synapse_activation",
        "cell_activation", "spike_times", "dendritic_recordings", "dendritic_spike_times"]
    assert "link to the raw simrun files" in db.describe("voltage_traces")
    check_all(db, expected)
    meta = db["metadata"]
    npz = meta[meta["voltage_traces_file_name"].str.endswith(".npz")]
    assert len(npz) and npz["voltage_traces_file_name"].str.endswith("_vm_all_traces.npz").all()


def test_link_keys_restricted_to_sim_runs(raw, tmp_path):
    db = linked_db(raw, str(tmp_path / "db"))
    runs = sorted({s.rsplit("/", 1)[0] for s in db["sim_trial_index"]})
    manifest = read_manifest(db.basedir)
    manifest["link_keys"] = {k: {"sim_runs": runs[:2]} for k in LINKABLE}
    write_manifest(db.basedir, manifest)
    got = db["voltage_traces"].compute()
    assert sorted({s.rsplit("/", 1)[0] for s in got.index}) == runs[:2]


def test_optimize_materialises_link_keys(raw, expected, tmp_path, monkeypatch):
    db = linked_db(raw, str(tmp_path / "db"))
    results = optimize(db, select=list(LINKABLE))
    assert all(r.materialized for r in results.values())
    assert read_manifest(db.basedir)["link_keys"] == {}
    for key in LINKABLE:
        assert df_.is_delta_table(os.path.join(db.basedir, key)), key
        assert db.describe(key).startswith("Delta table")
    check_all(db, expected)  # the same frames, now from Delta

    class Counting:
        def __init__(self):
            import pyarrow.fs as pafs

            self.fs, self.opened = pafs.LocalFileSystem(), []

        def open_input_file(self, path):
            self.opened.append(path)
            return self.fs.open_input_file(path)

    fs = Counting()
    frame = db["voltage_traces"]
    monkeypatch.setattr(readfiles, "_FS", fs)
    # materialised tables record that their statistics are exact: no footer reads for ranges
    snap = df_.open_table(os.path.join(db.basedir, "synapse_activation"))
    assert snap.configuration[df_.PREFIX_LENGTH_PROPERTY] == "1024"
    assert all(r is not None for r in df_.file_ranges(snap, snap.files, "sim_trial_index",
                                                       df_.FileInfoCache()))
    assert fs.opened == []
    sti = expected["trials"][4]
    got = frame.loc[sti].compute()
    assert len(set(fs.opened)) == 1  # its footer (row groups holding sti), then those rows
    pd.testing.assert_frame_equal(got, expected["voltage_traces"].loc[[sti]],
                                  check_exact=True)


def test_partial_materialisation_mixes_delta_and_link(raw, expected, tmp_path):
    db = linked_db(raw, str(tmp_path / "db"))
    optimize(db, select=["voltage_traces", "synapse_activation"])
    assert set(read_manifest(db.basedir)["link_keys"]) == set(LINKABLE) - {
        "voltage_traces", "synapse_activation"}
    # metadata is still a link key: it is the completion record of the new Delta tables
    check_all(db, expected)
    optimize(db, select=["metadata"])
    check_all(db, expected)

"""An ISF analysis notebook, as ISF's tutorials write it, on a real ingested database: only the
import lines differ from ISF (``from simlake import DataBase``, ``from simlake.isf import ...``,
``from simlake.dumpers import ...``). Results are checked against plain pandas/numpy readings
of the raw files (``reference``), not against simlake itself."""

from __future__ import annotations

import os
import shutil
import time

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

import reference as ref
from simlake import DataBase
from simlake.adapter import DataBaseException, ManagedFolder
from simlake.adapter.dumpers import UnknownDumperError
from simlake.dumpers import numpy_to_npy, pandas_to_parquet, to_cloudpickle
from simlake.isf import add_dendritic_spike_times, init, optimize

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def study(spark, tmp_path_factory):
    """A raw tree ingested by ``init`` in two nightly steps: one folder is held back from the
    first run and added by the second (for ``as_of`` and ``history``)."""
    from simlake import synth

    base = tmp_path_factory.mktemp("isf_usage")
    raw = str(base / "raw")
    synth.generate_tree(raw, runs=3, trials=3, times=400, synapses=30, cells=20, seed=11)
    folders = ref.sim_run_folders(raw)
    late_run, late_path = list(folders.items())[-1]
    parked = str(base / "parked")
    shutil.move(late_path, parked)
    db = DataBase(str(base / "db"))  # ISF creates the database first, then calls init
    init(db, raw, client=object(), scheduler=None, repartition=True, n_chunks=5000, spark=spark)
    first_done = time.time()
    time.sleep(1.1)  # commit times have millisecond resolution; keep the runs apart
    early_trials = list(db["sim_trial_index"])
    shutil.move(parked, late_path)
    init(db, raw, client=object(), spark=spark)
    return {"raw": raw, "db": db, "late_run": late_run, "first_done": first_done,
            "early_trials": early_trials}


def test_core_keys_have_isf_shapes(study):
    db, raw = study["db"], study["raw"]
    volt = ref.voltage_rows(raw).sort_values("sim_trial_index").reset_index(drop=True)
    sti = db["sim_trial_index"]
    assert isinstance(sti, pd.Index) and sti.name == "sim_trial_index"
    assert list(sti) == list(volt["sim_trial_index"]) and sti[0] in sti
    meta = db["metadata"].reset_index()  # ISF code does this; the index is a plain range
    assert list(meta["index"]) == list(range(len(volt)))
    assert list(meta["sim_trial_index"]) == list(sti)
    one = meta[meta.trialnr == "000001"]
    assert list(one.sim_trial_index) == list(volt[volt.trialnr == 1].sim_trial_index)
    trial = sti[len(sti) // 2]
    got = db["voltage_traces"].loc[trial].compute()
    row = volt.set_index("sim_trial_index").loc[trial]
    np.testing.assert_array_equal(got.to_numpy()[0], row["vm"])
    assert list(got.columns) == list(row["t"])


def test_user_keys_with_isf_dumpers_sub_databases_and_maybe_calculate(study, tmp_path):
    db = DataBase(str(tmp_path / "db"))
    shutil.rmtree(db.basedir)
    shutil.copytree(study["db"].basedir, db.basedir)
    st = db["spike_times"]
    counts = st.notna().sum(axis=1).rename("n_spikes").to_frame()
    # sub-databases: created once, returned afterwards; tuple keys nest
    binned = db.create_sub_db("binned")
    assert db.create_sub_db("binned") == binned
    db.set(("binned", "L2"), counts, dumper=pandas_to_parquet)
    pd.testing.assert_frame_equal(db["binned"]["L2"], counts)
    pd.testing.assert_frame_equal(db[("binned", "L2")], counts)
    assert db.metadata[("binned")]["kind"] == "sub_db"
    assert binned.metadata["L2"]["dumper"] == "pandas_to_parquet"
    assert ("binned", "L2") in db.keys(recurse=True)
    site = db["dendritic_recordings"].keys()[0]
    assert ("dendritic_recordings", site) in db.keys(recurse=True)
    assert db.check_if_key_exists(("binned", "L2")) and not db.check_if_key_exists("nope")
    # maybe_calculate computes once, then reads; force_calculation recomputes
    calls = []

    def total() -> np.ndarray:
        calls.append(1)
        return counts["n_spikes"].to_numpy()

    first = db.maybe_calculate("total", total, dumper=numpy_to_npy)
    again = db.maybe_calculate("total", total, dumper=numpy_to_npy)
    np.testing.assert_array_equal(first, again)
    assert len(calls) == 1 and db.metadata["total"]["dumper"] == "numpy_to_npy"
    db.maybe_calculate("total", total, force_calculation=True)
    assert len(calls) == 2
    # other dumpers, an unknown one, rename, managed folders, deletion
    db.set("params", {"bin": 1.0}, dumper=to_cloudpickle)
    assert db["params"] == {"bin": 1.0} and db.metadata["params"]["format"] == "pickle"
    with pytest.raises(UnknownDumperError, match="no simlake equivalent"):
        db.set("odd", 1, dumper="pandas_to_feather")
    assert "odd" not in db
    db.rename("params", "settings")
    assert "params" not in db.keys() and db["settings"] == {"bin": 1.0}
    figs = db.create_managed_folder("figures")
    assert isinstance(figs, ManagedFolder) and os.path.isdir(figs)
    with open(figs.join("a.txt"), "w") as fh:
        fh.write("x")
    with pytest.raises(DataBaseException, match="already set"):
        db.create_managed_folder("figures")
    assert db.create_managed_folder("figures", raise_=False).listdir() == ["a.txt"]
    with pytest.raises(KeyError):
        db.get("missing")
    with pytest.raises(DataBaseException, match="read-only"):
        del db["voltage_traces"]
    with pytest.raises(DataBaseException, match="read-only"):
        db["metadata"] = 1
    del db[("binned", "L2")]
    assert db["binned"].keys() == ()
    # flags and identity
    assert db.get_id() == DataBase(db.basedir).get_id()
    with pytest.raises(DataBaseException, match="readonly"):
        DataBase(db.basedir, readonly=True)["x"] = 1
    DataBase(db.basedir, readonly="warning")["x"] = 1  # ISF: logged, not written
    assert "x" not in db
    assert not [n for n in os.listdir(db.basedir) if n.startswith((".tmp", ".trash"))]


def test_ls_with_isf_keywords(study, capsys):
    study["db"].ls(max_depth=2, max_lines=8, color=False)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == study["db"].basedir and len(out) <= 10
    assert any("voltage_traces" in line and "Delta table" in line for line in out)


def test_isf_optimize_order_and_new_dendritic_threshold(study, tmp_path):
    db = DataBase(str(tmp_path / "db"))
    shutil.rmtree(db.basedir)
    shutil.copytree(study["db"].basedir, db.basedir)
    before = db["voltage_traces"].compute()
    result = optimize(db, None, ["voltage_traces"], client=object())
    assert set(result) == {"voltage_traces"}
    pd.testing.assert_frame_equal(db["voltage_traces"].compute(), before)
    add_dendritic_spike_times(db, -20.0)
    ds = db["dendritic_spike_times"]
    dend = ref.dendritic_rows(study["raw"])
    for site, rows in dend.groupby("recording_site"):
        key = site + "_" + str(-20.0)  # ISF's key
        assert key in ds.keys() and site + "_" + str(-30.0) in ds.keys()
        got = ds[key]
        for sti, t, vm in zip(rows["sim_trial_index"], rows["t"], rows["vm"], strict=True):
            want = ref.crossings(t, vm, -20.0)
            have = got.loc[sti].dropna().tolist()
            assert have == want, (site, sti)
    version = DataBase(db.basedir)._reader.snapshot("dendritic_spike_times").version
    add_dendritic_spike_times(db, -20.0)  # a second call adds nothing
    assert DataBase(db.basedir)._reader.snapshot("dendritic_spike_times").version == version
    assert len(ds[site + "_" + str(-20.0)]) == len(db["sim_trial_index"])


def test_as_of_and_history(study):
    db = study["db"]
    late = [s for s in db["sim_trial_index"] if s.startswith(study["late_run"] + "/")]
    assert late and not set(late) & set(study["early_trials"])
    then = DataBase(db.basedir, as_of=pd.Timestamp(study["first_done"], unit="s"))
    assert list(then["sim_trial_index"]) == study["early_trials"]
    assert then["voltage_traces"].index.compute().tolist() == study["early_trials"]
    assert isinstance(then["synapse_activation"], dd.DataFrame)
    assert not set(late) & set(then["synapse_activation"].index.compute())
    with pytest.raises(DataBaseException, match="as of"):
        then["x"] = 1
    history = db.history()
    assert len(history) == 2 and history["exit_code"].tolist() == [0, 0]  # init keeps records
    assert history["trials_added"].tolist() == [len(study["early_trials"]), len(late)]
    first_run = history["run_id"].iloc[0]
    assert list(DataBase(db.basedir, as_of=first_run)["sim_trial_index"]) == \
        study["early_trials"]

"""The adapter over a database written by the real Spark ingest, against ISF-shaped frames built
independently from the raw files (tests/reference.py), key by key."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import reference as ref
from simlake import DataBase

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def db(ingested):
    return DataBase(ingested["db"])


def _wide_times(rows: pd.DataFrame, fixed: list[str], times_col: str) -> pd.DataFrame:
    """ISF layout: fixed columns, then '0'..'K-1' activation times NaN-padded."""
    k = max((len(x) for x in rows[times_col]), default=0)
    padded = np.full((len(rows), k), np.nan)
    for i, values in enumerate(rows[times_col]):
        padded[i, : len(values)] = values
    wide = rows[fixed].reset_index(drop=True).copy()
    for j in range(k):
        wide[str(j)] = padded[:, j]
    wide.index = pd.Index(rows["sim_trial_index"].tolist(), name="sim_trial_index")
    return wide


def test_keys_and_simple_keys(db, ingested):
    for key in (
        "simresult_path",
        "filelist",
        "sim_trial_index",
        "metadata",
        "voltage_traces",
        "synapse_activation",
        "cell_activation",
        "spike_times",
        "dendritic_recordings",
        "dendritic_spike_times",
        "parameterfiles",
        "parameterfiles_cell_folder",
        "morphology",
        "syn_folder",
        "con_folder",
        "recsites_folder",
    ):
        assert key in db.keys()
    assert db["simresult_path"] == os.path.abspath(ingested["raw"])
    sti = db["sim_trial_index"]
    assert sti.name == "sim_trial_index"
    assert sti.tolist() == sorted(ref.voltage_rows(ingested["raw"])["sim_trial_index"])
    with pytest.raises(KeyError, match="voltage_traces"):
        db["no_such_key"]


def test_voltage_traces_frame(db, ingested):
    volt = ref.voltage_rows(ingested["raw"]).sort_values("sim_trial_index")
    t = volt.iloc[0].t
    expected = pd.DataFrame(
        np.vstack(volt["vm"].to_list()),
        columns=[float(x) for x in t],
        index=pd.Index(volt["sim_trial_index"].tolist(), name="sim_trial_index"),
    )
    ddf = db["voltage_traces"]
    assert ddf.known_divisions
    got = ddf.compute()
    assert all(type(c) in (float, np.float64) for c in got.columns)
    assert [float(c) for c in got.columns] == list(expected.columns)
    assert got.index.tolist() == expected.index.tolist()
    assert (got.dtypes == np.float64).all()
    assert np.array_equal(got.to_numpy(), expected.to_numpy())  # bit-equal values
    one = expected.index[len(expected) // 2]
    assert np.array_equal(ddf.loc[one].compute().to_numpy(), expected.loc[[one]].to_numpy())


@pytest.mark.parametrize(
    "key,kind,fixed,times",
    [
        (
            "synapse_activation",
            "synapses",
            [
                "synapse_type",
                "synapse_ID",
                "soma_distance",
                "section_ID",
                "section_pt_ID",
                "dendrite_label",
            ],
            "activation_times",
        ),
        ("cell_activation", "cells", ["presynaptic_cell_type", "cell_ID"], "spike_times"),
    ],
)
def test_activation_frames(db, ingested, key, kind, fixed, times):
    rows = ref.activation_rows(ingested["raw"], kind).sort_values("sim_trial_index", kind="stable")
    expected = _wide_times(rows, fixed, times)
    ddf = db[key]
    assert ddf.known_divisions
    got = ddf.compute()
    assert list(got.columns) == list(expected.columns)
    assert all(isinstance(c, str) for c in got.columns[len(fixed) :])
    assert got.index.tolist() == expected.index.tolist()  # repeats, line order within a trial
    for col in fixed:
        assert got[col].tolist() == expected[col].tolist(), col
    for col in ("synapse_ID", "section_ID", "section_pt_ID", "cell_ID"):
        if col in got:
            assert got[col].dtype == np.int64
    values = got[expected.columns[len(fixed) :]].to_numpy(dtype=float)
    assert np.array_equal(
        values, expected[expected.columns[len(fixed) :]].to_numpy(), equal_nan=True
    )


def test_spike_times_frame(db, ingested):
    volt = ref.voltage_rows(ingested["raw"]).sort_values("sim_trial_index")
    trains = [ref.crossings(r.t, r.vm, 0.0) for r in volt.itertuples()]
    k = max(map(len, trains))
    expected = np.full((len(trains), k), np.nan)
    for i, train in enumerate(trains):
        expected[i, : len(train)] = train
    got = db["spike_times"]
    assert isinstance(got, pd.DataFrame)
    assert list(got.columns) == list(range(k))
    assert got.index.tolist() == volt["sim_trial_index"].tolist()
    assert np.array_equal(got.to_numpy(), expected, equal_nan=True)
    assert any(len(t) == 0 for t in trains)  # all-NaN rows are part of the comparison


def test_dendritic_sub_databases(db, ingested):
    dend = ref.dendritic_rows(ingested["raw"])
    recordings, spikes = db["dendritic_recordings"], db["dendritic_spike_times"]
    assert sorted(recordings.keys()) == sorted(set(dend["recording_site"]))
    assert sorted(spikes.keys()) == sorted(f"{s}_-30.0" for s in set(dend["recording_site"]))
    for site, rows in dend.groupby("recording_site"):
        rows = rows.sort_values("sim_trial_index")
        got = recordings[site].compute()
        assert got.index.tolist() == rows["sim_trial_index"].tolist()
        assert np.array_equal(got.to_numpy(), np.vstack(rows["vm"].to_list()))
        sp = spikes[f"{site}_-30.0"]
        trains = [ref.crossings(r.t, r.vm, -30.0) for r in rows.itertuples()]
        for (sti, row), train in zip(sp.iterrows(), trains, strict=True):
            assert row.dropna().tolist() == train, sti


def test_metadata_and_parameterfiles(db, ingested):
    raw = ingested["raw"]
    meta = db["metadata"]
    volt = ref.voltage_rows(raw).sort_values("sim_trial_index")
    assert meta["sim_trial_index"].tolist() == volt["sim_trial_index"].tolist()
    assert meta["path"].tolist() == volt["sim_run"].tolist()
    assert meta["trialnr"].tolist() == [f"{n:06d}" for n in volt["trialnr"]]
    params = db["parameterfiles"]
    files = ref.param_files(raw)
    for sti, row in params.iterrows():
        neuron, network = files[sti.rsplit("/", 1)[0]]
        assert row["hash_neuron"] == ref.md5(neuron) and row["hash_network"] == ref.md5(network)
    folder = db["parameterfiles_cell_folder"]
    assert sorted(folder.listdir()) == sorted(set(params["hash_neuron"]))
    assert os.path.isfile(folder.join(params["hash_neuron"].iloc[0]))

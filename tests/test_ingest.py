"""The Spark ingest against a generated tree, compared with an independent plain reading."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable

import reference as ref
from simlake import schemas
from simlake.ingest_options import IngestOptions
from simlake.manifest import read_manifest
from simlake.spark.ingest import ingest

pytestmark = pytest.mark.spark

KEYS = ref.INGEST_TABLES


def _table(db: str, key: str) -> pa.Table:
    return DeltaTable(os.path.join(db, key)).to_pyarrow_table()


def _sorted_pandas(table: pa.Table, by: list[str]):
    return table.to_pandas().sort_values(by, kind="stable").reset_index(drop=True)


def test_every_table_written_and_summary(ingested):
    summary = ingested["summary"]
    for key in KEYS:
        assert DeltaTable(os.path.join(ingested["db"], key)).version() >= 0
    assert summary.folders_found == len(ref.sim_run_folders(ingested["raw"]))
    assert len(summary.skipped_running) == 1 and summary.skipped_running[0].endswith("_running")
    assert summary.trials == len(ref.voltage_rows(ingested["raw"]))
    text = str(summary)
    assert "skipped (still running)" in text and ingested["missing"] in text


def test_summary_row_counts_equal_plain_reading(ingested):
    """The summary's rows per table (taken from the Delta commits' own metrics) equal the row
    counts of an independent reading of the raw files."""
    raw = ingested["raw"]
    n_trials = len(ref.voltage_rows(raw))
    n_dendritic = len(ref.dendritic_rows(raw))
    expected = {
        "voltage_traces": n_trials,
        "synapse_activation": len(ref.activation_rows(raw, "synapses")),
        "cell_activation": len(ref.activation_rows(raw, "cells")),
        "dendritic_recordings": n_dendritic,
        "spike_times": n_trials,
        "dendritic_spike_times": n_dendritic,
        "parameterfiles": n_trials,
        "metadata": n_trials,
    }
    assert ingested["summary"].rows == expected


def test_voltage_traces_bit_equal(ingested):
    expected = (
        ref.voltage_rows(ingested["raw"]).sort_values("sim_trial_index").reset_index(drop=True)
    )
    got = _sorted_pandas(_table(ingested["db"], "voltage_traces"), ["sim_trial_index"])
    assert got["sim_trial_index"].tolist() == expected["sim_trial_index"].tolist()
    assert got["trialnr"].tolist() == expected["trialnr"].tolist()
    for g, e in zip(got.itertuples(), expected.itertuples(), strict=True):
        assert np.asarray(g.t).tobytes() == np.asarray(e.t, dtype=float).tobytes()
        assert np.asarray(g.vm).tobytes() == np.asarray(e.vm, dtype=float).tobytes()


def test_variants_present_in_tables(ingested):
    meta = _table(ingested["db"], "metadata").to_pandas()
    names = set(meta["voltage_traces_file_name"])
    assert any(n.endswith(".npz") for n in names)
    assert any("seed" in n and "pid" in n for n in names)  # new era
    assert any(n.split("_")[0].isdigit() for n in names)  # old era
    syn = set(meta["synapses_file_name"].dropna())
    assert any(len(n.split("_")[1]) == len("run0000") for n in syn)
    assert any(len(n.split("_")[1]) == len("run000000") for n in syn)
    assert any("/" in s for s in meta["sim_run"])  # nested folders
    for row in meta.itertuples():  # file names exactly as on disk
        folder = os.path.join(ingested["raw"], row.sim_run)
        for name in (row.voltage_traces_file_name, row.synapses_file_name, row.cells_file_name):
            if name is not None:
                assert os.path.isfile(os.path.join(folder, name)), name


@pytest.mark.parametrize(
    "key,kind", [("synapse_activation", "synapses"), ("cell_activation", "cells")]
)
def test_activation_tables_equal_reference(ingested, key, kind):
    expected = ref.activation_rows(ingested["raw"], kind)
    got = _table(ingested["db"], key).to_pandas()
    # row order within a trial = line order: compare per trial after a stable sort by key
    got = got.sort_values("sim_trial_index", kind="stable").reset_index(drop=True)
    expected = expected.sort_values("sim_trial_index", kind="stable").reset_index(drop=True)
    times_col = "activation_times" if key == "synapse_activation" else "spike_times"
    assert list(got.columns) == schemas.TABLES[key].names
    for col in expected.columns:
        if col == times_col:
            assert [list(x) for x in got[col]] == [list(x) for x in expected[col]]
        else:
            assert got[col].tolist() == expected[col].tolist(), col
    assert any(len(x) == 0 for x in expected[times_col])  # empty lists were part of the test


def test_spike_times_equal_direct_crossings(ingested):
    volt = ref.voltage_rows(ingested["raw"])
    expected = {r.sim_trial_index: ref.crossings(r.t, r.vm, 0.0) for r in volt.itertuples()}
    got = _table(ingested["db"], "spike_times").to_pandas()
    assert sorted(got["sim_trial_index"]) == sorted(expected)
    assert set(got["threshold"]) == {0.0}
    for row in got.itertuples():
        assert list(row.spike_times) == expected[row.sim_trial_index]
    assert sum(map(len, expected.values())) > 0


def test_dendritic_tables(ingested):
    dend = ref.dendritic_rows(ingested["raw"])
    got = _table(ingested["db"], "dendritic_recordings").to_pandas()
    key = ["recording_site", "sim_trial_index"]
    got = got.sort_values(key).reset_index(drop=True)
    dend = dend.sort_values(key).reset_index(drop=True)
    assert got[key].values.tolist() == dend[key].values.tolist()
    for g, e in zip(got.itertuples(), dend.itertuples(), strict=True):
        assert np.asarray(g.vm).tobytes() == np.asarray(e.vm, dtype=float).tobytes()
    spikes = _table(ingested["db"], "dendritic_spike_times").to_pandas()
    assert set(spikes["threshold"]) == {-30.0}
    exp = {
        (r.recording_site, r.sim_trial_index): ref.crossings(r.t, r.vm, -30.0)
        for r in dend.itertuples()
    }
    assert {
        (r.recording_site, r.sim_trial_index): list(r.spike_times) for r in spikes.itertuples()
    } == exp


def test_every_trial_exactly_once_per_table(ingested):
    trials = sorted(ref.voltage_rows(ingested["raw"])["sim_trial_index"])
    for key in ("metadata", "voltage_traces", "spike_times", "parameterfiles"):
        assert sorted(_table(ingested["db"], key).column("sim_trial_index").to_pylist()) == trials
    sites = _table(ingested["db"], "dendritic_recordings").to_pandas()
    assert not sites.duplicated(["recording_site", "sim_trial_index"]).any()


def test_data_files_cover_disjoint_sorted_ranges(ingested):
    for key in ("voltage_traces", "synapse_activation", "cell_activation", "metadata"):
        actions = pa.table(
            DeltaTable(os.path.join(ingested["db"], key)).get_add_actions(flatten=True)
        )
        lo = actions.column("min.sim_trial_index").to_pylist()
        hi = actions.column("max.sim_trial_index").to_pylist()
        ranges = sorted(zip(lo, hi, strict=True))
        assert all(a <= b for a, b in ranges)
        assert all(prev[1] < nxt[0] for prev, nxt in zip(ranges, ranges[1:], strict=False)), key
        if key == "voltage_traces":
            assert len(ranges) > 1  # small target size: several files
        # the statistics are exact: they equal the file's real bounds
        for path, a, b in zip(actions.column("path").to_pylist(), lo, hi, strict=True):
            import pyarrow.parquet as pq

            keys = (
                pq.read_table(os.path.join(ingested["db"], key, path), columns=["sim_trial_index"])
                .column(0)
                .to_pylist()
            )
            assert (min(keys), max(keys)) == (a, b)
            assert keys == sorted(keys)


def test_parameterfiles_hashes_and_stored_copies(ingested):
    db, raw = ingested["db"], ingested["raw"]
    params = _table(db, "parameterfiles").to_pandas()
    expected = ref.param_files(raw)
    for row in params.itertuples():
        neuron, network = expected[row.sim_run]
        assert (row.path_neuron, row.path_network) == (neuron, network)
        assert row.hash_neuron == ref.md5(neuron) and row.hash_network == ref.md5(network)
    cell_folder = os.path.join(db, "parameterfiles_cell_folder")
    net_folder = os.path.join(db, "parameterfiles_network_folder")
    assert sorted(os.listdir(cell_folder)) == sorted(set(params["hash_neuron"]))
    assert sorted(os.listdir(net_folder)) == sorted(set(params["hash_network"]))
    assert len(set(params["hash_network"])) >= 2  # distinct network files stored separately
    # every reference of a stored copy that is not the deliberately missing file resolves inside db
    from simlake.paramfiles import parse_param_text, referenced_files

    for folder, kind in ((cell_folder, "neuron"), (net_folder, "network")):
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as fh:
                params_dict = parse_param_text(fh.read(), path)
            for reference in referenced_files(params_dict, kind):
                if os.path.basename(reference.path) == os.path.basename(ingested["missing"]):
                    continue
                # ISF's reldb:// rule (data_base.dbopen): the path after "reldb://", in the db
                assert reference.path.startswith("reldb://"), reference
                resolved = os.path.join(db, *reference.path.split("/")[2:])
                assert os.path.isfile(resolved), reference
    errors = _table(db, "ingest_errors").to_pandas()
    assert any(ingested["missing"] in r for r in errors["reason"]), errors
    # the executors recorded each distinct file's outcome once, under its md5
    for kind, column in (("neuron", "hash_neuron"), ("network", "hash_network")):
        records = os.listdir(os.path.join(db, "_simlake_paramfiles", kind))
        assert sorted(records) == sorted(f"{h}.json" for h in set(params[column]))


def test_manifest(ingested):
    manifest = read_manifest(ingested["db"])
    assert manifest["simresult_path"] == os.path.abspath(ingested["raw"])
    expected = sorted(
        f"{s}/{ref.voltage_file(p)}" for s, p in ref.sim_run_folders(ingested["raw"]).items()
    )
    assert manifest["filelist"] == expected


def test_spark_sql_counts_match_generator(spark, ingested):
    report, db = ingested["report"], ingested["db"]
    count = {key: spark.sql(f"SELECT count(*) FROM delta.`{db}/{key}`").first()[0] for key in KEYS}
    assert count["metadata"] == report.n_trials
    assert count["voltage_traces"] == report.n_trials
    assert count["synapse_activation"] == report.n_synapse_lines
    assert count["cell_activation"] == report.n_cell_lines
    assert count["spike_times"] == report.n_trials
    assert count["dendritic_recordings"] == count["dendritic_spike_times"]


def test_rerun_with_nothing_new_changes_nothing(spark, ingested):
    db = ingested["db"]
    versions = {key: DeltaTable(os.path.join(db, key)).version() for key in KEYS}
    summary = ingest(spark, IngestOptions(ingested["raw"], db))
    assert summary.nothing_new and summary.folders_new == []
    assert "nothing new" in str(summary)
    assert {key: DeltaTable(os.path.join(db, key)).version() for key in KEYS} == versions

"""Spark SQL over an ingested database: temp views, catalog registration, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

import reference as ref
from simlake.spark import catalog

pytestmark = pytest.mark.spark


def test_views_match_reference(spark, ingested):
    db, raw = ingested["db"], ingested["raw"]
    names = catalog.attach(spark, db)
    assert {
        "voltage_traces_long",
        "synapse_activation_long",
        "cell_activation_long",
        "trial_summary",
    } <= set(names)
    volt = ref.voltage_rows(raw)
    n_points = sum(len(t) for t in volt["t"])
    assert spark.sql("SELECT count(*) FROM voltage_traces_long").first()[0] == n_points
    one = volt.iloc[5]
    got = spark.sql(
        f"SELECT t, vm FROM voltage_traces_long WHERE sim_trial_index = "
        f"'{one.sim_trial_index}' ORDER BY t"
    ).toPandas()
    assert got["t"].tolist() == list(one.t) and got["vm"].tolist() == list(one.vm)

    syn = ref.activation_rows(raw, "synapses")
    assert spark.sql("SELECT count(*) FROM synapse_activation_long").first()[0] == sum(
        map(len, syn["activation_times"])
    )
    cells = ref.activation_rows(raw, "cells")
    assert spark.sql("SELECT count(*) FROM cell_activation_long").first()[0] == sum(
        map(len, cells["spike_times"])
    )

    summary = spark.sql("SELECT * FROM trial_summary").toPandas().set_index("sim_trial_index")
    assert sorted(summary.index) == sorted(volt["sim_trial_index"])
    for row in volt.itertuples():
        spikes = ref.crossings(row.t, row.vm, 0.0)
        got_row = summary.loc[row.sim_trial_index]
        assert got_row["spike_count"] == len(spikes)
        if spikes:
            assert got_row["first_spike_time"] == spikes[0]
        else:
            assert pd.isna(got_row["first_spike_time"])
        active = syn.activation_times.map(len) > 0
        trial = syn[(syn.sim_trial_index == row.sim_trial_index) & active]
        assert got_row["active_synapses"] == len(trial)
        by_type = dict(got_row["active_synapses_by_type"] or {})
        assert by_type == trial.groupby("synapse_type").size().to_dict()


def test_register_in_persistent_catalog(spark, ingested):
    names = catalog.register(spark, ingested["db"], "simlake_test")
    assert "simlake_test.voltage_traces" in names and "simlake_test.trial_summary" in names
    tables = {r.tableName for r in spark.sql("SHOW TABLES IN simlake_test").collect()}
    assert {"metadata", "voltage_traces", "synapse_activation", "voltage_traces_long"} <= tables
    n = spark.sql("SELECT count(*) FROM simlake_test.metadata").first()[0]
    assert n == ingested["report"].n_trials
    detail = spark.sql("DESCRIBE DETAIL simlake_test.voltage_traces").first()
    assert detail["format"] == "delta" and detail["location"].endswith("/voltage_traces")
    # registering again re-points, never duplicates
    catalog.register(spark, ingested["db"], "simlake_test")
    assert spark.sql("SELECT count(*) FROM simlake_test.trial_summary").first()[0] == n
    with pytest.raises(ValueError):
        catalog.register(spark, ingested["db"], "bad-name; DROP")


def test_sql_cli_prints_and_writes(ingested, tmp_path):
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    query = "SELECT sim_run, count(*) AS trials FROM metadata GROUP BY sim_run ORDER BY sim_run"
    out = subprocess.run(
        [sys.executable, "-m", "simlake.cli", "sql", ingested["db"], query, "--profile", "test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].split() == ["sim_run", "trials"]
    expected = ref.voltage_rows(ingested["raw"]).groupby("sim_run").size().to_dict()
    printed = {line.split()[0]: int(line.split()[1]) for line in lines[1:]}
    assert printed == expected
    dest = tmp_path / "summary.csv"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "simlake.cli",
            "sql",
            ingested["db"],
            "SELECT * FROM trial_summary",
            "--profile",
            "test",
            "--out",
            str(dest),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    parts = [p for p in os.listdir(dest) if p.endswith(".csv")]
    frame = pd.concat(pd.read_csv(dest / p) for p in parts)
    assert len(frame) == ingested["report"].n_trials
    assert "active_synapses_by_type" in frame.columns

"""Spark SQL over an ingested database: temp views, catalog registration, the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd
import pytest

import reference as ref
from simlake.spark import catalog, sql_out

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
    # the query names are views; the Delta tables live beside them, for maintenance
    assert spark.catalog.getTable("simlake_test.voltage_traces").tableType == "VIEW"
    assert spark.catalog.getTable("simlake_test_delta.voltage_traces").tableType == "EXTERNAL"
    detail = spark.sql("DESCRIBE DETAIL simlake_test_delta.voltage_traces").first()
    assert detail["format"] == "delta" and detail["location"].endswith("/voltage_traces")
    # registering again re-points, never duplicates
    catalog.register(spark, ingested["db"], "simlake_test")
    assert spark.sql("SELECT count(*) FROM simlake_test.trial_summary").first()[0] == n
    with pytest.raises(ValueError):
        catalog.register(spark, ingested["db"], "bad-name; DROP")


def test_register_replaces_old_tables_never_managed_ones(spark, ingested, tmp_path):
    location = os.path.join(ingested["db"], "metadata")
    spark.sql("CREATE DATABASE IF NOT EXISTS old_style")
    # what an earlier simlake registered: the Delta table under the query name
    spark.sql(f"CREATE TABLE old_style.metadata USING DELTA LOCATION '{location}'")
    catalog.register(spark, ingested["db"], "old_style")
    assert spark.catalog.getTable("old_style.metadata").tableType == "VIEW"
    assert os.path.isdir(os.path.join(location, "_delta_log"))  # the data stay
    spark.sql("CREATE DATABASE IF NOT EXISTS mine_delta")
    spark.sql("CREATE TABLE mine_delta.metadata (x INT) USING parquet")  # a managed table
    spark.sql("INSERT INTO mine_delta.metadata VALUES (7)")
    with pytest.raises(ValueError, match="mine_delta.metadata exists as a MANAGED table"):
        catalog.register(spark, ingested["db"], "mine")
    assert spark.sql("SELECT x FROM mine_delta.metadata").first()[0] == 7


def test_out_single_files_and_folders(spark, tmp_path):
    df = spark.range(5).selectExpr("id", "id * 2 AS twice").repartition(3)
    csv = sql_out.write_result(df, str(tmp_path / "r.csv"))
    assert os.path.isfile(csv)
    assert pd.read_csv(csv).sort_values("id")["twice"].tolist() == [0, 2, 4, 6, 8]
    par = sql_out.write_result(df, str(tmp_path / "r.parquet"))
    assert os.path.isfile(par) and sorted(pd.read_parquet(par)["id"]) == [0, 1, 2, 3, 4]
    folder = sql_out.write_result(df, str(tmp_path / "result"))
    assert sorted(pd.read_parquet(folder)["id"]) == [0, 1, 2, 3, 4]
    empty = sql_out.write_result(df.where("id < 0"), str(tmp_path / "e.csv"))
    assert os.path.isfile(empty)
    assert sorted(os.listdir(tmp_path)) == ["e.csv", "r.csv", "r.parquet", "result"]  # no temp
    # existing targets: refused, or with overwrite replaced when they are results
    for target in (csv, par, folder):
        with pytest.raises(sql_out.OutputRefused, match="--overwrite"):
            sql_out.write_result(df, target)
    sql_out.write_result(df.limit(2), folder, overwrite=True)
    assert len(pd.read_parquet(folder)) == 2
    sql_out.write_result(df.limit(1), csv, overwrite=True)
    assert len(pd.read_csv(csv)) == 1
    # a folder that holds something else is never replaced
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(sql_out.OutputRefused, match="no query result"):
        sql_out.write_result(df, str(other), overwrite=True)
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(sql_out.OutputRefused, match="overlaps the database"):
        sql_out.write_result(df, str(tmp_path / "db" / "x.csv"),
                             protected=(str(tmp_path / "db"),))


def _sql_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    return subprocess.run([sys.executable, "-m", "simlake.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_sql_cli_prints_and_writes(ingested, tmp_path):
    query = "SELECT sim_run, count(*) AS trials FROM metadata GROUP BY sim_run ORDER BY sim_run"
    out = _sql_cli("sql", ingested["db"], query, "--profile", "test")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].split() == ["sim_run", "trials"]
    expected = ref.voltage_rows(ingested["raw"]).groupby("sim_run").size().to_dict()
    printed = {line.split()[0]: int(line.split()[1]) for line in lines[1:]}
    assert printed == expected
    dest = tmp_path / "summary.csv"
    out = _sql_cli("sql", ingested["db"], "SELECT * FROM trial_summary", "--profile", "test",
                   "--out", str(dest))
    assert out.returncode == 0, out.stderr[-2000:]
    assert os.path.isfile(dest) and os.listdir(tmp_path) == ["summary.csv"]
    frame = pd.read_csv(dest)
    assert len(frame) == ingested["report"].n_trials
    assert "active_synapses_by_type" in frame.columns


def test_sql_cli_refuses_before_spark_starts(ingested, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("x")
    for args, message in [
        (["/nonexistent", "SELECT 1"], "/nonexistent: no such database folder"),
        ([str(tmp_path), "SELECT 1"], f"{tmp_path}: not a simlake database (no Delta tables "
                                      "in it)"),
        (["SELECT 1"], "give a database folder, or --warehouse of a registered catalog"),
        ([ingested["db"], "SELECT 1", "--out", str(taken)],
         f"{taken}: folder exists and is not empty (--overwrite replaces a previous result)"),
        ([ingested["db"], "SELECT 1", "--out", str(taken), "--overwrite"],
         f"{taken}: holds files that are no query result (keep.txt); not replacing it"),
    ]:
        out = _sql_cli("sql", *args)
        assert out.returncode == 1, (args, out.stderr)
        assert out.stderr.strip() == f"simlake sql: {message}", args
        assert out.stdout == ""
    assert os.listdir(taken) == ["keep.txt"]


def test_sql_cli_uses_the_registered_catalog(ingested, tmp_path):
    warehouse = str(tmp_path / "wh")
    out = _sql_cli("register", ingested["db"], "--profile", "test", "--warehouse", warehouse,
                   "--database", "cli_test")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cli_test.voltage_traces" in out.stdout and "cli_test_delta.voltage_traces" \
        in out.stdout
    query = ("SELECT (SELECT count(*) FROM voltage_traces) AS visible, "
             "(SELECT count(*) FROM cli_test_delta.voltage_traces) AS stored")
    out = _sql_cli("sql", query, "--profile", "test", "--warehouse", warehouse,
                   "--database", "cli_test")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    n = ingested["report"].n_trials
    assert lines[0].split() == ["visible", "stored"] and lines[1].split() == [str(n), str(n)]


@pytest.mark.parametrize("query, condition, named", [
    ("SELECT nonsense FROM metadata", "UNRESOLVED_COLUMN", "`nonsense`"),
    ("SELECT * FROM no_such_table", "TABLE_OR_VIEW_NOT_FOUND", "`no_such_table`"),
])
def test_sql_cli_failing_query_is_one_line(ingested, query, condition, named):
    """A query Spark refuses: one line naming Spark's error class, the name at fault and the
    log file; none of Spark's output (Ivy, log4j, pyspark's JSON error record) on the console;
    exit 1."""
    out = _sql_cli("sql", ingested["db"], query, "--profile", "test")
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr[-3000:]
    m = re.fullmatch(r"simlake sql: query failed: \[(\S+)\] (.*) \(details: (\S+\.log)\)",
                     lines[0])
    assert m, lines
    assert m.group(1).split(".")[0] == condition and named in m.group(2)
    assert f"pos {query.index(named.strip('`'))})" in m.group(2)  # where in the query
    with open(m.group(3), encoding="utf-8") as fh:
        detail = fh.read()
    assert "AnalysisException" in detail and condition in detail
    os.remove(m.group(3))

"""The local Spark + Delta runtime: a Delta table written by delta-spark, read by Spark and by
delta-rs (``deltalake``), with the layout properties the ingest relies on."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from simlake import schemas
from simlake.spark import tables

pytestmark = pytest.mark.spark


def test_session_is_local_with_delta(spark):
    assert spark.sparkContext.master == "local[2]"
    assert "DeltaSparkSessionExtension" in spark.conf.get("spark.sql.extensions")
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.databricks.io.skipping.stringPrefixLength") == "1024"


def test_checksums_do_not_carry_the_file_list(spark, tmp_path):
    """Delta's per-version checksum files are written, without the full file list: deriving
    that list made each table's first commit run a Spark query (6-8 s for the first table of
    a JVM); the session turns it off, and this must hold for every commit the ingest makes."""
    sim_run = "results/20250101-1553_seed1_pid2"
    rows = [(schemas.sim_trial_index(sim_run, 0), sim_run, 0, [0.0, 0.025], [-61.5, -61.0])]
    df = spark.createDataFrame(rows, tables.spark_schema(schemas.VOLTAGE_TRACES))
    tables.ensure_table(spark, str(tmp_path), "voltage_traces")
    tables.replace_rows(df.coalesce(1), str(tmp_path), "voltage_traces", [sim_run])
    log = tmp_path / "voltage_traces" / "_delta_log"
    checksums = sorted(p for p in log.glob("*.crc") if not p.name.startswith("."))
    assert [p.stem for p in checksums] == ["00000000000000000000", "00000000000000000001"]
    for path in checksums:
        content = json.loads(path.read_text())
        assert content["numFiles"] == int(path.stem)  # one file added by version 1
        assert content.get("allFiles", []) == []  # an empty table's list is free: kept


def test_delta_roundtrip_spark_and_deltalake(spark, tmp_path):
    sim_run = "results/nested/deeper/20250101-1553_seed123456_pid7896"  # long keys: > 32 chars
    rows = [
        (schemas.sim_trial_index(sim_run, n), sim_run, n, [100.0, 100.025], [-61.5, float(n)])
        for n in (0, 3, 17)
    ]
    df = spark.createDataFrame(rows, tables.spark_schema(schemas.VOLTAGE_TRACES))
    tables.replace_rows(df.coalesce(1), str(tmp_path), "voltage_traces", [sim_run])

    back = spark.read.format("delta").load(str(tmp_path / "voltage_traces")).orderBy("trialnr")
    assert [(r.sim_trial_index, r.trialnr, r.vm) for r in back.collect()] == [
        (r[0], r[2], r[4]) for r in rows
    ]

    dt = DeltaTable(str(tmp_path / "voltage_traces"))
    table = dt.to_pyarrow_table()
    assert table.schema.field("t").type == pa.list_(pa.float64())
    assert sorted(table.column("sim_trial_index").to_pylist()) == [r[0] for r in rows]
    assert (
        dt.metadata().configuration["delta.dataSkippingStatsColumns"] == "sim_trial_index,sim_run"
    )
    # exact (untruncated) min/max statistics of the long key, the future dask divisions
    actions = pa.table(dt.get_add_actions(flatten=True))
    assert actions.num_rows == 1
    assert actions.column("min.sim_trial_index")[0].as_py() == rows[0][0]
    assert actions.column("max.sim_trial_index")[0].as_py() == rows[-1][0]
    assert len(rows[-1][0]) > 32


def test_replace_rows_is_idempotent_per_sim_run(spark, tmp_path):
    def frame(sim_run, trials, value):
        data = [(schemas.sim_trial_index(sim_run, n), sim_run, n, 0.0, [value]) for n in trials]
        return spark.createDataFrame(data, tables.spark_schema(schemas.SPIKE_TIMES))

    db = str(tmp_path)
    tables.replace_rows(
        frame("a/20150815-1530_1", [0, 1], 1.0), db, "spike_times", ["a/20150815-1530_1"]
    )
    tables.replace_rows(
        frame("a/20150815-1530_2", [0], 2.0), db, "spike_times", ["a/20150815-1530_2"]
    )
    # the same folder again, e.g. a rerun after a crash: replaced, never duplicated
    tables.replace_rows(
        frame("a/20150815-1530_1", [0, 1], 3.0), db, "spike_times", ["a/20150815-1530_1"]
    )
    table = DeltaTable(f"{db}/spike_times").to_pyarrow_table().sort_by("sim_trial_index")
    assert table.column("sim_trial_index").to_pylist() == [
        "a/20150815-1530_1/000000",
        "a/20150815-1530_1/000001",
        "a/20150815-1530_2/000000",
    ]
    assert pc.list_flatten(table.column("spike_times")).to_pylist() == [3.0, 3.0, 2.0]


def test_sql_quoting_of_folder_names():
    assert tables.sql_string_list(["a'b", "c\\d"]) == "('a\\'b', 'c\\\\d')"

"""Data files written by pyarrow, committed through delta-spark's transaction: replacing
commits keep every row they do not replace (also in files that mix folders, and in files that
Spark's own writer put under Hive partition folders), and the tables read the same from Spark
and from ``deltalake``."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lake_rows import spike_rows
from simlake import schemas
from simlake.spark import tables
from simlake.spark.delta_commit import Replace

pytestmark = pytest.mark.spark




def _rows(spark, path: str) -> list[tuple]:
    """(sim_run, trialnr, threshold, first spike) of every row, from Spark and from deltalake,
    which must agree."""
    by_spark = sorted((r.sim_run, r.trialnr, r.threshold, r.spike_times[0])
                      for r in spark.read.format("delta").load(path).collect())
    table = DeltaTable(path).to_pyarrow_table()
    by_rs = sorted(zip(table.column("sim_run").to_pylist(), table.column("trialnr").to_pylist(),
                       table.column("threshold").to_pylist(),
                       [v[0] for v in table.column("spike_times").to_pylist()], strict=True))
    assert by_spark == by_rs
    return by_spark


def test_replace_rewrites_a_file_that_mixes_folders(spark, tmp_path):
    db = str(tmp_path)
    both = pa.concat_tables([spike_rows("r/a", [0, 1], 0.0, 1.0), spike_rows("r/b", [0], 0.0, 1.0)])
    assert tables.write_rows(spark, db, "spike_times", both, Replace(("r/a", "r/b"))) == 3
    # a refresh of r/a alone: the shared file is rewritten with r/b's row only
    assert tables.write_rows(spark, db, "spike_times", spike_rows("r/a", [0], 0.0, 2.0),
                             Replace(("r/a",))) == 1
    path = os.path.join(db, "spike_times")
    assert _rows(spark, path) == [("r/a", 0, 0.0, 2.0), ("r/b", 0, 0.0, 1.0)]
    last = DeltaTable(path).history(1)[0]
    assert last["operation"] == "WRITE"
    assert last["operationParameters"]["predicate"] == "sim_run IN ('r/a')"


def test_replace_with_a_column_value_keeps_other_values(spark, tmp_path):
    db = str(tmp_path)
    for threshold, value in ((0.0, 1.0), (-30.0, 5.0)):
        tables.write_rows(spark, db, "spike_times", spike_rows("r/a", [0, 1], threshold, value),
                          Replace(("r/a",), "threshold", threshold))
    tables.write_rows(spark, db, "spike_times", spike_rows("r/a", [0, 1], 0.0, 9.0),
                      Replace(("r/a",), "threshold", 0.0))
    assert _rows(spark, os.path.join(db, "spike_times")) == [
        ("r/a", 0, -30.0, 5.0), ("r/a", 0, 0.0, 9.0), ("r/a", 1, -30.0, 5.0),
        ("r/a", 1, 0.0, 9.0)]


def test_delete_rows_and_append(spark, tmp_path):
    db = str(tmp_path)
    tables.write_rows(spark, db, "spike_times",
                      pa.concat_tables([spike_rows("r/a", [0], 0.0, 1.0),
                                        spike_rows("r/b", [0], 0.0, 1.0)]), None)
    tables.write_rows(spark, db, "spike_times", spike_rows("r/c", [0], 0.0, 1.0), None)
    tables.delete_rows(spark, db, "spike_times", ["r/a", "r/c"])
    assert _rows(spark, os.path.join(db, "spike_times")) == [("r/b", 0, 0.0, 1.0)]


def test_replace_in_a_table_written_by_spark_under_partition_folders(spark, tmp_path):
    """Files of an older version (Spark's writer: Hive folders, URL-encoded paths in the log)
    are found and replaced like ours."""
    db = str(tmp_path)
    tables.ensure_table(spark, db, "dendritic_recordings")
    path = os.path.join(db, "dendritic_recordings")
    site = "apical trunk (ID 0)"
    rows = [(site, schemas.sim_trial_index(s, 0), s, 0, [0.0], [-65.0])
            for s in ("r/a", "r/b")]
    frame = spark.createDataFrame(rows, tables.spark_schema(schemas.DENDRITIC_RECORDINGS))
    frame.coalesce(1).write.format("delta").mode("append").save(path)
    logged = [json.loads(line)["add"]["path"]
              for name in sorted(os.listdir(os.path.join(path, "_delta_log")))
              if name.endswith(".json")
              for line in open(os.path.join(path, "_delta_log", name), encoding="utf-8")
              if '"add"' in line]
    assert any("%20" in p for p in logged)  # the case this test is about

    new = spark.createDataFrame([(site, schemas.sim_trial_index("r/a", 0), "r/a", 0, [0.0],
                                  [-70.0])], tables.spark_schema(schemas.DENDRITIC_RECORDINGS))
    assert tables.replace_rows(new, db, "dendritic_recordings", ["r/a"]) == 1
    got = sorted((r.recording_site, r.sim_run, r.vm[0])
                 for r in spark.read.format("delta").load(path).collect())
    assert got == [(site, "r/a", -70.0), (site, "r/b", -65.0)]
    table = DeltaTable(path).to_pyarrow_table()
    assert sorted(zip(table.column("recording_site").to_pylist(),
                      table.column("sim_run").to_pylist(), strict=True)) == [
        (site, "r/a"), (site, "r/b")]


def test_created_table_has_the_layout_properties(spark, tmp_path):
    db = str(tmp_path)
    tables.ensure_table(spark, db, "dendritic_spike_times")
    dt = DeltaTable(os.path.join(db, "dendritic_spike_times"))
    assert dt.metadata().partition_columns == ["recording_site"]
    assert dt.metadata().configuration == tables.table_properties("dendritic_spike_times")
    assert dt.schema().to_arrow().names == schemas.DENDRITIC_SPIKE_TIMES.names
    assert dt.history(1)[0]["operation"] == "CREATE TABLE"
    # creating it again is a no-op (no new version)
    tables.ensure_table(spark, db, "dendritic_spike_times")
    assert DeltaTable(os.path.join(db, "dendritic_spike_times")).version() == 0

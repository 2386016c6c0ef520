"""Schema stability: tables written by this version read by deltalake (the adapter's reader)
and by Spark SQL with the schemas of ``simlake.schemas``; a database written by an older
version, whose tables lack columns added since, takes new folders (the tables' schemas evolve in
the same commit) and old rows read the new columns as null."""

from __future__ import annotations

import os
import shutil

import pyarrow as pa
import pytest
from deltalake import DeltaTable

import ingest_compare as cmp
from simlake import schemas, synth
from simlake.ingest_options import IngestOptions
from simlake.spark import tables
from simlake.spark.ingest import ingest

pytestmark = pytest.mark.spark


def _norm(t: pa.DataType):
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return ("list", _norm(t.value_type))
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    return t


def _shape(schema) -> list:
    return [(f.name, _norm(f.type)) for f in schema]


def test_tables_read_by_deltalake_and_spark_sql_with_the_declared_schemas(spark, ingested):
    db = ingested["db"]
    for key, schema in schemas.TABLES.items():
        path = os.path.join(db, key)
        if not os.path.isdir(path):
            continue
        table = DeltaTable(path).to_pyarrow_table()
        assert _shape(table.schema) == _shape(schema), key
        frame = spark.sql(f"SELECT * FROM delta.`{path}`")
        assert frame.schema.simpleString() == tables.spark_schema(schema).simpleString(), key
        per_run = dict(spark.sql(f"SELECT sim_run, count(*) FROM delta.`{path}` "
                                 "GROUP BY sim_run").collect()) if "sim_run" in schema.names else {}
        if per_run:
            counts = table.group_by("sim_run").aggregate([("sim_run", "count")]).to_pylist()
            assert per_run == {r["sim_run"]: r["sim_run_count"] for r in counts}, key


def _to_old_schema(spark, db: str, key: str, drop: list[str]) -> None:
    """Rewrite table ``key`` as a version without ``drop`` columns would have written it."""
    path = os.path.join(db, key)
    old = spark.read.format("delta").load(path).drop(*drop).localCheckpoint()
    (old.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path))
    assert not set(drop) & set(DeltaTable(path).to_pyarrow_table().column_names)


@pytest.fixture(scope="module")
def old_db(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("schema")
    raw, db, hold = str(base / "raw"), str(base / "db"), str(base / "hold")
    report = synth.generate_tree(raw, runs=3, trials=2, times=150, synapses=15, cells=10, seed=8)
    later = report.folders[1:]
    os.makedirs(hold)
    for rep in later:
        shutil.move(os.path.join(raw, *rep.sim_run.split("/")), os.path.join(hold, rep.uid))
    ingest(spark, IngestOptions(raw, db))
    # an older version: no ingest bookkeeping in metadata, no network hash in parameterfiles
    _to_old_schema(spark, db, "metadata", ["run_id", "folder_fingerprint"])
    _to_old_schema(spark, db, "parameterfiles", ["hash_network"])
    for rep in later:
        shutil.move(os.path.join(hold, rep.uid), os.path.join(raw, *rep.sim_run.split("/")))
    added = ingest(spark, IngestOptions(raw, db))
    after_add = {k: cmp.table_frame(db, k) for k in ("metadata", "parameterfiles")}
    meta = os.path.join(db, "metadata")
    sql_counts = tuple(spark.sql(f"SELECT count(*), count(folder_fingerprint) "
                                 f"FROM delta.`{meta}`").first())
    unchanged = ingest(spark, IngestOptions(raw, db))
    refreshed = ingest(spark, IngestOptions(raw, db, refresh=True))
    return {"raw": raw, "db": db, "report": report, "added": added, "after_add": after_add,
            "sql_counts": sql_counts, "unchanged": unchanged, "refreshed": refreshed}


def test_old_tables_take_new_folders(spark, old_db):
    first = old_db["report"].folders[0].sim_run
    assert old_db["added"].folders_new == [f.sim_run for f in old_db["report"].folders[1:]]
    meta = old_db["after_add"]["metadata"]
    assert list(meta.columns) == [c for c in schemas.METADATA.names if c != "run_id"]
    old_rows = meta[meta["sim_run"] == first]
    assert len(old_rows) == 2 and old_rows["folder_fingerprint"].isna().all()
    assert meta[meta["sim_run"] != first]["folder_fingerprint"].notna().all()
    params = old_db["after_add"]["parameterfiles"]
    assert params[params["sim_run"] == first]["hash_network"].isna().all()
    assert params[params["sim_run"] != first]["hash_network"].notna().all()
    assert old_db["sql_counts"] == (6, 4)  # Spark SQL reads the evolved table too


def test_folders_without_fingerprint_are_not_reported_changed(old_db):
    s = old_db["unchanged"]
    assert s.nothing_new and s.folders_changed == []
    assert any("recorded no folder fingerprint" in note for note in s.notes)


def test_refresh_upgrades_folders_of_an_older_version(old_db):
    db = old_db["db"]
    assert old_db["refreshed"].folders_refreshed == [old_db["report"].folders[0].sim_run]
    meta = cmp.table_frame(db, "metadata")
    assert meta["folder_fingerprint"].notna().all()
    assert cmp.table_frame(db, "parameterfiles")["hash_network"].notna().all()
    cmp.assert_matches_reference(db, cmp.expected_tables(old_db["raw"]))


def test_adapter_reads_the_evolved_database(old_db):
    from simlake.adapter import DataBase

    db = DataBase(old_db["db"])
    expected = sorted(s for f in old_db["report"].folders for s in f.sim_trial_indices())
    assert list(db["sim_trial_index"]) == expected
    assert sorted(db["voltage_traces"].compute().index) == expected

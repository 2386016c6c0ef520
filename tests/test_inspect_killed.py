"""A really killed ingest: what every query name and the operator commands show.

One `simlake ingest` process (its own local Spark, conf/test.toml) is stopped by the test hook
(`--pause-after pre-metadata:2 --pause-file F`) after batch 2 wrote all its data but not its
completion record (`metadata`), and its whole process group is SIGKILLed there. Expectations
come from the plain reference reading of the raw files, not from the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import ingest_compare as cmp
from simlake import synth
from simlake.discovery import discover
from simlake.ops.info import database_info, run_history
from simlake.ops.verify import verify
from simlake.spark import catalog

pytestmark = pytest.mark.spark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAIT_LIMIT = 1200.0  # a hang guard for a loaded machine, not a timing assertion


@pytest.fixture(scope="module")
def killed(request, tmp_path_factory):
    base = tmp_path_factory.mktemp("killed")
    raw, db, pause = str(base / "raw"), str(base / "db"), str(base / "paused")
    synth.generate_tree(raw, runs=2, trials=3, times=300, synapses=20, cells=10, seed=11)
    folders = discover(raw).folders
    batch_bytes = max(f.total_bytes for f in folders)  # one folder per commit batch
    cmd = [sys.executable, "-m", "simlake.cli", "ingest", raw, db, "--profile", "test",
           "--batch-gb", repr((batch_bytes + 0.5) / 2**30),
           "--pause-after", "pre-metadata:2", "--pause-file", pause]
    with open(base / "ingest.err", "w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
        try:
            request.getfixturevalue("spark")  # the session starts while the ingest runs
            deadline = time.monotonic() + WAIT_LIMIT
            while not os.path.exists(pause):
                if proc.poll() is not None:
                    err.seek(0)
                    raise AssertionError(f"ingest exited early:\n{err.read()[-3000:]}")
                assert time.monotonic() < deadline, "pause point not reached"
                time.sleep(0.2)
        finally:
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
            proc.wait()
    done, hidden = folders[0].sim_run, folders[1].sim_run
    return {"raw": raw, "db": db, "done": done, "hidden": hidden,
            "expected": cmp.expected_tables(raw, {done}),
            "all": cmp.expected_tables(raw, {done, hidden})}


def _count(spark, name: str) -> int:
    return spark.sql(f"SELECT count(*) FROM {name}").first()[0]


def _rows_by_run(spark, names: list[str]) -> dict[tuple[str, str], int]:
    """``(name, sim_run) -> rows`` of every name, in one Spark job."""
    union = " UNION ALL ".join(
        f"SELECT '{n}' AS name, sim_run, count(*) AS n FROM {n} GROUP BY sim_run" for n in names)
    return {(r["name"], r["sim_run"]): r["n"] for r in spark.sql(union).collect()}


def _expected_by_run(tables: dict, names: dict[str, str]) -> dict[tuple[str, str], int]:
    return {(name, run): n for name, key in names.items()
            for run, n in tables[key].groupby("sim_run").size().items()}


def test_killed_run_left_hidden_rows(killed):
    """The premise: batch 2's rows are in the tables, its metadata is not."""
    assert cmp.committed_sim_runs(killed["db"]) == {killed["done"]}
    rows = cmp.table_frame(killed["db"], "voltage_traces")
    assert set(rows["sim_run"]) == {killed["done"], killed["hidden"]}


#: The per-trial tables the reference reading gives, and metadata.
CHECKED = ("metadata", "voltage_traces", "synapse_activation", "cell_activation", "spike_times",
           "dendritic_recordings", "dendritic_spike_times")


def test_attached_names_show_completed_folders_only(spark, killed):
    names = catalog.attach(spark, killed["db"])
    assert set(catalog.TRIAL_TABLES) | {"metadata", "trial_summary"} <= set(names)
    got = _rows_by_run(spark, [*CHECKED, "parameterfiles"])
    expected = _expected_by_run(killed["expected"], {k: k for k in CHECKED})
    assert {k: n for k, n in got.items() if k[0] != "parameterfiles"} == expected
    assert {run for name, run in got if name == "parameterfiles"} == {killed["done"]}
    n_points = sum(len(t) for t in killed["expected"]["voltage_traces"]["t"])
    assert _count(spark, "voltage_traces_long") == n_points
    assert _count(spark, "trial_summary") == len(killed["expected"]["metadata"])
    # the Delta table itself still holds every row (for maintenance)
    path = os.path.join(killed["db"], "voltage_traces")
    assert _count(spark, f"delta.`{path}`") == len(killed["all"]["voltage_traces"])


def test_registered_views_filtered_delta_tables_whole(spark, killed):
    names = catalog.register(spark, killed["db"], "killed_test")
    assert "killed_test.voltage_traces" in names and "killed_test_delta.voltage_traces" in names
    views = {f"killed_test.{k}": k for k in CHECKED}
    tables = {f"killed_test_delta.{k}": k for k in CHECKED if k != "metadata"}
    got = _rows_by_run(spark, [*views, *tables])
    assert got == (_expected_by_run(killed["expected"], views)
                   | _expected_by_run(killed["all"], tables))
    # maintenance by name: history and time travel on the Delta tables
    history = spark.sql("DESCRIBE HISTORY killed_test_delta.voltage_traces").toPandas()
    assert sorted(history["version"]) == [0, 1, 2]  # create, batch 1, batch 2
    first_batch = spark.sql(
        "SELECT count(*) FROM killed_test_delta.voltage_traces VERSION AS OF 1").first()[0]
    assert first_batch == len(killed["expected"]["voltage_traces"])
    assert _count(spark, "killed_test.trial_summary") == len(killed["expected"]["metadata"])


def test_verify_notes_hidden_rows_not_a_problem(killed):
    report = verify(killed["db"])
    assert report.ok, report.problems
    assert report.trials == len(killed["expected"]["metadata"])
    hidden = [n for n in report.notes if n.startswith("hidden rows of incomplete folder")]
    assert len(hidden) == 1 and killed["hidden"] in hidden[0]
    n_volt = len(killed["all"]["voltage_traces"]) - len(killed["expected"]["voltage_traces"])
    assert f"voltage_traces {n_volt}" in hidden[0]


def test_info_and_history_of_killed_run(killed):
    info = database_info(killed["db"])
    assert info["trials"] == len(killed["expected"]["metadata"]) and info["folders"] == 1
    tables = {t["name"]: t for t in info["tables"]}
    assert tables["voltage_traces"]["rows"] == len(killed["all"]["voltage_traces"])
    assert tables["voltage_traces"]["version"] == 2
    # the killed run wrote no run record: the history comes from the metadata table
    source, runs = run_history(killed["db"])
    assert source.startswith("metadata") and len(runs) == 1
    assert runs[0]["trials"] == len(killed["expected"]["metadata"]) and runs[0]["folders"] == 1
    assert info["last_ingest"]["run_id"] == runs[0]["run_id"]

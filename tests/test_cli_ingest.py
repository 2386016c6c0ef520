"""What the operator of ``simlake ingest`` sees: a quiet console with progress from real counts,
the summary, the run record (``--summary-json`` and the copy kept in the database), the log
file that takes Spark's chatter, and a rerun with nothing new that never starts a JVM.

One real demo ingest (``simlake ingest`` with no paths, the embedded local profile) in a
subprocess; its rerun runs with a broken ``JAVA_HOME``: it can only pass without Spark.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from deltalake import DeltaTable

from simlake.console import NORMAL, QUIET, Console
from simlake.discovery import discover
from simlake.runrecords import read_run_records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(args, cwd, env=None):
    done = subprocess.run([sys.executable, "-m", "simlake.cli", "ingest", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=1200)
    return done.returncode, done.stdout.splitlines(), done.stderr.splitlines()


def _decoded_files(raw: str) -> tuple[int, int]:
    """Files and bytes a full ingest decodes: every voltage, synapse, presynaptic-cell and
    dendritic file of the listing (sizes from the file system)."""
    n = size = 0
    for f in discover(raw).folders:
        names = [f.voltage_file, *f.synapse_files.values(), *f.cell_files.values(),
                 *f.dendritic_files.values()]
        for name in filter(None, names):
            n += 1
            size += os.path.getsize(os.path.join(f.abspath, name))
    return n, size


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("demo")
    summary_json = cwd / "summary.json"
    first = _cli(["--summary-json", str(summary_json)], cwd)
    return {"cwd": cwd, "raw": str(cwd / "simlake-demo" / "raw"),
            "db": str(cwd / "simlake-demo" / "db"), "first": first,
            "record": json.loads(summary_json.read_text()) if summary_json.exists() else None}


@pytest.mark.spark
def test_demo_ingest_prints_fewer_than_20_lines(demo):
    code, out, err = demo["first"]
    assert code == 0, err
    assert err == [], err  # no Spark, py4j, Ivy or log4j line on the console
    assert len(out) + len(err) < 20, out
    assert out[0].startswith("generated a sample simrun tree in simlake-demo/raw")
    n, size = _decoded_files(demo["raw"])
    trials = DeltaTable(os.path.join(demo["db"], "metadata")).to_pyarrow_table().num_rows
    progress = [line for line in out if line.startswith("batch 1/1: decoded ")]
    assert len(progress) == 1, out  # not a terminal: one line per commit batch
    assert progress[0].startswith(f"batch 1/1: decoded {n}/{n} files, {size / 1e6:.1f}/"
                                  f"{size / 1e6:.1f} MB (100%)"), progress
    assert progress[0].endswith(f"; {trials} trials committed"), progress
    assert any(line.startswith("simlake ingest ") for line in out)


@pytest.mark.spark
def test_summary_json_is_the_kept_record_and_matches_the_tables(demo):
    record, db = demo["record"], demo["db"]
    assert record is not None
    kept = read_run_records(db)
    assert kept == [record]
    assert record["exit_code"] == 0 and record["error"] is None
    n, size = _decoded_files(demo["raw"])
    assert (record["files"], record["bytes"]) == (n, size)
    tables = {name: DeltaTable(os.path.join(db, name)) for name in sorted(os.listdir(db))
              if os.path.isdir(os.path.join(db, name, "_delta_log"))}
    assert record["table_versions"] == {name: t.version() for name, t in tables.items()}
    for name, rows in record["rows"].items():
        assert rows == tables[name].to_pyarrow_table().num_rows, name
    meta = tables["metadata"].to_pyarrow_table()
    assert record["trials"] == meta.num_rows
    assert sorted(record["folders"]["new"]) == sorted(set(meta.column("sim_run").to_pylist()))
    assert record["rejected"] == []
    assert record["started"] <= record["finished"]
    # the log file named in the record holds what the console did not show
    assert record["log"] == os.path.join(db, "_simlake_logs", f"{record['run_id']}.log")
    with open(record["log"], encoding="utf-8") as fh:
        log = fh.read()
    assert "resolving dependencies" in log  # Ivy's report
    assert "simlake.spark.delta_commit" in log  # our own log records


@pytest.mark.spark
def test_rerun_with_nothing_new_starts_no_jvm(demo):
    """With JAVA_HOME pointing nowhere, Spark cannot start: the run must not need it."""
    code, out, err = _cli(["-v"], demo["cwd"], env={"JAVA_HOME": "/nonexistent"})
    assert code == 0, err
    assert any("nothing new: the database was left unchanged" in line for line in out)
    assert any("nothing to ingest: Spark not started" in line for line in err)  # -v: the log
    first, again = read_run_records(demo["db"])
    assert again["exit_code"] == 0 and again["trials"] == 0
    assert again["table_versions"] == first["table_versions"]


def test_console_levels_and_terminal_progress():
    out, err = io.StringIO(), io.StringIO()
    tty = Console(NORMAL, out, err, tty=True)
    tty.progress("decoded 1/4 files")
    tty.progress("decoded 4/4")
    tty.summary("summary")
    tty.error("simlake ingest: oops")
    assert out.getvalue() == "\rdecoded 1/4 files\rdecoded 4/4      \nsummary\n"
    assert err.getvalue() == "simlake ingest: oops\n"
    out, err = io.StringIO(), io.StringIO()
    quiet = Console(QUIET, out, err, tty=False)
    quiet.progress("decoded 1/4 files")
    quiet.note("generated")
    quiet.summary("summary")
    assert out.getvalue() == "summary\n"

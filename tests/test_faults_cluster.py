"""A lost standalone worker, made for real: a Spark master and one worker on loopback, the
ingest's driver on them, the worker JVM SIGKILLed while its executor's Python workers decode.

Spark alone would wait for a new worker forever; the driver's executor watch cancels the jobs
after ``spark.simlake.executorLossTimeout`` (10 s here): one line, exit 1, nothing committed
lost, and the rerun (the shared local session) completes the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pyspark
import pytest

import ingest_compare as cmp
from simlake import synth
from simlake.discovery import discover
from simlake.ingest_options import IngestOptions
from simlake.spark import job
from simlake.spark.ingest import ingest
from standalone import free_port, stop

pytestmark = [pytest.mark.spark, pytest.mark.cluster]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPARK_CLASS = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-class")




def _start(args: list[str], log: str, ready: str, env: dict) -> subprocess.Popen:
    """A Spark daemon (its own process group), once ``ready`` is in its log."""
    with open(log, "w") as out:
        proc = subprocess.Popen([SPARK_CLASS, *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None or ready in open(log, errors="replace").read():
            break
        time.sleep(0.5)
    assert proc.poll() is None and ready in open(log).read(), open(log).read()[-3000:]
    return proc




@pytest.fixture
def one_worker(tmp_path):
    """A standalone master and one worker on 127.0.0.1 (this machine's Python and simlake);
    both stopped even on failure. Yields the master URL and the worker's process."""
    logs = tmp_path / "standalone"
    logs.mkdir()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(logs),
           "SPARK_WORKER_DIR": str(logs / "work")}
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                             "--port", str(port), "--webui-port", str(free_port())],
                            str(logs / "master.log"), "I have been elected leader", env))
        procs.append(_start(["org.apache.spark.deploy.worker.Worker", url, "--host",
                             "127.0.0.1", "--cores", "2", "--memory", "2g", "--webui-port",
                             str(free_port()), "--work-dir", str(logs / "work")],
                            str(logs / "worker.log"), "Successfully registered with master",
                            env))
        yield url, procs[1]
    finally:
        for proc in reversed(procs):
            stop(proc)


def _decoding_under(worker: psutil.Process) -> bool:
    """Whether the executor under ``worker`` runs Python tasks: its simlake daemon, started for
    the run's first Python task (the decoding job and the param-file job start together), is
    there. The daemon lives as long as the executor, so a poll cannot miss it, as it could
    miss a forked Python worker of a short task on a loaded machine."""
    try:
        tree = worker.children(recursive=True)
    except psutil.Error:
        return False
    return any("simlake.spark.daemon" in _cmdline(p) for p in tree)


def _cmdline(process: psutil.Process) -> str:
    """The command line, "" for a process that ended or is a zombie (one such process in
    the tree must not hide the others)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def test_lost_standalone_worker_one_line_nothing_lost_rerun_completes(spark, one_worker,
                                                                      tmp_path):
    url, worker = one_worker
    raw = synth.generate_tree(str(tmp_path / "raw"), runs=3, trials=4, times=150_000,
                              synapses=40, cells=30, seed=21).root
    folders = discover(raw).folders
    first = tmp_path / "first"  # the first folder, committed before the faulty run
    os.makedirs(first / os.path.dirname(folders[0].sim_run), exist_ok=True)
    os.symlink(folders[0].abspath, first / folders[0].sim_run)
    db = str(tmp_path / "db")
    ingest(spark, IngestOptions(str(first), db))
    os.remove(os.path.join(db, "simlake.json"))  # the manifest names the first tree
    before = {k: cmp.table_frame(db, k) for k in cmp.KEYS}

    profile = tmp_path / "standalone.toml"
    profile.write_text(
        f'[spark]\nmaster = "{url}"\napp_name = "simlake-lost-worker"\n[spark.conf]\n'
        '"spark.ui.enabled" = "false"\n"spark.executor.memory" = "1g"\n'
        '"spark.executor.cores" = "2"\n"spark.sql.shuffle.partitions" = "2"\n'
        '"spark.databricks.delta.snapshotPartitions" = "2"\n'
        '"spark.python.daemon.module" = "simlake.spark.daemon"\n'
        '"spark.simlake.executorLossTimeout" = "10"\n')
    proc = subprocess.Popen([sys.executable, "-m", "simlake.cli", "ingest", raw, db,
                             "--profile", str(profile), "-q"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        watched = psutil.Process(worker.pid)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if _decoding_under(watched):
                worker.send_signal(signal.SIGKILL)  # the worker JVM only: its executor follows
                break
            time.sleep(0.05)
        if worker.poll() is None and proc.poll() is not None:  # the run ended first
            raise AssertionError(f"worker not killed; the run ended: {proc.communicate()}")
        assert worker.poll() is not None or worker.wait(30) is not None, "worker not killed"
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = err.splitlines()
    assert proc.returncode == job.EXIT_FAILED and out == "" and len(lines) == 1, (out, err)
    assert lines[0].startswith("simlake ingest: no Spark executor for 10 s while jobs waited "
                               "(the workers were lost"), lines
    assert "nothing of the batch was committed, rerun the ingest" in lines[0]
    for key, frame in before.items():  # what was committed is intact
        cmp.assert_frames_equal(cmp.canonical(cmp.table_frame(db, key)), cmp.canonical(frame),
                                key)
    assert cmp.committed_sim_runs(db) == {folders[0].sim_run}

    again = ingest(spark, IngestOptions(raw, db))
    assert sorted(again.folders_new) == sorted(f.sim_run for f in folders[1:])
    cmp.assert_matches_reference(db, cmp.expected_tables(raw))

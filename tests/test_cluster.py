"""The ingest under spark-submit on a real Spark standalone master + worker on 127.0.0.1.

The tables it writes must equal those of a local-mode ingest of the same tree."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pyarrow as pa
import pyspark
import pytest
from deltalake import DeltaTable

import reference as ref
from simlake import synth
from simlake.ingest_options import IngestOptions
from simlake.spark.ingest import ingest

pytestmark = [pytest.mark.spark, pytest.mark.cluster]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPARK_BIN = os.path.join(os.path.dirname(pyspark.__file__), "bin")
DELTA_PACKAGE = "io.delta:delta-spark_2.13:4.0.0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(path: str, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"process exited ({proc.returncode}); log:\n{open(path).read()[-3000:]}"
            )
        if os.path.exists(path) and text in open(path, errors="replace").read():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{text!r} not in {path} after {timeout}s:\n{open(path).read()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(20)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A Spark standalone master and one worker on loopback; both stopped even on failure."""
    logs = tmp_path_factory.mktemp("standalone")
    env = dict(
        os.environ,
        SPARK_LOCAL_IP="127.0.0.1",
        PYSPARK_PYTHON=sys.executable,
        SPARK_LOG_DIR=str(logs),
        SPARK_WORKER_DIR=str(logs / "work"),
    )
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    spark_class = os.path.join(SPARK_BIN, "spark-class")
    procs = []
    try:
        master_log = str(logs / "master.log")
        procs.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webui-port",
                    str(_free_port()),
                ],
                stdout=open(master_log, "w"),
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        )
        _wait_for(master_log, "I have been elected leader", procs[0], 120)
        worker_log = str(logs / "worker.log")
        procs.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "2",
                    "--memory",
                    "3g",
                    "--webui-port",
                    str(_free_port()),
                    "--work-dir",
                    str(logs / "work"),
                ],
                stdout=open(worker_log, "w"),
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        )
        _wait_for(worker_log, "Successfully registered with master", procs[1], 120)
        yield {"url": url, "env": env, "logs": logs}
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _rows(db: str, key: str) -> list:
    table = DeltaTable(os.path.join(db, key)).to_pyarrow_table()
    if "run_id" in table.column_names:
        table = table.drop_columns(["run_id"])
    sort = [c for c in ("recording_site", "sim_trial_index") if c in table.column_names]
    order = pa.compute.sort_indices(table, [(c, "ascending") for c in sort])
    return table.take(order).to_pylist()


def test_spark_submit_on_standalone_cluster_equals_local(standalone, spark, tmp_path):
    raw = str(tmp_path / "raw")
    synth.generate_tree(raw, runs=6, trials=3, times=400, synapses=40, cells=30, seed=11)
    cluster_db, local_db = str(tmp_path / "cluster_db"), str(tmp_path / "local_db")
    cmd = [
        os.path.join(SPARK_BIN, "spark-submit"),
        "--master",
        standalone["url"],
        "--packages",
        DELTA_PACKAGE,
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        "--conf",
        f"spark.pyspark.driver.python={sys.executable}",
        "--conf",
        "spark.executor.memory=2g",
        "--conf",
        "spark.databricks.delta.snapshotPartitions=2",
        os.path.join(ROOT, "jobs", "ingest_simrun.py"),
        "--profile",
        "cluster",
        raw,
        cluster_db,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=standalone["env"], timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert "trials ingested: 18" in out.stdout
    # the work really ran on the standalone worker: it launched an executor for this app
    app_dirs = os.listdir(standalone["logs"] / "work")
    assert any(d.startswith("app-") for d in app_dirs), app_dirs

    ingest(spark, IngestOptions(raw, local_db))
    for key in ref.INGEST_TABLES:
        assert _rows(cluster_db, key) == _rows(local_db, key), key

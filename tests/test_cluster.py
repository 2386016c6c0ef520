"""The ingest under spark-submit on a real Spark standalone master + worker on 127.0.0.1, by
Spark's own convention for Python dependencies: the job ships its environment (the built wheel
installed in a fresh venv, packed by venv-pack) with ``--archives env.tar.gz#environment`` and
``spark.pyspark.python=./environment/bin/python``. The worker has no simlake and no Python
packages of ours on its path. The tables must equal those of a local-mode ingest."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pyarrow as pa
import pyspark
import pytest
from deltalake import DeltaTable

import reference as ref
from packaged_env import isolated_env
from simlake import synth
from simlake.ingest_options import IngestOptions
from simlake.spark.ingest import ingest
from standalone import free_port, stop

pytestmark = [pytest.mark.spark, pytest.mark.cluster]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPARK_BIN = os.path.join(os.path.dirname(pyspark.__file__), "bin")
DELTA_PACKAGE = "io.delta:delta-spark_2.13:4.0.0"




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




@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A Spark standalone master and one worker on loopback; both stopped even on failure."""
    logs = tmp_path_factory.mktemp("standalone")
    # the worker's environment knows nothing of our Python: no PYSPARK_PYTHON, no venv on PATH
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV", "PYTHONPATH")}
    ours = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != ours)
    env.update(SPARK_LOCAL_IP="127.0.0.1", SPARK_LOG_DIR=str(logs),
               SPARK_WORKER_DIR=str(logs / "work"))
    port = free_port()
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
                    str(free_port()),
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
                    str(free_port()),
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
        yield {"url": url, "logs": logs}
    finally:
        for proc in reversed(procs):
            stop(proc)


def _rows(db: str, key: str) -> list:
    table = DeltaTable(os.path.join(db, key)).to_pyarrow_table()
    if "run_id" in table.column_names:
        table = table.drop_columns(["run_id"])
    sort = [c for c in ("recording_site", "sim_trial_index") if c in table.column_names]
    order = pa.compute.sort_indices(table, [(c, "ascending") for c in sort])
    return table.take(order).to_pylist()


@pytest.fixture(scope="module")
def packed_env(wheel_venv, tmp_path_factory):
    """The wheel's venv packed once per test session for ``--archives``."""
    return wheel_venv.pack(str(tmp_path_factory.mktemp("packed") / "env.tar.gz"))


def test_spark_submit_with_shipped_environment_equals_local(standalone, wheel_venv, packed_env,
                                                            spark, tmp_path):
    raw = str(tmp_path / "raw")
    synth.generate_tree(raw, runs=6, trials=3, times=400, synapses=40, cells=30, seed=11)
    cluster_db, local_db = str(tmp_path / "cluster_db"), str(tmp_path / "local_db")
    # the operator's machine: the installed venv (its spark-submit, its Python as the driver)
    cmd = [
        os.path.join(wheel_venv.venv, "bin", "spark-submit"),
        "--master", standalone["url"],
        "--packages", DELTA_PACKAGE,
        "--archives", f"{packed_env}#environment",
        "--conf", "spark.pyspark.python=./environment/bin/python",
        "--conf", f"spark.pyspark.driver.python={wheel_venv.python}",
        "--conf", "spark.executor.memory=2g",
        "--conf", "spark.databricks.delta.snapshotPartitions=2",
        os.path.join(ROOT, "jobs", "ingest_simrun.py"),
        "--profile", "cluster",
        raw,
        cluster_db,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=str(tmp_path),
                         env=isolated_env(wheel_venv.venv, SPARK_LOCAL_IP="127.0.0.1"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert "trials ingested: 18" in out.stdout
    # the work really ran on the standalone worker, with the shipped environment unpacked in
    # its executor's folder (the worker has no simlake of its own)
    work = standalone["logs"] / "work"
    apps = [d for d in os.listdir(work) if d.startswith("app-")]
    assert apps, os.listdir(work)
    executors = [work / a / e for a in apps for e in os.listdir(work / a)]
    shipped = [e / "environment" / "bin" / "python" for e in executors]
    assert any(p.exists() for p in shipped), executors
    print("packaging seconds:", {k: round(v, 1) for k, v in wheel_venv.seconds.items()})

    ingest(spark, IngestOptions(raw, local_db))
    for key in ref.INGEST_TABLES:
        assert _rows(cluster_db, key) == _rows(local_db, key), key

"""Shared fixtures. Unit tests need no JVM; integration tests share ONE local Spark session."""

from __future__ import annotations

import os
import sys

import pytest


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """The test run's only SparkSession (conf/test.toml: local[2], UI off, 2 shuffle partitions)."""
    from simlake.config import load_spark_profile
    from simlake.spark.catalog import catalog_conf
    from simlake.spark.session import build_session

    os.environ["PYSPARK_PYTHON"] = sys.executable
    # a persistent (Derby) catalog under a temporary folder, so catalog registration is tested
    warehouse = tmp_path_factory.mktemp("warehouse")
    session = build_session(load_spark_profile("test"), extra_conf=catalog_conf(str(warehouse)))
    yield session
    session.stop()


def _drop_one_landmark(raw: str) -> str:
    anatomy = sorted(
        os.path.join(d, n)
        for d, _, names in os.walk(raw)
        for n in names
        if n.endswith(".landmarkAscii")
    )
    os.unlink(anatomy[0])
    return anatomy[0]


@pytest.fixture(scope="session")
def ingested(spark, tmp_path_factory):
    """A generated tree (every variant) ingested once by the real Spark job, shared by tests
    that only read it. One referenced landmark file is deleted first: reported, not fatal."""
    from simlake import synth
    from simlake.ingest_options import IngestOptions
    from simlake.spark.ingest import ingest

    base = tmp_path_factory.mktemp("ingest")
    raw, db = str(base / "raw"), str(base / "db")
    report = synth.generate_tree(raw, runs=7, trials=4, times=800, synapses=60, cells=40, seed=3)
    missing = _drop_one_landmark(raw)
    summary = ingest(spark, IngestOptions(raw, db, target_task_bytes=64 * 1024))
    return {"raw": raw, "db": db, "report": report, "summary": summary, "missing": missing}


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory, ingested):
    """The wheel built from this tree in ONE fresh virtualenv per test session (pip cache).
    The reading side alone is installed first and reads the suite's database (``ingested``);
    what it read is kept as ``.reading_side``. Then the ``spark`` extra is added."""
    from packaged_env import WheelVenv, read_with

    venv = WheelVenv(str(tmp_path_factory.mktemp("wheel")))
    venv.install()
    venv.reading_side = read_with(venv, ingested["db"], cwd=venv.base)
    venv.install("spark")
    return venv

"""Shared fixtures. Unit tests need no JVM; integration tests share ONE local Spark session."""

from __future__ import annotations

import os
import sys

import pytest


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """The test run's only SparkSession (conf/test.toml: local[2], UI off, 2 shuffle partitions)."""
    from simlake.config import load_spark_profile
    from simlake.spark.session import build_session

    os.environ["PYSPARK_PYTHON"] = sys.executable
    warehouse = tmp_path_factory.mktemp("warehouse")
    session = build_session(load_spark_profile("test"),
                            extra_conf={"spark.sql.warehouse.dir": str(warehouse)})
    yield session
    session.stop()

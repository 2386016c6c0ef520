"""Spark session factory: a SparkSession with Delta Lake from a ``conf/`` profile.

Delta's jars (``io.delta:delta-spark_2.13``) are resolved from Maven Central by Spark's own
package resolution (Ivy) on first start and cached in the Ivy cache afterwards.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from simlake.config import SparkProfile

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # Delta truncates string min/max statistics to 32 characters by default; sim_trial_index
    # values are 30-60+ characters and the adapter takes dask divisions from these statistics.
    "spark.databricks.io.skipping.stringPrefixLength": "1024",
    # Delta 4.0 keeps the full file list of small tables in each version's checksum file and
    # derives it at every commit; for a table's first commit that means reconstructing the
    # (empty) prior state with a Spark query: 6-8 s for the first table a JVM creates, 0.5 s
    # for each further one (measured: 0.8 s and 0.2 s without). Readers lose nothing they use.
    "spark.databricks.delta.allFilesInCrc.enabled": "false",
}


def session_builder(profile: SparkProfile, extra_conf: dict[str, str] | None = None):
    """A ``SparkSession.Builder`` for ``profile`` with Delta configured; call ``getOrCreate()``.

    With a master in the profile (local modes), Python workers run the driver's interpreter, so
    executors see the same packages. ``extra_conf`` overrides the profile (e.g. a warehouse).
    Under spark-submit the JVM is already running: Delta's jars must then come from
    ``--packages io.delta:delta-spark_2.13:4.0.0`` (see README), the builder's are ignored.
    """
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(profile.app_name)
    settings = dict(DELTA_CONF)
    if profile.master:
        # a profile that names its master starts its own executors: they run this interpreter.
        # Without a master (spark-submit), the submitter decides: --conf spark.pyspark.python.
        builder = builder.master(profile.master)
        settings["spark.pyspark.python"] = sys.executable
        settings["spark.pyspark.driver.python"] = sys.executable
    settings.update(profile.conf)
    settings.update(extra_conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    return configure_spark_with_delta_pip(builder)


def build_session(profile: SparkProfile, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Start (or reuse) the SparkSession of ``profile`` with Delta Lake enabled."""
    from pyspark import SparkContext

    # Spark's launcher reads PYSPARK_PYTHON before any conf is applied; the worker processes
    # must run this interpreter, so set it for the JVM we are about to start.
    if profile.master:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    extra = dict(extra_conf or {})
    archive = None
    if profile.master and profile.class_archive and SparkContext._gateway is None:
        from simlake.spark.class_archive import driver_archive

        conf = {**profile.conf, **extra}
        archive = driver_archive(conf)
        if archive.java_options:
            key = "spark.driver.extraJavaOptions"
            extra[key] = f"{conf.get(key, '')} {archive.java_options}".strip()
    spark = session_builder(profile, extra).getOrCreate()
    if archive is not None:
        archive.publish_at_exit(getattr(SparkContext._gateway, "proc", None))
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s session up (master %s)", spark.version, spark.sparkContext.master)
    return spark

"""Spark session factory: a SparkSession with Delta Lake from a profile.

Settings follow Spark's own precedence. From strongest to weakest:

1. ``extra_conf`` (``simlake ingest --conf KEY=VALUE``, or a caller's explicit settings);
2. what the launch already gives: ``spark-submit`` flags and ``--conf`` (and ``--conf`` in
   ``PYSPARK_SUBMIT_ARGS``);
3. ``spark-defaults.conf`` (in ``$SPARK_CONF_DIR``, else ``$SPARK_HOME/conf``);
4. the profile's ``[spark.conf]`` and the Delta settings below: defaults only.

Delta's jars (``io.delta:delta-spark_2.13``) are resolved from Maven Central by Spark's own
package resolution (Ivy) on first start and cached in the Ivy cache afterwards.
"""

from __future__ import annotations

import logging
import os
import re
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

#: Switch of the driver JVM's class archive (``simlake.spark.class_archive``), off unless a
#: profile, ``spark-defaults.conf`` or ``--conf`` turns it on.
CLASS_ARCHIVE_KEY = "spark.simlake.classArchive"


def launched_by_spark_submit() -> bool:
    """Whether this driver runs under ``spark-submit`` (its JVM is already up and configured)."""
    return bool(os.environ.get("PYSPARK_GATEWAY_PORT"))


def spark_defaults_file() -> str | None:
    """The ``spark-defaults.conf`` a launch reads: ``$SPARK_CONF_DIR``, else
    ``$SPARK_HOME/conf`` (pyspark's own folder when ``SPARK_HOME`` is unset); None if absent."""
    folder = os.environ.get("SPARK_CONF_DIR")
    if not folder:
        home = os.environ.get("SPARK_HOME")
        if not home:
            import pyspark

            home = os.path.dirname(pyspark.__file__)
        folder = os.path.join(home, "conf")
    path = os.path.join(folder, "spark-defaults.conf")
    return path if os.path.isfile(path) else None


def read_spark_defaults(path: str) -> dict[str, str]:
    """The settings of a ``spark-defaults.conf`` (Java properties: ``key value``, ``key=value``
    or ``key: value``; ``#`` and ``!`` start comments)."""
    settings = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line[0] in "#!":
                continue
            match = re.match(r"([^\s=:]+)\s*[=:\s]\s*(.*)$", line)
            key, value = match.groups() if match else (line, "")
            settings[key] = value.strip()
    return settings


def _submit_args_conf() -> dict[str, str]:
    """``--conf KEY=VALUE`` pairs in ``PYSPARK_SUBMIT_ARGS`` (they reach the JVM we launch)."""
    import shlex

    words = shlex.split(os.environ.get("PYSPARK_SUBMIT_ARGS", ""))
    pairs = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--conf", "-c")]
    pairs += [w.split("=", 1)[1] for w in words if w.startswith("--conf=")]
    return dict(p.split("=", 1) for p in pairs if "=" in p)


def launch_settings() -> dict[str, str]:
    """Settings the launch already fixes, which a profile must not override: under
    ``spark-submit``, those of the running JVM (its flags, ``--conf`` and
    ``spark-defaults.conf``); otherwise ``spark-defaults.conf`` and ``PYSPARK_SUBMIT_ARGS``."""
    if launched_by_spark_submit():
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()  # connects to spark-submit's JVM
        return dict(SparkConf().getAll())
    path = spark_defaults_file()
    settings = read_spark_defaults(path) if path else {}
    settings.update(_submit_args_conf())
    return settings


def effective_settings(profile: SparkProfile, extra_conf: dict[str, str] | None = None,
                       launch: dict[str, str] | None = None) -> dict[str, str]:
    """The settings this session gets, by the precedence in the module docstring (``launch``:
    :func:`launch_settings`). Includes ``spark.master`` where the profile's master applies."""
    launch = launch_settings() if launch is None else launch
    defaults = dict(DELTA_CONF)
    if profile.master:
        defaults["spark.master"] = profile.master
    if not launched_by_spark_submit():
        # we launch the executors: they run this interpreter unless told otherwise. Under
        # spark-submit the submitter decides (--conf spark.pyspark.python, --archives).
        defaults["spark.pyspark.python"] = sys.executable
        defaults["spark.pyspark.driver.python"] = sys.executable
    defaults[CLASS_ARCHIVE_KEY] = "true" if profile.class_archive else "false"
    defaults.update(profile.conf)
    settings = {**defaults, **launch, **(extra_conf or {})}
    # only what we add is returned: the launch's own settings reach Spark by themselves
    return {k: v for k, v in settings.items() if k not in launch or k in (extra_conf or {})}


def session_builder(profile: SparkProfile, extra_conf: dict[str, str] | None = None,
                    launch: dict[str, str] | None = None):
    """A ``SparkSession.Builder`` for ``profile`` with Delta configured; call ``getOrCreate()``.

    Profile settings are defaults (see the module docstring). Under spark-submit Delta's jars
    must come from ``--packages io.delta:delta-spark_2.13:4.0.0``; the builder's are ignored.
    """
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(profile.app_name)
    for key, value in effective_settings(profile, extra_conf, launch).items():
        builder = builder.config(key, value)
    return configure_spark_with_delta_pip(builder)


def _switch(value: str | None) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def build_session(profile: SparkProfile, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Start (or reuse) the SparkSession of ``profile`` with Delta Lake enabled."""
    from pyspark import SparkContext

    launching = not launched_by_spark_submit() and SparkContext._gateway is None
    # Spark's launcher reads PYSPARK_PYTHON before any conf is applied; the worker processes
    # must run this interpreter, so set it for the JVM we are about to start.
    if launching:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    launch = launch_settings()
    extra = dict(extra_conf or {})
    archive = None
    settings = {**launch, **effective_settings(profile, extra, launch)}
    if launching and _switch(settings.get(CLASS_ARCHIVE_KEY)):
        from simlake.spark.class_archive import driver_archive

        archive = driver_archive(settings)
        if archive.java_options:
            key = "spark.driver.extraJavaOptions"
            extra[key] = f"{settings.get(key, '')} {archive.java_options}".strip()
    spark = session_builder(profile, extra, launch).getOrCreate()
    if archive is not None:
        archive.publish_at_exit(getattr(SparkContext._gateway, "proc", None))
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s session up (master %s)", spark.version, spark.sparkContext.master)
    from simlake.spark.executor_watch import watch_executors

    watch_executors(spark.sparkContext)
    return spark

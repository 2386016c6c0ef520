"""Profile settings are defaults: ``--conf``, ``spark-submit`` flags and ``spark-defaults.conf``
override them, as in any Spark application; the optional accelerations are switches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pyspark
import pytest

from simlake.config import SparkProfile, load_spark_profile
from simlake.spark.session import (
    CLASS_ARCHIVE_KEY,
    DELTA_CONF,
    effective_settings,
    read_spark_defaults,
)

SPARK_SUBMIT = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")
DELTA_PACKAGE = "io.delta:delta-spark_2.13:4.0.0"
PROFILE = SparkProfile("p", "local[3]", "app", {"spark.sql.shuffle.partitions": "64",
                                                "spark.sql.session.timeZone": "UTC"})


def test_profile_settings_are_defaults_under_launch_and_explicit_settings():
    launch = {"spark.sql.shuffle.partitions": "7", "spark.master": "spark://h:7077"}
    got = effective_settings(PROFILE, {"spark.sql.session.timeZone": "Europe/Berlin"}, launch)
    # the launch's own settings are not repeated (they reach Spark by themselves)...
    assert "spark.sql.shuffle.partitions" not in got and "spark.master" not in got
    # ...explicit settings win over the profile, the profile fills the rest, Delta is on
    assert got["spark.sql.session.timeZone"] == "Europe/Berlin"
    assert {k: got[k] for k in DELTA_CONF} == DELTA_CONF
    alone = effective_settings(PROFILE, None, {})
    assert alone["spark.master"] == "local[3]" and alone["spark.sql.shuffle.partitions"] == "64"
    assert alone["spark.pyspark.python"] == sys.executable  # we launch: workers run this Python


def test_explicit_settings_win_over_the_launch():
    got = effective_settings(PROFILE, {"spark.sql.shuffle.partitions": "3"},
                             {"spark.sql.shuffle.partitions": "7"})
    assert got["spark.sql.shuffle.partitions"] == "3"


def test_the_class_archive_is_off_unless_asked():
    for name in ("local", "cluster", "test"):
        assert effective_settings(load_spark_profile(name), None, {})[CLASS_ARCHIVE_KEY] == "false"
    asked = effective_settings(PROFILE, None, {CLASS_ARCHIVE_KEY: "true"})
    assert CLASS_ARCHIVE_KEY not in asked  # the launch's value stands


def test_spark_defaults_file_is_read_as_java_properties(tmp_path):
    path = tmp_path / "spark-defaults.conf"
    path.write_text("# comment\n! also a comment\n\nspark.a   1\nspark.b=two words\n"
                    "spark.c : x:y\n  spark.d\t4  \n")
    assert read_spark_defaults(str(path)) == {"spark.a": "1", "spark.b": "two words",
                                              "spark.c": "x:y", "spark.d": "4"}


SUBMITTED = textwrap.dedent("""
    import json, sys
    from simlake.config import load_spark_profile
    from simlake.spark.session import build_session

    spark = build_session(load_spark_profile("cluster"))
    conf = spark.sparkContext.getConf()
    keys = ["spark.sql.shuffle.partitions", "spark.sql.session.timeZone",
            "spark.sql.execution.arrow.maxRecordsPerBatch", "spark.python.daemon.module",
            "spark.master", "spark.sql.extensions"]
    out = {k: conf.get(k, None) for k in keys}
    out["sql.shuffle"] = spark.conf.get("spark.sql.shuffle.partitions")
    # the daemon's workers: the parent of a Python worker runs the module named above
    out["parent"] = spark.sparkContext.parallelize([0], 1).map(
        lambda _: open(f"/proc/{__import__('os').getppid()}/cmdline", "rb").read()
        .replace(b"\\0", b" ").decode()).collect()[0]
    jvm = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    out["jvm_args"] = " ".join(jvm.getInputArguments())
    print("SETTINGS " + json.dumps(out))
    spark.stop()
""")


@pytest.mark.spark
def test_spark_submit_flags_and_spark_defaults_override_the_profile(tmp_path):
    """The issue's case: ``spark-submit --conf spark.sql.shuffle.partitions=7`` must give 7,
    not the cluster profile's 64; spark-defaults.conf beats the profile too; the worker
    daemon is switched off by a setting, no file edited."""
    conf_dir = tmp_path / "spark-conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text("spark.sql.session.timeZone  Europe/Berlin\n")
    script = tmp_path / "show_settings.py"
    script.write_text(SUBMITTED)
    env = dict(os.environ, SPARK_CONF_DIR=str(conf_dir), PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable, SIMLAKE_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run(
        [SPARK_SUBMIT, "--master", "local[1]", "--packages", DELTA_PACKAGE,
         "--conf", "spark.sql.shuffle.partitions=7",
         "--conf", "spark.python.daemon.module=pyspark.daemon",
         "--conf", "spark.ui.enabled=false", str(script)],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("SETTINGS "))
    got = json.loads(line.removeprefix("SETTINGS "))
    assert got["spark.sql.shuffle.partitions"] == "7" and got["sql.shuffle"] == "7"
    assert got["spark.sql.session.timeZone"] == "Europe/Berlin"  # spark-defaults.conf
    assert got["spark.sql.execution.arrow.maxRecordsPerBatch"] == "2000"  # the profile's
    assert got["spark.master"] == "local[1]"
    assert got["spark.sql.extensions"] == DELTA_CONF["spark.sql.extensions"]
    assert got["spark.python.daemon.module"] == "pyspark.daemon"
    assert "pyspark.daemon" in got["parent"] and "simlake" not in got["parent"], got["parent"]
    assert "SharedArchiveFile" not in got["jvm_args"] and "ArchiveClasses" not in got["jvm_args"]
    assert not (tmp_path / "cache").exists()  # no class archive written unasked

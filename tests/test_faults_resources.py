"""Faults of the resources an ingest runs on, made for real: a Python worker out of memory, a
wrong Java. Each gives one line naming the cause (and the file), a documented non-zero exit,
nothing committed lost, and the rerun completes.

The faulty run is a ``simlake ingest`` subprocess (its own Spark); the committed state before
it and the rerun after it use the shared session.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

import ingest_compare as cmp
from simlake import synth
from simlake.discovery import discover
from simlake.ingest_options import IngestOptions
from simlake.spark import job
from simlake.spark.ingest import ingest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.spark


def _cli(args, env=None, timeout=900):
    """``simlake ingest ARGS`` as a subprocess: (exit code, stdout lines, stderr lines)."""
    done = subprocess.run([sys.executable, "-m", "simlake.cli", "ingest", *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout.splitlines(), done.stderr.splitlines()


def _link_tree(dest: str, folders) -> str:
    """A raw tree of ``folders`` (discovered sim-run folders; their files hard-linked), each
    at its ``sim_run`` path, so that the same folder has the same ``sim_run`` in every tree."""
    for f in folders:
        shutil.copytree(f.abspath, os.path.join(dest, f.sim_run), copy_function=os.link)
    return dest


def test_python_worker_out_of_memory_names_the_file(spark, tmp_path):
    """The Python workers' address space limited (``spark.executor.pyspark.memory``, which
    Spark applies as RLIMIT_AS): small folders decode within it, a folder of 65 MB trace files
    does not. One line naming that folder's file and the cure, exit 1, the folders committed
    before intact, nothing of the batch committed; rerun with the limit lifted, it completes."""
    small = discover(synth.generate_tree(str(tmp_path / "small"), runs=2, trials=3, times=2000,
                                         synapses=40, cells=30, seed=7).root).folders
    big = discover(synth.generate_tree(str(tmp_path / "big"), runs=1, trials=4, times=1_000_000,
                                       synapses=40, cells=30, seed=8).root).folders
    assert not {f.sim_run for f in small} & {f.sim_run for f in big}
    first = _link_tree(str(tmp_path / "first"), small[:1])
    raw = _link_tree(str(tmp_path / "raw"), small + big)
    db = str(tmp_path / "db")
    ingest(spark, IngestOptions(first, db))
    os.remove(os.path.join(db, "simlake.json"))  # the manifest names the first tree
    before = {k: cmp.table_frame(db, k) for k in cmp.KEYS}

    code, out, err = _cli([raw, db, "--profile", "test", "-q",
                           "--conf", "spark.executor.pyspark.memory=700m"])
    assert code == job.EXIT_FAILED and out == [] and len(err) == 1, (out, err)
    m = re.fullmatch(r"simlake ingest: out of memory in a Python worker (decoding|writing the "
                     r"rows of) (\S+) \((\d+\.\d) MB\)(?: and \d+ more file\(s\))?; nothing of "
                     r"the batch was committed: .*spark\.executor\.pyspark\.memory.* then "
                     r"rerun \(details: (\S+\.log)\)", err[0])
    assert m, err
    named = m.group(2)
    assert any(named.startswith(os.path.join(raw, f.sim_run) + os.sep) for f in big), named
    assert m.group(3) == f"{os.path.getsize(named) / 2**20:.1f}"
    with open(m.group(4), encoding="utf-8") as fh:
        assert "MemoryError" in fh.read()
    for key, frame in before.items():  # what was committed is intact
        cmp.assert_frames_equal(cmp.canonical(cmp.table_frame(db, key)), cmp.canonical(frame),
                                key)
    assert cmp.committed_sim_runs(db) == {small[0].sim_run}
    assert cmp.error_set(db) == set()  # out of memory is no defect of a file: none rejected

    again = ingest(spark, IngestOptions(raw, db))  # the shared session: no memory limit
    assert sorted(again.folders_new) == sorted(f.sim_run for f in small[1:] + big)
    assert not again.rejections
    cmp.assert_matches_reference(db, cmp.expected_tables(raw))


def _newer_jdk() -> str | None:
    """A JDK on this machine too new for Spark 4.0 (Java 23 or newer), if there is one."""
    from simlake.preflight import TOO_NEW_JAVA, java_major

    base = "/usr/lib/jvm"
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        java = os.path.join(base, name, "bin", "java")
        if not os.path.isfile(java):
            continue
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
        major = java_major(done.stderr + done.stdout)
        if major is not None and major >= TOO_NEW_JAVA:
            return os.path.join(base, name)
    return None


NEWER_JDK = _newer_jdk()
needs_newer_jdk = pytest.mark.skipif(NEWER_JDK is None, reason="no JDK 23+ on this machine")


@needs_newer_jdk
def test_java_too_new_refused_before_spark_then_rerun_completes(spark, tmp_path):
    """JAVA_HOME pointing at a real JDK 23+ (Spark 4.0's Hadoop login fails there): one line
    naming the Java and its version, exit 1, no table; the rerun with Java 17 completes."""
    raw = synth.generate_tree(str(tmp_path / "raw"), runs=1, trials=2, times=500, synapses=20,
                              cells=10, seed=3).root
    db = str(tmp_path / "db")
    code, out, err = _cli([raw, db, "--profile", "test"], env={"JAVA_HOME": NEWER_JDK})
    assert code == job.EXIT_FAILED and out == [] and len(err) == 1, (out, err)
    assert err[0].startswith(f"simlake ingest: {NEWER_JDK}/bin/java: Java "), err
    assert "(from JAVA_HOME) is too new for Spark 4.0" in err[0]
    assert "set JAVA_HOME to Java 17 or 21" in err[0]
    assert not os.path.exists(db)  # refused before anything was created
    again = ingest(spark, IngestOptions(raw, db))
    assert len(again.folders_new) == 1
    cmp.assert_matches_reference(db, cmp.expected_tables(raw))


@needs_newer_jdk
def test_java_too_new_named_when_spark_starts_on_it(tmp_path):
    """Where no pre-check runs (spark-submit starts the JVM itself), the JVM's own failure on
    a JDK 23+ is named: PySpark's session started for real on it, its output read as the
    ingest reads the run log."""
    from simlake.faults import describe

    script = ("from pyspark.sql import SparkSession\n"
              "SparkSession.builder.master('local[1]').getOrCreate()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "JAVA_HOME": NEWER_JDK},
                          cwd=str(tmp_path))
    assert done.returncode != 0
    failure = RuntimeError(done.stderr.strip().splitlines()[-1])  # the gateway's exception
    assert describe(failure, extra_text=done.stdout + done.stderr) == (
        "Java too new for Spark 4.0: Subject.getSubject is not supported (Java 23 and newer); "
        "set JAVA_HOME to Java 17 or 21")

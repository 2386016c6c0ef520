"""Spark's Python workers are forked from simlake's daemon (``simlake.spark.daemon``): pyspark
from the installed package rather than Spark's zip, decoders imported and compiled scans
loaded before the fork."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile

import pyspark

from simlake.spark.daemon import prefer_installed_pyspark

SPARK_ZIP = os.path.join(os.path.dirname(pyspark.__file__), "python", "lib", "pyspark.zip")
SITE = os.path.dirname(os.path.dirname(pyspark.__file__))


def _fake_zip(tmp_path, version: str) -> str:
    path = tmp_path / "lib" / "pyspark.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pyspark/__init__.py", "")
        zf.writestr("pyspark/version.py", f'__version__: str = "{version}"\n')
    return str(path)


def test_spark_zip_goes_behind_the_same_installed_version():
    assert os.path.isfile(SPARK_ZIP)
    path = [SPARK_ZIP, "/nowhere.zip", SITE]
    assert prefer_installed_pyspark(path) == ["/nowhere.zip", SITE, SPARK_ZIP]


def test_spark_zip_stays_first_otherwise(tmp_path):
    other = _fake_zip(tmp_path, "3.5.0")
    assert prefer_installed_pyspark([other, SITE]) == [other, SITE]  # another version
    assert prefer_installed_pyspark([SPARK_ZIP, str(tmp_path)]) == [SPARK_ZIP, str(tmp_path)]
    assert prefer_installed_pyspark([SITE]) == [SITE]  # no zip at all


def test_preloaded_compiled_functions_are_the_ones_the_decoders_call():
    """After ``load_compiled``, decoding each file kind compiles nothing more: every compiled
    function has exactly the one signature loaded beforehand (checked in a fresh process)."""
    script = textwrap.dedent("""
        from simlake.decode import _scan, activation, voltage
        _scan.load_compiled()
        syn = (b"# synapse type\\tsynapse ID\\tsoma distance\\tsection ID\\tsection pt ID\\t"
               b"dendrite label\\tactivation times\\n"
               b"L5tt_A\\t0\\t12.5\\t3\\t1\\tbasal\\t1.5,2.25,\\nL5tt_A\\t1\\t1.0\\t3\\t2\\tapical\\t\\n")
        cells = b"# presynaptic cell type\\tcell ID\\tactivation times\\nL5tt\\t0\\t1.5,\\n"
        for decode, data in ((activation.decode_synapse_files, syn),
                             (activation.decode_presynaptic_cell_files, cells)):
            out = decode([activation.ActivationFile("f.csv", data, "run", 0)], encoded=True)
            assert out.table.num_rows > 0 and not out.failures, out.failures
        traces = b"t\\tVm run 00\\n0.0\\t-60.5\\n0.025\\t-60.25\\n"
        assert voltage.decode_voltage_csv("v.csv", traces, "run", None).num_rows == 1
        for name in ("_scan_files", "_dictionary_codes", "_trace_matrix"):
            print(name, len(getattr(_scan, name).signatures))
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["_scan_files", "1", "_dictionary_codes", "1", "_trace_matrix", "1"]


def test_spark_workers_are_forked_from_the_preloading_daemon(spark):
    """The session's profile names the daemon; a worker's parent runs it, its pyspark is the
    installed package, and the decoders are there before any task imported them."""
    def worker_state(_):  # defined here: pickled by value, not by this module's name
        import os
        import sys

        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            parent = fh.read().split(b"\0")
        return [(b"simlake.spark.daemon" in parent, sys.modules["pyspark"].__file__,
                 "simlake.decode.activation" in sys.modules)]

    assert spark.conf.get("spark.python.daemon.module") == "simlake.spark.daemon"
    states = spark.sparkContext.parallelize(range(2), 2).mapPartitions(worker_state).collect()
    assert states and all(from_daemon for from_daemon, _, _ in states)
    assert all(not path.startswith(SPARK_ZIP) and path.startswith(SITE)
               for _, path, _ in states)
    assert all(loaded for _, _, loaded in states)


def test_preload_keeps_stdout_clean_and_survives_a_failure():
    """Spark reads the daemon's port from its stdout: what the preload prints (Python or C
    level) goes to stderr, and a failing preload is reported there while the daemon goes on."""
    script = textwrap.dedent("""
        import os
        from simlake.spark import daemon

        def noisy():
            print("python noise")
            os.write(1, b"c noise\\n")
            raise ImportError("no such module on this node")

        daemon.preload = noisy
        daemon.preload_quietly()
        print("port line")
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout == "port line\n"
    assert "python noise" in out.stderr and "c noise" in out.stderr
    assert "preload failed, workers import on their own" in out.stderr
    assert "no such module on this node" in out.stderr

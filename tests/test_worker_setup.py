"""Spark Python workers keep the directories of the archives on their path across tasks
(``simlake.spark.worker_setup``); checked in a fresh interpreter, as a worker would run it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile


def _run(tmp_path, prepare: bool) -> str:
    archive = tmp_path / "lib.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("first_mod.py", "VALUE = 1\n")
    script = textwrap.dedent(f"""
        import importlib, sys, zipfile
        sys.path.insert(0, {str(archive)!r})
        import first_mod
        if {prepare!r}:
            from simlake.spark.worker_setup import prepare_worker
            prepare_worker()
            prepare_worker()  # idempotent
        with zipfile.ZipFile({str(archive)!r}, "a") as zf:
            zf.writestr("second_mod.py", "VALUE = 2\\n")
        importlib.invalidate_caches()  # what PySpark does at the start of every task
        try:
            import second_mod
            print("re-read")
        except ImportError:
            print("kept")
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_archive_directory_is_kept_across_tasks(tmp_path):
    assert _run(tmp_path, prepare=True) == "kept"


def test_without_it_python_rereads_the_archive(tmp_path):
    """The behaviour the setup avoids (Python 3.10+), so the test above can fail."""
    assert _run(tmp_path, prepare=False) == "re-read"

"""Spark's Python worker daemon, started ready to decode (``spark.python.daemon.module``).

Spark starts one daemon per executor on its first Python task and forks every Python worker
from it. The stock daemon (``pyspark.daemon``) imports little: each forked worker then imports
pyarrow, numba and the decoders, and loads the compiled scans, in its first task. This daemon
does all of that once, before it forks: workers start with everything loaded (shared
copy-on-write), and their first task starts decoding at once.

Spark also puts its ``pyspark.zip`` first on the workers' path. A zip holds no bytecode, so
every process compiles the pyspark modules it imports from source (~0.5 s for the daemon
alone on the 2-core machine). Where the same pyspark version is installed as a package (pip
installs it with its bytecode), the zip is moved behind it.

Only imports and numba's loading happen before the fork: no Arrow computation (its thread
pools must not exist yet in the parent) and no Spark state.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import os
import re
import sys
import zipfile

_VERSION = re.compile(r"""__version__\s*(?::\s*str\s*)?=\s*["']([^"']+)["']""")


def prefer_installed_pyspark(path: list[str]) -> list[str]:
    """``path`` with Spark's ``pyspark.zip`` entries moved to the end when the rest of the path
    has a pyspark package of the same version (else ``path`` unchanged)."""
    zips = [p for p in path if os.path.basename(p) == "pyspark.zip" and os.path.isfile(p)]
    if not zips:
        return path
    rest = [p for p in path if p not in zips]
    spec = importlib.machinery.PathFinder.find_spec("pyspark", rest)
    if spec is None or not spec.submodule_search_locations:
        return path
    try:
        with zipfile.ZipFile(zips[0]) as archive:
            zipped = archive.read("pyspark/version.py").decode()
        with open(os.path.join(spec.submodule_search_locations[0], "version.py")) as fh:
            installed = fh.read()
    except (OSError, KeyError, zipfile.BadZipFile):
        return path
    zipped_version, installed_version = _VERSION.search(zipped), _VERSION.search(installed)
    if (zipped_version is None or installed_version is None
            or zipped_version.group(1) != installed_version.group(1)):
        return path
    return rest + zips


def preload() -> None:
    """Import what a decoding worker runs and load the compiled scans (not pandas: the
    decoding and param-file jobs do not use it)."""
    import pyspark.worker  # noqa: F401
    from pyspark.sql.pandas import serializers  # noqa: F401  (imports neither pandas nor Arrow)

    from simlake import paramfiles, paramstore  # noqa: F401
    from simlake.decode import _scan, activation, spikes, voltage  # noqa: F401
    from simlake.spark import executor_tasks  # noqa: F401

    _scan.load_compiled()


def preload_quietly() -> None:
    """:func:`preload`, with anything it prints sent to stderr (Spark reads the daemon's port
    from its stdout: one stray line, e.g. numba's cache debugging, would break every Python
    task of the executor), and a failure reported on stderr instead of stopping the daemon
    (its workers then import what they need themselves, as under Spark's own daemon)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)  # also what C code writes to file descriptor 1
    try:
        with contextlib.redirect_stdout(sys.stderr):
            preload()
    except Exception as exc:
        print(f"simlake.spark.daemon: preload failed, workers import on their own: {exc!r}",
              file=sys.stderr, flush=True)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main() -> None:
    """Prepare, then run Spark's daemon loop (which forks the workers)."""
    sys.path[:] = prefer_installed_pyspark(sys.path)
    preload_quietly()
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()

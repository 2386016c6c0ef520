"""A class-data sharing (CDS) archive for the driver JVM of the local Spark sessions we start.

A fresh JVM spends seconds loading, parsing and verifying the classes of Spark, Scala, Delta and
their dependencies, on every run. Java 17's dynamic CDS archive keeps them, already parsed, in
one file that later JVMs map instead (measured on the 2-core machine, same run twice each: a
session up in 7.0 s instead of 11.1 s, the first query 3.9-5.0 s instead of 6.2 s).

The first session on a machine writes the archive when its JVM exits (a few seconds more, once);
sessions started while it is being written run without one. Archives are kept per Java runtime
and Spark/Delta version under the user's cache folder (``SIMLAKE_CACHE_DIR`` or
``~/.cache/simlake``). The JVM checks an archive against its own runtime and class path and
ignores one that does not match, so a stale archive costs the speed-up, never a run.
Only sessions whose JVM we launch (a profile with a master) use it; under ``spark-submit`` the
JVM is already running.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: Logging off for CDS: the JVM would otherwise print a line per class it cannot archive.
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"

#: A lock older than this belongs to a run that died while writing.
STALE_LOCK_SECONDS = 3600


def cache_dir() -> str:
    """Where archives are kept: ``$SIMLAKE_CACHE_DIR/jvm`` or ``~/.cache/simlake/jvm``."""
    root = os.environ.get("SIMLAKE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "simlake")
    return os.path.join(root, "jvm")


def archive_key(class_path_conf: dict[str, str]) -> str:
    """What the archive depends on: the Java runtime (path, size, mtime), the Spark and Delta
    versions, Spark's jars (where they are, their sizes and mtimes: the JVM ignores an archive
    made with another class path, e.g. a second checkout's venv) and the settings that add
    classes (``spark.jars*``, ``extraClassPath``)."""
    import importlib.metadata

    parts = []
    java = _java_binary()
    if java:
        stat = os.stat(java)
        parts.append(f"{java}:{stat.st_size}:{stat.st_mtime_ns}")
    jars = _spark_jars_dir()
    parts.append(jars)
    if os.path.isdir(jars):
        for name in sorted(os.listdir(jars)):
            stat = os.stat(os.path.join(jars, name))
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    for name in ("pyspark", "delta-spark"):
        try:
            parts.append(f"{name}={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name}=?")
    parts += [f"{k}={v}" for k, v in sorted(class_path_conf.items())
              if k.startswith("spark.jars") or k.endswith("extraClassPath")]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def _spark_jars_dir() -> str:
    """The folder of the jars pyspark starts its JVM with."""
    import pyspark

    return os.path.join(os.path.dirname(pyspark.__file__), "jars")


def _java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    candidate = os.path.join(home, "bin", "java") if home else shutil.which("java")
    return os.path.realpath(candidate) if candidate and os.path.exists(candidate) else None


@dataclass(frozen=True)
class DriverArchive:
    """The JVM options for one session start, and whether this run writes the archive."""

    java_options: str
    writing: str | None = None  # the temporary file the JVM writes at exit
    final: str | None = None
    lock: str | None = None

    def publish_at_exit(self, gateway_process) -> None:
        """If this run writes the archive: at interpreter exit, stop the JVM and leave a
        detached process to move the archive in place once the JVM has written it (readers
        never see a partial one; this process does not wait)."""
        if self.writing is None or gateway_process is None:
            return
        atexit.register(_finish, self, gateway_process)


def driver_archive(class_path_conf: dict[str, str], directory: str | None = None
                   ) -> DriverArchive:
    """The options to start the driver JVM with: map the archive if there is one; else write
    it at exit, unless another process is writing it (then none)."""
    directory = directory or cache_dir()
    final = os.path.join(directory, f"spark-{archive_key(class_path_conf)}.jsa")
    if any(c.isspace() for c in final):  # Java options are split at white space
        return DriverArchive("")
    if os.path.isfile(final):
        return DriverArchive(f"-XX:SharedArchiveFile={final} {QUIET}")
    try:
        os.makedirs(directory, exist_ok=True)
        lock = final + ".lock"
        if not _take_lock(lock):
            return DriverArchive("")
    except OSError as exc:  # a read-only home: no archive, no error
        log.debug("no JVM class archive: %s", exc)
        return DriverArchive("")
    for leftover in glob.glob(glob.escape(final) + ".*.tmp"):  # of writers that died
        _remove(leftover)
    writing = f"{final}.{uuid.uuid4().hex[:8]}.tmp"
    log.info("this run writes the JVM class archive %s when it exits (once per machine)", final)
    return DriverArchive(f"-XX:ArchiveClassesAtExit={writing} {QUIET}", writing, final, lock)


def _take_lock(lock: str) -> bool:
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _stale(lock):
                return False
            try:
                os.remove(lock)
            except OSError:
                return False
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        return True
    return False


def _stale(lock: str) -> bool:
    try:
        with open(lock, encoding="utf-8") as fh:
            pid = int(fh.read().strip() or 0)
        age = time.time() - os.stat(lock).st_mtime
    except (OSError, ValueError):
        return True
    if age > STALE_LOCK_SECONDS:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by someone else
        return False
    return False


def _finish(archive: DriverArchive, process) -> None:
    """At exit: stop Spark, close the JVM's stdin (it then exits, writing the archive on its
    way out, which takes a while) and leave the rest to a detached process, so that this one
    exits now: it waits for the JVM, then moves the archive in place."""
    import subprocess
    import sys

    from pyspark import SparkContext

    try:
        context = SparkContext._active_spark_context
        if context is not None:
            context.stop()
        subprocess.Popen(
            [sys.executable, "-m", "simlake.spark.class_archive", str(process.pid),
             str(archive.writing), str(archive.final), str(archive.lock)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        if process.stdin is not None:  # the gateway JVM exits when its stdin closes
            process.stdin.close()
    except Exception as exc:  # never fail an exit over a cache
        log.warning("JVM class archive not written: %s", exc)
        _remove(archive.writing, archive.lock)


def publish_when_done(pid: int, writing: str, final: str, lock: str,
                      timeout: float = 900.0) -> bool:
    """Wait for process ``pid`` (the JVM writing ``writing``) to end, then move the archive to
    ``final``; the lock and any leftover are removed. True if the archive is in place."""
    with open(lock, "w", encoding="utf-8") as fh:  # the lock is ours now
        fh.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + timeout
    try:
        while _running(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        if os.path.isfile(writing) and os.path.getsize(writing) > 0 and mappable(writing):
            os.replace(writing, final)
            return True
        return False
    finally:
        _remove(writing, lock)


def mappable(archive: str) -> bool:
    """Whether a JVM starts with ``archive`` mapped. A truncated archive (a full disk while it
    was written) makes a Java 17 JVM die with SIGBUS at start-up instead of ignoring it: such
    a file must never be published. ``-version`` maps the archive's regions before it checks
    the class path, so a complete archive passes (an unreadable one is ignored: passes too)."""
    import subprocess
    import tempfile

    java = _java_binary()
    if java is None:
        return False
    with tempfile.TemporaryDirectory() as crash_dir:  # where a crashing JVM writes hs_err
        try:
            done = subprocess.run([java, f"-XX:SharedArchiveFile={archive}", *QUIET.split(),
                                   "-version"], cwd=crash_dir, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _remove(*paths: str | None) -> None:
    for path in paths:
        if path:
            try:
                os.remove(path)
            except OSError:
                pass


if __name__ == "__main__":  # the detached publisher started by ``_finish``
    import sys

    publish_when_done(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])

"""Checks a job makes before it starts Spark: paths, the database, Java.

Each failed check raises :class:`PreflightError` with one line naming the path or program and
the reason, and the exit code the job should end with. Nothing here starts a JVM; the Java
check runs ``java -version`` (a fraction of a second).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile

from simlake.manifest import FORMAT_VERSION, manifest_path
from simlake.usage import EXIT_FAULT

#: The oldest Java that Spark 4 runs on.
MIN_JAVA = 17
#: The first Java that Spark 4.0 does not start on: from Java 23, ``Subject.getSubject`` (which
#: Spark's Hadoop login calls) throws ``UnsupportedOperationException``.
TOO_NEW_JAVA = 23

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):/")


class PreflightError(Exception):
    """A check failed: ``str()`` is the line to print; ``exit_code`` the job's exit code."""

    def __init__(self, line: str, exit_code: int = EXIT_FAULT) -> None:
        super().__init__(line)
        self.exit_code = exit_code


def local_path(value: str, what: str) -> str:
    """``value`` as a local (or shared file system) path: ``file://`` URIs are taken, other
    schemes (``s3a://``, ``hdfs://``, ...) refused rather than turned into folder names."""
    m = _SCHEME.match(value)
    if not m:
        return value
    if m.group("scheme").lower() == "file":
        return re.sub(r"^file:(//(localhost)?)?", "", value, flags=re.I) or "/"
    raise PreflightError(f"{value}: {what} must be a local or shared file system path; URI "
                         f"scheme {m.group('scheme')!r} is not supported")


def check_raw_tree(path: str) -> None:
    """The raw tree exists, is a directory and can be listed."""
    try:
        os.stat(path)
    except FileNotFoundError as exc:
        raise PreflightError(f"{path}: raw simrun tree not found (no such directory)") from exc
    except OSError as exc:  # e.g. a parent folder the user may not enter
        raise PreflightError(f"{path}: raw simrun tree cannot be read: {exc.strerror}") from exc
    if not os.path.isdir(path):
        raise PreflightError(f"{path}: raw simrun tree is not a directory")
    try:
        with os.scandir(path) as it:
            next(it, None)
    except OSError as exc:
        raise PreflightError(f"{path}: raw simrun tree cannot be read: {exc.strerror}") from exc


def check_database(path: str) -> None:
    """The database folder is a folder (or can be one) and was not written by a newer
    simlake. Reads only."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise PreflightError(f"{path}: database path exists and is not a directory")
    manifest = manifest_path(path)
    if not os.path.isfile(manifest):
        return
    import json

    try:
        with open(manifest, encoding="utf-8") as fh:
            version = json.load(fh).get("format_version", FORMAT_VERSION)
    except (OSError, ValueError) as exc:
        raise PreflightError(f"{manifest}: database manifest cannot be read: {exc}") from exc
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PreflightError(f"{path}: database written by a newer simlake (format version "
                             f"{version}; this simlake reads up to {FORMAT_VERSION}); "
                             "update simlake")


def check_writable(path: str) -> None:
    """The database folder can be created and written: a file is made and removed there."""
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".simlake-probe.", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else path
        if where and os.path.basename(where).startswith(".simlake-probe."):
            where = path
        raise PreflightError(f"{where}: database folder cannot be written: "
                             f"{exc.strerror or exc}") from exc


def java_binary() -> str | None:
    """The java that Spark's launcher runs: ``$JAVA_HOME/bin/java``, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def java_major(version_output: str) -> int | None:
    """The major version in ``java -version`` output (``"17.0.2"`` -> 17, ``"1.8.0_392"`` -> 8)."""
    m = re.search(r'version "(?:1\.)?(\d+)', version_output)
    return int(m.group(1)) if m else None


def check_java() -> None:
    """A Java Spark runs on (:data:`MIN_JAVA` or newer, older than :data:`TOO_NEW_JAVA`) is
    where Spark's launcher looks for it."""
    java = java_binary()
    where = "JAVA_HOME" if os.environ.get("JAVA_HOME") else "PATH"
    if java is None:
        raise PreflightError("java not found on PATH: install Java 17 or set JAVA_HOME")
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "no answer in 60 s"
        raise PreflightError(f"{java}: Java (from {where}) cannot be run: {reason}; set "
                             "JAVA_HOME to a Java 17 installation") from exc
    major = java_major(done.stderr + done.stdout)
    if done.returncode != 0 or major is None:
        first = " ".join((done.stderr or done.stdout).split())[:200]
        raise PreflightError(f"{java}: Java (from {where}) does not run "
                             f"(exit {done.returncode}: {first or 'no output'})")
    if major < MIN_JAVA:
        raise PreflightError(f"{java}: Java {major} (from {where}); Spark needs Java "
                             f"{MIN_JAVA} or newer")
    if major >= TOO_NEW_JAVA:
        raise PreflightError(f"{java}: Java {major} (from {where}) is too new for Spark 4.0 "
                             f"(Java {TOO_NEW_JAVA} and newer fail at its start: Subject."
                             "getSubject is not supported); set JAVA_HOME to Java 17 or 21")


def jvm_running() -> bool:
    """A JVM is already there (spark-submit started this process, or a session is up)."""
    with contextlib.suppress(ImportError):
        from pyspark import SparkContext

        if SparkContext._gateway is not None:
            return True
    return bool(os.environ.get("PYSPARK_GATEWAY_PORT"))

"""One line for a fault: the cause and the resource, found in an exception and its text.

A fault that stops a run reaches the driver in many shapes: a Python ``OSError``, a py4j error
whose text holds a Java stack trace with an executor's Python traceback inside, or PySpark's
"Java gateway process exited" with the reason only in the JVM's own output (the run's log).
:func:`describe` reads all of that and returns one line for the console; the full text goes to
the run's log. The root cause is searched first (a full disk, a read-only or forbidden path, a
missing jar, memory, a lost worker), so that a secondary error raised while cleaning up after it
(e.g. Arrow's "Operation on closed file") never takes its place. No JVM needed.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable

from simlake.spark.executor_watch import REASON_PREFIX as EXECUTOR_LOSS_REASON

#: errno values whose message, with the file named, is the whole story
_ERRNO_LINE = re.compile(r"\[Errno (?P<errno>\d+)\] (?P<msg>[^:'\n\r]+)"
                         r"(?::\s*'(?P<path>[^'\n]*)')?")


def _errno(number: int) -> Callable[[str], str | None]:
    """The error ``number`` (``[Errno N]`` in a Python traceback) with the file it names;
    its standard message, whatever wording the raising library chose."""
    def match(text: str) -> str | None:
        hits = [m for m in _ERRNO_LINE.finditer(text) if int(m.group("errno")) == number]
        if not hits:
            return None
        named = next((m for m in hits if m.group("path")), None)
        return os.strerror(number) + (f": {named.group('path')}" if named else "")
    return match


def _regex(pattern: str, line: str, flags: int = 0) -> Callable[[str], str | None]:
    compiled = re.compile(pattern, flags)

    def match(text: str) -> str | None:
        m = compiled.search(text)
        return line.format(*m.groups(), **m.groupdict()) if m else None
    return match


#: Root causes, most specific first; each returns the line or None.
_CAUSES: tuple[Callable[[str], str | None], ...] = (
    _errno(28),
    _regex(r"java\.io\.IOException: No space left on device", os.strerror(28)),
    _errno(30),
    _errno(13),
    _regex(r"java\.nio\.file\.AccessDeniedException: (\S+)", "Permission denied: {0}"),
    _regex(r"java\.nio\.file\.ReadOnlyFileSystemException", "Read-only file system"),
    _regex(r"unresolved dependency: (\S+): not found",
           "Delta's jars could not be obtained: {0} is neither in the Ivy cache nor "
           "reachable in a repository (no network?); run once with network access, or pass "
           "them with --packages/--jars"),
    _regex(r"UnsupportedClassVersionError.*?class file version (\d+)\.\d+\D.*?up to (\d+)\.",
           "Java too old for Spark: it needs class file version {0} (Java 17 or newer), this "
           "Java reads up to {1}", re.S),
    _regex(r"UnsupportedOperationException: getSubject is not supported",
           "Java too new for Spark 4.0: Subject.getSubject is not supported (Java 23 and "
           "newer); set JAVA_HOME to Java 17 or 21"),
    _regex(r"JAVA_HOME is not set|java: (?:command )?not found|No such file or directory.*bin/java",
           "Java not found: set JAVA_HOME to a Java 17 installation or put java on PATH"),
    _regex(r"java\.lang\.OutOfMemoryError: ([^\n]*)",
           "out of memory in the JVM ({0}); give Spark more memory (spark.driver.memory / "
           "spark.executor.memory in the profile) or lower --target-task-mb"),
    _regex(r"TaskOutOfMemory: (out of memory in a Python worker [^\n]*)",
           "{0}; nothing of the batch was committed: give the Python workers more memory "
           "(spark.executor.pyspark.memory, or the machine) or lower --target-task-mb, then "
           "rerun"),
    _regex(r"\b(?:Arrow)?MemoryError\b", "out of memory in a Python worker decoding raw "
           "files; lower --target-task-mb or give the machine more memory"),
    _regex(rf"Job \d+ cancelled ({re.escape(EXECUTOR_LOSS_REASON)} [^\n]*?)"
           r"(?:\s+SQLSTATE: \w+)?\s*(?:\n|$)",
           "{0}; nothing of the batch was committed, rerun the ingest once the cluster has "
           "workers"),
    _regex(r"ExecutorLostFailure \(([^\n]*?)\)|Lost executor \S+ on [^\n]*",
           "a Spark executor was lost while the run was working; nothing of the batch was "
           "committed, rerun the ingest"),
    _regex(r"Python worker exited unexpectedly \(crashed\)",
           "a Python worker of Spark died (killed, or out of memory); nothing of the batch "
           "was committed, rerun the ingest"),
    _regex(r"JAVA_GATEWAY_EXITED|Java gateway process exited",
           "Spark's JVM did not start"),
)

#: The Python traceback of an executor inside a Java message, up to the Java frames.
_PY_TRACEBACK = re.compile(r"PythonException: Traceback \(most recent call last\):\n(.*?)"
                           r"(?:\n\s+at |\Z)", re.S)

#: Lines of file system errors that name no file.
_UNNAMED = {os.strerror(n) for n in (28, 30, 13)} | {"Read-only file system"}

#: Last line of a Python traceback: ``SomeError: message``.
_PY_ERROR = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?(?P<name>[A-Z]\w*(?:Error|Exception)): "
                       r"(?P<msg>.+)$", re.M)


def exception_text(exc: BaseException) -> str:
    """Everything an exception says: its traceback and chained causes (a py4j error's text
    includes the Java stack trace and the executors' Python tracebacks)."""
    return "".join(traceback.format_exception(exc))


def describe(exc: BaseException, extra_text: str = "", where: str | None = None) -> str:
    """One line naming the cause (and the file or resource) of ``exc``.

    ``extra_text`` is searched too: the JVM's output when it could not start (the reason of a
    "Java gateway process exited" is only there). ``where`` names the resource (the database
    folder) when a file system error does not name its file."""
    text = exception_text(exc) + "\n" + extra_text
    for cause in _CAUSES:
        line = cause(text)
        if line:
            if where and line in _UNNAMED:
                line += f" (writing {where})"
            # our own sentence: never cut (its end says what to do; real paths run long)
            return _one_line(line, limit=None)
    if isinstance(exc, OSError) and exc.strerror:
        return _one_line(f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror)
    worker = _PY_TRACEBACK.search(text)
    errors = list(_PY_ERROR.finditer(worker.group(1) if worker else str(exc)))
    if errors:  # an executor's Python error inside a Java message: its first one
        return _one_line(f"{errors[0].group('name')}: {errors[0].group('msg')}")
    first = str(exc).strip().splitlines()
    return _one_line(f"{type(exc).__name__}: {first[0] if first else ''}".rstrip(": "))


def _one_line(text: str, limit: int | None = 400) -> str:
    """``text`` on one line; cut at ``limit`` characters (None: never), for messages of
    others (a Java exception's can run for pages)."""
    line = " ".join(text.split())
    return line if limit is None or len(line) <= limit else line[:limit - 3] + "..."

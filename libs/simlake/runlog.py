"""The log file of one run: every log record, the JVM's output, tracebacks.

The console shows the run's own progress, its summary and one line per fault; everything else
(Spark, py4j, Ivy and log4j chatter, Java stack traces, Python tracebacks) is written here.
The file is written in a temporary folder while the run lasts (the database may be the disk
that fills up, or unwritable) and copied into ``<db>/_simlake_logs/<run_id>.log`` at the end
when that works; :attr:`RunLog.path` is where it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

LOGS_DIR = "_simlake_logs"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def logs_path(db_root: str) -> str:
    """Folder that holds the kept run logs of the database ``db_root``."""
    return os.path.join(os.path.abspath(db_root), LOGS_DIR)


class RunLog:
    """The log file of run ``run_id``; ``verbose`` also shows every record on stderr and leaves
    the JVM's output on the console."""

    def __init__(self, run_id: str, verbose: bool = False, folder: str | None = None) -> None:
        self.run_id = run_id
        self.verbose = verbose
        folder = folder or os.path.join(tempfile.gettempdir(), f"simlake-logs-{os.getuid()}")
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, f"{run_id}.log")
        self._stream = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._handlers: list[logging.Handler] = []

    def start_logging(self) -> None:
        """Send every log record (INFO and up, warnings too) to the file (and, verbose, to
        stderr) instead of the console."""
        root = logging.getLogger()
        handler = logging.StreamHandler(self._stream)
        handler.setFormatter(logging.Formatter(_FORMAT))
        self._handlers = [handler]
        if self.verbose:
            console = logging.StreamHandler(sys.stderr)
            console.setFormatter(logging.Formatter(_FORMAT))
            self._handlers.append(console)
        for h in self._handlers:
            root.addHandler(h)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)

    def stop_logging(self) -> None:
        """Detach the handlers (a process may run more than one job, e.g. in tests)."""
        for h in self._handlers:
            logging.getLogger().removeHandler(h)
        self._handlers = []
        logging.captureWarnings(False)

    @contextlib.contextmanager
    def process_output(self) -> Iterator[None]:
        """Within: file descriptors 1 and 2 point at the log file, so that a process started
        here (Spark's JVM, and through it the Python workers) writes its output there for its
        whole life. Not verbose only; Python's own streams are restored on exit."""
        if self.verbose:
            yield
            return
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(self._stream.fileno(), 1)
            os.dup2(self._stream.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)

    def text(self, limit: int = 1 << 20) -> str:
        """The last ``limit`` characters written so far (to search for a fault's cause)."""
        self._stream.flush()
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            fh.seek(max(0, os.path.getsize(self.path) - limit))
            return fh.read()

    def keep_in(self, db_root: str) -> str:
        """Copy the log into the database's log folder, if it can be written; the path of the
        log from now on (the temporary file is removed once copied)."""
        self._stream.flush()
        target = os.path.join(logs_path(db_root), os.path.basename(self.path))
        if os.path.abspath(self.path) == target:
            return self.path
        try:
            if not os.path.isdir(db_root):
                return self.path
            os.makedirs(logs_path(db_root), exist_ok=True)
            shutil.copyfile(self.path, target)
        except OSError:
            with contextlib.suppress(OSError):
                os.remove(target)
            return self.path
        # log records from now on go to the copy (the JVM keeps its descriptors: its last
        # lines on its way out are lost with the temporary file)
        old, old_stream = self.path, self._stream
        self._stream = open(target, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        for h in self._handlers:
            if isinstance(h, logging.StreamHandler) and h.stream is old_stream:
                h.setStream(self._stream)
        old_stream.close()
        self.path = target
        with contextlib.suppress(OSError):
            os.remove(old)
        return self.path

    def discard(self) -> None:
        """Stop logging and delete the file (a run refused before it did anything)."""
        self.close()
        with contextlib.suppress(OSError):
            os.remove(self.path)

    def close(self) -> None:
        """Stop logging and close the file."""
        self.stop_logging()
        self._stream.close()

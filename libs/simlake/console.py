"""What a job prints for the person (or scheduler) running it: progress, notes, the summary,
one line per error. Log records go to the run's log file instead (``simlake.runlog``)."""

from __future__ import annotations

import sys
from typing import TextIO

QUIET, NORMAL, VERBOSE = 0, 1, 2


class Console:
    """The job's console. ``level``: :data:`QUIET` (summary and errors only), :data:`NORMAL`
    (plus progress and notes) or :data:`VERBOSE` (the same; log records are shown too, by the
    run log). On a terminal progress is one line rewritten in place; otherwise each progress
    report is a line of its own."""

    def __init__(self, level: int = NORMAL, out: TextIO | None = None,
                 err: TextIO | None = None, tty: bool | None = None) -> None:
        self.level = level
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self._open_line = 0  # length of the progress line shown in place, if any

    def progress(self, line: str) -> None:
        """Report progress (not when quiet)."""
        if self.level < NORMAL:
            return
        if self.tty:
            pad = max(0, self._open_line - len(line))
            self.out.write("\r" + line + " " * pad)
            self.out.flush()
            self._open_line = len(line)
        else:
            self.out.write(line + "\n")
            self.out.flush()

    def note(self, line: str) -> None:
        """A line worth knowing as it happens (not when quiet)."""
        if self.level >= NORMAL:
            self._end_progress()
            print(line, file=self.out, flush=True)

    def summary(self, text: str) -> None:
        """The run's summary: always printed."""
        self._end_progress()
        print(text, file=self.out, flush=True)

    def error(self, line: str) -> None:
        """An error: always printed, on stderr."""
        self._end_progress()
        print(line, file=self.err, flush=True)

    def _end_progress(self) -> None:
        if self._open_line:
            self.out.write("\n")
            self.out.flush()
            self._open_line = 0

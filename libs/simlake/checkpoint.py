"""Named points of an ingest batch where a test may hold the run (to kill or release it).

The ingest calls ``checkpoint.reached(step, batch)`` at each step: after each table's commit
(from the thread that committed it, so that commits running side by side go on while one
thread is held), after decoding (``decoded``) and right before the completion record
(``pre-metadata``). :data:`NO_CHECKPOINT` does nothing and is the default; the order and the
parallelism of commits are the same with either.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Protocol

from simlake.ingest_options import IngestOptions

log = logging.getLogger(__name__)


class Checkpoint(Protocol):
    """Told each named step of each commit batch as the run reaches it."""

    def reached(self, step: str, batch: int) -> None:
        """Called at ``step`` of commit batch ``batch`` (may block)."""


class NoCheckpoint:
    """Does nothing: production runs."""

    def reached(self, step: str, batch: int) -> None:
        return None


NO_CHECKPOINT = NoCheckpoint()


@dataclass(frozen=True)
class PauseFile:
    """At ``step`` of commit batch ``batch``: create ``path`` (holding the pid and the step)
    and wait until it is deleted. The crash tests SIGKILL the held process; the concurrency
    tests delete the file to release it."""

    step: str
    batch: int
    path: str
    poll_seconds: float = 0.05

    def reached(self, step: str, batch: int) -> None:
        if (step, batch) != (self.step, self.batch):
            return
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {step}:{batch}\n")
        os.replace(tmp, self.path)
        log.warning("test hook: paused after %s of batch %d until %s is deleted", step, batch,
                    self.path)
        while os.path.exists(self.path):
            time.sleep(self.poll_seconds)
        log.warning("test hook: released at %s of batch %d", step, batch)


def checkpoint_for(opts: IngestOptions) -> Checkpoint:
    """The checkpoint that ``opts.pause_after``/``opts.pause_file`` (the command line's test
    hook) ask for; :data:`NO_CHECKPOINT` without them."""
    point = opts.pause_point()
    if point is None:
        return NO_CHECKPOINT
    assert opts.pause_file is not None  # IngestOptions checks that both come together
    return PauseFile(point[0], point[1], opts.pause_file)

"""The ingest's own progress: files and MB decoded of the total, MB/s, trials committed, ETA.

The counts are real: each Spark task that decodes a group of raw files adds the group's file
count and bytes to an accumulator when it is done (Spark sends accumulator updates to the
driver as each task ends), and the driver adds the trials of each committed batch. A thread
on the driver reports them: on a terminal, one line rewritten twice a second; otherwise one
line per commit batch (and one a minute while a long batch decodes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.accumulators import AccumulatorParam

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from simlake.console import Console
    from simlake.discovery import SimRunFolder
    from simlake.ingest_options import IngestOptions


class PairParam(AccumulatorParam):
    """Accumulates ``(files, bytes)`` pairs."""

    def zero(self, value: tuple[int, int]) -> tuple[int, int]:
        return (0, 0)

    def addInPlace(self, value1: tuple[int, int], value2: tuple[int, int]) -> tuple[int, int]:
        return (value1[0] + value2[0], value1[1] + value2[1])


def count_groups(fn: Callable[[Iterator[int]], Iterable[Any]], sizes: Sequence[tuple[int, int]],
                 counter) -> Callable[[Iterator[int]], Iterator[Any]]:
    """``fn`` (an executor function over group ids) that, once it has done its groups, adds
    their ``sizes`` (files, bytes) to the accumulator ``counter``."""

    def run(ids: Iterator[int]) -> Iterator[Any]:
        done = list(ids)
        yield from fn(iter(done))
        counter.add((sum(sizes[i][0] for i in done), sum(sizes[i][1] for i in done)))

    return run


def planned_files(folders: Iterable[SimRunFolder], opts: IngestOptions) -> tuple[int, int]:
    """Files and bytes the ingest of ``folders`` decodes, from the listing."""
    wanted = set(opts.tables())
    files = bytes_ = 0
    for f in folders:
        names = []
        if opts.core and f.voltage_file:
            names.append(f.voltage_file)
        if "synapse_activation" in wanted:
            names += [*f.synapse_files.values(), *f.cell_files.values()]
        if "dendritic_recordings" in wanted:
            names += list(f.dendritic_files.values())
        files += len(names)
        bytes_ += sum(f.files[n].size for n in names if n in f.files)
    return files, bytes_


class IngestProgress:
    """Progress of one ingest run, reported on ``console``."""

    #: seconds between reports on a terminal, and otherwise while a batch decodes
    TTY_EVERY, LINE_EVERY = 0.5, 60.0

    def __init__(self, console: Console) -> None:
        self.console = console
        self.total_files = self.total_bytes = 0
        self.batches = 0
        self.trials = 0
        self._counter: Any = None  # a Spark accumulator once counting starts
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def plan(self, folders: Sequence[SimRunFolder], opts: IngestOptions, batches: int) -> None:
        """The totals of the run: what ``folders`` hold, in ``batches`` commit batches."""
        self.total_files, self.total_bytes = planned_files(folders, opts)
        self.batches = batches

    def counted(self, spark: SparkSession, fn, groups) -> Callable:
        """``fn`` over ``groups`` (``WriteGroup``), counting each group's files and bytes."""
        if self._counter is None:
            self._counter = spark.sparkContext.accumulator((0, 0), PairParam())
            self._started = time.monotonic()
            self._start_reporting()
        sizes = [(len(g.tasks), sum(t.size for t in g.tasks)) for g in groups]
        return count_groups(fn, sizes, self._counter)

    def batch_done(self, number: int, trials_committed: int) -> None:
        """Batch ``number`` is committed; ``trials_committed`` in the run so far."""
        self.trials = trials_committed
        line = self.line()
        if not self.console.tty:
            line = f"batch {number}/{self.batches}: {line}"
        self.console.progress(line)

    def decoded(self) -> tuple[int, int]:
        """Files and bytes decoded so far (capped at the totals: a few files of a batch can be
        decoded twice, see ``simlake.spark.decode``)."""
        files, bytes_ = self._counter.value if self._counter is not None else (0, 0)
        return min(files, self.total_files), min(bytes_, self.total_bytes)

    def line(self) -> str:
        """The progress line."""
        files, bytes_ = self.decoded()
        elapsed = max(time.monotonic() - self._started, 1e-3)
        rate = bytes_ / elapsed
        share = bytes_ / self.total_bytes if self.total_bytes else 1.0
        left = (self.total_bytes - bytes_) / rate if rate else 0.0
        eta = f", ETA {_clock(left)}" if rate and share < 1 else ""
        return (f"decoded {files}/{self.total_files} files, {bytes_ / 1e6:.1f}/"
                f"{self.total_bytes / 1e6:.1f} MB ({100 * share:.0f}%), {rate / 1e6:.1f} MB/s; "
                f"{self.trials} trials committed{eta}")

    def stop(self) -> None:
        """Stop reporting."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _start_reporting(self) -> None:
        every = self.TTY_EVERY if self.console.tty else self.LINE_EVERY
        self._thread = threading.Thread(target=self._report, args=(every,), daemon=True,
                                        name="simlake-progress")
        self._thread.start()

    def _report(self, every: float) -> None:
        last = None
        while not self._stop.wait(every):
            line = self.line()
            if line != last:
                self.console.progress(line)
                last = line


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"

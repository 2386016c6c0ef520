"""The key ranges of a Delta table's data files, and the dask partitions planned from them.

A Delta table is opened through its log (:mod:`simlake.lake.snapshot`, no JVM). Every live
data file is a :class:`DataFile`; its ``sim_trial_index`` range comes, cheapest first, from

1. the add action's min/max statistics, when they are provably untruncated (see
   :func:`exact_string_stat`),
2. the Parquet footer's column-chunk statistics, when those are provably untruncated,
3. a projected scan of the key column of that file.

Files are immutable in Delta, so everything learnt about a file is cached by its path in a
:class:`FileInfoCache` owned by one ``DataBase`` object.

:func:`plan_partitions` turns files and ranges into dask partitions: one per file when the
ranges are disjoint, and overlapping files merged into one partition otherwise (that is the
"sorted repartition" fallback: it needs no shuffle and keeps divisions known).

Reading files back is :mod:`simlake.adapter.readfiles`; the names of both modules and of the
snapshot are importable from here too (the adapter's one import for the table layer).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from simlake.adapter.readfiles import IO_THREADS as IO_THREADS  # re-exported
from simlake.adapter.readfiles import RowFilter as RowFilter  # re-exported
from simlake.adapter.readfiles import is_sorted as is_sorted  # re-exported
from simlake.adapter.readfiles import open_input as open_input  # re-exported
from simlake.adapter.readfiles import plain as plain  # re-exported
from simlake.adapter.readfiles import read_file as read_file  # re-exported
from simlake.adapter.readfiles import read_files as read_files  # re-exported
from simlake.adapter.readfiles import schema_subset as schema_subset  # re-exported
from simlake.lake.datafile import DataFile as DataFile  # re-exported
from simlake.lake.snapshot import PREFIX_LENGTH_PROPERTY as PREFIX_LENGTH_PROPERTY  # re-exported
from simlake.lake.snapshot import TableSnapshot as TableSnapshot  # re-exported
from simlake.lake.snapshot import UnsupportedTableError as UnsupportedTableError  # re-exported
from simlake.lake.snapshot import file_path as file_path  # re-exported
from simlake.lake.snapshot import is_delta_table as is_delta_table  # re-exported
from simlake.lake.snapshot import open_table as open_table  # re-exported

log = logging.getLogger(__name__)

KEY = "sim_trial_index"

#: A complete ``sim_trial_index``: ``<sim_run>/<trialnr, at least 6 digits>``.
STI_PATTERN = re.compile(r".+/\d{6,}")

#: Parquet writers may truncate footer string statistics; parquet-rs (delta-rs) does at 64
#: bytes by default. Footer values shorter than this are trusted as exact.
FOOTER_TRUST_BYTES = 64

#: ``created_by`` prefix of Parquet C++ (pyarrow; the ingest's writer): it never truncates
#: statistics (it leaves out values too long to keep), so its string bounds are exact.
EXACT_WRITERS = ("parquet-cpp",)


class LayoutWarning(UserWarning):
    """A Delta table's data files overlap in ``sim_trial_index``; reading still works but
    merges files into larger partitions. ``simlake.adapter.optimize`` fixes the layout."""


@dataclass(frozen=True)
class Partition:
    """The files of one dask partition and the key range ``[lo, hi]`` they are known to hold.

    ``row_groups``, when given, names for every file the row groups to read (the rest of the
    file is known to hold no row wanted); ``None`` reads whole files.
    """

    files: tuple[DataFile, ...]
    lo: Any
    hi: Any
    row_groups: tuple[tuple[int, ...] | None, ...] | None = None

    def __dask_tokenize__(self) -> tuple:
        # files are immutable and their paths unique: no need to hash their statistics
        return (self.lo, self.hi, tuple(f.path for f in self.files), self.row_groups)


class FileInfoCache:
    """Facts about immutable data files, cached by ``(path, what)`` for one DataBase object."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, Hashable], Any] = {}
        self._lock = threading.Lock()

    def known(self, path: str, what: Hashable) -> bool:
        """Whether ``(path, what)`` is cached already (a ``get`` would do no I/O)."""
        with self._lock:
            return (path, what) in self._data

    def get(self, path: str, what: Hashable, compute: Callable[[], Any]) -> Any:
        key = (path, what)
        with self._lock:
            if key in self._data:
                return self._data[key]
        value = compute()
        with self._lock:
            self._data[key] = value
        return value


# ---------------------------------------------------------------------------------------------
# key ranges


def exact_string_stat(value: Any, max_chars: int, max_bytes: int | None = None,
                      pattern: re.Pattern[str] | None = None) -> bool:
    """Whether a string statistic is certainly the exact value, not a truncated bound.

    delta-spark truncates to ``delta.dataSkippingStringPrefixLength`` characters (appending a
    tie-breaker to maxima), parquet-rs to 64 bytes (incrementing the last character of
    maxima): a value shorter than the limit was never truncated, and a complete key matches
    ``pattern``.
    """
    if not isinstance(value, str) or len(value) >= max_chars:
        return False
    if max_bytes is not None and len(value.encode("utf-8")) >= max_bytes:
        return False
    return pattern is None or pattern.fullmatch(value) is not None


def exact_writer(md: pq.FileMetaData) -> bool:
    """Whether the file's writer records untruncated statistics (:data:`EXACT_WRITERS`)."""
    return (md.created_by or "").startswith(EXACT_WRITERS)


def exact_footer_stat(value: Any, exact: bool, pattern: re.Pattern[str] | None) -> bool:
    """Whether a footer min/max is the exact value: any value of an exact writer; of other
    writers (which may truncate strings), numbers and short complete keys."""
    if not isinstance(value, str) or exact:
        return True
    return exact_string_stat(value, 1 << 30, FOOTER_TRUST_BYTES, pattern)


def _footer_range(f: DataFile, column: str, pattern: re.Pattern[str] | None) -> tuple | None:
    with open_input(f.path) as src:
        md = pq.ParquetFile(src).metadata
    if md.num_rows == 0:
        return ("empty",)
    # the key column is a top-level primitive: its leaf path is its name
    leaf = next(
        (j for j in range(md.num_columns) if md.row_group(0).column(j).path_in_schema == column),
        None,
    )
    if leaf is None:
        return None
    exact = exact_writer(md)
    lo = hi = None
    for g in range(md.num_row_groups):
        st = md.row_group(g).column(leaf).statistics
        if st is None or not st.has_min_max:
            return None
        if st.null_count:
            return None
        for v in (st.min, st.max):
            if not exact_footer_stat(v, exact, pattern):
                return None
        lo = st.min if lo is None else min(lo, st.min)
        hi = st.max if hi is None else max(hi, st.max)
    return (lo, hi)


def _scan_range(f: DataFile, column: str) -> tuple:
    with open_input(f.path) as src:
        col = plain(pq.ParquetFile(src).read(columns=[column]).column(column))
    if len(col) == 0:
        return ("empty",)
    mm = pc.min_max(col)
    return (mm["min"].as_py(), mm["max"].as_py())


def _log_range(snapshot: TableSnapshot, f: DataFile, column: str,
               pattern: re.Pattern[str] | None) -> tuple[Any, Any] | None:
    """The range from the add action's statistics when they are provably exact."""
    lo, hi, nulls = f.stat(column)
    limit = snapshot.string_prefix_length
    if (lo is not None and hi is not None and not nulls
            and (not isinstance(lo, str) or exact_string_stat(lo, limit, None, pattern))
            and (not isinstance(hi, str) or exact_string_stat(hi, limit, None, pattern))):
        return lo, hi
    return None


def file_range(snapshot: TableSnapshot, f: DataFile, column: str, cache: FileInfoCache,
               pattern: re.Pattern[str] | None = STI_PATTERN) -> tuple[Any, Any] | None:
    """The exact ``(min, max)`` of ``column`` in ``f``; ``None`` for a file without rows."""
    if f.num_records == 0:
        return None
    logged = _log_range(snapshot, f, column, pattern)
    if logged is not None:
        return logged

    def compute() -> tuple:
        got = _footer_range(f, column, pattern)
        if got is None:
            log.debug("%s: no exact footer statistics for %s, scanning", f.path, column)
            got = _scan_range(f, column)
        return got

    got = cache.get(f.path, ("range", column), compute)
    return None if got == ("empty",) else got


def file_ranges(snapshot: TableSnapshot, files: Sequence[DataFile], column: str,
                cache: FileInfoCache, pattern: re.Pattern[str] | None = STI_PATTERN
                ) -> list[tuple[Any, Any] | None]:
    """:func:`file_range` for many files, footers and scans read in parallel (threads only
    for files whose range is neither in the log nor cached: starting them costs more than the
    rest of a frame's graph)."""
    return parallel_map(lambda f: file_range(snapshot, f, column, cache, pattern), files,
                        lambda f: not _needs_io(snapshot, f, column, cache, pattern))


def _needs_io(snapshot: TableSnapshot, f: DataFile, column: str, cache: FileInfoCache,
              pattern: re.Pattern[str] | None) -> bool:
    return (f.num_records != 0 and _log_range(snapshot, f, column, pattern) is None
            and not cache.known(f.path, ("range", column)))


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any],
                 cheap: Callable[[Any], bool] = lambda _: False) -> list[Any]:
    """``[fn(x) for x in items]``, the items that are not ``cheap`` on :data:`IO_THREADS`
    threads (none are started for fewer than two)."""
    out: list[Any] = [None] * len(items)
    slow = []
    for i, x in enumerate(items):
        if cheap(x):
            out[i] = fn(x)
        else:
            slow.append(i)
    if len(slow) == 1:
        out[slow[0]] = fn(items[slow[0]])
    elif slow:
        with ThreadPoolExecutor(min(IO_THREADS, len(slow))) as pool:
            for i, value in zip(slow, pool.map(lambda i: fn(items[i]), slow), strict=True):
                out[i] = value
    return out


@dataclass
class PartitionPlan:
    """Partitions in key order with their dask divisions; ``merged`` counts files that had
    to share a partition because their ranges overlap."""

    partitions: list[Partition]
    divisions: tuple[Any, ...] | None
    merged: int = 0
    groups: list[int] = field(default_factory=list)


def plan_partitions(files: Sequence[DataFile], ranges: Sequence[tuple[Any, Any] | None]
                    ) -> PartitionPlan:
    """Sort files by their range, merge overlapping ones, and derive the divisions.

    Two files overlap when the first one's maximum is ``>=`` the next one's minimum: a key
    must never be split over two partitions (``loc`` looks in one partition only).
    """
    items = sorted(
        ((r, f) for f, r in zip(files, ranges, strict=True) if r is not None),
        key=lambda item: (item[0][0], item[0][1], item[1].path),
    )
    partitions: list[Partition] = []
    merged = 0
    for (lo, hi), f in items:
        if partitions and lo <= partitions[-1].hi:
            last = partitions[-1]
            partitions[-1] = Partition(last.files + (f,), last.lo, max(last.hi, hi))
            merged += 1
        else:
            partitions.append(Partition((f,), lo, hi))
    if not partitions:
        return PartitionPlan([], None)
    divisions = tuple(p.lo for p in partitions) + (partitions[-1].hi,)
    return PartitionPlan(partitions, divisions, merged)

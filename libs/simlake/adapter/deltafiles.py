"""The data files of a Delta table, their key ranges, and reading them back as Arrow.

A Delta table is opened through its log with ``deltalake`` (no JVM). Every live data file
becomes a :class:`DataFile`; its ``sim_trial_index`` range comes, cheapest first, from

1. the add action's min/max statistics, when they are provably untruncated (see
   :func:`exact_string_stat`),
2. the Parquet footer's column-chunk statistics, when those are provably untruncated,
3. a projected scan of the key column of that file.

Files are immutable in Delta, so everything learnt about a file is cached by its path in a
:class:`FileInfoCache` owned by one ``DataBase`` object.

:func:`plan_partitions` turns files and ranges into dask partitions: one per file when the
ranges are disjoint, and overlapping files merged into one partition otherwise (that is the
"sorted repartition" fallback: it needs no shuffle and keeps divisions known).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable

log = logging.getLogger(__name__)

#: The filesystem every data file is opened through. A handle, not configuration: tests swap
#: it for a counting wrapper to prove how many files a computation opens.
_FS: pafs.FileSystem = pafs.LocalFileSystem()

KEY = "sim_trial_index"

#: A complete ``sim_trial_index``: ``<sim_run>/<trialnr, at least 6 digits>``.
STI_PATTERN = re.compile(r".+/\d{6,}")

#: delta-spark's default for ``delta.dataSkippingStringPrefixLength``.
SPARK_DEFAULT_PREFIX_LENGTH = 32
#: Table property a writer sets to record that its string statistics are not truncated below
#: this many characters (delta-spark 4.0 takes the length from the session setting
#: ``spark.databricks.io.skipping.stringPrefixLength`` and records nothing in the table).
PREFIX_LENGTH_PROPERTY = "simlake.statsStringPrefixLength"
#: Parquet writers may truncate footer string statistics; parquet-rs (delta-rs) does at 64
#: bytes by default. Footer values shorter than this are trusted as exact.
FOOTER_TRUST_BYTES = 64

#: ``created_by`` prefix of Parquet C++ (pyarrow; the ingest's writer): it never truncates
#: statistics (it leaves out values too long to keep), so its string bounds are exact.
EXACT_WRITERS = ("parquet-cpp",)

#: Threads for per-file work (footers, scans, small tables): I/O bound.
IO_THREADS = min(16, (os.cpu_count() or 1) * 4)


class LayoutWarning(UserWarning):
    """A Delta table's data files overlap in ``sim_trial_index``; reading still works but
    merges files into larger partitions. ``simlake.adapter.optimize`` fixes the layout."""


class UnsupportedTableError(RuntimeError):
    """A Delta table uses a feature this reader does not implement (e.g. deletion vectors)."""


@dataclass(frozen=True)
class DataFile:
    """One live data file of a Delta table.

    ``stats`` maps a column name to ``(min, max, null_count)`` from the add action (values may
    be ``None`` when the writer recorded none).
    """

    path: str
    size: int
    num_records: int | None
    partition: tuple[tuple[str, str | None], ...] = ()
    stats: tuple[tuple[str, Any, Any, Any], ...] = ()

    @property
    def partition_values(self) -> dict[str, str | None]:
        return dict(self.partition)

    def stat(self, column: str) -> tuple[Any, Any, Any]:
        for name, lo, hi, nulls in self.stats:
            if name == column:
                return lo, hi, nulls
        return None, None, None


@dataclass(frozen=True, eq=False)
class TableSnapshot:
    """One version of a Delta table: its schema, properties and live data files."""

    path: str
    version: int
    schema: pa.Schema
    partition_columns: tuple[str, ...]
    configuration: Mapping[str, str | None]
    files: tuple[DataFile, ...]

    @property
    def string_prefix_length(self) -> int:
        """How long string statistics may be before the writer truncated them.

        ``delta.dataSkippingStringPrefixLength`` (newer delta-spark) or the writer's own record
        :data:`PREFIX_LENGTH_PROPERTY`; delta-spark's default (32) when neither is set.
        """
        for name in ("delta.dataSkippingStringPrefixLength", PREFIX_LENGTH_PROPERTY):
            raw = self.configuration.get(name)
            try:
                if raw is not None:
                    return int(raw)
            except ValueError:
                continue
        return SPARK_DEFAULT_PREFIX_LENGTH

    def select(self, **partition_values: str | None) -> tuple[DataFile, ...]:
        """The files whose Hive partition values equal the given ones."""
        return tuple(
            f
            for f in self.files
            if all(f.partition_values.get(k) == v for k, v in partition_values.items())
        )


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


def open_input(path: str) -> Any:
    """Open a data file for reading (through :data:`_FS`)."""
    return _FS.open_input_file(path)


def is_delta_table(path: str) -> bool:
    """Whether ``path`` holds a Delta table (a ``_delta_log`` folder)."""
    return os.path.isdir(os.path.join(path, "_delta_log"))


def file_path(table_root: str, log_path: str) -> str:
    """Local path of a data file from the (URI-encoded) path of its add action."""
    parsed = urllib.parse.urlparse(log_path)
    if parsed.scheme in ("", "file"):
        rel = urllib.parse.unquote(parsed.path)
        return rel if os.path.isabs(rel) else os.path.join(table_root, rel)
    raise UnsupportedTableError(f"{table_root}: data file on a remote store ({log_path!r})")


def open_table(path: str, stats_columns: Sequence[str] = (KEY,),
               version: int | None = None) -> TableSnapshot:
    """Read the Delta log at ``path`` (at ``version``, default the latest) and list its live
    data files with their statistics."""
    root = os.path.abspath(path)
    dt = DeltaTable(root, version=version)
    config = dict(dt.metadata().configuration)
    mode = config.get("delta.columnMapping.mode")
    if mode not in (None, "none"):
        raise UnsupportedTableError(f"{root}: column mapping mode {mode!r} is not supported")
    protocol = dt.protocol()
    if "deletionVectors" in (protocol.reader_features or []):
        for _batch in dt.deletion_vectors():
            raise UnsupportedTableError(
                f"{root}: files with deletion vectors; rewrite the table without them "
                "(e.g. REORG TABLE ... APPLY (PURGE)) or disable delta.enableDeletionVectors"
            )
    schema = pa.schema(dt.schema().to_arrow())
    partition_columns = tuple(dt.metadata().partition_columns)
    actions = pa.table(dt.get_add_actions(flatten=True))
    names = set(actions.column_names)
    cols = {name: actions.column(name).to_pylist() for name in names}
    files = []
    for i, log_path in enumerate(cols["path"]):
        part = tuple(
            (p, cols[f"partition.{p}"][i] if f"partition.{p}" in names else None)
            for p in partition_columns
        )
        stats = tuple(
            (
                c,
                cols[f"min.{c}"][i] if f"min.{c}" in names else None,
                cols[f"max.{c}"][i] if f"max.{c}" in names else None,
                cols[f"null_count.{c}"][i] if f"null_count.{c}" in names else None,
            )
            for c in stats_columns
        )
        n = cols["num_records"][i] if "num_records" in names else None
        files.append(
            DataFile(file_path(root, log_path), int(cols["size_bytes"][i]), n, part, stats)
        )
    files.sort(key=lambda f: f.path)
    return TableSnapshot(root, dt.version(), schema, partition_columns, config, tuple(files))


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


def plain(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """``col`` with view/large string types cast to plain ``string`` (some writers, e.g.
    delta-rs, store ``string_view``; not every compute kernel takes it)."""
    typ = col.type
    if pa.types.is_string_view(typ) or pa.types.is_large_string(typ):
        return col.cast(pa.string())
    if pa.types.is_list_view(typ) or pa.types.is_large_list(typ) \
            or pa.types.is_large_list_view(typ):
        return col.cast(pa.list_(typ.value_type))
    return col


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


# ---------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True, eq=False)
class RowFilter:
    """Keep rows whose ``column`` equals ``value`` (a partition column is matched on the
    file's partition value, without reading), and rows whose ``sim_run`` is in ``sim_runs``
    (the completion rule), when given."""

    equals: tuple[tuple[str, Any], ...] = ()
    sim_runs: pa.Array | None = None


def _partition_scalar(raw: str | None, typ: pa.DataType) -> Any:
    if raw is None or raw == "":
        return None
    if pa.types.is_floating(typ):
        return float(raw)
    if pa.types.is_integer(typ):
        return int(raw)
    if pa.types.is_boolean(typ):
        return raw.lower() == "true"
    return raw


def read_file(f: DataFile, columns: Sequence[str], schema: pa.Schema,
              row_filter: RowFilter | None = None,
              row_groups: Sequence[int] | None = None) -> pa.Table | None:
    """Read ``columns`` of one data file (only ``row_groups``, when given), cast to ``schema``;
    partition columns are filled from the file's partition values, missing columns (older
    files) with nulls.

    Returns ``None`` when a partition-value filter excludes the whole file or no row group is
    wanted (nothing is opened).
    """
    if row_groups is not None and len(row_groups) == 0:
        return None
    part = f.partition_values
    filt = row_filter or RowFilter()
    for col, value in filt.equals:
        if col in part and _partition_scalar(part[col], schema.field(col).type) != value:
            return None
    wanted = list(dict.fromkeys(list(columns)
                                + [c for c, _ in filt.equals if c not in part]
                                + (["sim_run"] if filt.sim_runs is not None else [])))
    with open_input(f.path) as src:
        pf = pq.ParquetFile(src, pre_buffer=True)
        present = [c for c in wanted if c in pf.schema_arrow.names]
        if row_groups is None:
            table = pf.read(columns=present, use_threads=True)
        else:
            table = pf.read_row_groups(list(row_groups), columns=present, use_threads=True)
    n = table.num_rows
    arrays = []
    for c in wanted:
        typ = schema.field(c).type
        if c in part:
            arrays.append(pa.array([_partition_scalar(part[c], typ)] * n, typ))
        elif c in table.column_names:
            col = table.column(c)
            arrays.append(col if col.type == typ else col.cast(typ))
        else:
            arrays.append(pa.nulls(n, typ))
    table = pa.table(arrays, names=wanted)
    mask = None
    for col, value in filt.equals:
        if col not in part:
            m = pc.equal(table.column(col), pa.scalar(value, schema.field(col).type))
            mask = m if mask is None else pc.and_(mask, m)
    if filt.sim_runs is not None:
        m = pc.is_in(table.column("sim_run"), value_set=filt.sim_runs)
        mask = m if mask is None else pc.and_(mask, m)
    if mask is not None:
        mask = pc.fill_null(mask, False)
        if not pc.all(mask).as_py():  # filtering copies every column: only when needed
            table = table.filter(mask)
    return table.select(list(columns))


def read_files(files: Iterable[DataFile], columns: Sequence[str], schema: pa.Schema,
               row_filter: RowFilter | None = None, sort_key: str | None = KEY,
               parallel: bool = False,
               row_groups: Sequence[Sequence[int] | None] | None = None) -> pa.Table:
    """Read and concatenate files (in the given order), then stable-sort by ``sort_key``
    unless already sorted. ``row_groups`` optionally names the row groups to read of each
    file (``None`` for a whole file)."""
    files = list(files)
    groups = [None] * len(files) if row_groups is None else list(row_groups)
    cols = list(dict.fromkeys(list(columns) + ([sort_key] if sort_key else [])))
    if parallel and len(files) > 1:
        with ThreadPoolExecutor(IO_THREADS) as pool:
            parts = list(pool.map(lambda fg: read_file(fg[0], cols, schema, row_filter, fg[1]),
                                  zip(files, groups, strict=True)))
    else:
        parts = [read_file(f, cols, schema, row_filter, g)
                 for f, g in zip(files, groups, strict=True)]
    tables = [t for t in parts if t is not None]
    if not tables:
        table = schema_subset(schema, cols).empty_table()
    elif len(tables) == 1:
        table = tables[0]
    else:
        table = pa.concat_tables(tables)
    if sort_key and table.num_rows > 1 and not is_sorted(table.column(sort_key)):
        table = table.take(pc.sort_indices(table, [(sort_key, "ascending")]))  # stable
    return table


def is_sorted(col: pa.ChunkedArray | pa.Array) -> bool:
    """Whether a column is non-decreasing."""
    if len(col) < 2:
        return True
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    ok = pc.less_equal(col.slice(0, len(col) - 1), col.slice(1))
    return bool(pc.all(ok).as_py())


def schema_subset(schema: pa.Schema, columns: Sequence[str]) -> pa.Schema:
    """The fields ``columns`` of ``schema``, in that order."""
    return pa.schema([schema.field(c) for c in columns])

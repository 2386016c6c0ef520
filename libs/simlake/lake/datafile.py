"""One data file of a Delta table: what its ``add`` action says about it.

The same value serves both sides of a table: a writer returns a :class:`DataFile` for every
Parquet file it wrote (not yet committed; an executor sends it to the driver as a flat record),
and a snapshot of the log lists its live files as :class:`DataFile` values. Statistics are kept
parsed (``(column, min, max, null_count)``); the Delta statistics JSON is rendered from them
when an add action is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: ``(column, min, max, null_count)``; min/max are ``None`` where no bound is recorded.
ColumnStat = tuple[str, Any, Any, Any]


@dataclass(frozen=True)
class DataFile:
    """A Parquet data file of one Delta table (frozen, hashable).

    ``path`` is relative to the table root for a file a writer just wrote (as its add action
    names it), and the resolved local path for a live file of a snapshot; joining either to
    the table root gives the file. ``partition`` holds the Hive partition values as the log
    stores them (strings), ``column_stats`` the file's statistics. ``table``,
    ``modification_time`` and ``sim_runs`` (the sim-run folders it holds) are what a writer
    knows; a snapshot leaves them empty.
    """

    path: str
    size: int
    num_records: int | None
    partition: tuple[tuple[str, str | None], ...] = ()
    column_stats: tuple[ColumnStat, ...] = ()
    table: str = ""
    modification_time: int = 0  # ms since the epoch
    sim_runs: tuple[str, ...] = ()

    @property
    def partition_values(self) -> dict[str, str | None]:
        """The Hive partition values, by column."""
        return dict(self.partition)

    def stat(self, column: str) -> tuple[Any, Any, Any]:
        """``(min, max, null_count)`` of ``column``; ``None`` for what is not recorded."""
        for name, lo, hi, nulls in self.column_stats:
            if name == column:
                return lo, hi, nulls
        return None, None, None

    @property
    def stats(self) -> str:
        """The Delta statistics JSON of the file."""
        return stats_json(self.num_records, self.column_stats)

    def add_action(self, data_change: bool = True) -> dict:
        """The Delta ``add`` action of this file (as JSON-ready dict)."""
        return {
            "add": {
                "path": self.path,
                "partitionValues": self.partition_values,
                "size": self.size,
                "modificationTime": self.modification_time,
                "dataChange": data_change,
                "stats": self.stats,
            }
        }

    def to_record(self) -> dict:
        """A flat row (see :data:`RECORD_SCHEMA`) to send back from an executor."""
        return {
            "table": self.table,
            "path": self.path,
            "size": self.size,
            "modification_time": self.modification_time,
            "num_records": self.num_records,
            "stats": self.stats,
            "partition_values": json.dumps(self.partition_values),  # in column order
            "sim_runs": json.dumps(list(self.sim_runs)),
        }

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> DataFile:
        """The inverse of :meth:`to_record`."""
        num_records, column_stats = parse_stats(row["stats"])
        return cls(
            path=row["path"],
            size=int(row["size"]),
            num_records=int(row["num_records"]) if num_records is None else num_records,
            partition=tuple(json.loads(row["partition_values"]).items()),
            column_stats=column_stats,
            table=row["table"],
            modification_time=int(row["modification_time"]),
            sim_runs=tuple(json.loads(row["sim_runs"])),
        )


#: Arrow schema of :meth:`DataFile.to_record` rows.
RECORD_SCHEMA = pa.schema([
    pa.field("table", pa.string()),
    pa.field("path", pa.string()),
    pa.field("size", pa.int64()),
    pa.field("modification_time", pa.int64()),
    pa.field("num_records", pa.int64()),
    pa.field("stats", pa.string()),
    pa.field("partition_values", pa.string()),
    pa.field("sim_runs", pa.string()),
])


def records_batch(files: Iterable[DataFile]) -> pa.RecordBatch:
    """Rows of :data:`RECORD_SCHEMA` for ``files``."""
    return pa.RecordBatch.from_pylist([f.to_record() for f in files], schema=RECORD_SCHEMA)


# -- statistics


def file_stats(table: pa.Table, columns: Sequence[str]) -> tuple[ColumnStat, ...]:
    """Exact statistics of ``columns`` of ``table`` (columns it lacks are left out).

    Strings are recorded in full (a prefix would only be a bound; dictionary-encoded ones by
    the values used); floats with NaN or infinities, booleans and nested or temporal types get
    a null count only, which is always valid.
    """
    out = []
    for name in columns:
        if name not in table.column_names:
            continue
        column = table.column(name)
        lo = hi = None
        if column.null_count < len(column):
            if pa.types.is_dictionary(column.type):  # the values used, decoded
                column = pa.chunked_array([pc.unique(c).dictionary_decode()
                                           for c in column.chunks], column.type.value_type)
            if _bounded(column):
                bounds = pc.min_max(column)
                lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
                if isinstance(lo, float) and not (math.isfinite(lo) and math.isfinite(hi)):
                    lo = hi = None
        out.append((name, lo, hi, column.null_count))
    return tuple(out)


def _bounded(column: pa.ChunkedArray) -> bool:
    """Whether min/max of ``column`` are recorded (its type has exact JSON bounds)."""
    typ = column.type
    if pa.types.is_floating(typ):
        return not pc.any(pc.is_nan(column)).as_py()
    return (pa.types.is_integer(typ) or pa.types.is_string(typ)
            or pa.types.is_large_string(typ))


def stats_json(num_records: int | None, column_stats: Iterable[ColumnStat]) -> str:
    """Delta statistics JSON: ``numRecords``, and ``minValues``, ``maxValues`` and
    ``nullCount`` of the columns (each where recorded)."""
    mins, maxs, nulls = {}, {}, {}
    for name, lo, hi, null_count in column_stats:
        if lo is not None and hi is not None:
            mins[name], maxs[name] = lo, hi
        if null_count is not None:
            nulls[name] = null_count
    out: dict[str, Any] = {} if num_records is None else {"numRecords": num_records}
    out.update(minValues=mins, maxValues=maxs, nullCount=nulls)
    return json.dumps(out, separators=(",", ":"))


def parse_stats(text: str | None) -> tuple[int | None, tuple[ColumnStat, ...]]:
    """``(numRecords, column statistics)`` of a Delta statistics JSON (top-level columns)."""
    if not text:
        return None, ()
    raw = json.loads(text)
    mins = raw.get("minValues") or {}
    maxs = raw.get("maxValues") or {}
    nulls = raw.get("nullCount") or {}
    names = dict.fromkeys([*nulls, *mins, *maxs])
    return raw.get("numRecords"), tuple((n, mins.get(n), maxs.get(n), nulls.get(n))
                                        for n in names)

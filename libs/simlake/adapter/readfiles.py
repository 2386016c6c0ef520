"""Reading data files of a Delta table back as Arrow tables (no JVM).

:func:`read_file` reads the wanted columns (and row groups) of one file, fills partition
columns from the log's values and columns older files lack with nulls, and filters rows;
:func:`read_files` concatenates files and keeps the result sorted by key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from simlake.lake.datafile import DataFile

#: The filesystem every data file is opened through. A handle, not configuration: tests swap
#: it for a counting wrapper to prove how many files a computation opens.
_FS: pafs.FileSystem = pafs.LocalFileSystem()

KEY = "sim_trial_index"

#: Threads for per-file work (footers, scans, small tables): I/O bound.
IO_THREADS = min(16, (os.cpu_count() or 1) * 4)


def open_input(path: str) -> Any:
    """Open a data file for reading (through :data:`_FS`)."""
    return _FS.open_input_file(path)


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

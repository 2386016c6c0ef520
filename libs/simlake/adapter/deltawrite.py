"""Writing data files of a Delta table and committing them with ``deltalake`` (no JVM).

Rows of the ingest's tables (anything with ``sim_run``: compaction, link keys materialised,
new dendritic thresholds) go through the ingest's own writer, :mod:`simlake.datafiles`, so
they get the same codecs, whole-trial row groups and exact statistics as ingested files
(:func:`write_rows`). Other tables (user frames) are written here with pyarrow
(:func:`write_data_file`), with exact, untruncated statistics on the columns asked for. We
decide where a file ends (never inside one trial, never reordering rows); ``deltalake`` then
commits the files in one transaction.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, create_table_with_add_actions

from simlake import datafiles
from simlake.schemas import TableSpec

log = logging.getLogger(__name__)

DEFAULT_NUM_INDEXED_COLS = 32


def configured_stats_columns(schema: pa.Schema, configuration: Mapping[str, str | None],
                             partition_columns: Sequence[str] = ()) -> list[str]:
    """Columns that get file statistics: ``delta.dataSkippingStatsColumns`` if set, else the
    first ``delta.dataSkippingNumIndexedCols`` (32) data columns."""
    names = [n for n in schema.names if n not in partition_columns]
    explicit = configuration.get("delta.dataSkippingStatsColumns")
    if explicit:
        wanted = [c.strip().strip("`") for c in explicit.split(",")]
        return [c for c in wanted if c in names]
    raw = configuration.get("delta.dataSkippingNumIndexedCols")
    n = int(raw) if raw not in (None, "") else DEFAULT_NUM_INDEXED_COLS
    return names if n < 0 else names[:n]


def _stat_value(value: Any, typ: pa.DataType) -> Any:
    if pa.types.is_floating(typ):
        return None if value is None or not math.isfinite(value) else float(value)
    if pa.types.is_integer(typ) or pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return value
    if pa.types.is_boolean(typ):
        return None
    return None


def stats_json(table: pa.Table, columns: Sequence[str]) -> str:
    """Delta file statistics (``numRecords``, ``minValues``, ``maxValues``, ``nullCount``).

    Strings are recorded in full (a prefix would only be a bound); floats with NaN, booleans
    and nested/temporal types get a null count only, which is always valid.
    """
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for c in columns:
        if c not in table.column_names:
            continue
        col = table.column(c)
        nulls[c] = col.null_count
        typ = col.type
        if table.num_rows == col.null_count:
            continue
        if pa.types.is_floating(typ) and pc.any(pc.is_nan(col)).as_py():
            continue
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)
                or pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            continue
        mm = pc.min_max(col)
        lo, hi = _stat_value(mm["min"].as_py(), typ), _stat_value(mm["max"].as_py(), typ)
        if lo is not None and hi is not None:
            mins[c], maxs[c] = lo, hi
    return json.dumps({"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs,
                       "nullCount": nulls})


def write_data_file(table_root: str, rel_dir: str, table: pa.Table, *, seq: int = 0,
                    partition_values: Mapping[str, str | None] | None = None,
                    stats_cols: Sequence[str] = (), data_change: bool = True,
                    compression: str = "snappy") -> AddAction:
    """Write ``table`` (without partition columns) as one Parquet file under
    ``table_root/rel_dir`` and return the add action that references it."""
    name = f"part-{seq:05d}-{uuid.uuid4()}-c000.{compression}.parquet"
    rel = os.path.join(rel_dir, name) if rel_dir else name
    path = os.path.join(table_root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, compression=compression, write_statistics=True)
    return AddAction(
        rel.replace(os.sep, "/"),
        os.path.getsize(path),
        dict(partition_values or {}),
        int(time.time() * 1000),
        data_change,
        stats_json(table, stats_cols),
    )


def write_rows(table_root: str, spec: TableSpec, rows: pa.Table, *,
               partition_values: Mapping[str, str | None] | None = None,
               data_change: bool = True,
               stats_columns: Sequence[str] | None = None) -> list[AddAction]:
    """Write ``rows`` of an ingest table (key order) with the ingest's writer; the add actions
    of the files written. Partition columns the rows lack are filled from
    ``partition_values`` (as the log stores them: strings). ``stats_columns``: those an
    existing table declares, if not the contract's."""
    for name, value in (partition_values or {}).items():
        if name not in rows.column_names:
            column = pa.array([value] * rows.num_rows, pa.string())
            rows = rows.append_column(name, column.cast(spec.schema.field(name).type))
    files = datafiles.write_table_files(table_root, spec.name, spec.schema,
                                        rows.select(spec.schema.names),
                                        spec.partition_columns, stats_columns=stats_columns)
    return [AddAction(f.path, f.size, dict(f.partition_values), f.modification_time,
                      data_change, f.stats) for f in files]


def create_table(table_root: str, spec: TableSpec, adds: Sequence[AddAction]) -> None:
    """Create the Delta table of ``spec`` at ``table_root`` holding the files ``adds``, with
    the table properties the ingest gives it."""
    properties = dict(spec.properties)
    # delta-rs refuses properties it does not know at create time, but sets them afterwards
    own = {k: properties.pop(k) for k in list(properties) if not k.startswith("delta.")}
    create_table_with_add_actions(table_root, DeltaSchema.from_arrow(spec.schema), list(adds),
                                  mode="error", partition_by=list(spec.partition_columns) or None,
                                  configuration=properties)
    DeltaTable(table_root).alter.set_table_properties(own, raise_if_not_exists=False)

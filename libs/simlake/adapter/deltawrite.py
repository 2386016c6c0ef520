"""Writing Parquet data files and committing them to a Delta table with ``deltalake``.

We write the files ourselves (``pyarrow.parquet``) so that we decide where a file ends (never
inside one trial, never reordering rows) and record exact, untruncated min/max statistics;
``deltalake`` then commits them in one transaction (no JVM).
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
from deltalake.transaction import AddAction

log = logging.getLogger(__name__)

DEFAULT_NUM_INDEXED_COLS = 32


def stats_columns(schema: pa.Schema, configuration: Mapping[str, str | None],
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

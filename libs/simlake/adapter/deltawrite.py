"""Writing data files of a Delta table from the adapter (no JVM).

Rows of the ingest's tables (anything with ``sim_run``: compaction, link keys materialised,
new dendritic thresholds) go through the ingest's own writer, :mod:`simlake.datafiles`, so
they get the same codecs, whole-trial row groups and exact statistics as ingested files
(:func:`write_rows`). Other tables (user frames) are written here with pyarrow
(:func:`write_data_file`), with exact, untruncated statistics on the columns asked for. We
decide where a file ends (never inside one trial, never reordering rows);
:func:`simlake.lake.commit.commit` then commits the files in one transaction.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from simlake import datafiles
from simlake.lake.datafile import DataFile, file_stats
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


def write_data_file(table_root: str, rel_dir: str, table: pa.Table, *, seq: int = 0,
                    partition_values: Mapping[str, str | None] | None = None,
                    stats_cols: Sequence[str] = (), compression: str = "snappy") -> DataFile:
    """Write ``table`` (without partition columns) as one Parquet file under
    ``table_root/rel_dir``, with exact statistics of ``stats_cols``; the file written."""
    name = f"part-{seq:05d}-{uuid.uuid4()}-c000.{compression}.parquet"
    rel = os.path.join(rel_dir, name) if rel_dir else name
    path = os.path.join(table_root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, compression=compression, write_statistics=True)
    return DataFile(rel.replace(os.sep, "/"), os.path.getsize(path), table.num_rows,
                    tuple((partition_values or {}).items()), file_stats(table, stats_cols),
                    modification_time=int(time.time() * 1000))


def write_rows(table_root: str, spec: TableSpec, rows: pa.Table, *,
               partition_values: Mapping[str, str | None] | None = None) -> list[DataFile]:
    """Write ``rows`` of an ingest table (key order) with the ingest's writer (statistics on
    ``spec.stats_columns``); the files written. Partition columns the rows lack are filled
    from ``partition_values`` (as the log stores them: strings)."""
    for name, value in (partition_values or {}).items():
        if name not in rows.column_names:
            column = pa.array([value] * rows.num_rows, pa.string())
            rows = rows.append_column(name, column.cast(spec.schema.field(name).type))
    return datafiles.write_table_files(table_root, spec.name, spec.schema,
                                       rows.select(spec.schema.names), spec.partition_columns,
                                       stats_columns=spec.stats_columns)

"""Writing data files of a Delta table from the adapter (no JVM).

Rows of the ingest's tables (anything with ``sim_run``: compaction, link keys materialised,
new dendritic thresholds) go through the ingest's own writer, :mod:`simlake.datafiles`, so
they get the same codecs, whole-trial row groups and exact statistics as ingested files
(:func:`write_rows`). Other tables (user frames) are written by the same module
(:func:`simlake.datafiles.write_plain_file`): the ingest's codec, exact, untruncated statistics
on the columns asked for. We decide where a file ends (never inside one trial, never reordering
rows);
:func:`simlake.lake.commit.commit` then commits the files in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import pyarrow as pa

from simlake import datafiles
from simlake.lake.datafile import DataFile
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

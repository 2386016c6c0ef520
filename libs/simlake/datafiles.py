"""Parquet data files of a Delta table, written with pyarrow (no Spark, no JVM).

The ingest's executors decode raw files into Arrow tables and write them here, straight into
the table's folder; the driver then commits the files to the Delta log in one transaction per
table (``simlake.spark.delta_commit``). A file is invisible until that commit, so a killed run
leaves only unreferenced files behind, which Delta ignores.

Each file comes back as a :class:`~simlake.lake.datafile.DataFile`: what the Delta ``add``
action needs (relative path, size, modification time, partition values, statistics) plus the
sim-run folders it holds, so the driver can leave out files of folders that failed.

Layout: rows are written in the order they come (the planner orders tasks by
``sim_trial_index``), one file per task group and Hive partition value, and, when asked, one
file per sim-run folder. Within a file, row groups hold whole trials (about
:data:`ROW_GROUP_BYTES` each) with exact min/max of ``sim_trial_index`` in the footer, so that
one trial is read without the rest of its file. Partition columns are not stored in the files
(Delta keeps them in the log). Files sit flat in the table folder under unique names.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simlake import schemas
from simlake.lake.datafile import RECORD_SCHEMA as RECORD_SCHEMA  # re-exported
from simlake.lake.datafile import DataFile as DataFile  # re-exported
from simlake.lake.datafile import file_stats
from simlake.lake.datafile import records_batch as records_batch  # re-exported
from simlake.schemas import STATS_COLUMNS

KEY = "sim_trial_index"


#: Rows are buffered up to this many bytes (Arrow, uncompressed) before they are written.
BUFFER_BYTES = 32 * 1024 * 1024

#: Row groups end at trial boundaries and hold whole trials, about this many bytes of them
#: (Arrow, uncompressed; a trial larger than this gets a row group of its own). With footer
#: statistics on ``sim_trial_index`` per row group, a reader of one trial decodes one small
#: row group instead of the file.
ROW_GROUP_BYTES = 1024 * 1024

#: Parquet codecs. Trace columns (time axis, membrane potential): zstd, 40% smaller than lz4 or
#: snappy at about the same speed. Every other column (keys, activation times): lz4, as small as
#: zstd here and twice as fast to write (measured on the generated synapse and cell tables).
#: Dictionaries only for strings (trying them on float arrays costs time for nothing).
#: Not BYTE_STREAM_SPLIT for the traces, though zstd packs them 15% smaller and faster with it:
#: Spark 4.0's vectorized Parquet reader refuses that encoding ("Unsupported encoding").
TRACE_COLUMNS = ("t", "vm")
TRACE_CODEC = "zstd"
CODEC = "lz4"

#: Values the Parquet writer encodes at a time in tables without trace columns (pyarrow's
#: default: 1,024). Its per-batch work (page-size checks, level and statistics bookkeeping)
#: dominated the narrow columns of the activation tables, a million short rows per file: 64 Ki
#: values write them 15-20% faster, byte for byte the same files. Trace tables keep the
#: default: their long lists wrote ~6% slower with 64 Ki.
WRITE_BATCH_VALUES = 64 * 1024


def write_batch_size(schema: pa.Schema) -> int:
    """The Parquet writer's batch size for data files of ``schema`` (see
    :data:`WRITE_BATCH_VALUES`)."""
    return 1024 if any(name in schema.names for name in TRACE_COLUMNS) else WRITE_BATCH_VALUES


def column_codecs(schema: pa.Schema) -> dict[str, str]:
    """Codec of each leaf column of a data file of ``schema`` (list values by their leaf path:
    pyarrow leaves columns it does not name uncompressed)."""
    return {_leaf(f): TRACE_CODEC if f.name in TRACE_COLUMNS else CODEC for f in schema}


def _leaf(field: pa.Field) -> str:
    """Parquet leaf path of a top-level column (``x.list.element`` for a list)."""
    return f"{field.name}.list.element" if pa.types.is_list(field.type) else field.name


#: Columns with Parquet footer min/max statistics, where a table has them: the keys readers
#: locate rows by, and the time axis (readers check the shared axis from them). Not the other
#: columns: statistics of every string and number column were about a fifth of writing a
#: synapse file, and no reader prunes on them (rows are laid out by trial).
FOOTER_STATISTICS = STATS_COLUMNS + ("trialnr", "recording_site", "threshold", "t")


#: Footer key of the longest list of every list column per sim-run folder (JSON
#: ``{column: {sim_run: length}}``): readers size the activation frames (``K``) from footers
#: instead of scanning every list of the table.
LIST_LENGTHS_KEY = "simlake.max_list_length"


def statistics_columns(schema: pa.Schema) -> list[str]:
    """Leaf columns of a data file of ``schema`` with Parquet min/max statistics
    (:data:`FOOTER_STATISTICS`)."""
    return [_leaf(f) for f in schema if f.name in FOOTER_STATISTICS]


def conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` with the columns of ``schema``, in its order and types (a cast only where the
    types differ: casting an already conforming table costs ~0.2 ms per file for nothing).
    A dictionary-encoded string column conforms to a string field and stays encoded
    (``schemas.encoded``: decoding it only for the writer to hash it again costs time)."""
    rows = rows.select(schema.names)
    if rows.schema.equals(schema):
        return rows
    target = pa.schema([f.with_type(r.type) if _encoded_string(r.type, f.type) else f
                        for f, r in zip(schema, rows.schema, strict=True)],
                       metadata=schema.metadata)
    return rows if rows.schema.equals(target) else rows.cast(target)


def _encoded_string(actual: pa.DataType, wanted: pa.DataType) -> bool:
    return (pa.types.is_string(wanted) and pa.types.is_dictionary(actual)
            and actual == pa.dictionary(pa.int32(), wanted))


def encode_strings(table: pa.Table) -> pa.Table:
    """``table`` in ``schemas.encoded`` form: plain string columns dictionary-encoded, encoded
    ones kept (so that parts from different decoders concatenate)."""
    schema = schemas.encoded(table.schema)
    columns = [column if column.type == f.type else pc.dictionary_encode(column)
               for column, f in zip(table.columns, schema, strict=True)]
    return pa.Table.from_arrays(columns, schema=schema)


def arrow_schema_metadata(schema: pa.Schema) -> bytes:
    """The ``ARROW:schema`` footer value pyarrow would write for ``schema`` (base64 of its IPC
    serialisation): how pyarrow readers learn the file's Arrow types."""
    return base64.b64encode(schema.serialize().to_pybytes())


def partition_value(value) -> str | None:
    """A Hive partition value as Delta stores it (strings; None for null)."""
    return None if value is None else str(value)


class TableFileWriter:
    """Writes rows of one table into Parquet files in the table's folder.

    ``add`` rows in key order; a new file starts when the Hive partition value changes and,
    with ``split_folders``, when the sim-run folder changes. ``close`` returns the files written.
    """

    def __init__(self, table_root: str, table: str, schema: pa.Schema,
                 partition_columns: Sequence[str] = (), split_folders: bool = False,
                 row_group_bytes: int = ROW_GROUP_BYTES,
                 buffer_bytes: int = BUFFER_BYTES,
                 stats_columns: Sequence[str] | None = None) -> None:
        self.table_root = table_root
        self.table = table
        self.partition_columns = tuple(partition_columns)
        self.file_schema = pa.schema([f for f in schema if f.name not in self.partition_columns])
        # what the Parquet writer is given: strings dictionary-encoded (written as they come,
        # no hashing), while the footer's Arrow schema says plain strings, as before
        self.parquet_schema = schemas.encoded(self.file_schema)
        # the table contract's, unless an existing table declares others
        self.stats_columns = (schemas.stats_columns(schema) if stats_columns is None
                              else list(stats_columns))
        self.split_folders = split_folders
        self.row_group_bytes = row_group_bytes
        self.buffer_bytes = buffer_bytes
        self.files: list[DataFile] = []
        self._writer: pq.ParquetWriter | None = None
        self._name = ""
        self._key: tuple | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._rows = 0
        self._sim_runs: list[str] = []
        self._stats_parts: list[pa.Table] = []
        self._list_columns = [f.name for f in self.file_schema if pa.types.is_list(f.type)
                              and f.name not in TRACE_COLUMNS]
        self._list_max: dict[str, dict[str, int]] = {}

    def add(self, rows: pa.Table) -> None:
        """Append ``rows`` (columns of the table schema, partition columns included)."""
        if rows.num_rows == 0:
            return
        for part in self._split(rows):
            key = self._file_key(part)
            if self._key is not None and key != self._key:
                self._close_file()
            self._key = key
            self._append(part)

    def close(self) -> list[DataFile]:
        """Finish the open file; the files written, in order."""
        self._close_file()
        return self.files

    def abort(self) -> None:
        """Delete the files written so far, the open one too (they were never committed).

        Called while another error is being raised (a full disk, a failed decode): nothing is
        flushed, and an error of the writer (which may be broken by that first error, e.g.
        Arrow's "Operation on closed file") is swallowed so that it never masks the first."""
        names = [f.path for f in self.files]
        if self._writer is not None:
            names.append(self._name)
            try:
                self._writer.close()
            except Exception:  # the first error is the one that matters
                pass
        self._writer, self._key, self._buffer, self._buffered = None, None, [], 0
        self._rows, self._sim_runs, self._stats_parts = 0, [], []
        for name in names:
            try:
                os.remove(os.path.join(self.table_root, name))
            except OSError:
                pass
        self.files = []

    # -- internals

    def _split(self, rows: pa.Table) -> Iterable[pa.Table]:
        """Slices of ``rows`` that each belong to one output file (runs of equal keys)."""
        keys = list(self.partition_columns) + (["sim_run"] if self.split_folders else [])
        if not keys:
            yield rows
            return
        change = None
        for name in keys:
            col = rows.column(name)
            if col.num_chunks != 1:
                col = col.combine_chunks()
            else:
                col = col.chunk(0)
            differs = pc.not_equal(col[1:], col[:-1]) if len(col) > 1 else pa.array([], pa.bool_())
            differs = pc.fill_null(differs, True)
            change = differs if change is None else pc.or_(change, differs)
        starts = [0] + [i + 1 for i in pc.indices_nonzero(change).to_pylist()] + [rows.num_rows]
        for lo, hi in zip(starts, starts[1:], strict=False):
            yield rows.slice(lo, hi - lo)

    def _file_key(self, part: pa.Table) -> tuple:
        values = tuple(part.column(c)[0].as_py() for c in self.partition_columns)
        folder = part.column("sim_run")[0].as_py() if self.split_folders else None
        return values + (folder,)

    def _append(self, part: pa.Table) -> None:
        sim_runs = pc.unique(part.column("sim_run")).to_pylist()
        for s in sim_runs:
            if s not in self._sim_runs:
                self._sim_runs.append(s)
        self._stats_parts.append(encode_strings(part.select(self.stats_columns)))
        self._note_list_lengths(part, sim_runs)
        self._buffer.append(encode_strings(conform(part, self.file_schema)))
        self._buffered += part.nbytes
        self._rows += part.num_rows
        if self._buffered >= self.buffer_bytes:
            self._flush()

    def _note_list_lengths(self, part: pa.Table, sim_runs: list[str]) -> None:
        """Track the longest list of each list column per sim-run (see LIST_LENGTHS_KEY)."""
        for name in self._list_columns:
            lengths = pc.fill_null(pc.list_value_length(part.column(name)), 0)
            seen = self._list_max.setdefault(name, {})
            if len(sim_runs) == 1:  # the usual part: one folder's file(s), no grouping
                k = pc.max(lengths).as_py() or 0
                seen[sim_runs[0]] = max(seen.get(sim_runs[0], 0), k)
                continue
            for run, k in _max_per_run(part.column("sim_run"), lengths):
                seen[run] = max(seen.get(run, 0), k)

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            os.makedirs(self.table_root, exist_ok=True)
            self._name = f"part-{uuid.uuid4().hex}.parquet"
            strings = [f.name for f in self.file_schema if pa.types.is_string(f.type)]
            self._writer = pq.ParquetWriter(
                os.path.join(self.table_root, self._name), self.parquet_schema,
                compression=column_codecs(self.file_schema), use_dictionary=strings,
                write_statistics=statistics_columns(self.file_schema), store_schema=False,
                write_batch_size=write_batch_size(self.file_schema))
            self._writer.add_key_value_metadata(
                {"ARROW:schema": arrow_schema_metadata(self.file_schema)})
        # one dictionary per column chunk: the writer then takes the codes as they are
        table = pa.concat_tables(self._buffer).unify_dictionaries()
        for start, length in trial_row_groups(table, self.row_group_bytes):
            self._writer.write_table(table.slice(start, length), row_group_size=length)
        self._buffer, self._buffered = [], 0

    def _close_file(self) -> None:
        self._flush()
        if self._writer is None:
            return
        if self._list_max:
            self._writer.add_key_value_metadata({LIST_LENGTHS_KEY: json.dumps(self._list_max)})
        self._writer.close()
        path = os.path.join(self.table_root, self._name)
        stat = os.stat(path)
        values = tuple(zip(self.partition_columns,
                           (partition_value(v) for v in self._key[:-1]), strict=True)
                       ) if self._key else ()
        self.files.append(DataFile(
            path=self._name, size=stat.st_size, num_records=self._rows, partition=values,
            column_stats=file_stats(pa.concat_tables(self._stats_parts), self.stats_columns),
            table=self.table,
            modification_time=stat.st_mtime_ns // 1_000_000 or int(time.time() * 1000),
            sim_runs=tuple(self._sim_runs)))
        self._writer = None
        self._key = None
        self._rows = 0
        self._sim_runs = []
        self._stats_parts = []
        self._list_max = {}


def _max_per_run(runs: pa.ChunkedArray, lengths: pa.ChunkedArray) -> list[tuple[str, int]]:
    """``(sim_run, longest list)`` for each run of equal ``runs`` values (rows in key order,
    so a folder's rows are one run; a folder seen twice is reported twice). Runs are found on
    integer codes (:func:`_key_codes`): casting a part's ``sim_run`` to strings and grouping
    by them cost about a sixth of writing a cell-activation part."""
    if len(runs) == 0:
        return []
    if pa.types.is_dictionary(runs.type):
        runs = runs.unify_dictionaries()  # one dictionary: codes compare as integers
    codes = _key_codes(runs)
    starts = np.concatenate(([0], np.flatnonzero(codes[1:] != codes[:-1]) + 1))
    longest = np.maximum.reduceat(
        np.concatenate([c.to_numpy(zero_copy_only=False) for c in lengths.chunks]), starts)
    labels = runs.take(pa.array(starts)).to_pylist()
    return list(zip(labels, longest.tolist(), strict=True))


def trial_row_groups(table: pa.Table, target_bytes: int) -> list[tuple[int, int]]:
    """``(start, length)`` of the row groups ``table`` (rows in key order) is written as: cut
    only where ``sim_trial_index`` changes, each about ``target_bytes`` (by the table's mean
    row size). A table without the key is one row group."""
    n = table.num_rows
    if n == 0:
        return []
    if KEY not in table.column_names or n == 1:
        return [(0, n)]
    codes = _key_codes(table.column(KEY))
    trial_starts = np.concatenate(([0], np.flatnonzero(codes[1:] != codes[:-1]) + 1))
    row_bytes = table.nbytes / n
    # a trial opens a new row group when the bytes before it pass the next multiple of the
    # target: whole trials, groups of about the target, a big trial alone
    bucket = np.floor(trial_starts * row_bytes / max(1, target_bytes)).astype(np.int64)
    starts = trial_starts[np.concatenate(([True], bucket[1:] != bucket[:-1]))]
    ends = np.append(starts[1:], n)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]


def _key_codes(key: pa.ChunkedArray) -> np.ndarray:
    """An integer per row, equal where the keys are equal (neighbours compared only)."""
    first = key.chunk(0) if key.num_chunks else None
    if first is not None and pa.types.is_dictionary(key.type) and all(
            c.dictionary.equals(first.dictionary) for c in key.chunks[1:]):
        # one dictionary (the writer unifies them): compare codes, not strings (10x faster)
        return np.concatenate([c.indices.fill_null(-1).to_numpy() for c in key.chunks])
    plain = key.combine_chunks() if key.num_chunks != 1 or first is None else first
    if pa.types.is_dictionary(plain.type):
        plain = plain.dictionary_decode()
    changes = pc.fill_null(pc.not_equal(plain[1:], plain[:-1]), True).to_numpy(
        zero_copy_only=False)
    return np.concatenate(([0], np.cumsum(changes)))


def write_table_files(table_root: str, table: str, schema: pa.Schema, rows: pa.Table,
                      partition_columns: Sequence[str] = (), split_folders: bool = False,
                      stats_columns: Sequence[str] | None = None) -> list[DataFile]:
    """Write ``rows`` (already in key order) as data files of ``table``; the files written."""
    writer = TableFileWriter(table_root, table, schema, partition_columns, split_folders,
                             stats_columns=stats_columns)
    try:
        writer.add(rows)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def write_plain_file(table_root: str, rel_dir: str, table: pa.Table, *, seq: int = 0,
                     partition_values: dict[str, str | None] | None = None,
                     stats_columns: Sequence[str] = ()) -> DataFile:
    """One data file of ``table`` as given (a user's frame, any schema, partition columns left
    out): rows neither reordered nor split, the ingest's codec for every column (a user's
    frame has no trace columns), exact statistics of ``stats_columns``. Named
    ``part-<seq>-...``: a reader without key statistics keeps the files in ``seq`` order."""
    name = f"part-{seq:05d}-{uuid.uuid4()}-c000.{CODEC}.parquet"
    rel = f"{rel_dir}/{name}" if rel_dir else name
    path = os.path.join(table_root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, compression=CODEC, write_statistics=True,
                   write_batch_size=write_batch_size(table.schema))
    return DataFile(rel, os.path.getsize(path), table.num_rows,
                    tuple((partition_values or {}).items()), file_stats(table, stats_columns),
                    modification_time=int(time.time() * 1000))


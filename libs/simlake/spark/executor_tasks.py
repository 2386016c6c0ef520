"""Functions that run inside Spark's Python workers: read raw files, decode, write data files,
report rejections.

Each function returned here is handed to ``mapPartitions`` (over the ids of the work items,
which travel with the function) or ``mapInArrow`` (over stored rows). Raw files are read on
the executors, straight from the (shared) file system, and the decoded rows are written there
as Parquet data files of their tables (``simlake.datafiles``); the driver sees only the list of
files written, which it commits to the Delta log.
A file that cannot be read or decoded is reported through an accumulator as
``(path, sim_run, kind, reason)`` and skipped, so the good files of the same task still land.
Running out of memory is no defect of a file: it fails the task (:class:`TaskOutOfMemory`,
naming the files), and with it the run, which commits nothing of the batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from simlake import schemas
from simlake.datafiles import TableFileWriter, conform, records_batch
from simlake.errors import SimrunFormatError
from simlake.ingest_plan import FileTask
from simlake.spark.worker_setup import prepare_worker

log = logging.getLogger(__name__)

ErrorRecord = tuple[str, str, str, str]


class TaskOutOfMemory(MemoryError):
    """A Python worker ran out of memory ``doing`` (``"decoding"``, ``"writing"``) ``tasks``:
    the message names the first file and its size (:func:`simlake.faults.describe` reads it
    on the driver)."""

    def __init__(self, tasks: Sequence[FileTask], doing: str) -> None:
        first = tasks[0]
        more = f" and {len(tasks) - 1} more file(s)" if len(tasks) > 1 else ""
        super().__init__(f"out of memory in a Python worker {doing} {first.path} "
                         f"({first.size / 2**20:.1f} MB){more}")


def read_bytes(path: str) -> bytes:
    """The whole content of ``path``."""
    with open(path, "rb") as fh:
        return fh.read()


def decode_task(task: FileTask) -> pa.Table:
    """Read and decode one voltage or dendritic file into rows of its table (raises on any
    defect); activation files are decoded in batches (:func:`decode_chunks`)."""
    from simlake.decode import voltage

    path, sim_run, kind = task.path, task.sim_run, task.kind
    data = read_bytes(path)
    trialnrs = list(task.trialnrs) if task.trialnrs is not None else None
    if kind == "voltage":
        if task.fmt == "npz":
            return voltage.decode_voltage_npz(path, data, sim_run)
        return voltage.decode_voltage_csv(path, data, sim_run, trialnrs)
    if kind == "dendritic":
        return voltage.decode_dendritic_csv(path, data, sim_run, trialnrs, task.label)
    raise ValueError(f"unknown file kind {kind!r}")


#: Activation files (small, one per trial) are decoded together, up to about this many raw
#: bytes at a time: one compiled pass and one round of Arrow calls per batch instead of per
#: file (per-file overhead was about a third of their decoding).
ACTIVATION_BATCH_BYTES = 16 * 1024 * 1024

Failure = tuple[FileTask, Exception]
Chunk = tuple[list[FileTask], pa.Table | None, list[Failure]]


def decode_chunks(tasks: Sequence[FileTask]) -> Iterator[Chunk]:
    """Decode ``tasks`` in order: activation files in batches (:data:`ACTIVATION_BATCH_BYTES`),
    other files one by one. Yields the files of each chunk, their rows (None if none decoded;
    the others' rows in task order) and the files rejected (their rows left out)."""
    chunk: list[FileTask] = []
    size = 0
    for task in tasks:
        if task.kind in ("synapses", "cells"):
            if chunk and (task.kind != chunk[0].kind or size + task.size > ACTIVATION_BATCH_BYTES):
                yield _decode_activation(chunk)
                chunk, size = [], 0
            chunk.append(task)
            size += task.size
            continue
        if chunk:
            yield _decode_activation(chunk)
            chunk, size = [], 0
        try:
            decoded = decode_task(task)
        except MemoryError as exc:  # the worker's fault, not the file's: fails the task
            raise TaskOutOfMemory([task], "decoding") from exc
        except Exception as exc:  # any defect of one file must not stop the others
            yield [task], None, [(task, exc)]
            continue
        yield [task], decoded, []
    if chunk:
        yield _decode_activation(chunk)


def _decode_activation(tasks: list[FileTask]) -> Chunk:
    try:
        return _decode_activation_files(tasks)
    except MemoryError as exc:  # the worker's fault, not the files': fails the task
        raise TaskOutOfMemory(tasks, "decoding") from exc


def _decode_activation_files(tasks: list[FileTask]) -> Chunk:
    from simlake.decode import activation

    files: list[activation.ActivationFile] = []
    read: list[FileTask] = []
    failures: list[tuple[FileTask, Exception]] = []
    for task in tasks:
        try:
            data = read_bytes(task.path)
        except OSError as exc:
            failures.append((task, exc))
            continue
        files.append(activation.ActivationFile(task.path, data, task.sim_run, task.trialnr))
        read.append(task)
    decode = (activation.decode_synapse_files if tasks[0].kind == "synapses"
              else activation.decode_presynaptic_cell_files)
    out = decode(files, encoded=True)  # strings as the data file writer takes them
    failures += [(read[i], exc) for i, exc in out.failures]
    position = {id(t): i for i, t in enumerate(tasks)}
    failures.sort(key=lambda f: position[id(f[0])])
    return tasks, (out.table if len(failures) < len(tasks) else None), failures


def describe_failure(exc: BaseException) -> str:
    """One-line reason for a rejected file (the path is reported separately)."""
    if isinstance(exc, SimrunFormatError):
        return exc.reason
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return " ".join(f"{type(exc).__name__}: {exc}".split())


@dataclass(frozen=True)
class TableOutput:
    """Where and how an executor writes the data files of one table."""

    table: str
    root: str
    schema: pa.Schema
    partition_columns: tuple[str, ...] = ()
    split_folders: bool = False

    def writer(self) -> TableFileWriter:
        """A fresh writer of this table's files."""
        return TableFileWriter(self.root, self.table, self.schema, self.partition_columns,
                               self.split_folders)


@dataclass(frozen=True)
class SpikeOutput:
    """Spike times derived from a decoded table in the same pass, at ``threshold``."""

    output: TableOutput
    threshold: float


@dataclass(frozen=True)
class WriteGroup:
    """One Spark task: decode ``tasks`` (files of one table, in key order) into ``output``."""

    output: TableOutput
    tasks: tuple[FileTask, ...]
    spikes: SpikeOutput | None = None


def write_groups(groups: list[WriteGroup], errors) -> Callable[[Iterator[int]], Iterator[dict]]:
    """A ``mapPartitions`` function over group ids (an RDD of ints, one per partition): decodes
    the files of each group and writes them as data files of its table (and derived spike
    times). Yields one :meth:`~simlake.datafiles.DataFile.to_record` row per file written
    (``trials`` None) and, for voltage traces, one row per group with the trials found
    (``path`` None, ``trials``: JSON ``{sim_run: [trialnr, ...]}``). A file that fails to
    decode is reported through ``errors`` and skipped."""

    def run(group_ids: Iterator[int]) -> Iterator[dict]:
        prepare_worker()
        for group_id in group_ids:
            yield from _write_group(groups[group_id], errors)

    return run


def spike_rows(table: str, traces: pa.Table, threshold: float) -> pa.Table:
    """Rows of spike table ``table`` (``spike_times`` from voltage traces,
    ``dendritic_spike_times`` from dendritic recordings) at ``threshold``, in its schema."""
    from simlake.decode import spikes

    if table == "spike_times":
        out = spikes.spike_times_table(traces, threshold)
    else:
        out = spikes.dendritic_spike_times_table(traces, threshold)
    return conform(out, schemas.TABLES[table])


def _write_group(group: WriteGroup, errors) -> list[dict]:
    schema = group.output.schema
    writer = group.output.writer()
    spike_writer = group.spikes.output.writer() if group.spikes else None
    trials: dict[str, list[int]] = {}
    chunk: Sequence[FileTask] = group.tasks
    try:
        for chunk, decoded, failures in decode_chunks(group.tasks):  # per file or batch
            for task, exc in failures:
                reason = describe_failure(exc)
                log.warning("rejected %s: %s", task.path, reason)
                errors.add([(task.path, task.sim_run, task.kind, reason)])
            if decoded is None:
                continue
            decoded = conform(decoded, schema)
            writer.add(decoded)
            if chunk[0].kind == "voltage":  # one file per chunk
                trials.setdefault(chunk[0].sim_run, []).extend(
                    decoded.column("trialnr").to_pylist())
            if spike_writer is not None and group.spikes is not None:
                spike_writer.add(spike_rows(group.spikes.output.table, decoded,
                                            group.spikes.threshold))
        chunk = group.tasks
        files = writer.close() + (spike_writer.close() if spike_writer else [])
    except BaseException as exc:
        writer.abort()
        if spike_writer is not None:
            spike_writer.abort()
        if isinstance(exc, MemoryError) and not isinstance(exc, TaskOutOfMemory):
            # ``chunk``: the rows being written or derived (all, when closing the files)
            raise TaskOutOfMemory(chunk, "writing the rows of") from exc
        raise
    rows = [dict(f.to_record(), trials=None) for f in files]
    if group.output.table == "voltage_traces":
        rows.append({"table": "voltage_traces", "path": None, "trials": json.dumps(trials)})
    return rows


def write_frame_batches(output: TableOutput
                        ) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function writing each partition's rows (in order) as data files of
    ``output``; yields one :data:`~simlake.datafiles.RECORD_SCHEMA` row per file."""
    schema = output.schema

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        prepare_worker()
        writer = output.writer()
        try:
            for batch in batches:
                if batch.num_rows:
                    writer.add(conform(pa.Table.from_batches([batch]), schema))
            files = writer.close()
        except BaseException:
            writer.abort()
            raise
        yield records_batch(files)

    return run


def spike_batches(
    table: str, threshold: float
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function turning voltage rows into spike-time rows at ``threshold``."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        prepare_worker()
        for batch in batches:
            if batch.num_rows == 0:
                continue
            yield from spike_rows(table, pa.Table.from_batches([batch]), threshold).to_batches()

    return run


def each(fn: Callable[[Any], Any]) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """A ``mapPartitions`` function applying ``fn`` to every item (e.g. the param-file passes
    of ``simlake.paramstore``)."""

    def run(items: Iterator[Any]) -> Iterator[Any]:
        prepare_worker()
        for item in items:
            yield fn(item)

    return run

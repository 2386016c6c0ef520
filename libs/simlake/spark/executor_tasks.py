"""Functions that run inside Spark's Python workers: read raw files, decode, report rejections.

Each ``*_batches`` function is handed to ``mapInArrow``/``mapInPandas``. Files are read here, on
the executors, straight from the (shared) file system; the driver never sees their contents.
A file that cannot be read or decoded is reported through an accumulator as
``(path, sim_run, kind, reason)`` and skipped, so the good files of the same task still land.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pyarrow as pa

from simlake import schemas
from simlake.errors import SimrunFormatError
from simlake.ingest_plan import FileTask

log = logging.getLogger(__name__)

ErrorRecord = tuple[str, str, str, str]


def read_bytes(path: str) -> bytes:
    """The whole content of ``path``."""
    with open(path, "rb") as fh:
        return fh.read()


def decode_task(task: FileTask) -> pa.Table:
    """Read and decode one raw file into rows of its table (raises on any defect)."""
    from simlake.decode import activation, voltage

    path, sim_run, kind = task.path, task.sim_run, task.kind
    data = read_bytes(path)
    trialnrs = list(task.trialnrs) if task.trialnrs is not None else None
    if kind == "voltage":
        if task.fmt == "npz":
            return voltage.decode_voltage_npz(path, data, sim_run)
        return voltage.decode_voltage_csv(path, data, sim_run, trialnrs)
    if kind == "dendritic":
        return voltage.decode_dendritic_csv(path, data, sim_run, trialnrs, task.label)
    if kind == "synapses":
        return activation.decode_synapses(path, data, sim_run, task.trialnr)
    if kind == "cells":
        return activation.decode_presynaptic_cells(path, data, sim_run, task.trialnr)
    raise ValueError(f"unknown file kind {kind!r}")


def describe_failure(exc: BaseException) -> str:
    """One-line reason for a rejected file (the path is reported separately)."""
    if isinstance(exc, SimrunFormatError):
        return exc.reason
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def decode_groups(
    table: str, groups: list[list[FileTask]], errors
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function over a frame of group ids (one per partition): decodes the
    files of each group into record batches of ``table``, in order."""
    schema = schemas.TABLES[table]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for group_id in batch.column(0).to_pylist():
                for task in groups[group_id]:  # one iteration per file, not per value
                    try:
                        decoded = decode_task(task).select(schema.names).cast(schema)
                    except Exception as exc:  # any defect of one file must not stop the others
                        reason = describe_failure(exc)
                        log.warning("rejected %s: %s", task.path, reason)
                        errors.add([(task.path, task.sim_run, task.kind, reason)])
                        continue
                    yield from decoded.to_batches()

    return run


def spike_batches(
    table: str, threshold: float
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function turning voltage rows into spike-time rows at ``threshold``."""
    from simlake.decode import spikes

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            rows = pa.Table.from_batches([batch])
            if table == "spike_times":
                out = spikes.spike_times_table(rows, threshold)
            else:
                out = spikes.dendritic_spike_times_table(rows, threshold)
            yield from out.select(schemas.TABLES[table].names).to_batches()

    return run


def store_param_batches(db_root: str, errors):
    """A ``mapInPandas`` function storing each folder's param files in the database folders.

    Input rows: ``sim_run``, ``neuron_path``, ``network_path``. Output rows: ``sim_run``,
    ``path_neuron``, ``path_network``, ``hash_neuron``, ``hash_network`` (None where a file was
    rejected; rejections and missing references are reported).
    """
    import pandas as pd

    from simlake import paramfiles

    def store(path: str | None, sim_run: str, kind: str, hint: str | None = None):
        if not path:
            return None
        try:
            stored = paramfiles.store_parameter_file(path, db_root, kind, morphology_hint=hint)
        except Exception as exc:  # a bad param file is reported, the folder's data still land
            errors.add([(path, sim_run, f"{kind}_param", describe_failure(exc))])
            return None
        for missing in stored.missing:
            errors.add([(path, sim_run, f"{kind}_param_reference", missing_reason(missing))])
        return stored

    def run(frames):
        for frame in frames:
            out = []
            for rec in frame.itertuples(index=False):
                neuron = store(rec.neuron_path, rec.sim_run, "neuron")
                # the .syn header names its cell by file name only: resolve it to the neuron
                # param file's morphology so the stored .syn points at the stored .hoc
                hint = neuron.sources.get("neuron.filename") if neuron else None
                network = store(rec.network_path, rec.sim_run, "network", hint)
                out.append(
                    {
                        "sim_run": rec.sim_run,
                        "path_neuron": rec.neuron_path,
                        "path_network": rec.network_path,
                        "hash_neuron": neuron.md5 if neuron else None,
                        "hash_network": network.md5 if network else None,
                    }
                )
            yield pd.DataFrame(
                out,
                columns=["sim_run", "path_neuron", "path_network", "hash_neuron", "hash_network"],
            )

    return run


def missing_reason(missing) -> str:
    """One-line text of a ``paramfiles.MissingReference`` (key path, path as written, reason)."""
    return f"reference {missing.key} -> {missing.path} not stored: {missing.reason}"

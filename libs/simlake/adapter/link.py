"""Link mode: keys served straight from the raw simrun files, without Delta tables.

The manifest's ``link_keys`` maps a key to its options (a dict, usually empty)::

    "link_keys": {"metadata": {}, "voltage_traces": {}, "synapse_activation": {},
                  "dendritic_spike_times": {"thresholds": [-30.0]}}

Supported keys: ``metadata`` (and with it ``sim_trial_index``), ``voltage_traces``,
``synapse_activation``, ``cell_activation``, ``spike_times``, ``dendritic_recordings``,
``dendritic_spike_times``. Every key may carry ``"sim_runs": [...]`` to restrict it to those
folders; otherwise every sim-run folder that :func:`simlake.discovery.discover` finds under the
manifest's ``simresult_path`` (with a voltage file) is used.

``db[key]`` builds the same frame as from the Delta table: discovery lists the folders, the
decoders of :mod:`simlake.decode` turn each folder's files into the Delta schema's Arrow rows,
and the shapes of :mod:`simlake.adapter.frames` reshape them (one dask partition per sim-run
folder, divisions from the folders' trial numbers). The frame's columns must be known before
any partition runs (the time axis; ``K``, the longest activation list of the whole key), so
the first ``db[key]`` of a ``DataBase`` object decodes the key's files once to learn them
(cached per file path, size and mtime); the frames themselves decode on compute.

:func:`simlake.adapter.linkwrite.materialize` (used by ``optimize(src, select=[...])``) writes
a link key as a Delta table with the same schema and layout rules and removes it from
``link_keys``.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa

from simlake import schemas
from simlake.adapter import deltafiles as df_
from simlake.adapter.frames import (
    ActivationShape,
    VoltageShape,
    max_list_length,
    metadata_frame,
    spike_frame,
)
from simlake.adapter.tables import ACTIVATION, SOMA_THRESHOLD, spike_key
from simlake.decode import (
    decode_dendritic_csv,
    decode_presynaptic_cells,
    decode_synapses,
    decode_voltage_csv,
    decode_voltage_npz,
    dendritic_spike_times_table,
    spike_times_table,
)
from simlake.discovery import SimRunFolder, discover
from simlake.manifest import read_manifest

log = logging.getLogger(__name__)

LINKABLE = ("metadata", "voltage_traces", "synapse_activation", "cell_activation",
            "spike_times", "dendritic_recordings", "dendritic_spike_times")
DENDRITIC_THRESHOLD = -30.0
_THREADS = min(16, (os.cpu_count() or 1) * 4)


# ---------------------------------------------------------------------------------------------
# folders and trials


@dataclass(frozen=True)
class LinkSource:
    """What link mode needs of a database: its folder (the manifest there says which keys are
    links and where the raw tree is), a cache of facts about raw files, and the trial list of
    the ingested ``metadata`` table for when that table, not a link, holds the trials."""

    root: str
    cache: df_.FileInfoCache
    table_trials: Callable[[], pd.Index]

    def manifest(self) -> dict[str, Any]:
        """The database manifest (read anew: another process may have changed it)."""
        return read_manifest(self.root)

    def links(self) -> dict[str, Any]:
        """The link keys with their options."""
        return dict(self.manifest().get("link_keys") or {})


def key_options(src: LinkSource, key: str) -> dict[str, Any]:
    """The manifest's options of link key ``key`` (``{}`` when it has none)."""
    links = src.links()
    opts = links.get(key)
    return dict(opts) if isinstance(opts, dict) else {}


def folders(src: LinkSource, key: str) -> list[SimRunFolder]:
    """The sim-run folders a link key covers, in ``sim_trial_index`` order."""
    manifest = src.manifest()
    root = manifest.get("simresult_path")
    if not root:
        raise KeyError(f"{src.root}: link keys need 'simresult_path' in the manifest")
    wanted = key_options(src, key).get("sim_runs")
    found = [f for f in discover(root).folders if f.voltage_file is not None]
    if wanted is not None:
        keep = set(wanted)
        found = [f for f in found if f.sim_run in keep]
    return found


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _npz_trials(path: str) -> int:
    with zipfile.ZipFile(path) as zf, zf.open("arr_0.npy") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(fh)
    return int(shape[1]) - 1


def _csv_trials(path: str) -> int:
    with open(path, "rb") as fh:
        header = fh.readline()
    return len(header.rstrip(b"\r\n").split(b"\t")) - 1


def folder_trials(folder: SimRunFolder) -> list[int]:
    """Trial numbers of a folder, as the voltage decoders number them."""
    path = folder.path_of(folder.voltage_file or "")
    if folder.voltage_format == "npz":
        return list(range(_npz_trials(path)))
    if folder.trialnrs is not None:
        return list(folder.trialnrs)
    return list(range(_csv_trials(path)))


def _stat_key(folder: SimRunFolder, name: str) -> tuple:
    st = folder.files.get(name)
    return (name, st.size, st.mtime_ns) if st is not None else (name,)


# ---------------------------------------------------------------------------------------------
# decoding one folder (module-level: runs inside dask tasks)


def decode_folder(folder: SimRunFolder, kind: str, label: str | None = None) -> pa.Table:
    """The Delta rows of one folder for ``kind`` (voltage, synapses, cells, dendritic)."""
    if kind == "voltage":
        path = folder.path_of(folder.voltage_file or "")
        data = _read_bytes(path)
        if folder.voltage_format == "npz":
            return decode_voltage_npz(path, data, folder.sim_run)
        return decode_voltage_csv(path, data, folder.sim_run, folder.trialnrs)
    if kind == "dendritic":
        if label is None:
            raise ValueError("a dendritic recording needs its recording-site label")
        path = folder.path_of(folder.dendritic_files[label])
        return decode_dendritic_csv(path, _read_bytes(path), folder.sim_run, folder.trialnrs,
                                    label)
    files, decoder, schema = {
        "synapses": (folder.synapse_files, decode_synapses, schemas.SYNAPSE_ACTIVATION),
        "cells": (folder.cell_files, decode_presynaptic_cells, schemas.CELL_ACTIVATION),
    }[kind]
    tables = []
    for nr in sorted(files):
        path = folder.path_of(files[nr])
        tables.append(decoder(path, _read_bytes(path), folder.sim_run, nr))
    return pa.concat_tables(tables) if tables else schema.empty_table()


@dataclass(frozen=True)
class LinkTask:
    """One dask partition in link mode: a folder and the key range of its trials."""

    folder: SimRunFolder
    lo: str
    hi: str


@dataclass(frozen=True, eq=False)
class LinkSpec:
    kind: str
    label: str | None
    shape: Any


def read_link_partition(task: LinkTask, columns: Sequence | None = None, *,
                        spec: LinkSpec) -> pd.DataFrame:
    """Decode one folder and reshape it to the ISF frame (module-level, projectable)."""
    table = decode_folder(task.folder, spec.kind, spec.label)
    return spec.shape.to_pandas(table, columns)


# ---------------------------------------------------------------------------------------------
# facts needed before the graph (cached per file)


def _cached(src: LinkSource, folder: SimRunFolder, name: str, what: str, compute: Any) -> Any:
    return src.cache.get(folder.path_of(name), (what,) + _stat_key(folder, name), compute)


def _axis_of(src: LinkSource, folder: SimRunFolder, kind: str, label: str | None) -> np.ndarray:
    name = folder.voltage_file if kind == "voltage" else folder.dendritic_files[label or ""]

    def compute() -> np.ndarray:
        table = decode_folder(folder, kind, label)
        if table.num_rows == 0:
            return np.empty(0)
        return table.column("t")[0].values.to_numpy(zero_copy_only=False).astype(np.float64)

    return _cached(src, folder, name or "", f"axis-{label}", compute)


def _k_of(src: LinkSource, folder: SimRunFolder, kind: str, nr: int) -> int:
    files = folder.synapse_files if kind == "synapses" else folder.cell_files
    name = files[nr]
    decoder = decode_synapses if kind == "synapses" else decode_presynaptic_cells
    column = "activation_times" if kind == "synapses" else "spike_times"

    def compute() -> int:
        path = folder.path_of(name)
        return max_list_length(decoder(path, _read_bytes(path), folder.sim_run, nr)
                               .column(column))

    return _cached(src, folder, name, "k", compute)


def parallel_map(fn: Any, items: Sequence) -> list:
    """``[fn(x) for x in items]`` on the I/O threads (in order)."""
    if len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(_THREADS) as pool:
        return list(pool.map(fn, items))


def _union_axis(axes: list[np.ndarray]) -> np.ndarray:
    axes = [a for a in axes if len(a)]
    if not axes:
        return np.empty(0)
    first = axes[0]
    if all(np.array_equal(a, first) for a in axes[1:]):
        return first
    return np.unique(np.concatenate(axes))


# ---------------------------------------------------------------------------------------------
# frames


def _tasks(fs: Sequence[SimRunFolder]) -> tuple[list[LinkTask], tuple | None]:
    tasks = []
    for f in fs:
        trials = folder_trials(f)
        if trials:
            tasks.append(LinkTask(f, schemas.sim_trial_index(f.sim_run, min(trials)),
                                  schemas.sim_trial_index(f.sim_run, max(trials))))
    # folders come in sim_trial_index order; a folder's keys all start with "<sim_run>/"
    ranges = [(t.lo, t.hi) for t in tasks]
    ordered = all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    if not tasks:
        return [], None
    return tasks, (tuple(t.lo for t in tasks) + (tasks[-1].hi,) if ordered else None)


def _dask(tasks: list[LinkTask], divisions: tuple | None, spec: LinkSpec, label: str
          ) -> dd.DataFrame:
    meta = spec.shape.to_pandas(_empty(spec.kind).select(spec.shape.delta_columns()))
    with dask.config.set({"dataframe.convert-string": False}):
        if not tasks:
            return dd.from_pandas(meta, npartitions=1, sort=False)
        return dd.from_map(read_link_partition, tasks, divisions=divisions, meta=meta,
                           label=f"link-{label}", spec=spec)


def _empty(kind: str) -> pa.Table:
    return {"voltage": schemas.VOLTAGE_TRACES, "synapses": schemas.SYNAPSE_ACTIVATION,
            "cells": schemas.CELL_ACTIVATION,
            "dendritic": schemas.DENDRITIC_RECORDINGS}[kind].empty_table()


def metadata_table(src: LinkSource) -> pa.Table:
    """``schemas.METADATA`` rows of the linked folders (no run id / fingerprint)."""
    fs = folders(src, "metadata")
    cols: dict[str, list] = {f.name: [] for f in schemas.METADATA}
    for f, trials in zip(fs, parallel_map(folder_trials, fs), strict=True):
        for nr in trials:
            cols["sim_trial_index"].append(schemas.sim_trial_index(f.sim_run, nr))
            cols["sim_run"].append(f.sim_run)
            cols["trialnr"].append(nr)
            cols["voltage_traces_file_name"].append(f.voltage_file)
            cols["synapses_file_name"].append(f.synapse_files.get(nr))
            cols["cells_file_name"].append(f.cell_files.get(nr))
            for extra in schemas.METADATA.names[6:]:
                cols[extra].append(None)
    table = pa.table(cols, schema=schemas.METADATA)
    return table.sort_by("sim_trial_index")


def _trial_index(src: LinkSource) -> pd.Index:
    links = src.links()
    if "metadata" in links and not df_.is_delta_table(os.path.join(src.root, "metadata")):
        t = metadata_table(src)
        return pd.Index(t.column("sim_trial_index").to_pandas(), name="sim_trial_index")
    return src.table_trials()


def voltage_frame(src: LinkSource, key: str, label: str | None = None) -> dd.DataFrame:
    kind = "voltage" if label is None else "dendritic"
    fs = folders(src, key)
    if label is not None:
        fs = [f for f in fs if label in f.dendritic_files]
    tasks, divisions = _tasks(fs)
    axis = _union_axis(parallel_map(lambda t: _axis_of(src, t.folder, kind, label), tasks))
    spec = LinkSpec(kind, label, VoltageShape(axis))
    return _dask(tasks, divisions, spec, key if label is None else f"{key}-{label}")


def activation_frame(src: LinkSource, key: str) -> dd.DataFrame:
    scalars, list_column = ACTIVATION[key]
    kind = "synapses" if key == "synapse_activation" else "cells"
    fs = folders(src, key)
    tasks, divisions = _tasks(fs)
    items = [(t.folder, nr) for t in tasks
             for nr in (t.folder.synapse_files if kind == "synapses" else t.folder.cell_files)]
    k = max(parallel_map(lambda it: _k_of(src, it[0], kind, it[1]), items), default=0)
    spec = LinkSpec(kind, None, ActivationShape(scalars, list_column, k))
    return _dask(tasks, divisions, spec, key)


def spike_table(src: LinkSource, key: str, label: str | None, threshold: float) -> pa.Table:
    """Spike rows of link key ``key`` (one site: ``label``) at ``threshold``, from the raw
    traces."""
    fs = folders(src, key)
    if label is not None:
        fs = [f for f in fs if label in f.dendritic_files]

    def one(f: SimRunFolder) -> pa.Table:
        if label is None:
            return spike_times_table(decode_folder(f, "voltage"), threshold)
        return dendritic_spike_times_table(decode_folder(f, "dendritic", label), threshold)

    tables = parallel_map(one, fs)
    schema = schemas.SPIKE_TIMES if label is None else schemas.DENDRITIC_SPIKE_TIMES
    return pa.concat_tables(tables) if tables else schema.empty_table()


def spikes(src: LinkSource, key: str, label: str | None, threshold: float) -> pd.DataFrame:
    frame = spike_frame(spike_table(src, key, label, threshold).sort_by("sim_trial_index"))
    return frame.reindex(_trial_index(src))


def link_value(src: LinkSource, key: str, links: dict) -> Any:
    """``db[key]`` for a link key (called by ``DataBase.__getitem__``; the dendritic keys are
    sub-databases there, whose values come from :func:`site_value`)."""
    if key in ("metadata", "sim_trial_index"):
        table = metadata_table(src)
        if key == "metadata":
            return metadata_frame(table)
        return pd.Index(table.column("sim_trial_index").to_pandas(), name="sim_trial_index")
    if key == "voltage_traces":
        return voltage_frame(src, key)
    if key in ACTIVATION:
        return activation_frame(src, key)
    if key == "spike_times":
        return spikes(src, key, None, SOMA_THRESHOLD)
    raise KeyError(f"{key!r} cannot be a link key; linkable keys: {LINKABLE}")


def site_index(src: LinkSource, key: str) -> dict[str, Any]:
    """Sub-database keys of a linked dendritic key -> what ``site_value`` needs."""
    labels = sorted({label for f in folders(src, key) for label in f.dendritic_files})
    if key == "dendritic_recordings":
        return {label: label for label in labels}
    thresholds = key_options(src, key).get("thresholds", [DENDRITIC_THRESHOLD])
    return {spike_key(label, thr): (label, float(thr)) for label in labels for thr in thresholds}


def site_value(src: LinkSource, key: str, which: Any) -> Any:
    if key == "dendritic_recordings":
        return voltage_frame(src, key, which)
    label, threshold = which
    return spikes(src, key, label, threshold)


__all__ = ["LINKABLE", "link_value", "site_index", "site_value", "folders",
           "decode_folder", "read_link_partition", "metadata_table"]

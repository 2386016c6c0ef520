"""The ISF-faithful baseline: the work of ISF's ``load_simrun_general.init`` with its defaults.

Our own code, doing what ISF's init does, stage by stage and in ISF's order, with the same
algorithms and on a pool of ``workers`` processes (ISF runs each stage on a dask client):

1. core: the list of ``*vm_all_traces.csv`` files (a walk that skips ``_running`` folders);
   every voltage file parsed with ``loadtxt`` once to compute ``sim_trial_index`` (ISF asks
   the lazy frame for its index, which parses every file) and once more to write it; one
   extra parse of the first file for the frame's meta; the metadata frame built row by row
   with two globs per trial;
2. parameter files: per trial, two directory listings and the md5 of the neuron and network
   files; per distinct file, the network file parsed twice and the neuron file three times
   (quotes, trailing commas and tuples rewritten by regular expressions, then ``json``), the
   ``.hoc``/landmark files copied, ``.syn``/``.con`` files rewritten and stored by md5, the
   parameter files stored with their references rewritten (``json`` with indent 4);
3. synapse and presynaptic-cell activation: a pre-pass over every file for the largest number
   of delimiters, then each file rewritten line by line in Python (tabs to commas, padded with
   commas to that number) and parsed by ``pandas.read_csv``, one frame a trial, string columns
   and the index made categorical;
4. dendritic traces: each recording site's files parsed with ``loadtxt`` and written, then read
   back for spike times at -30 mV;
5. spike times: the somatic traces read back, threshold crossings at 0 mV found by a Python
   loop over every time point of every trial (ISF's ``simple_spike_detection``).

Frames are written one partition a file, as ISF's msgpack dumpers do: each block of values
byte-shuffled and compressed, as blosc does (``lz4`` stands in for ``blosclz``). Strings are
``object`` columns, as in the pandas that ISF pins. ``loadtxt="python"`` parses traces as
numpy <= 1.22 did (a Python split and ``float`` per value; ISF pins numpy 1.19.2),
``loadtxt="numpy"`` with today's compiled ``numpy.loadtxt``.

Left out, because they need ISF itself: dask's scheduling (a process pool instead), the
recording-site labels from a NEURON cell (taken from the dendritic file names instead), the
``DataBase`` bookkeeping (metadata json and Loader files per key). Unlike ISF, a tree with both
``.csv`` and ``.npz`` voltage files is read whole (ISF takes only the csv folders then), so
that every baseline reads the bytes the ingest reads; a reference to a missing ``.hoc``/
``.syn``/``.con`` file is skipped (ISF stops).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import glob
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

TRACE_SUFFIX = "_vm_all_traces"
DEND_SUFFIX = "_vm_dend_traces.csv"
SYNAPSE_HEADER = "synapse_type,synapse_ID,soma_distance,section_ID,section_pt_ID,dendrite_label,"
CELL_HEADER = "presynaptic_cell_type,cell_ID,"
DENDRITIC_THRESHOLD = -30.0


@dataclass(frozen=True)
class SimRun:
    """One sim-run folder as ISF's init sees it (paths absolute, ``rel`` relative to the tree)."""

    rel: str
    voltage: str
    synapses: tuple[str, ...]
    cells: tuple[str, ...]
    dendritic: tuple[tuple[str, str], ...]  # (recording-site label, path)
    neuron_param: str | None
    network_param: str | None


def find_sim_runs(raw: str) -> list[SimRun]:
    """Sim-run folders with a voltage file below ``raw``, ``_running`` ones skipped, sorted."""
    runs = []
    for dirpath, _, names in os.walk(raw):
        voltage = [n for n in names if n.endswith((TRACE_SUFFIX + ".csv", TRACE_SUFFIX + ".npz"))]
        if not voltage or "_running" in dirpath:
            continue
        prefix = voltage[0][: -len(TRACE_SUFFIX + ".csv")]
        runs.append(SimRun(
            rel=os.path.relpath(dirpath, raw),
            voltage=os.path.join(dirpath, voltage[0]),
            synapses=tuple(os.path.join(dirpath, n) for n in sorted(names)
                           if n.endswith("_synapses.csv")),
            cells=tuple(os.path.join(dirpath, n) for n in sorted(names)
                        if n.endswith("_presynaptic_cells.csv")),
            dendritic=tuple((n[len(prefix) + 1: -len(DEND_SUFFIX)], os.path.join(dirpath, n))
                            for n in sorted(names) if n.endswith(DEND_SUFFIX)),
            neuron_param=_one_file(dirpath, names, "_neuron_model.param"),
            network_param=_one_file(dirpath, names, "_network_model.param"),
        ))
    return sorted(runs, key=lambda r: r.rel)


def _one_file(dirpath: str, names: list[str], suffix: str) -> str | None:
    found = [n for n in names if n.endswith(suffix)]
    return os.path.join(dirpath, found[0]) if len(found) == 1 else None


# ----------------------------------------------------------------------------- parsing


_COMMENT = re.compile("#")


def _float_field(text: str) -> float:
    text = text.lower()
    return float.fromhex(text) if "0x" in text else float(text)


def _split_line(line: str) -> list[str]:
    line = _COMMENT.split(line, maxsplit=1)[0].strip("\r\n")
    return line.split() if line else []


def _pack(items: list[float], packing):
    """numpy <= 1.22 nested each row by the dtype's packing: here one tuple of all values."""
    if packing is tuple:
        return tuple(items)
    packed, start = [], 0
    for length, inner in packing:
        packed.append(_pack(items[start:start + length], inner))
        start += length
    return tuple(packed)


def loadtxt_python(path: str, skiprows: int = 1) -> np.ndarray:
    """``numpy.loadtxt(path, skiprows=1, unpack=True)`` as numpy <= 1.22 computed it: each
    line split by a Python function (comment regex, strip, split), each value converted by a
    Python call, each row packed in nested tuples, rows collected in a list."""
    rows = []
    with open(path) as fh:
        for _ in range(skiprows):
            next(fh, None)
        packing = None
        for line in fh:
            fields = _split_line(line)
            if not fields:
                continue
            packing = packing or [(len(fields), tuple)]
            rows.append(_pack([_float_field(f) for f in fields], packing))
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1).T


def read_traces(path: str, rel: str, loadtxt: str) -> pd.DataFrame:
    """One voltage-trace file as ISF's frame: a row per trial, a column per time point."""
    if path.endswith(".npz"):
        data = np.load(path)["arr_0"].T
        values = data[1:, :]
        times = [0.025 * n for n in range(data.shape[1])]  # ISF assumes a fixed 0.025 ms step
        trials = range(len(values))
    else:
        with open(path) as fh:
            data = (loadtxt_python(path) if loadtxt == "python"
                    else np.loadtxt(fh, skiprows=1, unpack=True, dtype="float64"))
        if data.ndim == 1:
            data = data.reshape(len(data), 1)
        times, values = data[0], data[1:]
        folder = os.path.dirname(path)  # trial numbers from the synapse file names, as ISF
        trials = sorted(int(n.split("_")[1][3:]) for n in os.listdir(folder) if "synapses" in n)
    frame = pd.DataFrame(values, columns=times)
    frame["sim_trial_index"] = [os.path.join(rel, str(nr).zfill(6)) for nr in trials]
    return frame.set_index("sim_trial_index")


def max_delimiters(path: str) -> int:
    """The pre-pass: the largest count of ``,`` and tab delimiters of a line of ``path``
    (one more when the line does not end with a comma)."""
    with open(path) as fh:
        text = fh.read().replace("\t", ",")
    counts = [line.count(",") + (line[-1] != ",") for line in text.split("\n") if line]
    return max(counts)


def read_activation(path: str, sti: str, n_commas: int, header: str) -> pd.DataFrame:
    """An activation file normalised line by line in Python, then parsed by pandas."""
    out = io.StringIO()
    out.write(header + ",".join(str(k) for k in range(n_commas - header.count(","))) + "\n")
    with open(path) as fh:
        lines = fh.read().split("\n")[1:]
    for line in lines:
        if not line.strip():
            continue
        line = line.strip().replace("\t", ",")
        out.write(line + "," * (n_commas - line.count(",")) + "\n")
    out.seek(0)
    frame = pd.read_csv(out, index_col=False)
    frame["sim_trial_index"] = sti
    return frame.set_index("sim_trial_index")


def spike_times(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Threshold crossings from below, per row, by a Python loop over the time points.

    This loop is the point: it is how ISF finds spikes. It is no pattern for our own code."""
    def crossings(row: pd.Series) -> pd.Series:
        t, v = row.index.values.astype(float), row.values
        found = []
        for i in range(1, len(t)):
            if v[i - 1] < threshold and v[i] >= threshold:
                found.append(t[i])
        return pd.Series(dict(enumerate(found)))

    return frame.apply(crossings, axis=1)


# ----------------------------------------------------------------------------- the dumper


def dump_frame(frame: pd.DataFrame, path: str, categorize: bool = False) -> None:
    """One partition: the frame's value blocks byte-shuffled and compressed (blosc-like)."""
    if categorize:  # ISF: every object column, and an object index, become categoricals
        for column in frame.columns:
            if frame[column].dtype == object:
                frame[column] = frame[column].astype("category")
        if frame.index.dtype == object:
            frame.index = pd.CategoricalIndex(frame.index, name=frame.index.name)
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(frame, protocol=5, buffer_callback=buffers.append)
    blocks = []
    for buffer in buffers:
        raw = np.frombuffer(buffer.raw(), np.uint8)
        whole = len(raw) // 8 * 8
        shuffled = np.concatenate([raw[:whole].reshape(-1, 8).T.ravel(), raw[whole:]])
        blocks.append((len(raw), pa.compress(shuffled, codec="lz4", asbytes=True)))
    with open(path, "wb") as fh:
        pickle.dump((head, blocks), fh, protocol=5)


def load_frame(path: str) -> pd.DataFrame:
    """The inverse of :func:`dump_frame`."""
    with open(path, "rb") as fh:
        head, blocks = pickle.load(fh)
    buffers = []
    for size, data in blocks:
        raw = np.frombuffer(pa.decompress(data, size, codec="lz4", asbytes=True), np.uint8)
        whole = size // 8 * 8
        buffers.append(np.concatenate([raw[:whole].reshape(8, -1).T.ravel(), raw[whole:]]))
    return pickle.loads(head, buffers=buffers)


# ----------------------------------------------------------------------------- parameter files


def read_param_file(path: str) -> dict:
    """A ``.param`` dict literal read as ISF reads it: text rewritten towards JSON, ``json``."""
    with open(path) as fh:
        text = fh.read()
    # ISF's parser takes no comment line; real files have none, generated ones start with one
    text = re.sub(r"(?m)^\s*#.*$", "", text).replace("'", '"')
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    text = re.sub(r"\(([^()]+)\)", r"[\1]", text)
    value = json.loads(text.replace("None", "null"))
    return _walk(value)


def _walk(value):
    """A copy of the parsed value (ISF walks the whole value to resolve database paths and
    again to wrap it in its ``ParameterSet``)."""
    if isinstance(value, dict):
        return {k: _walk(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v) for v in value]
    return value


def md5_of(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.md5(fh.read()).hexdigest()


def _param_row(job: tuple[str, SimRun]) -> tuple[str, str | None, str | None, str, str]:
    """Per trial: both param files found by a directory listing each, and hashed."""
    sti, run = job
    folder = os.path.dirname(run.voltage)
    neuron = _one_file(folder, os.listdir(folder), "_neuron_model.param")
    network = _one_file(folder, os.listdir(folder), "_network_model.param")
    return (sti, neuron, network, md5_of(neuron) if neuron else "",
            md5_of(network) if network else "")


def _store_text(job: tuple[str, str, str, dict]) -> None:
    """Copy a ``.syn``/``.con`` file, its second line (the reference) rewritten."""
    source, target, kind, targets = job
    with open(source) as fh:
        lines = fh.read().split("\n")
    pattern = r"\b\S+\.hoc\b" if kind == "syn" else r"\b\S+\.syn\b"
    found = re.findall(pattern, lines[1]) if len(lines) > 1 else []
    reference = next((t for s, t in targets.items() if found and found[0] in s), "")
    if len(lines) > 1:
        lines[1] = f"# {reference}\n"
    with open(target, "w") as fh:
        fh.write("\n".join(lines))


def _store_param(job: tuple[str, str, str, dict]) -> None:
    """Store a neuron or network param file with its references rewritten."""
    source, target, kind, targets = job
    value = read_param_file(source)
    if kind == "neuron":
        value["neuron"]["filename"] = targets.get(value["neuron"]["filename"], "")
        sites = value.get("sim", {}).get("recordingSites", [])
        value["sim"]["recordingSites"] = [targets.get(s, "") for s in sites]
    else:
        for cell in value.get("network", {}).values():
            if isinstance(cell, dict) and "synapses" in cell:
                syn = cell["synapses"]
                syn["connectionFile"] = targets.get(syn.get("connectionFile"), "")
                syn["distributionFile"] = targets.get(syn.get("distributionFile"), "")
    with open(target, "w") as fh:
        json.dump(_walk(value), fh, indent=4)


def _copy(job: tuple[str, str]) -> None:
    shutil.copy(*job)


# ----------------------------------------------------------------------------- pool tasks


def _worker_init() -> None:
    # ISF runs on pandas 1.1, where strings are object columns (pandas 3 infers str columns);
    # a pool process is the baseline's own, so the option is set for its lifetime
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.set_option("future.infer_string", False)


@contextlib.contextmanager
def _object_strings():
    """The driver's share of the run with object string columns, as in :func:`_worker_init`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pd.option_context("future.infer_string", False):
            yield


def _trial_index(job: tuple[str, str, str]) -> list[str]:
    path, rel, loadtxt = job
    return list(read_traces(path, rel, loadtxt).index)


def _write_traces(job: tuple[str, str, str, str]) -> None:
    path, rel, loadtxt, out = job
    dump_frame(read_traces(path, rel, loadtxt), out)


def _metadata(job: tuple[str, list[str]]) -> pd.DataFrame:
    """Metadata rows of one folder's trials, two globs per trial (ISF: file-name zero-fill)."""
    folder, stis = job
    frame = pd.DataFrame({"sim_trial_index": stis})

    def row(x: pd.Series) -> pd.Series:
        path, trialnr = os.path.split(x.sim_trial_index)
        widths = [len(os.path.basename(glob.glob(os.path.join(folder, f"*{kind}*.csv"))[0])
                      .split("_")[1].lstrip("run")) for kind in ("synapses", "cells")]
        return pd.Series({
            "path": path, "trialnr": trialnr,
            "voltage_traces_file_name": path.split("_")[-1] + "_vm_all_traces.csv",
            "synapses_file_name": f"simulation_run{str(int(trialnr)).zfill(widths[0])}"
                                  "_synapses.csv",
            "cells_file_name": f"simulation_run{str(int(trialnr)).zfill(widths[1])}"
                               "_presynaptic_cells.csv",
        })

    return pd.concat([frame, frame.apply(row, axis=1)], axis=1)


def _write_activation(job: tuple[str, str, int, str, str]) -> None:
    path, sti, n_commas, header, out = job
    dump_frame(read_activation(path, sti, n_commas, header), out, categorize=True)


def _spikes(job: tuple[str, float]) -> pd.DataFrame:
    return spike_times(load_frame(job[0]), job[1])


# ----------------------------------------------------------------------------- the run


def run(raw: str, out: str, workers: int, loadtxt: str = "python") -> dict[str, float]:
    """ISF's init on ``raw`` into ``out`` with ``workers`` processes; seconds per stage and
    ``"total"``."""
    started = time.monotonic()
    stages: dict[str, float] = {}
    with _object_strings(), cf.ProcessPoolExecutor(workers, initializer=_worker_init) as pool:
        pool.submit(int).result()  # workers up before the clock of the first stage
        stages["pool start"] = time.monotonic() - started
        runs = find_sim_runs(raw)
        clock = time.monotonic()

        def lap(name: str) -> None:
            nonlocal clock
            stages[name] = stages.get(name, 0.0) + time.monotonic() - clock
            clock = time.monotonic()

        # 1. core
        read_traces(runs[0].voltage, runs[0].rel, loadtxt).head()  # the lazy frame's meta
        per_run = list(pool.map(_trial_index, [(r.voltage, r.rel, loadtxt) for r in runs]))
        stis = [s for part in per_run for s in part]
        _mkdirs(out, "voltage_traces", "synapse_activation", "cell_activation",
                "dendritic_recordings", "dendritic_spike_times", "parameterfiles")
        _save(stis, out, "sim_trial_index")
        metadata = pd.concat(pool.map(_metadata, [(os.path.dirname(r.voltage), s)
                                                  for r, s in zip(runs, per_run)]))
        dump_frame(metadata.copy(), os.path.join(out, "metadata"))
        lap("core: trial index (parse 1)")
        parts = [os.path.join(out, "voltage_traces", f"part.{i:05d}") for i in range(len(runs))]
        list(pool.map(_write_traces, [(r.voltage, r.rel, loadtxt, p)
                                      for r, p in zip(runs, parts)]))
        lap("core: voltage traces (parse 2, write)")

        # 2. parameter files
        trial_runs = [(s, r) for r, part in zip(runs, per_run) for s in part]
        rows = pd.DataFrame(list(pool.map(_param_row, trial_runs, chunksize=8)),
                            columns=["sim_trial_index", "path_neuron", "path_network",
                                     "hash_neuron", "hash_network"])
        _store_param_files(rows, out, pool)
        dump_frame(rows.set_index("sim_trial_index"), os.path.join(out, "parameterfiles", "df"))
        lap("parameter files")

        # 3. synapse and cell activation
        for key, header, attr in (("synapse_activation", SYNAPSE_HEADER, "synapses"),
                                  ("cell_activation", CELL_HEADER, "cells")):
            jobs = [(p, s) for r, part in zip(runs, per_run)
                    for p, s in zip(getattr(r, attr), part)]
            if not jobs:
                continue
            n_commas = max(pool.map(max_delimiters, [p for p, _ in jobs], chunksize=4)) + 1
            read_activation(jobs[0][0], jobs[0][1], n_commas, header)  # the lazy frame's meta
            list(pool.map(_write_activation, [
                (p, s, n_commas, header, os.path.join(out, key, f"part.{i:06d}"))
                for i, (p, s) in enumerate(jobs)], chunksize=4))
            lap(f"{key} (pre-pass, parse, write)")

        # 4. dendritic traces and their spike times
        sites = sorted({label for r in runs for label, _ in r.dendritic})
        for label in sites:
            files = [(r, p) for r in runs for lab, p in r.dendritic if lab == label]
            folder = os.path.join(out, "dendritic_recordings", label)
            os.makedirs(folder)
            read_traces(files[0][1], files[0][0].rel, loadtxt).head()  # meta
            paths = [os.path.join(folder, f"part.{i:05d}") for i in range(len(files))]
            list(pool.map(_write_traces, [(p, r.rel, loadtxt, o)
                                          for (r, p), o in zip(files, paths)]))
            lap("dendritic traces (parse, write)")
            spikes = pd.concat(pool.map(_spikes, [(p, DENDRITIC_THRESHOLD) for p in paths]))
            _save(spikes, out, "dendritic_spike_times", f"{label}_{DENDRITIC_THRESHOLD}")
            lap("dendritic spike times (read back, Python loop)")

        # 5. spike times
        _save(pd.concat(pool.map(_spikes, [(p, 0.0) for p in parts])), out, "spike_times")
        lap("spike times (read back, Python loop)")
    stages["total"] = time.monotonic() - started
    return stages


def _store_param_files(rows: pd.DataFrame, out: str, pool: cf.Executor) -> None:
    """Per distinct param file (by md5): references collected on the driver (network files
    parsed once, neuron files twice), then every referenced file and the param files stored."""
    neurons = rows.drop_duplicates("hash_neuron").path_neuron.dropna().tolist()
    networks = rows.drop_duplicates("hash_network").path_network.dropna().tolist()
    syns, cons = set(), set()
    for path in networks:
        for cell in read_param_file(path).get("network", {}).values():
            if isinstance(cell, dict) and "synapses" in cell:
                syns.add(cell["synapses"]["distributionFile"])
                cons.add(cell["synapses"]["connectionFile"])
    hocs = {read_param_file(p)["neuron"]["filename"] for p in neurons}
    landmarks = {s for p in neurons for s in read_param_file(p).get("sim", {})
                 .get("recordingSites", [])}
    targets: dict[str, str] = {}
    for kind, paths, by_md5 in (("morphology", hocs, False), ("recsites", landmarks, False),
                                ("syn", syns, True), ("con", cons, True)):
        for path in sorted(p for p in paths if os.path.isfile(p)):  # ISF stops on a missing one
            name = md5_of(path) if by_md5 else os.path.basename(path)
            targets[path] = os.path.join(_mkdirs(out, f"parameterfiles/{kind}"), name)
    list(pool.map(_copy, [(s, t) for s, t in targets.items() if "/morphology/" in t
                          or "/recsites/" in t]))
    list(pool.map(_store_text, [(s, t, "syn" if "/syn/" in t else "con", targets)
                                for s, t in targets.items() if "/syn/" in t or "/con/" in t]))
    jobs = [(p, os.path.join(_mkdirs(out, f"parameterfiles/{kind}"), md5_of(p)), kind, targets)
            for kind, paths in (("neuron", neurons), ("network", networks)) for p in paths]
    list(pool.map(_store_param, jobs))


def _mkdirs(out: str, *names: str) -> str:
    for name in names:
        os.makedirs(os.path.join(out, name), exist_ok=True)
    return os.path.join(out, names[-1])


def _save(value: object, out: str, *names: str) -> None:
    with open(os.path.join(out, *names), "wb") as fh:
        pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)


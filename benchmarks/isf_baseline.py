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
import json
import os
import pickle
import re
import shutil
import time
import warnings
from dataclasses import dataclass

import pandas as pd
from isf_formats import (
    CELL_HEADER,
    SYNAPSE_HEADER,
    dump_frame,
    load_frame,
    max_delimiters,
    md5_of,
    read_activation,
    read_param_file,
    read_traces,
    spike_times,
    walk_copy,
)

TRACE_SUFFIX = "_vm_all_traces"
DEND_SUFFIX = "_vm_dend_traces.csv"
DENDRITIC_THRESHOLD = -30.0


@dataclass(frozen=True)
class SimRun:
    """One sim-run folder's data files (paths absolute, ``rel`` relative to the tree); ISF
    finds the param files per trial (:func:`_param_row`)."""

    rel: str
    voltage: str
    synapses: tuple[str, ...]
    cells: tuple[str, ...]
    dendritic: tuple[tuple[str, str], ...]  # (recording-site label, path)


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
        ))
    return sorted(runs, key=lambda r: r.rel)


def _one_file(dirpath: str, names: list[str], suffix: str) -> str | None:
    found = [n for n in names if n.endswith(suffix)]
    return os.path.join(dirpath, found[0]) if len(found) == 1 else None


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
        json.dump(walk_copy(value), fh, indent=4)


def _copy(job: tuple[str, str]) -> None:
    shutil.copy(*job)


# ----------------------------------------------------------------------------- pool tasks


def _infers_str() -> bool:
    """Whether pandas makes ``str`` columns of strings (pandas >= 3; ISF's pandas 1.1 makes
    ``object`` columns, and the baseline runs under both)."""
    try:
        return bool(pd.get_option("future.infer_string"))
    except KeyError:  # pandas' OptionError is one
        return False


def _worker_init() -> None:
    # strings as object columns, as in ISF's pandas; a pool process is the baseline's own, so
    # the option is set for its lifetime
    if _infers_str():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pd.set_option("future.infer_string", False)


@contextlib.contextmanager
def _object_strings():
    """The driver's share of the run with object string columns, as in :func:`_worker_init`."""
    if not _infers_str():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pd.option_context("future.infer_string", False):
            yield


def _trial_index(job: tuple[SimRun, str]) -> tuple[SimRun, list[str]]:
    run, loadtxt = job
    return run, list(read_traces(run.voltage, run.rel, loadtxt).index)


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
        trials = list(pool.map(_trial_index, [(r, loadtxt) for r in runs]))  # (run, its stis)
        stis = [s for _, part in trials for s in part]
        _mkdirs(out, "voltage_traces", "synapse_activation", "cell_activation",
                "dendritic_recordings", "dendritic_spike_times", "parameterfiles")
        _save(stis, out, "sim_trial_index")
        metadata = pd.concat(pool.map(_metadata, [(os.path.dirname(r.voltage), s)
                                                  for r, s in trials]))
        dump_frame(metadata.copy(), os.path.join(out, "metadata"))
        lap("core: trial index (parse 1)")
        parts = [os.path.join(out, "voltage_traces", f"part.{i:05d}") for i in range(len(runs))]
        list(pool.map(_write_traces, [(r.voltage, r.rel, loadtxt, parts[i])
                                      for i, r in enumerate(runs)]))
        lap("core: voltage traces (parse 2, write)")

        # 2. parameter files
        trial_runs = [(s, r) for r, part in trials for s in part]
        rows = pd.DataFrame(list(pool.map(_param_row, trial_runs, chunksize=8)),
                            columns=["sim_trial_index", "path_neuron", "path_network",
                                     "hash_neuron", "hash_network"])
        _store_param_files(rows, out, pool)
        dump_frame(rows.set_index("sim_trial_index"), os.path.join(out, "parameterfiles", "df"))
        lap("parameter files")

        # 3. synapse and cell activation
        for key, header, attr in (("synapse_activation", SYNAPSE_HEADER, "synapses"),
                                  ("cell_activation", CELL_HEADER, "cells")):
            jobs = [(p, part[k]) for r, part in trials
                    for k, p in enumerate(getattr(r, attr)) if k < len(part)]
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
            os.makedirs(folder, exist_ok=True)
            read_traces(files[0][1], files[0][0].rel, loadtxt).head()  # meta
            paths = [os.path.join(folder, f"part.{i:05d}") for i in range(len(files))]
            list(pool.map(_write_traces, [(p, r.rel, loadtxt, paths[i])
                                          for i, (r, p) in enumerate(files)]))
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


"""An independent, deliberately plain reading of a raw simrun tree (the tests' oracle).

Written from the format spec with pandas/numpy/re and simple loops, sharing no code with
``simlake.discovery`` or ``simlake.decode``: tests compare the product against this.
"""

from __future__ import annotations

import hashlib
import io
import os
import re

import numpy as np
import pandas as pd

#: The Delta tables a full ingest writes (besides ingest_errors).
INGEST_TABLES = [
    "metadata",
    "voltage_traces",
    "synapse_activation",
    "cell_activation",
    "spike_times",
    "dendritic_recordings",
    "dendritic_spike_times",
    "parameterfiles",
]

FOLDER_RE = re.compile(r"^\d{8}-\d{4}_(?:\d+|seed\d+_pid\d+)$")
SYN_RE = re.compile(r"^simulation_run(\d+)_synapses\.csv$")
CELL_RE = re.compile(r"^simulation_run(\d+)_presynaptic_cells\.csv$")


def sim_run_folders(root: str) -> dict[str, str]:
    """sim_run -> absolute folder path, for every sim-run folder not below a ``_running`` one."""
    found = {}
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.endswith("_running")]
        if FOLDER_RE.match(os.path.basename(dirpath)):
            found[os.path.relpath(dirpath, root).replace(os.sep, "/")] = dirpath
    return dict(sorted(found.items()))


def trial_numbers(folder: str) -> list[int] | None:
    nrs = sorted(int(m.group(1)) for m in map(SYN_RE.match, os.listdir(folder)) if m)
    return nrs or None


def sti(sim_run: str, trialnr: int) -> str:
    return f"{sim_run}/{trialnr:06d}"


def read_voltage_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(t, vm[n_trials, n_times]) from a csv (pandas) or npz file."""
    if path.endswith(".npz"):
        arr = np.load(path)["arr_0"]
        return arr[:, 0].copy(), arr[:, 1:].T.copy()
    frame = pd.read_csv(path, sep="\t", float_precision="round_trip")
    assert frame.columns[0] == "t"
    return frame["t"].to_numpy(float), frame.iloc[:, 1:].to_numpy(float).T


def voltage_file(folder: str) -> str | None:
    names = os.listdir(folder)
    csv = [n for n in names if n.endswith("_vm_all_traces.csv")]
    npz = [n for n in names if n.endswith("_vm_all_traces.npz")]
    return (csv or npz or [None])[0]


def voltage_rows(root: str) -> pd.DataFrame:
    """Narrow voltage_traces rows (sim_trial_index, sim_run, trialnr, t, vm) of the whole tree."""
    rows = []
    for sim_run, folder in sim_run_folders(root).items():
        name = voltage_file(folder)
        if name is None:
            continue
        t, vm = read_voltage_file(os.path.join(folder, name))
        nrs = trial_numbers(folder) if name.endswith(".csv") else None
        nrs = nrs or list(range(vm.shape[0]))
        assert len(nrs) == vm.shape[0]
        for nr, trace in zip(nrs, vm, strict=True):
            rows.append((sti(sim_run, nr), sim_run, nr, t, trace))
    return pd.DataFrame(rows, columns=["sim_trial_index", "sim_run", "trialnr", "t", "vm"])


def dendritic_rows(root: str) -> pd.DataFrame:
    rows = []
    for sim_run, folder in sim_run_folders(root).items():
        uid = os.path.basename(folder).split("_", 1)[1]
        nrs = trial_numbers(folder)
        for name in sorted(os.listdir(folder)):
            if not name.endswith("_vm_dend_traces.csv"):
                continue
            stem = name[: -len("_vm_dend_traces.csv")]
            pid = uid.split("pid")[-1]
            for prefix in (uid + "_", f"seed_{pid}_"):
                if stem.startswith(prefix):
                    label = stem[len(prefix) :]
                    break
            else:
                raise AssertionError(name)
            t, vm = read_voltage_file(os.path.join(folder, name))
            for nr, trace in zip(nrs or range(vm.shape[0]), vm, strict=True):
                rows.append((label, sti(sim_run, nr), sim_run, nr, t, trace))
    return pd.DataFrame(
        rows, columns=["recording_site", "sim_trial_index", "sim_run", "trialnr", "t", "vm"]
    )


def _times(field: str) -> list[float]:
    assert field == "" or field.endswith(","), field
    return [float(x) for x in field.split(",") if x != ""]


def activation_rows(root: str, kind: str) -> pd.DataFrame:
    """Narrow synapse_activation (kind='synapses') or cell_activation (kind='cells') rows."""
    pattern = SYN_RE if kind == "synapses" else CELL_RE
    rows = []
    for sim_run, folder in sim_run_folders(root).items():
        for name in sorted(os.listdir(folder)):
            m = pattern.match(name)
            if not m:
                continue
            nr = int(m.group(1))
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                lines = fh.read().split("\n")
            assert lines[0].startswith("#")
            for line in lines[1:]:
                if line == "":
                    continue
                parts = line.split("\t")
                if kind == "synapses":
                    times = _times(parts[6]) if len(parts) > 6 else []
                    rows.append(
                        (
                            sti(sim_run, nr),
                            sim_run,
                            nr,
                            parts[0],
                            int(parts[1]),
                            float(parts[2]),
                            int(parts[3]),
                            int(parts[4]),
                            parts[5],
                            times,
                        )
                    )
                else:
                    times = _times(parts[2]) if len(parts) > 2 else []
                    rows.append((sti(sim_run, nr), sim_run, nr, parts[0], int(parts[1]), times))
    if kind == "synapses":
        cols = [
            "synapse_type",
            "synapse_ID",
            "soma_distance",
            "section_ID",
            "section_pt_ID",
            "dendrite_label",
            "activation_times",
        ]
    else:
        cols = ["presynaptic_cell_type", "cell_ID", "spike_times"]
    return pd.DataFrame(rows, columns=["sim_trial_index", "sim_run", "trialnr", *cols])


def crossings(t: np.ndarray, v: np.ndarray, threshold: float) -> list[float]:
    """Upward threshold crossings by a plain loop: t[i] where v[i-1] < thr <= v[i]."""
    return [float(t[i]) for i in range(1, len(v)) if v[i - 1] < threshold <= v[i]]


def param_files(root: str) -> dict[str, tuple[str | None, str | None]]:
    """sim_run -> (neuron param path, network param path)."""
    out = {}
    for sim_run, folder in sim_run_folders(root).items():
        names = os.listdir(folder)
        neuron = [n for n in names if n.endswith("_neuron_model.param")]
        network = [n for n in names if n.endswith("_network_model.param")]
        out[sim_run] = (
            os.path.join(folder, neuron[0]) if neuron else None,
            os.path.join(folder, network[0]) if network else None,
        )
    return out


def md5(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.md5(fh.read()).hexdigest()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    frame.to_csv(buf, sep="\t", index=False)
    return buf.getvalue().encode()

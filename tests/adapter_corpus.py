"""Synthetic trial data, written as Delta tables with ``deltalake`` (no Spark), and the frames
the adapter must return, built independently with plain Python loops and pandas.

The Delta tables follow ``simlake.schemas``: several data files per table with sorted,
non-overlapping ``sim_trial_index`` ranges (long keys, > 32 characters), crash-leftover rows of
a sim-run that has no metadata row, and optional bad layouts (overlapping files, truncated
statistics) for the fallbacks.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, WriterProperties, write_deltalake

from simlake import schemas

SITES = (
    "apical_proximal_distal_rec_sites_ID_000_sec_038_seg_032_x_0.929_somaDist_920.7",
    "basal_rec_sites_ID_001_sec_012_seg_003_x_0.5_somaDist_120.0",
)
LEFTOVER = "results/a_rather_long_study_folder_name/20150812-5000_99999"  # sorts mid-table


@dataclass
class Trial:
    sim_run: str
    trialnr: int
    t: list[float]
    vm: list[float]
    synapses: list[tuple]  # (type, id, dist, sec, pt, label, [times])
    cells: list[tuple]  # (type, id, [times])
    spikes: list[float]
    dend: dict[str, tuple[list[float], list[float]]]  # site -> (t, vm)
    dend_spikes: dict[tuple[str, float], list[float]]
    params: tuple[str, str, str, str]

    @property
    def sti(self) -> str:
        return f"{self.sim_run}/{self.trialnr:06d}"


@dataclass
class Corpus:
    trials: list[Trial]  # completed (have metadata)
    leftovers: list[Trial] = field(default_factory=list)  # crash leftovers (no metadata)

    @property
    def visible(self) -> list[Trial]:
        return sorted(self.trials, key=lambda tr: tr.sti)


def time_axis(n: int, start: float = 100.0) -> list[float]:
    """Time stamps as a simulator prints them and Python parses them back."""
    return [float(f"{start + 0.025 * k:.3f}") for k in range(n)]


def make_corpus(n_runs: int = 6, trials_per_run: int = 3, n_times: int = 40, seed: int = 1,
                odd_axes: bool = False) -> Corpus:
    rnd = random.Random(seed)
    trials: list[Trial] = []
    leftovers: list[Trial] = []
    runs = [f"results/a_rather_long_study_folder_name/2015081{i}-1530_2024{i}" for i in
            range(n_runs)]
    for r, sim_run in enumerate(runs + [LEFTOVER]):
        nrs = sorted(rnd.sample(range(0, 12), trials_per_run))
        for nr in nrs:
            t = time_axis(n_times)
            if odd_axes and r == 1:
                t = time_axis(n_times - 5, start=100.0125)  # interleaved, shorter: NaN-filled
            vm = [round(rnd.uniform(-80, 20), 6) for _ in t]
            syn = []
            for i in range(rnd.randint(2, 6)):
                times = sorted(round(rnd.uniform(0, 300), 4) for _ in range(rnd.randint(0, 5)))
                syn.append((rnd.choice(["L1_C1", "L2_C2", "VPM_C2"]), i,
                            round(rnd.uniform(0, 1500), 3), rnd.randint(0, 80),
                            rnd.randint(0, 40), rnd.choice(["Soma", "ApicalDendrite"]), times))
            if r == 0 and nr == nrs[0]:
                syn[0] = syn[0][:6] + ([1.0 + k for k in range(9)],)  # K = 9 comes from here
            cells = []
            for i in range(rnd.randint(1, 4)):
                times = sorted(round(rnd.uniform(0, 300), 4) for _ in range(rnd.randint(0, 3)))
                cells.append((rnd.choice(["L1_B1", "L4ss_C2"]), i, times))
            spikes = sorted(round(rnd.uniform(100, 300), 3) for _ in range(rnd.choice([0, 0, 1,
                                                                                     2, 3])))
            dend = {s: (t, [round(rnd.uniform(-80, 20), 6) for _ in t]) for s in SITES}
            dspk = {(s, -30.0): sorted(round(rnd.uniform(100, 300), 3)
                                       for _ in range(rnd.randint(0, 2))) for s in SITES}
            dspk[(SITES[0], 0.0)] = [150.0] if nr % 2 else []
            params = (f"/x/{sim_run}/neuron.param", f"/x/{sim_run}/network.param",
                      f"{rnd.getrandbits(128):032x}", f"{rnd.getrandbits(128):032x}")
            tr = Trial(sim_run, nr, t, vm, syn, cells, spikes, dend, dspk, params)
            (leftovers if sim_run == LEFTOVER else trials).append(tr)
    return Corpus(trials, leftovers)


# ---------------------------------------------------------------------------------------------
# Arrow tables per key


def _rows(key: str, trs: list[Trial]) -> pa.Table:
    s = schemas.TABLES[key]
    cols: dict[str, list] = {f.name: [] for f in s}

    def base(tr: Trial) -> None:
        cols["sim_trial_index"].append(tr.sti)
        cols["sim_run"].append(tr.sim_run)
        cols["trialnr"].append(tr.trialnr)

    for tr in sorted(trs, key=lambda x: x.sti):
        if key == "metadata":
            base(tr)
            run_uid = tr.sim_run.rsplit("_", 1)[1]
            cols["voltage_traces_file_name"].append(f"{run_uid}_vm_all_traces.csv")
            cols["synapses_file_name"].append(f"simulation_run{tr.trialnr:04d}_synapses.csv")
            cols["cells_file_name"].append(
                f"simulation_run{tr.trialnr:04d}_presynaptic_cells.csv")
            cols["run_id"].append("run-1")
            if "folder_fingerprint" in cols:
                cols["folder_fingerprint"].append("fp")
        elif key == "voltage_traces":
            base(tr)
            cols["t"].append(tr.t)
            cols["vm"].append(tr.vm)
        elif key == "synapse_activation":
            for row in tr.synapses:
                base(tr)
                for name, v in zip(["synapse_type", "synapse_ID", "soma_distance", "section_ID",
                                    "section_pt_ID", "dendrite_label", "activation_times"], row,
                                   strict=True):
                    cols[name].append(v)
        elif key == "cell_activation":
            for row in tr.cells:
                base(tr)
                for name, v in zip(["presynaptic_cell_type", "cell_ID", "spike_times"], row,
                                   strict=True):
                    cols[name].append(v)
        elif key == "spike_times":
            base(tr)
            cols["threshold"].append(0.0)
            cols["spike_times"].append(tr.spikes)
        elif key == "parameterfiles":
            cols["sim_trial_index"].append(tr.sti)
            cols["sim_run"].append(tr.sim_run)
            for name, v in zip(["path_neuron", "path_network", "hash_neuron", "hash_network"],
                               tr.params, strict=True):
                cols[name].append(v)
        else:
            raise KeyError(key)
    return pa.table(cols, schema=s)


def _site_rows(key: str, trs: list[Trial], site: str) -> pa.Table:
    s = schemas.TABLES[key]
    cols: dict[str, list] = {f.name: [] for f in s}
    for tr in sorted(trs, key=lambda x: x.sti):
        items = [(None, tr.dend[site])] if key == "dendritic_recordings" else \
            [(thr, v) for (st, thr), v in sorted(tr.dend_spikes.items()) if st == site]
        for thr, v in items:
            cols["recording_site"].append(site)
            cols["sim_trial_index"].append(tr.sti)
            cols["sim_run"].append(tr.sim_run)
            cols["trialnr"].append(tr.trialnr)
            if key == "dendritic_recordings":
                cols["t"].append(v[0])
                cols["vm"].append(v[1])
            else:
                cols["threshold"].append(thr)
                cols["spike_times"].append(v)
    return pa.table(cols, schema=s)


def groups_of_runs(trs: list[Trial], runs_per_file: int) -> list[list[Trial]]:
    runs = sorted({tr.sim_run for tr in trs})
    out = []
    for i in range(0, len(runs), runs_per_file):
        chosen = set(runs[i:i + runs_per_file])
        out.append([tr for tr in trs if tr.sim_run in chosen])
    return out


FULL_STATS = WriterProperties(statistics_truncate_length=1000)


def write_table(path: str, tables: list[pa.Table], partition_by: list[str] | None = None,
                prefix_length: str | None = "256",
                writer_properties: WriterProperties | None = FULL_STATS) -> None:
    """One data file per table in ``tables`` (one append each), then the Spark-side property
    the ingest sets (delta-rs refuses it at create time, so it is added afterwards)."""
    for i, t in enumerate(tables):
        write_deltalake(path, t, mode="overwrite" if i == 0 else "append",
                        partition_by=partition_by, writer_properties=writer_properties,
                        configuration={"delta.dataSkippingStatsColumns": "sim_trial_index"}
                        if i == 0 else None)
    if prefix_length is not None:
        DeltaTable(path).alter.set_table_properties(
            {"delta.dataSkippingStringPrefixLength": prefix_length}, raise_if_not_exists=False)


def write_db(corpus: Corpus, root: str, runs_per_file: int = 2, overlap: str | None = None,
             folders: bool = True) -> str:
    """Write every key of ``corpus`` as Delta tables under ``root`` (plus a manifest).

    Leftover rows go into their own file and, for voltage and synapses, also into a file
    shared with completed runs. ``overlap`` names a table written with overlapping files.
    """
    from simlake.manifest import write_manifest

    os.makedirs(root, exist_ok=True)
    allt = corpus.trials + corpus.leftovers
    meta = [_rows("metadata", g) for g in groups_of_runs(corpus.trials, 3)]
    write_table(os.path.join(root, "metadata"), meta)
    for key in ("voltage_traces", "synapse_activation", "cell_activation", "spike_times",
                "parameterfiles"):
        groups = groups_of_runs(allt, runs_per_file)
        if key in ("voltage_traces", "synapse_activation"):
            # leftover shares a file with a completed run
            groups = groups_of_runs(allt, runs_per_file + 1)
        if overlap == key:
            # first file: runs 0 and 3, second: runs 1-2, then the rest
            runs = sorted({tr.sim_run for tr in allt})
            g1 = [tr for tr in allt if tr.sim_run in (runs[0], runs[3])]
            g2 = [tr for tr in allt if tr.sim_run in (runs[1], runs[2])]
            rest = [tr for tr in allt if tr.sim_run in runs[4:]]
            groups = [g1, g2] + groups_of_runs(rest, runs_per_file)
        write_table(os.path.join(root, key), [_rows(key, g) for g in groups])
    for key in ("dendritic_recordings", "dendritic_spike_times"):
        tables = [_site_rows(key, g, site) for site in SITES
                  for g in groups_of_runs(allt, runs_per_file)]
        write_table(os.path.join(root, key), tables, partition_by=["recording_site"])
    manifest = {
        "simresult_path": "/data/raw",
        "filelist": sorted({f"{tr.sim_run}/{tr.sim_run.rsplit('_', 1)[1]}_vm_all_traces.csv"
                            for tr in corpus.trials}),
        "link_keys": {},
        "user_keys": {},
    }
    write_manifest(root, manifest)
    if folders:
        os.makedirs(os.path.join(root, "morphology"))
        with open(os.path.join(root, "morphology", "cell.hoc"), "w") as fh:
            fh.write("{create soma}\n")
        os.makedirs(os.path.join(root, "syn_folder"))
    return root


# ---------------------------------------------------------------------------------------------
# expected frames (independent of the adapter)


def _sti_index(values: list[str]) -> pd.Index:
    return pd.Index(values, dtype="str", name="sim_trial_index")


def expected_metadata(c: Corpus) -> pd.DataFrame:
    """ISF's metadata: one row per trial in key order, a plain integer index."""
    trs = sorted(c.visible, key=lambda tr: tr.sti)
    stis = [tr.sti for tr in trs]
    df = pd.DataFrame(
        {
            "sim_trial_index": pd.array(stis, dtype="str"),
            "path": pd.array([tr.sim_run for tr in trs], dtype="str"),
            "trialnr": pd.array([str(tr.trialnr).zfill(6) for tr in trs], dtype="str"),
            "voltage_traces_file_name": pd.array(
                [tr.sim_run.rsplit("_", 1)[1] + "_vm_all_traces.csv" for tr in trs], dtype="str"),
            "synapses_file_name": pd.array(
                [f"simulation_run{tr.trialnr:04d}_synapses.csv" for tr in trs], dtype="str"),
            "cells_file_name": pd.array(
                [f"simulation_run{tr.trialnr:04d}_presynaptic_cells.csv" for tr in trs],
                dtype="str"),
        }
    )
    return df


def _traces(items: list[tuple[str, list[float], list[float]]]) -> pd.DataFrame:
    times = sorted({x for _, t, _ in items for x in t})
    rows = []
    for _, t, vm in items:
        d = dict(zip(t, vm, strict=True))
        rows.append([d.get(x, np.nan) for x in times])
    return pd.DataFrame(np.array(rows, dtype=float).reshape(len(items), len(times)),
                        index=_sti_index([s for s, _, _ in items]),
                        columns=pd.Index(times, dtype="float64"))


def expected_voltage(c: Corpus) -> pd.DataFrame:
    return _traces([(tr.sti, tr.t, tr.vm) for tr in c.visible])


def expected_dendritic(c: Corpus, site: str) -> pd.DataFrame:
    return _traces([(tr.sti, tr.dend[site][0], tr.dend[site][1]) for tr in c.visible])


def _activation(c: Corpus, attr: str, names: list[str], dtypes: list[str]) -> pd.DataFrame:
    rows = [(tr.sti, row) for tr in c.visible for row in getattr(tr, attr)]
    k = max((len(r[-1]) for _, r in rows), default=0)
    data: dict[str, pd.Series] = {}
    for j, (name, dt) in enumerate(zip(names, dtypes, strict=True)):
        data[name] = pd.Series([r[j] for _, r in rows], dtype=dt)
    for i in range(k):
        data[str(i)] = pd.Series([r[-1][i] if i < len(r[-1]) else np.nan for _, r in rows],
                                 dtype="float64")
    df = pd.DataFrame(data)
    df.index = _sti_index([s for s, _ in rows])
    return df


def expected_synapses(c: Corpus) -> pd.DataFrame:
    return _activation(c, "synapses", list(schemas.SYNAPSE_ACTIVATION.names[3:9]),
                       ["str", "int64", "float64", "int64", "int64", "str"])


def expected_cells(c: Corpus) -> pd.DataFrame:
    return _activation(c, "cells", ["presynaptic_cell_type", "cell_ID"], ["str", "int64"])


def _spikes(items: list[tuple[str, list[float]]]) -> pd.DataFrame:
    k = max((len(v) for _, v in items), default=0)
    mat = np.full((len(items), k), np.nan)
    for i, (_, v) in enumerate(items):
        mat[i, :len(v)] = v
    return pd.DataFrame(mat, index=_sti_index([s for s, _ in items]),
                        columns=pd.Index(list(range(k)), dtype="int64"))


def expected_spike_times(c: Corpus) -> pd.DataFrame:
    return _spikes([(tr.sti, tr.spikes) for tr in c.visible])


def expected_dendritic_spikes(c: Corpus) -> dict[str, pd.DataFrame]:
    keys = sorted({k for tr in c.visible for k in tr.dend_spikes})
    return {f"{s}_{thr!r}": _spikes([(tr.sti, tr.dend_spikes.get((s, thr), []))
                                     for tr in c.visible]) for s, thr in keys}


def expected_parameterfiles(c: Corpus) -> pd.DataFrame:
    trs = c.visible
    df = pd.DataFrame({name: pd.array([tr.params[j] for tr in trs], dtype="str")
                       for j, name in enumerate(["path_neuron", "path_network", "hash_neuron",
                                                 "hash_network"])})
    df.index = _sti_index([tr.sti for tr in trs])
    return df

"""The simrun tree generator, checked by an independent reading of its output (spec rules only).

Everything below parses the files with plain ``re``/``numpy``/``ast``; only the generator's
report and its public entry points come from ``simlake.synth``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import os
import re
import shutil
import tokenize
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from simlake import synth
from simlake.synth import numbers

OLD_FOLDER = re.compile(r"^\d{8}-\d{4}_(\d+)$")
NEW_FOLDER = re.compile(r"^\d{8}-\d{4}_(seed\d+_pid\d+)$")
SYN_FILE = re.compile(r"^simulation_run(\d+)_synapses\.csv$")
CELL_FILE = re.compile(r"^simulation_run(\d+)_presynaptic_cells\.csv$")
TIMES = re.compile(r"^(?:-?\d+\.\d+,)*$")
LABEL = re.compile(r"^[a-z_]+_ID_\d{3}_sec_\d{3}_seg_\d{3}_x_\d\.\d{3}_somaDist_\d+\.\d$")
SIZES = {"runs": 7, "trials": 4, "times": 1200, "synapses": 150, "cells": 80}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synth.SynthReport]:
    root = tmp_path_factory.mktemp("synth") / "raw"
    return root, synth.generate_tree(root, seed=3, **SIZES)


# ---- independent readers ------------------------------------------------------------------


def discover(root: Path) -> dict[str, tuple[str, str]]:
    """sim_run -> (era, uid); skips ``*_running`` folders and everything below them."""
    found = {}
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.endswith("_running"))
        name = os.path.basename(dirpath)
        rel = Path(dirpath).relative_to(root).as_posix()
        for era, rx in (("old", OLD_FOLDER), ("new", NEW_FOLDER)):
            m = rx.match(name)
            if m:
                found[rel] = (era, m.group(1))
    return found


def trial_files(folder: Path, rx: re.Pattern[str]) -> dict[int, Path]:
    return {int(m.group(1)): folder / f for f in os.listdir(folder) if (m := rx.match(f))}


def read_table(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(header, time tokens, values) of a tab-separated voltage file."""
    lines = path.read_text().splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    assert len({len(r) for r in rows}) == 1
    values = np.array([[float(v) for v in r[1:]] for r in rows])
    return lines[0].split("\t"), [r[0] for r in rows], values


def read_activation_file(path: Path, n_fixed: int) -> list[tuple[list[str], str | None]]:
    """(fixed fields, times text or None when the line ends right after the fixed fields)."""
    lines = path.read_text().split("\n")
    assert lines[0].startswith("#") and lines[-1] == ""
    out = []
    for line in lines[1:-1]:
        parts = line.split("\t")
        assert len(parts) in (n_fixed, n_fixed + 1), line
        out.append((parts[:n_fixed], parts[n_fixed] if len(parts) > n_fixed else None))
    return out


def times_of(text: str | None) -> list[float]:
    assert text is None or TIMES.match(text), text
    return [float(t) for t in (text or "").split(",")[:-1]]


def strip_comments(text: str) -> str:
    toks = tokenize.generate_tokens(io.StringIO(text).readline)
    return tokenize.untokenize((t.type, t.string) for t in toks if t.type != tokenize.COMMENT)


def read_param(path: Path) -> dict:
    return ast.literal_eval(strip_comments(path.read_text()))


def parse_hoc(text: str) -> tuple[list[str], dict[str, np.ndarray], dict[str, tuple[str, float]]]:
    names: list[str] = []
    points: dict[str, list[list[float]]] = {}
    parent: dict[str, tuple[str, float]] = {}
    current = None
    for line in text.splitlines():
        if not line:
            continue
        assert line.startswith("{") and line.endswith("}"), line
        if m := re.fullmatch(r"\{create (\w+)\}", line):
            names.append(m.group(1))
            points[m.group(1)] = []
        elif m := re.fullmatch(r"\{access (\w+)\}", line):
            current = m.group(1)
        elif m := re.fullmatch(r"\{pt3dadd\(([^)]*)\)\}", line):
            points[current].append([float(v) for v in m.group(1).split(",")])
        elif m := re.fullmatch(r"\{connect (\w+)\(0\), (\w+)\(([\d.]+)\)\}", line):
            parent[m.group(1)] = (m.group(2), float(m.group(3)))
        else:
            assert line in ("{nseg = 1}", "{pt3dclear()}"), line
    return names, {k: np.array(v) for k, v in points.items()}, parent


class Cell:
    """Independent path distances: d(s, x) = x L(s) + d(parent, px), d(soma, .) = 0."""

    def __init__(self, hoc_text: str) -> None:
        self.names, pts, self.parent = parse_hoc(hoc_text)
        self.arc = {}
        for name, p in pts.items():
            seg = np.linalg.norm(p[1:, :3] - p[:-1, :3], axis=1)
            self.arc[name] = np.concatenate([[0.0], np.cumsum(seg)])
        self.points = pts

    def length(self, sid: int) -> float:
        return float(self.arc[self.names[sid]][-1])

    def distance(self, name: str, x: float) -> float:
        if name == "soma":
            return 0.0
        pname, px = self.parent[name]
        return x * self.arc[name][-1] + self.distance(pname, px)


@pytest.fixture(scope="module")
def anatomy(tree: tuple[Path, synth.SynthReport]) -> dict:
    root, _ = tree
    params = {}
    for sim_run in discover(root):
        folder = root / sim_run
        neuron = next(folder.glob("*_neuron_model.param"))
        network = next(folder.glob("*_network_model.param"))
        params[sim_run] = (read_param(neuron), read_param(network), network.read_text())
    return params


# ---- tree and folder variants -----------------------------------------------------------------


def test_folders_match_report_and_cover_eras_and_depths(tree):
    root, report = tree
    found = discover(root)
    assert set(found) == {f.sim_run for f in report.folders}
    assert len(found) == SIZES["runs"]
    assert {era for era, _ in found.values()} == {"old", "new"}
    assert {rel.count("/") + 1 for rel in found} == {1, 2, 3}
    for f in report.folders:
        assert found[f.sim_run] == (f.era, f.uid)
    assert not (root / synth.ANATOMY_DIR).name[:8].isdigit()


def test_running_folder_holds_files_and_a_nested_sim_run_folder(tree):
    root, report = tree
    running = root / report.running_folder
    assert running.name.endswith("_running") and running.is_dir()
    files = sorted(p.relative_to(root).as_posix() for p in running.rglob("*") if p.is_file())
    assert files == sorted(report.running_files) and len(files) >= 5
    nested = [p for p in running.iterdir() if p.is_dir()]
    assert nested and NEW_FOLDER.match(nested[0].name)
    assert not any(s.startswith(report.running_folder) for s in discover(root))
    vm = next(running.glob("*_vm_all_traces.csv")).read_bytes()
    assert not vm.endswith(b"\n")  # crashed mid-write


def test_every_variant_is_present(tree):
    root, report = tree
    paddings, non_consecutive, npz_only, csv_and_npz, seed_prefix = set(), [], [], [], []
    markers, templates, olds = [], [], []
    for sim_run, (era, uid) in discover(root).items():
        folder = root / sim_run
        names = os.listdir(folder)
        syn = trial_files(folder, SYN_FILE)
        assert set(syn) == set(trial_files(folder, CELL_FILE))
        paddings |= {len(SYN_FILE.match(n).group(1)) for n in names if SYN_FILE.match(n)}
        numbers = sorted(syn)
        if numbers != list(range(len(numbers))):
            non_consecutive.append(sim_run)
        has_csv = f"{uid}_vm_all_traces.csv" in names
        has_npz = f"{uid}_vm_all_traces.npz" in names
        assert has_csv or has_npz
        if has_npz and not has_csv:
            npz_only.append(sim_run)
            assert numbers == list(range(len(numbers)))
        if has_npz and has_csv:
            csv_and_npz.append(sim_run)
        dend = [n for n in names if n.endswith("_vm_dend_traces.csv")]
        assert len(dend) == 2
        if all(n.startswith(f"seed_{uid}_") for n in dend):
            seed_prefix.append(sim_run)
            assert era == "old"
            labels = [n[len(f"seed_{uid}_"):-len("_vm_dend_traces.csv")] for n in dend]
        else:
            assert all(n.startswith(f"{uid}_") for n in dend)
            labels = [n[len(uid) + 1:-len("_vm_dend_traces.csv")] for n in dend]
        assert all(LABEL.match(label) for label in labels), labels
        assert f"{uid}_neuron_model.param" in names and f"{uid}_network_model.param" in names
        markers += [n for n in names if n.startswith("hostname_")]
        templates += [n for n in names if n.endswith(".param.TEMPLATE")]
        olds += [n for n in names if n.endswith(".param.old")]
        for n in names:
            if n.startswith("hostname_"):
                assert (folder / n).stat().st_size == 0
    assert paddings == {4, 6}
    assert non_consecutive and len(npz_only) == 1 and csv_and_npz and seed_prefix
    assert markers and templates and olds


def test_report_totals_match_the_files(tree):
    root, report = tree
    n_trials = n_syn = n_cell = 0
    for f in report.folders:
        folder = root / f.sim_run
        syn, cells = trial_files(folder, SYN_FILE), trial_files(folder, CELL_FILE)
        assert tuple(sorted(syn)) == f.trial_numbers
        assert {len(SYN_FILE.match(p.name).group(1)) for p in syn.values()} == {f.padding}
        n_trials += len(syn)
        n_syn += sum(p.read_text().count("\n") - 1 for p in syn.values())
        n_cell += sum(p.read_text().count("\n") - 1 for p in cells.values())
    assert (n_trials, n_syn, n_cell) == (report.n_trials, report.n_synapse_lines,
                                         report.n_cell_lines)
    assert n_trials == SIZES["runs"] * SIZES["trials"]
    assert n_syn == n_trials * SIZES["synapses"] and n_cell == n_trials * SIZES["cells"]
    indices = report.sim_trial_indices()
    assert indices == sorted(indices) and all(re.search(r"/\d{6}$", s) for s in indices)
    assert "trials" in report.summary_line()


# ---- voltage traces ---------------------------------------------------------------------------


def test_voltage_csv_layout_and_time_column(tree):
    root, report = tree
    expected_t = [round(100.0 + 0.025 * k, 3) for k in range(SIZES["times"])]
    for sim_run in discover(root):
        folder = root / sim_run
        n_trials = len(trial_files(folder, SYN_FILE))
        files = sorted(folder.glob("*_vm_dend_traces.csv"))
        files += sorted(folder.glob("*_vm_all_traces.csv"))
        assert len(files) in (2, 3)
        for path in files:
            header, t_tokens, values = read_table(path)
            assert header == ["t"] + [f"Vm run {i:02d}" for i in range(n_trials)]
            assert [float(t) for t in t_tokens] == expected_t
            assert t_tokens[:3] == ["100.0", "100.025", "100.05"]
            assert values.shape == (SIZES["times"], n_trials)
            row = path.read_text().splitlines()[7].split("\t")
            assert all(repr(float(tok)) == tok for tok in row)


def test_npz_voltage_files(tree):
    root, report = tree
    for f in report.folders:
        folder = root / f.sim_run
        for path in folder.glob("*_vm_all_traces.npz"):
            with np.load(path) as npz:
                assert list(npz.files) == ["arr_0"]
                arr = npz["arr_0"]
            n = len(trial_files(folder, SYN_FILE))
            assert arr.shape == (SIZES["times"], 1 + n)
            assert arr[:3, 0].tolist() == [100.0, 100.025, 100.05]
            csv = folder / path.name.replace(".npz", ".csv")
            if csv.exists():
                _, t_tokens, values = read_table(csv)
                assert np.array_equal(arr[:, 1:], values)
                assert arr[:, 0].tolist() == [float(t) for t in t_tokens]


def test_vm_run_header_grows_past_99(tmp_path):
    report = synth.generate_tree(tmp_path / "wide", runs=1, trials=101, times=20, synapses=5,
                                 cells=5)
    path = tmp_path / "wide" / report.folders[0].sim_run / report.folders[0].voltage_file
    header = path.read_text().split("\n", 1)[0].split("\t")
    assert header[1] == "Vm run 00" and header[-1] == "Vm run 100" and len(header) == 102


def test_traces_look_like_membrane_potentials_with_spikes(tree):
    root, report = tree
    soma_counts, dend_counts = [], []
    for sim_run, (_, uid) in discover(root).items():
        folder = root / sim_run
        csv = folder / f"{uid}_vm_all_traces.csv"
        if csv.exists():
            v = read_table(csv)[2]
            assert -70.0 < np.median(v) < -45.0
            soma_counts += ((v[:-1] < 0.0) & (v[1:] >= 0.0)).sum(axis=0).tolist()
        for dend in folder.glob("*_vm_dend_traces.csv"):
            v = read_table(dend)[2]
            dend_counts += ((v[:-1] < -30.0) & (v[1:] >= -30.0)).sum(axis=0).tolist()
    assert sum(c > 0 for c in soma_counts) > len(soma_counts) / 2  # most trials spike
    assert 0 in soma_counts  # and some do not
    assert sum(dend_counts) > 0
    by_run = {f.sim_run: f for f in report.folders}
    for sim_run, (_, uid) in discover(root).items():
        csv = root / sim_run / f"{uid}_vm_all_traces.csv"
        if csv.exists():
            v = read_table(csv)[2]
            counts = ((v[:-1] < 0.0) & (v[1:] >= 0.0)).sum(axis=0)
            assert tuple(counts.tolist()) == by_run[sim_run].soma_spike_counts


# ---- synapse and presynaptic-cell files ------------------------------------------------------


def test_synapse_and_cell_lines(tree, anatomy):
    root, _ = tree
    empty_with_tab = empty_without_tab = multi = silent_cells = 0
    for sim_run in discover(root):
        folder = root / sim_run
        _, network, _ = anatomy[sim_run]
        cell_nr = {ct: spec["cellNr"] for ct, spec in network["network"].items()}
        con_files = {spec["synapses"]["connectionFile"] for spec in network["network"].values()}
        assert len(con_files) == 1  # one file for all celltypes
        cons = {}
        for line in Path(con_files.pop()).read_text().split("\n")[4:-1]:
            c, cell, syn = line.split("\t")
            cons[(c, int(syn))] = int(cell)
        for nr, syn_path in trial_files(folder, SYN_FILE).items():
            cells_path = trial_files(folder, CELL_FILE)[nr]
            spikes = {}
            for (ct, cid), text in read_activation_file(cells_path, 2):
                assert text is not None
                spikes[(ct, int(cid))] = times_of(text)
                silent_cells += not spikes[(ct, int(cid))]
            assert Counter(ct for ct, _ in spikes) == Counter(cell_nr)
            for fields, text in read_activation_file(syn_path, 6):
                ct, sid, dist, sec, pt, label = fields
                assert int(sid) >= 0 and float(dist) >= 0.0 and int(sec) >= 0 and int(pt) >= 0
                assert label in {"Soma", "Dendrite", "ApicalDendrite", "AIS"}
                acts = times_of(text)
                empty_with_tab += text == ""
                empty_without_tab += text is None
                multi += len(acts) > 1
                assert acts == sorted(acts)
                assert set(acts) <= set(spikes[(ct, cons[(ct, int(sid))])])
    assert empty_with_tab and empty_without_tab and multi and silent_cells


# ---- parameter files and the files they reference ---------------------------------------------


def test_param_files_parse_and_reference_existing_files(tree, anatomy):
    root, report = tree
    neuron_texts, network_texts = Counter(), Counter()
    for sim_run, (neuron, network, network_text) in anatomy.items():
        assert "#" in network_text and re.search(r",\n\s*\}", network_text)
        hoc = Path(neuron["neuron"]["filename"])
        assert hoc.is_absolute() and hoc.suffix == ".hoc" and hoc.exists()
        assert hoc.is_relative_to(root / synth.ANATOMY_DIR)
        sites = neuron["sim"]["recordingSites"]
        assert isinstance(sites, list) and len(sites) == 2
        assert all(Path(s).suffix == ".landmarkAscii" and Path(s).exists() for s in sites)
        assert neuron["sim"]["dt"] == 0.025 and neuron["sim"]["tStop"] > 100.0
        assert isinstance(neuron["sim"]["recordingRange"], tuple)
        for key in ("Soma", "Dendrite", "ApicalDendrite"):
            assert isinstance(neuron["neuron"][key]["mechanisms"]["range"], dict)
        for spec in network["network"].values():
            assert isinstance(spec["cellNr"], int)
            assert spec["celltype"] == "spiketrain" or "spiketrain" in spec["celltype"]
            assert Path(spec["synapses"]["distributionFile"]).suffix == ".syn"
            assert Path(spec["synapses"]["connectionFile"]).suffix == ".con"
            assert Path(spec["synapses"]["distributionFile"]).exists()
            assert Path(spec["synapses"]["connectionFile"]).exists()
            assert isinstance(spec["synapses"]["receptors"]["glutamate_syn"]["weight"], tuple)
        folder = root / sim_run
        neuron_bytes = next(folder.glob("*_neuron_model.param")).read_bytes()
        neuron_texts[hashlib.md5(neuron_bytes).hexdigest()] += 1
        network_texts[hashlib.md5(network_text.encode()).hexdigest()] += 1
    assert len(network_texts) >= 2 and len(neuron_texts) >= 2
    assert max(neuron_texts.values()) >= 3
    con_files = {spec["synapses"]["connectionFile"]
                 for _, net, _ in anatomy.values() for spec in net["network"].values()}
    assert len(con_files) == 2


def test_syn_positions_agree_with_hoc_and_synapse_files(tree, anatomy):
    root, _ = tree
    sim_run, (neuron, network, _) = next(iter(anatomy.items()))
    cell = Cell(Path(neuron["neuron"]["filename"]).read_text())
    assert cell.names[0] == "soma" and {n.split("_")[0] for n in cell.names} == {
        "soma", "dend", "apical", "axon"}
    spec = next(iter(network["network"].values()))
    syn_path = Path(spec["synapses"]["distributionFile"])
    lines = syn_path.read_text().split("\n")
    assert all(line.startswith("#") for line in lines[:3]) and lines[3] == ""
    assert lines[1] == f"# corresponding to cell: {Path(neuron['neuron']['filename']).name}"
    expected = {}
    per_type = defaultdict(int)
    for line in lines[4:-1]:
        ct, sec, x = line.split("\t")
        sid, x = int(sec), float(x)
        name = cell.names[sid]
        arc = cell.arc[name]
        pt = int(np.argmin(np.abs(arc - x * arc[-1])))
        assert abs(arc[pt] - x * arc[-1]) < 1e-9 * max(1.0, arc[-1])
        label = {"soma": "Soma", "dend": "Dendrite", "apical": "ApicalDendrite",
                 "axon": "AIS"}[name.split("_")[0]]
        expected[(ct, per_type[ct])] = (cell.distance(name, x), sid, pt, label)
        per_type[ct] += 1
    con = Path(spec["synapses"]["connectionFile"]).read_text().split("\n")
    assert con[1].endswith(syn_path.name) and con[3] == ""
    assert sorted((c, int(s)) for c, _, s in (row.split("\t") for row in con[4:-1])) == sorted(
        expected)
    for other_run in anatomy:
        folder = root / other_run
        for syn_csv in list(trial_files(folder, SYN_FILE).values())[:1]:
            rows = read_activation_file(syn_csv, 6)
            assert len(rows) == len(expected)
            for (ct, sid, dist, sec, pt, label), _ in rows:
                e_dist, e_sec, e_pt, e_label = expected[(ct, int(sid))]
                assert (int(sec), int(pt), label) == (e_sec, e_pt, e_label)
                assert float(dist) == pytest.approx(e_dist, rel=1e-12, abs=1e-9)


def test_recording_sites_agree_with_hoc(tree, anatomy):
    root, report = tree
    neuron = next(iter(anatomy.values()))[0]
    cell = Cell(Path(neuron["neuron"]["filename"]).read_text())
    labels = report.folders[0].dendritic_labels
    for path in neuron["sim"]["recordingSites"]:
        lines = Path(path).read_text().splitlines()
        xyz = np.array([float(v) for v in lines[lines.index("@1") + 1].split()])
        base = Path(path).stem
        label = next(lab for lab in labels if lab.startswith(base + "_ID_"))
        m = re.search(r"_sec_(\d+)_seg_\d+_x_([\d.]+)_somaDist_([\d.]+)$", label)
        sid, x, dist = int(m.group(1)), float(m.group(2)), float(m.group(3))
        name = cell.names[sid]
        pt = int(np.argmin(np.linalg.norm(cell.points[name][:, :3] - xyz, axis=1)))
        assert np.allclose(cell.points[name][pt, :3], xyz)
        x_true = cell.arc[name][pt] / cell.arc[name][-1]
        assert abs(x_true - x) <= 0.0005
        assert abs(cell.distance(name, x_true) - dist) <= 0.05


# ---- determinism, sizes, CLI ------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    small = {"runs": 6, "trials": 2, "times": 300, "synapses": 30, "cells": 20}
    root = tmp_path / "raw"
    synth.generate_tree(root, seed=11, **small)
    first = _snapshot(root)
    shutil.rmtree(root)
    synth.generate_tree(root, seed=11, **small)
    assert _snapshot(root) == first
    shutil.rmtree(root)
    synth.generate_tree(root, seed=12, **small)
    second = _snapshot(root)
    assert second != first
    assert sorted(second) != sorted(first)  # folder names depend on the seed too


def test_fewer_runs_take_the_first_variants(tmp_path):
    report = synth.generate_tree(tmp_path / "two", runs=2, trials=1, times=50, synapses=10,
                                 cells=10)
    assert [(f.era, f.padding) for f in report.folders] == [("old", 4), ("new", 4)]
    assert [f.sim_run.split("/")[0] for f in report.folders] == ["results", "results"]
    assert report.folders[1].trial_numbers != (0,)  # non-consecutive: a sample of 0..4


def test_refuses_bad_sizes_and_non_empty_folders(tmp_path):
    with pytest.raises(ValueError, match="synapses"):
        synth.generate_tree(tmp_path / "a", synapses=2)
    with pytest.raises(ValueError, match="trials"):
        synth.generate_tree(tmp_path / "a", trials=0)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    with pytest.raises(FileExistsError):
        synth.generate_tree(tmp_path / "b")


def test_cli_arguments_and_run(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    synth.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "cli"), "--runs", "6", "--trials", "2", "--times",
                              "100", "--synapses", "20", "--cells", "10", "--seed", "4"])
    assert synth.run(args) == 0
    out = capsys.readouterr().out
    assert "6 sim-run folders" in out and "12 trials" in out
    assert len(discover(tmp_path / "cli")) == 6
    assert synth.run(args) == 2  # not empty any more
    defaults = parser.parse_args(["x"])
    assert (defaults.runs, defaults.trials, defaults.seed) == (12, None, 0)  # None: 25 a folder
    assert (defaults.profile, defaults.network_params) == ("default", "variants")


def test_number_formatting_is_str_float():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-60.0, 30.0, 5000), rng.uniform(0, 99999.0, 500),
                             [0.0, -0.0, 1e-12, -3e-5, 5e-5, 0.0001, 99999.9999999999, 100.025]])
    flat, lengths = numbers.fixed_point_tokens(numbers.quantise(values), ord(","))
    tokens = flat.tobytes().decode().split(",")[:-1]
    assert len(tokens) == values.size and sum(lengths) == flat.size
    assert all(repr(float(t)) == t for t in tokens)
    assert np.allclose([float(t) for t in tokens], values, atol=1e-4)

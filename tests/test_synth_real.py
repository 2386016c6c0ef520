"""Real-shaped generated trees (``profile="real"``), checked against the sizes and formats of ISF's
example simrun folder by independent reading of the files.

Reference figures of the real folder: network param 356-383 KB (278 cell types), neuron param
8.7 KB, ``.hoc`` 824 KB (167 sections, 13,962 points, ``%f``), ``.syn`` 642 KB, ``.con`` 372 KB
(24,780 lines each), 9,802 voltage rows, ~4,400 synapse and ~5,500 cell lines a trial (276 KB and
208 KB), numbers with 12 significant digits (older simrun) or ``repr`` (newer).
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections import Counter
from pathlib import Path

import pytest

from simlake import synth
from test_synth import discover, read_activation_file, strip_comments, times_of, trial_files

SYN_FILE = re.compile(r"^simulation_run(\d+)_synapses\.csv$")
CELL_FILE = re.compile(r"^simulation_run(\d+)_presynaptic_cells\.csv$")
FOLDER_SIZES = (2, 1, 1, 1, 1, 3)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synth.SynthReport]:
    root = tmp_path_factory.mktemp("synth_real") / "raw"
    report = synth.generate_tree(root, runs=6, trials=FOLDER_SIZES, profile="real",
                                 network_params="distinct", seed=4)
    return root, report


def kb(path: Path) -> float:
    return path.stat().st_size / 1000


def py2_str(value: float) -> str:
    text = f"{value:.12g}"
    return text if any(c in text for c in ".en") else text + ".0"


def significant(token: str) -> int:
    return len(token.lstrip("-").replace(".", "").lstrip("0").rstrip("0")) or 1


def read_param(path: Path) -> dict:
    return ast.literal_eval(strip_comments(path.read_text()))


def test_network_param_files_real_size_many_types_existing_references(real):
    root, report = real
    md5s = set()
    for f in report.folders:
        path = next((root / f.sim_run).glob("*_network_model.param"))
        assert 300 <= kb(path) <= 450, kb(path)
        md5s.add(hashlib.md5(path.read_bytes()).hexdigest())
        tree = read_param(path)
        network = tree["network"]
        assert len(network) >= 250
        kinds = Counter()
        for spec in network.values():
            syn = spec["synapses"]
            assert Path(syn["distributionFile"]).is_file()
            assert Path(syn["connectionFile"]).is_file()
            assert isinstance(spec["cellNr"], int) and spec["cellNr"] >= 1
            (receptor,) = syn["receptors"]
            assert receptor in ("glutamate_syn", "gaba_syn")
            if spec["celltype"] == "spiketrain":
                kinds["spiketrain"] += 1
                assert spec["interval"] > 0
            else:
                kinds["pointcell"] += 1
                pc = spec["celltype"]["pointcell"]
                assert pc["distribution"] == "PSTH"
                assert len(pc["intervals"]) == len(pc["probabilities"])
                assert all(isinstance(i, tuple) for i in pc["intervals"])
        assert kinds["spiketrain"] > 50 and kinds["pointcell"] > 50
    assert len(md5s) == len(report.folders)  # a parameter sweep: every folder its own file


def test_distinct_network_files_differ_only_in_swept_values(real):
    root, report = real
    trees = [read_param(next((root / f.sim_run).glob("*_network_model.param")))
             for f in report.folders[:2]]
    a, b = (t["network"] for t in trees)
    assert list(a) == list(b)
    for name in a:
        ra, rb = a[name]["synapses"]["receptors"], b[name]["synapses"]["receptors"]
        assert {k: {**v, "weight": None} for k, v in ra.items()} == {
            k: {**v, "weight": None} for k, v in rb.items()}
        assert [v["weight"] for v in ra.values()] != [v["weight"] for v in rb.values()]
        assert a[name]["cellNr"] == b[name]["cellNr"]


def test_neuron_param_and_anatomy_files_real_size(real):
    root, report = real
    folder = root / report.folders[0].sim_run
    neuron_path = next(folder.glob("*_neuron_model.param"))
    assert 6 <= kb(neuron_path) <= 12, kb(neuron_path)
    neuron = read_param(neuron_path)
    hoc = Path(neuron["neuron"]["filename"])
    assert {"Soma", "Dendrite", "ApicalDendrite", "AIS"} <= set(neuron["neuron"])
    assert 700 <= kb(hoc) <= 950, kb(hoc)
    text = hoc.read_text()
    assert 150 <= text.count("{create ") <= 180
    points = re.findall(r"^\{pt3dadd\(([^)]*)\)\}$", text, re.M)
    assert 13_000 <= len(points) <= 15_000
    assert all(re.fullmatch(r"-?\d+\.\d{6}", v) for p in points[:500] for v in p.split(","))
    network = read_param(next(folder.glob("*_network_model.param")))["network"]
    spec = next(iter(network.values()))["synapses"]
    syn, con = Path(spec["distributionFile"]), Path(spec["connectionFile"])
    assert 550 <= kb(syn) <= 800 and 320 <= kb(con) <= 480, (kb(syn), kb(con))
    syn_lines = syn.read_text().split("\n")[4:-1]
    con_lines = con.read_text().split("\n")[4:-1]
    assert len(syn_lines) == len(con_lines) == sum(s["cellNr"] for s in network.values())
    assert {line.split("\t")[0] for line in con_lines} == set(network)
    assert all(significant(line.split("\t")[2]) <= 12 for line in syn_lines[:2000])


def test_both_number_formats_in_one_tree(real):
    root, report = real
    seen = Counter()
    for f in report.folders:
        folder = root / f.sim_run
        tokens = []
        if f.voltage_format != "npz":
            rows = (folder / f.voltage_file).read_text().split("\n")[1:200]
            tokens += [t for row in rows if row for t in row.split("\t")[1:]]
        syn_path = next(iter(trial_files(folder, SYN_FILE).values()))
        for fields, text in read_activation_file(syn_path, 6)[:300]:
            tokens.append(fields[2])
            tokens += (text or "").split(",")[:-1]
        assert len(tokens) > 300
        if f.era == "old":
            assert f.number_format == "str12"
            assert all(py2_str(float(t)) == t for t in tokens)
            assert max(map(significant, tokens)) == 12
        else:
            assert f.number_format == "repr"
            assert all(repr(float(t)) == t for t in tokens)
            digits = Counter(significant(t) for t in tokens)
            assert digits[16] + digits[17] > 0.8 * len(tokens), digits
        seen[f.number_format] += 1
    assert seen["str12"] and seen["repr"]


def test_trial_files_real_size_and_coherent(real):
    root, report = real
    silent = 0
    for f in report.folders:
        folder = root / f.sim_run
        network = read_param(next(folder.glob("*_network_model.param")))["network"]
        con_path = Path(next(iter(network.values()))["synapses"]["connectionFile"])
        cell_of = {(c, int(s)): int(cell) for c, cell, s in
                   (line.split("\t") for line in con_path.read_text().split("\n")[4:-1])}
        syn_files, cell_files = trial_files(folder, SYN_FILE), trial_files(folder, CELL_FILE)
        assert sorted(syn_files) == list(f.trial_numbers)
        for nr, syn_path in syn_files.items():
            syn_rows = read_activation_file(syn_path, 6)
            cell_rows = read_activation_file(cell_files[nr], 2)
            assert 3_000 <= len(syn_rows) <= 6_500 and 4_000 <= len(cell_rows) <= 7_500
            limit = 1.6 if f.number_format == "repr" else 1.25
            assert 180 <= kb(syn_path) <= 300 * limit and 140 <= kb(cell_files[nr]) <= 230 * limit
            spikes = {(ct, int(cid)): set(times_of(t)) for (ct, cid), t in cell_rows}
            for (ct, sid, *_), text in syn_rows:
                acts = times_of(text)
                silent += not acts
                if acts:
                    assert set(acts) <= spikes[(ct, cell_of[(ct, int(sid))])]
    assert silent > 0  # the empty-list variant stays in real-shaped trees


def test_voltage_files_real_rows_and_size(real):
    root, report = real
    for f in report.folders:
        folder = root / f.sim_run
        files = list(folder.glob("*_vm_dend_traces.csv"))
        if f.voltage_format != "npz":
            files.append(folder / f.voltage_file)
        for path in files:
            lines = path.read_text().split("\n")
            assert len(lines) == 9_802 + 2 and lines[-1] == ""
            assert lines[1].startswith("100.0\t") and lines[-2].startswith("345.025\t")
            values_kb = (path.stat().st_size - sum(len(r.split("\t", 1)[0]) + 1
                                                   for r in lines[1:-1])) / 1000
            per_trial = values_kb / f.n_trials  # real: 9,802 x 15 bytes = 147 KB (str12)
            assert (140 <= per_trial <= 155) if f.era == "old" else (165 <= per_trial <= 200)


def test_folder_sizes_as_given_and_cycled(tmp_path):
    report = synth.generate_tree(tmp_path / "t", runs=7, trials=(6, 1, 3), times=20,
                                 synapses=10, cells=10, network_params="shared")
    assert [f.n_trials for f in report.folders] == [6, 1, 3, 6, 1, 3, 6]
    texts = {(tmp_path / "t" / f.sim_run / f"{f.uid}_network_model.param").read_bytes()
             for f in report.folders}
    assert len(texts) == 1  # shared: one content for all folders
    assert set(discover(tmp_path / "t")) == {f.sim_run for f in report.folders}


def test_cli_real_profile_arguments(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    synth.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "x"), "--runs", "2", "--trials", "2,1",
                              "--times", "30", "--synapses", "300", "--cells", "300",
                              "--morph-points", "400", "--profile", "real",
                              "--network-params", "distinct"])
    assert synth.run(args) == 0
    out = capsys.readouterr().out
    assert "numbers=str12" in out and "numbers=repr" in out and "3 trials" in out
    with pytest.raises(SystemExit):
        parser.parse_args(["y", "--trials", "6,x"])

"""Cell and network loading from a database ingested by the real Spark job (issue 7).

Expectations come from plain parses of the raw tree the database was ingested from (``ast`` for
the param files, ``str.split`` for the ``.syn``/``.con``/trial csv files), never from the
loaders' own parsers.
"""

from __future__ import annotations

import ast
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import simlake
from simlake import synth
from simlake.cellnet import check_consistency, trial_rows
from simlake.morphology import read_landmarks
from simlake.network import build_network
from simlake.params import Params

pytestmark = pytest.mark.spark


# -- plain parses of the raw tree ----------------------------------------------------------------


def _data_lines(path: str) -> list[list[str]]:
    with open(path) as fh:
        return [line.rstrip("\n").split("\t") for line in fh
                if line.strip() and not line.startswith("#")]


def _times(field: str) -> list[float]:
    return [float(v) for v in field.split(",") if v.strip()]


def raw_syn(path: str) -> dict[str, list[tuple[int, float]]]:
    """celltype -> [(section ID, x)] in file order (= synapse ID)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for celltype, section, x in _data_lines(path):
        out.setdefault(celltype, []).append((int(section), float(x)))
    return out


def raw_con(path: str) -> dict[tuple[str, int], int]:
    """(celltype, synapse ID) -> presynaptic cell ID."""
    return {(ct, int(syn)): int(cell) for ct, cell, syn in _data_lines(path)}


def raw_synapse_activations(path: str) -> dict[tuple[str, int], tuple]:
    """(celltype, synapse ID) -> (soma distance, section ID, pt ID, label, activation times)."""
    out = {}
    for fields in _data_lines(path):
        ct, syn, dist, sec, pt, label = fields[:6]
        times = _times(fields[6]) if len(fields) > 6 else []
        out[ct, int(syn)] = (float(dist), int(sec), int(pt), label, times)
    return out


def raw_cell_spikes(path: str) -> dict[tuple[str, int], list[float]]:
    """(celltype, cell ID) -> spike times."""
    return {(f[0], int(f[1])): (_times(f[2]) if len(f) > 2 else []) for f in _data_lines(path)}


def raw_sections(hoc_path: str) -> list[str]:
    with open(hoc_path) as fh:
        return re.findall(r"\{create (\w+)\}", fh.read())


def anatomy(raw: str, name: str) -> str:
    sub = {".hoc": "morphology", ".syn": "network", ".con": "network"}[os.path.splitext(name)[1]]
    return os.path.join(raw, synth.ANATOMY_DIR, sub, name)


def trial_file(raw: str, folder, trialnr: int, kind: str) -> str:
    return os.path.join(raw, *folder.sim_run.split("/"),
                        f"simulation_run{trialnr:0{folder.padding}d}_{kind}.csv")


def _body(path: str) -> bytes:
    """A .syn/.con file without its 3 header lines (the 2nd is rewritten at ingest)."""
    with open(path, "rb") as fh:
        return fh.read().split(b"\n", 3)[3]


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db(ingested):
    return simlake.DataBase(ingested["db"])


@pytest.fixture(scope="module")
def folder(ingested):
    """A new-era folder with network B and non-consecutive trial numbers."""
    return next(f for f in ingested["report"].folders
                if f.network_variant == "B" and f.trial_numbers != tuple(range(f.n_trials)))


# -- param files ---------------------------------------------------------------------------------


def _replace(tree, key_path: tuple, value):
    if not key_path:
        return value
    head, rest = key_path[0], key_path[1:]
    if isinstance(tree, (list, tuple)):
        items = list(tree)
        items[head] = _replace(items[head], rest, value)
        return type(tree)(items)
    return {**tree, head: _replace(tree[head], rest, value)}


def test_param_files_resolve_to_files_inside_the_database(db, ingested, tmp_path):
    root, raw, missing = db.basedir, ingested["raw"], ingested["missing"]
    meta = db["metadata"].set_index("sim_trial_index")
    seen_missing = 0
    for f in ingested["report"].folders:  # one trial per folder: every param file pair
        sti = f.sim_trial_indices()[0]
        neuron, network = simlake.load_param_files_from_db(db, sti)
        uid_dir = os.path.join(raw, *f.sim_run.split("/"))
        raw_neuron = ast.literal_eval(open(os.path.join(uid_dir, f"{f.uid}_neuron_model.param"))
                                      .read())
        raw_network = ast.literal_eval(open(os.path.join(uid_dir, f"{f.uid}_network_model.param"))
                                       .read())
        assert meta.loc[sti, "path"] == f.sim_run

        # neuron: the morphology and the recording sites
        hoc = neuron.neuron.filename
        assert hoc == neuron["neuron"]["filename"] == neuron["neuron.filename"]
        assert os.path.dirname(hoc) == os.path.join(root, "morphology") and os.path.isfile(hoc)
        assert _read(hoc) == _read(raw_neuron["neuron"]["filename"])
        expected = _replace(raw_neuron, ("neuron", "filename"), hoc)
        for i, (site, raw_site) in enumerate(zip(neuron.sim.recordingSites,
                                                 raw_neuron["sim"]["recordingSites"],
                                                 strict=True)):
            if raw_site == missing:  # deleted before ingest: reference kept, reported
                assert site == missing and not os.path.exists(site)
                seen_missing += 1
            else:
                assert os.path.dirname(site) == os.path.join(root, "recsites_folder")
                assert _read(site) == _read(raw_site)
                assert np.array_equal(read_landmarks(site), read_landmarks(raw_site))
            expected = _replace(expected, ("sim", "recordingSites", i), site)
        assert neuron.as_dict() == expected  # nothing else changed

        # network: .syn and .con of every cell type
        expected = raw_network
        for celltype, cfg in network.network.items():
            syn, con = cfg.synapses.distributionFile, cfg.synapses.connectionFile
            assert os.path.dirname(syn) == os.path.join(root, "syn_folder")
            assert os.path.dirname(con) == os.path.join(root, "con_folder")
            raw_cfg = raw_network["network"][celltype]["synapses"]
            assert os.path.basename(raw_cfg["connectionFile"]) == \
                f"L5tt_synth_{f.network_variant}.con"
            assert _body(syn) == _body(raw_cfg["distributionFile"])
            assert _body(con) == _body(raw_cfg["connectionFile"])
            # the .syn header names the database's copy of the morphology
            header_ref = _read(syn).split(b"\n")[1].decode().split(": ", 1)[1].strip()
            assert header_ref.startswith("reldb://")  # ISF's scheme, resolved as ISF does
            assert os.path.join(root, *header_ref.split("/")[2:]) == hoc
            base = ("network", celltype, "synapses")
            expected = _replace(expected, base + ("distributionFile",), syn)
            expected = _replace(expected, base + ("connectionFile",), con)
        assert network.as_dict() == expected

        # save() writes the same dict literal back
        neuron.save(str(tmp_path / "neuron.param"))
        assert Params.from_file(str(tmp_path / "neuron.param")) == neuron
    assert seen_missing == len(ingested["report"].folders)  # all neuron files reference it


def test_unknown_trial_is_a_key_error(db):
    with pytest.raises(KeyError, match="no-such-folder/000000"):
        simlake.load_param_files_from_db(db, "no-such-folder/000000")


# -- cell and evoked network ---------------------------------------------------------------------


def test_cell_and_network_of_every_trial_match_the_raw_files(db, ingested, folder):
    raw = ingested["raw"]
    hoc_names = raw_sections(anatomy(raw, "L5tt_synth.hoc"))
    syn = raw_syn(anatomy(raw, "L5tt_synth.syn"))
    con = raw_con(anatomy(raw, f"L5tt_synth_{folder.network_variant}.con"))
    n_active = 0
    for trialnr, sti in zip(folder.trial_numbers, folder.sim_trial_indices(), strict=True):
        cell, net = simlake.load_initialized_cell_and_evokedNW_from_db(db, sti)
        acts = raw_synapse_activations(trial_file(raw, folder, trialnr, "synapses"))
        spikes = raw_cell_spikes(trial_file(raw, folder, trialnr, "presynaptic_cells"))

        assert [s.name for s in cell.sections] == hoc_names
        assert cell.soma is not None and cell.soma.id == hoc_names.index("soma")
        assert net.sim_trial_index == sti and list(net) == list(syn)
        for celltype, group in net.items():
            assert list(zip(group.section_id.tolist(), group.x.tolist(), strict=True)) == \
                syn[celltype]
            assert group.presynaptic_cell_id.tolist() == [con[celltype, i]
                                                          for i in range(len(group))]
            for syn_id, times in enumerate(group.activation_times):
                dist, sec, pt, label, raw_times = acts[celltype, syn_id]
                assert times.tolist() == raw_times, (sti, celltype, syn_id)
                # coherent tree: a synapse fires when its presynaptic cell spikes
                assert raw_times == spikes[celltype, con[celltype, syn_id]]
                # the stored location is the .syn location on the hoc
                assert sec == group.section_id[syn_id]
                assert cell.x_of_pt(sec, pt) == pytest.approx(group.x[syn_id], abs=1e-12)
                assert cell.distance_to_soma(sec, group.x[syn_id]) == pytest.approx(dist,
                                                                                   abs=1e-6)
                assert cell.sections[sec].label == label
            assert {k: v.tolist() for k, v in group.presynaptic_spike_times.items()} == \
                {cid: t for (ct, cid), t in spikes.items() if ct == celltype}
            n_active += len(group.active_synapse_ids)

        report = check_consistency(cell, net)
        assert report.ok, str(report)
        assert report.n_checked == len(acts)
        assert report.max_distance_deviation < 1e-6 and report.max_pt_deviation < 1e-6
        assert report.label_mismatches == 0
        # the bare-frame variant of the check agrees
        assert check_consistency(cell, net.synapse_activation).ok
    assert n_active > 0  # the trials are not silent


def test_consistency_holds_for_every_trial_of_the_database(db):
    for sti in db["sim_trial_index"]:
        cell, net = simlake.load_initialized_cell_and_evokedNW_from_db(db, sti)
        report = check_consistency(cell, net)
        assert report.ok, (sti, str(report))


def test_database_with_a_foreign_morphology_fails_the_check(db, folder, tmp_path):
    """Same topology (section names and count), different geometry: the stored soma distances
    no longer fit, although every section and point ID exists."""
    copy = tmp_path / "db"
    shutil.copytree(db.basedir, copy)
    sti = folder.sim_trial_indices()[0]
    hoc = simlake.load_param_files_from_db(db, sti)[0].neuron.filename
    foreign = synth.make_morphology(np.random.default_rng(12345))
    (copy / "morphology" / os.path.basename(hoc)).write_text(foreign.hoc())

    cell, net = simlake.load_initialized_cell_and_evokedNW_from_db(simlake.DataBase(copy), sti)
    assert cell.source.startswith(str(copy))
    report = check_consistency(cell, net)
    assert not report.ok
    assert report.n_out_of_range == 0 and report.n_section_mismatch == 0
    assert report.max_distance_deviation > 1.0  # µm
    worst = report.worst
    true = foreign.soma_distance(int(worst["section_ID"]), float(
        net[worst["synapse_type"]].x[int(worst["synapse_ID"])]))
    assert abs(worst["soma_distance"] - true) == pytest.approx(report.max_distance_deviation)
    # the original database is untouched and still consistent
    assert check_consistency(*simlake.load_initialized_cell_and_evokedNW_from_db(db, sti)).ok


def test_activations_of_another_trial_with_shifted_distances_fail_the_check(db, folder):
    sti, other = folder.sim_trial_indices()[:2]
    cell, net = simlake.load_initialized_cell_and_evokedNW_from_db(db, sti)
    _, network_params = simlake.load_param_files_from_db(db, sti)
    rows = trial_rows(db, "synapse_activation", other)
    assert check_consistency(cell, build_network(network_params, rows)).ok  # same anatomy

    shifted = rows.assign(soma_distance=rows["soma_distance"] + 2.5)
    for target in (build_network(network_params, shifted), shifted):
        report = check_consistency(cell, target)
        assert not report.ok
        assert report.max_distance_deviation == pytest.approx(2.5, abs=1e-6)
        assert np.allclose(report.details["distance_deviation"], 2.5, atol=1e-6)

    # rows of a network whose synapse IDs are numbered differently (IDs rotated by one)
    n_per_type = {ct: len(g) for ct, g in net.items()}
    rotated = rows.assign(synapse_ID=[(i + 1) % n_per_type[ct] for ct, i in
                                      zip(rows["synapse_type"], rows["synapse_ID"], strict=True)])
    report = check_consistency(cell, build_network(network_params, rotated))
    assert not report.ok
    assert report.n_section_mismatch > 0 or report.max_pt_deviation > 0.01


def test_without_reconnect_synapses_there_is_no_activity(db, folder):
    sti = folder.sim_trial_indices()[0]
    cell, evoked = simlake.load_initialized_cell_and_evokedNW_from_db(db, sti)
    cell0, anatomical = simlake.load_initialized_cell_and_evokedNW_from_db(
        db, sti, reconnect_synapses=False)
    assert np.array_equal(cell0.points, cell.points) and len(cell0) == len(cell)
    assert anatomical.synapse_activation is None and anatomical.cell_activation is None
    assert list(anatomical) == list(evoked)
    for celltype, group in anatomical.items():
        assert group.activation_times is None and group.presynaptic_spike_times is None
        assert len(group.active_synapse_ids) == 0
        assert np.array_equal(group.section_id, evoked[celltype].section_id)
        assert np.array_equal(group.x, evoked[celltype].x)
        assert np.array_equal(group.presynaptic_cell_id, evoked[celltype].presynaptic_cell_id)
    assert sum(len(g.active_synapse_ids) for g in evoked.values()) > 0
    with pytest.raises(ValueError, match="reconnect_synapses=True"):
        check_consistency(cell0, anatomical)


def test_trial_rows_are_one_trial_in_file_order(db, ingested, folder):
    trialnr, sti = folder.trial_numbers[-1], folder.sim_trial_indices()[-1]
    rows = trial_rows(db, "synapse_activation", sti)
    assert isinstance(rows, pd.DataFrame) and set(rows.index) == {sti}
    acts = raw_synapse_activations(trial_file(ingested["raw"], folder, trialnr, "synapses"))
    assert list(zip(rows["synapse_type"], rows["synapse_ID"], strict=True)) == list(acts)
    assert trial_rows(db, "cell_activation", "no-such-folder/000000").empty

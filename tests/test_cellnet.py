"""Cell and network loading from a database, without NEURON (issue 7)."""

from __future__ import annotations

import math
import os
import pickle

import numpy as np
import pytest

from cellnet_data import (
    ACTIVATIONS,
    CONNECTIONS,
    LABELS,
    SECTIONS,
    SPIKES,
    STI_BAD,
    STI_OK,
    SYNAPSES,
    activation_frames,
    arc_x,
    build_db,
    hoc_text,
    lengths,
    soma_distance,
)
from simlake.cellnet import (
    check_consistency,
    load_initialized_cell_and_evokedNW_from_db,
    load_param_files_from_db,
)
from simlake.errors import SimrunFormatError
from simlake.morphology import parse_hoc_text, read_hoc, read_landmarks, section_label
from simlake.network import read_con, read_syn
from simlake.paramfiles import parse_param_file
from simlake.params import Params


@pytest.fixture()
def db(tmp_path):
    database, _ = build_db(tmp_path)
    return database


# -- morphology --------------------------------------------------------------------------------


def test_hoc_sections_parents_lengths():
    cell = parse_hoc_text(hoc_text(), "t.hoc")
    assert [s.name for s in cell.sections] == [s[0] for s in SECTIONS]
    assert [s.id for s in cell.sections] == list(range(len(SECTIONS)))
    assert [s.label for s in cell.sections] == LABELS
    names = [s[0] for s in SECTIONS]
    assert [s.parent_id for s in cell.sections] == [
        None if p is None else names.index(p) for _, p, _, _ in SECTIONS]
    assert [s.parent_x for s in cell.sections] == [px for _, _, px, _ in SECTIONS]
    assert np.allclose([s.length for s in cell.sections], lengths(), rtol=0, atol=1e-12)
    for sec, (_, _, _, pts) in zip(cell.sections, SECTIONS, strict=True):
        # pt3dclear dropped the stray point added to dend_1 before it
        assert sec.points.tolist() == [list(p[:3]) for p in pts]
        assert sec.diameters.tolist() == [p[3] for p in pts]


def test_distance_to_soma_matches_independent_recursion():
    cell = parse_hoc_text(hoc_text(), "t.hoc")
    for sid, (_, _, _, pts) in enumerate(SECTIONS):
        for pt in range(len(pts)):
            x = arc_x(SECTIONS, sid, pt)
            assert cell.x_of_pt(sid, pt) == pytest.approx(x, abs=1e-12)
            want = soma_distance(SECTIONS, sid, x)
            assert cell.distance_to_soma(sid, x) == pytest.approx(want, abs=1e-9)
            assert cell.distance_to_soma_pt(sid, pt) == pytest.approx(want, abs=1e-9)
    # by hand: apical_1_0 hangs at apical_1(0.5): 50 + x * 35; dend_1_0 at dend_1(1): 62 + x * 50
    assert cell.distance_to_soma(4, 1.0) == pytest.approx(85.0)
    assert cell.distance_to_soma(2, 0.5) == pytest.approx(87.0)
    assert cell.distance_to_soma(0, 0.7) == 0.0
    got = cell.distance_to_soma(np.array([1, 3]), np.array([0.5, 0.25]))
    assert np.allclose(got, [31.0, 25.0])
    assert cell.nearest_pt(3, 0.41) == 2 and cell.nearest_pt(1, 0.0) == 0


def test_hoc_parse_is_vectorised_enough_for_real_sizes():
    lines = ["{create soma}", "{access soma}", "{pt3dclear()}", "{pt3dadd(0,0,0,10)}",
             "{pt3dadd(0,10,0,10)}"]
    for s in range(200):
        lines += [f"{{create dend_{s}}}", f"{{connect dend_{s}(0), soma(1.000000)}}",
                  f"{{access dend_{s}}}", "{nseg = 1}", "{pt3dclear()}"]
        lines += [f"{{pt3dadd({i * 0.5:.6f},{s:.6f},{i * 0.1:.6f},1.250000)}}" for i in range(70)]
    cell = parse_hoc_text("\n".join(lines), "big.hoc")
    assert len(cell.pt_section) == 2 + 200 * 70
    assert cell.sections[200].length == pytest.approx(69 * math.hypot(0.5, 0.1))


@pytest.mark.parametrize("text, reason", [
    ("{pt3dadd(0,0,0,1)}", "no create"),
    ("{create a}\n{access b}", "before its create"),
    ("{create a}\n{create a}", "created twice"),
    ("{create a}\n{connect a(0), b(1)}", "unknown section"),
    ("{create a}\n{create b}\n{connect a(0), b(1)}\n{connect b(0), a(1)}", "cycle"),
])
def test_hoc_errors(text, reason):
    with pytest.raises(SimrunFormatError, match=reason):
        parse_hoc_text(text, "bad.hoc")


def test_section_labels():
    assert [section_label(n) for n in ("soma", "dend_3_1", "apical_0", "axon_0_0", "AIS",
                                       "myelin_2", "tuft_4")] == [
        "Soma", "Dendrite", "ApicalDendrite", "Axon", "AIS", "Myelin", "tuft"]


def test_landmarks(tmp_path):
    path = tmp_path / "l.landmarkAscii"
    path.write_text("# AmiraMesh\n@1 in header? no\n\n@1\n1.5 2.5 3.5\n-4 5 6e1\n\n")
    assert read_landmarks(str(path)).tolist() == [[1.5, 2.5, 3.5], [-4.0, 5.0, 60.0]]


# -- .syn / .con -------------------------------------------------------------------------------


def test_syn_and_con_files(tmp_path):
    from cellnet_data import write_sources
    paths = write_sources(str(tmp_path))
    syn = read_syn(paths["syn"])
    assert syn.cell_name == paths["hoc"]
    l2 = syn.of_type("L2")
    want = [(sid, arc_x(SECTIONS, sid, pt)) for t, sid, pt in SYNAPSES if t == "L2"]
    assert list(l2.index) == [0, 1, 2]
    assert list(zip(l2["section_ID"], l2["section_x"], strict=True)) == want
    con = read_con(paths["con"])
    assert con.syn_reference == "cell.syn"
    assert list(con.frame.itertuples(index=False, name=None)) == CONNECTIONS


# -- params ------------------------------------------------------------------------------------


def test_params_attribute_access_save_and_reload(tmp_path):
    p = Params({"neuron": {"filename": "a.hoc", "Soma": {"properties": {"cm": 1.0}}},
                "sim": {"recordingSites": ["x", "y"], "window": (1.0, 2.0), "one": (3,),
                        "inf": float("inf"), "none": None, "flag": True},
                "items": 5})
    assert p.neuron.filename == "a.hoc"
    assert p.sim.recordingSites == ["x", "y"]
    assert p["sim.window"] == (1.0, 2.0)
    assert p["items"] == 5  # a dict method name: item access
    p.sim.tStop = 250.0
    assert p["sim"]["tStop"] == 250.0
    with pytest.raises(AttributeError, match="no parameter 'nothing'"):
        _ = p.nothing
    path = tmp_path / "saved.param"
    p.save(str(path))
    again = parse_param_file(str(path))
    assert again == p.as_dict()
    assert isinstance(again["sim"]["one"], tuple)
    assert Params.from_file(str(path)) == p
    assert pickle.loads(pickle.dumps(p)) == p


def test_load_param_files_from_db(db):
    neuron, network = load_param_files_from_db(db, STI_OK)
    root = os.path.abspath(db.basedir) + os.sep
    assert neuron.neuron.filename.startswith(root + "morphology" + os.sep)
    assert neuron.neuron.filename.endswith("_cell.hoc")
    assert all(s.startswith(root + "recsites_folder") for s in neuron.sim.recordingSites)
    assert neuron.sim.window == (0.0, 150.0)
    for cfg in network.network.values():
        assert os.path.isfile(cfg.synapses.distributionFile)
        assert os.path.isfile(cfg.synapses.connectionFile)
    bad_neuron, _ = load_param_files_from_db(db, STI_BAD)
    assert bad_neuron.neuron.filename.endswith("_other.hoc")
    with pytest.raises(KeyError):
        load_param_files_from_db(db, "run/nope/000000")


# -- cell + network ----------------------------------------------------------------------------


def test_load_cell_and_evoked_network(db):
    cell, net = load_initialized_cell_and_evokedNW_from_db(db, STI_OK)
    assert [s.name for s in cell.sections] == [s[0] for s in SECTIONS]
    assert cell.params.sim.tStop == 150.0
    assert sorted(net) == ["L2", "VPM"]
    for celltype in ("L2", "VPM"):
        group = net[celltype]
        want = [(sid, arc_x(SECTIONS, sid, pt)) for t, sid, pt in SYNAPSES if t == celltype]
        assert list(zip(group.section_id, group.x, strict=True)) == want
        assert group.presynaptic_cell_id.tolist() == [c for t, c, _ in CONNECTIONS
                                                      if t == celltype]
        for syn_id, times in enumerate(group.activation_times):
            assert times.tolist() == ACTIVATIONS.get((celltype, syn_id), [])
        assert {k: v.tolist() for k, v in group.presynaptic_spike_times.items()} == {
            cid: t for (t_, cid), t in SPIKES.items() if t_ == celltype}
    assert net["VPM"].active_synapse_ids.tolist() == [1]
    assert net.unmatched == []

    _, anatomical = load_initialized_cell_and_evokedNW_from_db(db, STI_OK,
                                                               reconnect_synapses=False)
    assert anatomical["L2"].activation_times is None
    assert anatomical.synapse_activation is None
    with pytest.raises(ValueError, match="reconnect_synapses"):
        check_consistency(cell, anatomical)


def test_consistency_passes_on_a_consistent_pair(db):
    cell, net = load_initialized_cell_and_evokedNW_from_db(db, STI_OK)
    report = check_consistency(cell, net)
    assert report.ok, str(report)
    assert report.n_checked == len(ACTIVATIONS)
    assert report.max_distance_deviation < 1e-9
    assert check_consistency(cell, net.synapse_activation).ok


def test_consistency_fails_on_a_mismatched_pair(db):
    # trial 1's neuron param names another morphology (dend_1 twice as long)
    cell, net = load_initialized_cell_and_evokedNW_from_db(db, STI_BAD)
    report = check_consistency(cell, net)
    assert not report.ok
    # L2 synapse 0: .syn x = 50/62 on dend_1, stored 50 um; the other dend_1 is 112 um long
    assert report.max_distance_deviation == pytest.approx(112 * 50 / 62 - 50)
    assert report.max_pt_deviation == pytest.approx(abs(112 * 50 / 62 - 100))
    assert report.worst["synapse_type"] == "L2" and report.worst["synapse_ID"] == 0
    # from the frame alone: stored pt 1 of dend_1 lies 100 um from the soma on the other hoc
    frame_only = check_consistency(cell, net.synapse_activation)
    assert not frame_only.ok and frame_only.max_distance_deviation == pytest.approx(50.0)
    assert "INCONSISTENT" in str(report)


def test_consistency_catches_shifted_distances_and_bad_ids(db, tmp_path):
    cell, net = load_initialized_cell_and_evokedNW_from_db(db, STI_OK)
    shifted, _ = activation_frames(STI_OK, shift=0.5)
    report = check_consistency(cell, shifted)
    assert not report.ok and report.max_distance_deviation == pytest.approx(0.5)
    assert check_consistency(cell, shifted, tolerance=0.6).ok
    bad = net.synapse_activation.copy()
    bad.iloc[0, bad.columns.get_loc("section_pt_ID")] = 99
    assert check_consistency(cell, bad).n_out_of_range == 1
    other = net.synapse_activation.copy()
    other.iloc[0, other.columns.get_loc("synapse_ID")] = 1  # L2 #1 sits on section 2
    net.synapse_activation = other
    report = check_consistency(cell, net)
    assert report.n_section_mismatch == 1 and not report.ok


def test_read_hoc_from_file(tmp_path):
    path = tmp_path / "c.hoc"
    path.write_text(hoc_text())
    assert len(read_hoc(str(path)).sections) == len(SECTIONS)

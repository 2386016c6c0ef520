"""Discovery: the pure folder classifier and the tree walker (no Spark)."""

from __future__ import annotations

import os

import pytest

from simlake.discovery import FileStat, SimRunFolder, classify_folder, discover

OLD = "20150815-1530_20240"
NEW = "20250101-1553_seed123456_pid7896"
LABEL = "apical_proximal_distal_rec_sites_ID_000_sec_038_seg_032_x_0.929_somaDist_920.7"


def listing(*names: str) -> dict[str, FileStat]:
    """A listing with distinct sizes, so a wrong name/stat pairing shows."""
    return {n: FileStat(size=100 + i, mtime_ns=1_000 + i) for i, n in enumerate(names)}


def complete(uid: str, trials=(0, 1, 2), width: int = 4, *extra: str) -> dict[str, FileStat]:
    names = [f"{uid}_vm_all_traces.csv", f"{uid}_neuron_model.param", f"{uid}_network_model.param"]
    for nr in trials:
        names += [f"simulation_run{nr:0{width}d}_synapses.csv",
                  f"simulation_run{nr:0{width}d}_presynaptic_cells.csv"]
    return listing(*names, *extra)


# --------------------------------------------------------------------------- classify_folder


def test_old_era_folder():
    entries = complete("20240", (0, 1, 2), 4, f"20240_{LABEL}_vm_dend_traces.csv")
    f = classify_folder(f"results/{OLD}", f"/data/results/{OLD}", entries)
    assert isinstance(f, SimRunFolder)
    assert (f.uid, f.era) == ("20240", "old")
    assert f.voltage_file == "20240_vm_all_traces.csv" and f.voltage_format == "csv"
    assert f.synapse_files == {0: "simulation_run0000_synapses.csv",
                               1: "simulation_run0001_synapses.csv",
                               2: "simulation_run0002_synapses.csv"}
    assert f.cell_files[2] == "simulation_run0002_presynaptic_cells.csv"
    assert f.dendritic_files == {LABEL: f"20240_{LABEL}_vm_dend_traces.csv"}
    assert f.neuron_param == "20240_neuron_model.param"
    assert f.network_param == "20240_network_model.param"
    assert f.trialnrs == (0, 1, 2)
    assert f.problems == () and f.ignored == ()
    assert set(f.files) == set(entries)
    assert f.files == entries
    assert f.total_bytes == sum(s.size for s in entries.values())
    assert f.sim_trial_index(2) == f"results/{OLD}/000002"
    assert f.path_of(f.voltage_file) == f"/data/results/{OLD}/20240_vm_all_traces.csv"


def test_new_era_folder_six_digit_padding_non_consecutive_trials():
    uid = "seed123456_pid7896"
    entries = complete(uid, (7, 3, 120), 6, f"{uid}_{LABEL}_vm_dend_traces.csv",
                       f"{uid}_soma_vm_dend_traces.csv")
    f = classify_folder(NEW, f"/x/{NEW}", entries)
    assert (f.uid, f.era) == (uid, "new")
    assert f.voltage_file == f"{uid}_vm_all_traces.csv"
    assert f.trialnrs == (3, 7, 120)
    assert f.synapse_files == {3: "simulation_run000003_synapses.csv",
                               7: "simulation_run000007_synapses.csv",
                               120: "simulation_run000120_synapses.csv"}
    assert f.dendritic_files == {LABEL: f"{uid}_{LABEL}_vm_dend_traces.csv",
                                 "soma": f"{uid}_soma_vm_dend_traces.csv"}
    assert f.sim_trial_index(120) == f"{NEW}/000120"
    assert f.problems == ()


def test_mixed_padding_widths_read_the_number():
    entries = listing("20240_vm_all_traces.csv", "20240_neuron_model.param",
                      "20240_network_model.param",
                      "simulation_run0009_synapses.csv", "simulation_run000010_synapses.csv",
                      "simulation_run9_presynaptic_cells.csv",
                      "simulation_run10_presynaptic_cells.csv")
    f = classify_folder(OLD, f"/r/{OLD}", entries)
    assert f.trialnrs == (9, 10)
    assert f.cell_files == {9: "simulation_run9_presynaptic_cells.csv",
                            10: "simulation_run10_presynaptic_cells.csv"}
    assert f.problems == ()


def test_npz_only_where_no_csv():
    base = ("20240_neuron_model.param", "20240_network_model.param")
    only_npz = classify_folder(OLD, f"/r/{OLD}", listing("20240_vm_all_traces.npz", *base))
    assert only_npz.voltage_file == "20240_vm_all_traces.npz"
    assert only_npz.voltage_format == "npz"
    assert only_npz.trialnrs is None  # no synapse files: column i is trial i
    assert "20240_vm_all_traces.npz" in only_npz.files

    both = classify_folder(OLD, f"/r/{OLD}", listing("20240_vm_all_traces.npz",
                                                     "20240_vm_all_traces.csv", *base))
    assert both.voltage_file == "20240_vm_all_traces.csv" and both.voltage_format == "csv"
    assert "20240_vm_all_traces.npz" not in both.files
    assert both.ignored == ("20240_vm_all_traces.npz",)


def test_seed_pid_dendritic_prefix_of_old_runs():
    entries = complete("20240", (0,), 4, f"seed_20240_{LABEL}_vm_dend_traces.csv")
    f = classify_folder(OLD, f"/r/{OLD}", entries)
    assert f.dendritic_files == {LABEL: f"seed_20240_{LABEL}_vm_dend_traces.csv"}
    assert f.problems == ()


def test_same_label_under_both_prefixes_is_a_duplicate():
    entries = complete("20240", (0,), 4, f"seed_20240_{LABEL}_vm_dend_traces.csv",
                       f"20240_{LABEL}_vm_dend_traces.csv")
    f = classify_folder(OLD, f"/r/{OLD}", entries)
    assert f.dendritic_files == {}
    assert len(f.problems) == 2
    assert all("duplicate recording site" in reason for _, reason in f.problems)


def test_leftovers_and_foreign_files_are_ignored():
    leftovers = ("hostname_node042", "20240_neuron_model.param.TEMPLATE",
                 "20240_network_model.param.old", "notes.txt",
                 "simulation_run0001_synapses.csv.bak",
                 "99999_vm_all_traces.csv.gz", "simulation_runX_synapses.csv",
                 "20240_vm_dend_traces.csv")  # dendritic file with an empty label
    f = classify_folder(OLD, f"/r/{OLD}", complete("20240", (0, 1), 4, *leftovers))
    assert f.ignored == tuple(sorted(leftovers))
    assert not set(leftovers) & set(f.files)
    assert f.problems == ()
    assert f.dendritic_files == {}


def test_duplicate_trial_numbers_keep_neither_report_both():
    entries = complete("20240", (1, 2, 3), 4, "simulation_run000003_synapses.csv")
    f = classify_folder(OLD, f"/r/{OLD}", entries)
    assert 3 not in f.synapse_files
    assert f.synapse_files == {1: "simulation_run0001_synapses.csv",
                               2: "simulation_run0002_synapses.csv"}
    # trial 3 still owns its voltage column: the column count stays right
    assert f.trialnrs == (1, 2, 3)
    assert f.cell_files[3] == "simulation_run0003_presynaptic_cells.csv"
    paths = sorted(p for p, _ in f.problems)
    assert paths == [f"/r/{OLD}/simulation_run000003_synapses.csv",
                     f"/r/{OLD}/simulation_run0003_synapses.csv"]
    assert all("duplicate trial number 3" in reason for _, reason in f.problems)
    assert "simulation_run0003_synapses.csv" not in f.files
    assert "simulation_run0003_synapses.csv" not in f.ignored


def test_missing_voltage_file_is_a_problem():
    entries = listing("20240_neuron_model.param", "20240_network_model.param",
                      "simulation_run0000_synapses.csv", "simulation_run0000_presynaptic_cells.csv",
                      "12345_vm_all_traces.csv")
    f = classify_folder(OLD, f"/r/{OLD}", entries)
    assert f.voltage_file is None and f.voltage_format is None
    assert len(f.problems) == 1
    path, reason = f.problems[0]
    assert path == f"/r/{OLD}"
    assert "no voltage file 20240_vm_all_traces.csv" in reason
    assert "12345_vm_all_traces.csv" in reason  # the wrongly prefixed candidate is named
    assert f.ignored == ("12345_vm_all_traces.csv",)


def test_partner_files_missing():
    entries = listing("20240_vm_all_traces.csv", "20240_neuron_model.param",
                      "20240_network_model.param",
                      "simulation_run0000_synapses.csv", "simulation_run0000_presynaptic_cells.csv",
                      "simulation_run0001_synapses.csv",  # no cells partner
                      "simulation_run0002_presynaptic_cells.csv")  # no synapse partner
    f = classify_folder(OLD, f"/r/{OLD}", entries)
    assert f.trialnrs == (0, 1)
    assert f.synapse_files == {0: "simulation_run0000_synapses.csv",
                               1: "simulation_run0001_synapses.csv"}
    assert f.cell_files == {0: "simulation_run0000_presynaptic_cells.csv"}
    problems = dict(f.problems)
    assert "no presynaptic-cell file" in problems[f"/r/{OLD}/simulation_run0001_synapses.csv"]
    assert "no synapse file" in problems[f"/r/{OLD}/simulation_run0002_presynaptic_cells.csv"]
    assert len(f.problems) == 2


def test_missing_parameter_files_are_problems():
    entries = listing("20240_vm_all_traces.csv", "20240_neuron_model.param.TEMPLATE")
    f = classify_folder(OLD, f"/r/{OLD}", entries)
    assert f.neuron_param is None and f.network_param is None
    reasons = [r for _, r in f.problems]
    assert reasons == ["no neuron parameter file 20240_neuron_model.param",
                       "no network parameter file 20240_network_model.param"]


def test_classify_rejects_non_sim_run_names():
    with pytest.raises(ValueError, match="not a sim-run folder"):
        classify_folder("results/not_a_run", "/r/results/not_a_run", {})
    with pytest.raises(ValueError):
        classify_folder(f"{OLD}_running", f"/r/{OLD}_running", {})


# --------------------------------------------------------------------------- discover


def make_folder(base, rel: str, uid: str, trials=(0, 1), width: int = 4, extra=()) -> None:
    d = base / rel
    d.mkdir(parents=True)
    for name in complete(uid, trials, width, *extra):
        (d / name).write_bytes(b"x" * (len(name) % 7))


def test_discover_nested_depths_and_running(tmp_path):
    make_folder(tmp_path, OLD, "20240")
    make_folder(tmp_path, f"a/b/c/{NEW}", "seed123456_pid7896", (5, 9), 6)
    make_folder(tmp_path, "a/20160101-0000_1_running", "1")
    make_folder(tmp_path, "a/20160101-0000_1_running/deeper/20160101-0000_2", "2")
    make_folder(tmp_path, "plain_running/20170101-0000_3", "3")  # any *_running folder
    (tmp_path / "a" / "b" / "empty").mkdir()

    tree = discover(str(tmp_path))
    assert tree.root == str(tmp_path)
    assert [f.sim_run for f in tree.folders] == [OLD, f"a/b/c/{NEW}"]
    assert tree.skipped_running == ("a/20160101-0000_1_running", "plain_running")
    assert tree.problems == ()
    assert tree.n_folders == 2
    new = tree.folder(f"a/b/c/{NEW}")
    assert new.abspath == str(tmp_path / "a" / "b" / "c" / NEW)
    assert new.trialnrs == (5, 9) and new.era == "new"
    st = os.stat(tmp_path / "a" / "b" / "c" / NEW / "simulation_run000005_synapses.csv")
    assert new.files["simulation_run000005_synapses.csv"] == FileStat(st.st_size, st.st_mtime_ns)
    assert tree.total_bytes == sum(f.total_bytes for f in tree.folders)
    assert tree.n_trial_files == 8


def test_discover_order_matches_sim_trial_index_order(tmp_path):
    # "<run>.old/..." sorts before "<run>/..." once the separator is counted ('.' < '/')
    outer = "x/20150815-1530_1"
    inner = "x/20150815-1530_1.old/20150815-1530_2"
    make_folder(tmp_path, outer, "1")
    make_folder(tmp_path, inner, "2")
    make_folder(tmp_path, "x/20150815-1530_1-b/20150815-1530_3", "3")
    tree = discover(str(tmp_path))
    runs = [f.sim_run for f in tree.folders]
    keys = [f.sim_trial_index(0) for f in tree.folders]
    assert keys == sorted(keys)
    assert runs == ["x/20150815-1530_1-b/20150815-1530_3", inner, outer]
    assert runs != sorted(runs)  # plain sorting by sim_run would disagree


def test_discover_sim_run_inside_sim_run(tmp_path):
    make_folder(tmp_path, OLD, "20240")
    make_folder(tmp_path, f"{OLD}/sub/20150815-1531_7", "7")
    tree = discover(str(tmp_path))
    assert [f.sim_run for f in tree.folders] == [OLD, f"{OLD}/sub/20150815-1531_7"]


def test_discover_reports_ignored_and_problems_per_folder(tmp_path):
    make_folder(tmp_path, OLD, "20240", (0, 1, 2), 4,
                extra=("hostname_node1", "20240_network_model.param.old",
                       "simulation_run000002_synapses.csv"))
    tree = discover(str(tmp_path))
    (f,) = tree.folders
    assert f.ignored == ("20240_network_model.param.old", "hostname_node1")
    assert {os.path.basename(p) for p, _ in f.problems} == {
        "simulation_run0002_synapses.csv", "simulation_run000002_synapses.csv"}
    assert tree.n_problems == 2


def test_discover_symlink_loop_and_duplicates(tmp_path):
    root = tmp_path / "root"
    make_folder(root, f"a/{OLD}", "20240")
    os.symlink(root, root / "a" / "loop_to_root")
    os.symlink(root / "a", root / "a" / "loop_to_parent")
    outside = tmp_path / "elsewhere"
    make_folder(outside, "20180101-0000_77", "77")
    os.symlink(outside, root / "link1")
    os.symlink(outside, root / "link2")
    os.symlink(root / "a" / OLD, root / "alias_of_real")  # a real folder reached twice

    tree = discover(str(root))
    assert [f.sim_run for f in tree.folders] == [f"a/{OLD}", "link1/20180101-0000_77"]
    problems = dict(tree.problems)
    assert "symlink loop" in problems[str(root / "a" / "loop_to_root")]
    assert "symlink loop" in problems[str(root / "a" / "loop_to_parent")]
    assert "already walked as 'link1'" in problems[str(root / "link2")]
    assert f"already walked as 'a/{OLD}'" in problems[str(root / "alias_of_real")]
    assert len(tree.problems) == 4


def test_discover_follows_symlinked_sim_run_folder(tmp_path):
    store = tmp_path / "store"
    make_folder(store, "20190101-0000_5", "5")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(store / "20190101-0000_5", root / "20190101-0000_5")
    tree = discover(str(root))
    (f,) = tree.folders
    assert f.sim_run == "20190101-0000_5"
    assert f.abspath == str(root / "20190101-0000_5")
    assert f.trialnrs == (0, 1)


def test_discover_unreadable_directory_is_reported_not_fatal(tmp_path, monkeypatch):
    make_folder(tmp_path, OLD, "20240")
    make_folder(tmp_path, "locked/20150815-1531_2", "2")
    locked = str(tmp_path / "locked")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    tree = discover(str(tmp_path))
    assert [f.sim_run for f in tree.folders] == [OLD]
    assert tree.problems == ((locked, "cannot list directory: Permission denied"),)


def test_discover_broken_symlink_in_folder(tmp_path):
    make_folder(tmp_path, OLD, "20240")
    os.symlink(tmp_path / "nowhere", tmp_path / OLD / "simulation_run0005_synapses.csv")
    tree = discover(str(tmp_path))
    (f,) = tree.folders
    assert 5 not in f.synapse_files
    assert tree.problems[0][0] == str(tmp_path / OLD / "simulation_run0005_synapses.csv")
    assert "cannot stat" in tree.problems[0][1]


def test_discover_voltage_file_outside_sim_run_folder(tmp_path):
    make_folder(tmp_path, OLD, "20240")
    stray = tmp_path / "renamed_run"
    stray.mkdir()
    (stray / "4242_vm_all_traces.csv").write_text("t\tVm run 00\n")
    tree = discover(str(tmp_path))
    assert [f.sim_run for f in tree.folders] == [OLD]
    ((path, reason),) = tree.problems
    assert path == str(stray / "4242_vm_all_traces.csv")
    assert "outside a sim-run folder" in reason


def test_discover_root_that_is_itself_a_sim_run(tmp_path):
    make_folder(tmp_path, OLD, "20240")
    tree = discover(str(tmp_path / OLD))
    assert tree.folders == ()
    assert "root itself is a sim-run folder" in tree.problems[0][1]


def test_discover_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError):
        discover(str(tmp_path / "nope"))
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        discover(str(tmp_path / "file"))

"""Discovery of entries that carry a data-file name but are not readable files (no JVM)."""

from __future__ import annotations

import os

from simlake.discovery import FileStat, classify_folder, discover

OLD = "20150815-1530_20240"


def _listing(*names: str) -> dict[str, FileStat]:
    return {n: FileStat(10, 1) for n in names}


def _complete(trials=(0, 1, 2)) -> list[str]:
    names = ["20240_vm_all_traces.csv", "20240_neuron_model.param", "20240_network_model.param"]
    for nr in trials:
        names += [f"simulation_run{nr:04d}_synapses.csv",
                  f"simulation_run{nr:04d}_presynaptic_cells.csv"]
    return names


def test_unreadable_trial_file_keeps_its_voltage_column():
    names = _complete()
    names.remove("simulation_run0001_synapses.csv")
    f = classify_folder(OLD, f"/r/{OLD}", _listing(*names),
                        {"simulation_run0001_synapses.csv": "not a regular file (a FIFO)"})
    assert f.trialnrs == (0, 1, 2)  # column 1 still belongs to trial 1
    assert sorted(f.synapse_files) == [0, 2] and sorted(f.cell_files) == [0, 1, 2]
    assert f.problems == ((f"/r/{OLD}/simulation_run0001_synapses.csv",
                           "not a regular file (a FIFO)"),)
    assert "simulation_run0001_synapses.csv" not in f.files


def test_discover_reports_fifo_and_directory_named_like_data_files(tmp_path):
    folder = tmp_path / "results" / OLD
    folder.mkdir(parents=True)
    for name in _complete():
        (folder / name).write_text("x")
    os.unlink(folder / "simulation_run0002_presynaptic_cells.csv")
    os.mkfifo(folder / "simulation_run0002_presynaptic_cells.csv")
    os.unlink(folder / "simulation_run0001_synapses.csv")
    (folder / "simulation_run0001_synapses.csv").mkdir()
    (folder / "simulation_run0001_synapses.csv" / OLD).mkdir()  # never walked into
    os.mkfifo(folder / "some_pipe")  # not a data-file name: ignored
    tree = discover(str(tmp_path))
    assert [f.sim_run for f in tree.folders] == [f"results/{OLD}"]
    f = tree.folders[0]
    assert f.trialnrs == (0, 1, 2)
    assert sorted(f.synapse_files) == [0, 2] and sorted(f.cell_files) == [0, 1]
    assert dict(f.problems) == {
        f"{folder}/simulation_run0001_synapses.csv": "is a directory, not a data file; not used",
        f"{folder}/simulation_run0002_presynaptic_cells.csv":
            "not a regular file (a FIFO); cannot be read as data, not used",
    }

"""Nightly incremental runs on one database: only new folders are read, a run with nothing new
writes nothing, a `_running` folder is taken once it finishes, failed folders are not retried
while unchanged, `--refresh` replaces changed folders in every table (and keeps the stored
version when the new files fail).

One chain of runs over one growing tree; each test checks one step (the fixture runs them all,
in order, and keeps what each step saw).
"""

from __future__ import annotations

import os
import shutil

import pytest
from deltalake import DeltaTable

import ingest_compare as cmp
from simlake import synth
from simlake.ingest_options import IngestOptions
from simlake.spark.ingest import ingest

pytestmark = pytest.mark.spark

DATA_KEYS = ("voltage_traces", "synapse_activation", "cell_activation", "dendritic_recordings",
             "spike_times", "dendritic_spike_times", "parameterfiles")


def _folder(raw: str, sim_run: str) -> str:
    return os.path.join(raw, *sim_run.split("/"))


def _drop_last_trial(raw: str, rep: synth.FolderReport) -> int:
    """Re-simulated with one trial fewer and one value changed; returns the dropped trial."""
    folder = _folder(raw, rep.sim_run)
    last = rep.trial_numbers[-1]
    for kind in ("synapses", "presynaptic_cells"):
        os.unlink(os.path.join(folder, f"simulation_run{last:0{rep.padding}d}_{kind}.csv"))
    traces = [rep.voltage_file] + [f"{rep.dendritic_prefix}{label}_vm_dend_traces.csv"
                                   for label in rep.dendritic_labels]
    for name in traces:
        path = os.path.join(folder, name)
        with open(path, "rb") as fh:
            lines = fh.read().split(b"\n")
        lines = [b"\t".join(line.split(b"\t")[:-1]) if line else line for line in lines]
        if name == rep.voltage_file:
            fields = lines[5].split(b"\t")
            lines[5] = b"\t".join([fields[0], b"-12.5", *fields[2:]])
        with open(path, "wb") as fh:
            fh.write(b"\n".join(lines))
    return last


def _break_voltage(raw: str, rep: synth.FolderReport) -> bytes:
    """Cut the folder's voltage csv to its header; returns the original bytes."""
    path = os.path.join(_folder(raw, rep.sim_run), rep.voltage_file)
    with open(path, "rb") as fh:
        original = fh.read()
    with open(path, "wb") as fh:
        fh.write(original[: original.index(b"\n") + 1])
    return original


@pytest.fixture(scope="module")
def chain(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("incremental")
    raw, db, hold = str(base / "raw"), str(base / "db"), str(base / "hold")
    report = synth.generate_tree(raw, runs=6, trials=3, times=200, synapses=20, cells=15, seed=11)
    f = report.folders
    os.makedirs(hold)
    # night 1: folders 4 and 5 not written yet, folder 3 still running, folder 1 broken
    for rep in (f[4], f[5]):
        shutil.move(_folder(raw, rep.sim_run), os.path.join(hold, str(rep.uid)))
    os.rename(_folder(raw, f[3].sim_run), _folder(raw, f[3].sim_run) + "_running")
    original_voltage = _break_voltage(raw, f[1])
    out: dict = {"raw": raw, "db": db, "report": report}

    def run(name: str, **kw) -> None:
        before = cmp.versions(db)
        summary = ingest(spark, IngestOptions(raw, db, **kw))
        out[name] = {"summary": summary, "before": before, "after": cmp.versions(db),
                     "tables": {k: cmp.table_frame(db, k) for k in cmp.KEYS},
                     "errors": cmp.error_set(db)}

    run("night1")
    out["night1"]["expected"] = cmp.expected_tables(raw, {f[0].sim_run, f[2].sim_run})
    run("night2")  # nothing new; folder 1 unchanged since it failed

    # night 3: folder 1 fixed, 4 and 5 arrived, 3 finished
    with open(os.path.join(_folder(raw, f[1].sim_run), f[1].voltage_file), "wb") as fh:
        fh.write(original_voltage)
    for rep in (f[4], f[5]):
        shutil.move(os.path.join(hold, str(rep.uid)), _folder(raw, rep.sim_run))
    os.rename(_folder(raw, f[3].sim_run) + "_running", _folder(raw, f[3].sim_run))
    run("night3")
    out["night3"]["expected"] = cmp.expected_tables(raw)

    # folder 5 re-simulated: reported without --refresh, replaced with it
    out["dropped"] = _drop_last_trial(raw, f[5])
    run("changed")
    run("refresh", refresh=True)
    out["refresh"]["expected"] = cmp.expected_tables(raw)

    # folder 5 re-simulated again, but its voltage file is broken: the stored version stays
    _break_voltage(raw, f[5])
    run("failed_refresh", refresh=True)
    return out


def _grew_by(step: dict, keys, n: int) -> None:
    for key in keys:
        assert step["after"][key] == step["before"][key] + n, (key, step["before"], step["after"])


def test_first_night_takes_finished_folders_and_records_the_broken_one(chain):
    f, step = chain["report"].folders, chain["night1"]
    s = step["summary"]
    new = sorted([f[0].sim_run, f[1].sim_run, f[2].sim_run], key=lambda x: x + "/")
    assert s.folders_new == new
    assert s.folders_failed == [f[1].sim_run]
    assert f[3].sim_run + "_running" in s.skipped_running
    for key, exp in step["expected"].items():
        got = step["tables"][key]
        cmp.assert_frames_equal(cmp.canonical(got[list(exp.columns)]), exp, key)
    failed = DeltaTable(os.path.join(chain["db"], "ingest_failed_folders")).to_pyarrow_table()
    assert failed.column("sim_run").to_pylist() == [f[1].sim_run]
    assert any(e[1] == f[1].sim_run and "header only" in e[3] for e in step["errors"])


def test_nothing_new_writes_nothing_and_says_so(chain):
    step = chain["night2"]
    s = step["summary"]
    assert s.nothing_new and s.folders_new == []
    assert s.folders_failed_before == [chain["report"].folders[1].sim_run]
    assert step["after"] == step["before"]  # no new version of any table, errors included
    text = str(s)
    assert "nothing new" in text and "failed in an earlier run" in text


def test_next_night_takes_only_the_new_folders(chain):
    f, step = chain["report"].folders, chain["night3"]
    s = step["summary"]
    new = sorted([f[1].sim_run, f[3].sim_run, f[4].sim_run, f[5].sim_run], key=lambda x: x + "/")
    assert s.folders_new == new and s.folders_failed == []
    assert f[3].sim_run + "_running" not in s.skipped_running
    assert s.folders_already_present == 2
    # files read = the new folders' voltage, trial and dendritic files, nothing of the others
    expected_files = sum(1 + 2 * r.n_trials + len(r.dendritic_labels)
                         for r in (f[1], f[3], f[4], f[5]))
    assert s.files_read == expected_files
    _grew_by(step, DATA_KEYS + ("metadata",), 1)  # one commit per table
    for key, exp in step["expected"].items():
        got = step["tables"][key]
        cmp.assert_frames_equal(cmp.canonical(got[list(exp.columns)]), exp, key)


def test_changed_folder_is_reported_not_replaced_without_refresh(chain):
    step, sim_run = chain["changed"], chain["report"].folders[5].sim_run
    s = step["summary"]
    assert s.folders_changed == [sim_run] and s.folders_refreshed == [] and s.nothing_new
    assert f"changed since ingest (use --refresh to replace): {sim_run}" in str(s)
    assert step["after"] == step["before"]
    for key in cmp.KEYS:
        cmp.assert_frames_equal(step["tables"][key], chain["night3"]["tables"][key], key)


def test_refresh_replaces_the_folder_in_every_table(chain):
    step, rep = chain["refresh"], chain["report"].folders[5]
    s = step["summary"]
    assert s.folders_refreshed == [rep.sim_run] and s.folders_new == []
    _grew_by(step, DATA_KEYS, 1)  # atomically: one commit per table
    _grew_by(step, ("metadata",), 2)  # hidden first, then the completion record
    for key, exp in step["expected"].items():
        got = step["tables"][key]
        cmp.assert_frames_equal(cmp.canonical(got[list(exp.columns)]), exp, key)
    gone = f"{rep.sim_run}/{chain['dropped']:06d}"
    for key in DATA_KEYS + ("metadata",):
        assert gone not in set(step["tables"][key]["sim_trial_index"]), key
    # the other folders' rows are untouched
    others = {r.sim_run for r in chain["report"].folders} - {rep.sim_run}
    for key in cmp.KEYS:
        cmp.assert_frames_equal(cmp.visible(step["tables"][key], others),
                                cmp.visible(chain["night3"]["tables"][key], others), key)


def test_failed_refresh_keeps_the_stored_version(chain):
    step, sim_run = chain["failed_refresh"], chain["report"].folders[5].sim_run
    s = step["summary"]
    assert s.folders_failed == [sim_run]
    assert any(r.sim_run == sim_run and r.kind == "folder" and "stored version is kept" in r.reason
               for r in s.rejections)
    for key in DATA_KEYS + ("metadata",):
        assert step["after"][key] == step["before"][key], key
    for key in cmp.KEYS:
        cmp.assert_frames_equal(step["tables"][key], chain["refresh"]["tables"][key], key)

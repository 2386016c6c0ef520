"""Which folders a run takes, from the listing and the database state (no JVM)."""

from __future__ import annotations

import pytest

from simlake.discovery import FileStat, SimrunTree, classify_folder
from simlake.ingest_options import IngestOptions
from simlake.ingest_report import IngestSummary, Rejection
from simlake.ingest_select import DatabaseState, FailedFolder, folder_fingerprint, plan_folders
from simlake.spark.job import EXIT_NOTHING, EXIT_OK, EXIT_REJECTED, exit_code

NAMES = ["20150815-1530_20240", "20150816-1530_20241", "20150817-1530_20242",
         "20150818-1530_20243", "20150819-1530_20244", "20150820-1530_20245"]


def _folder(name: str, mtime: int = 1):
    pid = name.split("_")[1]
    files = [f"{pid}_vm_all_traces.csv", "simulation_run0000_synapses.csv",
             "simulation_run0000_presynaptic_cells.csv"]
    return classify_folder(name, f"/raw/{name}", {n: FileStat(10, mtime) for n in files})


def _plan(folders, state, **kw):
    opts = IngestOptions("/raw", "/db", **kw)
    plan = plan_folders(SimrunTree("/raw", tuple(folders)), state, opts)
    return [f.sim_run for f in plan.todo], plan


@pytest.fixture
def world():
    a, b, c, d, e, f = (_folder(n) for n in NAMES)
    changed = _folder(NAMES[1], mtime=2)  # b, re-simulated
    state = DatabaseState(
        committed={a.sim_run: folder_fingerprint(a), b.sim_run: folder_fingerprint(b),
                   c.sim_run: None},  # c: ingested by a version without fingerprints
        failed={d.sim_run: FailedFolder(folder_fingerprint(d), False, "no voltage", "r0"),
                e.sim_run: FailedFolder(folder_fingerprint(e), True, "strict", "r0"),
                f.sim_run: FailedFolder("another fingerprint", False, "no voltage", "r0")})
    return [a, changed, c, d, e, f], state


def test_plain_run(world):
    folders, state = world
    todo, s = _plan(folders, state)
    # e failed only under --strict: a plain run retries it; f changed since it failed
    assert todo == [NAMES[4], NAMES[5]] and s.new == todo
    assert s.changed == [NAMES[1]] and s.refreshed == []
    assert s.failed_before == [NAMES[3]]
    assert s.already_present == 3
    assert any("recorded no folder fingerprint" in n for n in s.notes)


def test_strict_run_skips_its_own_unchanged_failures(world):
    folders, state = world
    todo, s = _plan(folders, state, strict=True)
    assert todo == [NAMES[5]] and s.failed_before == [NAMES[3], NAMES[4]]


def test_refresh_takes_changed_unknown_and_failed_folders(world):
    folders, state = world
    todo, s = _plan(folders, state, refresh=True)
    assert todo == NAMES[1:]
    assert s.refreshed == [NAMES[1], NAMES[2]]
    assert s.new == NAMES[3:] and s.failed_before == []


def test_no_core_run_takes_committed_folders_only(world):
    folders, state = world
    todo, _ = _plan(folders, state, core=False)
    assert todo == NAMES[:3]


def test_pause_hook_options_and_exit_codes():
    assert IngestOptions("/r", "/d").pause_point() is None
    assert IngestOptions("/r", "/d", pause_after="metadata:2", pause_file="/p").pause_point() == (
        "metadata", 2)
    assert IngestOptions("/r", "/d", pause_after="decoded", pause_file="/p").pause_point() == (
        "decoded", 1)
    with pytest.raises(ValueError, match="go together"):
        IngestOptions("/r", "/d", pause_after="metadata")
    with pytest.raises(ValueError, match="STEP or STEP:N"):
        IngestOptions("/r", "/d", pause_after="metadata:x", pause_file="/p")
    summary = IngestSummary("r", "/d", "/r", folders_found=2)
    assert exit_code(IngestOptions("/r", "/d", strict=True), summary) == EXIT_OK
    summary.rejections.append(Rejection("/r/x", None, "listing", "symlink loop"))
    assert exit_code(IngestOptions("/r", "/d"), summary) == EXIT_REJECTED
    assert exit_code(IngestOptions("/r", "/d", strict=True), summary) == EXIT_REJECTED
    before = IngestSummary("r", "/d", "/r", folders_found=2, folders_failed_before=["a"])
    assert exit_code(IngestOptions("/r", "/d"), before) == EXIT_REJECTED  # still left out
    assert exit_code(IngestOptions("/r", "/d"), IngestSummary("r", "/d", "/r")) == EXIT_NOTHING
    running = IngestSummary("r", "/d", "/r", skipped_running=["x_running"])
    assert exit_code(IngestOptions("/r", "/d"), running) == EXIT_OK  # taken by a later run


def test_summary_prints_one_line_for_many_files_rejected_for_the_same_reason():
    """100 copies of a real folder whose param files name anatomy files of another machine:
    one line for them, naming the first file and how many more; a reason shared by fewer
    files keeps a line per file."""
    missing = "reference neuron.filename -> /gpfs/x/86_C2_center.hoc not stored: no such file"
    copies = [Rejection(f"/raw/results/run_{i:03d}/{i}_neuron_model.param", f"results/run_{i:03d}",
                        "neuron_param_reference", missing) for i in range(100)]
    others = [Rejection("/raw/results/run_000/simulation_run0001_synapses.csv",
                        "results/run_000", "synapse_activation", "line 3: 2 fields, 6 wanted"),
              Rejection("/raw/results/run_001/simulation_run0001_synapses.csv",
                        "results/run_001", "synapse_activation", "line 3: 2 fields, 6 wanted")]
    summary = IngestSummary("r", "/db", "/raw", rejections=copies + others)
    lines = [line.strip() for line in str(summary).splitlines()]
    assert "rejected: 102" in lines
    named = [line for line in lines if line.startswith("/raw/")]
    assert named == [copies[0].line() + " (and 99 more files with the same reason: all in the "
                     "ingest_errors table)", others[0].line(), others[1].line()]

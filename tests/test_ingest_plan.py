"""Pure planning: contiguous, key-ordered task groups (no JVM)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from simlake.ingest_options import IngestOptions
from simlake.ingest_plan import FileTask, batches_by_bytes, pack_contiguous


def _task(sim_run, trialnr, size, label=""):
    return FileTask(
        "synapses", sim_run, f"/x/{sim_run}/{trialnr}", size, trialnr=trialnr, label=label
    )


def test_groups_are_contiguous_in_sim_trial_index_order():
    # "r/a" < "r/a-b" as folder names, yet "r/a-b/..." < "r/a/..." as keys ('-' < '/'):
    # groups must follow the key order.
    tasks = [_task("r/a", 2, 10), _task("r/a-b", 1, 10), _task("r/a", 10, 10), _task("r/a", 1, 10)]
    groups = pack_contiguous(tasks, target_bytes=25)
    flat = [t for g in groups for t in g]
    keys = [f"{t.sim_run}/{t.trialnr:06d}" for t in flat]
    assert keys == sorted(keys)
    assert [len(g) for g in groups] == [2, 2]
    assert sum(t.size for t in groups[0]) <= 25


def test_groups_never_mix_recording_sites():
    tasks = [_task("r/a", n, 1, label=site) for n in range(3) for site in ("s1", "s2")]
    groups = pack_contiguous(tasks, target_bytes=10**9)
    assert [{t.label for t in g} for g in groups] == [{"s1"}, {"s2"}]


def test_oversized_task_is_a_group_alone_and_bad_target_rejected():
    groups = pack_contiguous([_task("r/a", 0, 100), _task("r/a", 1, 1)], target_bytes=10)
    assert [len(g) for g in groups] == [1, 1]
    assert pack_contiguous([], 10) == []
    with pytest.raises(ValueError):
        pack_contiguous([], 0)


def test_groups_are_balanced_and_at_least_min_groups():
    # 3 folders of 1 voltage file each would make 2 groups of 128 MiB + 1 small one; with
    # min_groups=4 (2 cores x 2) every group carries about the same bytes
    tasks = [_task(f"r/{k:02d}", n, 10) for k in range(3) for n in range(10)]  # 300 bytes
    groups = pack_contiguous(tasks, target_bytes=128, min_groups=4)
    sizes = [sum(t.size for t in g) for g in groups]
    assert len(groups) == 4 and sum(sizes) == 300
    assert max(sizes) - min(sizes) <= 10, sizes
    assert max(sizes) <= 128
    # fewer tasks than min_groups: one task per group, none empty
    assert [len(g) for g in pack_contiguous(tasks[:2], 128, min_groups=4)] == [1, 1]
    # the byte target still bounds groups when it asks for more than min_groups
    assert len(pack_contiguous(tasks, target_bytes=50, min_groups=2)) == 6


def test_batches_by_bytes_keep_every_folder_once():
    folders = [SimpleNamespace(sim_run=str(i), total_bytes=s) for i, s in enumerate([5, 5, 20, 1])]
    batches = batches_by_bytes(folders, 10)
    assert [[f.sim_run for f in b] for b in batches] == [["0", "1"], ["2"], ["3"]]


def test_core_needs_voltage_traces_and_metadata_comes_last():
    opts = IngestOptions("/raw", "/db", voltage_traces=False, spike_times=False)
    tables = opts.tables()
    assert tables[0] == "voltage_traces" and tables[-1] == "metadata"
    no_core = IngestOptions(
        "/raw",
        "/db",
        core=False,
        voltage_traces=False,
        spike_times=False,
        synapse_activation=False,
        parameterfiles=False,
        dendritic_voltage_traces=False,
    )
    assert no_core.tables() == ["dendritic_recordings", "dendritic_spike_times"]

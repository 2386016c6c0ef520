"""optimize: compaction into sorted, non-overlapping files, safe against concurrent writers."""

from __future__ import annotations

import importlib
import json
import os
import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

import adapter_corpus as ac
from simlake.adapter import DataBase, LayoutWarning, optimize

# the module (``simlake.adapter.optimize`` the attribute is the function)
opt_mod = importlib.import_module("simlake.adapter.optimize")

KEYS = ["voltage_traces", "synapse_activation", "cell_activation", "dendritic_recordings",
        "spike_times"]


def frames(db: DataBase) -> dict:
    out = {k: db[k].compute() for k in ("voltage_traces", "synapse_activation",
                                         "cell_activation")}
    out["spike_times"] = db["spike_times"]
    for s in ac.SITES:
        out[s] = db["dendritic_recordings"][s].compute()
    return out


def file_layout(table: str) -> list[tuple[str, str, int]]:
    """(min, max, rows) of every live file, from the data itself; asserts the log's stats."""
    dt = DeltaTable(table)
    actions = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    by_path = {a["path"]: a for a in actions}
    out = []
    for uri in dt.file_uris():
        keys = pq.read_table(uri, columns=["sim_trial_index"]).column(0).to_pylist()
        assert keys == sorted(keys)
        rel = os.path.relpath(uri, table)
        act = next(a for p, a in by_path.items()
                   if os.path.basename(p) == os.path.basename(rel))
        assert act["min.sim_trial_index"] == keys[0] and act["max.sim_trial_index"] == keys[-1]
        out.append((keys[0], keys[-1], len(keys)))
    return sorted(out)


@pytest.fixture
def fragmented(tmp_path):
    corpus = ac.make_corpus(n_runs=8)
    root = ac.write_db(corpus, str(tmp_path / "db"), runs_per_file=1,
                       overlap="synapse_activation")
    return corpus, DataBase(root)


def test_optimize_compacts_sorts_and_keeps_frames(fragmented):
    corpus, db = fragmented
    assert callable(optimize) and opt_mod.optimize is optimize
    with pytest.warns(LayoutWarning):
        before = frames(db)
    tables = {k: os.path.join(db.basedir, k) for k in KEYS}
    counts = {k: len(DeltaTable(t).file_uris()) for k, t in tables.items()}
    config = {k: DeltaTable(t).metadata().configuration for k, t in tables.items()}
    protocol = {k: DeltaTable(t).protocol() for k, t in tables.items()}
    results = optimize(db, select=KEYS)
    for k, t in tables.items():
        n = len(DeltaTable(t).file_uris())
        assert n < counts[k], (k, n, counts[k])
        assert results[k].files_after == n and results[k].version is not None
        assert DeltaTable(t).metadata().configuration == config[k]
        assert DeltaTable(t).protocol() == protocol[k]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no more overlap
        after = frames(db)
    for k, frame in before.items():
        ac_frame = after[k]
        assert frame.equals(ac_frame), k
        assert list(frame.columns) == list(ac_frame.columns)
    # leftovers are kept in the table (hidden by readers), never dropped by optimize
    raw = DeltaTable(tables["voltage_traces"]).to_pyarrow_table()
    assert {tr.sti for tr in corpus.leftovers} <= set(raw.column("sim_trial_index").to_pylist())


def test_optimize_is_idempotent_and_default_selects_big_tables(fragmented):
    _, db = fragmented
    first = optimize(db)
    assert sorted(first) == ["cell_activation", "dendritic_recordings", "synapse_activation",
                             "voltage_traces"]
    versions = {k: DeltaTable(os.path.join(db.basedir, k)).version() for k in first}
    second = optimize(db)
    for k, res in second.items():
        assert res.version is None
        assert DeltaTable(os.path.join(db.basedir, k)).version() == versions[k]


def test_small_target_cuts_files_at_trial_boundaries(fragmented):
    corpus, db = fragmented
    table = os.path.join(db.basedir, "synapse_activation")
    optimize(db, select=["synapse_activation"], target_file_bytes=1)  # cut as small as possible
    layout = file_layout(table)
    assert len(layout) > 3
    for (_, hi1, _), (lo2, _, _) in zip(layout, layout[1:], strict=False):
        assert hi1 < lo2  # non-overlapping, no trial split over two files
    assert db["synapse_activation"].compute().equals(ac.expected_synapses(corpus))
    optimize(db, select=["synapse_activation"])  # and back into one file
    assert len(file_layout(table)) == 1


def test_vacuum_keeps_removed_files_for_concurrent_readers(fragmented):
    corpus, db = fragmented
    table = os.path.join(db.basedir, "voltage_traces")
    old_files = DeltaTable(table).file_uris()
    graph = db["voltage_traces"]  # built on the old files
    optimize(db, select=["voltage_traces"])
    assert all(os.path.exists(p) for p in old_files)
    assert graph.compute().equals(ac.expected_voltage(corpus))  # still readable
    res = optimize(db, select=["voltage_traces"], force=True)
    assert len(res["voltage_traces"].vacuumed) == len(old_files)
    assert not any(os.path.exists(p) for p in old_files)
    assert db["voltage_traces"].compute().equals(ac.expected_voltage(corpus))


def _new_rows(corpus: ac.Corpus, sim_run: str) -> pa.Table:
    tr = ac.Trial(sim_run, 1, corpus.trials[0].t, corpus.trials[0].vm, [], [], [], {}, {},
                  ("", "", "", ""))
    return ac._rows("voltage_traces", [tr])


def _hook_first_write(monkeypatch, action):
    written = []
    real = opt_mod.write_data_file

    def hooked(*args, **kwargs):
        if not written:
            action()
        add = real(*args, **kwargs)
        written.append(add.path)
        return add

    monkeypatch.setattr(opt_mod, "write_data_file", hooked)
    return written


def test_concurrent_append_survives_optimize(fragmented, monkeypatch):
    corpus, db = fragmented
    table = os.path.join(db.basedir, "voltage_traces")
    run = "results/zz_appended_while_optimizing/20990101-0000_1"
    _hook_first_write(monkeypatch, lambda: write_deltalake(table, _new_rows(corpus, run),
                                                           mode="append"))
    rows_before = DeltaTable(table).to_pyarrow_table().num_rows
    optimize(db, select=["voltage_traces"])
    stis = DeltaTable(table).to_pyarrow_table().column("sim_trial_index").to_pylist()
    assert len(stis) == rows_before + 1 == len(set(stis))
    assert f"{run}/000001" in stis


def test_concurrent_delete_makes_optimize_fail_cleanly(fragmented, monkeypatch):
    corpus, db = fragmented
    table = os.path.join(db.basedir, "voltage_traces")
    victim = corpus.visible[0].sim_run
    written = _hook_first_write(
        monkeypatch, lambda: DeltaTable(table).delete(f"sim_run = '{victim}'"))
    with pytest.raises(CommitFailedError, match="concurrent writer"):
        optimize(db, select=["voltage_traces"])
    assert written and not any(os.path.exists(os.path.join(table, p)) for p in written)
    stis = DeltaTable(table).to_pyarrow_table().column("sim_trial_index").to_pylist()
    assert not [s for s in stis if s.startswith(victim + "/")]
    assert len(stis) == len(set(stis))
    monkeypatch.undo()
    optimize(db, select=["voltage_traces"])  # a rerun completes
    got = db["voltage_traces"].compute()
    want = ac.expected_voltage(corpus)
    assert got.equals(want[~want.index.str.startswith(victim + "/")])


def test_stats_written_by_optimize_are_exact_json(fragmented):
    _, db = fragmented
    table = os.path.join(db.basedir, "cell_activation")
    optimize(db, select=["cell_activation"])
    log_dir = os.path.join(table, "_delta_log")
    last = sorted(n for n in os.listdir(log_dir) if n.endswith(".json"))[-1]
    with open(os.path.join(log_dir, last)) as fh:
        adds = [json.loads(line)["add"] for line in fh if '"add"' in line]
    assert adds and all(a["dataChange"] is False for a in adds)
    stats = json.loads(adds[0]["stats"])
    assert len(stats["maxValues"]["sim_trial_index"]) > 32
    assert set(stats["minValues"]) == {"sim_trial_index"}  # delta.dataSkippingStatsColumns

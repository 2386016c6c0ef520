"""The JVM-free lake layer: one DataFile from writer to snapshot, exact statistics, and the
``deltalake`` back-end of the one commit call (appends, replacing commits, file removals)."""

from __future__ import annotations

import json
import math
import os

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lake_rows import spike_rows
from simlake import schemas
from simlake.datafiles import write_table_files
from simlake.lake.commit import commit
from simlake.lake.datafile import DataFile, file_stats, parse_stats
from simlake.lake.replace import Replace
from simlake.lake.snapshot import open_table

SPEC = schemas.SPECS["spike_times"]




def _write(root: str, rows: pa.Table) -> list[DataFile]:
    return write_table_files(root, SPEC.name, SPEC.schema, rows)


def _rows(root: str) -> list[tuple]:
    t = DeltaTable(root).to_pyarrow_table()
    return sorted(zip(t.column("sim_run").to_pylist(), t.column("trialnr").to_pylist(),
                      t.column("threshold").to_pylist(),
                      [v[0] for v in t.column("spike_times").to_pylist()], strict=True))


def test_the_snapshot_lists_the_files_the_writer_committed(tmp_path):
    root = str(tmp_path / "spike_times")
    rows = [spike_rows("r/a", [0, 1, 2], 0.0, 1.0), spike_rows("r/b", [5], 0.0, 2.0)]
    written = [f for t in rows for f in _write(root, t)]
    assert commit(root, SPEC, written) == 4
    snap = open_table(root, ("sim_trial_index", "sim_run"))
    assert snap.configuration["delta.dataSkippingStatsColumns"] == "sim_trial_index,sim_run"
    by_path = {os.path.relpath(f.path, root): f for f in snap.files}
    assert sorted(by_path) == sorted(f.path for f in written)
    for w, t in zip(written, rows, strict=True):
        live = by_path[w.path]
        keys = t.column("sim_trial_index").to_pylist()
        assert (live.size, live.num_records) == (w.size, t.num_rows)
        assert live.stat("sim_trial_index") == (min(keys), max(keys), 0)
        assert w.stat("sim_trial_index") == (min(keys), max(keys), 0)
        assert live.stat("sim_run") == w.stat("sim_run") == (keys[0][:3],) * 2 + (0,)
    # the snapshot's values are frozen and hashable (readers key caches by them)
    assert len(set(snap.files)) == len(snap.files)


def test_statistics_are_exact_or_only_null_counts():
    t = pa.table({
        "s": pa.array(["b", "a", None, "c"]).dictionary_encode(),
        "x": [1.5, float("nan"), 0.5, None],
        "y": [2.0, -1.0, math.inf, 0.0],
        "n": pa.array([None, None, None, None], pa.int64()),
        "i": [3, 1, 2, 9],
    })
    got = file_stats(t, ["s", "x", "y", "n", "i", "absent"])
    assert got == (("s", "a", "c", 1), ("x", None, None, 1), ("y", None, None, 0),
                   ("n", None, None, 4), ("i", 1, 9, 0))
    text = DataFile("p", 1, 4, column_stats=got).stats
    assert json.loads(text) == {"numRecords": 4, "minValues": {"s": "a", "i": 1},
                                "maxValues": {"s": "c", "i": 9},
                                "nullCount": {"s": 1, "x": 1, "y": 0, "n": 4, "i": 0}}
    num_records, parsed = parse_stats(text)
    assert num_records == 4
    assert {c: (lo, hi, n) for c, lo, hi, n in parsed} == {
        c: (lo, hi, n) for c, lo, hi, n in got}


def test_a_replacing_commit_without_jvm_keeps_every_other_row(tmp_path):
    root = str(tmp_path / "spike_times")
    mixed = _write(root, pa.concat_tables([spike_rows("r/a", [0, 1], 0.0, 1.0),
                                           spike_rows("r/b", [0], 0.0, 1.0)]))
    only_a = _write(root, spike_rows("r/a", [2], 0.0, 1.0))
    only_c = _write(root, spike_rows("r/c", [0], 0.0, 1.0))
    commit(root, SPEC, mixed + only_a + only_c)
    # a refresh of r/a alone: the mixed file is rewritten with r/b's row, r/a's file removed
    new = _write(root, spike_rows("r/a", [0], 0.0, 2.0))
    assert commit(root, SPEC, new, Replace(("r/a",))) == 1
    assert _rows(root) == [("r/a", 0, 0.0, 2.0), ("r/b", 0, 0.0, 1.0), ("r/c", 0, 0.0, 1.0)]
    live = open_table(root, ("sim_run",)).files
    names = {os.path.relpath(f.path, root) for f in live}
    assert only_c[0].path in names and new[0].path in names
    assert mixed[0].path not in names and only_a[0].path not in names
    rewritten = [f for f in live if os.path.relpath(f.path, root) not in
                 {only_c[0].path, new[0].path}]
    assert [f.stat("sim_run") for f in rewritten] == [("r/b", "r/b", 0)]


def test_a_replacing_commit_with_a_column_value_keeps_other_values(tmp_path):
    root = str(tmp_path / "spike_times")
    commit(root, SPEC, _write(root, pa.concat_tables([spike_rows("r/a", [0, 1], 0.0, 1.0),
                                                      spike_rows("r/a", [0, 1], -30.0, 5.0)])))
    commit(root, SPEC, _write(root, spike_rows("r/a", [0, 1], 0.0, 9.0)),
           Replace(("r/a",), "threshold", 0.0))
    assert _rows(root) == [("r/a", 0, -30.0, 5.0), ("r/a", 0, 0.0, 9.0),
                           ("r/a", 1, -30.0, 5.0), ("r/a", 1, 0.0, 9.0)]


def test_removing_files_of_a_snapshot_and_a_missing_table(tmp_path):
    root = str(tmp_path / "spike_times")
    first = _write(root, spike_rows("r/a", [0, 1], 0.0, 1.0))
    commit(root, SPEC, first)
    snap = open_table(root)
    again = _write(root, spike_rows("r/a", [0, 1], 0.0, 1.0))
    commit(root, SPEC, again, removes=snap.files, data_change=False,
           read_version=snap.version)
    after = open_table(root)
    assert [os.path.relpath(f.path, root) for f in after.files] == [again[0].path]
    assert DeltaTable(root).history(1)[0]["operation"] == "WRITE"
    assert pc.sum(DeltaTable(root).to_pyarrow_table().column("trialnr")).as_py() == 1
    with pytest.raises(FileNotFoundError, match="no Delta table"):
        commit(str(tmp_path / "absent"), SPEC, [], removes=snap.files)

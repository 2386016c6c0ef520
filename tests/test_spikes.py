"""Spike detection vs a direct per-sample loop."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from simlake import schemas
from simlake.decode.spikes import (
    dendritic_spike_times_table,
    detect_spikes,
    detect_spikes_flat,
    spike_times_table,
)


def loop_spikes(t, v, threshold) -> list[float]:
    """The definition, literally: t[i] for every i with v[i-1] < threshold <= v[i]."""
    return [float(t[i]) for i in range(1, len(v)) if v[i - 1] < threshold <= v[i]]


def traces(n_trials: int, n_times: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = 100.0 + 0.025 * np.arange(n_times)
    vm = -60 + np.cumsum(rng.normal(0, 4, (n_trials, n_times)), axis=1)
    vm[:, ::50] = 0.0  # samples exactly at the threshold
    return t, vm


def test_detect_spikes_matches_loop():
    t, vm = traces(30, 2000, seed=0)
    for threshold in (0.0, -30.0, -60.0):
        trains = detect_spikes(t, vm, threshold)
        assert trains.offsets.shape == (31,)
        got = trains.per_trial()
        for k in range(30):
            assert got[k].tolist() == loop_spikes(t, vm[k], threshold)
        assert trains.offsets[-1] == sum(len(loop_spikes(t, v, threshold)) for v in vm)


def test_crossing_definition_edges():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    vm = np.array([
        [5.0, -1.0, 0.0, 1.0, -1.0, 2.0, np.nan],  # equal to threshold counts; two spikes
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],       # starts above: no spike at sample 0
        [-1.0, np.nan, 1.0, -1.0, -0.5, -0.1, -2.0],  # NaN never crosses
        [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0],
    ])
    got = detect_spikes(t, vm, 0.0).per_trial()
    assert [g.tolist() for g in got] == [[2.0, 5.0], [], [], []]
    for k in range(4):
        assert got[k].tolist() == loop_spikes(t, vm[k], 0.0)


def test_detect_spikes_shape_check():
    with pytest.raises(ValueError):
        detect_spikes(np.arange(3.0), np.zeros((2, 4)), 0.0)


def voltage_table(rows: list[tuple[int, np.ndarray, np.ndarray]],
                  sim_run: str = "r/20150815-1530_1") -> pa.Table:
    return pa.Table.from_pylist(
        [{"sim_trial_index": schemas.sim_trial_index(sim_run, nr), "sim_run": sim_run,
          "trialnr": nr, "t": t.tolist(), "vm": v.tolist()} for nr, t, v in rows],
        schema=schemas.VOLTAGE_TRACES)


def test_spike_times_table_ragged_rows():
    rng = np.random.default_rng(1)
    rows = []
    for nr, n in enumerate([500, 1, 0, 1200, 2, 777]):
        t = 0.1 + 0.025 * np.arange(n)
        v = -60 + np.cumsum(rng.normal(0, 6, n))
        rows.append((nr * 3, t, v))
    # a crossing across the row boundary must not count: row 4 ends low, row 5 starts high
    rows[4] = (12, np.array([0.0, 1.0]), np.array([-5.0, -5.0]))
    rows[5] = (15, rows[5][1], np.concatenate([[5.0], rows[5][2][1:]]))
    table = voltage_table(rows)
    out = spike_times_table(table, 0.0)
    assert out.schema.equals(schemas.SPIKE_TIMES)
    assert out.column("sim_trial_index").to_pylist() == table.column("sim_trial_index").to_pylist()
    assert out.column("trialnr").to_pylist() == [0, 3, 6, 9, 12, 15]
    assert out.column("threshold").to_pylist() == [0.0] * 6
    for (_, t, v), got in zip(rows, out.column("spike_times").to_pylist(), strict=True):
        assert got == loop_spikes(t, v, 0.0)
    assert out.column("spike_times")[2].as_py() == []  # empty list, not null
    assert sum(len(s) for s in out.column("spike_times").to_pylist()) > 0


def test_spike_times_table_chunked_and_sliced_input():
    t, vm = traces(8, 300, seed=2)
    table = voltage_table([(k, t, vm[k]) for k in range(8)])
    chunked = pa.concat_tables([table.slice(0, 3), table.slice(3, 2), table.slice(5)])
    sliced = table.slice(2, 4)
    out = spike_times_table(chunked, -30.0)
    for k, got in enumerate(out.column("spike_times").to_pylist()):
        assert got == loop_spikes(t, vm[k], -30.0)
    out = spike_times_table(sliced, -30.0)
    assert out.column("trialnr").to_pylist() == [2, 3, 4, 5]
    for k, got in zip(range(2, 6), out.column("spike_times").to_pylist(), strict=True):
        assert got == loop_spikes(t, vm[k], -30.0)


def test_spike_times_table_empty_and_mismatched():
    empty = schemas.VOLTAGE_TRACES.empty_table()
    out = spike_times_table(empty, 0.0)
    assert out.num_rows == 0 and out.schema.equals(schemas.SPIKE_TIMES)
    bad = voltage_table([(0, np.arange(3.0), np.arange(3.0))])
    bad = bad.set_column(4, "vm", pa.array([[1.0, 2.0]], schemas.F64_LIST))
    with pytest.raises(ValueError, match="t has 3 values but vm has 2"):
        spike_times_table(bad, 0.0)


def test_dendritic_spike_times_table():
    t, vm = traces(4, 400, seed=3)
    volt = voltage_table([(k + 10, t, vm[k]) for k in range(4)])
    sites = pa.array(["siteA", "siteA", "siteB", "siteB"])
    dend = pa.Table.from_arrays([sites, *volt.columns], schema=schemas.DENDRITIC_RECORDINGS)
    out = dendritic_spike_times_table(dend, -30.0)
    assert out.schema.equals(schemas.DENDRITIC_SPIKE_TIMES)
    assert out.column("recording_site").to_pylist() == ["siteA", "siteA", "siteB", "siteB"]
    assert out.column("threshold").to_pylist() == [-30.0] * 4
    assert out.column("trialnr").to_pylist() == [10, 11, 12, 13]
    for k, got in enumerate(out.column("spike_times").to_pylist()):
        assert got == loop_spikes(t, vm[k], -30.0)


def test_detect_spikes_flat_validates_offsets():
    with pytest.raises(ValueError):
        detect_spikes_flat(np.arange(4.0), np.arange(4.0), np.array([0, 3]), 0.0)

"""Spike detection on voltage traces (``docs/database.md``, ``spike_times``).

A spike is an upward threshold crossing: the time ``t[i]`` of every sample ``i`` with
``v[i-1] < threshold <= v[i]`` (so a trace starting above threshold has no spike at its first
sample, and NaN never crosses). Vectorised over all trials at once: the 2-D form compares shifted
matrices, the table form works on the flattened list values plus their row offsets, so rows of
different lengths need no loop.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simlake import schemas

log = logging.getLogger(__name__)


class SpikeTrains(NamedTuple):
    """Spike times of many trials: trial k's spikes are ``times[offsets[k]:offsets[k + 1]]``."""

    offsets: np.ndarray  # int64, length n_trials + 1
    times: np.ndarray  # float64

    def per_trial(self) -> list[np.ndarray]:
        """One array of spike times per trial."""
        return [self.times[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]


def detect_spikes(t: np.ndarray, vm: np.ndarray, threshold: float) -> SpikeTrains:
    """Upward crossings of ``threshold`` in every row of ``vm`` (shape (n_trials, n_times)).

    ``t`` (length n_times) is the time axis shared by all rows.
    """
    t = np.asarray(t, dtype=np.float64)
    vm = np.asarray(vm, dtype=np.float64)
    if vm.ndim != 2 or vm.shape[1] != t.shape[0]:
        raise ValueError(f"vm must have shape (n_trials, {t.shape[0]}), got {vm.shape}")
    hit = (vm[:, :-1] < threshold) & (vm[:, 1:] >= threshold)
    rows, cols = np.nonzero(hit)  # row-major: by trial, then by time
    offsets = np.searchsorted(rows, np.arange(vm.shape[0] + 1), side="left").astype(np.int64)
    return SpikeTrains(offsets, t[cols + 1])


def detect_spikes_flat(t: np.ndarray, vm: np.ndarray, offsets: np.ndarray,
                       threshold: float) -> SpikeTrains:
    """Upward crossings in ragged traces: row k is ``t/vm[offsets[k]:offsets[k + 1]]``."""
    t = np.asarray(t, dtype=np.float64)
    vm = np.asarray(vm, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    if t.shape != vm.shape or offsets[-1] != len(vm) or offsets[0] != 0:
        raise ValueError("t and vm must be equally long and offsets must span them")
    hit = (vm[:-1] < threshold) & (vm[1:] >= threshold)  # hit[i]: crossing at sample i + 1
    starts = offsets[1:-1]
    starts = starts[(starts > 0) & (starts < len(vm))]
    hit[starts - 1] = False  # no crossing between the last sample of a row and the next row
    idx = np.flatnonzero(hit) + 1
    out_offsets = np.searchsorted(idx, offsets, side="left").astype(np.int64)
    return SpikeTrains(out_offsets, t[idx])


def spike_times_table(voltage: pa.Table, threshold: float) -> pa.Table:
    """``schemas.SPIKE_TIMES`` rows (one per trial, empty list if no spike) of a voltage table."""
    trains = _trains(voltage, threshold)
    columns = [voltage.column(n).combine_chunks().cast(schemas.SPIKE_TIMES.field(n).type)
               for n in ("sim_trial_index", "sim_run", "trialnr")]
    columns += [_repeat_threshold(threshold, voltage.num_rows), _list(trains)]
    return pa.Table.from_arrays(columns, schema=schemas.SPIKE_TIMES)


def dendritic_spike_times_table(dend: pa.Table, threshold: float) -> pa.Table:
    """``schemas.DENDRITIC_SPIKE_TIMES`` rows of a ``schemas.DENDRITIC_RECORDINGS`` table."""
    trains = _trains(dend, threshold)
    schema = schemas.DENDRITIC_SPIKE_TIMES
    key = [dend.column(n).combine_chunks().cast(schema.field(n).type)
           for n in ("sim_trial_index", "sim_run", "trialnr")]
    site = dend.column("recording_site").combine_chunks().cast(pa.string())
    columns = [site, _repeat_threshold(threshold, dend.num_rows), *key, _list(trains)]
    return pa.Table.from_arrays(columns, schema=schema)


def _trains(table: pa.Table, threshold: float) -> SpikeTrains:
    t_col = table.column("t").combine_chunks()
    v_col = table.column("vm").combine_chunks()
    t_len = pc.fill_null(pc.list_value_length(t_col), 0).to_numpy(zero_copy_only=False)
    v_len = pc.fill_null(pc.list_value_length(v_col), 0).to_numpy(zero_copy_only=False)
    if not np.array_equal(t_len, v_len):
        row = int(np.argmax(t_len != v_len))
        raise ValueError(f"row {row}: t has {t_len[row]} values but vm has {v_len[row]}")
    offsets = np.zeros(len(t_len) + 1, dtype=np.int64)
    np.cumsum(t_len, out=offsets[1:])
    t = pc.list_flatten(t_col).to_numpy(zero_copy_only=False)
    vm = pc.list_flatten(v_col).to_numpy(zero_copy_only=False)
    return detect_spikes_flat(t, vm, offsets, threshold)


def _repeat_threshold(threshold: float, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(float(threshold), pa.float64()), n)


def _list(trains: SpikeTrains) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(trains.offsets.astype(np.int32)),
                                    pa.array(trains.times, pa.float64()))

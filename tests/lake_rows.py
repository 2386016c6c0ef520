"""Rows of the ingest's tables for tests of the Delta layer."""

from __future__ import annotations

import pyarrow as pa

from simlake import schemas


def spike_rows(sim_run: str, trials, threshold: float, value: float) -> pa.Table:
    """``spike_times`` rows of ``trials`` of ``sim_run``: one spike at ``value`` each."""
    n = len(trials)
    return pa.table({
        "sim_trial_index": [schemas.sim_trial_index(sim_run, t) for t in trials],
        "sim_run": [sim_run] * n,
        "trialnr": list(trials),
        "threshold": [threshold] * n,
        "spike_times": [[value]] * n,
    }, schema=schemas.SPIKE_TIMES)

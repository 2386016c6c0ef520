"""Passive re-simulation of a stored trial in NEURON (runs when ``neuron`` is installed)."""

from __future__ import annotations

import numpy as np
import pytest

from cellnet_data import ACTIVATIONS, STI_OK, build_db, lengths
from simlake.cellnet import load_initialized_cell_and_evokedNW_from_db

pytestmark = pytest.mark.neuron
pytest.importorskip("neuron")


def _onsets(t: np.ndarray, v: np.ndarray, rate: float) -> np.ndarray:
    """Times where dv/dt first rises above ``rate`` (mV/ms)."""
    dvdt = np.gradient(v, t)
    above = dvdt > rate
    return t[1:][above[1:] & ~above[:-1]]


def test_passive_resimulation_follows_the_stored_inputs(tmp_path):
    db, _ = build_db(tmp_path)
    cell, net = load_initialized_cell_and_evokedNW_from_db(db, STI_OK)
    ncell = cell.to_neuron()
    assert [round(s.L, 6) for s in ncell.sections] == pytest.approx(lengths())
    assert "Ca_HVA" in ncell.missing_mechanisms  # named in the params, not compiled
    placed = net.to_neuron(ncell)
    assert "glutamate_syn" in placed.missing_mechanisms  # replaced by Exp2Syn
    assert len(placed.synapses) == len(ACTIVATIONS)

    t, v = ncell.run(tstop=150.0, dt=0.025)
    inputs = sorted(x for times in ACTIVATIONS.values() for x in times)
    onsets = _onsets(t, v, rate=0.05)
    assert len(onsets) == len(inputs), (onsets, inputs)
    assert np.all(onsets >= np.array(inputs)) and np.all(onsets - np.array(inputs) < 1.0)
    rest = v[t < inputs[0]]
    assert np.ptp(rest) < 1e-6 and rest[0] == pytest.approx(-75.0)
    for time in inputs:  # each input depolarises the soma
        before = v[np.searchsorted(t, time) - 1]
        peak = v[(t > time) & (t < time + 15)].max()
        assert peak - before > 1.0

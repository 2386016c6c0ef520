"""Voltage traces: somatic and two dendritic traces per trial, from the trial's activations.

Linear filtering in the frequency domain: EPSPs driven by the synaptic activations, noise,
somatic APs (none in ~20 % of trials) with back-propagating copies and calcium events on the
dendrites. Not a neuron model: traces that look like membrane potentials, cheap to make.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from simlake.synth.params import DT


def _ap(t: np.ndarray, rise: float, decay: float) -> np.ndarray:
    up = 0.5 * (1.0 - np.cos(np.pi * np.minimum(t, rise) / rise))
    return np.where(t < rise, up, np.exp(-(t - rise) / decay))


def _spike_samples(rng: np.random.Generator, n_times: int) -> np.ndarray:
    """Sample indices of somatic APs: none in ~20 % of trials, else 1-4, >= 12 ms apart."""
    slot = int(12.0 / DT)
    n_slots = (n_times - int(6.0 / DT)) // slot
    if n_slots < 1 or rng.random() < 0.2:
        return np.empty(0, np.int64)
    k = min(n_slots, 1 + rng.poisson(1.5))
    slots = np.sort(rng.choice(n_slots, size=k, replace=False))
    return slots * slot + int(1.0 / DT) + rng.integers(0, slot - int(6.0 / DT), k)


class _Spectra:
    """Linear filtering in the frequency domain; padding >= 2 n_times, so nothing wraps."""

    def __init__(self, n_times: int, n_trials: int) -> None:
        self.n_times, self.n_trials = n_times, n_trials
        self.nfft = 1 << int(np.ceil(np.log2(2 * n_times + 64)))

    def kernel(self, ms: float, fn: Any, delay_ms: float = 0.0) -> np.ndarray:
        t = np.arange(min(int(ms / DT), self.n_times)) * DT
        shape = fn(t)
        padded = np.zeros(self.nfft)
        start = int(round(delay_ms / DT))
        padded[start:start + t.size] = shape
        return np.fft.rfft(padded)[:, None]

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.fft.rfft(x, self.nfft, axis=0)

    def back(self, spectrum: np.ndarray) -> np.ndarray:
        return np.fft.irfft(spectrum, self.nfft, axis=0)[:self.n_times]

    def white(self, rng: np.random.Generator) -> np.ndarray:
        """Spectrum of unit-variance white noise."""
        shape = (self.nfft // 2 + 1, self.n_trials)
        scale = np.sqrt(self.nfft / 2.0)
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * scale


def _normalised(values: np.ndarray, how: str) -> np.ndarray:
    norm = values.max() if how == "peak" else np.sqrt(np.sum(values**2))
    return values / norm if values.size and norm > 0 else values


def simulate(rng: np.random.Generator, activations: np.ndarray) -> list[np.ndarray]:
    """Soma trace and two dendritic traces, (n_times, n_trials) each, from the activations."""
    n_times, n_trials = activations.shape
    sp = _Spectra(n_times, n_trials)
    epsp = sp.kernel(40.0, lambda t: _normalised(np.exp(-t / 5.0) - np.exp(-t / 0.5), "peak"))
    noise = sp.kernel(20.0, lambda t: _normalised(np.exp(-t / 3.0), "l2"))
    ap = sp.kernel(60.0, lambda t: 100.0 * _ap(t, 0.4, 0.45) - 9.0 * _normalised(
        np.exp(-t / 8.0) - np.exp(-t / 1.5), "peak"))
    ca = sp.kernel(60.0, lambda t: np.where(t < 17.0, _ap(t, 2.0, 1e9),
                                            np.exp(-(t - 17.0) / 8.0)))

    def bap(delay_ms: float) -> np.ndarray:
        return sp.kernel(30.0, lambda t: _ap(t, 0.9, 1.6), delay_ms)

    drive = sp.back(sp.forward(activations) * epsp)
    mean = float(drive.mean())
    drive *= 4.0 / mean if mean > 0 else 0.0
    spikes = np.zeros((n_times, n_trials))
    calcium = np.zeros((n_times, n_trials))
    for j in range(n_trials):
        idx = _spike_samples(rng, n_times)
        spikes[idx, j] = 1.0
        if rng.random() < 0.4:
            calcium[idx[0] if idx.size else int(rng.integers(0, n_times)), j] = 1.0
    rest = np.asarray(rng.uniform(-65.0, -58.0, n_trials))[None, :]
    s_spec, c_spec = sp.forward(spikes), sp.forward(calcium)
    soma = (rest + 12.0 * np.tanh(drive / 12.0)
            + sp.back(s_spec * ap + 0.8 * sp.white(rng) * noise))
    distal = (rest + 2.0 + 15.0 * np.tanh(1.6 * drive / 15.0)
              + sp.back(30.0 * s_spec * bap(0.8) + 45.0 * c_spec * ca
                        + 1.2 * sp.white(rng) * noise))
    proximal = (rest + 1.0 + 13.0 * np.tanh(1.3 * drive / 13.0)
                + sp.back(60.0 * s_spec * bap(0.3) + 18.0 * c_spec * ca + sp.white(rng) * noise))
    return [np.clip(v, -95.0, 70.0) for v in (soma, distal, proximal)]


def crossings(v: np.ndarray, threshold: float) -> np.ndarray:
    return np.sum((v[:-1] < threshold) & (v[1:] >= threshold), axis=0)



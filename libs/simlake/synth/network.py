"""Synapses and presynaptic cells: who the cell's inputs are (``.syn``, ``.con``, rates).

A :class:`Population` names the presynaptic cell types and how synapses, cells and firing rates
are shared among them: the small one of the default trees (5 types) or a real-shaped one (278
types such as ``L5tt_C2`` or ``VPM_E1``, ~25,000 synapses and cells, sparse activity: about a
fifth of the cells fire in a 345 ms trial).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from simlake.synth.morphology import Morphology


@dataclass(frozen=True, eq=False)
class Population:
    """Presynaptic cell types and their shares of synapses, cells, and rates."""

    names: tuple[str, ...]
    synapse_shares: np.ndarray
    cell_shares: np.ndarray
    median_rate_hz: np.ndarray
    rate_sigma: float  #: sigma of the lognormal rate distribution within a type
    inhibitory: np.ndarray  #: bool per type (GABA receptors in the param file)
    max_rate_hz: float = 80.0
    #: synapses go to a cell with weight rate**-bias (0: uniformly): in real networks the many
    #: synapses come from the many sparsely firing cells
    synapse_rate_bias: float = 0.0


def small_population() -> Population:
    """The 5 cell types of the default trees."""
    return Population(("L2_C2", "L4ss_C2", "L5tt_C2", "VPM_C2", "L1_B1"),
                      np.array([0.2, 0.25, 0.25, 0.2, 0.1]), np.array([0.25, 0.3, 0.2, 0.15, 0.1]),
                      np.array([2.0, 4.0, 5.0, 8.0, 1.5]), 1.2,
                      np.array([False, False, False, False, True]))


_CLASSES = ("L2", "L34", "L4py", "L4sp", "L4ss", "L5st", "L5tt", "L6cc", "L6ccinv", "L6ct",
            "VPM", "L1", "L23Trans", "L45Sym", "L45Peak", "L56Trans", "SymLocal1", "SymLocal2",
            "SymLocal3", "SymLocal4", "SymLocal5", "SymLocal6")
_INHIBITORY = ("L1", "L23Trans", "L45Sym", "L45Peak", "L56Trans", "SymLocal")
_COLUMNS = tuple(f"{row}{k}" for row in "ABCDE" for k in range(1, 5)) + (
    "Alpha", "Beta", "Gamma", "Delta")


def real_population(rng: np.random.Generator, n_types: int = 278) -> Population:
    """``n_types`` cell types named ``<class>_<column>`` (ISF's barrel-cortex naming)."""
    combos = [f"{c}_{col}" for c in _CLASSES for col in _COLUMNS]
    pick = np.sort(rng.choice(len(combos), size=min(n_types, len(combos)), replace=False))
    names = tuple(combos[i] for i in pick.tolist())
    home = np.array([n.endswith(("_C2", "_C1", "_C3", "_B2", "_D2")) for n in names])
    shares = rng.lognormal(0.0, 1.0, len(names)) * np.where(home, 4.0, 1.0)
    inhibitory = np.array([n.startswith(_INHIBITORY) for n in names])
    # about a fifth of the cells fire at least once in 345 ms, a few fire at tens of Hz
    rates = np.where(inhibitory, 0.75, 0.3) * rng.lognormal(0.0, 0.5, len(names))
    return Population(names, shares, shares, rates, 1.0, inhibitory, 25.0, 0.4)


def _split(total: int, shares: Sequence[float] | np.ndarray) -> np.ndarray:
    raw = np.asarray(shares) / np.sum(shares) * total
    out = np.maximum(1, np.floor(raw).astype(int))
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    i = 0
    while out.sum() < total:
        out[order[i % len(out)]] += 1
        i += 1
    while out.sum() > total:
        out[np.argmax(out)] -= 1
    return out


@dataclass(frozen=True, eq=False)
class SynapseLayout:
    """The ``.syn`` content: synapses grouped by celltype, IDs from 0 per celltype."""

    celltype: np.ndarray  #: celltype index per synapse
    synapse_id: np.ndarray
    section: np.ndarray
    point: np.ndarray
    x: tuple[float, ...]
    soma_distance: tuple[float, ...]
    labels: tuple[str, ...]
    population: Population

    def syn_text(self, hoc_name: str, number_text: Callable[[float], str] = repr) -> str:
        """The ``.syn`` file; ``number_text`` prints the section x values."""
        head = ["# Synapse distribution file", f"# corresponding to cell: {hoc_name}",
                "# Type - section - section.x", ""]
        names = self.population.names
        body = [f"{names[c]}\t{s}\t{number_text(x)}"
                for c, s, x in zip(self.celltype.tolist(), self.section.tolist(), self.x,
                                   strict=True)]
        return "\n".join(head + body) + "\n"


def make_synapses(rng: np.random.Generator, morph: Morphology, n_synapses: int,
                  population: Population) -> SynapseLayout:
    """Place ``n_synapses`` synapses on points of ``morph`` (a few on the soma and the axon)."""
    per_type = _split(n_synapses, population.synapse_shares)
    weights = np.array([morph.length(s) for s in range(len(morph.names))])
    weights[0] = 30.0
    is_axon = np.array([n.startswith("axon") for n in morph.names])
    weights[is_axon] *= 0.05
    weights /= weights.sum()
    cts, ids, secs, pts = [], [], [], []
    for c, n in enumerate(per_type):
        sec = rng.choice(len(morph.names), size=n, p=weights)
        npts = np.array([len(morph.arc[s]) for s in sec])
        pt = np.floor(rng.random(n) * npts).astype(int)
        order = np.lexsort((pt, sec))
        cts.append(np.full(n, c))
        ids.append(np.arange(n))
        secs.append(sec[order])
        pts.append(pt[order])
    celltype, section, point = np.concatenate(cts), np.concatenate(secs), np.concatenate(pts)
    xs = tuple(float(morph.arc[s][p] / morph.arc[s][-1])
               for s, p in zip(section.tolist(), point.tolist(), strict=True))
    dists = tuple(morph.soma_distance(s, x) for s, x in zip(section.tolist(), xs, strict=True))
    labels = tuple(morph.label(s) for s in section.tolist())
    return SynapseLayout(celltype, np.concatenate(ids), section, point, xs, dists, labels,
                         population)


@dataclass(frozen=True, eq=False)
class Network:
    """One network realisation: presynaptic cells, their rates, and the ``.con`` wiring."""

    name: str
    layout: SynapseLayout
    cell_numbers: tuple[int, ...]
    synapse_cell: np.ndarray  #: presynaptic cell ID (within its celltype) per synapse
    rates_hz: np.ndarray  #: per global cell (celltype blocks in population order)

    @property
    def cell_offsets(self) -> np.ndarray:
        """Global index of the first cell of each celltype."""
        return np.concatenate([[0], np.cumsum(self.cell_numbers)[:-1]])

    @property
    def synapse_global_cell(self) -> np.ndarray:
        """Global presynaptic cell index per synapse."""
        return self.cell_offsets[self.layout.celltype] + self.synapse_cell

    def con_text(self, syn_ref: str) -> str:
        """The ``.con`` file; lines sorted by celltype, cell ID, synapse ID."""
        lay = self.layout
        order = np.lexsort((lay.synapse_id, self.synapse_cell, lay.celltype))
        head = ["# Anatomical connectivity realization file; only valid with synapse realization:",
                f"# {syn_ref}", "# Type - cell ID - synapse ID", ""]
        names = lay.population.names
        body = [f"{names[c]}\t{cell}\t{sid}" for c, cell, sid in zip(
            lay.celltype[order].tolist(), self.synapse_cell[order].tolist(),
            lay.synapse_id[order].tolist(), strict=True)]
        return "\n".join(head + body) + "\n"


def make_network(rng: np.random.Generator, name: str, layout: SynapseLayout,
                 n_cells: int) -> Network:
    """Draw cell numbers' wiring and firing rates (lognormal, a heavy tail up to 80 Hz)."""
    population = layout.population
    numbers = _split(n_cells, population.cell_shares)
    syn_cell = np.empty(len(layout.celltype), dtype=np.int64)
    rates = []
    for c, n in enumerate(numbers):
        mask = layout.celltype == c
        if population.synapse_rate_bias:
            rate = np.minimum(population.max_rate_hz, population.median_rate_hz[c]
                              * rng.lognormal(0.0, population.rate_sigma, n))
            weight = rate ** -population.synapse_rate_bias
            syn_cell[mask] = rng.choice(n, size=int(mask.sum()), p=weight / weight.sum())
        else:
            syn_cell[mask] = rng.integers(0, n, int(mask.sum()))
            rate = np.minimum(population.max_rate_hz, population.median_rate_hz[c]
                              * rng.lognormal(0.0, population.rate_sigma, n))
        rates.append(rate)
    return Network(name, layout, tuple(int(n) for n in numbers), syn_cell, np.concatenate(rates))



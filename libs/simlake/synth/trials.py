"""Per-trial files: ``simulation_run<NNNN>_synapses.csv`` and ``..._presynaptic_cells.csv``.

Each presynaptic cell fires a Poisson train at its rate; a synapse's activation times are exactly
its cell's spike times (the same bytes are copied). Lines are assembled by gathering pre-printed
line prefixes and the printed spike times, without a per-line Python loop.

``listed="all"`` writes a line for every synapse and cell (silent ones with an empty time list);
``listed="active"`` writes, as simrun does, the synapses and cells that were active, plus a few
silent ones (so the empty-list variant stays in the tree).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simlake.synth.network import Network
from simlake.synth.numbers import Printer, gather, pack
from simlake.synth.params import DT, T_RECORD

SYN_HEADER = ("# synapse type\tsynapse ID\tsoma distance\tsection ID\tsection pt ID"
              "\tdendrite label\tactivation times")
CELL_HEADER = "# presynaptic cell type\tcell ID\tspike times"
SILENT_LISTED = 0.005  #: share of silent synapses/cells listed when ``listed="active"``


@dataclass(frozen=True, eq=False)
class Statics:
    """Pre-formatted per-synapse and per-cell line prefixes of a network, as one byte buffer."""

    buf: np.ndarray
    syn_start: np.ndarray
    syn_len: np.ndarray
    cell_start: np.ndarray
    cell_len: np.ndarray
    newline: int
    syn_cell: np.ndarray  #: global cell per synapse
    synapses_per_cell: np.ndarray
    expected_spikes: np.ndarray


def make_statics(net: Network, t_stop: float,
                 number_text: Callable[[float], str] = repr) -> Statics:
    """Line prefixes of ``net``; ``number_text`` prints the soma distances."""
    lay = net.layout
    names = lay.population.names
    syn = [f"{names[c]}\t{i}\t{number_text(d)}\t{s}\t{p}\t{lab}\t"
           for c, i, d, s, p, lab in zip(lay.celltype.tolist(), lay.synapse_id.tolist(),
                                         lay.soma_distance, lay.section.tolist(),
                                         lay.point.tolist(), lay.labels, strict=True)]
    cells = [f"{name}\t{i}\t" for name, n in zip(names, net.cell_numbers, strict=True)
             for i in range(n)]
    sbuf, sstart, slen = pack(syn)
    cbuf, cstart, clen = pack(cells)
    buf = np.concatenate([sbuf, cbuf, np.frombuffer(b"\n", np.uint8)])
    gcell = net.synapse_global_cell
    return Statics(buf, sstart, slen, cstart + sbuf.size, clen, sbuf.size + cbuf.size, gcell,
                   np.bincount(gcell, minlength=len(net.rates_hz)),
                   net.rates_hz * t_stop / 1000.0)


@dataclass(frozen=True, eq=False)
class Trial:
    """The two files of one trial and its activations per voltage sample."""

    synapses: bytes
    cells: bytes
    activations: np.ndarray  #: synaptic activations per voltage sample
    synapse_lines: int
    cell_lines: int


def make_trial(rng: np.random.Generator, st: Statics, printer: Printer, t_stop: float,
               n_times: int, listed: str = "all") -> Trial:
    """Draw one trial's spikes and print its synapse and presynaptic-cell files."""
    n_cells = st.expected_spikes.size
    counts = rng.poisson(st.expected_spikes)
    cell_of = np.repeat(np.arange(n_cells), counts)
    codes = printer.encode(rng.uniform(0.001, t_stop, cell_of.size))
    order = np.lexsort((codes, cell_of))
    codes, cell_of = codes[order], cell_of[order]
    flat, toklen = printer.tokens(codes, ord(","))
    clen = np.bincount(cell_of, weights=toklen, minlength=n_cells).astype(np.int64)
    cstart = np.cumsum(clen) - clen + st.buf.size
    src = np.concatenate([st.buf, flat])
    c = st.syn_cell
    no_tab = (counts[c] == 0) & (rng.random(c.size) < 0.5)
    syn_rows = np.arange(c.size)
    cell_rows = np.arange(n_cells)
    if listed == "active":
        syn_rows = syn_rows[(counts[c] > 0) | (rng.random(c.size) < SILENT_LISTED)]
        cell_rows = cell_rows[(counts > 0) | (rng.random(n_cells) < SILENT_LISTED)]
    elif listed != "all":
        raise ValueError(f"listed must be 'all' or 'active', got {listed!r}")
    cs = c[syn_rows]
    ones = np.ones(syn_rows.size, np.int64)
    syn = gather(src, np.column_stack([st.syn_start[syn_rows], cstart[cs],
                                       ones * st.newline]).ravel(),
                 np.column_stack([st.syn_len[syn_rows] - no_tab[syn_rows], clen[cs],
                                  ones]).ravel())
    ones = np.ones(cell_rows.size, np.int64)
    cells = gather(src, np.column_stack([st.cell_start[cell_rows], cstart[cell_rows],
                                         ones * st.newline]).ravel(),
                   np.column_stack([st.cell_len[cell_rows], clen[cell_rows], ones]).ravel())
    sample = np.rint((printer.floats(codes) - T_RECORD) / DT).astype(np.int64)
    inside = (sample >= 0) & (sample < n_times)
    weights = st.synapses_per_cell[cell_of][inside]
    hist = np.bincount(sample[inside], weights=weights, minlength=n_times)
    return Trial(SYN_HEADER.encode() + b"\n" + syn.tobytes(),
                 CELL_HEADER.encode() + b"\n" + cells.tobytes(), hist,
                 int(syn_rows.size), int(cell_rows.size))

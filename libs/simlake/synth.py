"""Deterministic generator of raw simrun trees (``spec/simrun-format.md``), all variants in one.

``generate_tree(out_dir, runs=6, ...)`` writes, for a given seed, a byte-identical tree::

    <out>/
      _anatomy/                    not a sim-run folder (discovery ignores it)
        morphology/L5tt_synth.hoc
        network/L5tt_synth.syn  L5tt_synth_A.con  L5tt_synth_B.con
        recsites/apical_proximal_distal_rec_sites.landmarkAscii
        recsites/apical_trunk_rec_sites.landmarkAscii
      results/<YYYYMMDD-HHMM_uid>/ depth 2
      results/batch2/<...>/        depth 3
      <YYYYMMDD-HHMM_uid>/         depth 1
      results/<..._running>/       in progress: skip it, and the sim-run folder nested in it

The first six folders cover the variants (fewer runs: the first ``runs`` of them; more: a cycle of
ordinary folders, see ``_plan``):

====  ===============  ====  =======  ===================  ========  ==========================
 i    parent           era   padding  trial numbers        voltage   other
====  ===============  ====  =======  ===================  ========  ==========================
 0    results          old   4        0..n-1               csv       hostname marker
 1    results          new   4        non-consecutive      csv       ``.param.TEMPLATE``/``.old``
 2    results/batch2   old   6        0..n-1               csv+npz   ``seed_<pid>_`` dend prefix
 3    results/batch2   new   6        non-consecutive      csv       ``.param.old``
 4    (root)           old   4        0..n-1               npz only  ``.param.TEMPLATE``
 5    (root)           new   4        0..n-1               csv       hostname marker
====  ===============  ====  =======  ===================  ========  ==========================

Neuron params: variant ``N1`` (folders 0, 1, 2, 5, ...) and ``N2`` (3, 4); network params ``A``
(0, 2, 3, 5, ...) and ``B`` (1, 4, ...). Both networks share the ``.syn``; their ``.con`` differ.

Data are coherent: a synapse's activation times are exactly the spike times of its presynaptic
cell (per the ``.con``), somatic EPSPs follow the trial's activations, ``soma_distance`` is the
true path distance of the synapse's ``.hoc`` point. Every number in the csv files is printed as
``str(float)`` prints it, without a per-value Python loop (see ``_tokens_chunk``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import io
import logging
import os
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DT = 0.025  #: integration / sampling step (ms)
T_RECORD = 100.0  #: time of the first voltage row (ms)
CELLTYPES = ("L2_C2", "L4ss_C2", "L5tt_C2", "VPM_C2", "L1_B1")
_SYNAPSE_SHARES = (0.2, 0.25, 0.25, 0.2, 0.1)
_CELL_SHARES = (0.25, 0.3, 0.2, 0.15, 0.1)
_MEDIAN_RATE_HZ = (2.0, 4.0, 5.0, 8.0, 1.5)
_LABELS = {"soma": "Soma", "dend": "Dendrite", "apical": "ApicalDendrite", "axon": "AIS"}
ANATOMY_DIR = "_anatomy"
SYN_HEADER = ("# synapse type\tsynapse ID\tsoma distance\tsection ID\tsection pt ID"
              "\tdendrite label\tactivation times")
CELL_HEADER = "# presynaptic cell type\tcell ID\tspike times"


# --------------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class FolderReport:
    """What was written into one sim-run folder."""

    sim_run: str  #: path relative to the tree root, ``/``-separated
    era: str  #: ``"old"`` (uid = pid) or ``"new"`` (uid = ``seed<seed>_pid<pid>``)
    uid: str
    voltage_format: str  #: ``"csv"``, ``"npz"`` or ``"csv+npz"``
    voltage_file: str  #: the file a reader must use (``.csv`` if present)
    trial_numbers: tuple[int, ...]  #: ascending = voltage column order
    padding: int  #: digits of ``<NNNN>`` in the trial file names
    dendritic_labels: tuple[str, ...]
    dendritic_prefix: str  #: ``"<uid>_"`` or ``"seed_<pid>_"``
    neuron_variant: str
    network_variant: str
    leftovers: tuple[str, ...]  #: file names that match no pattern and must be ignored
    synapse_lines: int  #: data lines over all trial synapse files
    cell_lines: int
    soma_spike_counts: tuple[int, ...]  #: upward 0 mV crossings per trial (trial_numbers order)

    @property
    def n_trials(self) -> int:
        """Number of trials of the folder."""
        return len(self.trial_numbers)

    def sim_trial_indices(self) -> list[str]:
        """``<sim_run>/<trialnr padded to 6>`` of every trial, ascending."""
        return [f"{self.sim_run}/{n:06d}" for n in self.trial_numbers]


@dataclass(frozen=True)
class SynthReport:
    """What :func:`generate_tree` wrote."""

    root: str
    anatomy_dir: str
    folders: tuple[FolderReport, ...]
    running_folder: str  #: relative path of the ``_running`` folder (skipped with all below it)
    running_files: tuple[str, ...]  #: files below it, relative to the root
    n_times: int
    t_stop: float
    seed: int
    seconds: float = field(compare=False, default=0.0)

    @property
    def n_trials(self) -> int:
        """Trials over all (non-running) sim-run folders."""
        return sum(f.n_trials for f in self.folders)

    @property
    def n_synapse_lines(self) -> int:
        """Data lines over all synapse files of all (non-running) folders."""
        return sum(f.synapse_lines for f in self.folders)

    @property
    def n_cell_lines(self) -> int:
        """Data lines over all presynaptic-cell files of all (non-running) folders."""
        return sum(f.cell_lines for f in self.folders)

    def sim_trial_indices(self) -> list[str]:
        """Every ``sim_trial_index`` of the tree, sorted."""
        return sorted(s for f in self.folders for s in f.sim_trial_indices())

    def summary_line(self) -> str:
        """One line: folders, trials, lines, time."""
        return (f"{len(self.folders)} sim-run folders, {self.n_trials} trials, "
                f"{self.n_times} time points, {self.n_synapse_lines} synapse lines, "
                f"{self.n_cell_lines} cell lines, plus {self.running_folder} (to skip); "
                f"{self.seconds:.1f} s")


# --------------------------------------------------------------------------------------------
# Numbers as text: str(float) of every value, vectorised.
#
# A value is quantised to an integer n of 1e-10 units; its text is the decimal n / 10**10 with
# trailing zeros stripped (one fractional digit kept). For 1e-4 <= |v| < 1e5 that decimal has at
# most 15 significant digits, so it is exactly repr() of the float nearest to it, and that float is
# n / 1e10 (a correctly rounded IEEE division of two exact doubles). Values in (0, 1e-4) would be
# printed in exponent notation by repr(): they are nudged to +-1e-4.
#
# Each token is laid out in 20 bytes (5 little-endian uint32 words filled from digit tables):
#   [0, 0, '-', d4] [d3 d2 d1 d0] ['.', f1, f2, f3] [f4 f5 f6 f7] [f8 f9 f10 sep]
# and a per-token keep mask (one of 100 patterns: sign, 1-5 integer digits, 1-10 fraction
# digits) squeezes out the unused bytes.

_DEC = 10
_SCALE = 10**_DEC
_MIN_UNITS = 10**6
_MAX_ABS = 1e5
_CHUNK = 1 << 16


def _digit_words(width: int, prefix: bytes = b"") -> np.ndarray:
    rows = [(prefix + f"{i:0{width}d}".encode()).ljust(4, b"\0") for i in range(10**width)]
    return np.frombuffer(b"".join(rows), dtype="<u4")


def _trailing_zeros(width: int) -> np.ndarray:
    texts = (f"{i:0{width}d}" for i in range(10**width))
    return np.array([len(t) - len(t.rstrip("0")) for t in texts], dtype=np.int64)


def _keep_patterns() -> np.ndarray:
    col = np.arange(20)
    pat = np.zeros((2, 5, 10, 20), bool)
    for neg in range(2):
        for nint in range(1, 6):
            for nfrac in range(1, 11):
                row = ((col >= 8 - nint) & (col <= 8 + nfrac)) | (col == 19)
                row[2] = bool(neg)
                pat[neg, nint - 1, nfrac - 1] = row
    return pat.reshape(100, 20)


_WORDS4 = _digit_words(4)
_WORDS3 = _digit_words(3)
_WORDS_DOT3 = _digit_words(3, b".")
_TZ3 = _trailing_zeros(3)
_TZ4 = _trailing_zeros(4)
_KEEP = _keep_patterns()
_POW10 = 10 ** np.arange(1, 5, dtype=np.int64)


def _quantise(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.size and not np.all(np.abs(v) < _MAX_ABS):
        raise ValueError(f"value out of the printable range |v| < {_MAX_ABS:g}")
    n = np.rint(v * _SCALE).astype(np.int64)
    small = (n != 0) & (np.abs(n) < _MIN_UNITS)
    n[small] = np.sign(n[small]) * _MIN_UNITS
    return n


def _as_float(units: np.ndarray) -> np.ndarray:
    return units / float(_SCALE)


def _tokens_chunk(n: np.ndarray, sep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    neg = n < 0
    ip, fp = np.divmod(np.abs(n), _SCALE)
    top, low = np.divmod(ip, 10**4)
    a, rest = np.divmod(fp, 10**7)
    b, c = np.divmod(rest, 10**3)
    words = np.empty((n.size, 5), "<u4")
    words[:, 0] = (neg.astype(np.uint32) * (ord("-") << 16)) | ((top.astype(np.uint32) + 48) << 24)
    words[:, 1] = _WORDS4[low]
    words[:, 2] = _WORDS_DOT3[a]
    words[:, 3] = _WORDS4[b]
    words[:, 4] = _WORDS3[c] | (sep.astype(np.uint32) << 24)
    nint = 1 + np.searchsorted(_POW10, ip, side="right")
    nfrac = np.where(c != 0, 10 - _TZ3[c],
                     np.where(b != 0, 7 - _TZ4[b], np.where(a != 0, 3 - _TZ3[a], 1)))
    keep = _KEEP[neg * 50 + (nint - 1) * 10 + (nfrac - 1)]
    return words.view(np.uint8).reshape(n.size, 20)[keep], neg + nint + nfrac + 2


def _fixed_point_tokens(units: np.ndarray, sep: Any) -> tuple[np.ndarray, np.ndarray]:
    """Text of every value (row-major) followed by its separator byte, concatenated.

    Returns ``(bytes as uint8 array, token lengths)``. ``sep`` is a byte value or an array of them
    broadcastable to ``units``.
    """
    units = np.ascontiguousarray(units, dtype=np.int64)
    seps = np.broadcast_to(np.asarray(sep, dtype=np.uint8), units.shape).ravel()
    units = units.ravel()
    if units.size == 0:
        return np.empty(0, np.uint8), np.empty(0, np.int64)
    parts = [_tokens_chunk(units[i:i + _CHUNK], seps[i:i + _CHUNK])
             for i in range(0, units.size, _CHUNK)]
    return (np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]).astype(np.int64))


def _gather(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate the byte ranges ``buf[s:s+l]`` in order, vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    idx = np.repeat(np.asarray(starts, dtype=np.int64) - offsets, lengths)
    idx += np.arange(idx.size, dtype=np.int64)
    return buf[idx]


def _pack(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    encoded = [s.encode() for s in strings]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return buf, np.cumsum(lengths) - lengths, lengths


def _table_bytes(time_units: np.ndarray, value_units: np.ndarray) -> bytes:
    """A voltage trace file: header, then ``t`` and one column per trial."""
    header = "\t".join(["t"] + [f"Vm run {i:02d}" for i in range(value_units.shape[1])])
    mat = np.column_stack([time_units, value_units])
    seps = np.full(mat.shape, ord("\t"), np.uint8)
    seps[:, -1] = ord("\n")
    flat, _ = _fixed_point_tokens(mat, seps)
    return header.encode() + b"\n" + flat.tobytes()


def _write_npz(path: str, array: np.ndarray) -> None:
    """``np.savez(path, array)`` with a fixed zip timestamp, so the bytes are reproducible."""
    payload = io.BytesIO()
    np.lib.format.write_array(payload, np.ascontiguousarray(array), allow_pickle=False)
    info = zipfile.ZipInfo("arr_0.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(info, payload.getvalue())


def _write(path: str, data: bytes | str) -> None:
    with open(path, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)


# --------------------------------------------------------------------------------------------
# Morphology

# name, parent, parent x, target length (um), main direction, start diameter
_SECTION_PLAN: tuple[tuple[str, str, float, float, tuple[float, float, float], float], ...] = (
    ("dend_1_0", "soma", 0.5, 60.0, (1.0, -0.3, 0.2), 2.4),
    ("dend_1_1", "dend_1_0", 1.0, 120.0, (1.0, -0.6, 0.1), 1.4),
    ("dend_1_2", "dend_1_0", 1.0, 100.0, (0.7, 0.1, 0.7), 1.3),
    ("dend_2_0", "soma", 0.5, 50.0, (-1.0, -0.4, 0.1), 2.2),
    ("dend_2_1", "dend_2_0", 0.6, 140.0, (-0.8, -0.8, -0.3), 1.2),
    ("dend_2_2", "dend_2_0", 1.0, 110.0, (-1.0, 0.2, -0.4), 1.3),
    ("dend_3_0", "soma", 0.0, 150.0, (0.2, -1.0, 0.5), 1.8),
    ("apical_1_0", "soma", 1.0, 350.0, (0.0, 1.0, 0.0), 4.5),
    ("apical_1_1", "apical_1_0", 1.0, 600.0, (0.05, 1.0, 0.02), 3.0),
    ("apical_2_0", "apical_1_0", 0.45, 180.0, (1.0, 0.5, 0.0), 1.2),
    ("apical_3_0", "apical_1_0", 0.8, 150.0, (-1.0, 0.4, 0.3), 1.1),
    ("apical_1_2", "apical_1_1", 1.0, 250.0, (0.8, 0.6, 0.0), 1.5),
    ("apical_1_3", "apical_1_1", 1.0, 280.0, (-0.7, 0.7, 0.2), 1.5),
    ("axon_1_0", "soma", 0.0, 60.0, (0.0, -1.0, 0.05), 1.5),
    ("axon_1_1", "axon_1_0", 1.0, 200.0, (0.1, -1.0, 0.0), 0.8),
)


@dataclass(frozen=True, eq=False)
class Morphology:
    """A generated cell: sections in ``create`` order (= section ID), points as printed."""

    names: tuple[str, ...]
    parents: tuple[int, ...]  #: parent section ID, -1 for the soma
    parent_x: tuple[float, ...]
    points: tuple[np.ndarray, ...]  #: per section (k, 4): x, y, z, diam
    arc: tuple[np.ndarray, ...]  #: per section, arc length from the first point to each point
    offsets: np.ndarray  #: d(parent(s), px(s)); 0 for the soma and its children

    def length(self, section: int) -> float:
        """L(s): sum of the 3D distances between consecutive points."""
        return float(self.arc[section][-1])

    def soma_distance(self, section: int, x: float) -> float:
        """Path distance d(s, x) = x * L(s) + d(parent(s), px(s)); 0 on the soma."""
        if self.parents[section] < 0:
            return 0.0
        return x * self.length(section) + float(self.offsets[section])

    def label(self, section: int) -> str:
        """ISF dendrite label of a section, from its name prefix."""
        return _LABELS[self.names[section].split("_")[0]]

    def hoc(self) -> str:
        """The NEURON hoc text: one brace-wrapped statement per line."""
        lines: list[str] = []
        for sid, name in enumerate(self.names):
            lines += [f"{{create {name}}}", f"{{access {name}}}", "{nseg = 1}", "{pt3dclear()}"]
            lines += [f"{{pt3dadd({x!r},{y!r},{z!r},{d!r})}}"
                      for x, y, z, d in self.points[sid].tolist()]
            if self.parents[sid] >= 0:
                parent = self.names[self.parents[sid]]
                lines.append(f"{{connect {name}(0), {parent}({self.parent_x[sid]:f})}}")
            lines.append("")
        return "\n".join(lines)


def _round_points(pts: np.ndarray) -> np.ndarray:
    out = np.round(pts, 4)
    out[:, 3] = np.maximum(np.round(pts[:, 3], 2), 0.3)
    return out + 0.0  # no negative zeros


def _arc(pts: np.ndarray) -> np.ndarray:
    steps = np.sqrt(np.sum(np.diff(pts[:, :3], axis=0) ** 2, axis=1))
    return np.concatenate([[0.0], np.cumsum(steps)])


def _point_at(pts: np.ndarray, arc: np.ndarray, x: float) -> np.ndarray:
    target = x * arc[-1]
    return np.array([np.interp(target, arc, pts[:, i]) for i in range(3)])


def make_morphology(rng: np.random.Generator, n_points: int = 300) -> Morphology:
    """A soma, basal dendrites, an apical tree and an axon with about ``n_points`` points."""
    lengths = np.array([p[3] for p in _SECTION_PLAN])
    budget = max(n_points - 3, 2 * len(_SECTION_PLAN))
    counts = np.maximum(2, np.round(lengths / lengths.sum() * budget).astype(int))
    soma = np.array([[0.0, -7.5, 0.0, 15.0], [0.0, 0.0, 0.0, 15.0], [0.0, 7.5, 0.0, 15.0]])
    soma[:, :3] += rng.normal(0.0, 0.3, (3, 3))
    names, parents, pxs = ["soma"], [-1], [0.0]
    points = [_round_points(soma)]
    arcs = [_arc(points[0])]
    for (name, parent, px, length, direction, diam), k in zip(_SECTION_PLAN, counts, strict=True):
        pid = names.index(parent)
        start = _point_at(points[pid], arcs[pid], px)
        main = np.asarray(direction) / np.linalg.norm(direction)
        dirs = main + rng.normal(0.0, 0.3, (k - 1, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        steps = dirs * (length / (k - 1) * rng.uniform(0.8, 1.2, (k - 1, 1)))
        xyz = np.vstack([start, start + np.cumsum(steps, axis=0)])
        diams = np.linspace(diam, diam * 0.6, k) * rng.uniform(0.95, 1.05, k)
        pts = _round_points(np.column_stack([xyz, diams]))
        names.append(name)
        parents.append(pid)
        pxs.append(px)
        points.append(pts)
        arcs.append(_arc(pts))
    offsets = np.zeros(len(names))
    for sid in range(1, len(names)):
        pid = parents[sid]
        if parents[pid] >= 0:
            offsets[sid] = pxs[sid] * arcs[pid][-1] + offsets[pid]
    return Morphology(tuple(names), tuple(parents), tuple(pxs), tuple(points), tuple(arcs),
                      offsets)


@dataclass(frozen=True)
class RecordingSite:
    """A dendritic recording site: landmark file, point and the label ISF derives."""

    file_base: str
    section: int
    point: int
    nseg: int
    x: float
    soma_distance: float
    xyz: tuple[float, float, float]

    @property
    def label(self) -> str:
        """``<file base>_ID_000_sec_<sec>_seg_<seg>_x_<x>_somaDist_<d>``."""
        seg = min(int(self.x * self.nseg), self.nseg - 1)
        return (f"{self.file_base}_ID_000_sec_{self.section:03d}_seg_{seg:03d}"
                f"_x_{self.x:.3f}_somaDist_{self.soma_distance:.1f}")

    def landmark_ascii(self) -> str:
        """Amira landmark file with this one landmark."""
        x, y, z = self.xyz
        return ("# AmiraMesh 3D ASCII 2.0\n\n\ndefine Markers 1\n\nParameters {\n"
                "    NumSets 1,\n    ContentType \"LandmarkSet\"\n}\n\n"
                "Markers { float[3] Coordinates } @1\n\n# Data section follows\n@1\n"
                f"{x!r} {y!r} {z!r}\n")


def _recording_sites(morph: Morphology) -> tuple[RecordingSite, ...]:
    sites = []
    for base, name, frac in (("apical_proximal_distal_rec_sites", "apical_1_1", 0.9),
                             ("apical_trunk_rec_sites", "apical_1_0", 0.6)):
        sid = morph.names.index(name)
        pt = int(round(frac * (len(morph.arc[sid]) - 1)))
        x = float(morph.arc[sid][pt] / morph.arc[sid][-1])
        px, py, pz = (float(v) for v in morph.points[sid][pt, :3])
        nseg = 1 + 2 * int(morph.length(sid) // 40.0)  # a d_lambda-like count, for the label
        sites.append(RecordingSite(base, sid, pt, nseg, x, morph.soma_distance(sid, x),
                                   (px, py, pz)))
    return tuple(sites)


# --------------------------------------------------------------------------------------------
# Synapses and networks


def _split(total: int, shares: Sequence[float]) -> np.ndarray:
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

    def syn_text(self, hoc_name: str) -> str:
        """The ``.syn`` file."""
        head = ["# Synapse distribution file", f"# corresponding to cell: {hoc_name}",
                "# Type - section - section.x", ""]
        body = [f"{CELLTYPES[c]}\t{s}\t{x!r}"
                for c, s, x in zip(self.celltype.tolist(), self.section.tolist(), self.x,
                                   strict=True)]
        return "\n".join(head + body) + "\n"


def make_synapses(rng: np.random.Generator, morph: Morphology, n_synapses: int) -> SynapseLayout:
    """Place ``n_synapses`` synapses on points of ``morph`` (a few on the soma and the axon)."""
    per_type = _split(n_synapses, _SYNAPSE_SHARES)
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
    return SynapseLayout(celltype, np.concatenate(ids), section, point, xs, dists, labels)


@dataclass(frozen=True, eq=False)
class Network:
    """One network realisation: presynaptic cells, their rates, and the ``.con`` wiring."""

    name: str
    layout: SynapseLayout
    cell_numbers: tuple[int, ...]
    synapse_cell: np.ndarray  #: presynaptic cell ID (within its celltype) per synapse
    rates_hz: np.ndarray  #: per global cell (celltype blocks in CELLTYPES order)

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
        body = [f"{CELLTYPES[lay.celltype[i]]}\t{self.synapse_cell[i]}\t{lay.synapse_id[i]}"
                for i in order.tolist()]
        return "\n".join(head + body) + "\n"


def make_network(rng: np.random.Generator, name: str, layout: SynapseLayout,
                 n_cells: int) -> Network:
    """Draw cell numbers' wiring and firing rates (lognormal, a heavy tail up to 80 Hz)."""
    numbers = _split(n_cells, _CELL_SHARES)
    syn_cell = np.empty(len(layout.celltype), dtype=np.int64)
    rates = []
    for c, n in enumerate(numbers):
        mask = layout.celltype == c
        syn_cell[mask] = rng.integers(0, n, int(mask.sum()))
        rates.append(np.minimum(80.0, _MEDIAN_RATE_HZ[c] * rng.lognormal(0.0, 1.2, n)))
    return Network(name, layout, tuple(int(n) for n in numbers), syn_cell, np.concatenate(rates))


# --------------------------------------------------------------------------------------------
# Parameter files (NeuroTools ParameterSet style)


@dataclass(frozen=True)
class _Note:
    value: Any
    comment: str


def _literal(value: Any, indent: int) -> str:
    pad = "    " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = ["{"]
        for key, item in value.items():
            if key.startswith("#"):
                lines.append(f"{pad}    {key}")
                continue
            note = ""
            if isinstance(item, _Note):
                item, note = item.value, f"  # {item.comment}"
            lines.append(f'{pad}    "{key}": {_literal(item, indent + 1)},{note}')
        return "\n".join(lines + [pad + "}"])
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v, indent) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            items = [f"{pad}    {_literal(v, indent + 1)}," for v in value]
            return "\n".join(["["] + items + [pad + "]"])
        return "[" + ", ".join(_literal(v, indent) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    raise TypeError(f"cannot write {type(value).__name__} into a param file")


def _param_text(title: str, tree: dict[str, Any]) -> str:
    return f"# {title}\n# written by simlake synth (synthetic data)\n{_literal(tree, 0)}\n"


def _range_mech(spatial: str, **values: Any) -> dict[str, Any]:
    return {"spatial": spatial, **values}


def neuron_params(variant: str, hoc_path: str, recsite_paths: Sequence[str],
                  t_stop: float) -> str:
    """Text of the neuron param file ``variant`` (``"N1"`` or ``"N2"``)."""
    scale = 1.0 if variant == "N1" else 1.35
    passive = {"properties": {"Ra": 100.0, "cm": 1.0, "ions": {"ek": -85.0, "ena": 50.0}}}

    def section(extra: dict[str, Any], cm: float = 1.0) -> dict[str, Any]:
        props = {**passive["properties"], "cm": cm}
        pas = _range_mech("uniform", g=_Note(3.26e-05, "S/cm2"), e=-90)
        return {"properties": props, "mechanisms": {"global": {}, "range": {"pas": pas, **extra}}}

    tree: dict[str, Any] = {
        "info": {"author": "simlake synth", "date": "15Aug2015",
                 "name": f"L5tt synthetic, biophysics {variant}"},
        "neuron": {
            "# morphology (absolute path on the simulating machine)": None,
            "filename": hoc_path,
            "Soma": section({
                "Ca_LVAst": _range_mech("uniform", gCa_LVAstbar=0.00462),
                "NaTa_t": _range_mech("uniform", gNaTa_tbar=round(1.98 * scale, 6)),
                "SKv3_1": _range_mech("uniform", gSKv3_1bar=0.983),
            }),
            "Dendrite": section({"Ih": _range_mech("uniform", gIhbar=8e-05)}, cm=2.0),
            "ApicalDendrite": section({
                "Ih": _range_mech("exponential", distance="relative", offset=-0.8696,
                                  linScale=2.087, _lambda=3.6161, xOffset=0.0, gIhbar=8e-05),
                "Ca_HVA": _range_mech("uniform_range", begin=900.0, end=1100.0,
                                      outsidescale=0.1, gCa_HVAbar=round(0.00555 * scale, 6)),
            }, cm=2.0),
            "AIS": section({"NaTa_t": _range_mech("uniform", gNaTa_tbar=3.137)}),
            "cell_modify_functions": ({} if variant == "N1" else
                                      {"scale_apical": {"scale": 1.2}}),
        },
        "sim": {
            "Vinit": -75.0,
            "tStart": 0.0,
            "tStop": _Note(t_stop, "ms"),
            "dt": DT,
            "T": 34.0,
            "recordingRange": (T_RECORD, t_stop),
            "# one landmark file per recording site": None,
            "recordingSites": list(recsite_paths),
        },
    }
    return _param_text("neuron model parameters", tree)


def network_params(net: Network, syn_path: str, con_path: str) -> str:
    """Text of the network param file of ``net``."""
    cells: dict[str, Any] = {}
    offsets = net.cell_offsets
    for c, name in enumerate(CELLTYPES):
        block = net.rates_hz[offsets[c]:offsets[c] + net.cell_numbers[c]]
        interval = round(1000.0 / float(np.mean(block)), 3)
        celltype: Any = "spiketrain"
        if name == "VPM_C2" and net.name == "B":
            celltype = {"spiketrain": {"interval": interval},
                        "pointcell": {"distribution": "PSTH", "offset": T_RECORD,
                                      "intervals": [(10.0, 15.0), (15.0, 25.0)],
                                      "probabilities": [0.25, 0.1]}}
        cells[name] = {
            "celltype": celltype,
            "interval": _Note(interval, "mean ISI (ms)"),
            "cellNr": net.cell_numbers[c],
            "synapses": {
                "distributionFile": syn_path,
                "connectionFile": con_path,
                "receptors": {"glutamate_syn": {
                    "threshold": 0.0,
                    "delay": 0.0,
                    "parameter": {"tau1": 26.0, "tau2": 2.0, "tau3": 2.0, "tau4": 0.1,
                                  "decayampa": 1.0, "decaynmda": 1.0},
                    "weight": (1.47, 1.47),
                }},
            },
        }
    tree = {
        "info": {"author": "simlake synth", "date": "15Aug2015",
                 "name": f"synthetic network {net.name}"},
        "NMODL_mechanisms": {"VecStim": "/", "synapses": "/"},
        "network": cells,
    }
    return _param_text("network model parameters", tree)


# --------------------------------------------------------------------------------------------
# Trials


@dataclass(frozen=True, eq=False)
class _Statics:
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


def _statics(net: Network, t_stop: float) -> _Statics:
    lay = net.layout
    syn = [f"{CELLTYPES[c]}\t{i}\t{d!r}\t{s}\t{p}\t{lab}\t"
           for c, i, d, s, p, lab in zip(lay.celltype.tolist(), lay.synapse_id.tolist(),
                                         lay.soma_distance, lay.section.tolist(),
                                         lay.point.tolist(), lay.labels, strict=True)]
    cells = [f"{name}\t{i}\t" for name, n in zip(CELLTYPES, net.cell_numbers, strict=True)
             for i in range(n)]
    sbuf, sstart, slen = _pack(syn)
    cbuf, cstart, clen = _pack(cells)
    buf = np.concatenate([sbuf, cbuf, np.frombuffer(b"\n", np.uint8)])
    gcell = net.synapse_global_cell
    return _Statics(buf, sstart, slen, cstart + sbuf.size, clen, sbuf.size + cbuf.size, gcell,
                    np.bincount(gcell, minlength=len(net.rates_hz)),
                    net.rates_hz * t_stop / 1000.0)


@dataclass(frozen=True, eq=False)
class _Trial:
    synapses: bytes
    cells: bytes
    activations: np.ndarray  #: synaptic activations per voltage sample


def _make_trial(rng: np.random.Generator, st: _Statics, t_stop: float, n_times: int) -> _Trial:
    n_cells = st.expected_spikes.size
    counts = rng.poisson(st.expected_spikes)
    cell_of = np.repeat(np.arange(n_cells), counts)
    units = _quantise(rng.uniform(0.001, t_stop, cell_of.size))
    order = np.lexsort((units, cell_of))
    units, cell_of = units[order], cell_of[order]
    flat, toklen = _fixed_point_tokens(units, ord(","))
    clen = np.bincount(cell_of, weights=toklen, minlength=n_cells).astype(np.int64)
    cstart = np.cumsum(clen) - clen + st.buf.size
    src = np.concatenate([st.buf, flat])
    c = st.syn_cell
    no_tab = (counts[c] == 0) & (rng.random(c.size) < 0.5)
    ones = np.ones(c.size, np.int64)
    syn = _gather(src, np.column_stack([st.syn_start, cstart[c], ones * st.newline]).ravel(),
                  np.column_stack([st.syn_len - no_tab, clen[c], ones]).ravel())
    ones = np.ones(n_cells, np.int64)
    cells = _gather(src, np.column_stack([st.cell_start, cstart, ones * st.newline]).ravel(),
                    np.column_stack([st.cell_len, clen, ones]).ravel())
    sample = np.rint((_as_float(units) - T_RECORD) / DT).astype(np.int64)
    inside = (sample >= 0) & (sample < n_times)
    weights = st.synapses_per_cell[cell_of][inside]
    hist = np.bincount(sample[inside], weights=weights, minlength=n_times)
    return _Trial(SYN_HEADER.encode() + b"\n" + syn.tobytes(),
                  CELL_HEADER.encode() + b"\n" + cells.tobytes(), hist)


# --------------------------------------------------------------------------------------------
# Voltage traces


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


def _simulate(rng: np.random.Generator, activations: np.ndarray) -> list[np.ndarray]:
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
    rest = rng.uniform(-65.0, -58.0, n_trials)[None, :]
    s_spec, c_spec = sp.forward(spikes), sp.forward(calcium)
    soma = (rest + 12.0 * np.tanh(drive / 12.0)
            + sp.back(s_spec * ap + 0.8 * sp.white(rng) * noise))
    distal = (rest + 2.0 + 15.0 * np.tanh(1.6 * drive / 15.0)
              + sp.back(30.0 * s_spec * bap(0.8) + 45.0 * c_spec * ca
                        + 1.2 * sp.white(rng) * noise))
    proximal = (rest + 1.0 + 13.0 * np.tanh(1.3 * drive / 13.0)
                + sp.back(60.0 * s_spec * bap(0.3) + 18.0 * c_spec * ca + sp.white(rng) * noise))
    return [np.clip(v, -95.0, 70.0) for v in (soma, distal, proximal)]


def _crossings(v: np.ndarray, threshold: float) -> np.ndarray:
    return np.sum((v[:-1] < threshold) & (v[1:] >= threshold), axis=0)


# --------------------------------------------------------------------------------------------
# Tree layout


@dataclass(frozen=True)
class _FolderPlan:
    parent: str
    era: str
    padding: int
    consecutive: bool
    voltage_format: str
    seed_dend_prefix: bool
    neuron: str
    network: str
    extras: tuple[str, ...]


_VARIANT_PLANS = (
    _FolderPlan("results", "old", 4, True, "csv", False, "N1", "A", ("hostname",)),
    _FolderPlan("results", "new", 4, False, "csv", False, "N1", "B", ("template", "old")),
    _FolderPlan("results/batch2", "old", 6, True, "csv+npz", True, "N1", "A", ()),
    _FolderPlan("results/batch2", "new", 6, False, "csv", False, "N2", "A", ("old",)),
    _FolderPlan("", "old", 4, True, "npz", False, "N2", "B", ("template",)),
    _FolderPlan("", "new", 4, True, "csv", False, "N1", "A", ("hostname",)),
)


def _plan(i: int) -> _FolderPlan:
    if i < len(_VARIANT_PLANS):
        return _VARIANT_PLANS[i]
    return _FolderPlan(("results", "results/batch2", "")[i % 3], ("old", "new")[i % 2],
                       6 if i % 4 == 0 else 4, i % 5 != 0, "csv", False, "N1",
                       ("A", "B")[(i // 2) % 2], ("hostname",) if i % 3 == 0 else ())


def _folder_name(rng: np.random.Generator, era: str, i: int) -> tuple[str, str]:
    base = _dt.date(2015, 8, 15) if era == "old" else _dt.date(2025, 1, 1)
    day = base + _dt.timedelta(days=2 * i)
    stamp = f"{day:%Y%m%d}-{int(rng.integers(0, 24)):02d}{int(rng.integers(0, 60)):02d}"
    pid = int(rng.integers(1000, 60000))
    uid = str(pid) if era == "old" else f"seed{int(rng.integers(100000, 1000000))}_pid{pid}"
    return f"{stamp}_{uid}", uid


def _trial_numbers(rng: np.random.Generator, n: int, consecutive: bool) -> list[int]:
    if consecutive:
        return list(range(n))
    nums = np.sort(rng.choice(3 * n + 2, size=n, replace=False))
    if nums[-1] - nums[0] == n - 1:  # a gap-free sample (always so for n == 1): open a gap
        nums[-1] += 2
    return [int(v) for v in nums]


@dataclass(frozen=True, eq=False)
class _Context:
    root: str
    t_stop: float
    n_times: int
    time_units: np.ndarray
    morph: Morphology
    sites: tuple[RecordingSite, ...]
    statics: dict[str, _Statics]
    neuron_text: dict[str, str]
    network_text: dict[str, str]


def _write_trials(ctx: _Context, folder: str, plan_network: str, trial_numbers: Sequence[int],
                  padding: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    st = ctx.statics[plan_network]
    hist = np.zeros((ctx.n_times, len(trial_numbers)))
    for j, nr in enumerate(trial_numbers):
        trial = _make_trial(rng, st, ctx.t_stop, ctx.n_times)
        _write(os.path.join(folder, f"simulation_run{nr:0{padding}d}_synapses.csv"),
               trial.synapses)
        _write(os.path.join(folder, f"simulation_run{nr:0{padding}d}_presynaptic_cells.csv"),
               trial.cells)
        hist[:, j] = trial.activations
    return hist, st.syn_start.size * len(trial_numbers), st.cell_start.size * len(trial_numbers)


def _write_folder(ctx: _Context, i: int, plan: _FolderPlan, n_trials: int,
                  rng: np.random.Generator) -> FolderReport:
    name, uid = _folder_name(rng, plan.era, i)
    sim_run = f"{plan.parent}/{name}" if plan.parent else name
    folder = os.path.join(ctx.root, *sim_run.split("/"))
    os.makedirs(folder)
    numbers = _trial_numbers(rng, n_trials, plan.consecutive or plan.voltage_format == "npz")
    hist, n_syn, n_cell = _write_trials(ctx, folder, plan.network, numbers, plan.padding, rng)
    soma, *dends = (_quantise(v) for v in _simulate(rng, hist))
    if "csv" in plan.voltage_format:
        _write(os.path.join(folder, f"{uid}_vm_all_traces.csv"), _table_bytes(ctx.time_units, soma))
    if "npz" in plan.voltage_format:
        _write_npz(os.path.join(folder, f"{uid}_vm_all_traces.npz"),
                   _as_float(np.column_stack([ctx.time_units, soma])))
    prefix = f"seed_{uid}_" if plan.seed_dend_prefix else f"{uid}_"
    for site, trace in zip(ctx.sites, dends, strict=True):
        _write(os.path.join(folder, f"{prefix}{site.label}_vm_dend_traces.csv"),
               _table_bytes(ctx.time_units, trace))
    _write(os.path.join(folder, f"{uid}_neuron_model.param"), ctx.neuron_text[plan.neuron])
    _write(os.path.join(folder, f"{uid}_network_model.param"), ctx.network_text[plan.network])
    leftovers = _write_leftovers(ctx, folder, uid, plan, rng)
    return FolderReport(
        sim_run=sim_run, era=plan.era, uid=uid, voltage_format=plan.voltage_format,
        voltage_file=f"{uid}_vm_all_traces.{'npz' if plan.voltage_format == 'npz' else 'csv'}",
        trial_numbers=tuple(numbers), padding=plan.padding,
        dendritic_labels=tuple(s.label for s in ctx.sites), dendritic_prefix=prefix,
        neuron_variant=plan.neuron, network_variant=plan.network, leftovers=leftovers,
        synapse_lines=n_syn, cell_lines=n_cell,
        soma_spike_counts=tuple(int(c) for c in _crossings(_as_float(soma), 0.0)))


def _write_leftovers(ctx: _Context, folder: str, uid: str, plan: _FolderPlan,
                     rng: np.random.Generator) -> tuple[str, ...]:
    written: list[tuple[str, str]] = []
    if "hostname" in plan.extras:
        written.append((f"hostname_node{int(rng.integers(1, 400)):03d}", ""))
    if "template" in plan.extras:
        text = ctx.network_text[plan.network].replace(".con", ".con.TEMPLATE_CONNECTIONS")
        written.append((f"{uid}_network_model.param.TEMPLATE", text))
    if "old" in plan.extras:
        other = "N2" if plan.neuron == "N1" else "N1"
        written.append((f"{uid}_neuron_model.param.old", ctx.neuron_text[other]))
    for name, text in written:
        _write(os.path.join(folder, name), text)
    return tuple(name for name, _ in written)


def _write_running(ctx: _Context, rng: np.random.Generator) -> tuple[str, tuple[str, ...]]:
    """A crashed / in-progress folder with a nested sim-run-looking folder below it."""
    name, uid = _folder_name(rng, "new", 90)
    rel = f"results/{name}_running"
    folder = os.path.join(ctx.root, *rel.split("/"))
    os.makedirs(folder)
    hist, _, _ = _write_trials(ctx, folder, "A", [0, 1], 4, rng)
    table = _table_bytes(ctx.time_units, _quantise(_simulate(rng, hist)[0]))
    cut = table.find(b"\n", len(table) // 3) + 7
    _write(os.path.join(folder, f"{uid}_vm_all_traces.csv"), table[:cut])  # truncated row
    _write(os.path.join(folder, f"{uid}_neuron_model.param"), ctx.neuron_text["N1"])
    _write(os.path.join(folder, f"{uid}_network_model.param"), ctx.network_text["A"])
    nested_name, nested_uid = _folder_name(rng, "new", 91)
    nested = os.path.join(folder, nested_name)
    os.makedirs(nested)
    hist, _, _ = _write_trials(ctx, nested, "A", [0], 4, rng)
    _write(os.path.join(nested, f"{nested_uid}_vm_all_traces.csv"),
           _table_bytes(ctx.time_units, _quantise(_simulate(rng, hist)[0])))
    files = sorted(os.path.relpath(os.path.join(d, f), ctx.root).replace(os.sep, "/")
                   for d, _, fs in os.walk(folder) for f in fs)
    return rel, tuple(files)


def _write_anatomy(root: str, morph: Morphology, sites: Sequence[RecordingSite],
                   layout: SynapseLayout, networks: dict[str, Network]) -> dict[str, str]:
    """Write the referenced files; returns their absolute paths by role."""
    base = os.path.join(root, ANATOMY_DIR)
    for sub in ("morphology", "network", "recsites"):
        os.makedirs(os.path.join(base, sub))
    paths = {"hoc": os.path.join(base, "morphology", "L5tt_synth.hoc"),
             "syn": os.path.join(base, "network", "L5tt_synth.syn")}
    _write(paths["hoc"], morph.hoc())
    _write(paths["syn"], layout.syn_text(os.path.basename(paths["hoc"])))
    for name, net in networks.items():
        paths[f"con_{name}"] = os.path.join(base, "network", f"L5tt_synth_{name}.con")
        # network A names its .syn relatively, B absolutely: both occur in real files
        ref = os.path.basename(paths["syn"]) if name == "A" else paths["syn"]
        _write(paths[f"con_{name}"], net.con_text(ref))
    for k, site in enumerate(sites):
        paths[f"site_{k}"] = os.path.join(base, "recsites", f"{site.file_base}.landmarkAscii")
        _write(paths[f"site_{k}"], site.landmark_ascii())
    return paths


# --------------------------------------------------------------------------------------------
# Public API


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def _check_sizes(runs: int, trials: int, times: int, synapses: int, cells: int,
                 morph_points: int) -> None:
    n_types = len(CELLTYPES)
    checks = {"runs": (runs, 1), "trials": (trials, 1), "times": (times, 2),
              "synapses": (synapses, n_types), "cells": (cells, n_types),
              "morph_points": (morph_points, 2 * len(_SECTION_PLAN) + 3)}
    for name, (value, low) in checks.items():
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if T_RECORD + DT * times >= _MAX_ABS:
        raise ValueError(f"times={times} is too many rows")


def generate_tree(out_dir: str | os.PathLike[str], *, runs: int = 6, trials: int = 5,
                  times: int = 2000, synapses: int = 400, cells: int = 300, seed: int = 0,
                  morph_points: int = 300) -> SynthReport:
    """Write a raw simrun tree with every format variant into ``out_dir``; return a report.

    ``runs`` sim-run folders (all variants need ``runs >= 6``; with fewer, the first ``runs``
    rows of the module's variant table), each with ``trials`` trials, ``times`` voltage rows
    (100.0 ms, step 0.025 ms), ``synapses`` lines per synapse file and ``cells`` lines per
    presynaptic-cell file; plus one ``_running`` folder and the ``_anatomy`` folder. The bytes
    written depend only on the arguments and the absolute path of ``out_dir`` (param files hold
    absolute references). ``out_dir`` must not exist or be empty.
    """
    _check_sizes(runs, trials, times, synapses, cells, morph_points)
    started = time.perf_counter()
    root = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise FileExistsError(f"{root}: exists and is not an empty directory")
    os.makedirs(root, exist_ok=True)
    t_stop = round(T_RECORD + DT * (times - 1), 3)
    morph = make_morphology(_rng(seed, 1), morph_points)
    sites = _recording_sites(morph)
    layout = make_synapses(_rng(seed, 2), morph, synapses)
    networks = {name: make_network(_rng(seed, 3 + k), name, layout, cells)
                for k, name in enumerate(("A", "B"))}
    paths = _write_anatomy(root, morph, sites, layout, networks)
    site_paths = [paths[f"site_{k}"] for k in range(len(sites))]
    ctx = _Context(
        root=root, t_stop=t_stop, n_times=times,
        time_units=(100_000 + 25 * np.arange(times, dtype=np.int64)) * 10**7,
        morph=morph, sites=sites,
        statics={name: _statics(net, t_stop) for name, net in networks.items()},
        neuron_text={v: neuron_params(v, paths["hoc"], site_paths, t_stop) for v in ("N1", "N2")},
        network_text={name: network_params(net, paths["syn"], paths[f"con_{name}"])
                      for name, net in networks.items()},
    )
    folders = []
    for i in range(runs):
        folders.append(_write_folder(ctx, i, _plan(i), trials, _rng(seed, 1000 + i)))
        logger.debug("wrote %s", folders[-1].sim_run)
    running, running_files = _write_running(ctx, _rng(seed, 5))
    report = SynthReport(root=root, anatomy_dir=os.path.join(root, ANATOMY_DIR),
                         folders=tuple(folders), running_folder=running,
                         running_files=running_files, n_times=times, t_stop=t_stop, seed=seed,
                         seconds=time.perf_counter() - started)
    logger.info("synth: %s", report.summary_line())
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``simlake synth``; defaults = the 12 x 25 tree of the ingest issue."""
    parser.add_argument("out_dir", help="folder to create (must not exist or be empty)")
    parser.add_argument("--runs", type=int, default=12, help="sim-run folders (>= 6: all variants)")
    parser.add_argument("--trials", type=int, default=25, help="trials per folder")
    parser.add_argument("--times", type=int, default=2000, help="voltage rows per trace")
    parser.add_argument("--synapses", type=int, default=400, help="lines per synapse file")
    parser.add_argument("--cells", type=int, default=300, help="lines per presynaptic-cell file")
    parser.add_argument("--morph-points", type=int, default=300, help="points of the .hoc")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")


def run(args: argparse.Namespace) -> int:
    """Generate the tree described by parsed ``args``; print a summary; return the exit code."""
    try:
        report = generate_tree(args.out_dir, runs=args.runs, trials=args.trials,
                               times=args.times, synapses=args.synapses, cells=args.cells,
                               seed=args.seed, morph_points=args.morph_points)
    except (FileExistsError, ValueError) as err:
        print(f"simlake synth: {err}", file=sys.stderr)
        return 2
    print(f"wrote {report.root}: {report.summary_line()}")
    for f in report.folders:
        print(f"  {f.sim_run}  era={f.era} voltage={f.voltage_format} pad={f.padding} "
              f"trials={f.trial_numbers[0]}..{f.trial_numbers[-1]} ({f.n_trials})")
    print(f"  {report.running_folder}  (in progress: must be skipped)")
    return 0

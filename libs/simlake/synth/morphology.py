"""The generated cell: morphology (``.hoc``) and dendritic recording sites (``.landmarkAscii``).

A soma, basal dendrites, an apical tree and an axon; real-shaped cells add branches until they have
as many sections as a reconstructed L5 pyramidal cell (~170) and print points as NEURON's import
does (``%f``). Section IDs are the ``create`` order; path distances are exact on the printed
points, so the synapse files' ``soma distance`` can be checked against the ``.hoc``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABELS = {"soma": "Soma", "dend": "Dendrite", "apical": "ApicalDendrite", "axon": "AIS"}

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
    decimals: int = 4  #: coordinates are rounded to this many decimals (6: printed as ``%f``)

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
        return LABELS[self.names[section].split("_")[0]]

    def hoc(self) -> str:
        """The NEURON hoc text: one brace-wrapped statement per line."""
        lines: list[str] = []
        for sid, name in enumerate(self.names):
            lines += [f"{{create {name}}}", f"{{access {name}}}", "{nseg = 1}", "{pt3dclear()}"]
            if self.decimals == 6:  # as NEURON's Import3D writes them
                lines += [f"{{pt3dadd({x:f},{y:f},{z:f},{d:f})}}"
                          for x, y, z, d in self.points[sid].tolist()]
            else:
                lines += [f"{{pt3dadd({x!r},{y!r},{z!r},{d!r})}}"
                          for x, y, z, d in self.points[sid].tolist()]
            if self.parents[sid] >= 0:
                parent = self.names[self.parents[sid]]
                lines.append(f"{{connect {name}(0), {parent}({self.parent_x[sid]:f})}}")
            lines.append("")
        return "\n".join(lines)


def _round_points(pts: np.ndarray, decimals: int) -> np.ndarray:
    out = np.round(pts, decimals)
    out[:, 3] = np.maximum(np.round(pts[:, 3], 2 if decimals == 4 else decimals), 0.3)
    return out + 0.0  # no negative zeros


def _arc(pts: np.ndarray) -> np.ndarray:
    steps = np.sqrt(np.sum(np.diff(pts[:, :3], axis=0) ** 2, axis=1))
    return np.concatenate([[0.0], np.cumsum(steps)])


def _point_at(pts: np.ndarray, arc: np.ndarray, x: float) -> np.ndarray:
    target = x * arc[-1]
    return np.array([np.interp(target, arc, pts[:, i]) for i in range(3)])


def _extra_sections(rng: np.random.Generator, n: int) -> list[tuple]:
    """``n`` more branches in the plan's format, each on a dendrite made before it."""
    plan = list(_SECTION_PLAN)
    directions = {p[0]: np.asarray(p[4]) for p in plan}
    counter: dict[str, int] = {}
    for _ in range(n):
        candidates = [p for p in plan if not p[0].startswith("axon")]
        parent = candidates[int(rng.integers(len(candidates)))]
        kind = parent[0].split("_")[0]
        counter[kind] = counter.get(kind, 0) + 1
        name = f"{kind}_{10 + counter[kind] // 20}_{counter[kind] % 20}"
        direction = directions[parent[0]] + rng.normal(0.0, 0.6, 3)
        directions[name] = direction
        plan.append((name, parent[0], float(np.round(rng.uniform(0.2, 1.0), 2)),
                     float(rng.uniform(40.0, 160.0)), tuple(direction.tolist()),
                     max(0.5, 0.7 * parent[5])))
    return plan[len(_SECTION_PLAN):]


def make_morphology(rng: np.random.Generator, n_points: int = 300, n_sections: int = 16,
                    decimals: int = 4, origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
                    ) -> Morphology:
    """A soma, basal dendrites, an apical tree and an axon with about ``n_points`` points.

    ``n_sections`` above the base plan's 16 adds branches (a reconstructed L5 pyramidal cell has
    ~170 sections and ~14,000 points); ``decimals`` is 4 (printed as ``repr``) or 6 (printed as
    ``%f``, like NEURON's import); ``origin`` moves the soma (registered cells sit at
    coordinates in the hundreds of um).
    """
    plan = list(_SECTION_PLAN)
    if n_sections > len(plan) + 1:
        plan += _extra_sections(np.random.default_rng(rng.integers(2**32)),
                                n_sections - len(plan) - 1)
    lengths = np.array([p[3] for p in plan])
    budget = max(n_points - 3, 2 * len(plan))
    counts = np.maximum(2, np.round(lengths / lengths.sum() * budget).astype(int))
    soma = np.array([[0.0, -7.5, 0.0, 15.0], [0.0, 0.0, 0.0, 15.0], [0.0, 7.5, 0.0, 15.0]])
    soma[:, :3] += rng.normal(0.0, 0.3, (3, 3))
    soma[:, :3] += np.asarray(origin)
    names, parents, pxs = ["soma"], [-1], [0.0]
    points = [_round_points(soma, decimals)]
    arcs = [_arc(points[0])]
    for (name, parent, px, length, direction, diam), k in zip(plan, counts, strict=True):
        pid = names.index(parent)
        start = _point_at(points[pid], arcs[pid], px)
        main = np.asarray(direction) / np.linalg.norm(direction)
        dirs = main + rng.normal(0.0, 0.3, (k - 1, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        steps = dirs * (length / (k - 1) * rng.uniform(0.8, 1.2, (k - 1, 1)))
        xyz = np.vstack([start, start + np.cumsum(steps, axis=0)])
        diams = np.linspace(diam, diam * 0.6, k) * rng.uniform(0.95, 1.05, k)
        pts = _round_points(np.column_stack([xyz, diams]), decimals)
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
                      offsets, decimals)


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


def recording_sites(morph: Morphology) -> tuple[RecordingSite, ...]:
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



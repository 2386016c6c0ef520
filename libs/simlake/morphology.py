"""NEURON ``.hoc`` morphologies as numpy, without NEURON.

Conventions (shared with the tree generator ``simlake.synth``):

- section ID = order of the ``create`` statements, from 0; pt ID = order of the ``pt3dadd``
  points within their section, from 0; a point belongs to the section most recently
  ``create``d or ``access``ed; ``pt3dclear()`` drops the points the current section had so far;
- L(s) = sum of the 3D distances between consecutive points of s;
- path distance to the soma: d(s, x) = |x - cx(s)| * L(s) + d(parent(s), px(s)), where the
  section is attached at its end ``cx`` (0 in practice) to ``parent(px)``; d(soma, any x) = 0;
  a root section other than the soma has d(parent, .) = 0;
- the x of a point is its arc length from the section start divided by L(s) (0 if L(s) = 0).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simlake.errors import SimrunFormatError

log = logging.getLogger(__name__)

_NUM = r"\s*([-+0-9.eEnaNifIF]+)\s*"
_STATEMENT = re.compile(
    r"\{\s*(?:"
    r"create\s+(?P<create>[A-Za-z_][\w\[\]]*)"
    r"|access\s+(?P<access>[A-Za-z_][\w\[\]]*)"
    r"|(?P<clear>pt3dclear)\s*\(\s*\)"
    r"|connect\s+(?P<child>[A-Za-z_][\w\[\]]*)\s*\(\s*(?P<cx>[-+0-9.eE]+)\s*\)\s*,\s*"
    r"(?P<parent>[A-Za-z_][\w\[\]]*)\s*\(\s*(?P<px>[-+0-9.eE]+)\s*\)"
    r")\s*\}"
)
_PT3DADD = re.compile(r"\{\s*pt3dadd\s*\(" + ",".join([_NUM] * 4) + r"\)\s*\}")

#: Section-name prefix -> type label (the labels of ISF's neuron params / ``dendrite_label``).
LABEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("soma", "Soma"),
    ("apical", "ApicalDendrite"),
    ("dend", "Dendrite"),
    ("basal", "Dendrite"),
    ("ais", "AIS"),
    ("myelin", "Myelin"),
    ("node", "Node"),
    ("axon", "Axon"),
)


def section_label(name: str) -> str:
    """Type label of a section name: ``Soma``, ``Dendrite``, ``ApicalDendrite``, ``AIS``,
    ``Myelin``, ``Node``, ``Axon``; else the name without its ``_<index>`` suffixes."""
    low = name.lower()
    for prefix, label in LABEL_PREFIXES:
        if low.startswith(prefix):
            return label
    return re.sub(r"(_\d+)+$", "", name)


@dataclass(frozen=True)
class Section:
    """One section of a :class:`Cell` (arrays are read-only views into the cell's arrays)."""

    id: int
    name: str
    label: str
    parent_id: int | None
    parent_x: float
    child_x: float  # end of this section attached to the parent (0 in practice)
    points: np.ndarray  # (n, 3)
    diameters: np.ndarray  # (n,)
    arc: np.ndarray  # (n,) arc length from the first point
    length: float

    @property
    def x(self) -> np.ndarray:
        """Relative position of each point along the section (arc / length)."""
        return self.arc / self.length if self.length > 0 else np.zeros_like(self.arc)

    @property
    def n_points(self) -> int:
        """Number of 3D points."""
        return len(self.arc)


class Cell:
    """A morphology: sections with their points, and path distances to the soma.

    Flat arrays over all points (``points``, ``diameters``, ``pt_section``, ``pt_arc``) are in
    section order then pt order; ``section_start[s]`` is the index of section s's first point.
    ``params`` holds the neuron parameters the cell was loaded with (or None).
    """

    def __init__(self, names: Sequence[str], owner: np.ndarray, xyzd: np.ndarray,
                 parents: Sequence[tuple[int, float, float] | None], source: str = "",
                 params: Any = None) -> None:
        self.source = source
        self.params = params
        n = len(names)
        order = np.argsort(owner, kind="stable")
        owner = owner[order]
        xyzd = xyzd[order]
        self.points = np.ascontiguousarray(xyzd[:, :3])
        self.diameters = np.ascontiguousarray(xyzd[:, 3])
        self.pt_section = owner
        counts = np.bincount(owner, minlength=n) if len(owner) else np.zeros(n, dtype=np.int64)
        self.section_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        step = np.zeros(len(owner))
        if len(owner) > 1:
            step[1:] = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
            step[self.section_start[:-1][counts > 0]] = 0.0  # no step across section borders
        cum = np.cumsum(step)
        first = np.repeat(cum[self.section_start[:-1][counts > 0]], counts[counts > 0])
        self.pt_arc = cum - first
        self.lengths = np.zeros(n)
        last = self.section_start[1:] - 1
        has = counts > 0
        self.lengths[has] = self.pt_arc[last[has]]
        for arr in (self.points, self.diameters, self.pt_section, self.pt_arc, self.lengths):
            arr.setflags(write=False)

        labels = [section_label(name) for name in names]
        self.parent_id = np.full(n, -1, dtype=np.int64)
        self.parent_x = np.zeros(n)
        self.child_x = np.zeros(n)
        for sid, conn in enumerate(parents):
            if conn is not None:
                self.parent_id[sid], self.parent_x[sid], self.child_x[sid] = conn
        self.is_soma = np.array([label == "Soma" for label in labels], dtype=bool)
        self.start_distance = self._start_distances()
        self.sections: list[Section] = [
            Section(id=s, name=names[s], label=labels[s],
                    parent_id=None if self.parent_id[s] < 0 else int(self.parent_id[s]),
                    parent_x=float(self.parent_x[s]), child_x=float(self.child_x[s]),
                    points=self.points[self.section_start[s]:self.section_start[s + 1]],
                    diameters=self.diameters[self.section_start[s]:self.section_start[s + 1]],
                    arc=self.pt_arc[self.section_start[s]:self.section_start[s + 1]],
                    length=float(self.lengths[s]))
            for s in range(n)]
        self._by_name = {sec.name: sec.id for sec in self.sections}

    def _start_distances(self) -> np.ndarray:
        """d(parent(s), px(s)) for every section, following parents iteratively."""
        n = len(self.parent_id)
        out = np.full(n, np.nan)
        for sid in range(n):
            chain = []
            cur = sid
            while np.isnan(out[cur]) and self.parent_id[cur] >= 0:
                chain.append(cur)
                cur = int(self.parent_id[cur])
                if len(chain) > n:
                    raise SimrunFormatError(self.source, "connect statements form a cycle")
            if np.isnan(out[cur]):
                out[cur] = 0.0  # a root
            for c in reversed(chain):
                p = self.parent_id[c]
                out[c] = 0.0 if self.is_soma[p] else (
                    out[p] + abs(self.parent_x[c] - self.child_x[p]) * self.lengths[p])
        return out

    # -- lookups -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.sections)

    def __repr__(self) -> str:
        n_pts = len(self.pt_section)
        return f"Cell({len(self.sections)} sections, {n_pts} points, {self.source!r})"

    @property
    def soma(self) -> Section | None:
        """The first section labelled ``Soma``."""
        ids = np.flatnonzero(self.is_soma)
        return self.sections[int(ids[0])] if len(ids) else None

    @property
    def labels(self) -> np.ndarray:
        """Type label of each section (array of str)."""
        return np.array([sec.label for sec in self.sections], dtype=object)

    def section(self, name_or_id: str | int) -> Section:
        """A section by ID or by name."""
        if isinstance(name_or_id, str):
            return self.sections[self._by_name[name_or_id]]
        return self.sections[int(name_or_id)]

    def _check_ids(self, sid: np.ndarray) -> None:
        if np.any((sid < 0) | (sid >= len(self.sections))):
            raise IndexError(f"section ID out of range 0..{len(self.sections) - 1}")

    def x_of_pt(self, section_id: Any, pt_id: Any) -> Any:
        """x of point ``pt_id`` of section ``section_id`` (scalars or arrays)."""
        sid = np.asarray(section_id, dtype=np.int64)
        pid = np.asarray(pt_id, dtype=np.int64)
        self._check_ids(sid)
        n_pts = self.section_start[sid + 1] - self.section_start[sid]
        if np.any((pid < 0) | (pid >= n_pts)):
            raise IndexError("pt ID out of range of its section")
        arc = self.pt_arc[self.section_start[sid] + pid]
        length = self.lengths[sid]
        x = np.divide(arc, length, out=np.zeros(np.shape(arc)), where=length > 0)
        return x if np.ndim(x) else float(x)

    def distance_to_soma(self, section_id: Any, x: Any) -> Any:
        """Path distance d(s, x) to the soma, in µm (scalars or arrays)."""
        sid = np.asarray(section_id, dtype=np.int64)
        self._check_ids(sid)
        xs = np.asarray(x, dtype=float)
        d = self.start_distance[sid] + np.abs(xs - self.child_x[sid]) * self.lengths[sid]
        d = np.where(self.is_soma[sid], 0.0, d)
        return d if np.ndim(d) else float(d)

    def distance_to_soma_pt(self, section_id: Any, pt_id: Any) -> Any:
        """Path distance to the soma of point ``pt_id`` of section ``section_id``."""
        return self.distance_to_soma(section_id, self.x_of_pt(section_id, pt_id))

    def nearest_pt(self, section_id: Any, x: Any) -> Any:
        """ID of the point of the section closest (along the section) to ``x``."""
        sids = np.atleast_1d(np.asarray(section_id, dtype=np.int64))
        xs = np.broadcast_to(np.atleast_1d(np.asarray(x, dtype=float)), sids.shape)
        self._check_ids(sids)
        out = np.empty(sids.shape, dtype=np.int64)
        for i, (s, xv) in enumerate(zip(sids, xs, strict=True)):
            arc = self.sections[s].arc
            if len(arc) == 0:
                raise IndexError(f"section {s} has no points")
            out[i] = int(np.argmin(np.abs(arc - xv * self.lengths[s])))
        return out if np.ndim(section_id) else int(out[0])

    def to_neuron(self, params: Any = None):  # pragma: no cover - exercised by the neuron tests
        """Instantiate in NEURON (needs the ``neuron`` package); see :mod:`simlake.neuron_sim`."""
        from simlake.neuron_sim import cell_to_neuron

        return cell_to_neuron(self, params if params is not None else self.params)


def parse_hoc_text(text: str, path: str = "<hoc>", params: Any = None) -> Cell:
    """A :class:`Cell` from the text of a ``.hoc`` morphology (see the module conventions)."""
    events = []  # (offset, kind, name)
    names: list[str] = []
    ids: dict[str, int] = {}
    connects: list[tuple[str, float, str, float, int]] = []
    for m in _STATEMENT.finditer(text):
        if m.group("create"):
            name = m.group("create")
            if name in ids:
                raise SimrunFormatError(path, f"section {name} created twice")
            ids[name] = len(names)
            names.append(name)
            events.append((m.start(), ids[name], False))
        elif m.group("access"):
            name = m.group("access")
            if name not in ids:
                raise SimrunFormatError(path, f"access to section {name} before its create")
            events.append((m.start(), ids[name], False))
        elif m.group("clear"):
            events.append((m.start(), -1, True))
        else:
            connects.append((m.group("child"), float(m.group("cx")), m.group("parent"),
                             float(m.group("px")), m.start()))
    if not names:
        raise SimrunFormatError(path, "no create statement")

    pts = _PT3DADD.findall(text)
    starts = np.fromiter((m.start() for m in _PT3DADD.finditer(text)), dtype=np.int64,
                         count=len(pts))
    try:
        xyzd = np.array(pts, dtype=str).astype(float).reshape(-1, 4)
    except ValueError:
        raise SimrunFormatError(path, "non-numeric pt3dadd argument") from None

    # the current section of each event: create/access set it, pt3dclear keeps it
    ev_off = np.array([e[0] for e in events], dtype=np.int64)
    ev_sec = np.array([e[1] for e in events], dtype=np.int64)
    ev_clear = np.array([e[2] for e in events], dtype=bool)
    current = ev_sec.copy()
    for i in range(len(current)):  # one entry per create/access/clear statement (~sections)
        if ev_clear[i]:
            if i == 0 or current[i - 1] < 0:
                raise SimrunFormatError(path, "pt3dclear() before any section is accessed")
            current[i] = current[i - 1]
    idx = np.searchsorted(ev_off, starts, side="right") - 1
    if len(idx) and idx.min() < 0:
        raise SimrunFormatError(path, "pt3dadd before any create/access")
    owner = current[idx] if len(idx) else np.zeros(0, dtype=np.int64)
    # pt3dclear drops the section's points added before it
    last_clear = np.full(len(names), -1, dtype=np.int64)
    for off, sec, clear in zip(ev_off, current, ev_clear, strict=True):
        if clear:
            last_clear[sec] = off
    keep = starts > last_clear[owner] if len(owner) else np.zeros(0, dtype=bool)
    owner, xyzd = owner[keep], xyzd[keep]

    parents: list[tuple[int, float, float] | None] = [None] * len(names)
    for child, cx, parent, px, _ in connects:
        if child not in ids or parent not in ids:
            raise SimrunFormatError(path, f"connect {child} -> {parent}: unknown section")
        if parents[ids[child]] is not None:
            raise SimrunFormatError(path, f"section {child} connected twice")
        parents[ids[child]] = (ids[parent], px, cx)
    return Cell(names, owner, xyzd, parents, source=path, params=params)


def read_hoc(path: str, params: Any = None) -> Cell:
    """Parse the ``.hoc`` morphology file at ``path``."""
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_hoc_text(data.decode("utf-8", errors="replace"), path, params=params)


def read_landmarks(path: str) -> np.ndarray:
    """The ``(n, 3)`` points of an Amira ``.landmarkAscii`` file (the lines after ``@1``)."""
    with open(path, "rb") as fh:
        text = fh.read().decode("utf-8", errors="replace")
    m = re.search(r"^\s*@1\s*$", text, flags=re.M)
    if m is None:
        raise SimrunFormatError(path, "no '@1' data section")
    rows = []
    for line in text[m.end():].splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("@") or line.startswith("#"):
            break
        rows.append(line.split()[:3])
    try:
        return np.array(rows, dtype=str).astype(float).reshape(-1, 3)
    except ValueError:
        raise SimrunFormatError(path, "landmark line is not 'x y z'") from None

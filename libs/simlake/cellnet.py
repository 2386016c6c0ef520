"""Reload a stored trial's neuron and network from a database, and check that they fit together.

Works against any ``db`` object offering: ``db.basedir`` (database root), ``db['parameterfiles']``
(pandas frame indexed by ``sim_trial_index`` with ``hash_neuron``/``hash_network``),
``db['synapse_activation']`` and ``db['cell_activation']`` (dask or pandas frames indexed by
``sim_trial_index``). Pure Python + numpy; NEURON only in ``to_neuron`` methods.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from simlake.morphology import Cell, read_hoc
from simlake.network import Network, build_network
from simlake.paramfiles import Kind, referenced_files, resolve_reference, stored_param_path
from simlake.params import Params

log = logging.getLogger(__name__)


def _param_row(db: Any, sti: str) -> Mapping:
    frame = db["parameterfiles"]
    if hasattr(frame, "compute"):
        frame = frame.loc[sti].compute()
    else:
        frame = frame.loc[[sti]] if sti in frame.index else frame.iloc[0:0]
    if isinstance(frame, pd.Series):
        return frame
    if len(frame) == 0:
        raise KeyError(f"no parameterfiles row for trial {sti!r}")
    return frame.iloc[0]


def _set_path(obj: Any, key_path: tuple, value: Any) -> Any:
    """``obj`` with the value at ``key_path`` replaced (tuples rebuilt, dicts/lists in place)."""
    if not key_path:
        return value
    head, rest = key_path[0], key_path[1:]
    if isinstance(obj, tuple):
        items = list(obj)
        items[head] = _set_path(items[head], rest, value)
        return tuple(items)
    obj[head] = _set_path(obj[head], rest, value)
    return obj


def load_stored_params(db_root: str, kind: Kind, md5: str) -> Params:
    """A stored param file with its references resolved to absolute paths in the database
    (``reldb://<folder>/<file>``, or the plain db-relative paths of older simlake versions)."""
    params = Params.from_file(stored_param_path(db_root, kind, md5))
    for ref in referenced_files(params, kind):
        _set_path(params, ref.key_path, resolve_reference(db_root, ref.path))
    return params


def _hash(row: Mapping, column: str, sti: str) -> str:
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        raise LookupError(f"trial {sti!r} has no stored {column} (param file rejected at ingest?)")
    return str(value)


def load_param_files_from_db(db: Any, sti: str) -> tuple[Params, Params]:
    """``(neuron_params, network_params)`` of trial ``sti``, file references resolved to
    absolute paths inside the database. Parsing never executes code."""
    row = _param_row(db, sti)
    neuron = load_stored_params(db.basedir, "neuron", _hash(row, "hash_neuron", sti))
    network = load_stored_params(db.basedir, "network", _hash(row, "hash_network", sti))
    return neuron, network


def trial_rows(db: Any, key: str, sti: str) -> pd.DataFrame:
    """The rows of trial ``sti`` of a per-trial key as a pandas frame (empty if it has none)."""
    frame = db[key]
    try:
        rows = frame.loc[sti]
        if hasattr(rows, "compute"):
            rows = rows.compute()
    except KeyError:
        meta = getattr(frame, "_meta", None)
        rows = meta.copy() if meta is not None else frame.iloc[0:0]
        if hasattr(rows, "compute"):
            rows = rows.compute()
    if isinstance(rows, pd.Series):  # a single row of a pandas frame
        rows = rows.to_frame().T
    return rows


def load_initialized_cell_and_evokedNW_from_db(  # noqa: N802 - ISF's name
        db: Any, sti: str, allPoints: bool = False,  # noqa: N803 - ISF's flag name
        reconnect_synapses: bool = True) -> tuple[Cell, Network]:
    """``(cell, network)`` of trial ``sti`` in pure Python.

    ``cell``: the morphology of ``neuron.filename`` (all hoc points; ``allPoints`` is accepted for
    ISF compatibility: section pt IDs always index the hoc's points). ``network``: the synapses of
    each presynaptic cell type from the ``.syn``/``.con`` files, and with ``reconnect_synapses``
    the trial's activation times and presynaptic spike times.
    """
    neuron_params, network_params = load_param_files_from_db(db, sti)
    cell = read_hoc(neuron_params["neuron"]["filename"], params=neuron_params)
    syn_rows = cell_rows = None
    if reconnect_synapses:
        syn_rows = trial_rows(db, "synapse_activation", sti)
        cell_rows = trial_rows(db, "cell_activation", sti)
    network = build_network(network_params, syn_rows, cell_rows, sim_trial_index=sti)
    return cell, network


# --------------------------------------------------------------------------------------------
# consistency


@dataclass
class ConsistencyReport:
    """Result of :func:`check_consistency`; deviations in µm.

    ``max_distance_deviation``: largest |stored soma distance - distance recomputed from the
    morphology|; ``max_pt_deviation``: largest distance along the section from the synapse's
    ``.syn`` location to the part of the section whose nearest point is the stored pt ID (0 when
    the stored point is a nearest point; only with a network); counts of rows whose section/pt ID
    do not exist, that match no ``.syn`` synapse, or whose section differs from the ``.syn``.
    ``label_mismatches`` (stored ``dendrite_label`` != the section's type label) is informational.
    ``details``: one row per checked activation row.
    """

    n_checked: int
    tolerance: float
    max_distance_deviation: float = 0.0
    max_pt_deviation: float = 0.0
    n_out_of_range: int = 0
    n_unmatched: int = 0
    n_section_mismatch: int = 0
    label_mismatches: int = 0
    worst: dict[str, Any] | None = None
    details: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def ok(self) -> bool:
        """All IDs exist and agree, and both deviations are within the tolerance."""
        return (self.n_out_of_range == 0 and self.n_unmatched == 0
                and self.n_section_mismatch == 0
                and self.max_distance_deviation <= self.tolerance
                and self.max_pt_deviation <= self.tolerance)

    def __str__(self) -> str:
        verdict = "consistent" if self.ok else "INCONSISTENT"
        return (f"{verdict}: {self.n_checked} active synapses checked; max soma-distance "
                f"deviation {self.max_distance_deviation:.6g} um, max point deviation "
                f"{self.max_pt_deviation:.6g} um (tolerance {self.tolerance:g}); "
                f"{self.n_out_of_range} out of range, {self.n_unmatched} unmatched, "
                f"{self.n_section_mismatch} section mismatches, {self.label_mismatches} label "
                f"mismatches")


def _pt_intervals(cell: Cell, sid: np.ndarray, pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc-length interval of each (section, pt) within which that pt is the nearest point."""
    idx = cell.section_start[sid] + pid
    n_pts = cell.section_start[sid + 1] - cell.section_start[sid]
    arc = cell.pt_arc[idx]
    prev = np.where(pid > 0, cell.pt_arc[np.maximum(idx - 1, 0)], -np.inf)
    nxt = np.where(pid < n_pts - 1, cell.pt_arc[np.minimum(idx + 1, len(cell.pt_arc) - 1)],
                   np.inf)
    lo = np.where(np.isfinite(prev), (prev + arc) / 2, 0.0)
    hi = np.where(np.isfinite(nxt), (nxt + arc) / 2, cell.lengths[sid])
    return lo, hi


def _outside(value: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, np.maximum(lo - value, value - hi))


def check_consistency(cell: Cell, network_or_frame: Network | pd.DataFrame,
                      tolerance: float = 0.01, synapses_on_points: bool = True
                      ) -> ConsistencyReport:
    """Check a trial's ``synapse_activation`` rows against the morphology (and the ``.syn``).

    Section and pt IDs must exist. With a :class:`Network` loaded with
    ``reconnect_synapses=True``, each active synapse's stored section ID must equal its ``.syn``
    section, the stored pt must lie at the ``.syn`` x, and the stored soma distance must equal
    d(section, x) recomputed from the hoc. With a bare frame (the trial's rows), the stored soma
    distance must equal the distance of the stored point. ``tolerance`` in µm.

    ``synapses_on_points`` (default, the simrun convention: a synapse sits on a hoc point, x =
    that point's arc / L): the point must be exactly at x. False relaxes this to "the stored pt
    is a nearest point to the synapse", for data whose synapses lie between points.
    """
    network: Network | None = None
    frame: pd.DataFrame | None
    if isinstance(network_or_frame, Network):
        network, frame = network_or_frame, network_or_frame.synapse_activation
    else:
        frame = network_or_frame
    if frame is None:
        raise ValueError("the network has no synapse_activation rows; load it with "
                         "reconnect_synapses=True or pass the trial's frame")
    n = len(frame)
    sid = frame["section_ID"].to_numpy(dtype=np.int64)
    pid = frame["section_pt_ID"].to_numpy(dtype=np.int64)
    dist = frame["soma_distance"].to_numpy(dtype=float)
    n_pts = np.zeros(n, dtype=np.int64)
    sec_ok = (sid >= 0) & (sid < len(cell))
    n_pts[sec_ok] = (cell.section_start[sid[sec_ok] + 1] - cell.section_start[sid[sec_ok]])
    in_range = sec_ok & (pid >= 0) & (pid < n_pts)

    dist_dev = np.full(n, np.inf)
    pt_dev = np.zeros(n)
    unmatched = np.zeros(n, dtype=bool)
    sec_mismatch = np.zeros(n, dtype=bool)
    ok_sid, ok_pid = sid[in_range], pid[in_range]
    if synapses_on_points:
        lo = hi = cell.pt_arc[cell.section_start[ok_sid] + ok_pid]
    else:
        lo, hi = _pt_intervals(cell, ok_sid, ok_pid)
    length = cell.lengths[ok_sid]

    if network is None:
        xs_lo = np.divide(lo, length, out=np.zeros_like(lo), where=length > 0)
        xs_hi = np.divide(hi, length, out=np.zeros_like(hi), where=length > 0)
        d_lo = cell.distance_to_soma(ok_sid, xs_lo)
        d_hi = cell.distance_to_soma(ok_sid, xs_hi)
        dist_dev[in_range] = _outside(dist[in_range], np.minimum(d_lo, d_hi),
                                      np.maximum(d_lo, d_hi))
    else:
        types = frame["synapse_type"].astype(str).to_numpy()
        ids = frame["synapse_ID"].to_numpy(dtype=np.int64)
        syn_sec = np.full(n, -1, dtype=np.int64)
        syn_x = np.full(n, np.nan)
        for i, (celltype, syn_id) in enumerate(zip(types, ids, strict=True)):
            group = network.groups.get(celltype)
            if group is None or not 0 <= syn_id < len(group):
                unmatched[i] = True
                continue
            syn_sec[i] = group.section_id[syn_id]
            syn_x[i] = group.x[syn_id]
        sec_mismatch = ~unmatched & (syn_sec != sid)
        usable = in_range & ~unmatched & ~sec_mismatch
        sub = usable[in_range]  # positions within the in_range subset
        x = syn_x[usable]
        dist_dev[usable] = np.abs(cell.distance_to_soma(sid[usable], x) - dist[usable])
        pt_dev[usable] = _outside(x * length[sub], lo[sub], hi[sub])

    labels = cell.labels
    cell_label = np.full(n, None, dtype=object)
    cell_label[sec_ok] = labels[sid[sec_ok]]
    label_mismatch = cell_label != frame["dendrite_label"].astype(str).to_numpy(dtype=object)

    details = pd.DataFrame({
        "synapse_type": frame["synapse_type"].to_numpy(),
        "synapse_ID": frame["synapse_ID"].to_numpy(),
        "section_ID": sid, "section_pt_ID": pid, "soma_distance": dist,
        "in_range": in_range, "unmatched": unmatched, "section_mismatch": sec_mismatch,
        "distance_deviation": dist_dev, "pt_deviation": pt_dev,
        "label": cell_label, "label_mismatch": label_mismatch,
    }, index=frame.index)
    checked = in_range & ~unmatched & ~sec_mismatch
    report = ConsistencyReport(
        n_checked=n,
        tolerance=tolerance,
        max_distance_deviation=float(dist_dev[checked].max()) if checked.any() else 0.0,
        max_pt_deviation=float(pt_dev[checked].max()) if checked.any() else 0.0,
        n_out_of_range=int((~in_range).sum()),
        n_unmatched=int(unmatched.sum()),
        n_section_mismatch=int(sec_mismatch.sum()),
        label_mismatches=int(label_mismatch.sum()),
        details=details,
    )
    if checked.any():
        worst = int(np.argmax(np.where(checked, np.maximum(dist_dev, pt_dev), -1.0)))
        report.worst = details.iloc[worst].to_dict()
    if not report.ok:
        log.warning("%s", report)
    return report

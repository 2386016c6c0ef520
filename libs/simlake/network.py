"""Anatomical and evoked networks: ``.syn`` / ``.con`` files plus one trial's activity.

``.syn``: 3 ``#`` header lines, a blank line, then ``celltype<TAB>section ID<TAB>section x``;
synapse IDs count from 0 per cell type in file order. ``.con``: 3 ``#`` header lines (the 2nd
names the ``.syn``), a blank line, then ``celltype<TAB>presynaptic cell ID<TAB>synapse ID``.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from simlake.errors import SimrunFormatError

log = logging.getLogger(__name__)


def _split_header(data: bytes) -> tuple[list[str], bytes]:
    """Leading ``#`` lines (decoded, ``#`` stripped) and blank lines, and the rest of ``data``."""
    header: list[str] = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        end = len(data) if nl < 0 else nl
        line = data[pos:end].strip()
        if line.startswith(b"#"):
            header.append(line[1:].strip().decode("utf-8", errors="replace"))
        elif line:
            break
        pos = end + 1
    return header, data[pos:]


def _read_table(path: str, names: list[str],
                dtypes: dict[str, Any]) -> tuple[list[str], pd.DataFrame]:
    with open(path, "rb") as fh:
        data = fh.read()
    header, body = _split_header(data)
    if not body.strip():
        return header, pd.DataFrame({n: pd.Series(dtype=dtypes[n]) for n in names})
    try:
        frame = pd.read_csv(io.BytesIO(body), sep=r"\s+", header=None, usecols=[0, 1, 2],
                            index_col=False, names=names, dtype=dtypes, comment="#")
    except (ValueError, pd.errors.ParserError) as exc:
        raise SimrunFormatError(path, f"bad data line: {exc}") from None
    if frame.isna().any().any():
        raise SimrunFormatError(path, "incomplete data line (fewer than 3 fields)")
    return header, frame


@dataclass(frozen=True)
class SynapseFile:
    """A parsed ``.syn`` file: rows in file order, ``synapse_ID`` numbered per cell type."""

    path: str
    header: list[str]
    cell_name: str | None  # from '# corresponding to cell: <name>'
    frame: pd.DataFrame  # celltype, section_ID, section_x, synapse_ID

    def of_type(self, celltype: str) -> pd.DataFrame:
        """The rows of one cell type, indexed by synapse ID."""
        rows = self.frame[self.frame["celltype"] == celltype]
        return rows.set_index("synapse_ID")


@dataclass(frozen=True)
class ConnectionFile:
    """A parsed ``.con`` file."""

    path: str
    header: list[str]
    syn_reference: str | None  # the .syn named on the 2nd header line
    frame: pd.DataFrame  # celltype, cell_ID, synapse_ID


def _header_value(header: list[str]) -> str | None:
    if len(header) < 2:
        return None
    m = re.match(r"^(?:[^:/\\]*:(?![/\\])\s*)?(.*)$", header[1])  # "reldb:" is no label
    return (m.group(1).strip() if m else header[1]) or None


def read_syn(path: str) -> SynapseFile:
    """Parse a ``.syn`` synapse location file."""
    header, frame = _read_table(path, ["celltype", "section_ID", "section_x"],
                                {"celltype": str, "section_ID": "int64", "section_x": "float64"})
    frame["synapse_ID"] = frame.groupby("celltype", sort=False).cumcount().astype("int64")
    return SynapseFile(path, header, _header_value(header), frame)


def read_con(path: str) -> ConnectionFile:
    """Parse a ``.con`` connectivity file."""
    header, frame = _read_table(path, ["celltype", "cell_ID", "synapse_ID"],
                                {"celltype": str, "cell_ID": "int64", "synapse_ID": "int64"})
    return ConnectionFile(path, header, _header_value(header), frame)


def time_columns(frame: pd.DataFrame) -> list[Any]:
    """The activation/spike time columns of an ISF frame: labels ``'0'``, ``'1'``, ... (or int)."""
    cols = [c for c in frame.columns if re.fullmatch(r"\d+", str(c))]
    return sorted(cols, key=lambda c: int(c))


def _times_per_row(frame: pd.DataFrame) -> list[np.ndarray]:
    cols = time_columns(frame)
    if not cols:
        return [np.zeros(0) for _ in range(len(frame))]
    values = frame[cols].to_numpy(dtype=float, na_value=np.nan)
    return [row[~np.isnan(row)] for row in values]


@dataclass
class SynapseGroup:
    """The synapses of one presynaptic cell type.

    ``section_id``/``x``: location of each synapse (index = synapse ID); ``presynaptic_cell_id``:
    its presynaptic cell from the ``.con`` (-1: none); ``activation_times``: per synapse the trial's
    activation times (empty arrays when inactive; None without ``reconnect_synapses``);
    ``presynaptic_spike_times``: the trial's spike times per presynaptic cell ID (None without
    ``reconnect_synapses``); ``params``: the cell type's entry of the network params.
    """

    celltype: str
    section_id: np.ndarray
    x: np.ndarray
    presynaptic_cell_id: np.ndarray
    activation_times: list[np.ndarray] | None = None
    presynaptic_spike_times: dict[int, np.ndarray] | None = None
    params: Any = None

    def __len__(self) -> int:
        return len(self.section_id)

    @property
    def active_synapse_ids(self) -> np.ndarray:
        """IDs of the synapses activated at least once in the trial."""
        if self.activation_times is None:
            return np.zeros(0, dtype=np.int64)
        return np.array([i for i, t in enumerate(self.activation_times) if len(t)], dtype=np.int64)


@dataclass
class Network(Mapping):
    """Synapse groups by presynaptic cell type, plus the trial's activity frames.

    ``synapse_activation`` / ``cell_activation``: the trial's rows of those keys (None for the
    anatomical network). ``unmatched``: ``(synapse_type, synapse_ID)`` of activation rows with no
    synapse in the ``.syn`` file.
    """

    groups: dict[str, SynapseGroup]
    params: Any = None
    sim_trial_index: str | None = None
    synapse_activation: pd.DataFrame | None = None
    cell_activation: pd.DataFrame | None = None
    unmatched: list[tuple[str, int]] = field(default_factory=list)

    def __getitem__(self, celltype: str) -> SynapseGroup:
        return self.groups[celltype]

    def __iter__(self) -> Iterator[str]:
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)

    def __repr__(self) -> str:
        n = sum(len(g) for g in self.groups.values())
        return (f"Network({len(self.groups)} cell types, {n} synapses, "
                f"trial={self.sim_trial_index!r})")

    def to_neuron(self, neuron_cell: Any, **synapse_kwargs: Any):  # pragma: no cover
        """Place ``Exp2Syn`` synapses driven at the stored activation times on a NEURON cell
        (from ``cell.to_neuron()``); see :func:`simlake.neuron_sim.network_to_neuron`."""
        from simlake.neuron_sim import network_to_neuron

        return network_to_neuron(self, neuron_cell, **synapse_kwargs)


def build_network(network_params: Mapping, synapse_activation: pd.DataFrame | None = None,
                  cell_activation: pd.DataFrame | None = None,
                  sim_trial_index: str | None = None) -> Network:
    """The network described by ``network_params`` (file references must be readable paths).

    With activity frames (the rows of one trial of ``synapse_activation`` / ``cell_activation``),
    each synapse gets its activation times, matched by ``(synapse_type, synapse_ID)``, and each
    cell type its presynaptic spike times.
    """
    syn_cache: dict[str, SynapseFile] = {}
    con_cache: dict[str, ConnectionFile] = {}
    groups: dict[str, SynapseGroup] = {}
    for celltype, cfg in (network_params.get("network") or {}).items():
        syn_cfg = cfg.get("synapses") if isinstance(cfg, Mapping) else None
        if not isinstance(syn_cfg, Mapping) or not syn_cfg.get("distributionFile"):
            continue
        syn_path = syn_cfg["distributionFile"]
        if syn_path not in syn_cache:
            syn_cache[syn_path] = read_syn(syn_path)
        rows = syn_cache[syn_path].of_type(celltype)
        pre = np.full(len(rows), -1, dtype=np.int64)
        con_path = syn_cfg.get("connectionFile")
        if con_path:
            if con_path not in con_cache:
                con_cache[con_path] = read_con(con_path)
            con = con_cache[con_path].frame
            con = con[con["celltype"] == celltype]
            ids = con["synapse_ID"].to_numpy()
            bad = (ids < 0) | (ids >= len(rows))
            if bad.any():
                raise SimrunFormatError(con_path, f"{celltype}: synapse ID {int(ids[bad][0])} "
                                                  f"not in {syn_path} ({len(rows)} synapses)")
            if len(np.unique(ids)) != len(ids):
                log.warning("%s: %s synapses with several presynaptic cells; keeping the first",
                            con_path, celltype)
            first = ~pd.Series(ids).duplicated().to_numpy()
            pre[ids[first]] = con["cell_ID"].to_numpy()[first]
        groups[celltype] = SynapseGroup(
            celltype=celltype,
            section_id=rows["section_ID"].to_numpy(),
            x=rows["section_x"].to_numpy(),
            presynaptic_cell_id=pre,
            params=cfg,
        )
    net = Network(groups, params=network_params, sim_trial_index=sim_trial_index,
                  synapse_activation=synapse_activation, cell_activation=cell_activation)
    if synapse_activation is not None:
        _attach_activations(net, synapse_activation)
    if cell_activation is not None:
        _attach_spikes(net, cell_activation)
    return net


def _attach_activations(net: Network, frame: pd.DataFrame) -> None:
    per_group = {name: [np.zeros(0) for _ in range(len(g))] for name, g in net.groups.items()}
    times = _times_per_row(frame)
    types = frame["synapse_type"].astype(str).to_numpy()
    ids = frame["synapse_ID"].to_numpy(dtype=np.int64)
    for celltype, syn_id, t in zip(types, ids, times, strict=True):
        slots = per_group.get(celltype)
        if slots is None or not 0 <= syn_id < len(slots):
            net.unmatched.append((celltype, int(syn_id)))
            continue
        old = slots[syn_id]
        slots[syn_id] = np.sort(np.concatenate([old, t])) if len(old) else t
    for name, slots in per_group.items():
        net.groups[name].activation_times = slots
    if net.unmatched:
        log.warning("trial %s: %d activation rows match no synapse of the .syn files (first: %s)",
                    net.sim_trial_index, len(net.unmatched), net.unmatched[0])


def _attach_spikes(net: Network, frame: pd.DataFrame) -> None:
    for group in net.groups.values():
        group.presynaptic_spike_times = {}
    times = _times_per_row(frame)
    types = frame["presynaptic_cell_type"].astype(str).to_numpy()
    ids = frame["cell_ID"].to_numpy(dtype=np.int64)
    for celltype, cell_id, t in zip(types, ids, times, strict=True):
        target = net.groups.get(celltype)
        if target is not None and target.presynaptic_spike_times is not None:
            target.presynaptic_spike_times[int(cell_id)] = t

"""Re-simulate a stored trial in NEURON (optional extra ``simlake[neuron]``).

``neuron`` is imported lazily inside the functions, so this module imports without it. The
re-simulation is passive: every section gets ``pas`` (``g``/``e`` from the neuron params'
``neuron.<label>.mechanisms.range.pas``), ``cm`` and ``Ra`` (``...properties``), defaults
otherwise. Other mechanisms named in the params are reported by name: ``missing_mechanisms`` (not
compiled into this NEURON) or ``skipped_mechanisms`` (compiled, not used by a passive run).
Synapses are ``Exp2Syn`` driven by events at the stored activation times.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Passive defaults where the params give none.
DEFAULT_PASSIVE: dict[str, float] = {"cm": 1.0, "Ra": 100.0, "g_pas": 5e-5, "e_pas": -70.0}
#: Exp2Syn defaults (ms, mV, µS) for excitatory and inhibitory (``gaba`` in the receptor name)
#: synapses; the weight is the receptor's first ``weight`` in nS * 1e-3 when the params give one.
DEFAULT_SYNAPSE: dict[str, dict[str, float]] = {
    "excitatory": {"tau1": 0.2, "tau2": 2.0, "e": 0.0, "weight": 0.5e-3},
    "inhibitory": {"tau1": 0.2, "tau2": 10.0, "e": -80.0, "weight": 0.5e-3},
}


def _h():
    from neuron import h

    h.load_file("stdrun.hoc")
    return h


def available_mechanisms() -> set[str]:
    """Names of the density and point-process mechanisms compiled into this NEURON."""
    h = _h()
    names: set[str] = set()
    ref = h.ref("")
    for kind in (0, 1):
        mt = h.MechanismType(kind)
        for i in range(int(mt.count())):
            mt.select(i)
            mt.selected(ref)
            names.add(ref[0])
    return names


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


@dataclass
class NeuronCell:
    """A cell instantiated in NEURON: ``sections[i]`` is the NEURON section of section ID i."""

    cell: Any
    sections: list[Any]
    missing_mechanisms: set[str] = field(default_factory=set)
    skipped_mechanisms: set[str] = field(default_factory=set)
    v_init: float = DEFAULT_PASSIVE["e_pas"]

    @property
    def soma(self) -> Any:
        """The NEURON soma section (first section labelled ``Soma``, else section 0)."""
        soma = self.cell.soma
        return self.sections[soma.id if soma is not None else 0]

    def run(self, tstop: float, dt: float = 0.025, v_init: float | None = None,
            record: list[tuple[int, float]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run to ``tstop``; returns ``(t, v)``: soma(0.5) voltage, or one column per
        ``(section ID, x)`` in ``record``."""
        h = _h()
        sites = record if record is not None else [(self.soma_id, 0.5)]
        t_vec = h.Vector().record(h._ref_t)
        v_vecs = [h.Vector().record(self.sections[s](x)._ref_v) for s, x in sites]
        h.dt = dt
        h.steps_per_ms = 1.0 / dt
        h.finitialize(self.v_init if v_init is None else v_init)
        h.continuerun(tstop)
        v = np.column_stack([np.array(vec) for vec in v_vecs])
        return np.array(t_vec), (v[:, 0] if record is None else v)

    @property
    def soma_id(self) -> int:
        """Section ID of the soma."""
        soma = self.cell.soma
        return soma.id if soma is not None else 0


def cell_to_neuron(cell: Any, params: Any = None) -> NeuronCell:
    """Instantiate ``cell`` (a :class:`simlake.morphology.Cell`) as passive NEURON sections."""
    h = _h()
    compiled = available_mechanisms()
    neuron_params = _get(params, "neuron") or {}
    sections = []
    for sec in cell.sections:
        nsec = h.Section(name=f"{sec.name}")
        if sec.n_points:
            vecs = [h.Vector(np.ascontiguousarray(sec.points[:, i])) for i in range(3)]
            h.pt3dadd(*vecs, h.Vector(np.ascontiguousarray(sec.diameters)), sec=nsec)
        sections.append(nsec)
    for sec in cell.sections:
        if sec.parent_id is not None:
            sections[sec.id].connect(sections[sec.parent_id](sec.parent_x), sec.child_x)

    missing: set[str] = set()
    skipped: set[str] = set()
    e_values = []
    for sec, nsec in zip(cell.sections, sections, strict=True):
        label_params = _get(neuron_params, sec.label) or {}
        props = _get(label_params, "properties") or {}
        pas = _get(label_params, "mechanisms", "range", "pas") or {}
        nsec.cm = float(props.get("cm", DEFAULT_PASSIVE["cm"]))
        nsec.Ra = float(props.get("Ra", DEFAULT_PASSIVE["Ra"]))
        # d_lambda rule (segments of at most 0.1 length constants at 100 Hz), odd nseg
        diam = max(float(np.mean(sec.diameters)) if sec.n_points else 1.0, 1e-6)
        lam = 1e5 * math.sqrt(diam / (4 * math.pi * 100 * nsec.Ra * nsec.cm))
        nsec.nseg = int((nsec.L / (0.1 * lam) + 0.9) / 2) * 2 + 1
        nsec.insert("pas")
        g = float(pas.get("g", DEFAULT_PASSIVE["g_pas"]))
        e = float(pas.get("e", DEFAULT_PASSIVE["e_pas"]))
        for seg in nsec:
            seg.pas.g = g
            seg.pas.e = e
        e_values.append(e)
        for group in ("range", "global"):
            for mech in (_get(label_params, "mechanisms", group) or {}):
                if mech != "pas":
                    (skipped if mech in compiled else missing).add(str(mech))
    if missing:
        log.warning("mechanisms not compiled into NEURON (passive re-simulation without them): %s",
                    ", ".join(sorted(missing)))
    v_init = _get(params, "sim", "Vinit")
    return NeuronCell(cell=cell, sections=sections, missing_mechanisms=missing,
                      skipped_mechanisms=skipped,
                      v_init=float(v_init) if v_init is not None else float(np.mean(e_values or
                                                                                    [-70.0])))


@dataclass
class NeuronNetwork:
    """The NEURON objects of a placed network (keep it alive while simulating)."""

    synapses: list[Any]
    netcons: list[Any]
    handler: Any
    activation_times: list[np.ndarray]
    locations: list[tuple[str, int, int, float]]  # (celltype, synapse ID, section ID, x)
    missing_mechanisms: set[str] = field(default_factory=set)
    stimuli: list[Any] = field(default_factory=list)  # VecStim sources and their vectors


def _synapse_settings(group_params: Any, overrides: Mapping[str, float]) -> tuple[dict, str | None]:
    receptors = _get(group_params, "synapses", "receptors") or {}
    name = next(iter(receptors), None)
    kind = "inhibitory" if name and "gaba" in str(name).lower() else "excitatory"
    settings = dict(DEFAULT_SYNAPSE[kind])
    if name is not None:
        rec = receptors[name] or {}
        par = rec.get("parameter") or {}
        if kind == "inhibitory":
            for key in ("tau1", "tau2", "e"):
                if key in par:
                    settings[key] = float(par[key])
        weight = rec.get("weight")
        if isinstance(weight, (list, tuple)) and weight:
            weight = weight[0]
        if isinstance(weight, (int, float)):
            settings["weight"] = float(weight) * 1e-3
    settings.update({k: float(v) for k, v in overrides.items() if v is not None})
    return settings, (str(name) if name is not None else None)


def network_to_neuron(network: Any, neuron_cell: NeuronCell, **overrides: float) -> NeuronNetwork:
    """Place one ``Exp2Syn`` per active synapse of ``network`` on ``neuron_cell``, with events at
    its stored activation times. ``overrides``: ``tau1``, ``tau2``, ``e``, ``weight`` (µS) for
    all synapses."""
    h = _h()
    compiled = available_mechanisms()
    use_vecstim = "VecStim" in compiled
    synapses, netcons, all_times, locations, stims = [], [], [], [], []
    missing: set[str] = set()
    for celltype, group in network.groups.items():
        if group.activation_times is None:
            raise ValueError("the network has no activation times; load it with "
                             "reconnect_synapses=True")
        settings, receptor = _synapse_settings(group.params, overrides)
        if receptor is not None and receptor not in compiled:
            missing.add(receptor)
        for syn_id, times in enumerate(group.activation_times):
            if not len(times):
                continue
            sid, x = int(group.section_id[syn_id]), float(group.x[syn_id])
            syn = h.Exp2Syn(neuron_cell.sections[sid](x))
            syn.tau1, syn.tau2, syn.e = settings["tau1"], settings["tau2"], settings["e"]
            if use_vecstim:  # pragma: no cover - VecStim is not part of a plain NEURON wheel
                stim = h.VecStim()
                vec = h.Vector(np.asarray(times, dtype=float))
                stim.play(vec)
                stims.append((stim, vec))
                nc = h.NetCon(stim, syn, 0, 0, settings["weight"])
            else:
                nc = h.NetCon(None, syn, 0, 0, settings["weight"])
            synapses.append(syn)
            netcons.append(nc)
            all_times.append(np.asarray(times, dtype=float))
            locations.append((celltype, syn_id, sid, x))
    if missing:
        log.warning("synapse mechanisms not compiled into NEURON, replaced by Exp2Syn: %s",
                    ", ".join(sorted(missing)))

    def queue_events() -> None:
        for nc, times in zip(netcons, all_times, strict=True):
            for t in times:
                nc.event(float(t))

    handler = None if use_vecstim else h.FInitializeHandler(queue_events)
    return NeuronNetwork(synapses, netcons, handler, all_times, locations, missing, stims)

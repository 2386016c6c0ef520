"""Parameter files (NeuroTools ``ParameterSet`` style dict literals): neuron and network.

Two shapes: the small files of the default trees (4-space indent, ``#`` comments, 5 cell types),
and real-shaped ones: a neuron file of ~8.7 KB (Hay et al. style biophysics, tab indent, blank
lines) and a network file of ~350 KB (one entry per presynaptic cell type with its receptors,
the shared ``.syn``/``.con`` paths and a spike train or PSTH point-cell description, 2-space
indent) as simrun writes them. Every file is read by ``ast.literal_eval`` once comments are
stripped.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simlake.synth.network import Network

DT = 0.025  #: integration / sampling step (ms)
T_RECORD = 100.0  #: time of the first voltage row (ms)


@dataclass(frozen=True)
class _Note:
    value: Any
    comment: str


def _literal(value: Any, indent: int, unit: str = "    ") -> str:
    pad = unit * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = ["{"]
        for key, item in value.items():
            if key.startswith("#"):
                lines.append(f"{pad}{unit}{key}")
                continue
            note = ""
            if isinstance(item, _Note):
                item, note = item.value, f"  # {item.comment}"
            lines.append(f'{pad}{unit}"{key}": {_literal(item, indent + 1, unit)},{note}')
        return "\n".join(lines + [pad + "}"])
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v, indent, unit) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            items = [f"{pad}{unit}{_literal(v, indent + 1, unit)}," for v in value]
            return "\n".join(["["] + items + [pad + "]"])
        return "[" + ", ".join(_literal(v, indent, unit) for v in value) + "]"
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
    for c, name in enumerate(net.layout.population.names):
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
# Real-shaped parameter files

_HAY_SOMA = {"Ca_LVAst": {"gCa_LVAstbar": 0.00462}, "Ca_HVA": {"gCa_HVAbar": 0.000642},
             "SKv3_1": {"gSKv3_1bar": 0.983}, "SK_E2": {"gSK_E2bar": 0.0492},
             "K_Tst": {"gK_Tstbar": 0.0471}, "K_Pst": {"gK_Pstbar": 0.0},
             "Nap_Et2": {"gNap_Et2bar": 0.00499}, "NaTa_t": {"gNaTa_tbar": 2.43},
             "CaDynamics_E2": {"decay": 770.0, "gamma": 0.000616}, "Ih": {"gIhbar": 8e-05}}
_HAY_AIS = {"Ca_LVAst": {"gCa_LVAstbar": 0.00462}, "Ca_HVA": {"gCa_HVAbar": 0.000692},
            "SKv3_1": {"gSKv3_1bar": 0.957}, "SK_E2": {"gSK_E2bar": 0.0115},
            "K_Tst": {"gK_Tstbar": 0.0786}, "K_Pst": {"gK_Pstbar": 0.973},
            "Nap_Et2": {"gNap_Et2bar": 0.00996}, "NaTa_t": {"gNaTa_tbar": 3.137},
            "CaDynamics_E2": {"decay": 287.0, "gamma": 0.0189}, "Ih": {"gIhbar": 8e-05}}


def _hay_section(cm: float, g_pas: float, mechs: dict[str, dict[str, Any]],
                 ions: bool = True) -> dict[str, Any]:
    props: dict[str, Any] = {"Ra": 100.0, "cm": cm}
    if ions:
        props["ions"] = {"ek": -85.0, "ena": 50.0}
    rng_mechs = {"pas": {"spatial": "uniform", "g": g_pas, "e": -90.0}}
    for name, values in mechs.items():
        rng_mechs[name] = {"spatial": values.get("spatial", "uniform"),
                           **{k: v for k, v in values.items() if k != "spatial"}}
    return {"properties": props, "mechanisms": {"global": {}, "range": rng_mechs}}


def neuron_params_real(variant: str, hoc_path: str, recsite_paths: Sequence[str],
                       t_stop: float) -> str:
    """A real-shaped neuron param file (~8.7 KB, tab indent) of biophysics ``variant``."""
    scale = 1.0 if variant == "N1" else 1.35
    apical: dict[str, dict[str, Any]] = {
              "Ca_LVAst": {"spatial": "uniform_range", "begin": 900.0, "end": 1100.0,
                           "outsidescale": 0.01, "gCa_LVAstbar": 0.187},
              "Ca_HVA": {"spatial": "uniform_range", "begin": 900.0, "end": 1100.0,
                         "outsidescale": 0.1, "gCa_HVAbar": round(0.00555 * scale, 6)},
              "SKv3_1": {"gSKv3_1bar": 0.000261}, "SK_E2": {"gSK_E2bar": 0.0012},
              "NaTa_t": {"gNaTa_tbar": 0.0213}, "Im": {"gImbar": 0.000675},
              "CaDynamics_E2": {"decay": 122.0, "gamma": 0.000509},
              "Ih": {"spatial": "exponential", "distance": "relative", "offset": -0.8696,
                     "linScale": 2.087, "_lambda": 3.6161, "xOffset": 0.0, "gIhbar": 8e-05}}
    tree: dict[str, Any] = {
        "info": {"name": f"hay_2011_synthetic_{variant}", "author": "simlake synth",
                 "date": "15Oct2014"},
        "NMODL_mechanisms": {"channels": "/"},
        "mech_globals": {},
        "neuron": {
            "filename": hoc_path,
            "Soma": _hay_section(1.0, 3.26e-05, {k: {**v} for k, v in _HAY_SOMA.items()}),
            "Dendrite": _hay_section(2.0, 6.31e-05, {"Ih": {"gIhbar": 0.0002}}, ions=False),
            "ApicalDendrite": _hay_section(2.0, 8.82e-05, apical),
            "AIS": _hay_section(1.0, 3.26e-05, _HAY_AIS),
            "Myelin": _hay_section(0.02, 4e-05, {}, ions=False),
            "cell_modify_functions": ({} if variant == "N1" else
                                      {"scale_apical": {"scale": 1.2}}),
        },
        "sim": {
            "Vinit": -75.0, "tStart": 0.0, "tStop": t_stop, "dt": DT, "T": 34.0,
            "recordingRange": (T_RECORD, t_stop),
            "recordingSites": list(recsite_paths),
        },
    }
    return ("# neuron model parameters (synthetic, Hay et al. 2011 style)\n"
            f"{_literal_allman(tree, 0)}\n")


def _literal_allman(value: Any, indent: int) -> str:
    """Dicts with the key on its own line, braces on the next, blank lines between entries."""
    if not isinstance(value, dict):
        return _literal(value, indent, "\t")
    pad = "\t" * min(indent, 2) + "    " * max(0, indent - 2)  # tabs, then spaces, as ISF's
    inner = "\t" * min(indent + 1, 2) + "    " * max(0, indent - 1)
    lines = ["{"]
    for key, item in value.items():
        if isinstance(item, dict):
            lines += [f'{inner}"{key}":', f"{inner}{_literal_allman(item, indent + 1)},", ""]
        else:
            lines.append(f'{inner}"{key}":\t{_literal(item, indent + 1, "    ")},')
    return "\n".join(lines + [pad + "}"])


def network_tree_real(net: Network, syn_path: str, con_path: str, seed: int,
                      min_bytes: int = 340_000) -> dict[str, Any]:
    """The dict of a real-shaped network param file of at least ``min_bytes`` printed.

    ISF's example file is 356-383 KB with paths of ~170 characters; with shorter paths, the
    point cells' PSTHs get more bins, so the file keeps its real size wherever the tree is.
    """
    bins = 20
    while True:
        tree = _network_tree(net, syn_path, con_path, np.random.default_rng(seed), bins)
        if len(network_text_real(tree)) >= min_bytes or bins >= 200:
            return tree
        bins += 4


def _network_tree(net: Network, syn_path: str, con_path: str, rng: np.random.Generator,
                  psth_bins: int) -> dict[str, Any]:
    """The dict of a real-shaped network param file: one entry per presynaptic cell type.

    Types fire as a Poisson ``spiketrain`` (``interval`` = mean ISI) and, for 60 % of them, also
    as a ``pointcell`` with an evoked PSTH of about ``psth_bins`` one-ms bins.
    """
    population = net.layout.population
    offsets = net.cell_offsets
    cells: dict[str, Any] = {}
    for c, name in enumerate(population.names):
        block = net.rates_hz[offsets[c]:offsets[c] + net.cell_numbers[c]]
        interval = round(1000.0 / float(np.mean(block)), 1)
        if population.inhibitory[c]:
            receptors = {"gaba_syn": {
                "threshold": 0.0, "delay": 0.0,
                "parameter": {"decaytime": 20.0, "risetime": 1.0, "decaygaba": 1.0, "e": -80.0,
                              "facilgaba": 0.0},
                "weight": 1.0}}
        else:
            w = round(float(rng.uniform(0.5, 2.5)), 2)
            receptors = {"glutamate_syn": {
                "threshold": 0.0, "delay": 0.0,
                "parameter": {"decayampa": 1.0, "facilnmda": 0.0, "tau2": 2.0, "tau3": 2.0,
                              "tau1": 26.0, "tau4": 0.1, "decaynmda": 1.0, "facilampa": 0.0},
                "weight": [w, w]}}
        synapses = {"releaseProb": 0.25 if population.inhibitory[c] else 0.6,
                    "distributionFile": syn_path, "receptors": receptors,
                    "connectionFile": con_path}
        entry: dict[str, Any] = {"synapses": synapses, "cellNr": net.cell_numbers[c]}
        if rng.random() < 0.6:
            n_bins = int(rng.integers(0, 2 * psth_bins + 1))
            span = max(50, n_bins)
            starts = np.sort(rng.choice(span, size=n_bins, replace=False)).astype(float)
            entry["celltype"] = {
                "pointcell": {
                    "probabilities": [round(float(p), 4)
                                      for p in rng.uniform(0.004, 0.04, starts.size)],
                    "distribution": "PSTH",
                    "intervals": [(s, s + 1.0) for s in starts.tolist()],
                    "offset": 245.0},
                "spiketrain": {"interval": interval}}
        else:
            entry["celltype"] = "spiketrain"
            entry["interval"] = interval
        cells[name] = entry
    return {"info": {"date": "11Feb2015", "name": f"synthetic_network_{net.name}",
                     "author": "simlake synth"},
            "network": cells,
            "NMODL_mechanisms": {"synapses": "/", "VecStim": "/"}}


def network_sweep_real(tree: dict[str, Any]) -> Callable[[int], str]:
    """``i -> text`` of sweep point ``i`` (= :func:`network_text_real` with ``sweep=i``).

    The text is printed once with a placeholder per weight; a sweep point only prints its weights.
    """
    weights: list[Any] = []
    marked = {}
    for name, entry in tree["network"].items():
        receptors = {}
        for rname, rec in entry["synapses"]["receptors"].items():
            receptors[rname] = {**rec, "weight": f"\x00{len(weights)}\x00"}
            weights.append(rec["weight"])
        marked[name] = {**entry, "synapses": {**entry["synapses"], "receptors": receptors}}
    name_slot = f"\x00{len(weights)}\x00"
    text = network_text_real({**tree, "info": {**tree["info"], "name": name_slot},
                              "network": marked})
    parts = re.split('"\x00([0-9]+)\x00"', text)  # text, slot, text, slot, ..., text
    pieces, slots = parts[0::2], [int(k) for k in parts[1::2]]

    def text_of(sweep: int) -> str:
        factor = 1.0 + 0.01 * (sweep + 1)
        values = [_literal(_scaled(w, factor), 0) for w in weights]
        values.append(_literal(f"{tree['info']['name']}_sweep{sweep}", 0))
        return "".join(p + values[k] for p, k in zip(pieces, slots, strict=False)) + pieces[-1]

    return text_of


def _scaled(weight: Any, factor: float) -> Any:
    if isinstance(weight, list):
        return [round(v * factor, 6) for v in weight]
    return round(weight * factor, 6)


def network_text_real(tree: dict[str, Any], sweep: int | None = None) -> str:
    """Text of a real-shaped network file; ``sweep`` = i scales every weight (sweep point i)."""
    if sweep is not None:
        factor = 1.0 + 0.01 * (sweep + 1)
        cells = {}
        for name, entry in tree["network"].items():
            receptors = {}
            for rname, rec in entry["synapses"]["receptors"].items():
                receptors[rname] = {**rec, "weight": _scaled(rec["weight"], factor)}
            cells[name] = {**entry, "synapses": {**entry["synapses"], "receptors": receptors}}
        tree = {**tree, "info": {**tree["info"], "name": f"{tree['info']['name']}_sweep{sweep}"},
                "network": cells}
    return f"# network model parameters (synthetic)\n{_literal(tree, 0, '  ')}\n"

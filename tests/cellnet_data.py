"""Small hand-written morphology / synapse / param files and a stand-in database for the
cell-and-network tests (tests/test_cellnet.py, tests/test_neuron_resim.py)."""

from __future__ import annotations

import math
import os

import dask.dataframe as dd
import numpy as np
import pandas as pd

from simlake.paramfiles import store_parameter_file

# name -> (parent name, parent x, points (x, y, z, diam)); create order = section ID
SECTIONS: list[tuple[str, str | None, float, list[tuple[float, float, float, float]]]] = [
    ("soma", None, 0.0, [(0, 0, 0, 10), (0, 5, 0, 10), (0, 10, 0, 10)]),
    ("dend_1", "soma", 0.0, [(0, 0, 0, 2), (-30, -40, 0, 2), (-30, -40, 12, 2)]),
    ("dend_1_0", "dend_1", 1.0, [(-30, -40, 12, 1.5), (-30, -70, 52, 1.5)]),
    ("apical_1", "soma", 1.0, [(0, 10, 0, 3), (0, 30, 0, 3), (0, 40, 0, 3), (0, 110, 0, 3)]),
    ("apical_1_0", "apical_1", 0.5, [(0, 55, 0, 1), (9, 55, 12, 1), (9, 75, 12, 1)]),
]
LABELS = ["Soma", "Dendrite", "Dendrite", "ApicalDendrite", "ApicalDendrite"]


def hoc_text(sections=SECTIONS, junk_before_clear: bool = True) -> str:
    """ISF-style hoc: braces, one statement per line; dend_1 gets a point dropped by pt3dclear."""
    lines = []
    for name, parent, px, pts in sections:
        lines.append(f"{{create {name}}}")
        if parent is not None:
            lines.append(f"{{connect {name}(0), {parent}({px:f})}}")
        lines.append(f"{{access {name}}}")
        lines.append("{nseg = 1}")
        if junk_before_clear and name == "dend_1":
            lines.append("{pt3dadd(999,999,999,9)}")
        lines.append("{pt3dclear()}")
        lines += [f"{{pt3dadd({x},{y},{z},{d})}}" for x, y, z, d in pts]
        lines.append("")
    return "\n".join(lines)


def lengths(sections=SECTIONS) -> list[float]:
    """Section lengths, computed independently of simlake."""
    return [sum(math.dist(a[:3], b[:3]) for a, b in zip(pts, pts[1:], strict=False))
            for _, _, _, pts in sections]


def arc_x(sections, sid: int, pt: int) -> float:
    pts = sections[sid][3]
    arc = sum(math.dist(a[:3], b[:3]) for a, b in zip(pts[:pt], pts[1:pt + 1], strict=True))
    return arc / lengths(sections)[sid]


def soma_distance(sections, sid: int, x: float) -> float:
    """d(s, x) by plain recursion over the section table."""
    names = [s[0] for s in sections]
    name, parent, px, _ = sections[sid]
    if name == "soma":
        return 0.0
    base = 0.0 if parent in (None, "soma") else soma_distance(sections, names.index(parent), px)
    return x * lengths(sections)[sid] + base


# (celltype, section ID, pt ID): synapses placed on points; IDs per type in this order
SYNAPSES = [
    ("L2", 1, 1), ("L2", 2, 1), ("VPM", 0, 2), ("L2", 4, 2), ("VPM", 3, 2), ("VPM", 1, 2),
]
# celltype, presynaptic cell ID, synapse ID
CONNECTIONS = [("L2", 0, 0), ("L2", 1, 1), ("L2", 0, 2), ("VPM", 3, 0), ("VPM", 3, 1),
               ("VPM", 5, 2)]
# (celltype, synapse ID) -> activation times of trial 0
ACTIVATIONS = {("L2", 0): [20.0], ("VPM", 1): [50.0, 80.0], ("L2", 2): [110.0]}
SPIKES = {("L2", 0): [20.0, 110.0], ("L2", 1): [], ("VPM", 3): [50.0, 80.0]}


def write_sources(src: str, mismatched: bool = False) -> dict[str, str]:
    """Write hoc, second hoc, landmarks, .syn, .con and both param files into ``src``."""
    os.makedirs(src, exist_ok=True)
    paths = {k: os.path.join(src, n) for k, n in [
        ("hoc", "cell.hoc"), ("hoc2", "other.hoc"), ("land", "site.landmarkAscii"),
        ("syn", "cell.syn"), ("con", "cell.con"), ("neuron", "neuron_model.param"),
        ("neuron2", "neuron2_model.param"), ("network", "network_model.param")]}
    with open(paths["hoc"], "w") as fh:
        fh.write(hoc_text())
    other = [list(s) for s in SECTIONS]
    other[1][3] = [(0, 0, 0, 2), (-60, -80, 0, 2), (-60, -80, 12, 2)]  # longer dend_1
    with open(paths["hoc2"], "w") as fh:
        fh.write(hoc_text([tuple(s) for s in other]))
    with open(paths["land"], "w") as fh:
        fh.write("# AmiraMesh 3D ASCII 2.0\n\ndefine Markers 1\n\n"
                 "Parameters {\n    NumSets 1\n}\n\nMarkers { float[3] Coordinates } @1\n\n"
                 "# Data section follows\n@1\n1.5 2.5 3.5\n-4 5 6e1\n")
    with open(paths["syn"], "w") as fh:
        fh.write(f"# Synapse distribution file\n# corresponding to cell: {paths['hoc']}\n"
                 "# Type - section - section.x\n\n")
        for celltype, sid, pt in SYNAPSES:
            fh.write(f"{celltype}\t{sid}\t{arc_x(SECTIONS, sid, pt)!r}\n")
    with open(paths["con"], "w") as fh:
        fh.write("# Functional realization file; only valid with synapse realization:\n"
                 "# cell.syn\n# Type - cell ID - synapse ID\n\n")
        for celltype, cell_id, syn_id in CONNECTIONS:
            fh.write(f"{celltype}\t{cell_id}\t{syn_id}\n")
    for key, hoc in (("neuron", paths["hoc"]), ("neuron2", paths["hoc2"])):
        with open(paths[key], "w") as fh:
            fh.write(neuron_param_text(hoc, [paths["land"]]))
    with open(paths["network"], "w") as fh:
        fh.write(network_param_text(paths["syn"], paths["con"]))
    return paths


def neuron_param_text(hoc: str, sites: list[str]) -> str:
    site_lines = "".join(f"            '{s}',  # site\n" for s in sites)
    return f"""# neuron model (comment with "quotes" and a # hash)
{{
    "info": {{"author": "test # not a comment", "date": "2020",}},
    "neuron": {{
        "filename": "{hoc}",   # morphology
        "Soma": {{
            "properties": {{"Ra": 100.0, "cm": 1.0, "ions": {{"ek": -85.0}}}},
            "mechanisms": {{
                "global": {{}},
                "range": {{
                    "pas": {{"spatial": "uniform", "g": 5e-05, "e": -75.0}},
                    "Ca_HVA": {{"spatial": "uniform", "gCa_HVAbar": 0.001}},
                }},
            }},
        }},
        "Dendrite": {{
            "properties": {{"Ra": 100.0, "cm": 2.0}},
            "mechanisms": {{"global": {{}}, "range": {{"pas": {{"spatial": "uniform",
                "g": 1e-4, "e": -75.0}}}}}},
        }},
        "ApicalDendrite": {{
            "properties": {{"Ra": 100.0, "cm": 2.0}},
            "mechanisms": {{"global": {{}}, "range": {{"pas": {{"g": 1e-4, "e": -75.0}}}}}},
        }},
    }},
    "sim": {{
        "Vinit": -75.0,
        "tStart": 0.0,
        "tStop": 150.0,
        "dt": 0.025,
        "T": 34.0,
        "recordingSites": [
{site_lines}        ],
        "window": (0.0, 150.0,),
    }},
}}
"""


def network_param_text(syn: str, con: str) -> str:
    def celltype(weight: float) -> str:
        return f"""{{
            "celltype": "spiketrain",
            "cellNr": 6,
            "synapses": {{
                "distributionFile": "{syn}",
                "connectionFile": "{con}",
                "receptors": {{
                    "glutamate_syn": {{
                        "threshold": 0.0, "delay": 0.0,
                        "parameter": {{"tau1": 26.0, "tau2": 2.0, "tau3": 2.0, "tau4": 0.1}},
                        "weight": ({weight}, {weight}),
                    }},
                }},
            }},
        }}"""
    return f"""{{
    "info": {{"name": "evoked"}},
    "NMODL_mechanisms": {{"VecStim": "/", "synapses": "/"}},
    "network": {{
        "L2": {celltype(1.5)},
        "VPM": {celltype(2.0)},  # thalamic
    }},
}}
"""


def activation_frames(sti: str, sections=SECTIONS, shift: float = 0.0):
    """Trial rows of synapse_activation / cell_activation, ISF-shaped (string time labels)."""
    per_type: dict[str, int] = {}
    rows = []
    for celltype, sid, pt in SYNAPSES:
        syn_id = per_type.get(celltype, 0)
        per_type[celltype] = syn_id + 1
        times = ACTIVATIONS.get((celltype, syn_id))
        if times is None:
            continue
        x = arc_x(sections, sid, pt)
        rows.append((celltype, syn_id, soma_distance(sections, sid, x) + shift, sid, pt,
                     LABELS[sid], times))
    k = max(len(r[-1]) for r in rows)
    syn = pd.DataFrame({
        "synapse_type": [r[0] for r in rows], "synapse_ID": [r[1] for r in rows],
        "soma_distance": [r[2] for r in rows], "section_ID": [r[3] for r in rows],
        "section_pt_ID": [r[4] for r in rows], "dendrite_label": [r[5] for r in rows],
        **{str(i): [r[6][i] if i < len(r[6]) else np.nan for r in rows] for i in range(k)},
    }, index=pd.Index([sti] * len(rows), name="sim_trial_index"))
    cells = pd.DataFrame({
        "presynaptic_cell_type": [c for c, _ in SPIKES], "cell_ID": [i for _, i in SPIKES],
        **{str(i): [t[i] if i < len(t) else np.nan for t in SPIKES.values()] for i in range(2)},
    }, index=pd.Index([sti] * len(SPIKES), name="sim_trial_index"))
    return syn, cells


class StandInDB:
    """The minimal DataBase surface the loaders use: ``basedir`` and ``db[key]``."""

    def __init__(self, basedir: str, frames: dict) -> None:
        self.basedir = basedir
        self._frames = frames

    def __getitem__(self, key: str):
        return self._frames[key]


STI_OK = "run/20200101-0000_1/000000"
STI_BAD = "run/20200101-0000_1/000001"  # same activity, but the neuron param names other.hoc


def build_db(tmp_path) -> tuple[StandInDB, dict[str, str]]:
    """Store the param files in a database and index two trials (consistent, mismatched)."""
    src, db_root = str(tmp_path / "src"), str(tmp_path / "db")
    paths = write_sources(src)
    neuron = store_parameter_file(paths["neuron"], db_root, "neuron")
    neuron2 = store_parameter_file(paths["neuron2"], db_root, "neuron")
    network = store_parameter_file(paths["network"], db_root, "network")
    index = pd.Index([STI_OK, STI_BAD], name="sim_trial_index")
    params = pd.DataFrame({
        "path_neuron": [paths["neuron"], paths["neuron2"]],
        "path_network": [paths["network"]] * 2,
        "hash_neuron": [neuron.md5, neuron2.md5],
        "hash_network": [network.md5] * 2,
    }, index=index)
    syn0, cells0 = activation_frames(STI_OK)
    syn1, cells1 = activation_frames(STI_BAD)
    frames = {
        "parameterfiles": params,
        "synapse_activation": dd.from_pandas(pd.concat([syn0, syn1]), npartitions=2),
        "cell_activation": dd.from_pandas(pd.concat([cells0, cells1]), npartitions=2),
    }
    return StandInDB(db_root, frames), paths

"""Deterministic generator of raw simrun trees, every format variant in one tree.

``generate_tree(out_dir, runs=6, ...)`` writes, for a given seed, a byte-identical tree::

    <out>/
      _anatomy/                    not a sim-run folder (discovery ignores it)
        morphology/L5tt_synth.hoc
        network/L5tt_synth.syn  L5tt_synth_A.con  [L5tt_synth_B.con]
        recsites/apical_proximal_distal_rec_sites.landmarkAscii
        recsites/apical_trunk_rec_sites.landmarkAscii
      results/<YYYYMMDD-HHMM_uid>/ depth 2
      results/batch2/<...>/        depth 3
      <YYYYMMDD-HHMM_uid>/         depth 1
      results/<..._running>/       in progress: skip it, and the sim-run folder nested in it

The first six folders cover the variants (fewer runs: the first ``runs`` of them; more: a cycle of
ordinary folders, see ``tree._plan``):

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
(0, 2, 3, 5, ...) and ``B`` (1, 4, ...) with ``network_params="variants"``; one file for all
(``"shared"``) or one per folder (``"distinct"``) otherwise. Both networks share the ``.syn``;
their ``.con`` differ.

Two profiles (``shapes``): ``default`` (small files, numbers with 10 decimals) and ``real``
(files of ISF's example simrun folder's sizes and structure; old-era folders print numbers with
12 significant digits, new-era ones as ``repr``).

Data are coherent: a synapse's activation times are exactly the spike times of its presynaptic
cell (per the ``.con``), somatic EPSPs follow the trial's activations, ``soma_distance`` is the
true path distance of the synapse's ``.hoc`` point. Numbers are printed without a per-value
Python loop (``numbers``).

Modules: ``numbers`` (number printers), ``morphology`` (``.hoc``, recording sites), ``network``
(cell types, ``.syn``, ``.con``, rates), ``params`` (param files), ``trials`` (synapse and cell
files), ``traces`` (voltage traces), ``shapes`` (profiles), ``tree`` (the folders and
:func:`generate_tree`), ``report``, ``cli`` (``simlake synth``).
"""
from __future__ import annotations

from simlake.synth.cli import add_arguments, run
from simlake.synth.morphology import Morphology, RecordingSite, make_morphology
from simlake.synth.params import DT, T_RECORD
from simlake.synth.report import FolderReport, SynthReport
from simlake.synth.shapes import REAL, REAL_FOLDER_SIZES, Shape
from simlake.synth.tree import ANATOMY_DIR, generate_tree

__all__ = ["ANATOMY_DIR", "DT", "REAL", "REAL_FOLDER_SIZES", "T_RECORD", "FolderReport",
           "Morphology", "RecordingSite", "Shape", "SynthReport", "add_arguments",
           "generate_tree", "make_morphology", "run"]

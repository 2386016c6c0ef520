"""Writing a tree: folder plans, sim-run folders, anatomy files, and :func:`generate_tree`."""
from __future__ import annotations

import datetime as _dt
import io
import logging
import os
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simlake.synth import numbers, params, traces
from simlake.synth.morphology import Morphology, RecordingSite, make_morphology, recording_sites
from simlake.synth.network import (
    Network,
    SynapseLayout,
    make_network,
    make_synapses,
    real_population,
    small_population,
)
from simlake.synth.numbers import MAX_ABS, Printer, gather, pack, py2_str
from simlake.synth.params import DT, T_RECORD
from simlake.synth.report import FolderReport, SynthReport
from simlake.synth.shapes import NETWORK_PARAMS, Shape, shape_for
from simlake.synth.trials import Statics, make_statics, make_trial

logger = logging.getLogger(__name__)

ANATOMY_DIR = "_anatomy"
_ROW_BLOCK = 2048  #: voltage rows printed at a time (bounds the gather's index memory)


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
class _TimeColumn:
    """The printed ``t`` column: ``"100.0\\t"``, ``"100.025\\t"``, ... (same in every format)."""

    values: np.ndarray
    buf: np.ndarray
    start: np.ndarray
    length: np.ndarray


def _time_column(n_times: int) -> _TimeColumn:
    values = np.array([round(T_RECORD + DT * k, 3) for k in range(n_times)])
    buf, start, length = pack([f"{t!r}\t" for t in values.tolist()])
    return _TimeColumn(values, buf, start, length)


@dataclass(frozen=True, eq=False)
class _Context:
    root: str
    shape: Shape
    t_stop: float
    times: _TimeColumn
    morph: Morphology
    sites: tuple[RecordingSite, ...]
    statics: dict[tuple[str, str], Statics]  #: by (network, number format)
    printers: dict[str, Printer]  #: by number format
    neuron_text: dict[str, str]
    network_text: dict[str, str]
    network_sweep: Any  #: i -> network text of folder i, or None when folders share texts


def _table_bytes(times: _TimeColumn, printer: Printer, codes: np.ndarray) -> bytes:
    """A voltage trace file: header, then ``t`` and one column per trial."""
    header = "\t".join(["t"] + [f"Vm run {i:02d}" for i in range(codes.shape[1])])
    parts = [header.encode() + b"\n"]
    for lo in range(0, codes.shape[0], _ROW_BLOCK):
        block = codes[lo:lo + _ROW_BLOCK]
        seps = np.full(block.shape, ord("\t"), np.uint8)
        seps[:, -1] = ord("\n")
        flat, lengths = printer.tokens(block, seps)
        row_len = lengths.reshape(block.shape).sum(axis=1)
        src = np.concatenate([times.buf, flat])
        rows = slice(lo, lo + block.shape[0])
        starts = np.column_stack([times.start[rows], times.buf.size + np.cumsum(row_len) - row_len])
        lens = np.column_stack([times.length[rows], row_len])
        parts.append(gather(src, starts.ravel(), lens.ravel()).tobytes())
    return b"".join(parts)


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


def _write_trials(ctx: _Context, folder: str, network: str, fmt: str,
                  trial_numbers: Sequence[int], padding: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    st = ctx.statics[(network, fmt)]
    printer = ctx.printers[fmt]
    hist = np.zeros((ctx.shape.times, len(trial_numbers)))
    n_syn = n_cell = 0
    for j, nr in enumerate(trial_numbers):
        trial = make_trial(rng, st, printer, ctx.t_stop, ctx.shape.times, ctx.shape.listed)
        _write(os.path.join(folder, f"simulation_run{nr:0{padding}d}_synapses.csv"),
               trial.synapses)
        _write(os.path.join(folder, f"simulation_run{nr:0{padding}d}_presynaptic_cells.csv"),
               trial.cells)
        hist[:, j] = trial.activations
        n_syn, n_cell = n_syn + trial.synapse_lines, n_cell + trial.cell_lines
    return hist, n_syn, n_cell


def _write_folder(ctx: _Context, i: int, plan: _FolderPlan, n_trials: int,
                  rng: np.random.Generator) -> FolderReport:
    name, uid = _folder_name(rng, plan.era, i)
    sim_run = f"{plan.parent}/{name}" if plan.parent else name
    folder = os.path.join(ctx.root, *sim_run.split("/"))
    os.makedirs(folder)
    fmt = ctx.shape.number_format(plan.era)
    volt = ctx.printers[fmt]
    numbers = _trial_numbers(rng, n_trials, plan.consecutive or plan.voltage_format == "npz")
    hist, n_syn, n_cell = _write_trials(ctx, folder, plan.network, fmt, numbers, plan.padding,
                                        rng)
    soma, *dends = (volt.encode(v) for v in traces.simulate(rng, hist))
    if "csv" in plan.voltage_format:
        _write(os.path.join(folder, f"{uid}_vm_all_traces.csv"),
               _table_bytes(ctx.times, volt, soma))
    if "npz" in plan.voltage_format:
        _write_npz(os.path.join(folder, f"{uid}_vm_all_traces.npz"),
                   np.column_stack([ctx.times.values, volt.floats(soma)]))
    prefix = f"seed_{uid}_" if plan.seed_dend_prefix else f"{uid}_"
    for site, trace in zip(ctx.sites, dends, strict=True):
        _write(os.path.join(folder, f"{prefix}{site.label}_vm_dend_traces.csv"),
               _table_bytes(ctx.times, volt, trace))
    network_text = (ctx.network_sweep(i) if ctx.network_sweep is not None
                    else ctx.network_text[plan.network])
    _write(os.path.join(folder, f"{uid}_neuron_model.param"), ctx.neuron_text[plan.neuron])
    _write(os.path.join(folder, f"{uid}_network_model.param"), network_text)
    leftovers = _write_leftovers(ctx, folder, uid, plan, network_text, rng)
    return FolderReport(
        sim_run=sim_run, era=plan.era, uid=uid, voltage_format=plan.voltage_format,
        voltage_file=f"{uid}_vm_all_traces.{'npz' if plan.voltage_format == 'npz' else 'csv'}",
        trial_numbers=tuple(numbers), padding=plan.padding,
        dendritic_labels=tuple(s.label for s in ctx.sites), dendritic_prefix=prefix,
        neuron_variant=plan.neuron, network_variant=plan.network, leftovers=leftovers,
        synapse_lines=n_syn, cell_lines=n_cell,
        soma_spike_counts=tuple(int(c) for c in traces.crossings(volt.floats(soma), 0.0)),
        number_format=fmt)


def _write_leftovers(ctx: _Context, folder: str, uid: str, plan: _FolderPlan,
                     network_text: str, rng: np.random.Generator) -> tuple[str, ...]:
    written: list[tuple[str, str]] = []
    if "hostname" in plan.extras:
        written.append((f"hostname_node{int(rng.integers(1, 400)):03d}", ""))
    if "template" in plan.extras:
        text = network_text.replace(".con", ".con.TEMPLATE_CONNECTIONS")
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
    fmt = ctx.shape.new_format
    volt = ctx.printers[fmt]
    hist, _, _ = _write_trials(ctx, folder, "A", fmt, [0, 1], 4, rng)
    table = _table_bytes(ctx.times, volt, volt.encode(traces.simulate(rng, hist)[0]))
    cut = table.find(b"\n", len(table) // 3) + 7
    _write(os.path.join(folder, f"{uid}_vm_all_traces.csv"), table[:cut])  # truncated row
    _write(os.path.join(folder, f"{uid}_neuron_model.param"), ctx.neuron_text["N1"])
    _write(os.path.join(folder, f"{uid}_network_model.param"), ctx.network_text["A"])
    nested_name, nested_uid = _folder_name(rng, "new", 91)
    nested = os.path.join(folder, nested_name)
    os.makedirs(nested)
    hist, _, _ = _write_trials(ctx, nested, "A", fmt, [0], 4, rng)
    _write(os.path.join(nested, f"{nested_uid}_vm_all_traces.csv"),
           _table_bytes(ctx.times, volt, volt.encode(traces.simulate(rng, hist)[0])))
    files = sorted(os.path.relpath(os.path.join(d, f), ctx.root).replace(os.sep, "/")
                   for d, _, fs in os.walk(folder) for f in fs)
    return rel, tuple(files)


def _write_anatomy(root: str, shape: Shape, morph: Morphology, sites: Sequence[RecordingSite],
                   layout: SynapseLayout, networks: dict[str, Network]) -> dict[str, str]:
    """Write the referenced files; returns their absolute paths by role."""
    base = os.path.join(root, ANATOMY_DIR)
    for sub in ("morphology", "network", "recsites"):
        os.makedirs(os.path.join(base, sub))
    paths = {"hoc": os.path.join(base, "morphology", "L5tt_synth.hoc"),
             "syn": os.path.join(base, "network", "L5tt_synth.syn")}
    _write(paths["hoc"], morph.hoc())
    x_text = params_number_text(shape)
    _write(paths["syn"], layout.syn_text(os.path.basename(paths["hoc"]), x_text))
    for name, net in networks.items():
        paths[f"con_{name}"] = os.path.join(base, "network", f"L5tt_synth_{name}.con")
        # network A names its .syn relatively, B absolutely: both occur in real files
        ref = os.path.basename(paths["syn"]) if name == "A" else paths["syn"]
        _write(paths[f"con_{name}"], net.con_text(ref))
    for k, site in enumerate(sites):
        paths[f"site_{k}"] = os.path.join(base, "recsites", f"{site.file_base}.landmarkAscii")
        _write(paths[f"site_{k}"], site.landmark_ascii())
    return paths


def params_number_text(shape: Shape) -> Any:
    """How the anatomy files print numbers: ``str`` of Python 2 (real) or ``repr``."""
    return py2_str if shape.real else repr


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def _printers(shape: Shape) -> dict[str, Printer]:
    return {fmt: numbers.printer(fmt) for fmt in sorted({shape.old_format, shape.new_format})}


def _check_sizes(runs: int, trials: Sequence[int], shape: Shape, n_types: int) -> None:
    checks = {"runs": (runs, 1), "trials": (min(trials), 1), "times": (shape.times, 2),
              "synapses": (shape.synapses, n_types), "cells": (shape.cells, n_types),
              "morph_points": (shape.morph_points, 2 * shape.morph_sections + 3)}
    for name, (value, low) in checks.items():
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if T_RECORD + DT * shape.times >= MAX_ABS:
        raise ValueError(f"times={shape.times} is too many rows")


def generate_tree(out_dir: str | os.PathLike[str], *, runs: int = 6,
                  trials: int | Sequence[int] = 5, times: int | None = None,
                  synapses: int | None = None, cells: int | None = None, seed: int = 0,
                  morph_points: int | None = None, profile: str = "default",
                  network_params: str = "variants") -> SynthReport:
    """Write a raw simrun tree with every format variant into ``out_dir``; return a report.

    ``runs`` sim-run folders (all variants need ``runs >= 6``; with fewer, the first ``runs``
    rows of the package's variant table), folder ``i`` with ``trials[i % len(trials)]`` trials
    (an int: the same for all), ``times`` voltage rows (100.0 ms, step 0.025 ms), ``synapses``
    synapses and ``cells`` presynaptic cells; plus one ``_running`` folder and the ``_anatomy``
    folder. ``profile`` ``"real"`` gives real-shaped files (see ``simlake.synth.shapes``); sizes
    not given come from the profile. ``network_params``: ``"variants"`` (two network files,
    A and B, alternating), ``"shared"`` (every folder the same file) or ``"distinct"`` (a
    parameter sweep: every folder its own). The bytes written depend only on the arguments and
    the absolute path of ``out_dir`` (param files hold absolute references). ``out_dir`` must
    not exist or be empty.
    """
    if network_params not in NETWORK_PARAMS:
        raise ValueError(f"network_params must be one of {NETWORK_PARAMS}, "
                         f"got {network_params!r}")
    shape = shape_for(profile, times=times, synapses=synapses, cells=cells,
                      morph_points=morph_points)
    sizes = (trials,) if isinstance(trials, int) else tuple(trials)
    population = (real_population(_rng(seed, 6), shape.celltypes) if shape.celltypes
                  else small_population())
    _check_sizes(runs, sizes or (0,), shape, len(population.names))
    started = time.perf_counter()
    root = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise FileExistsError(f"{root}: exists and is not an empty directory")
    os.makedirs(root, exist_ok=True)
    t_stop = round(T_RECORD + DT * (shape.times - 1), 3)
    morph = make_morphology(_rng(seed, 1), shape.morph_points, shape.morph_sections,
                            shape.hoc_decimals, shape.origin)
    sites = recording_sites(morph)
    layout = make_synapses(_rng(seed, 2), morph, shape.synapses, population)
    names = ("A", "B") if network_params == "variants" else ("A",)
    networks = {name: make_network(_rng(seed, 3 + k), name, layout, shape.cells)
                for k, name in enumerate(names)}
    paths = _write_anatomy(root, shape, morph, sites, layout, networks)
    site_paths = [paths[f"site_{k}"] for k in range(len(sites))]
    neuron_fn = params.neuron_params_real if shape.real else params.neuron_params
    network_text, sweep = _network_texts(shape, networks, paths, network_params, seed)
    printers = _printers(shape)
    number_text = {"fixed10": repr, "repr": repr, "str12": params_number_text(shape)}
    ctx = _Context(
        root=root, shape=shape, t_stop=t_stop, times=_time_column(shape.times),
        morph=morph, sites=sites,
        statics={(name, fmt): make_statics(net, t_stop, number_text[fmt])
                 for name, net in networks.items() for fmt in printers},
        printers=printers,
        neuron_text={v: neuron_fn(v, paths["hoc"], site_paths, t_stop) for v in ("N1", "N2")},
        network_text=network_text, network_sweep=sweep,
    )
    folders = []
    for i in range(runs):
        plan = _plan(i)
        if network_params != "variants":
            plan = _FolderPlan(**{**plan.__dict__, "network": "A"})
        folders.append(_write_folder(ctx, i, plan, sizes[i % len(sizes)], _rng(seed, 1000 + i)))
        logger.debug("wrote %s", folders[-1].sim_run)
    running, running_files = _write_running(ctx, _rng(seed, 5))
    report = SynthReport(root=root, anatomy_dir=os.path.join(root, ANATOMY_DIR),
                         folders=tuple(folders), running_folder=running,
                         running_files=running_files, n_times=shape.times, t_stop=t_stop,
                         seed=seed, seconds=time.perf_counter() - started,
                         profile=shape.profile, network_params=network_params)
    logger.info("synth: %s", report.summary_line())
    return report


def _network_texts(shape: Shape, networks: dict[str, Network], paths: dict[str, str],
                   mode: str, seed: int) -> tuple[dict[str, str], Any]:
    """Network param texts by variant, and for ``mode="distinct"`` a folder -> text function."""
    if shape.real:
        trees = {name: params.network_tree_real(net, paths["syn"], paths[f"con_{name}"],
                                                seed * 100 + 7 + k)
                 for k, (name, net) in enumerate(networks.items())}
        texts = {name: params.network_text_real(tree) for name, tree in trees.items()}
        if mode == "distinct":
            return texts, params.network_sweep_real(trees["A"])
        return texts, None
    texts = {name: params.network_params(net, paths["syn"], paths[f"con_{name}"])
             for name, net in networks.items()}
    if mode == "distinct":
        base = texts["A"]
        marker = '"name": "synthetic network A"'
        return texts, lambda i: base.replace(marker, f'"name": "synthetic network A, sweep {i}"')
    return texts, None

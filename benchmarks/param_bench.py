"""Benchmark of param-file parsing and storing (a command, not a test).

Builds network param files shaped like ISF's real ones (the example simrun's
``*_network_model.param``: ~380 KB, 278 presynaptic cell types under ``network``, each with its
``synapses`` (release probability, ``.syn``/``.con`` references, receptor parameter dicts,
weights), ``cellNr`` and ``celltype`` (a PSTH ``pointcell`` with probability lists and interval
tuples, and a ``spiketrain``, or a bare ``spiketrain`` interval); 2-space indent, trailing
commas) with numbers printed both ways real simrun versions print them (12 significant digits,
e.g. ``-61.4607218758``, and ``repr``'s 16-17 digits), and prints:

- MB/s of the ``ast`` parser (the previous implementation) and of the fast parser, and of the
  fast parser locating the reference literals (what storing needs);
- the cost per sim-run folder of storing param files through ``simlake.paramstore`` in one
  process: folders sharing one md5 (the common case: one md5 and no parse each), and folders
  with distinct network files (a parameter sweep: each one parsed, rewritten and stored);
- the same on a tree of ``simlake synth --profile real --network-params distinct`` (``--tree-runs``
  folders, 1 trial each): its network file parsed alone (md5, ``ast``, the parser), and the
  whole per-file path of storing the sweep (md5, parse, references, copies, write, record), in
  ms per distinct network file.

    .venv/bin/python benchmarks/param_bench.py [--celltypes 278] [--folders 100] [--repeat 7]
                                               [--tree-runs 40]

Each figure is the best of ``--repeat`` runs, in CPU seconds of this process (the machine is
shared: wall time there measures the other jobs as much as this one; on an idle core the two
agree). Parsing and storing are single-threaded.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable

from simlake import paramfiles, paramparse, paramstore

PRE = ["L1", "L2", "L34", "L4py", "L4sp", "L4ss", "L5st", "L5tt", "L6cc", "L6ccinv", "L6ct",
       "VPM", "L23Trans", "L45Sym", "L45Peak", "L56Trans", "SymLocal1", "SymLocal2", "SymLocal3",
       "SymLocal4", "SymLocal5", "SymLocal6"]
COLUMNS = ["A1", "A2", "A3", "A4", "Alpha", "B1", "B2", "B3", "B4", "Beta", "C1", "C2", "C3",
           "C4", "Gamma", "D1", "D2", "D3", "D4", "Delta", "E1", "E2", "E3", "E4"]


def number(x: float, style: str) -> str:
    """``x`` as a simrun version prints it: 12 significant digits (older) or ``repr``."""
    return f"{x:.12g}" if style == "12g" else repr(x)


def network_text(n_celltypes: int, anatomy: str, seed: int = 0, style: str = "mixed") -> str:
    """A real-shaped network param file referencing ``anatomy``/cell.syn and .con."""
    rng = random.Random(seed)
    out = ['{\n  "info": {\n    "date": "11Feb2015",\n'
           f'    "name": "ongoing_activity_up_state_anatomical_map_{seed}",\n'
           '    "author": "regger",\n  },\n  "network": {\n']
    names = [f"{p}_{c}" for c in COLUMNS for p in PRE][:n_celltypes]
    for i, name in enumerate(names):
        fmt = style if style != "mixed" else ("12g" if i % 2 else "repr")
        inh = name.startswith(("L1", "L23Trans", "L45", "L56Trans", "Sym"))
        receptor = "gaba_syn" if inh else "glutamate_syn"
        params = ({"decaytime": 20.0, "risetime": 1.0, "decaygaba": 1.0, "e": -80.0,
                   "facilgaba": 0.0} if inh else
                  {"decayampa": 1.0, "facilnmda": 0.0, "tau2": 2.0, "tau3": 2.0, "tau1": 26.0,
                   "tau4": 0.1, "decaynmda": 1.0, "facilampa": 0.0})
        weight = "1.0" if inh else f"[{number(rng.uniform(0.5, 2), fmt)}, " \
                                   f"{number(rng.uniform(0.5, 2), fmt)}]"
        out.append(
            f'    "{name}": {{\n      "synapses": {{\n'
            f'        "releaseProb": {number(rng.choice([0.25, 0.6, 0.6 + rng.random()]), fmt)},\n'
            f'        "distributionFile": "{anatomy}/cell.syn",\n'
            f'        "receptors": {{\n          "{receptor}": {{\n'
            '            "threshold": 0.0,\n            "delay": 0.0,\n'
            '            "parameter": {\n'
            + "".join(f'              "{k}": {number(v, fmt)},\n' for k, v in params.items())
            + f'            }},\n            "weight": {weight},\n          }},\n        }},\n'
            f'        "connectionFile": "{anatomy}/cell.con",\n      }},\n'
            f'      "cellNr": {rng.randint(1, 400)},\n')
        if i % 3:
            n = rng.randint(2, 40)
            starts = sorted(rng.sample(range(50), n))
            probs = ", ".join(number(rng.uniform(0.001, 0.04), fmt) for _ in range(n))
            intervals = ", ".join(f"({float(s)}, {float(s + 1)})" for s in starts)
            out.append(
                '      "celltype": {\n        "pointcell": {\n'
                f'          "probabilities": [{probs}],\n'
                '          "distribution": "PSTH",\n'
                f'          "intervals": [{intervals}],\n'
                f'          "offset": {number(245.0 + rng.random() * (i % 2), fmt)},\n'
                '        },\n        "spiketrain": {\n'
                f'          "interval": {number(rng.uniform(100, 4000), fmt)},\n'
                '        },\n      },\n    },\n')
        else:
            out.append(f'      "interval": {number(rng.uniform(100, 4000), fmt)},\n'
                       '      "celltype": "spiketrain",\n    },\n')
    out.append('  },\n  "NMODL_mechanisms": {\n    "synapses": "/",\n    "VecStim": "/",\n'
               '  },\n}')
    return "".join(out)


def best(fn: Callable[[], object], repeat: int) -> float:
    """Least CPU seconds of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def write_anatomy(root: str) -> str:
    anatomy = os.path.join(root, "anatomy")
    os.makedirs(anatomy)
    rng = random.Random(1)
    with open(os.path.join(anatomy, "cell.hoc"), "w") as fh:
        fh.write("{create soma}\n{access soma}\n{pt3dclear()}\n{pt3dadd(0,0,0,10)}\n")
    with open(os.path.join(anatomy, "cell.syn"), "w") as fh:
        fh.write("# Synapse distribution file\n# corresponding to cell: cell.hoc\n"
                 "# Type - section - section.x\n\n")
        fh.writelines(f"L2_C2\t{rng.randint(0, 200)}\t{rng.random():.6f}\n" for _ in range(20000))
    with open(os.path.join(anatomy, "cell.con"), "w") as fh:
        fh.write("# Functional realization file; only valid with synapse realization:\n"
                 "# cell.syn\n# Type - cell ID - synapse ID\n\n")
        fh.writelines(f"L2_C2\t{rng.randint(0, 300)}\t{k}\n" for k in range(20000))
    return anatomy


def folders_of(root: str, texts: list[str]) -> list[paramstore.FolderFiles]:
    out = []
    for k, text in enumerate(texts):
        folder = os.path.join(root, "raw", f"20150815-1530_{10000 + k}")
        os.makedirs(folder)
        path = os.path.join(folder, f"{10000 + k}_network_model.param")
        with open(path, "w") as fh:
            fh.write(text)
        out.append(paramstore.FolderFiles(f"raw/{os.path.basename(folder)}", None, path))
    return out


def synth_tree_figures(root: str, runs: int, repeat: int) -> None:
    """Figures of the real-shaped sweep of ``simlake synth`` (see the module docstring)."""
    from simlake import synth

    raw = os.path.join(root, "synth-real")
    synth.generate_tree(raw, runs=runs, trials=1, times=50, profile="real",
                        network_params="distinct")
    folders = []
    for network in sorted(glob.glob(os.path.join(raw, "**", "*_network_model.param"),
                                    recursive=True)):
        if "_running" in network:
            continue
        neuron = glob.glob(os.path.join(os.path.dirname(network), "*_neuron_model.param"))
        folders.append(paramstore.FolderFiles(os.path.dirname(network),
                                              neuron[0] if neuron else None, network))
    with open(folders[0].network or "", "rb") as fh:
        data = fh.read()
    text, mb = data.decode("utf-8"), len(data) / 1e6
    md5 = best(lambda: hashlib.md5(data).hexdigest(), repeat)
    old = best(lambda: paramparse.ast_parse_param_text(text, "bench"), max(2, repeat // 3))
    loc = best(lambda: paramparse.scan_param_text(text, "bench", locate=True), repeat)
    try:  # what storing asks for: the references, the numbers left as text
        rough = best(lambda: paramparse.scan_param_text(text, "bench", locate=True,
                                                        exact=False), repeat)
    except TypeError:  # a version without it
        rough = loc
    print(f"synth real network file: {mb * 1e3:.0f} KB; md5 {md5 * 1e3:.2f} ms; ast "
          f"{old * 1e3:.1f} ms ({mb / old:.1f} MB/s); parser, locating references "
          f"{loc * 1e3:.1f} ms ({mb / loc:.1f} MB/s); the same as storing parses "
          f"(numbers left as text) {rough * 1e3:.1f} ms ({mb / rough:.1f} MB/s)")
    n = len({f.network for f in folders})
    per_file = []
    for k in range(max(2, repeat // 3)):
        db = os.path.join(root, f"synth-db-{k}")
        start = time.process_time()
        results = paramstore.store_folders(folders, db)
        per_file.append((time.process_time() - start) / n)
        assert all(r.hash_network for r in results), results[0]
    print(f"synth real sweep, {len(folders)} folders, {n} distinct network files "
          f"({mb * 1e3:.0f} KB): store_folders {min(per_file) * 1e3:.1f} ms per distinct file "
          f"(best of {len(per_file)}; {mb / min(per_file):.1f} MB/s), all folders' files "
          "included")
    # the executors' part for one network file: pass 1 (md5) and pass 2 (StoreFile: md5,
    # parse, references, copies, rewrite, write, record), one StoreFile for all (= a task)
    morphology = paramfiles.store_parameter_file(folders[0].neuron or "", os.path.join(
        root, "hint-db"), "neuron").sources.get("neuron.filename")
    items = [(f.network, hashlib.md5(open(f.network or "", "rb").read()).hexdigest())
             for f in folders]
    per_item = []
    for k in range(max(2, repeat // 3)):
        store = paramstore.StoreFile(os.path.join(root, f"item-db-{k}"))
        start = time.process_time()
        for path, digest in items:
            paramstore.hash_file(("network", path))
            store(("network", path, digest, morphology))
        per_item.append((time.process_time() - start) / len(items))
    print(f"synth real sweep, one network file on an executor (md5 pass, then store: md5, "
          f"parse, references, copies, rewrite, write, record): {min(per_item) * 1e3:.1f} ms "
          f"per file ({mb / min(per_item):.1f} MB/s), of which parsing {rough * 1e3:.1f} ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--celltypes", type=int, default=278)
    ap.add_argument("--folders", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--tree-runs", type=int, default=40)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="param-bench-") as root:
        if args.tree_runs:
            synth_tree_figures(root, args.tree_runs, args.repeat)
        anatomy = write_anatomy(root)
        for style in ("12g", "repr"):
            text = network_text(args.celltypes, anatomy, style=style)
            mb = len(text.encode()) / 1e6
            old = best(lambda text=text: paramparse.ast_parse_param_text(text, "bench"),
                       max(2, args.repeat // 3))
            new = best(lambda text=text: paramparse.parse_param_text(text, "bench"), args.repeat)
            loc = best(lambda text=text: paramparse.scan_param_text(text, "bench", locate=True),
                       args.repeat)
            fast = paramparse.scan_param_text(text, "bench", locate=True).locations is not None
            print(f"network param file, numbers {style:>4}: {mb * 1e3:.0f} KB; ast "
                  f"{old * 1e3:.1f} ms ({mb / old:.1f} MB/s); fast {new * 1e3:.1f} ms "
                  f"({mb / new:.1f} MB/s), locating references {loc * 1e3:.1f} ms "
                  f"({mb / loc:.1f} MB/s){'' if fast else ' [FAST PATH NOT TAKEN]'}")

        shared = network_text(args.celltypes, anatomy, seed=0)
        for label, texts in (
                ("one shared md5", [shared] * args.folders),
                ("distinct md5s", [network_text(args.celltypes, anatomy, seed=s)
                                   for s in range(args.folders)])):
            sub = os.path.join(root, label.replace(" ", "_"))
            folders = folders_of(sub, texts)
            db = os.path.join(sub, "db")
            start = time.process_time()
            first = paramstore.store_folders(folders, db)
            cold = time.process_time() - start
            again = best(lambda f=folders, d=db: paramstore.store_folders(f, d), 3)  # all recorded
            assert all(r.hash_network for r in first), first[0]
            print(f"{args.folders} folders, {label}: first store {cold / args.folders * 1e3:.2f} "
                  f"ms/folder ({cold:.2f} s); again (md5s recorded) "
                  f"{again / args.folders * 1e3:.2f} ms/folder")
    return 0


if __name__ == "__main__":
    sys.exit(main())

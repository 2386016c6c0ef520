"""How a generated real-shaped tree compares with ISF's example simrun folder: a printed table.

    python benchmarks/real_shape.py [RAW]     # RAW: a tree from `simlake synth --profile real`;
                                              # default: a 6-folder tree in a temp folder

Reference: the example simrun folder of ISF's getting-started data (6 trials) and the anatomy
files its param files name; their sizes and line counts are below (no ISF file is copied).
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
from collections import defaultdict

from simlake import synth

#: kind -> (bytes, lines) of the real folder (trial files: mean bytes of 6, lines of trial 0)
REAL = {
    "vm_all_traces.csv (6 trials)": (946_628, 9_803),
    "vm_dend_traces.csv (6 trials)": (946_721, 9_803),
    "synapses.csv (a trial)": (272_899, 4_429),
    "presynaptic_cells.csv (a trial)": (206_839, 5_561),
    "network_model.param": (383_076, 8_745),
    "neuron_model.param": (8_778, None),
    ".hoc": (824_028, None),
    ".syn": (641_904, 24_784),
    ".con": (372_136, 24_784),
}
FOLDER_MB_REAL = 5.72  # 572 MB csv per 100 copies of the folder (6 trials)


def kind_of(name: str) -> str | None:
    for suffix, kind in (("_vm_all_traces.csv", "vm_all_traces.csv"),
                         ("_vm_dend_traces.csv", "vm_dend_traces.csv"),
                         ("_synapses.csv", "synapses.csv (a trial)"),
                         ("_presynaptic_cells.csv", "presynaptic_cells.csv (a trial)"),
                         ("_network_model.param", "network_model.param"),
                         ("_neuron_model.param", "neuron_model.param"),
                         (".hoc", ".hoc"), (".syn", ".syn"), (".con", ".con")):
        if name.endswith(suffix):
            return kind
    return None


def measure(raw: str) -> tuple[dict, dict]:
    """Per kind (and number format for csv): mean bytes and lines; per-folder csv MB by era."""
    files: dict[str, list[tuple[int, int]]] = defaultdict(list)
    folder_mb: dict[str, list[float]] = defaultdict(list)
    for dirpath, dirnames, names in os.walk(raw):
        dirnames[:] = [d for d in dirnames if not d.endswith("_running")]
        base = os.path.basename(dirpath)
        era = ("new (repr)" if re.match(r"^\d{8}-\d{4}_seed", base) else
               "old (str12)" if re.match(r"^\d{8}-\d{4}_\d+$", base) else "")
        trials = sum(n.endswith("_synapses.csv") for n in names)
        csv = 0
        for name in names:
            kind = kind_of(name)
            if kind is None:
                continue
            path = os.path.join(dirpath, name)
            size = os.path.getsize(path)
            with open(path, "rb") as fh:
                lines = fh.read().count(b"\n")
            if name.endswith(".csv"):
                csv += size
                if "traces" in kind:
                    if trials != 6:
                        continue
                    kind += " (6 trials)"
                kind = f"{kind}, {era}"
            files[kind].append((size, lines))
        if era and trials == 6:
            folder_mb[era].append(csv / 1e6)
    return files, folder_mb


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    tmp = None
    if argv:
        raw = argv[0]
    else:
        tmp = tempfile.TemporaryDirectory(prefix="simlake-shape-")
        raw = os.path.join(tmp.name, "raw")
        synth.generate_tree(raw, runs=6, trials=6, profile="real", network_params="shared")
    files, folder_mb = measure(raw)
    print("| file | real KB (lines) | generated KB (lines), mean |")
    print("|---|---|---|")
    for real_kind, (size, lines) in REAL.items():
        gen = [(k, v) for k, v in sorted(files.items())
               if k.split(",")[0] == real_kind]
        real_text = f"{size / 1000:.0f}" + (f" ({lines:,})" if lines else "")
        for k, v in gen:
            mean_kb = statistics.mean(s for s, _ in v) / 1000
            mean_lines = statistics.mean(n for _, n in v)
            print(f"| {k} | {real_text} | {mean_kb:.0f} ({mean_lines:,.0f}) |")
    for era, mbs in sorted(folder_mb.items()):
        print(f"| csv of a 6-trial folder, {era} | {FOLDER_MB_REAL * 1000:.0f} | "
              f"{statistics.mean(mbs) * 1000:.0f} |")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

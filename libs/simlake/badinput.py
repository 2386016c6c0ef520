"""A corpus of damaged raw simrun input: a generated tree (``simlake.synth``) with one damaged
file per kind of damage, each in its own sim-run folder.

``make_bad_corpus(out_dir, seed=0)`` writes the tree and returns one :class:`Damage` per kind:
``(path relative to out_dir, kind, fragment of the reason the ingest must report)``. The first
two folders of the tree stay clean, and every trial, recording site and folder that no damage
touches must land in the database unchanged.

Kinds (:data:`KINDS`) and the file each one damages:

=========================  ===================  ===========================================
kind                       file                 damage
=========================  ===================  ===========================================
empty_file                 synapses             0 bytes
header_only                soma voltage csv     the header line only
truncated_mid_line         soma voltage csv     cut inside a row (after 2 of its fields)
truncated_mid_number       synapses             cut inside an activation time
non_numeric_voltage        soma voltage csv     one value is ``abc``
nan_inf                    dendritic csv        one value is ``inf``
row_too_few_columns        soma voltage csv     one row lacks its last value
row_too_many_columns       dendritic csv        one row has an extra value
fewer_voltage_columns      soma voltage csv     one trial column fewer than synapse files
synapse_missing_field      synapses             one line has 5 of the 6 fixed fields
non_integer_id             presynaptic cells    one ``cell_ID`` is ``7.5``
non_utf8                   presynaptic cells    bytes ``0xff 0xfe`` inside a line
binary_csv                 synapses             binary bytes (a gzip header, NULs)
corrupt_npz                soma voltage npz     the archive cut in half
param_not_literal          neuron param         an assignment, not a dict literal
param_code                 network param        a call that would create :data:`MARKER`
param_missing_reference    neuron param         ``neuron.filename`` names a missing file
duplicate_trial            synapses (added)     a copy under another zero-padding width
symlink_loop               ``results/loop``     a symlink to the tree root
unreadable                 synapses             ``chmod 000``; as root (who reads anyway)
                                                a FIFO under the file's name instead
=========================  ===================  ===========================================
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from simlake import synth

#: Created in the corpus root if the code inside the ``param_code`` file were ever executed.
MARKER = "CODE_WAS_EXECUTED"

KINDS: dict[str, str] = {
    "empty_file": "synapses file of 0 bytes",
    "header_only": "soma voltage csv with the header line only",
    "truncated_mid_line": "soma voltage csv cut inside a row",
    "truncated_mid_number": "synapses file cut inside an activation time",
    "non_numeric_voltage": "soma voltage csv with a non-numeric value",
    "nan_inf": "dendritic csv with an infinite value",
    "row_too_few_columns": "soma voltage csv with a row lacking a value",
    "row_too_many_columns": "dendritic csv with a row holding an extra value",
    "fewer_voltage_columns": "soma voltage csv with fewer trial columns than synapse files",
    "synapse_missing_field": "synapses file with a line lacking a field",
    "non_integer_id": "presynaptic-cells file with a non-integer cell ID",
    "non_utf8": "presynaptic-cells file with bytes that are not UTF-8",
    "binary_csv": "binary content under a synapses .csv name",
    "corrupt_npz": "soma voltage .npz archive cut in half",
    "param_not_literal": "neuron param file that is not a dict literal",
    "param_code": "network param file containing code",
    "param_missing_reference": "neuron param file referencing a missing morphology",
    "duplicate_trial": "two synapses files of one trial number",
    "symlink_loop": "directory symlink to the tree root",
    "unreadable": "synapses file that cannot be read",
}


class Damage(NamedTuple):
    """One damaged file: where, what kind of damage, and a fragment of the expected reason."""

    path: str
    kind: str
    reason: str


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _middle(n_lines: int, rng: np.random.Generator) -> int:
    """A data line index away from the header and the end."""
    return int(rng.integers(1 + (n_lines - 1) // 3, 1 + 2 * (n_lines - 1) // 3))


def _edit_row(path: str, rng: np.random.Generator,
              edit: Callable[[list[bytes]], list[bytes]]) -> None:
    """Apply ``edit`` to the tab-separated fields of one middle data line of ``path``."""
    lines = _lines(_read(path))
    n = len(lines) - (1 if lines[-1] == b"" else 0)
    k = _middle(n, rng)
    lines[k] = b"\t".join(edit(lines[k].split(b"\t")))
    _write(path, b"\n".join(lines))


# --------------------------------------------------------------------------- the damages
# Each takes (folder path, folder report, rng, corpus root) and returns (file path, reason).


def _trial_file(folder: str, rep: synth.FolderReport, rng: np.random.Generator,
                kind: str = "synapses") -> str:
    nr = rep.trial_numbers[int(rng.integers(0, rep.n_trials))]
    return os.path.join(folder, f"simulation_run{nr:0{rep.padding}d}_{kind}.csv")


def _voltage(folder: str, rep: synth.FolderReport) -> str:
    return os.path.join(folder, rep.voltage_file)


def _dendritic(folder: str, rep: synth.FolderReport, rng: np.random.Generator) -> str:
    label = rep.dendritic_labels[int(rng.integers(0, len(rep.dendritic_labels)))]
    return os.path.join(folder, f"{rep.dendritic_prefix}{label}_vm_dend_traces.csv")


def _empty_file(folder, rep, rng, root):
    path = _trial_file(folder, rep, rng)
    _write(path, b"")
    return path, "empty file"


def _header_only(folder, rep, rng, root):
    path = _voltage(folder, rep)
    data = _read(path)
    _write(path, data[: data.index(b"\n") + 1])
    return path, "header only"


def _truncated_mid_line(folder, rep, rng, root):
    path = _voltage(folder, rep)
    data = _read(path)
    lines = _lines(data)
    k = _middle(len(lines) - 1, rng)
    start = sum(len(line) + 1 for line in lines[:k])
    second_tab = lines[k].index(b"\t", lines[k].index(b"\t") + 1)
    _write(path, data[: start + second_tab + 3])  # t, one value, and 2 characters of the next
    return path, "truncated mid-line"


def _truncated_mid_number(folder, rep, rng, root):
    path = _trial_file(folder, rep, rng)
    data = _read(path)
    lines = _lines(data)
    with_times = [k for k, line in enumerate(lines[1:], 1) if line.endswith(b",")]
    k = with_times[len(with_times) // 2]
    start = sum(len(line) + 1 for line in lines[:k])
    first_comma = lines[k].index(b",")
    _write(path, data[: start + first_comma - 2])  # inside the first activation time
    return path, "not comma-terminated"


def _non_numeric_voltage(folder, rep, rng, root):
    path = _voltage(folder, rep)
    _edit_row(path, rng, lambda f: [f[0], b"abc", *f[2:]])
    return path, "non-numeric value 'abc'"


def _nan_inf(folder, rep, rng, root):
    path = _dendritic(folder, rep, rng)
    _edit_row(path, rng, lambda f: [*f[:-1], b"inf"])
    return path, "non-finite value inf"


def _row_too_few_columns(folder, rep, rng, root):
    path = _voltage(folder, rep)
    _edit_row(path, rng, lambda f: f[:-1])
    return path, f"has {rep.n_trials} fields, expected {rep.n_trials + 1}"


def _row_too_many_columns(folder, rep, rng, root):
    path = _dendritic(folder, rep, rng)
    _edit_row(path, rng, lambda f: [*f, f[-1]])
    return path, f"has {rep.n_trials + 2} fields, expected {rep.n_trials + 1}"


def _fewer_voltage_columns(folder, rep, rng, root):
    path = _voltage(folder, rep)
    lines = _lines(_read(path))
    _write(path, b"\n".join(b"\t".join(line.split(b"\t")[:-1]) if line else line
                            for line in lines))
    return path, "fewer columns than synapse files"


def _synapse_missing_field(folder, rep, rng, root):
    path = _trial_file(folder, rep, rng)
    _edit_row(path, rng, lambda f: f[:5])
    return path, "5 tab-separated fields, expected 6"


def _non_integer_id(folder, rep, rng, root):
    path = _trial_file(folder, rep, rng, "presynaptic_cells")
    _edit_row(path, rng, lambda f: [f[0], b"7.5", *f[2:]])
    return path, "cell_ID '7.5' is not an integer"


def _non_utf8(folder, rep, rng, root):
    path = _trial_file(folder, rep, rng, "presynaptic_cells")
    _edit_row(path, rng, lambda f: [f[0] + b"\xff\xfe", *f[1:]])
    return path, "not UTF-8"


def _binary_csv(folder, rep, rng, root):
    path = _trial_file(folder, rep, rng)
    _write(path, b"\x1f\x8b\x08\x00" + rng.bytes(400))
    return path, "binary content"


def _corrupt_npz(folder, rep, rng, root):
    path = _voltage(folder, rep)
    data = _read(path)
    _write(path, data[: len(data) // 2])
    return path, "not a readable npz archive"


def _param(folder: str, rep: synth.FolderReport, kind: str) -> str:
    return os.path.join(folder, f"{rep.uid}_{kind}_model.param")


def _param_not_literal(folder, rep, rng, root):
    path = _param(folder, rep, "neuron")
    _write(path, b"neuron = " + _read(path))
    return path, "not a Python literal"


def _param_code(folder, rep, rng, root):
    path = _param(folder, rep, "network")
    marker = os.path.join(root, MARKER)
    code = f'__import__("pathlib").Path({marker!r}).touch()'
    text = _read(path).decode("utf-8")
    # a dict literal whose first value is a call: must be refused, never evaluated
    text = text.replace("{", '{\n    "info": {"created_by": ' + code + "},", 1)
    _write(path, text.encode("utf-8"))
    return path, "not a plain literal: Call"


def _param_missing_reference(folder, rep, rng, root):
    path = _param(folder, rep, "neuron")
    text = _read(path).decode("utf-8")
    hoc = re.search(r'"filename":\s*"([^"]+\.hoc)"', text)
    if hoc is None:
        raise RuntimeError(f"{path}: no neuron.filename found to damage")
    missing = hoc.group(1)[: -len(".hoc")] + "_deleted.hoc"
    _write(path, text.replace(hoc.group(1), missing).encode("utf-8"))
    return path, f"{missing} not stored: no such file"


def _duplicate_trial(folder, rep, rng, root):
    original = _trial_file(folder, rep, rng)
    nr = int(re.search(r"simulation_run([0-9]+)_", os.path.basename(original)).group(1))
    width = 6 if rep.padding != 6 else 4
    path = os.path.join(folder, f"simulation_run{nr:0{width}d}_synapses.csv")
    _write(path, _read(original))
    return path, f"duplicate trial number {nr}"


def _unreadable(folder, rep, rng, root):
    path = _trial_file(folder, rep, rng)
    os.chmod(path, 0)
    try:
        with open(path, "rb"):
            readable = True  # the superuser reads whatever the permissions say
    except PermissionError:
        readable = False
    if not readable:
        return path, "cannot read: Permission denied"
    os.unlink(path)
    os.mkfifo(path)  # a name that cannot be read as a file, whoever asks
    return path, "not a regular file (a FIFO)"


_FOLDER_DAMAGES: dict[str, Callable] = {
    "corrupt_npz": _corrupt_npz,  # first: needs the npz-only folder
    "empty_file": _empty_file,
    "header_only": _header_only,
    "truncated_mid_line": _truncated_mid_line,
    "truncated_mid_number": _truncated_mid_number,
    "non_numeric_voltage": _non_numeric_voltage,
    "nan_inf": _nan_inf,
    "row_too_few_columns": _row_too_few_columns,
    "row_too_many_columns": _row_too_many_columns,
    "fewer_voltage_columns": _fewer_voltage_columns,
    "synapse_missing_field": _synapse_missing_field,
    "non_integer_id": _non_integer_id,
    "non_utf8": _non_utf8,
    "binary_csv": _binary_csv,
    "param_not_literal": _param_not_literal,
    "param_code": _param_code,
    "param_missing_reference": _param_missing_reference,
    "duplicate_trial": _duplicate_trial,
    "unreadable": _unreadable,
}
_CLEAN_FOLDERS = 2
#: Sim-run folders of the corpus (``synth.generate_tree(runs=RUNS)`` gives its undamaged twin).
RUNS = _CLEAN_FOLDERS + len(_FOLDER_DAMAGES)


def make_bad_corpus(out_dir: str | os.PathLike[str], seed: int = 0, *, trials: int = 3,
                    times: int = 120, synapses: int = 20, cells: int = 15) -> list[Damage]:
    """Write a damaged simrun tree into ``out_dir`` (must not exist or be empty).

    One sim-run folder per folder-level kind of damage plus two clean ones (``synth`` folders
    0 and 1), the symlink loop in ``results/``. Returns the damages in :data:`KINDS` order.
    ``trials`` must be at least 3 (the truncation cuts inside the third column).
    """
    if trials < 3:
        raise ValueError("trials must be >= 3")
    report = synth.generate_tree(out_dir, runs=RUNS, trials=trials, times=times,
                                 synapses=synapses, cells=cells, seed=seed)
    root = report.root
    rng = np.random.default_rng([seed, 5005])
    free = list(report.folders[_CLEAN_FOLDERS:])
    npz = next(f for f in free if f.voltage_format == "npz")
    found: dict[str, Damage] = {}
    for kind, damage in _FOLDER_DAMAGES.items():
        rep = npz if kind == "corrupt_npz" else next(f for f in free if f.voltage_format != "npz")
        free.remove(rep)
        folder = os.path.join(root, *rep.sim_run.split("/"))
        path, reason = damage(folder, rep, rng, root)
        found[kind] = Damage(os.path.relpath(path, root).replace(os.sep, "/"), kind, reason)
    os.symlink("..", os.path.join(root, "results", "loop"))
    found["symlink_loop"] = Damage("results/loop", "symlink_loop", "symlink loop")
    return [found[kind] for kind in KINDS]


def sim_run_of(damage: Damage) -> str | None:
    """The ``sim_run`` of the folder holding the damaged file (None for tree-level damage)."""
    parent = posix_dirname(damage.path)
    name = parent.rsplit("/", 1)[-1]
    return parent if re.match(r"^[0-9]{8}-[0-9]{4}_", name) else None


def posix_dirname(path: str) -> str:
    """``/``-separated parent of a ``/``-separated relative path."""
    return path.rsplit("/", 1)[0] if "/" in path else ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``simlake badcorpus``."""
    parser.add_argument("out_dir", help="folder to create (must not exist or be empty)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same damage)")


def run(args: argparse.Namespace) -> int:
    """Write the corpus of parsed ``args``, print one line per damaged file; exit code."""
    try:
        damages = make_bad_corpus(args.out_dir, seed=args.seed)
    except (FileExistsError, ValueError) as err:
        print(f"simlake badcorpus: {err}", file=sys.stderr)
        return 2
    print(f"wrote a damaged simrun tree to {os.path.abspath(args.out_dir)}: "
          f"{len(damages)} kinds of damage")
    width = max(len(d.kind) for d in damages)
    for d in damages:
        print(f"  {d.kind:<{width}}  {d.path}  (expect: {d.reason})")
    return 0

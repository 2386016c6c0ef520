"""``simlake verify``, param files: the stored copies and every file reference they lead to.

Problems: a stored param file of a completed trial that is missing or unreadable; a reference
into the database (``reldb://folder/file`` or, written by older simlake, plain
``folder/file``) that resolves to no file, in a param file or in the header of a stored
``.syn`` (naming its morphology) or ``.con`` (naming its ``.syn``). One line per referencing
file and target: a network param file names one ``.syn`` for each of its cell types.

Notes: references kept as absolute paths (the file was missing when the ingest stored the
param file, and said so then).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

from simlake import paramcopies, paramfiles, paramrefs
from simlake.adapter import deltafiles as df_
from simlake.layout import FOLDER_KEYS
from simlake.ops.tables import completed_sim_runs

#: Managed folders a header reference may point into (``.syn`` -> morphology, ``.con`` -> .syn).
_HEADER_TARGETS = (FOLDER_KEYS["morphology"], FOLDER_KEYS["syn_folder"])
#: Bytes read from a stored .syn/.con file to find its header (3 short lines).
_HEADER_BYTES = 1 << 16


@dataclass
class RefFindings:
    """Problems and notes of the param-file checks, one line each."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_param_files(db_root: str) -> RefFindings:
    """Check the stored param files the completed trials of ``db_root`` name, the files they
    reference, and the references in the headers of the stored ``.syn``/``.con`` files."""
    found = RefFindings()
    path = os.path.join(db_root, "parameterfiles")
    if not df_.is_delta_table(path):
        return found
    try:
        snap = df_.open_table(path, stats_columns=())
        done = completed_sim_runs(db_root)
        rows = df_.read_files(snap.files, ["hash_neuron", "hash_network"], snap.schema,
                              df_.RowFilter(sim_runs=done), sort_key=None, parallel=True)
    except Exception:  # the files' own problems are reported by the table check
        return found
    headed: set[str] = set()  # stored .syn/.con files the param files lead to
    for kind, column in (("neuron", "hash_neuron"), ("network", "hash_network")):
        for md5 in sorted(h for h in set(rows.column(column).to_pylist()) if h):
            _check_param_file(db_root, kind, md5, found, headed)
    for stored in sorted(headed):
        _check_header(db_root, stored, found)
    return found


def _check_param_file(db_root: str, kind: str, md5: str, found: RefFindings,
                      headed: set[str]) -> None:
    stored = paramfiles.stored_param_path(db_root, kind, md5)  # type: ignore[arg-type]
    rel = os.path.relpath(stored, db_root)
    if not os.path.isfile(stored):
        found.problems.append(f"parameterfiles: stored {kind} param file {rel} is missing")
        return
    try:
        params = paramfiles.parse_param_file(stored)
    except Exception as exc:
        found.problems.append(f"parameterfiles: stored {kind} param file {rel} is unreadable: "
                              f"{' '.join(str(exc).split())}")
        return
    broken: dict[str, list[str]] = defaultdict(list)  # written reference -> its keys
    for ref in paramrefs.referenced_files(params, kind, base_dir=db_root):  # type: ignore
        written = ref.path
        if not paramrefs.is_stored_reference(written):
            state = "exists outside the database" if os.path.exists(written) else "missing"
            found.notes.append(f"{rel}: {ref.key} -> {written} was not stored (missing at "
                               f"ingest; now {state})")
            continue
        target = paramrefs.resolve_reference(db_root, written)
        if not os.path.isfile(target):
            broken[written].append(ref.key)
        elif ref.category in ("syn_folder", "con_folder"):
            headed.add(target)
    for written, keys in broken.items():
        found.problems.append(f"{rel}: {_keys(keys)} -> {written} does not resolve (no such "
                              "file in the database)")


def _keys(keys: list[str]) -> str:
    return keys[0] if len(keys) == 1 else f"{keys[0]} and {len(keys) - 1} more keys"


def _check_header(db_root: str, stored: str, found: RefFindings) -> None:
    rel = os.path.relpath(stored, db_root)
    try:
        with open(stored, "rb") as fh:
            head = fh.read(_HEADER_BYTES)
    except OSError as exc:
        found.problems.append(f"{rel}: unreadable: {exc.strerror or exc}")
        return
    located = paramcopies.header_reference(head)
    if located is None:
        return
    ref = located[2]
    plain = ref.removeprefix(paramrefs.RELDB)
    # only references into the database: a header may name a cell ("corresponding to cell:
    # 86_L5_...") or keep an absolute path the ingest could not store (reported then)
    if not plain.startswith(tuple(f"{folder}/" for folder in _HEADER_TARGETS)):
        return
    if not os.path.isfile(paramrefs.resolve_reference(db_root, ref)):
        found.problems.append(f"{rel}: header -> {ref} does not resolve (no such file in the "
                              "database)")

"""Store the param files of many sim-run folders, each distinct file (md5) once.

Two passes of work that a ``run(fn, items)`` callable spreads out (Spark executors in the
ingest, a plain loop in tests):

1. every folder's param files are hashed; here, each distinct md5's recorded outcome is read
   from the database (``simlake.paramrecords``), once;
2. each md5 with no outcome yet is stored once, from one folder's copy (neuron files first when a
   network file needs its folder's morphology as a hint, so at most two rounds).

The driver then gives every folder its hashes and rejections from the outcome of its md5s: a
file whose md5 was seen before (in this call, an earlier batch, or an earlier run) costs one md5
and no parse.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from simlake.paramcopies import CopyCache
from simlake.paramfiles import Scanner, store_outcome, take_prepared
from simlake.paramparse import scan_param_text
from simlake.paramrecords import MissingReference, Outcome, read_outcome
from simlake.paramrefs import Kind, resolve_written

Runner = Callable[[Callable[[Any], Any], list], list]
KINDS = ("neuron", "network")


@dataclass(frozen=True)
class FolderFiles:
    """The param files (absolute paths, or None) of one sim-run folder."""

    sim_run: str
    neuron: str | None
    network: str | None

    def path(self, kind: str) -> str | None:
        """The param file of ``kind``."""
        return self.neuron if kind == "neuron" else self.network


@dataclass(frozen=True)
class FolderParams:
    """What storing a folder's param files gave: their hashes (None where a file was rejected
    or unreadable) and its rejections ``(path, kind label, one-line reason)``."""

    sim_run: str
    path_neuron: str | None
    path_network: str | None
    hash_neuron: str | None
    hash_network: str | None
    rejections: tuple[tuple[str, str, str], ...] = ()


def local_runner(fn: Callable[[Any], Any], items: list) -> list:
    """``[fn(item) for item in items]`` in this process."""
    return [fn(item) for item in items]


def hash_file(item: tuple[str, str]) -> tuple:
    """Pass 1 for one ``(kind, path)``: ``(kind, path, md5, error)``."""
    kind, path = item
    try:
        with open(path, "rb") as fh:
            return kind, path, hashlib.md5(fh.read()).hexdigest(), None
    except OSError as exc:
        return kind, path, None, f"cannot read: {exc.strerror or exc}"


class StoreFile:
    """Pass 2 for one ``(kind, path, md5, morphology hint)``: ``(kind, md5, outcome as JSON,
    error, parsed)``. One instance (a Spark task's copy of it) copies each referenced file once
    while it is unchanged. An md5 that a store into ``prepared_in`` recorded is taken from there
    (no parse)."""

    def __init__(self, db_root: str, scan: Scanner = scan_param_text,
                 prepared_in: str | None = None) -> None:
        self.db_root, self.scan, self.prepared_in = db_root, scan, prepared_in
        self.copies = CopyCache()

    def __call__(self, item: tuple[Kind, str, str, str | None]) -> tuple:
        kind, path, digest, hint = item
        try:
            prepared = (take_prepared(self.prepared_in, self.db_root, kind, digest)
                        if self.prepared_in else None)
            if prepared is not None:
                return kind, digest, prepared.to_json(), None, False
            outcome, _, parsed, _ = store_outcome(path, self.db_root, kind,
                                                  morphology_hint=hint, scan=self.scan,
                                                  copies=self.copies)
        except OSError as exc:
            return kind, digest, None, f"cannot read: {exc.strerror or exc}", False
        except Exception as exc:  # noqa: BLE001 - one bad file is reported, the run goes on
            return kind, digest, None, " ".join(f"{type(exc).__name__}: {exc}".split()), False
        if outcome.md5 != digest:  # the file changed between the passes: its own outcome
            return kind, digest, None, "changed while being stored", parsed
        return kind, digest, outcome.to_json(), None, parsed


def missing_reasons(missing: Sequence[MissingReference]) -> list[str]:
    """One line per distinct missing file (path as written, reason): the key paths that name
    it (a real network file names the same ``.syn`` for each of its ~280 cell types)."""
    keys: dict[tuple[str, str], list[str]] = {}
    for m in missing:
        keys.setdefault((m.path, m.reason), []).append(m.key)
    lines = []
    for (path, reason), names in keys.items():
        which = names[0] if len(names) == 1 else f"{names[0]} (and {len(names) - 1} more)"
        lines.append(f"reference {which} -> {path} not stored: {reason}")
    return lines


def _hint(outcome: Outcome | None, neuron_path: str | None) -> str | None:
    """The absolute path of a folder's morphology, from its neuron file's outcome."""
    if outcome is None or outcome.rejected or not neuron_path:
        return None
    written = outcome.written.get("neuron.filename")
    return resolve_written(written, os.path.dirname(neuron_path)) if written else None


def store_folders(folders: Sequence[FolderFiles], db_root: str, run: Runner = local_runner,
                  scan: Scanner = scan_param_text, known_in: Sequence[str] = (),
                  prepared_in: str | None = None) -> list[FolderParams]:
    """Store the param files of ``folders`` in ``db_root``, each distinct md5 once; returns
    one :class:`FolderParams` per folder, in order. ``run(fn, items)`` applies ``fn`` to every
    item (anywhere: the functions are picklable); ``scan`` is the parser. An md5 recorded in
    one of the databases ``known_in`` (checked after ``db_root``) takes that outcome, stored
    nowhere else (a strict run checks its param files in a scratch folder). An md5 that an
    earlier call stored into the folder ``prepared_in`` (that scratch folder, once the strict
    run's folders are known good) is copied from there with its files: parsed once in all."""
    files = [(kind, f.path(kind)) for f in folders for kind in KINDS if f.path(kind)]
    hashed: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    outcomes: dict[tuple[str, str], Outcome] = {}
    for kind, path, digest, error in run(hash_file, files):
        hashed[kind, path] = (digest, error)
    for kind, digest in {(kind, d) for (kind, _), (d, _) in hashed.items() if d}:
        for root in (db_root, *known_in):
            recorded = read_outcome(root, kind, digest)  # once per distinct md5, here
            if recorded is not None:
                outcomes[kind, digest] = recorded
                break

    errors: dict[tuple[str, str], str] = {}  # (kind, md5) -> why it could not be stored

    def known(kind: str, path: str | None) -> Outcome | None:
        digest = hashed.get((kind, path), (None, None))[0] if path else None
        return outcomes.get((kind, digest)) if digest else None

    def pending(kind: str, ready: Callable[[FolderFiles], bool]) -> list[tuple]:
        items, seen = [], set()
        for f in folders:
            path = f.path(kind)
            digest = hashed.get((kind, path), (None, None))[0] if path else None
            if (digest is None or (kind, digest) in outcomes or (kind, digest) in errors
                    or digest in seen or not ready(f)):
                continue
            seen.add(digest)
            hint = _hint(known("neuron", f.neuron), f.neuron) if kind == "network" else None
            items.append((kind, path, digest, hint))
        return items

    def store(items: list[tuple]) -> None:
        store_file = StoreFile(db_root, scan, prepared_in)
        for kind, digest, doc, error, _ in run(store_file, items) if items else []:
            if doc is not None:
                outcomes[kind, digest] = Outcome.from_json(doc)
            else:
                errors[kind, digest] = error

    def neuron_settled(f: FolderFiles) -> bool:  # its hint can be known now
        digest = hashed.get(("neuron", f.neuron), (None, None))[0] if f.neuron else None
        return digest is None or ("neuron", digest) in outcomes

    store(pending("neuron", lambda f: True) + pending("network", neuron_settled))
    store(pending("network", lambda f: True))
    return [_folder_result(f, hashed, outcomes, errors) for f in folders]


def _folder_result(f: FolderFiles, hashed: dict, outcomes: dict, errors: dict) -> FolderParams:
    hashes: dict[str, str | None] = {}
    rejections: list[tuple[str, str, str]] = []
    for kind in KINDS:
        path = f.path(kind)
        hashes[kind] = None
        if not path:
            continue
        digest, error = hashed.get((kind, path), (None, "not hashed"))
        outcome = outcomes.get((kind, digest)) if digest else None
        if outcome is None:
            reason = error or errors.get((kind, digest), "not stored")
            rejections.append((path, f"{kind}_param", reason))
        elif outcome.rejected is not None:
            rejections.append((path, f"{kind}_param", outcome.rejected))
        else:
            hashes[kind] = digest
            rejections.extend((path, f"{kind}_param_reference", line)
                              for line in missing_reasons(outcome.missing))
    return FolderParams(f.sim_run, f.neuron, f.network, hashes["neuron"], hashes["network"],
                        tuple(rejections))

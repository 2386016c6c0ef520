"""Which sim-run folders an ingest run takes, from the listing and the database state (no JVM).

A folder is new (not in ``metadata``), changed (its fingerprint differs from the stored one),
failed before (recorded in ``ingest_failed_folders`` with the same fingerprint: not retried
until its files change, or with ``--refresh``; a strict-mode failure is retried by a
non-strict run), or already present.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from simlake.discovery import SimRunFolder, SimrunTree
from simlake.ingest_options import IngestOptions


@dataclass(frozen=True)
class FailedFolder:
    """The latest ``ingest_failed_folders`` record of a folder."""

    fingerprint: str | None
    strict: bool
    reason: str
    run_id: str


@dataclass(frozen=True)
class DatabaseState:
    """What the database holds: committed folders (with their fingerprints, None where an older
    version recorded none), and the latest failure of folders that are not committed."""

    committed: dict[str, str | None] = field(default_factory=dict)
    failed: dict[str, FailedFolder] = field(default_factory=dict)


def folder_fingerprint(folder: SimRunFolder) -> str:
    """md5 over the names, sizes and mtimes of the files the folder's ingest uses."""
    digest = hashlib.md5()
    for name in sorted(folder.files):
        stat = folder.files[name]
        digest.update(f"{name}\0{stat.size}\0{stat.mtime_ns}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class FolderPlan:
    """The folders a run ingests (``todo``, in ``sim_trial_index`` order) and why."""

    todo: list[SimRunFolder]
    new: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    failed_before: list[str] = field(default_factory=list)
    already_present: int = 0
    notes: list[str] = field(default_factory=list)


def plan_folders(tree: SimrunTree, state: DatabaseState, opts: IngestOptions) -> FolderPlan:
    """The folders this run ingests and the counts the summary reports."""
    present = sum(1 for f in tree.folders if f.sim_run in state.committed)
    if not opts.core:  # the selected keys are rebuilt for the folders already stored
        return FolderPlan([f for f in tree.folders if f.sim_run in state.committed],
                          already_present=present)
    todo: list[SimRunFolder] = []
    new: list[str] = []
    refreshed: list[str] = []
    changed: list[str] = []
    failed_before: list[str] = []
    unknown = 0
    for f in tree.folders:
        fingerprint = folder_fingerprint(f)
        if f.sim_run in state.committed:
            stored = state.committed[f.sim_run]
            if stored is not None and stored != fingerprint:
                changed.append(f.sim_run)
            unknown += stored is None
            if opts.refresh and (stored is None or stored != fingerprint):
                todo.append(f)
                refreshed.append(f.sim_run)
            continue
        failed = state.failed.get(f.sim_run)
        if (failed is not None and failed.fingerprint == fingerprint and not opts.refresh
                and (opts.strict or not failed.strict)):
            failed_before.append(f.sim_run)
            continue
        todo.append(f)
        new.append(f.sim_run)
    notes = []
    if unknown:
        then = "(re-ingested now)" if opts.refresh else "(--refresh re-ingests them)"
        notes.append(f"{unknown} folders were ingested by a version that recorded no "
                     f"folder fingerprint: changes cannot be detected {then}")
    todo.sort(key=lambda f: f.sim_run + "/")
    return FolderPlan(todo, new, refreshed, changed, failed_before, present, notes)

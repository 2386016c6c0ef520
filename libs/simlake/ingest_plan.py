"""Pure planning of an ingest: which files become which Spark tasks, in key order.

No Spark and no file contents here: the plan is built from the discovery listing. Tasks are
packed into contiguous groups in ``sim_trial_index`` order, so each Spark task (one group) writes
one data file covering a key range that no other file of the same write overlaps.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simlake.discovery import SimRunFolder

#: File kinds that become per-trial table rows.
VOLTAGE = "voltage"
DENDRITIC = "dendritic"
SYNAPSES = "synapses"
CELLS = "cells"


@dataclass(frozen=True)
class FileTask:
    """One raw file to decode on an executor, with the context its decoder needs."""

    kind: str
    sim_run: str
    path: str
    size: int
    fmt: str = "csv"
    trialnr: int = -1
    trialnrs: tuple[int, ...] | None = None
    label: str = ""

    @property
    def order_key(self) -> tuple[str, str, int]:
        """Sort key: recording site, then the ``sim_trial_index`` string order."""
        return (self.label, self.sim_run + "/", self.trialnr)


def pack_contiguous(tasks: Iterable[FileTask], target_bytes: int,
                    min_groups: int = 1) -> list[list[FileTask]]:
    """Sort ``tasks`` by key and cut them into consecutive groups of about equal size.

    Groups hold at most about ``target_bytes``, and there are at least ``min_groups`` of them
    when there are that many tasks (so that every core gets work: with 2 cores, 3 groups of
    128 MiB leave one core idle for a third of the time, 4 smaller groups do not). Sizes are
    balanced: a group is closed where the middle of the next task passes a multiple of
    ``total / n_groups``.
    A group never mixes recording sites (dendritic files), so every output file of a
    site-partitioned table holds one site. Empty input gives no groups.
    """
    if target_bytes <= 0:
        raise ValueError("target_bytes must be positive")
    ordered = sorted(tasks, key=lambda t: t.order_key)
    if not ordered:
        return []
    total = sum(t.size for t in ordered)
    n_groups = max(-(-total // target_bytes), min(min_groups, len(ordered)), 1)
    budget = total / n_groups
    groups: list[list[FileTask]] = []
    current: list[FileTask] = []
    current_bytes = done_bytes = 0
    for task in ordered:
        site_changes = bool(current) and current[-1].label != task.label
        # close at the global boundaries k * budget, so rounding does not pile up at the end
        past_boundary = done_bytes + task.size / 2 > budget * (len(groups) + 1)
        full = past_boundary or current_bytes + task.size > target_bytes
        if current and (site_changes or full):
            groups.append(current)
            current, current_bytes = [], 0
        current.append(task)
        current_bytes += task.size
        done_bytes += task.size
    groups.append(current)
    return groups


def batches_by_bytes(folders: Sequence, batch_bytes: int) -> list[list]:
    """Cut sim-run folders (in order) into commit batches of about ``batch_bytes`` raw bytes.

    Every folder lands in exactly one batch; a folder larger than the budget is a batch alone.
    """
    batches: list[list] = []
    current: list = []
    current_bytes = 0
    for folder in folders:
        size = folder.total_bytes
        if current and current_bytes + size > batch_bytes:
            batches.append(current)
            current, current_bytes = [], 0
        current.append(folder)
        current_bytes += size
    if current:
        batches.append(current)
    return batches


def voltage_tasks(folders: Iterable[SimRunFolder]) -> list[FileTask]:
    """One task per folder voltage file."""
    return [FileTask(VOLTAGE, f.sim_run, f"{f.abspath}/{f.voltage_file}",
                     f.files[f.voltage_file].size, fmt=f.voltage_format or "csv",
                     trialnrs=f.trialnrs)
            for f in folders if f.voltage_file]


def trial_file_tasks(folders: Iterable[SimRunFolder], trials: Mapping[str, Container[int]],
                     kind: str) -> tuple[list[FileTask], list[tuple[str, str, str, str]]]:
    """Tasks of the per-trial files of ``kind`` (synapses or presynaptic cells) for the trials
    that have a voltage trace, and the rejections ``(path, sim_run, kind, reason)`` of files of
    trials missing from their folder's voltage traces.

    Files of a folder without any trial are not read (the folder fails as a whole).
    """
    tasks, rejected = [], []
    for f in folders:
        have = trials.get(f.sim_run)
        if not have:
            continue
        files = f.synapse_files if kind == SYNAPSES else f.cell_files
        for trialnr, name in sorted(files.items()):
            path = f"{f.abspath}/{name}"
            if trialnr not in have:
                rejected.append((path, f.sim_run, kind, f"no voltage trace for trial {trialnr}"))
            else:
                tasks.append(FileTask(kind, f.sim_run, path, f.files[name].size, trialnr=trialnr))
    return tasks, rejected


def dendritic_tasks(folders: Iterable[SimRunFolder], trials: Mapping[str, Container[int]]
                    ) -> list[FileTask]:
    """One task per dendritic recording file of folders with trials."""
    return [FileTask(DENDRITIC, f.sim_run, f"{f.abspath}/{name}", f.files[name].size,
                     trialnrs=f.trialnrs, label=label)
            for f in folders if trials.get(f.sim_run)
            for label, name in sorted(f.dendritic_files.items())]

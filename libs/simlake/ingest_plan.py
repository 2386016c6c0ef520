"""Pure planning of an ingest: which files become which Spark tasks, in key order.

No Spark and no file contents here: the plan is built from the discovery listing. Tasks are
packed into contiguous groups in ``sim_trial_index`` order, so each Spark task (one group) writes
one data file covering a key range that no other file of the same write overlaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


def pack_contiguous(tasks: Iterable[FileTask], target_bytes: int) -> list[list[FileTask]]:
    """Sort ``tasks`` by key and cut them into consecutive groups of about ``target_bytes``.

    A group never mixes recording sites (dendritic files), so every output file of a
    site-partitioned table holds one site. Empty input gives no groups.
    """
    if target_bytes <= 0:
        raise ValueError("target_bytes must be positive")
    groups: list[list[FileTask]] = []
    current: list[FileTask] = []
    current_bytes = 0
    for task in sorted(tasks, key=lambda t: t.order_key):
        site_changes = bool(current) and current[-1].label != task.label
        if current and (site_changes or current_bytes + task.size > target_bytes):
            groups.append(current)
            current, current_bytes = [], 0
        current.append(task)
        current_bytes += task.size
    if current:
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

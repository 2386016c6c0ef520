"""The decide phase of an ingest batch (no JVM): which folders are good, which failed and why,
and which ``sim_run`` values each table's replacing commit targets.

A folder fails when none of its trials has a readable voltage trace, and in strict mode when
any of its files was rejected. A failed folder that is committed keeps its stored rows (a failed
refresh, or a ``core=False`` run); one that is not loses the invisible leftovers of crashed
runs (it is a target too, with no rows).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass

from simlake.discovery import SimRunFolder
from simlake.ingest_report import Rejection
from simlake.ingest_select import DatabaseState


@dataclass(frozen=True)
class Decision:
    """The outcome of the decide phase."""

    good: tuple[SimRunFolder, ...]
    failed: dict[str, str]  # sim_run -> reason
    targets: tuple[str, ...]  # sim_run values whose rows each commit replaces
    rejections: tuple[Rejection, ...]  # one per failed folder

    @property
    def good_runs(self) -> list[str]:
        """``sim_run`` of the good folders, in batch order."""
        return [f.sim_run for f in self.good]


def failed_folders(folders: Sequence[SimRunFolder], trials: Mapping[str, Container[int]],
                   rejections: Sequence[Rejection], strict: bool) -> dict[str, str]:
    """sim_run -> reason, for folders that must not be written: no trials at all, or (strict)
    any rejection."""
    rejected = Counter(r.sim_run for r in rejections if r.sim_run)
    failed: dict[str, str] = {}
    for f in folders:
        if not trials.get(f.sim_run):
            failed[f.sim_run] = ("not ingested: no readable voltage trace"
                                 + (f" ({f.n_trial_files} trial files left out)"
                                    if f.n_trial_files else ""))
        elif strict and rejected[f.sim_run]:
            n = rejected[f.sim_run]
            failed[f.sim_run] = (f"not ingested (--strict): {n} rejected "
                                 f"{'file' if n == 1 else 'files'} in this folder")
    return failed


def decide(folders: Sequence[SimRunFolder], trials: Mapping[str, Container[int]],
           rejections: Sequence[Rejection], state: DatabaseState, *, strict: bool,
           core: bool) -> Decision:
    """Good and failed folders of a decoded batch and the targets of its commits."""
    failed = failed_folders(folders, trials, rejections, strict)
    good = tuple(f for f in folders if f.sim_run not in failed)
    targets = tuple([f.sim_run for f in good]
                    + [s for s in sorted(failed) if s not in state.committed and core])
    by_run = {f.sim_run: f for f in folders}
    folder_rejections = tuple(
        Rejection(by_run[s].abspath, s, "folder",
                  reason + ("; the stored version is kept" if s in state.committed else ""))
        for s, reason in sorted(failed.items()))
    return Decision(good, failed, targets, folder_rejections)

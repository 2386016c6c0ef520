"""What an ingest run reports: rejected files and the run's summary (no JVM).

The summary is built once, at the end of a run, from the values its phases returned: the
folder plan and one :class:`BatchOutcome` per commit batch (:func:`summarize`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rejection:
    """A file (or folder) that was not ingested, and why."""

    path: str
    sim_run: str | None
    kind: str
    reason: str

    def line(self) -> str:
        """One line for the summary."""
        return f"{self.path}: [{self.kind}] {self.reason}"


def deduplicated(records: Sequence[Sequence]) -> list[Rejection]:
    """Rejections of executor records ``(path, sim_run, kind, reason)``, sorted; Spark may
    retry a task, so a record can arrive twice."""
    return [Rejection(*r) for r in sorted(set(map(tuple, records)))]


#: From this many rejections with the same kind and reason on, the summary prints one line for
#: them all: 100 copies of a real sim-run folder whose param files point at anatomy files of
#: another machine would otherwise print 400 lines that differ only in the folder.
SAME_REASON_LINES = 3


def rejection_lines(rejections: Sequence[Rejection]) -> list[str]:
    """The summary's lines for ``rejections``: one per file, except that rejections sharing a
    kind and reason (:data:`SAME_REASON_LINES` or more) get one line naming the first file and
    how many more; every file stays named in the ``ingest_errors`` table."""
    by_reason: dict[tuple[str, str], list[Rejection]] = {}
    for r in rejections:
        by_reason.setdefault((r.kind, r.reason), []).append(r)
    lines = []
    for r in rejections:
        same = by_reason[(r.kind, r.reason)]
        if len(same) < SAME_REASON_LINES:
            lines.append(r.line())
        elif same[0] is r:
            lines.append(f"{r.line()} (and {len(same) - 1} more files with the same reason: "
                         "all in the ingest_errors table)")
    return lines


@dataclass(frozen=True)
class BatchOutcome:
    """What one commit batch did."""

    trials: int = 0
    files_read: int = 0
    bytes_read: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    rejections: tuple[Rejection, ...] = ()
    folders_failed: tuple[str, ...] = ()
    folders_done_concurrently: tuple[str, ...] = ()


@dataclass
class IngestSummary:
    """What one ingest run did; ``str()`` is the printed summary."""

    run_id: str
    db_path: str
    simresult_path: str
    folders_found: int = 0
    folders_new: list[str] = field(default_factory=list)
    folders_already_present: int = 0
    folders_changed: list[str] = field(default_factory=list)
    folders_refreshed: list[str] = field(default_factory=list)
    folders_failed: list[str] = field(default_factory=list)
    folders_failed_before: list[str] = field(default_factory=list)
    folders_done_concurrently: list[str] = field(default_factory=list)
    skipped_running: list[str] = field(default_factory=list)
    trials: int = 0
    files_read: int = 0
    bytes_read: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def nothing_new(self) -> bool:
        """True when the run found nothing to ingest and changed nothing."""
        return not self.folders_new and not self.folders_refreshed

    def __str__(self) -> str:
        mb = self.bytes_read / 1e6
        lines = [
            f"simlake ingest {self.run_id}: {self.simresult_path} -> {self.db_path}",
            f"  folders: {self.folders_found} found, {len(self.folders_new)} new, "
            f"{self.folders_already_present} already in the database, "
            f"{len(self.folders_refreshed)} refreshed, {len(self.folders_failed)} failed, "
            f"{len(self.folders_failed_before)} failed before (unchanged, not retried), "
            f"{len(self.skipped_running)} skipped as _running",
            f"  trials ingested: {self.trials}; files read: {self.files_read} ({mb:.1f} MB)",
        ]
        if self.rows:
            lines.append("  rows written: " + ", ".join(f"{k}={v}" for k, v in self.rows.items()))
        for path in self.skipped_running:
            lines.append(f"  skipped (still running): {path}")
        for sim_run in self.folders_changed:
            if sim_run not in self.folders_refreshed:
                lines.append(f"  changed since ingest (use --refresh to replace): {sim_run}")
        for sim_run in self.folders_failed_before:
            lines.append("  failed in an earlier run, files unchanged (--refresh retries): "
                         + sim_run)
        for sim_run in self.folders_done_concurrently:
            lines.append(f"  committed meanwhile by another run: {sim_run}")
        lines.append(f"  rejected: {len(self.rejections)}")
        lines.extend("    " + line for line in rejection_lines(self.rejections))
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.nothing_new:
            lines.append("  nothing new: the database was left unchanged")
        lines.append(f"  seconds: {self.seconds:.1f}")
        return "\n".join(lines)

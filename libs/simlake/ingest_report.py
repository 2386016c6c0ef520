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
        lines.extend("    " + r.line() for r in self.rejections)
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.nothing_new:
            lines.append("  nothing new: the database was left unchanged")
        lines.append(f"  seconds: {self.seconds:.1f}")
        return "\n".join(lines)

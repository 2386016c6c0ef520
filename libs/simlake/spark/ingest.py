"""The ingest: a raw simrun tree into the Delta tables of a database (Spark side).

A run is planned on the driver without Spark (a listing and small ``deltalake`` reads:
:func:`plan_run`), then cut into commit batches of sim-run folders. Each batch goes through
phases that return values (``docs/architecture.md``, "Writing"):

1. **decode** (``simlake.spark.decode``): executors decode the raw files into uncommitted
   Parquet data files; rejected files come back with the result;
2. **decide** (``simlake.ingest_decide``, pure): the good folders, the failed ones, and the
   ``sim_run`` targets of the replacing commits. Nothing of a batch is committed before all
   of its files are decoded, so a folder whose files fail (strict mode, or no readable voltage
   trace) never reaches a table, and a failed refresh leaves the stored version untouched;
3. **commit** (``simlake.spark.commit``): each decoded table's files of the good folders in one
   Delta commit, tables side by side, replacing what the table held for the targets;
4. **complete** (``simlake.spark.complete``): derived tables, ``parameterfiles``, the logs
   ``ingest_errors`` and ``ingest_failed_folders``, and ``metadata`` last: the **completion
   record**.

The run's summary is built from the plan and the batches' outcomes.

Crash safety (why a SIGKILL at any moment loses and duplicates nothing):

- A folder is in the database once its ``metadata`` rows are committed, and only then. Readers
  (the adapter, the SQL views) show rows of a table only for ``sim_run`` values present in
  ``metadata``; rows that a killed run committed before its metadata are invisible leftovers.
- The next run sees those folders as not yet ingested and ingests them again; its replacing
  commits on their ``sim_run`` values remove the leftovers in every table, in one commit per
  table. A killed run leaves at most uncommitted data files, which Delta ignores. So a rerun
  after a kill ends with exactly the tables of an uninterrupted run.
- ``--refresh`` of a changed folder first deletes its metadata rows (hiding it), then replaces
  its rows in every table, then writes its metadata: a kill in between leaves the folder hidden
  and not ingested, and the next run ingests it as new.
- The crash tests hold a run at named steps through an injected ``simlake.checkpoint``
  (a no-op by default; the commit order and parallelism are the same with it) and SIGKILL it.

Incremental runs: only folders not in ``metadata`` are read (``--refresh`` adds changed ones;
``simlake.ingest_select``). A run with nothing to do writes nothing at all. Before each batch
the committed set is read again, so a concurrent run's folders are not done twice.

``--strict``: any rejected file fails its folder, and a failed folder gets no row in any table
(its rows are never written; leftovers of an earlier killed run are removed) and no metadata;
its param files are checked in a scratch folder and not stored. The job then exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from simlake.checkpoint import Checkpoint, checkpoint_for
from simlake.discovery import SimRunFolder, SimrunTree, discover
from simlake.ingest_decide import Decision, decide
from simlake.ingest_options import IngestOptions
from simlake.ingest_plan import batches_by_bytes
from simlake.ingest_report import BatchOutcome, IngestSummary, Rejection
from simlake.ingest_select import DatabaseState, FolderPlan, folder_fingerprint, plan_folders
from simlake.manifest import read_manifest
from simlake.spark import complete, tables
from simlake.spark.commit import commit_decoded
from simlake.spark.decode import SPIKE_TABLES, Decoded, decode, discard
from simlake.spark.paramjob import store_param_files
from simlake.spark.state import committed_folders, read_state

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from simlake.spark.progress import IngestProgress

log = logging.getLogger(__name__)

#: Scratch folder (inside the database) where ``--strict`` checks param files before storing.
SCRATCH_DIR = ".ingest-scratch"


class DatabaseMismatchError(ValueError):
    """The database was built from another raw tree."""


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, decided on the driver without Spark (a listing and small
    ``deltalake`` reads)."""

    run_id: str
    opts: IngestOptions
    tree: SimrunTree
    state: DatabaseState
    folders: FolderPlan
    started: float

    @property
    def todo(self) -> list[SimRunFolder]:
        """The folders to ingest, in ``sim_trial_index`` order."""
        return self.folders.todo

    def tree_rejections(self) -> list[Rejection]:
        """Problems of the listing itself (outside any sim-run folder)."""
        return [Rejection(path, None, "listing", reason) for path, reason in self.tree.problems]

    def summary(self, outcomes: Sequence[BatchOutcome] = ()) -> IngestSummary:
        """The run's summary from this plan and the outcomes of its batches."""
        rows: dict[str, int] = {}
        for o in outcomes:
            for key, n in o.rows.items():
                rows[key] = rows.get(key, 0) + n
        return IngestSummary(
            run_id=self.run_id, db_path=self.opts.db_path,
            simresult_path=self.opts.simresult_path,
            folders_found=len(self.tree.folders), folders_new=list(self.folders.new),
            folders_already_present=self.folders.already_present,
            folders_changed=list(self.folders.changed),
            folders_refreshed=list(self.folders.refreshed),
            folders_failed=[s for o in outcomes for s in o.folders_failed],
            folders_failed_before=list(self.folders.failed_before),
            folders_done_concurrently=[s for o in outcomes for s in o.folders_done_concurrently],
            skipped_running=list(self.tree.skipped_running),
            trials=sum(o.trials for o in outcomes),
            files_read=sum(o.files_read for o in outcomes),
            bytes_read=sum(o.bytes_read for o in outcomes),
            rows=rows,
            rejections=self.tree_rejections() + [r for o in outcomes for r in o.rejections],
            notes=list(self.folders.notes),
            seconds=time.monotonic() - self.started)


def plan_run(opts: IngestOptions, tree: SimrunTree | None = None) -> RunPlan:
    """Discover (unless ``tree`` is given), read the database's state and plan the run; no
    JVM. A plan with no folders to ingest is finished by :func:`finish_without_spark`."""
    started = time.monotonic()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-")
    run_id = opts.run_id or stamp + uuid.uuid4().hex[:8]
    _check_simresult_path(opts)
    tree = tree or discover(opts.simresult_path)
    state = read_state(opts.db_path)
    return RunPlan(run_id, opts, tree, state, plan_folders(tree, state, opts), started)


def finish_without_spark(opts: IngestOptions, plan: RunPlan) -> IngestSummary:
    """The summary of a run with nothing to ingest (and the manifest brought up to date if a
    killed run left it behind ``metadata``)."""
    if plan.todo:
        raise ValueError("the plan has folders to ingest: that needs Spark")
    if opts.core:
        complete.update_filelist(opts, wrote=False)
    return plan.summary()


def ingest(spark: SparkSession, opts: IngestOptions, tree: SimrunTree | None = None,
           progress: IngestProgress | None = None, checkpoint: Checkpoint | None = None
           ) -> IngestSummary:
    """Ingest ``opts.simresult_path`` into the database ``opts.db_path``; returns the summary.

    Only sim-run folders not yet in the database are read (``refresh`` also replaces folders
    whose files changed). Safe to rerun after a crash, and to run concurrently. ``progress``
    (optional) is told the plan, the files decoded and the trials committed; ``checkpoint``
    (default: what ``opts.pause_after`` asks for, else none) is told each named step.
    """
    plan = plan_run(opts, tree)
    checkpoint = checkpoint if checkpoint is not None else checkpoint_for(opts)
    refresh = set(plan.folders.refreshed)
    batches = batches_by_bytes(plan.todo, opts.batch_bytes)
    if progress is not None:
        progress.plan(plan.todo, opts, len(batches))
    outcomes: list[BatchOutcome] = []
    state = plan.state
    for number, batch in enumerate(batches, 1):
        done_meanwhile: list[str] = []
        if number > 1 and opts.core:  # a concurrent run may have committed some meanwhile
            state = replace(state, committed=committed_folders(opts.db_path))
            done_meanwhile = [f.sim_run for f in batch
                              if f.sim_run in state.committed and f.sim_run not in refresh]
            batch = [f for f in batch if f.sim_run not in set(done_meanwhile)]
        log.info("batch %d/%d: %d folders, %.1f MB", number, len(batches), len(batch),
                 sum(f.total_bytes for f in batch) / 1e6)
        outcome = (ingest_batch(spark, opts, batch, plan.run_id, state, number, checkpoint,
                                progress, also_log=plan.tree_rejections() if number == 1 else ())
                   if batch else BatchOutcome())
        outcomes.append(replace(outcome, folders_done_concurrently=tuple(done_meanwhile)))
        if progress is not None:
            progress.batch_done(number, sum(o.trials for o in outcomes))
    if opts.core:
        complete.update_filelist(opts, wrote=bool(plan.todo))
    return plan.summary(outcomes)


def _check_simresult_path(opts: IngestOptions) -> None:
    known = read_manifest(opts.db_path).get("simresult_path")
    if known and known != opts.simresult_path:
        raise DatabaseMismatchError(f"{opts.db_path}: database holds {known}, "
                                    f"not {opts.simresult_path}; one database per simresult_path")


class _Steps:
    """Logs the seconds each step of a batch took and tells the checkpoint."""

    def __init__(self, checkpoint: Checkpoint, batch: int) -> None:
        self.checkpoint, self.batch, self.clock = checkpoint, batch, time.monotonic()

    def done(self, step: str) -> None:
        now = time.monotonic()
        log.info("batch %d: %s done in %.1fs", self.batch, step, now - self.clock)
        self.clock = now
        self.checkpoint.reached(step, self.batch)


def ingest_batch(spark: SparkSession, opts: IngestOptions, folders: list[SimRunFolder],
                 run_id: str, state: DatabaseState, number: int,
                 checkpoint: Checkpoint, progress: IngestProgress | None = None,
                 also_log: Sequence[Rejection] = ()) -> BatchOutcome:
    """One commit batch through its phases: decode, decide, commit, complete. ``also_log``:
    rejections found outside the batch's folders (the listing's), logged with the batch's."""
    scratch = os.path.join(opts.db_path, SCRATCH_DIR, run_id)
    steps = _Steps(checkpoint, number)
    try:
        decoded = decode(spark, opts, folders, scratch, progress)
        steps.done("decoded")
        try:
            decision = decide(folders, decoded.trials, decoded.rejections, state,
                              strict=opts.strict, core=opts.core)
            if opts.core:  # hide refreshed folders while their tables are replaced
                tables.delete_rows(spark, opts.db_path, "metadata",
                                   [s for s in decision.good_runs if s in state.committed])
        except BaseException:
            discard(opts.db_path, decoded.files)
            raise
        rows = commit_decoded(spark, opts, decoded.files, decision, checkpoint, number)
        rows, late_rejections = _complete(spark, opts, folders, run_id, state, decoded,
                                          decision, rows, steps, also_log, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        _remove_empty(os.path.join(opts.db_path, SCRATCH_DIR))
    return BatchOutcome(
        trials=_trials(decoded, decision) if opts.core else 0,
        files_read=decoded.files_read, bytes_read=decoded.bytes_read, rows=rows,
        rejections=decoded.rejections + decision.rejections + late_rejections,
        folders_failed=tuple(sorted(decision.failed)))


def _trials(decoded: Decoded, decision: Decision) -> int:
    return sum(len(decoded.trials.get(s, ())) for s in decision.good_runs)


def _complete(spark: SparkSession, opts: IngestOptions, folders: list[SimRunFolder],
              run_id: str, state: DatabaseState, decoded: Decoded, decision: Decision,
              rows: dict[str, int], steps: _Steps, also_log: Sequence[Rejection],
              scratch: str) -> tuple[dict[str, int], tuple[Rejection, ...]]:
    """Everything after the decoded tables' commits (``simlake.spark.complete``); returns the
    rows written per table and the rejections found on the way (param files stored now)."""
    db, wanted, good_runs = opts.db_path, opts.tables(), decision.good_runs
    rows = dict(rows)
    for key, (source, option) in SPIKE_TABLES.items():
        if key in wanted and key not in decoded.files:  # not derived while decoding
            rows[key] = complete.write_spikes(spark, db, key, source, good_runs, decision.targets,
                                              getattr(opts, option), _trials(decoded, decision))
            steps.done(key)
    late: tuple[Rejection, ...] = ()
    if "parameterfiles" in wanted:
        params = decoded.params or store_param_files(  # strict: take the scratch check's
            spark, db, decision.good, prepared_in=scratch)
        seen = set(decoded.rejections)
        late = tuple(r for r in params.rejections if r not in seen)
        rows["parameterfiles"] = complete.write_parameterfiles(
            spark, db, decision.good, decoded.trials, params.by_folder, decision.targets)
        steps.done("parameterfiles")

    # the logs, before the completion record (a kill after it reports again, not never)
    logged = [*also_log, *decoded.rejections, *decision.rejections, *late]
    if logged:
        complete.record_rejections(spark, db, run_id, logged)
        steps.done("ingest_errors")
    uncommitted_failures = {s: r for s, r in decision.failed.items() if s not in state.committed}
    if opts.core and uncommitted_failures:
        complete.record_failed_folders(spark, db, run_id, folders, uncommitted_failures,
                                       opts.strict)
        steps.done("ingest_failed_folders")

    steps.done("pre-metadata")
    if opts.core:  # the completion record, last
        rows["metadata"] = complete.write_metadata(spark, db, decision.good, decoded.trials,
                                                   run_id, decision.targets)
        steps.done("metadata")
    return rows, late


def _remove_empty(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


__all__ = ["DatabaseMismatchError", "IngestSummary", "Rejection", "RunPlan", "finish_without_spark",
           "folder_fingerprint", "ingest", "ingest_batch", "plan_run"]

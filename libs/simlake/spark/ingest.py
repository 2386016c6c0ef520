"""The ingest: a raw simrun tree into the Delta tables of a database (Spark side).

Flow per commit batch of sim-run folders (``docs/architecture.md``, "Writing"):

1. the driver plans file tasks from the discovery listing, packed in ``sim_trial_index`` order
   into balanced groups (one Spark task each);
2. executors read and decode the files and write the rows straight into Parquet data files of
   their tables (``simlake.datafiles``: pyarrow, columnar, no Spark row conversion); spike
   times are computed from the decoded traces in the same pass. The trials a folder's voltage
   traces hold define which of its per-trial files are taken (synapses, presynaptic cells;
   dendritic recordings need one trial): all files are decoded in one Spark job on the
   expectation that each activation file has its trial in the traces, and the rare folders
   where that proves wrong are decoded again once the trials are known (with the folders that
   share data files with them). Rejected files come back through an accumulator; the driver
   gets only the list of files written;
3. once every file of the batch is decoded, the driver knows all rejections and decides which
   folders are good; each table's files of the good folders are then committed in one Delta
   commit through delta-spark's transaction (``simlake.spark.delta_commit``), replacing
   whatever the table held for the batch's folders (like ``replaceWhere sim_run IN (...)``):
   idempotent, so a rerun replaces what a crashed or concurrent run left. Files of failed
   folders are never committed and are deleted;
4. the batch's rejections go to ``ingest_errors`` (an append-only log, one row per rejected file
   per run) and failed folders to ``ingest_failed_folders``;
5. ``metadata`` is written last: it is the **completion record**.

Nothing of a batch is committed before all of its files are decoded, so a folder whose files
fail (strict mode, or no readable voltage trace) never reaches a table, and a failed refresh
leaves the stored version untouched. In strict mode every data file holds one folder, so the
files of failed folders can be left out.

Crash safety (why a SIGKILL at any moment loses and duplicates nothing):

- A folder is in the database once its ``metadata`` rows are committed, and only then. Readers
  (the adapter) show rows of a table only for ``sim_run`` values present in ``metadata``; rows
  that a killed run committed before its metadata are invisible leftovers.
- The next run sees those folders as not yet ingested and ingests them again; its replacing
  commits on their ``sim_run`` values remove the leftovers in every table, in one commit per
  table. A killed run leaves at most uncommitted data files, which Delta ignores. So a rerun
  after a kill ends with exactly the tables of an uninterrupted run.
- ``--refresh`` of a changed folder first deletes its metadata rows (hiding it), then replaces
  its rows in every table, then writes its metadata: a kill in between leaves the folder hidden
  and not ingested, and the next run ingests it as new. A refresh whose new files fail keeps the
  stored version untouched (the failure is known before anything is committed).
- Data files written but not committed (a killed run, a failed folder) are invisible: Delta
  reads only the files its log names (``VACUUM`` removes such leftovers).
- The test hook ``IngestOptions.pause_after`` stops the driver at a named step so that tests can
  SIGKILL it there (see ``ingest_options``); it is off by default.

Incremental runs: only folders not in ``metadata`` are read (``--refresh`` adds changed ones:
names, sizes and mtimes of their files, ``metadata.folder_fingerprint``). Folders that failed are
recorded with their fingerprint in ``ingest_failed_folders`` and not retried until their files
change (or with ``--refresh``); a strict-mode failure is retried by a non-strict run. A run with
nothing to do writes nothing at all. Before each batch the committed set is read again, so a
concurrent run's folders are not done twice.

``--strict``: any rejected file fails its folder, and a failed folder gets no row in any table
(its rows are never written; leftovers of an earlier killed run are removed) and no metadata;
its param files are checked in a scratch folder and not stored. The job then exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import posixpath
import shutil
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from simlake import schemas
from simlake.datafiles import DataFile
from simlake.discovery import SimRunFolder, SimrunTree, discover
from simlake.ingest_options import IngestOptions
from simlake.ingest_plan import (
    CELLS,
    DENDRITIC,
    SYNAPSES,
    VOLTAGE,
    FileTask,
    batches_by_bytes,
    pack_contiguous,
)
from simlake.layout import table_path
from simlake.manifest import read_manifest, update_manifest
from simlake.spark import executor_tasks, tables
from simlake.spark.delta_commit import Replace
from simlake.spark.executor_tasks import SpikeOutput, TableOutput, WriteGroup

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from simlake.spark.progress import IngestProgress

log = logging.getLogger(__name__)

#: Tables decoded from raw files, in commit order.
DECODED_TABLES = ("voltage_traces", "synapse_activation", "cell_activation", "dendritic_recordings")
#: Derived spike tables: the decoded table they come from, and the option holding the threshold.
SPIKE_TABLES = {"spike_times": ("voltage_traces", "spike_threshold"),
                "dendritic_spike_times": ("dendritic_recordings",
                                          "dendritic_spike_times_threshold")}
#: Scratch folder (inside the database) where ``--strict`` checks param files before storing.
SCRATCH_DIR = ".ingest-scratch"


@dataclass
class Rejection:
    """A file (or folder) that was not ingested, and why."""

    path: str
    sim_run: str | None
    kind: str
    reason: str

    def line(self) -> str:
        """One line for the summary."""
        return f"{self.path}: [{self.kind}] {self.reason}"


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


def folder_fingerprint(folder: SimRunFolder) -> str:
    """md5 over the names, sizes and mtimes of the files the folder's ingest uses."""
    digest = hashlib.md5()
    for name in sorted(folder.files):
        stat = folder.files[name]
        digest.update(f"{name}\0{stat.size}\0{stat.mtime_ns}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class FailedFolder:
    """The latest ``ingest_failed_folders`` record of a folder."""

    fingerprint: str | None
    strict: bool
    reason: str
    run_id: str


@dataclass
class DatabaseState:
    """What the database holds: committed folders (with their fingerprints, None where an older
    version recorded none), and the latest failure of folders that are not committed."""

    committed: dict[str, str | None] = field(default_factory=dict)
    failed: dict[str, FailedFolder] = field(default_factory=dict)


def committed_folders(db_path: str) -> dict[str, str | None]:
    """sim_run -> folder fingerprint of every folder whose metadata is committed."""
    meta = tables.read_columns(db_path, "metadata", ["sim_run", "folder_fingerprint"])
    out: dict[str, str | None] = {}
    if meta is None:
        return out
    pairs = meta.group_by(["sim_run", "folder_fingerprint"]).aggregate([])
    for sim_run, fp in zip(pairs.column("sim_run").to_pylist(),
                           pairs.column("folder_fingerprint").to_pylist(), strict=True):
        # an older version's rows (no fingerprint) and ours can mix in one folder
        out[sim_run] = fp if out.get(sim_run) is None else out[sim_run]
    return out


def read_state(db_path: str) -> DatabaseState:
    """The committed folders and the recorded failures of the database ``db_path``."""
    state = DatabaseState(committed=committed_folders(db_path))
    failures = tables.read_columns(db_path, "ingest_failed_folders",
                                   ["sim_run", "folder_fingerprint", "strict", "reason",
                                    "run_id", "time"])
    if failures is not None:
        rows = failures.to_pylist()
        for r in sorted(rows, key=lambda r: (r["time"], r["run_id"] or "")):
            if r["sim_run"] not in state.committed:
                state.failed[r["sim_run"]] = FailedFolder(r["folder_fingerprint"],
                                                          bool(r["strict"]), r["reason"] or "",
                                                          r["run_id"] or "")
    return state


# --------------------------------------------------------------------------- planning


def plan_folders(tree: SimrunTree, state: DatabaseState, opts: IngestOptions,
                 summary: IngestSummary) -> list[SimRunFolder]:
    """The folders this run ingests, in ``sim_trial_index`` order; fills the summary's counts."""
    if not opts.core:
        todo = [f for f in tree.folders if f.sim_run in state.committed]
        summary.folders_already_present = len(todo)
        return todo
    todo = []
    unknown = 0
    for f in tree.folders:
        fingerprint = folder_fingerprint(f)
        if f.sim_run in state.committed:
            stored = state.committed[f.sim_run]
            if stored is None:
                unknown += 1
                if opts.refresh:
                    todo.append(f)
                    summary.folders_refreshed.append(f.sim_run)
            elif stored != fingerprint:
                summary.folders_changed.append(f.sim_run)
                if opts.refresh:
                    todo.append(f)
                    summary.folders_refreshed.append(f.sim_run)
            continue
        failed = state.failed.get(f.sim_run)
        if (failed is not None and failed.fingerprint == fingerprint and not opts.refresh
                and (opts.strict or not failed.strict)):
            summary.folders_failed_before.append(f.sim_run)
            continue
        todo.append(f)
        summary.folders_new.append(f.sim_run)
    if unknown:
        then = "(re-ingested now)" if opts.refresh else "(--refresh re-ingests them)"
        summary.notes.append(f"{unknown} folders were ingested by a version that recorded no "
                             f"folder fingerprint: changes cannot be detected {then}")
    summary.folders_already_present = sum(1 for f in tree.folders if f.sim_run in state.committed)
    todo.sort(key=lambda f: f.sim_run + "/")
    return todo


def voltage_tasks(folders: Iterable[SimRunFolder]) -> list[FileTask]:
    """One task per folder voltage file."""
    tasks = []
    for f in folders:
        if f.voltage_file:
            tasks.append(FileTask(VOLTAGE, f.sim_run, f"{f.abspath}/{f.voltage_file}",
                                  f.files[f.voltage_file].size, fmt=f.voltage_format or "csv",
                                  trialnrs=f.trialnrs))
    return tasks


def trial_file_tasks(folders: Iterable[SimRunFolder], trials: dict[str, set[int]], kind: str,
                     rejections: list[Rejection]) -> list[FileTask]:
    """Tasks of the per-trial files of ``kind`` (synapses or presynaptic cells) for the trials
    that have a voltage trace.

    Files of a folder without any trial are not read (the folder fails as a whole); a file of a
    trial missing from the folder's voltage traces is rejected (into ``rejections``).
    """
    tasks = []
    for f in folders:
        have = trials.get(f.sim_run)
        if not have:
            continue
        files = f.synapse_files if kind == SYNAPSES else f.cell_files
        for trialnr, name in sorted(files.items()):
            path = f"{f.abspath}/{name}"
            if trialnr not in have:
                rejections.append(Rejection(path, f.sim_run, kind,
                                            f"no voltage trace for trial {trialnr}"))
            else:
                tasks.append(FileTask(kind, f.sim_run, path, f.files[name].size, trialnr=trialnr))
    return tasks


def dendritic_tasks(folders: Iterable[SimRunFolder], trials: dict[str, set[int]]) -> list[FileTask]:
    """One task per dendritic recording file of folders with trials."""
    tasks = []
    for f in folders:
        if not trials.get(f.sim_run):
            continue
        for label, name in sorted(f.dendritic_files.items()):
            tasks.append(FileTask(DENDRITIC, f.sim_run, f"{f.abspath}/{name}", f.files[name].size,
                                  trialnrs=f.trialnrs, label=label))
    return tasks


# --------------------------------------------------------------------------- Spark wiring


def _error_accumulator(spark: SparkSession):
    from simlake.spark.accumulators import ListParam

    return spark.sparkContext.accumulator([], ListParam())


def write_groups(batch: _Batch, tasks_by_key: dict[str, list[FileTask]]) -> list[WriteGroup]:
    """Spark tasks writing the decoded tables ``tasks_by_key``: each table's files packed in key
    order into balanced groups, at least two per executor core over all tables together (in
    proportion to each table's bytes), largest first so that no core idles at the end."""
    cores = batch.spark.sparkContext.defaultParallelism
    total = sum(t.size for tasks in tasks_by_key.values() for t in tasks) or 1
    groups = []
    for key, tasks in tasks_by_key.items():
        share = sum(t.size for t in tasks) / total
        min_groups = max(1, round(2 * cores * share))
        for packed in pack_contiguous(tasks, batch.opts.target_task_bytes, min_groups):
            groups.append(WriteGroup(batch.output(key), tuple(packed), batch.spike_output(key)))
    groups.sort(key=lambda g: -sum(t.size for t in g.tasks))
    return groups


def run_write_groups(spark: SparkSession, groups: list[WriteGroup], errors,
                     progress: IngestProgress | None = None) -> list[dict]:
    """Decode and write ``groups`` on the executors (one Spark task each); the rows they
    return (files written, trials found: ``executor_tasks.write_groups``)."""
    if not groups:
        return []
    fn = executor_tasks.write_groups(groups, errors)
    if progress is not None:
        fn = progress.counted(spark, fn, groups)
    # One id per partition: the executor writes group ``id``; the groups travel with the
    # function. An RDD job, not a query: no plan to build, and its first task starts ~2 s
    # sooner than a mapInArrow query's on a fresh session (2-core machine).
    ids = spark.sparkContext.parallelize(range(len(groups)), len(groups))
    return ids.mapPartitions(fn).collect()  # type: ignore[arg-type]  # pyspark's stubs want Iterable


def _batch_rows(spark: SparkSession, db_path: str, key: str, sim_runs: Sequence[str]) -> DataFrame:
    df = spark.read.format("delta").load(table_path(db_path, key))
    return df.where(tables.replace_predicate(sim_runs))


def _range_layout(df: DataFrame, key: str, rows_per_file: int, n_rows: int) -> DataFrame:
    """Range-partition and sort rows of a derived table by key (one file per partition)."""
    n_files = max(1, -(-n_rows // rows_per_file))
    cols = tables.PARTITION_COLUMNS.get(key, []) + ["sim_trial_index"]
    if n_files == 1:  # one file: no range-sampling job (and not coalesce(1), which would run
        # the whole upstream computation in a single task)
        return df.repartition(1).sortWithinPartitions(*cols)
    return df.repartitionByRange(n_files, *cols).sortWithinPartitions(*cols)


# --------------------------------------------------------------------------- the run


@dataclass
class RunPlan:
    """What a run will do, decided on the driver without Spark (a listing and small
    ``deltalake`` reads): its summary so far, the database state and the folders to ingest."""

    summary: IngestSummary
    tree: SimrunTree
    state: DatabaseState
    todo: list[SimRunFolder]
    tree_rejections: list[Rejection]
    started: float


def plan_run(opts: IngestOptions, tree: SimrunTree | None = None) -> RunPlan:
    """Discover (unless ``tree`` is given), read the database's state and plan the run; no
    JVM. A plan with no folders to ingest is finished by :func:`finish_without_spark`."""
    started = time.monotonic()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-")
    run_id = opts.run_id or stamp + uuid.uuid4().hex[:8]
    summary = IngestSummary(run_id=run_id, db_path=opts.db_path, simresult_path=opts.simresult_path)
    _check_simresult_path(opts)

    tree = tree or discover(opts.simresult_path)
    summary.folders_found = len(tree.folders)
    summary.skipped_running = list(tree.skipped_running)
    tree_rejections = [Rejection(path, None, "listing", reason) for path, reason in tree.problems]
    summary.rejections.extend(tree_rejections)

    state = read_state(opts.db_path)
    todo = plan_folders(tree, state, opts, summary)
    return RunPlan(summary, tree, state, todo, tree_rejections, started)


def finish_without_spark(opts: IngestOptions, plan: RunPlan) -> IngestSummary:
    """The summary of a run with nothing to ingest (and the manifest brought up to date if a
    killed run left it behind ``metadata``)."""
    if plan.todo:
        raise ValueError("the plan has folders to ingest: that needs Spark")
    if opts.core:
        _update_manifest(opts, wrote=False)
    plan.summary.seconds = time.monotonic() - plan.started
    return plan.summary


def ingest(spark: SparkSession, opts: IngestOptions,
           tree: SimrunTree | None = None, progress: IngestProgress | None = None
           ) -> IngestSummary:
    """Ingest ``opts.simresult_path`` into the database ``opts.db_path``; returns the summary.

    Only sim-run folders not yet in the database are read (``refresh`` also replaces folders
    whose files changed). Safe to rerun after a crash, and to run concurrently. ``progress``
    (optional) is told the plan, the files decoded and the trials committed.
    """
    plan = plan_run(opts, tree)
    summary, state, todo = plan.summary, plan.state, plan.todo
    tree_rejections = plan.tree_rejections
    run_id = summary.run_id
    refresh = set(summary.folders_refreshed)

    batches = batches_by_bytes(todo, opts.batch_bytes)
    if progress is not None:
        progress.plan(todo, opts, len(batches))
    for number, batch in enumerate(batches, 1):
        if number > 1 and opts.core:  # a concurrent run may have committed some meanwhile
            now = committed_folders(opts.db_path)
            done = [f.sim_run for f in batch if f.sim_run in now and f.sim_run not in refresh]
            summary.folders_done_concurrently.extend(done)
            batch = [f for f in batch if f.sim_run not in set(done)]
            state.committed.update(now)
        log.info("batch %d/%d: %d folders, %.1f MB", number, len(batches), len(batch),
                 sum(f.total_bytes for f in batch) / 1e6)
        _ingest_batch(spark, opts, batch, run_id, summary, state, number,
                      tree_rejections if number == 1 else [], progress)
        if progress is not None:
            progress.batch_done(number, summary.trials)

    if opts.core:
        _update_manifest(opts, wrote=bool(todo))
    summary.seconds = time.monotonic() - plan.started
    return summary


class DatabaseMismatchError(ValueError):
    """The database was built from another raw tree."""


def _check_simresult_path(opts: IngestOptions) -> None:
    known = read_manifest(opts.db_path).get("simresult_path")
    if known and known != opts.simresult_path:
        raise DatabaseMismatchError(f"{opts.db_path}: database holds {known}, "
                                    f"not {opts.simresult_path}; "
                         "one database per simresult_path")


def _checkpoint(opts: IngestOptions, step: str, batch: int) -> None:
    """The test hook: wait at ``step`` of ``batch`` while ``opts.pause_file`` exists."""
    if opts.pause_point() != (step, batch):
        return
    path = opts.pause_file
    assert path is not None  # IngestOptions checks that pause_after comes with pause_file
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {step}:{batch}\n")
    os.replace(tmp, path)
    log.warning("test hook: paused after %s of batch %d until %s is deleted", step, batch, path)
    while os.path.exists(path):
        time.sleep(0.05)
    log.warning("test hook: released at %s of batch %d", step, batch)


def _ingest_batch(spark: SparkSession, opts: IngestOptions, folders: list[SimRunFolder],
                  run_id: str, summary: IngestSummary, state: DatabaseState, number: int,
                  extra_rejections: list[Rejection], progress: IngestProgress | None) -> None:
    if not folders:
        return
    db = opts.db_path
    batch = _Batch(spark, opts, folders, number, _error_accumulator(spark), progress=progress)
    rejections = batch.rejections
    scratch = os.path.join(db, SCRATCH_DIR, run_id)
    try:
        _decode(batch, scratch)
        good, failed, targets = _decide(batch, state)
        good_runs = [f.sim_run for f in good]
        if opts.core:  # hide refreshed folders while their tables are replaced
            tables.delete_rows(spark, db, "metadata",
                               [s for s in good_runs if s in state.committed])
        _commit_decoded(batch, good_runs, targets)
        trials = batch.trials
        n_trials = sum(len(trials.get(s, ())) for s in good_runs)
        for key, (source, option) in SPIKE_TABLES.items():
            if key in batch.wanted and key not in batch.files:  # not derived while decoding
                batch.rows[key] = _write_spikes(spark, db, key, source, good_runs, targets,
                                                getattr(opts, option), n_trials)
                batch.done(key)
        if "parameterfiles" in batch.wanted:
            hashes = (batch.param_hashes if batch.param_hashes is not None
                      else _store_param_files(spark, db, good, batch.errors))
            batch.collect_rejections()
            batch.rows["parameterfiles"] = _write_parameterfiles(spark, db, good, trials, hashes,
                                                                 targets)
            batch.done("parameterfiles")

        # the logs, before the completion record (a kill after it reports again, not never)
        logged = extra_rejections + rejections
        if logged:
            _record_rejections(spark, db, run_id, logged)
            batch.done("ingest_errors")
        uncommitted_failures = {s: r for s, r in failed.items() if s not in state.committed}
        if opts.core and uncommitted_failures:
            _record_failed_folders(spark, db, run_id, folders, uncommitted_failures, opts.strict)
            batch.done("ingest_failed_folders")

        # the completion record, last
        batch.done("pre-metadata")
        if opts.core:
            batch.rows["metadata"] = _write_metadata(spark, db, good, trials, run_id, targets)
            state.committed.update({f.sim_run: folder_fingerprint(f) for f in good})
            batch.done("metadata")
            summary.trials += n_trials
    finally:
        batch.discard_uncommitted()
        shutil.rmtree(scratch, ignore_errors=True)
        _remove_empty(os.path.join(db, SCRATCH_DIR))

    summary.files_read += batch.files_read
    summary.bytes_read += batch.bytes_read
    summary.folders_failed.extend(sorted(failed))
    summary.rejections.extend(rejections)
    for key, n in batch.rows.items():
        summary.rows[key] = summary.rows.get(key, 0) + n


@dataclass
class _Batch:
    """One commit batch in the making: its folders, the data files written, what was
    committed."""

    spark: SparkSession
    opts: IngestOptions
    folders: list[SimRunFolder]
    number: int
    errors: Any  # the accumulator of executor-side rejections (a Spark Accumulator)
    progress: IngestProgress | None = None
    trials: dict[str, set[int]] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    files: dict[str, list[DataFile]] = field(default_factory=dict)  # key -> written, uncommitted
    param_hashes: dict | None = None  # sim_run -> stored param files, once stored
    rows: dict[str, int] = field(default_factory=dict)  # key -> rows written
    files_read: int = 0
    bytes_read: int = 0
    _errors_read: int = 0  # accumulator records taken into ``rejections``

    def __post_init__(self) -> None:
        self.wanted = self.opts.tables()
        self._clock = time.monotonic()
        self.sim_runs = [f.sim_run for f in self.folders]
        self.rejections.extend(Rejection(path, f.sim_run, "listing", reason)
                               for f in self.folders for path, reason in f.problems)
        # strict mode fails folders for any rejected file, after their rows were decoded:
        # their rows must be in files of their own, which are then left out
        self.split_folders = self.opts.strict

    def done(self, step: str) -> None:
        """Log the seconds since the previous step; then the test hook's checkpoint."""
        now = time.monotonic()
        log.info("batch %d: %s done in %.1fs", self.number, step, now - self._clock)
        self._clock = now
        _checkpoint(self.opts, step, self.number)

    def collect_rejections(self) -> None:
        """Add the executors' rejections reported since the last call (the accumulator grows
        through the batch's jobs) that the batch does not hold yet."""
        reported = self.errors.value
        end = len(reported)  # the accumulator may grow meanwhile (a job still running)
        new = _accumulated(reported[self._errors_read:end])
        self._errors_read = end
        seen = {astuple(r) for r in self.rejections}
        self.rejections.extend(r for r in new if astuple(r) not in seen)

    def forget_rejections(self, sim_runs: set[str], kinds: set[str]) -> None:
        """Drop the executors' rejections so far of files of ``kinds`` in ``sim_runs`` (their
        files are decoded again; a repeated rejection is reported then)."""
        self.collect_rejections()
        self.rejections[:] = [r for r in self.rejections
                              if not (r.sim_run in sim_runs and r.kind in kinds)]

    def tasks(self, key: str, folders: list[SimRunFolder] | None = None) -> list[FileTask]:
        """The file tasks of decoded table ``key`` in ``folders`` (default: the batch's, then
        counted as read) for the trials in :attr:`trials`."""
        count = folders is None
        folders = self.folders if folders is None else folders
        if key == "voltage_traces":
            out = voltage_tasks(folders)
        elif key in ("synapse_activation", "cell_activation"):
            kind = SYNAPSES if key == "synapse_activation" else CELLS
            out = trial_file_tasks(folders, self.trials, kind, self.rejections)
        else:
            out = dendritic_tasks(folders, self.trials)
        if count:
            self.files_read += len(out)
            self.bytes_read += sum(t.size for t in out)
        return out

    def decoded_keys(self) -> list[str]:
        """Decoded tables this batch writes besides voltage traces, in commit order."""
        keys = []
        if "synapse_activation" in self.wanted:
            keys += ["synapse_activation", "cell_activation"]
        if "dendritic_recordings" in self.wanted and (self.opts.dendritic_voltage_traces
                                                      or self.opts.core):
            keys.append("dendritic_recordings")
        return keys

    def output(self, key: str) -> TableOutput:
        """Where the executors write table ``key`` (files may land before the table is
        created: they are invisible until committed)."""
        return tables.table_output(self.opts.db_path, key, self.split_folders)

    def created_tables(self) -> list[str]:
        """Tables this batch commits to whatever it finds (created while it decodes)."""
        keys = (["voltage_traces"] if self.opts.core else []) + self.decoded_keys()
        keys += [s.output.table for s in map(self.spike_output, keys) if s is not None]
        return keys + [k for k in ("parameterfiles", "metadata") if k in self.wanted]

    def spike_output(self, key: str) -> SpikeOutput | None:
        """Spike times derived from decoded table ``key`` in the same pass, if wanted."""
        for spike_key, (source, option) in SPIKE_TABLES.items():
            if source == key and spike_key in self.wanted:
                return SpikeOutput(self.output(spike_key), getattr(self.opts, option))
        return None

    def add_results(self, results: list[dict], decoded: Sequence[str]) -> None:
        """Take the executors' results: data files per table (also derived ones, and an empty
        list for each of ``decoded``), and the trials of decoded voltage files."""
        for key in decoded:
            self.files.setdefault(key, [])
            spikes = self.spike_output(key)
            if spikes is not None:
                self.files.setdefault(spikes.output.table, [])
        for row in results:
            if row["path"] is None:  # the trials found in a group's voltage files
                for sim_run, trialnrs in json.loads(row["trials"]).items():
                    self.trials.setdefault(sim_run, set()).update(trialnrs)
            else:
                self.files[row["table"]].append(DataFile.from_record(row))

    def discard_uncommitted(self) -> None:
        """Delete the data files written and not committed (a failed folder's, or all of them
        when the batch stopped early)."""
        for key, files in self.files.items():
            root = table_path(self.opts.db_path, key)
            for f in files:
                try:
                    os.remove(os.path.join(root, f.path))
                except OSError:
                    pass
        self.files = {}


class _EveryTrial:
    """The trials of a folder whose voltage traces are not read yet, as planned: every
    activation file's trial is expected in them (checked once they are read)."""

    def __contains__(self, trialnr: object) -> bool:
        return True

    def __bool__(self) -> bool:
        return True


def _decode(batch: _Batch, scratch: str) -> None:
    """Decode every raw file of the batch into data files of its tables (nothing committed),
    in one Spark job: voltage traces, and the per-trial files and dendritic recordings of every
    folder with a voltage file, planned as if the traces held the trial of every activation
    file. The folders where they do not (a trace file rejected, or trials missing from it) are
    decoded again once their trials are known (:func:`_decode_again`). Two jobs in a row cost a
    start and the idle cores of the first job's end (~1.5 s at 2,000 trials on 2 cores).

    Meanwhile, in driver threads: the tables are created, and (unless strict) the param files of
    the folders with a voltage file are stored by a second Spark job, which fills the cores
    that the decoding leaves idle at its end.
    """
    spark, opts = batch.spark, batch.opts
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="simlake-batch") as pool:
        creating = pool.submit(_ensure_tables, spark, opts.db_path, batch.created_tables())
        if opts.core:
            # stands in for every trial's set until the traces are read
            batch.trials = {f.sim_run: _EveryTrial()  # type: ignore[misc]
                            for f in batch.folders if f.voltage_file}
        else:
            batch.trials = _trials_of(opts.db_path, batch.sim_runs)
        with_trials = [f for f in batch.folders if batch.trials.get(f.sim_run)]
        group, submitted = f"simlake-decode-{uuid.uuid4().hex}", threading.Event()
        storing = None
        if "parameterfiles" in batch.wanted:
            # strict: checked in a scratch folder, stored once the folders are known good
            storing = pool.submit(_after_job_of(spark, group, submitted), _store_param_files,
                                  spark, scratch if opts.strict else opts.db_path, with_trials,
                                  batch.errors, opts.db_path)
        keys = (["voltage_traces"] if opts.core else []) + batch.decoded_keys()
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", group)
        try:
            tasks = {key: batch.tasks(key) for key in keys}
            _progress(tasks)
            results = run_write_groups(spark, write_groups(batch, tasks), batch.errors,
                                       batch.progress)
        finally:
            spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
            submitted.set()  # also when no job ran (nothing to decode, or a failure)
        if opts.core:
            batch.trials = {}  # the trials found, from the voltage rows
        batch.add_results(results, list(tasks))
        if opts.core:
            _decode_again(batch)
        creating.result()
        hashes = storing.result() if storing is not None else None
        if not opts.strict:  # strict: the scratch copies are not the stored ones
            batch.param_hashes = hashes
    batch.collect_rejections()
    batch.done("decoded")


def _after_job_of(spark: SparkSession, group: str, done: threading.Event,
                  wait: float = 120.0):
    """``run(fn, *args)``: ``fn(*args)`` once a job of job group ``group`` was submitted (or
    ``done`` is set, or after ``wait`` seconds), so that its tasks queue behind that job's
    (Spark runs the jobs of one pool first come, first served): the param files then fill the
    cores the decoding leaves idle at its end instead of holding them at its start."""

    def run(fn, *args):
        tracker = spark.sparkContext.statusTracker()
        deadline = time.monotonic() + wait
        while (not tracker.getJobIdsForGroup(group) and not done.is_set()
               and time.monotonic() < deadline):
            time.sleep(0.05)
        return fn(*args)

    return run


def _decode_again(batch: _Batch) -> None:
    """Once the voltage traces are read: decode again the per-trial files and dendritic
    recordings of the folders planned wrongly (no trials at all, or activation files of trials
    the traces lack), and of the folders sharing a data file with them, for the trials found.
    Their first data files are deleted and their first rejections of those files forgotten."""
    wrong = set()
    for f in batch.folders:
        have = batch.trials.get(f.sim_run)
        if f.voltage_file and (not have or not set(f.synapse_files).union(f.cell_files) <= have):
            wrong.add(f.sim_run)
    if not wrong:
        return
    keys = [k for k in batch.files if k not in ("voltage_traces", "spike_times")]
    again = set(wrong)
    while True:  # data files hold runs of folders: take every folder sharing one
        shared = {s for k in keys for f in batch.files[k] if again & set(f.sim_runs)
                  for s in f.sim_runs}
        if shared <= again:
            break
        again |= shared
    root = {k: table_path(batch.opts.db_path, k) for k in keys}
    for k in keys:
        for data_file in batch.files[k]:
            if again & set(data_file.sim_runs):
                try:
                    os.remove(os.path.join(root[k], data_file.path))
                except OSError:  # never committed: a file left behind is invisible
                    log.warning("could not delete uncommitted data file %s/%s", root[k],
                                data_file.path)
        batch.files[k] = [d for d in batch.files[k] if not again & set(d.sim_runs)]
    batch.forget_rejections(again, {SYNAPSES, CELLS, DENDRITIC})
    folders = [f for f in batch.folders if f.sim_run in again]
    log.info("batch %d: voltage traces of %d folders lack trials of their files; decoding "
             "%d folders again", batch.number, len(wrong), len(folders))
    tasks = {key: batch.tasks(key, folders) for key in batch.decoded_keys()}
    results = run_write_groups(batch.spark, write_groups(batch, tasks), batch.errors,
                               batch.progress)
    batch.add_results(results, list(tasks))


def _ensure_tables(spark: SparkSession, db: str, keys: Sequence[str]) -> None:
    for key in keys:
        tables.ensure_table(spark, db, key)


def _decide(batch: _Batch, state: DatabaseState):
    """The good folders, the failed ones (sim_run -> reason, also logged as rejections) and the
    ``replaceWhere`` targets of the batch."""
    failed = _failed_folders(batch.folders, batch.trials, batch.rejections, batch.opts.strict)
    good = [f for f in batch.folders if f.sim_run not in failed]
    # a failed folder that is committed keeps its stored rows (a failed refresh, or a
    # --no-core run); one that is not loses the invisible leftovers of crashed runs
    targets = [f.sim_run for f in good] + [s for s in sorted(failed)
                                           if s not in state.committed and batch.opts.core]
    for sim_run, reason in sorted(failed.items()):
        folder = next(f for f in batch.folders if f.sim_run == sim_run)
        if sim_run in state.committed:
            reason += "; the stored version is kept"
        batch.rejections.append(Rejection(folder.abspath, sim_run, "folder", reason))
    return good, failed, targets


#: Tables committed side by side after decoding: each commit is ~0.2 s of driver work
#: (mostly JVM), and the logs of different tables are independent.
COMMIT_THREADS = 4


def _commit_decoded(batch: _Batch, good_runs: list[str], targets: list[str]) -> None:
    """Commit the data files of the good folders, one commit per table, several tables at once
    (decoded tables and the spike times derived from them; the completion record comes later,
    alone), each replacing the targets' rows. A failed commit fails the batch once the others
    have finished (each failure logged). With the test hook on, one table after the other, so
    that its pause points fall between commits."""
    good = set(good_runs)

    def commit(key: str) -> None:
        keep = [f for f in batch.files[key] if set(f.sim_runs) <= good]
        mixed = [f.path for f in batch.files[key] if set(f.sim_runs) & good
                 and not set(f.sim_runs) <= good]
        if mixed:  # cannot happen: a folder fails with rows only in strict mode (split files)
            raise RuntimeError(f"{key}: data files mix good and failed folders: {mixed}")
        replace = (Replace(targets, "threshold", getattr(batch.opts, SPIKE_TABLES[key][1]))
                   if key in SPIKE_TABLES else Replace(targets))
        if targets:
            batch.rows[key] = tables.commit(batch.spark, batch.opts.db_path, key, keep, replace)
        committed = {f.path for f in keep} if targets else set()
        leftover = [f for f in batch.files[key] if f.path not in committed]
        batch.files[key] = leftover  # deleted as uncommitted at the end of the batch

    keys = [k for k in (*DECODED_TABLES, *SPIKE_TABLES) if k in batch.files]
    if batch.opts.pause_file:  # the test hook: pause points between commits, in order
        for key in keys:
            commit(key)
            batch.done(key)
        return
    pool = ThreadPoolExecutor(max_workers=COMMIT_THREADS, thread_name_prefix="simlake-commit")
    futures = [pool.submit(commit, key) for key in keys]
    try:
        for key, future in zip(keys, futures, strict=True):
            future.exception()  # wait
            batch.done(key)
    finally:  # also on an interrupt: no data file is deleted under a commit still running
        pool.shutdown(wait=True, cancel_futures=True)
    failures: list[tuple[str, BaseException]] = [
        (key, exc) for key, f in zip(keys, futures, strict=True)
        if not f.cancelled() and (exc := f.exception()) is not None]
    for key, exc in failures[1:]:
        log.error("%s: commit failed too: %s", key, exc)
    if failures:
        raise failures[0][1]


def _accumulated(reported: list) -> list[Rejection]:
    """Rejections of accumulator records (retried tasks may repeat one: de-duplicated)."""
    return [Rejection(*r) for r in sorted(set(map(tuple, reported)))]


def _remove_empty(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def _progress(tasks: dict[str, list[FileTask]]) -> None:
    for key, key_tasks in tasks.items():
        log.info("%s: decoding %d files (%.1f MB) on the executors", key, len(key_tasks),
                 sum(t.size for t in key_tasks) / 1e6)


def _trials_of(db: str, sim_runs: Sequence[str]) -> dict[str, set[int]]:
    """sim_run -> trial numbers of these folders in the stored completion record."""
    rows = tables.read_columns(db, "metadata", ["sim_run", "trialnr"], sim_runs)
    trials: dict[str, set[int]] = defaultdict(set)
    if rows is not None:
        for sim_run, trialnr in zip(rows.column("sim_run").to_pylist(),
                                    rows.column("trialnr").to_pylist(), strict=True):
            trials[sim_run].add(int(trialnr))
    return dict(trials)


def _write_spikes(spark: SparkSession, db: str, key: str, source_key: str,
                  good_runs: Sequence[str], targets: Sequence[str], threshold: float,
                  n_trials: int) -> int:
    """Spike times of the good folders at ``threshold`` from the stored rows of ``source_key``
    (a run that did not decode them, e.g. ``core=False``); returns the rows written."""
    if not (tables.exists(db, source_key) and good_runs):
        return 0
    rows = _batch_rows(spark, db, source_key, good_runs)
    spikes = rows.mapInArrow(executor_tasks.spike_batches(key, threshold),  # type: ignore[arg-type]
                             tables.spark_schema(schemas.TABLES[key]))
    spikes = _range_layout(spikes, key, rows_per_file=200_000, n_rows=n_trials)
    return tables.replace_rows(spikes, db, key, targets, column="threshold", value=threshold)


def _store_param_files(spark: SparkSession, db: str, folders: list[SimRunFolder], errors,
                       known_in: str | None = None):
    """Store the folders' param files in ``db``, each distinct md5 once (``simlake.paramstore``:
    the hashing and storing run on the executors, the planning here); rejections go to
    ``errors``. An md5 whose outcome the database ``known_in`` recorded (strict mode's real
    database, while ``db`` is its scratch folder) is not stored again."""
    from simlake import paramstore

    items = [paramstore.FolderFiles(
        f.sim_run, f"{f.abspath}/{f.neuron_param}" if f.neuron_param else None,
        f"{f.abspath}/{f.network_param}" if f.network_param else None) for f in folders]
    if not items:
        return {}
    sc = spark.sparkContext

    def on_executors(fn, work: list) -> list:
        # an RDD job like the decoding's, so its tasks run in the same, already started workers
        if not work:
            return []
        slices = min(len(work), sc.defaultParallelism * 2)
        task: Any = executor_tasks.each(fn)  # pyspark's stubs want an Iterable function
        return sc.parallelize(work, slices).mapPartitions(task).collect()

    stored = paramstore.store_folders(items, db, on_executors,
                                      known_in=[known_in] if known_in and known_in != db else [])
    errors.add([(path, r.sim_run, kind, reason)
                for r in stored for path, kind, reason in r.rejections])
    return {r.sim_run: {"sim_run": r.sim_run, "path_neuron": r.path_neuron,
                        "path_network": r.path_network, "hash_neuron": r.hash_neuron,
                        "hash_network": r.hash_network} for r in stored}


def _rows_table(key: str, rows: list[tuple]) -> pa.Table:
    """Arrow rows of table ``key`` from tuples in schema order, sorted by key."""
    schema = tables.table_schema(key)
    columns: list[Sequence[Any]] = (list(zip(*rows, strict=True)) if rows
                                    else [[] for _ in schema])
    table = pa.table([pa.array(c, f.type) for c, f in zip(columns, schema, strict=True)],
                     schema=schema)
    return table.sort_by("sim_trial_index") if "sim_trial_index" in schema.names else table


def _write_parameterfiles(spark: SparkSession, db: str, folders: list[SimRunFolder],
                          trials: dict[str, set[int]], hashes: dict,
                          targets: Sequence[str]) -> int:
    rows = []
    for f in folders:
        info = hashes.get(f.sim_run, {})
        for trialnr in sorted(trials.get(f.sim_run, ())):
            rows.append((schemas.sim_trial_index(f.sim_run, trialnr), f.sim_run,
                         info.get("path_neuron"), info.get("path_network"),
                         info.get("hash_neuron"), info.get("hash_network")))
    return tables.write_rows(spark, db, "parameterfiles", _rows_table("parameterfiles", rows),
                             Replace(targets))


def _write_metadata(spark: SparkSession, db: str, folders: list[SimRunFolder],
                    trials: dict[str, set[int]], run_id: str, targets: Sequence[str]) -> int:
    rows = []
    for f in folders:
        fingerprint = folder_fingerprint(f)
        for trialnr in sorted(trials.get(f.sim_run, ())):
            rows.append((schemas.sim_trial_index(f.sim_run, trialnr), f.sim_run, trialnr,
                         f.voltage_file, f.synapse_files.get(trialnr), f.cell_files.get(trialnr),
                         run_id, fingerprint))
    return tables.write_rows(spark, db, "metadata", _rows_table("metadata", rows),
                             Replace(targets))


def _failed_folders(folders: list[SimRunFolder], trials: dict[str, set[int]],
                    rejections: list[Rejection], strict: bool) -> dict[str, str]:
    """sim_run -> reason, for folders that must not be written: no trials at all, or (strict)
    any rejection."""
    failed: dict[str, str] = {}
    rejected: dict[str, int] = defaultdict(int)
    for r in rejections:
        if r.sim_run:
            rejected[r.sim_run] += 1
    for f in folders:
        if not trials.get(f.sim_run):
            failed[f.sim_run] = ("not ingested: no readable voltage trace"
                                 + (f" ({f.n_trial_files} trial files left out)"
                                    if f.n_trial_files else ""))
        elif strict and rejected.get(f.sim_run):
            n = rejected[f.sim_run]
            failed[f.sim_run] = (f"not ingested (--strict): {n} rejected "
                                 f"{'file' if n == 1 else 'files'} in this folder")
    return failed


def _record_rejections(spark: SparkSession, db: str, run_id: str,
                       rejections: list[Rejection]) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [(r.path, r.sim_run, r.kind, r.reason, run_id, now) for r in rejections]
    tables.write_rows(spark, db, "ingest_errors", _rows_table("ingest_errors", rows), None)


def _record_failed_folders(spark: SparkSession, db: str, run_id: str,
                           folders: list[SimRunFolder], failed: dict[str, str],
                           strict: bool) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [(f.sim_run, folder_fingerprint(f), strict, failed[f.sim_run], run_id, now)
            for f in folders if f.sim_run in failed]
    tables.write_rows(spark, db, "ingest_failed_folders",
                      _rows_table("ingest_failed_folders", rows), None)


def _update_manifest(opts: IngestOptions, wrote: bool) -> None:
    """Record ``simresult_path`` and the ``filelist`` of the committed folders in the manifest.

    Also after a run that wrote nothing, when the manifest lags behind ``metadata`` (a run
    killed after its last metadata commit).
    """
    meta = tables.read_columns(opts.db_path, "metadata", ["sim_run", "voltage_traces_file_name"])
    if meta is None:
        return
    pairs = meta.group_by(["sim_run", "voltage_traces_file_name"]).aggregate([]).to_pylist()
    filelist = sorted(posixpath.join(r["sim_run"], r["voltage_traces_file_name"])
                      for r in pairs if r["voltage_traces_file_name"])
    manifest = read_manifest(opts.db_path)
    same_root = manifest.get("simresult_path") == opts.simresult_path
    if manifest.get("filelist") == filelist and same_root:
        return
    if not wrote:
        log.info("manifest lagged behind metadata: updated")
    update_manifest(opts.db_path, simresult_path=opts.simresult_path, filelist=filelist)

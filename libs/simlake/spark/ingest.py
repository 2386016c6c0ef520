"""The ingest: a raw simrun tree into the Delta tables of a database (Spark side).

Flow per commit batch of new sim-run folders (``DESIGN.md``, "Data flow"):

1. the driver plans file tasks from the discovery listing, packed in ``sim_trial_index`` order;
2. executors read and decode the files (``mapInArrow``), rejected files go to an accumulator;
3. each table's rows of the batch's folders are replaced in one Delta commit (``replaceWhere``
   on ``sim_run``), so a rerun after a crash replaces whatever the crashed run left;
4. ``metadata`` is written last: it is the completion record. A folder is in the database once
   its metadata rows are committed; readers hide rows of folders that are not (yet) in it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from simlake import schemas
from simlake.discovery import SimRunFolder, SimrunTree, discover
from simlake.ingest_options import IngestOptions
from simlake.ingest_plan import CELLS, DENDRITIC, SYNAPSES, VOLTAGE, FileTask, batches_by_bytes, pack_contiguous
from simlake.layout import table_path
from simlake.manifest import read_manifest, update_manifest
from simlake.spark import executor_tasks, tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_TASK_SCHEMA = pa.schema([
    ("kind", pa.string()), ("sim_run", pa.string()), ("path", pa.string()), ("fmt", pa.string()),
    ("trialnr", pa.int64()), ("trialnrs", pa.list_(pa.int64())), ("label", pa.string()),
])


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


def committed_folders(spark: SparkSession, db_path: str) -> dict[str, str]:
    """sim_run -> folder fingerprint of every folder whose metadata is committed."""
    from delta.tables import DeltaTable

    path = table_path(db_path, "metadata")
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    rows = (spark.read.format("delta").load(path)
            .select("sim_run", "folder_fingerprint").distinct().collect())
    return {r["sim_run"]: r["folder_fingerprint"] or "" for r in rows}


# --------------------------------------------------------------------------- planning


def voltage_tasks(folders: Iterable[SimRunFolder]) -> list[FileTask]:
    """One task per folder voltage file."""
    tasks = []
    for f in folders:
        if f.voltage_file:
            tasks.append(FileTask(VOLTAGE, f.sim_run, f"{f.abspath}/{f.voltage_file}",
                                  f.files[f.voltage_file].size, fmt=f.voltage_format or "csv",
                                  trialnrs=f.trialnrs))
    return tasks


def trial_file_tasks(folders: Iterable[SimRunFolder], trials: dict[str, set[int]],
                     rejections: list[Rejection]) -> tuple[list[FileTask], list[FileTask]]:
    """Synapse and presynaptic-cell tasks for the trials that have a voltage trace."""
    synapse_tasks, cell_tasks = [], []
    for f in folders:
        have = trials.get(f.sim_run)
        for kind, files, out in ((SYNAPSES, f.synapse_files, synapse_tasks),
                                 (CELLS, f.cell_files, cell_tasks)):
            for trialnr, name in sorted(files.items()):
                path = f"{f.abspath}/{name}"
                if have is None:
                    rejections.append(Rejection(path, f.sim_run, kind,
                                                "skipped: the folder has no readable voltage file"))
                elif trialnr not in have:
                    rejections.append(Rejection(path, f.sim_run, kind,
                                                f"no voltage trace for trial {trialnr}"))
                else:
                    out.append(FileTask(kind, f.sim_run, path, f.files[name].size, trialnr=trialnr))
    return synapse_tasks, cell_tasks


def dendritic_tasks(folders: Iterable[SimRunFolder], trials: dict[str, set[int]]) -> list[FileTask]:
    """One task per dendritic recording file of folders with trials."""
    tasks = []
    for f in folders:
        if f.sim_run not in trials:
            continue
        for label, name in sorted(f.dendritic_files.items()):
            tasks.append(FileTask(DENDRITIC, f.sim_run, f"{f.abspath}/{name}", f.files[name].size,
                                  trialnrs=f.trialnrs, label=label))
    return tasks


# --------------------------------------------------------------------------- Spark wiring


def _error_accumulator(spark: SparkSession):
    from simlake.spark.accumulators import ListParam

    return spark.sparkContext.accumulator([], ListParam())


def task_frame(spark: SparkSession, groups: list[list[FileTask]]) -> DataFrame:
    """A DataFrame of file tasks with exactly one Spark partition per group, in order."""
    rows = [[(t.kind, t.sim_run, t.path, t.fmt, t.trialnr,
              list(t.trialnrs) if t.trialnrs is not None else None, t.label) for t in g]
            for g in groups]
    rdd = spark.sparkContext.parallelize(rows, max(1, len(rows))).flatMap(lambda g: g)
    return spark.createDataFrame(rdd, tables.spark_schema(_TASK_SCHEMA))


def decoded_frame(spark: SparkSession, key: str, tasks: list[FileTask], target_bytes: int,
                  errors) -> DataFrame:
    """Decode ``tasks`` on the executors into rows of table ``key``, one partition per group."""
    groups = pack_contiguous(tasks, target_bytes)
    frame = task_frame(spark, groups)
    decoded = frame.mapInArrow(executor_tasks.decode_files(key, errors),
                               tables.spark_schema(schemas.TABLES[key]))
    return decoded.sortWithinPartitions(*_sort_columns(key))


def _sort_columns(key: str) -> list[str]:
    return tables.PARTITION_COLUMNS.get(key, []) + ["sim_trial_index"]


def _batch_rows(spark: SparkSession, db_path: str, key: str, sim_runs: Sequence[str],
                extra: str | None = None) -> DataFrame:
    df = spark.read.format("delta").load(table_path(db_path, key))
    return df.where(tables.replace_predicate(sim_runs, extra))


def _range_layout(df: DataFrame, key: str, rows_per_file: int, n_rows: int) -> DataFrame:
    """Range-partition and sort small derived tables (spike times, metadata) by key."""
    n_files = max(1, -(-n_rows // rows_per_file))
    cols = _sort_columns(key)
    return df.repartitionByRange(n_files, *cols).sortWithinPartitions(*cols)


# --------------------------------------------------------------------------- the run


def ingest(spark: SparkSession, opts: IngestOptions, tree: SimrunTree | None = None) -> IngestSummary:
    """Ingest ``opts.simresult_path`` into the database ``opts.db_path``; returns the summary.

    Only sim-run folders not yet in the database are read (``refresh`` also replaces folders
    whose files changed). Safe to rerun after a crash, and to run concurrently.
    """
    started = time.monotonic()
    run_id = opts.run_id or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    summary = IngestSummary(run_id=run_id, db_path=opts.db_path, simresult_path=opts.simresult_path)
    _check_simresult_path(opts)

    tree = tree or discover(opts.simresult_path)
    summary.folders_found = len(tree.folders)
    summary.skipped_running = list(tree.skipped_running)
    for path, reason in tree.problems:
        summary.rejections.append(Rejection(path, None, "listing", reason))

    committed = committed_folders(spark, opts.db_path)
    if opts.core:
        todo = [f for f in tree.folders if f.sim_run not in committed]
        for f in tree.folders:
            if f.sim_run in committed and committed[f.sim_run] != folder_fingerprint(f):
                summary.folders_changed.append(f.sim_run)
                if opts.refresh:
                    todo.append(f)
                    summary.folders_refreshed.append(f.sim_run)
        summary.folders_already_present = len(tree.folders) - len(todo) + len(summary.folders_refreshed)
        summary.folders_new = [f.sim_run for f in todo if f.sim_run not in committed]
        todo.sort(key=lambda f: f.sim_run + "/")
    else:
        todo = [f for f in tree.folders if f.sim_run in committed]
        summary.folders_already_present = len(todo)
    for f in todo:
        for path, reason in f.problems:
            summary.rejections.append(Rejection(path, f.sim_run, "listing", reason))

    batches = batches_by_bytes(todo, opts.batch_bytes)
    for number, batch in enumerate(batches, 1):
        log.info("batch %d/%d: %d folders, %.1f MB", number, len(batches), len(batch),
                 sum(f.total_bytes for f in batch) / 1e6)
        _ingest_batch(spark, opts, batch, run_id, summary)

    if summary.rejections and todo:  # a run with nothing to do writes nothing, not even errors
        _record_rejections(spark, opts.db_path, run_id, summary.rejections)
    if opts.core and todo:
        _update_manifest(spark, opts)
    summary.seconds = time.monotonic() - started
    return summary


def _check_simresult_path(opts: IngestOptions) -> None:
    known = read_manifest(opts.db_path).get("simresult_path")
    if known and known != opts.simresult_path:
        raise ValueError(f"{opts.db_path}: database holds {known}, not {opts.simresult_path}; "
                         "one database per simresult_path")


def _ingest_batch(spark: SparkSession, opts: IngestOptions, folders: list[SimRunFolder],
                  run_id: str, summary: IngestSummary) -> None:
    errors = _error_accumulator(spark)
    sim_runs = [f.sim_run for f in folders]
    wanted = opts.tables()
    rejections: list[Rejection] = []
    db = opts.db_path

    # 1. voltage traces define the trials of each folder
    if "voltage_traces" in wanted and opts.core:
        tasks = voltage_tasks(folders)
        _count_read(summary, tasks)
        frame = decoded_frame(spark, "voltage_traces", tasks, opts.target_task_bytes, errors)
        _progress("voltage_traces", tasks)
        tables.replace_rows(frame, db, "voltage_traces", sim_runs)
    trials = _trials_of(spark, db, sim_runs)

    # 2. per-trial activation files, dendritic recordings
    if "synapse_activation" in wanted:
        synapse_tasks, cell_tasks = trial_file_tasks(folders, trials, rejections)
        for key, tasks in (("synapse_activation", synapse_tasks), ("cell_activation", cell_tasks)):
            _count_read(summary, tasks)
            _progress(key, tasks)
            frame = decoded_frame(spark, key, tasks, opts.target_task_bytes, errors)
            tables.replace_rows(frame, db, key, sim_runs)
    if "dendritic_recordings" in wanted and (opts.dendritic_voltage_traces or opts.core):
        tasks = dendritic_tasks(folders, trials)
        _count_read(summary, tasks)
        _progress("dendritic_recordings", tasks)
        frame = decoded_frame(spark, "dendritic_recordings", tasks, opts.target_task_bytes, errors)
        tables.replace_rows(frame, db, "dendritic_recordings", sim_runs)

    # 3. spike times, computed on the executors from the stored traces
    n_trials = sum(len(v) for v in trials.values())
    if "spike_times" in wanted:
        _write_spikes(spark, db, "spike_times", "voltage_traces", sim_runs,
                      opts.spike_threshold, n_trials)
    if "dendritic_spike_times" in wanted:
        _write_spikes(spark, db, "dendritic_spike_times", "dendritic_recordings", sim_runs,
                      opts.dendritic_spike_times_threshold, n_trials)

    # 4. parameter files: stored once per content hash by the executors
    param_hashes = None
    if "parameterfiles" in wanted:
        param_hashes = _store_param_files(spark, db, folders, errors)

    rejections.extend(Rejection(*r) for r in sorted(set(map(tuple, errors.value))))
    failed = _failed_folders(folders, trials, rejections, opts.strict)
    if failed and opts.strict:
        for key in wanted:
            tables.delete_rows(spark, db, key, failed)
    good = [f for f in folders if f.sim_run not in set(failed)]
    if param_hashes is not None:
        _write_parameterfiles(spark, db, good, trials, param_hashes, sim_runs)

    # 5. the completion record, last
    if opts.core:
        _write_metadata(spark, db, good, trials, run_id, sim_runs)
        summary.trials += sum(len(trials.get(f.sim_run, ())) for f in good)
    summary.folders_failed.extend(failed)
    summary.rejections.extend(rejections)
    for key in wanted:
        if key != "metadata" or opts.core:
            summary.rows[key] = summary.rows.get(key, 0) + _count_rows(spark, db, key, sim_runs)


def _progress(key: str, tasks: list[FileTask]) -> None:
    log.info("%s: decoding %d files (%.1f MB) on the executors", key, len(tasks),
             sum(t.size for t in tasks) / 1e6)


def _count_read(summary: IngestSummary, tasks: list[FileTask]) -> None:
    summary.files_read += len(tasks)
    summary.bytes_read += sum(t.size for t in tasks)


def _trials_of(spark: SparkSession, db: str, sim_runs: Sequence[str]) -> dict[str, set[int]]:
    """sim_run -> trial numbers present in the stored voltage traces of these folders."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, table_path(db, "voltage_traces")):
        return {}
    rows = _batch_rows(spark, db, "voltage_traces", sim_runs).select("sim_run", "trialnr").collect()
    trials: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        trials[row["sim_run"]].add(int(row["trialnr"]))
    return dict(trials)


def _write_spikes(spark: SparkSession, db: str, key: str, source: str, sim_runs: Sequence[str],
                  threshold: float, n_trials: int) -> None:
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, table_path(db, source)):
        return
    rows = _batch_rows(spark, db, source, sim_runs)
    spikes = rows.mapInArrow(executor_tasks.spike_batches(key, threshold),
                             tables.spark_schema(schemas.TABLES[key]))
    spikes = _range_layout(spikes, key, rows_per_file=200_000, n_rows=n_trials)
    tables.replace_rows(spikes, db, key, sim_runs, extra_predicate=f"threshold = {threshold!r}")


def _store_param_files(spark: SparkSession, db: str, folders: list[SimRunFolder], errors):
    rows = [(f.sim_run,
             f"{f.abspath}/{f.neuron_param}" if f.neuron_param else None,
             f"{f.abspath}/{f.network_param}" if f.network_param else None) for f in folders]
    if not rows:
        return {}
    frame = spark.createDataFrame(rows, "sim_run string, neuron_path string, network_path string")
    frame = frame.repartition(max(1, min(len(rows), spark.sparkContext.defaultParallelism * 2)))
    out_schema = ("sim_run string, path_neuron string, path_network string, "
                  "hash_neuron string, hash_network string")
    stored = frame.mapInPandas(executor_tasks.store_param_batches(db, errors), out_schema).collect()
    return {r["sim_run"]: r.asDict() for r in stored}


def _write_parameterfiles(spark: SparkSession, db: str, folders: list[SimRunFolder],
                          trials: dict[str, set[int]], hashes: dict, sim_runs: Sequence[str]) -> None:
    rows = []
    for f in folders:
        info = hashes.get(f.sim_run, {})
        for trialnr in sorted(trials.get(f.sim_run, ())):
            rows.append((schemas.sim_trial_index(f.sim_run, trialnr), f.sim_run,
                         info.get("path_neuron"), info.get("path_network"),
                         info.get("hash_neuron"), info.get("hash_network")))
    df = spark.createDataFrame(rows, tables.spark_schema(schemas.PARAMETERFILES))
    df = _range_layout(df, "parameterfiles", rows_per_file=500_000, n_rows=len(rows))
    tables.replace_rows(df, db, "parameterfiles", sim_runs)


def _write_metadata(spark: SparkSession, db: str, folders: list[SimRunFolder],
                    trials: dict[str, set[int]], run_id: str, sim_runs: Sequence[str]) -> None:
    rows = []
    for f in folders:
        fingerprint = folder_fingerprint(f)
        for trialnr in sorted(trials.get(f.sim_run, ())):
            rows.append((schemas.sim_trial_index(f.sim_run, trialnr), f.sim_run, trialnr,
                         f.voltage_file, f.synapse_files.get(trialnr), f.cell_files.get(trialnr),
                         run_id, fingerprint))
    df = spark.createDataFrame(rows, tables.spark_schema(schemas.METADATA))
    df = _range_layout(df, "metadata", rows_per_file=500_000, n_rows=len(rows))
    tables.replace_rows(df, db, "metadata", sim_runs)


def _failed_folders(folders: list[SimRunFolder], trials: dict[str, set[int]],
                    rejections: list[Rejection], strict: bool) -> list[str]:
    """Folders that must not be committed: no trials at all, or (strict) any rejection."""
    failed = {f.sim_run for f in folders if not trials.get(f.sim_run)}
    if strict:
        failed |= {r.sim_run for r in rejections if r.sim_run}
        failed |= {f.sim_run for f in folders if f.problems}
    return sorted(failed)


def _count_rows(spark: SparkSession, db: str, key: str, sim_runs: Sequence[str]) -> int:
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, table_path(db, key)):
        return 0
    return _batch_rows(spark, db, key, sim_runs).count()


def _record_rejections(spark: SparkSession, db: str, run_id: str, rejections: list[Rejection]) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [(r.path, r.sim_run, r.kind, r.reason, run_id, now) for r in rejections]
    df = spark.createDataFrame(rows, tables.spark_schema(schemas.INGEST_ERRORS))
    tables.append_rows(df.coalesce(1), db, "ingest_errors")


def _update_manifest(spark: SparkSession, opts: IngestOptions) -> None:
    import posixpath

    meta = spark.read.format("delta").load(table_path(opts.db_path, "metadata"))
    pairs = meta.select("sim_run", "voltage_traces_file_name").distinct().collect()
    filelist = sorted(posixpath.join(r["sim_run"], r["voltage_traces_file_name"])
                      for r in pairs if r["voltage_traces_file_name"])
    update_manifest(opts.db_path, simresult_path=opts.simresult_path, filelist=filelist)

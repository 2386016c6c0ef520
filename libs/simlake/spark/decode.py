"""The decode phase of an ingest batch: raw files into uncommitted data files, on the executors.

Executors read and decode the files and write the rows straight into Parquet data files of
their tables (``simlake.datafiles``: pyarrow, columnar, no Spark row conversion); spike times
are computed from the decoded traces in the same pass. The trials a folder's voltage traces
hold define which of its per-trial files are taken (synapses, presynaptic cells; dendritic
recordings need one trial): all files are decoded in one Spark job on the expectation that each
activation file has its trial in the traces, and the rare folders where that proves wrong are
decoded again once the trials are known (with the folders that share data files with them).
Two jobs in a row would cost a start and the idle cores of the first job's end.

Meanwhile, in driver threads: the tables are created, and the param files of the folders with
a voltage file are stored by a second Spark job, which fills the cores that the decoding leaves
idle at its end. Nothing is committed here; the phase returns a :class:`Decoded` value.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simlake.datafiles import DataFile
from simlake.ingest_options import IngestOptions
from simlake.ingest_plan import (
    CELLS,
    DENDRITIC,
    SYNAPSES,
    FileTask,
    dendritic_tasks,
    pack_contiguous,
    trial_file_tasks,
    voltage_tasks,
)
from simlake.ingest_report import Rejection, deduplicated
from simlake.lake.commit import delete_files
from simlake.layout import table_path
from simlake.spark import executor_tasks, tables
from simlake.spark.executor_tasks import SpikeOutput, TableOutput, WriteGroup
from simlake.spark.paramjob import StoredParams, store_param_files
from simlake.spark.state import trials_of

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from simlake.discovery import SimRunFolder
    from simlake.spark.progress import IngestProgress

log = logging.getLogger(__name__)

#: Derived spike tables: the decoded table they come from, and the option holding the threshold.
SPIKE_TABLES = {"spike_times": ("voltage_traces", "spike_threshold"),
                "dendritic_spike_times": ("dendritic_recordings",
                                          "dendritic_spike_times_threshold")}

DataFiles = dict[str, list[DataFile]]


@dataclass(frozen=True)
class Decoded:
    """The outcome of the decode phase: data files written (per table, uncommitted), the trials
    found in the voltage traces, the rejected files, and the stored param files (None when
    they are not stored yet: strict mode checks them in a scratch folder)."""

    files: DataFiles
    trials: dict[str, set[int]]
    rejections: tuple[Rejection, ...]
    params: StoredParams | None
    files_read: int
    bytes_read: int


# --------------------------------------------------------------------------- tables of a run


def decoded_keys(opts: IngestOptions) -> list[str]:
    """Decoded tables a batch writes besides voltage traces, in commit order."""
    wanted = opts.tables()
    keys = []
    if "synapse_activation" in wanted:
        keys += ["synapse_activation", "cell_activation"]
    if "dendritic_recordings" in wanted and (opts.dendritic_voltage_traces or opts.core):
        keys.append("dendritic_recordings")
    return keys


def output(opts: IngestOptions, key: str) -> TableOutput:
    """Where the executors write table ``key`` (files may land before the table is created:
    they are invisible until committed). Strict mode fails folders for any rejected file after
    their rows were decoded: their rows must be in files of their own, then left out."""
    return tables.table_output(opts.db_path, key, split_folders=opts.strict)


def spike_output(opts: IngestOptions, key: str) -> SpikeOutput | None:
    """Spike times derived from decoded table ``key`` in the same pass, if wanted."""
    wanted = opts.tables()
    for spike_key, (source, option) in SPIKE_TABLES.items():
        if source == key and spike_key in wanted:
            return SpikeOutput(output(opts, spike_key), getattr(opts, option))
    return None


def created_tables(opts: IngestOptions) -> list[str]:
    """Tables a batch commits to whatever it finds (created while it decodes)."""
    keys = (["voltage_traces"] if opts.core else []) + decoded_keys(opts)
    keys += [s.output.table for s in map(lambda k: spike_output(opts, k), keys) if s is not None]
    return keys + [k for k in ("parameterfiles", "metadata") if k in opts.tables()]


def discard(db_path: str, files: DataFiles) -> None:
    """Delete uncommitted data files (Delta never reads them; this only saves the space)."""
    for key, key_files in files.items():
        delete_files(table_path(db_path, key), key_files)


# --------------------------------------------------------------------------- Spark jobs


def write_groups(spark: SparkSession, opts: IngestOptions,
                 tasks_by_key: dict[str, list[FileTask]]) -> list[WriteGroup]:
    """Spark tasks writing the decoded tables ``tasks_by_key``: each table's files packed in key
    order into balanced groups, at least two per executor core over all tables together (in
    proportion to each table's bytes), largest first so that no core idles at the end."""
    cores = spark.sparkContext.defaultParallelism
    total = sum(t.size for tasks in tasks_by_key.values() for t in tasks) or 1
    groups = []
    for key, tasks in tasks_by_key.items():
        share = sum(t.size for t in tasks) / total
        min_groups = max(1, round(2 * cores * share))
        for packed in pack_contiguous(tasks, opts.target_task_bytes, min_groups):
            groups.append(WriteGroup(output(opts, key), tuple(packed), spike_output(opts, key)))
    groups.sort(key=lambda g: -sum(t.size for t in g.tasks))
    return groups


def run_write_groups(spark: SparkSession, groups: list[WriteGroup],
                     progress: IngestProgress | None = None
                     ) -> tuple[list[dict], list[Rejection]]:
    """Decode and write ``groups`` on the executors (one Spark task each); the rows they
    return (files written, trials found: ``executor_tasks.write_groups``) and the files they
    rejected (through an accumulator of this job)."""
    if not groups:
        return [], []
    from simlake.spark.accumulators import ListParam

    errors = spark.sparkContext.accumulator([], ListParam())
    fn = executor_tasks.write_groups(groups, errors)
    if progress is not None:
        fn = progress.counted(spark, fn, groups)
    # One id per partition: the executor writes group ``id``; the groups travel with the
    # function. An RDD job, not a query: no plan to build, and its first task starts ~2 s
    # sooner than a mapInArrow query's on a fresh session (2-core machine).
    ids = spark.sparkContext.parallelize(range(len(groups)), len(groups))
    results = ids.mapPartitions(fn).collect()  # type: ignore[arg-type]  # stubs want Iterable
    return results, deduplicated(errors.value)


def _take_results(files: DataFiles, trials: dict[str, set[int]], results: list[dict],
                  opts: IngestOptions, decoded: Sequence[str]) -> None:
    """Add the executors' results to ``files`` (also derived tables', and an empty list for
    each of ``decoded``) and ``trials`` (from the voltage files)."""
    for key in decoded:
        files.setdefault(key, [])
        spikes = spike_output(opts, key)
        if spikes is not None:
            files.setdefault(spikes.output.table, [])
    for row in results:
        if row["path"] is None:  # the trials found in a group's voltage files
            for sim_run, trialnrs in json.loads(row["trials"]).items():
                trials.setdefault(sim_run, set()).update(trialnrs)
        else:
            files[row["table"]].append(DataFile.from_record(row))


class _EveryTrial:
    """The trials of a folder whose voltage traces are not read yet, as planned: every
    activation file's trial is expected in them (checked once they are read)."""

    def __contains__(self, trialnr: object) -> bool:
        return True

    def __bool__(self) -> bool:
        return True


def _tasks(opts: IngestOptions, key: str, folders: Sequence[SimRunFolder],
           trials: dict[str, Any]) -> tuple[list[FileTask], list[Rejection]]:
    """File tasks of decoded table ``key`` for ``trials``, and rejected trial files."""
    if key == "voltage_traces":
        return voltage_tasks(folders), []
    if key in ("synapse_activation", "cell_activation"):
        kind = SYNAPSES if key == "synapse_activation" else CELLS
        tasks, rejected = trial_file_tasks(folders, trials, kind)
        return tasks, [Rejection(*r) for r in rejected]
    return dendritic_tasks(folders, trials), []


# --------------------------------------------------------------------------- the phase


def decode(spark: SparkSession, opts: IngestOptions, folders: list[SimRunFolder], scratch: str,
           progress: IngestProgress | None = None) -> Decoded:
    """Decode every raw file of the batch ``folders`` into data files of its tables (nothing
    committed). On failure, the data files written so far are deleted."""
    files: DataFiles = {}
    try:
        return _decode(spark, opts, folders, scratch, progress, files)
    except BaseException:
        discard(opts.db_path, files)
        raise


def _decode(spark: SparkSession, opts: IngestOptions, folders: list[SimRunFolder], scratch: str,
            progress: IngestProgress | None, files: DataFiles) -> Decoded:
    wanted = opts.tables()
    listing = [Rejection(path, f.sim_run, "listing", reason)
               for f in folders for path, reason in f.problems]
    planned: dict[str, Any] = (
        # stands in for every trial's set until the traces are read
        {f.sim_run: _EveryTrial() for f in folders if f.voltage_file} if opts.core
        else trials_of(opts.db_path, [f.sim_run for f in folders]))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="simlake-batch") as pool:
        creating = pool.submit(lambda: [tables.ensure_table(spark, opts.db_path, key)
                                        for key in created_tables(opts)])
        with_trials = [f for f in folders if planned.get(f.sim_run)]
        group, submitted = f"simlake-decode-{uuid.uuid4().hex}", threading.Event()
        storing = None
        if "parameterfiles" in wanted:
            # strict: checked in a scratch folder, stored once the folders are known good
            storing = pool.submit(_after_job_of(spark, group, submitted), store_param_files,
                                  spark, scratch if opts.strict else opts.db_path, with_trials,
                                  opts.db_path)
        keys = (["voltage_traces"] if opts.core else []) + decoded_keys(opts)
        tasks: dict[str, list[FileTask]] = {}
        planning_rejections: list[Rejection] = []
        for key in keys:
            tasks[key], rejected = _tasks(opts, key, folders, planned)
            planning_rejections += rejected
        _log_tasks(tasks)
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", group)
        try:
            results, executor_rejections = run_write_groups(
                spark, write_groups(spark, opts, tasks), progress)
        finally:
            spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
            submitted.set()  # also when no job ran (nothing to decode, or a failure)
        trials: dict[str, set[int]] = {} if opts.core else dict(planned)
        _take_results(files, trials, results, opts, keys)
        rejections = listing + planning_rejections + executor_rejections
        if opts.core:
            rejections = _decode_again(spark, opts, folders, files, trials, rejections, progress)
        creating.result()
        params = storing.result() if storing is not None else None
    if params is not None:
        seen = set(rejections)
        rejections += [r for r in params.rejections if r not in seen]
    return Decoded(files, trials, tuple(rejections),
                   None if opts.strict else params,  # strict: the scratch copies are not stored
                   sum(len(t) for t in tasks.values()),
                   sum(t.size for ts in tasks.values() for t in ts))


def _after_job_of(spark: SparkSession, group: str, done: threading.Event,
                  wait: float = 120.0) -> Callable:
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


def _decode_again(spark: SparkSession, opts: IngestOptions, folders: list[SimRunFolder],
                  files: DataFiles, trials: dict[str, set[int]], rejections: list[Rejection],
                  progress: IngestProgress | None) -> list[Rejection]:
    """Once the voltage traces are read: decode again the per-trial files and dendritic
    recordings of the folders planned wrongly (no trials at all, or activation files of trials
    the traces lack), and of the folders sharing a data file with them, for the trials found.
    Their first data files are deleted (from ``files``) and their first rejections of those
    files replaced; returns the rejections."""
    wrong = set()
    for f in folders:
        have = trials.get(f.sim_run)
        if f.voltage_file and (not have or not set(f.synapse_files).union(f.cell_files) <= have):
            wrong.add(f.sim_run)
    if not wrong:
        return rejections
    keys = [k for k in files if k not in ("voltage_traces", "spike_times")]
    again = set(wrong)
    while True:  # data files hold runs of folders: take every folder sharing one
        shared = {s for k in keys for f in files[k] if again & set(f.sim_runs) for s in f.sim_runs}
        if shared <= again:
            break
        again |= shared
    discard(opts.db_path, {k: [d for d in files[k] if again & set(d.sim_runs)] for k in keys})
    for k in keys:
        files[k] = [d for d in files[k] if not again & set(d.sim_runs)]
    kept = [r for r in rejections
            if not (r.sim_run in again and r.kind in {SYNAPSES, CELLS, DENDRITIC})]
    redo = [f for f in folders if f.sim_run in again]
    log.info("voltage traces of %d folders lack trials of their files; decoding %d folders "
             "again", len(wrong), len(redo))
    tasks: dict[str, list[FileTask]] = {}
    for key in decoded_keys(opts):
        tasks[key], rejected = _tasks(opts, key, redo, trials)
        kept += rejected
    results, executor_rejections = run_write_groups(spark, write_groups(spark, opts, tasks),
                                                    progress)
    _take_results(files, trials, results, opts, list(tasks))
    return kept + executor_rejections


def _log_tasks(tasks: dict[str, list[FileTask]]) -> None:
    for key, key_tasks in tasks.items():
        log.info("%s: decoding %d files (%.1f MB) on the executors", key, len(key_tasks),
                 sum(t.size for t in key_tasks) / 1e6)

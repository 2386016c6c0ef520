"""The complete phase of an ingest batch: what is written after the decoded tables are
committed, each table in one replacing (or appending) commit, in this order:

1. spike times not derived while decoding (from the stored rows, e.g. a ``core=False`` run);
2. ``parameterfiles`` (one row per trial: where its param files are stored);
3. the logs: ``ingest_errors`` (one row per rejected file per run) and ``ingest_failed_folders``,
   before the completion record, so that a kill after it reports again rather than never;
4. ``metadata``, last: the **completion record**. A folder is in the database once its
   ``metadata`` rows are committed, and only then.
"""

from __future__ import annotations

import datetime as dt
import logging
import posixpath
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from simlake import schemas
from simlake.ingest_options import IngestOptions
from simlake.ingest_report import Rejection
from simlake.ingest_select import folder_fingerprint
from simlake.layout import table_path
from simlake.manifest import read_manifest, update_manifest
from simlake.spark import executor_tasks, tables
from simlake.spark.delta_commit import Replace

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from simlake.discovery import SimRunFolder

log = logging.getLogger(__name__)

Trials = Mapping[str, Collection[int]]


def rows_table(key: str, rows: list[tuple]) -> pa.Table:
    """Arrow rows of table ``key`` from tuples in schema order, sorted by key."""
    schema = tables.table_schema(key)
    columns: list[Sequence[Any]] = (list(zip(*rows, strict=True)) if rows
                                    else [[] for _ in schema])
    table = pa.table([pa.array(c, f.type) for c, f in zip(columns, schema, strict=True)],
                     schema=schema)
    return table.sort_by("sim_trial_index") if "sim_trial_index" in schema.names else table


def _range_layout(df: DataFrame, key: str, rows_per_file: int, n_rows: int) -> DataFrame:
    """Range-partition and sort rows of a derived table by key (one file per partition)."""
    n_files = max(1, -(-n_rows // rows_per_file))
    cols = tables.PARTITION_COLUMNS.get(key, []) + ["sim_trial_index"]
    if n_files == 1:  # one file: no range-sampling job (and not coalesce(1), which would run
        # the whole upstream computation in a single task)
        return df.repartition(1).sortWithinPartitions(*cols)
    return df.repartitionByRange(n_files, *cols).sortWithinPartitions(*cols)


def write_spikes(spark: SparkSession, db: str, key: str, source_key: str,
                 good_runs: Sequence[str], targets: Sequence[str], threshold: float,
                 n_trials: int) -> int:
    """Spike times of the good folders at ``threshold`` from the stored rows of ``source_key``
    (a run that did not decode them, e.g. ``core=False``); returns the rows written."""
    if not (tables.exists(db, source_key) and good_runs):
        return 0
    rows = (spark.read.format("delta").load(table_path(db, source_key))
            .where(tables.replace_predicate(good_runs)))
    spikes = rows.mapInArrow(executor_tasks.spike_batches(key, threshold),  # type: ignore[arg-type]
                             tables.spark_schema(schemas.TABLES[key]))
    spikes = _range_layout(spikes, key, rows_per_file=200_000, n_rows=n_trials)
    return tables.replace_rows(spikes, db, key, targets, column="threshold", value=threshold)


def write_parameterfiles(spark: SparkSession, db: str, folders: Sequence[SimRunFolder],
                         trials: Trials, stored: Mapping[str, Mapping[str, str | None]],
                         targets: Sequence[str]) -> int:
    """One ``parameterfiles`` row per trial of ``folders``; returns the rows written."""
    rows = []
    for f in folders:
        info = stored.get(f.sim_run, {})
        for trialnr in sorted(trials.get(f.sim_run, ())):
            rows.append((schemas.sim_trial_index(f.sim_run, trialnr), f.sim_run,
                         info.get("path_neuron"), info.get("path_network"),
                         info.get("hash_neuron"), info.get("hash_network")))
    return tables.write_rows(spark, db, "parameterfiles", rows_table("parameterfiles", rows),
                             Replace(list(targets)))


def write_metadata(spark: SparkSession, db: str, folders: Sequence[SimRunFolder], trials: Trials,
                   run_id: str, targets: Sequence[str]) -> int:
    """The completion record of ``folders``: one ``metadata`` row per trial."""
    rows = []
    for f in folders:
        fingerprint = folder_fingerprint(f)
        for trialnr in sorted(trials.get(f.sim_run, ())):
            rows.append((schemas.sim_trial_index(f.sim_run, trialnr), f.sim_run, trialnr,
                         f.voltage_file, f.synapse_files.get(trialnr), f.cell_files.get(trialnr),
                         run_id, fingerprint))
    return tables.write_rows(spark, db, "metadata", rows_table("metadata", rows),
                             Replace(list(targets)))


def record_rejections(spark: SparkSession, db: str, run_id: str,
                      rejections: Sequence[Rejection]) -> None:
    """Append the rejected files to ``ingest_errors``."""
    now = dt.datetime.now(dt.UTC)
    rows = [(r.path, r.sim_run, r.kind, r.reason, run_id, now) for r in rejections]
    tables.write_rows(spark, db, "ingest_errors", rows_table("ingest_errors", rows), None)


def record_failed_folders(spark: SparkSession, db: str, run_id: str,
                          folders: Sequence[SimRunFolder], failed: Mapping[str, str],
                          strict: bool) -> None:
    """Append the failed folders (with their fingerprints) to ``ingest_failed_folders``."""
    now = dt.datetime.now(dt.UTC)
    rows = [(f.sim_run, folder_fingerprint(f), strict, failed[f.sim_run], run_id, now)
            for f in folders if f.sim_run in failed]
    tables.write_rows(spark, db, "ingest_failed_folders",
                      rows_table("ingest_failed_folders", rows), None)


def update_filelist(opts: IngestOptions, wrote: bool) -> None:
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

"""Commit data files written by pyarrow to a Delta table, through delta-spark's transaction.

The executors write Parquet files themselves (``simlake.datafiles``): columnar, with no
Arrow-to-row conversion and no Spark write job. The driver then commits them here with
delta-spark's own ``OptimisticTransaction`` (through py4j), so the Delta log is still written,
checked for conflicts and checkpointed by delta-spark:

- ``add`` actions carry exact statistics of the key columns (computed by the writer);
- a *replacing* commit removes the stored rows of the given sim-run folders (and, optionally,
  of one more column value) in the same commit, like ``replaceWhere``
  (:mod:`simlake.lake.replace`: which files are rewritten, and how);
- the transaction reads the whole table, so any concurrent commit to the table makes ours fail
  with Delta's conflict exception, and the caller's retry (``tables.with_conflict_retry``) runs
  it again on the new version. (Delta checks read predicates on data columns the same way, so
  nothing is lost against ``replaceWhere``.)

The common commit (new folders, nothing stored yet) runs no Spark job: the stored files are
looked up in the log with ``deltalake`` at the transaction's read version, and only when some
may hold target rows does delta-spark scan its snapshot for them.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from simlake.lake.datafile import DataFile
from simlake.lake.replace import Replace as Replace  # re-exported: the ingest's name for it
from simlake.lake.replace import rewrite_without
from simlake.lake.snapshot import open_table
from simlake.schemas import TableSpec
from simlake.spark.sql_text import spark_schema

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def commit_files(spark: SparkSession, table_root: str, spec: TableSpec,
                 files: Sequence[DataFile], replace: Replace | None,
                 data_change: bool = True) -> int:
    """Commit ``files`` to the Delta table of ``spec`` at ``table_root`` in one transaction,
    replacing the rows selected by ``replace`` (None: a plain append). Returns the rows added.

    Raises Delta's conflict exception when another commit got in first (retry the call).
    """
    jvm: Any = spark._jvm  # py4j's view of the JVM (untyped)
    started = time.monotonic()
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, table_root)
    txn = delta_log.startTransaction()
    actions = [f.add_action(data_change) for f in files]
    removals = []
    if replace is not None:
        txn.readWholeTable()
        if _may_hold_rows(table_root, txn.readVersion(), replace):
            removals, rewrites = _removals(spark, txn, table_root, spec, replace)
            actions += [f.add_action(data_change) for f in rewrites]
    action = getattr(getattr(jvm.org.apache.spark.sql.delta.actions, "Action$"), "MODULE$")
    jactions = [action.fromJson(json.dumps(a)) for a in actions] + removals
    operation = _write_operation(jvm, replace, spec.partition_columns)
    version = txn.commit(jvm.PythonUtils.toSeq(jactions), operation)
    log.info("%s: committed %d files as version %d in %.2fs", spec.name, len(files), version,
             time.monotonic() - started)
    return sum(f.num_records or 0 for f in files)


def create_table(spark: SparkSession, table_root: str, schema: pa.Schema,
                 partition_columns: Sequence[str], properties: dict[str, str]) -> bool:
    """Create the Delta table at ``table_root`` (version 0: its schema, partitioning and
    properties) unless it exists; True if this call created it.

    Raises Delta's conflict exception when another writer created it at the same moment
    (a retry then finds it).
    """
    jvm: Any = spark._jvm  # py4j's view of the JVM (untyped)
    delta = jvm.org.apache.spark.sql.delta
    txn = delta.DeltaLog.forTable(spark._jsparkSession, table_root).startTransaction()
    if txn.readVersion() >= 0:
        return False
    action = getattr(getattr(delta.actions, "Action$"), "MODULE$")
    metadata = action.fromJson(json.dumps({"metaData": {
        "id": str(uuid.uuid4()),
        "format": {"provider": "parquet", "options": {}},
        "schemaString": spark_schema(schema).json(),
        "partitionColumns": list(partition_columns),
        "configuration": dict(properties),
        "createdTime": int(time.time() * 1000),
    }}))
    option = jvm.scala.Option
    create = getattr(delta, "DeltaOperations$CreateTable")(metadata, False, False, option.empty())
    txn.commit(jvm.PythonUtils.toSeq([metadata]), create)
    return True


def _write_operation(jvm, replace: Replace | None, partition_columns: Sequence[str]):
    """``DeltaOperations.Write``: what the table history shows for the commit."""
    option = jvm.scala.Option
    mode = jvm.org.apache.spark.sql.SaveMode.valueOf("Overwrite" if replace else "Append")
    partition_by = (option.apply(jvm.PythonUtils.toSeq(list(partition_columns)))
                    if partition_columns else option.empty())
    predicate = option.apply(replace.predicate()) if replace else option.empty()
    write = getattr(jvm.org.apache.spark.sql.delta, "DeltaOperations$Write")
    return write(mode, partition_by, predicate, option.empty())


def _may_hold_rows(table_root: str, version: int, replace: Replace) -> bool:
    """Whether a stored file at ``version`` may hold rows of ``replace`` (by its sim_run
    statistics, read with ``deltalake``: no Spark job for the common commit)."""
    if version < 0:
        return False
    return any(replace.may_hold(f) for f in open_table(table_root, ("sim_run",), version).files)


def _removals(spark: SparkSession, txn, table_root: str, spec: TableSpec, replace: Replace):
    """``remove`` actions of the stored files holding rows of ``replace``, and the files
    rewritten without those rows (for files that also hold other rows)."""
    frame = spark.read.format("delta").load(table_root).where(replace.predicate())
    condition = frame._jdf.queryExecution().analyzed().condition()
    jvm: Any = spark._jvm
    stored = txn.filterFiles(jvm.PythonUtils.toSeq([condition]), False)
    removals = []  # RemoveFile objects
    rewrites: list[DataFile] = []
    it = stored.iterator()
    while it.hasNext():
        add = it.next()
        if add.deletionVector() is not None:
            raise RuntimeError(f"{table_root}: file {add.path()} has a deletion vector; "
                               "simlake writes tables without them")
        f = DataFile(_local_path(table_root, add.path()), add.size(), None,
                     tuple(_scala_map(add.partitionValues()).items()))
        n_hit, kept = rewrite_without(table_root, spec, f, replace)
        if n_hit:
            removals.append(add.remove())
            rewrites += kept
    return removals, rewrites


def _scala_map(jmap) -> dict[str, str]:
    out = {}
    it = jmap.iterator()
    while it.hasNext():
        pair = it.next()
        out[pair._1()] = pair._2()
    return out


def _local_path(table_root: str, log_path: str) -> str:
    parsed = urllib.parse.urlparse(log_path)
    rel = urllib.parse.unquote(parsed.path)
    return rel if os.path.isabs(rel) else os.path.join(table_root, rel)

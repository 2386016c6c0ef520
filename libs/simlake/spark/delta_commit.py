"""Commit data files written by pyarrow to a Delta table, through delta-spark's transaction.

The executors write Parquet files themselves (``simlake.datafiles``): columnar, with no
Arrow-to-row conversion and no Spark write job. The driver then commits them here with
delta-spark's own ``OptimisticTransaction`` (through py4j), so the Delta log is still written,
checked for conflicts and checkpointed by delta-spark:

- ``add`` actions carry exact statistics of the key columns (computed by the writer);
- a *replacing* commit removes the stored rows of the given sim-run folders (and, optionally,
  of one more column value, e.g. a spike threshold) in the same commit, like ``replaceWhere``:
  stored files that hold only such rows are removed, files that mix them with other rows are
  rewritten without them (rare: only after a refresh or a crashed run);
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simlake import datafiles
from simlake.datafiles import DataFile
from simlake.spark.sql_text import replace_predicate, spark_schema

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replace:
    """Which stored rows a commit replaces: those of ``sim_runs`` (and, with ``column``, only
    those whose ``column`` equals ``value``). ``sim_runs`` is kept sorted and unique."""

    sim_runs: Sequence[str]  # kept as a sorted, unique tuple
    column: str | None = None
    value: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sim_runs", tuple(sorted(set(self.sim_runs))))

    def predicate(self) -> str:
        """The SQL predicate (recorded in the commit, used for delta-spark's file scan)."""
        extra = f"{self.column} = {self.value!r}" if self.column else None
        return replace_predicate(self.sim_runs, extra)

    def mask(self, rows: pa.Table) -> pa.ChunkedArray:
        """True for the rows of ``rows`` this replaces."""
        hit = pc.is_in(rows.column("sim_run"), value_set=pa.array(self.sim_runs, pa.string()))
        if self.column:
            hit = pc.and_(hit, pc.fill_null(pc.equal(rows.column(self.column), self.value),
                                            False))
        return hit


def commit_files(spark: SparkSession, table_root: str, key: str, files: Sequence[DataFile],
                 replace: Replace | None, schema: pa.Schema,
                 partition_columns: Sequence[str] = ()) -> int:
    """Commit ``files`` to the Delta table at ``table_root`` in one transaction, replacing the
    rows selected by ``replace`` (None: a plain append). Returns the rows added.

    Raises Delta's conflict exception when another commit got in first (retry the call).
    """
    jvm: Any = spark._jvm  # py4j's view of the JVM (untyped)
    started = time.monotonic()
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, table_root)
    txn = delta_log.startTransaction()
    actions = [f.add_action() for f in files]
    removals = []
    if replace is not None:
        txn.readWholeTable()
        candidates = _candidate_paths(table_root, txn.readVersion(), replace)
        if candidates:
            removals, rewrites = _removals(spark, txn, table_root, key, replace, schema,
                                           partition_columns)
            actions += [f.add_action() for f in rewrites]
    action = getattr(getattr(jvm.org.apache.spark.sql.delta.actions, "Action$"), "MODULE$")
    jactions = [action.fromJson(json.dumps(a)) for a in actions] + removals
    operation = _write_operation(jvm, replace, partition_columns)
    version = txn.commit(jvm.PythonUtils.toSeq(jactions), operation)
    log.info("%s: committed %d files as version %d in %.2fs", key, len(files), version,
             time.monotonic() - started)
    return sum(f.num_records for f in files)


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


def _candidate_paths(table_root: str, version: int, replace: Replace) -> list[str]:
    """Paths of stored files that may hold rows of ``replace`` (by their sim_run statistics;
    files without statistics always may)."""
    from deltalake import DeltaTable

    if version < 0:
        return []
    actions = pa.table(DeltaTable(table_root, version=version).get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return []
    names = set(actions.column_names)
    paths = actions.column("path").to_pylist()
    if "min.sim_run" not in names or "max.sim_run" not in names:
        return paths
    lows = actions.column("min.sim_run").to_pylist()
    highs = actions.column("max.sim_run").to_pylist()
    out = []
    for path, lo, hi in zip(paths, lows, highs, strict=True):
        if lo is None or hi is None or any(lo <= s <= hi for s in replace.sim_runs):
            out.append(path)
    return out


def _removals(spark: SparkSession, txn, table_root: str, key: str, replace: Replace,
              schema: pa.Schema, partition_columns: Sequence[str]):
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
        log_path = add.path()
        local = _local_path(table_root, log_path)
        columns = ["sim_run"] + ([replace.column] if replace.column else [])
        hit = replace.mask(pq.read_table(local, columns=columns))
        n_hit = pc.sum(hit).as_py() or 0
        if n_hit == 0:
            continue
        removals.append(add.remove())
        if n_hit < len(hit):
            kept = pq.read_table(local).filter(pc.invert(hit))
            values = _scala_map(add.partitionValues())
            columns = []
            for fld in schema:  # partition values from the log, columns of older files as null
                if fld.name in partition_columns:
                    raw = pa.array([values.get(fld.name)] * kept.num_rows, pa.string())
                    columns.append(raw.cast(fld.type))
                elif fld.name in kept.column_names:
                    columns.append(kept.column(fld.name).cast(fld.type))
                else:
                    columns.append(pa.nulls(kept.num_rows, fld.type))
            rows = pa.table(columns, schema=schema.with_metadata(None))
            rewrites += datafiles.write_table_files(table_root, key, schema, rows,
                                                    partition_columns)
            log.info("%s: rewrote %s without %d replaced rows", key, log_path, n_hit)
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

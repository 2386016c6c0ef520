"""Delta tables of a database: creation with the layout properties, and safe replacing writes.

Data files are written with pyarrow (on the executors, or on the driver for small tables) and
committed by delta-spark's transaction (``simlake.spark.delta_commit``). Every write is one Delta
commit, retried on Delta's optimistic-concurrency conflicts (the writes are idempotent per
sim-run folder, so a retry is always safe); when the retries run out,
:class:`ConcurrentIngestError` says so in one line. Columns that a stored table lacks (a table
written by an older version) are added before the commit; old rows read them as null.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from simlake import schemas
from simlake.datafiles import RECORD_SCHEMA, DataFile, write_table_files
from simlake.lake import commit as lake
from simlake.layout import table_path
from simlake.spark.delta_commit import Replace, commit_files, create_table
from simlake.spark.executor_tasks import TableOutput, write_frame_batches
from simlake.spark.sql_text import replace_predicate as replace_predicate  # re-exported
from simlake.spark.sql_text import spark_schema
from simlake.spark.sql_text import sql_string_list as sql_string_list  # re-exported

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Tables stored with a coarse Hive partition column (``schemas.PARTITION_COLUMNS``).
PARTITION_COLUMNS: dict[str, list[str]] = {k: list(v)
                                           for k, v in schemas.PARTITION_COLUMNS.items()}


#: Tables of the ingest's own bookkeeping, not database keys (readers need not know them).
#: ``ingest_failed_folders``: one row per folder that a run could not commit, with the folder's
#: fingerprint, so later runs skip it while its files stay unchanged.
INGEST_FAILED_FOLDERS = pa.schema([
    pa.field("sim_run", pa.string(), nullable=False),
    pa.field("folder_fingerprint", pa.string()),
    pa.field("strict", pa.bool_()),
    pa.field("reason", pa.string()),
    pa.field("run_id", pa.string()),
    pa.field("time", pa.timestamp("us", tz="UTC")),
])
INGEST_TABLES: dict[str, pa.Schema] = {"ingest_failed_folders": INGEST_FAILED_FOLDERS}


#: Contracts of the ingest's own tables.
INGEST_SPECS: dict[str, schemas.TableSpec] = {name: schemas.TableSpec(name, schema)
                                              for name, schema in INGEST_TABLES.items()}


def table_spec(key: str) -> schemas.TableSpec:
    """The contract of table ``key`` (a database key of ``schemas.SPECS`` or an ingest
    table)."""
    return schemas.SPECS[key] if key in schemas.SPECS else INGEST_SPECS[key]


def table_schema(key: str) -> pa.Schema:
    """Arrow schema of table ``key`` (its spec's)."""
    return table_spec(key).schema


class ConcurrentIngestError(RuntimeError):
    """Delta commits of another writer kept conflicting with ours until the retries ran out."""


def table_properties(key: str) -> dict[str, str]:
    """Delta table properties of table ``key`` (its spec's; the session sets
    spark.databricks.io.skipping.stringPrefixLength to the same untruncated length)."""
    return table_spec(key).properties

#: Delta's base class of optimistic-concurrency conflicts (ConcurrentAppendException,
#: MetadataChangedException, ...): a rerun of the same idempotent write resolves them.
_CONFLICT_BASE_CLASS = "io.delta.exceptions.DeltaConcurrentModificationException"
#: Error conditions that a retry resolves too: two writers creating one table at once.
_RETRYABLE_CONDITIONS = frozenset({"DELTA_TABLE_ALREADY_EXISTS"})


def is_retryable_conflict(exc: BaseException) -> bool:
    """True for a Delta concurrent-modification conflict that a retry of the write resolves."""
    return conflict_name(exc) is not None


def _java_throwables(exc: BaseException) -> list[Any]:
    """The Java exceptions behind ``exc`` (py4j's ``java_exception``, pyspark's captured
    ``_origin``), each with its causes."""
    out: list[Any] = []
    for err in (exc, exc.__cause__, exc.__context__):
        java = getattr(err, "java_exception", None) or getattr(err, "_origin", None)
        while java is not None and len(out) < 16:
            out.append(java)
            java = java.getCause()
    return out


def _condition(java: Any) -> str | None:
    from py4j.protocol import Py4JError

    try:
        return java.getErrorClass()  # SparkThrowable's error condition
    except Py4JError:  # not a SparkThrowable
        return None


def conflict_name(exc: BaseException) -> str | None:
    """The Delta conflict behind ``exc`` (its exception class, or a retryable error
    condition), or None. Decided by the Java exception's class hierarchy, not its text."""
    for java in _java_throwables(exc):
        cls = java.getClass()
        ancestors = []
        while cls is not None:
            ancestors.append(cls.getName())
            cls = cls.getSuperclass()
        if _CONFLICT_BASE_CLASS in ancestors:
            return java.getClass().getSimpleName()
        condition = _condition(java)
        if condition in _RETRYABLE_CONDITIONS:
            return condition
    return None


def with_conflict_retry(action: Callable[[], T], what: str, attempts: int = 6) -> T:
    """Run an idempotent Delta write, retrying on optimistic-concurrency conflicts.

    Raises :class:`ConcurrentIngestError` (one line, naming ``what``) when the last attempt
    still conflicts; other errors propagate unchanged.
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:  # py4j/Spark wrap Delta's exceptions: matched by Java class
            name = conflict_name(exc)
            if name is None:
                raise
            if attempt == attempts:
                raise ConcurrentIngestError(
                    f"{what}: concurrent Delta commits (another ingest into this database?) "
                    f"conflicted {attempts} times ({name}); nothing committed is lost, "
                    "rerun the ingest to complete it") from exc
            delay = min(10.0, 0.5 * 2**attempt) * (0.5 + random.random())
            log.warning("%s: concurrent Delta commit (%s), retry %d in %.1fs",
                        what, name, attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


class SparkBackend:
    """The commit back-end of the ingest (:func:`simlake.lake.commit.commit`): delta-spark's
    transaction, which serialises concurrent replacing commits; every transaction is retried
    on Delta's optimistic-concurrency conflicts, and columns of the spec that the stored table
    lacks (an older version's table) are added first."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def exists(self, table_root: str) -> bool:
        """Whether a Delta table is at ``table_root`` (read with ``deltalake``: no Spark job)."""
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(table_root)

    def create(self, table_root: str, spec: schemas.TableSpec, files: Sequence[DataFile]
               ) -> None:
        """Create the table of ``spec`` (version 0) unless it exists, then commit ``files``."""
        # another writer creating the same table at once: a retry finds it created
        with_conflict_retry(
            lambda: create_table(self.spark, table_root, spec.schema, spec.partition_columns,
                                 spec.properties),
            f"create {spec.name}")
        if files:
            self.commit(table_root, spec, files, None, (), True, None)

    def commit(self, table_root: str, spec: schemas.TableSpec, files: Sequence[DataFile],
               replace: Replace | None, removes: Sequence[DataFile], data_change: bool,
               read_version: int | None) -> None:
        """One delta-spark transaction (retried on conflicts) adding ``files`` and replacing
        the rows ``replace`` selects. Removing given files and pinning the read version are
        not offered: the ingest's transactions read the whole table at the latest version."""
        if removes or read_version is not None:
            raise ValueError(f"{table_root}: the Spark back-end commits replacements by "
                             "Replace, not given files or versions")
        evolve_schema(self.spark, table_root, spec)
        verb = "write" if replace is not None else "append"
        with_conflict_retry(
            lambda: commit_files(self.spark, table_root, spec, files, replace, data_change),
            f"{verb} {spec.name}")


def ensure_table(spark: SparkSession, db_root: str, key: str) -> str:
    """Create the Delta table of ``key`` (schema, partitioning, properties) if it is absent."""
    path = table_path(db_root, key)
    backend = SparkBackend(spark)
    if not backend.exists(path):
        backend.create(path, table_spec(key), ())
    return path


def exists(db_root: str, key: str) -> bool:
    """Whether table ``key`` of the database ``db_root`` is a Delta table (read with
    ``deltalake``: no Spark job)."""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(table_path(db_root, key))


def read_columns(db_root: str, key: str, columns: Sequence[str],
                 sim_runs: Sequence[str] | None = None) -> pa.Table | None:
    """``columns`` of the stored rows of table ``key`` (only those of ``sim_runs`` if given),
    read on the driver with ``deltalake`` (small bookkeeping reads; no Spark job). None when
    the table does not exist; columns that an older table lacks come back as nulls."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    path = table_path(db_root, key)
    if not DeltaTable.is_deltatable(path):
        return None
    dataset = DeltaTable(path).to_pyarrow_dataset()
    present = [c for c in columns if c in dataset.schema.names]
    where = (pc.field("sim_run").isin(sorted(set(sim_runs))) if sim_runs is not None else None)
    rows = dataset.to_table(columns=present, filter=where)
    schema = table_schema(key)
    return pa.table({c: rows.column(c) if c in present else pa.nulls(rows.num_rows,
                                                                      schema.field(c).type)
                     for c in columns})


def table_output(db_root: str, key: str, split_folders: bool = False) -> TableOutput:
    """Where and how data files of table ``key`` are written (executors or driver)."""
    spec = table_spec(key)
    return TableOutput(key, table_path(db_root, key), spec.schema, spec.partition_columns,
                       split_folders)


def commit(spark: SparkSession, db_root: str, key: str, files: Sequence[DataFile],
           replace: Replace | None) -> int:
    """Commit written data ``files`` to table ``key`` in one Delta commit, replacing the rows
    that ``replace`` selects (None: append); retried on conflicts. Returns the rows added.

    The table's folder holds the files (:func:`ensure_table` creates it first). Columns of
    ``key``'s schema that the stored table lacks (an older version's table) are added first.
    """
    return lake.commit(table_path(db_root, key), table_spec(key), files, replace,
                       SparkBackend(spark))


def replace_rows(df: DataFrame, db_root: str, key: str, sim_runs: Sequence[str],
                 column: str | None = None, value=None) -> int:
    """Atomically replace the rows of ``sim_runs`` (with ``column`` = ``value``, if given) in
    table ``key`` by the rows of ``df`` (one commit; the executors write the data files).

    Idempotent: writing the same folders again gives the same table, whatever a crashed or
    concurrent run left behind for those folders. No ``sim_runs``: nothing is written.
    Returns the number of rows written.
    """
    if not sim_runs:
        return 0
    spark = spark_of(df)
    ensure_table(spark, db_root, key)
    files = write_frame(df, db_root, key)
    return commit(spark, db_root, key, files, Replace(sim_runs, column, value))


def write_frame(df: DataFrame, db_root: str, key: str) -> list[DataFile]:
    """Write the rows of ``df`` as data files of table ``key`` (one or more per partition, in
    partition order) on the executors; nothing is committed."""
    out = table_output(db_root, key)
    ordered = df.select(*out.schema.names)
    rows = ordered.mapInArrow(write_frame_batches(out), spark_schema(RECORD_SCHEMA)).collect()
    return [DataFile.from_record(r.asDict()) for r in rows]


def write_rows(spark: SparkSession, db_root: str, key: str, rows: pa.Table,
               replace: Replace | None) -> int:
    """Write the Arrow ``rows`` (small: metadata, logs) from the driver as one data file of
    table ``key`` and commit it (``replace`` as in :func:`commit`). Returns the rows written."""
    if replace is not None and not replace.sim_runs:
        return 0
    ensure_table(spark, db_root, key)
    out = table_output(db_root, key)
    files = write_table_files(out.root, key, out.schema, rows, out.partition_columns)
    return commit(spark, db_root, key, files, replace)


def delete_rows(spark: SparkSession, db_root: str, key: str, sim_runs: Sequence[str]) -> None:
    """Delete the rows of ``sim_runs`` from table ``key`` if the table exists."""
    if not sim_runs or not exists(db_root, key):
        return
    commit(spark, db_root, key, [], Replace(sim_runs))


def append_rows(df: DataFrame, db_root: str, key: str) -> None:
    """Append ``df`` to table ``key`` (for logs such as ``ingest_errors``)."""
    spark = spark_of(df)
    ensure_table(spark, db_root, key)
    commit(spark, db_root, key, write_frame(df, db_root, key), None)


def missing_columns(path: str, spec: schemas.TableSpec) -> list[str]:
    """Columns of ``spec``'s schema that the stored table at ``path`` lacks."""
    from deltalake import DeltaTable

    stored = set(DeltaTable(path).schema().to_arrow().names)
    return [name for name in spec.schema.names if name not in stored]


def evolve_schema(spark: SparkSession, path: str, spec: schemas.TableSpec) -> None:
    """Add the columns of ``spec``'s schema that the stored table lacks (an older version's
    table); its stored rows read them as null."""
    missing = missing_columns(path, spec)
    if not missing:
        return
    fields = spark_schema(spec.schema)
    columns = ", ".join(f"`{name}` {fields[name].dataType.simpleString()}" for name in missing)
    log.info("%s: adding columns %s", path, ", ".join(missing))
    with_conflict_retry(
        lambda: spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})"),
        f"evolve {spec.name}")


def spark_of(df: DataFrame) -> SparkSession:
    """The session a DataFrame belongs to."""
    return df.sparkSession

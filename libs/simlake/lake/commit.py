"""One call commits data files to a Delta table, through one of two back-ends.

:func:`commit` adds written files (:class:`~simlake.lake.datafile.DataFile`) to a table in one
transaction, removing stored rows a :class:`~simlake.lake.replace.Replace` selects or stored
files given by hand, and creates the table from its :class:`~simlake.schemas.TableSpec` when it
is absent. The back-end decides how the transaction is run:

- :class:`DeltalakeBackend` (here): ``deltalake``'s transaction, no JVM. For the adapter:
  link keys materialised, compaction, new dendritic thresholds, user frames. A concurrent
  commit that conflicts raises ``deltalake``'s ``CommitFailedError``; nothing is retried.
- ``simlake.spark.tables.SparkBackend``: delta-spark's transaction, for the ingest (it
  serialises concurrent replacing commits and retries conflicts).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Protocol

from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from simlake.lake.datafile import DataFile
from simlake.lake.replace import Replace, rewrite_without
from simlake.lake.snapshot import open_table
from simlake.schemas import TableSpec

log = logging.getLogger(__name__)


class CommitBackend(Protocol):
    """How :func:`commit` runs a transaction on a table."""

    def exists(self, table_root: str) -> bool:
        """Whether a Delta table is at ``table_root``."""
        ...

    def create(self, table_root: str, spec: TableSpec, files: Sequence[DataFile]) -> None:
        """Create the table of ``spec`` (schema, partitioning, properties) holding ``files``."""
        ...

    def commit(self, table_root: str, spec: TableSpec, files: Sequence[DataFile],
               replace: Replace | None, removes: Sequence[DataFile], data_change: bool,
               read_version: int | None) -> None:
        """One transaction on an existing table (see :func:`commit`)."""
        ...


def commit(table_root: str, spec: TableSpec, files: Sequence[DataFile],
           replace: Replace | None = None, backend: CommitBackend | None = None, *,
           removes: Sequence[DataFile] = (), data_change: bool = True,
           read_version: int | None = None) -> int:
    """Commit the written ``files`` to the Delta table at ``table_root`` in one transaction;
    returns the rows they add.

    ``replace`` removes the stored rows it selects (files that also hold other rows are
    rewritten without them, in the same commit); ``removes`` names stored files (of a
    snapshot) to remove as they are. ``data_change=False`` marks a rewrite that changes no
    data (compaction). ``read_version``: the version the caller planned against; a commit
    since then that conflicts fails the transaction. An absent table is created from
    ``spec`` with ``files``. ``backend``: :class:`DeltalakeBackend` unless given.
    """
    backend = backend or DeltalakeBackend()
    if not backend.exists(table_root):
        if removes or read_version is not None:
            raise FileNotFoundError(f"{table_root}: no Delta table to remove files from")
        backend.create(table_root, spec, files)
    else:
        backend.commit(table_root, spec, files, replace, removes, data_change, read_version)
    return sum(f.num_records or 0 for f in files)


class DeltalakeBackend:
    """Transactions of ``deltalake`` (delta-rs): no JVM."""

    def exists(self, table_root: str) -> bool:
        """Whether a Delta table is at ``table_root``."""
        return DeltaTable.is_deltatable(table_root)

    def create(self, table_root: str, spec: TableSpec, files: Sequence[DataFile]) -> None:
        """Create the table of ``spec`` holding ``files`` (version 0), then record the
        properties of our own (delta-rs refuses properties it does not know at create time,
        but sets them afterwards)."""
        properties = dict(spec.properties)
        own = {k: properties.pop(k) for k in list(properties) if not k.startswith("delta.")}
        create_table_with_add_actions(
            table_root, DeltaSchema.from_arrow(spec.schema), [_add(f, True) for f in files],
            mode="error", partition_by=list(spec.partition_columns) or None,
            configuration=properties)
        if own:
            DeltaTable(table_root).alter.set_table_properties(own, raise_if_not_exists=False)

    def commit(self, table_root: str, spec: TableSpec, files: Sequence[DataFile],
               replace: Replace | None, removes: Sequence[DataFile], data_change: bool,
               read_version: int | None) -> None:
        """Add ``files`` and remove ``removes`` and the rows ``replace`` selects, in one
        transaction at ``read_version`` (default: the latest)."""
        dt = DeltaTable(table_root, version=read_version)
        removed = list(removes)
        rewritten: list[DataFile] = []
        try:
            if replace is not None:
                stored = open_table(table_root, ("sim_run",), dt.version()).files
                for f in stored:
                    if not replace.may_hold(f):
                        continue
                    n_hit, kept = rewrite_without(table_root, spec, f, replace)
                    if n_hit:
                        removed.append(f)
                        rewritten += kept
            now = int(time.time() * 1000)
            actions: list[AddAction | RemoveAction] = [
                _add(f, data_change) for f in [*files, *rewritten]]
            actions += [RemoveAction(_log_path(table_root, f), data_change, now, f.size,
                                     f.partition_values) for f in removed]
            dt.create_write_transaction(actions, mode="append", schema=dt.schema(),
                                        partition_by=list(spec.partition_columns) or None)
        except BaseException:
            delete_files(table_root, rewritten)
            raise


def _add(f: DataFile, data_change: bool) -> AddAction:
    return AddAction(f.path, f.size, f.partition_values, f.modification_time, data_change,
                     f.stats)


def _log_path(table_root: str, f: DataFile) -> str:
    """The path a remove action names ``f`` by (relative to the table root, ``/``-separated)."""
    return os.path.relpath(os.path.join(table_root, f.path), table_root).replace(os.sep, "/")


def delete_files(table_root: str, files: Sequence[DataFile]) -> None:
    """Delete written files that no commit references (after a failed transaction, a failed
    folder, a stopped run). Delta never reads them, so a file that cannot be deleted (gone
    already, a read-only or full file system) is left: cleanup must not mask the error that
    called it."""
    for f in files:
        try:
            os.unlink(os.path.join(table_root, f.path))
        except OSError as exc:
            log.debug("uncommitted data file %s/%s not deleted: %s", table_root, f.path, exc)

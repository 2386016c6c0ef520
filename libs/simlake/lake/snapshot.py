"""One version of a Delta table, read from its log with ``deltalake`` (no JVM).

:func:`open_table` replays the log and lists the live data files as
:class:`~simlake.lake.datafile.DataFile` values, their statistics parsed once per snapshot
(columnar, from ``deltalake``'s flattened add actions) for the columns asked for.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
from deltalake import DeltaTable

from simlake import schemas
from simlake.lake.datafile import DataFile

KEY = "sim_trial_index"

#: delta-spark's default for ``delta.dataSkippingStringPrefixLength``.
SPARK_DEFAULT_PREFIX_LENGTH = 32
#: Table property a writer sets to record that its string statistics are not truncated below
#: this many characters (delta-spark 4.0 takes the length from the session setting
#: ``spark.databricks.io.skipping.stringPrefixLength`` and records nothing in the table).
PREFIX_LENGTH_PROPERTY = schemas.PREFIX_LENGTH_PROPERTY


class UnsupportedTableError(RuntimeError):
    """A Delta table uses a feature this reader does not implement (e.g. deletion vectors)."""


@dataclass(frozen=True, eq=False)
class TableSnapshot:
    """One version of a Delta table: its schema, properties and live data files."""

    path: str
    version: int
    schema: pa.Schema
    partition_columns: tuple[str, ...]
    configuration: Mapping[str, str | None]
    files: tuple[DataFile, ...]

    @property
    def string_prefix_length(self) -> int:
        """How long string statistics may be before the writer truncated them.

        ``delta.dataSkippingStringPrefixLength`` (newer delta-spark) or the writer's own record
        :data:`PREFIX_LENGTH_PROPERTY`; delta-spark's default (32) when neither is set.
        """
        for name in ("delta.dataSkippingStringPrefixLength", PREFIX_LENGTH_PROPERTY):
            raw = self.configuration.get(name)
            try:
                if raw is not None:
                    return int(raw)
            except ValueError:
                continue
        return SPARK_DEFAULT_PREFIX_LENGTH

    def select(self, **partition_values: str | None) -> tuple[DataFile, ...]:
        """The files whose Hive partition values equal the given ones."""
        return tuple(
            f
            for f in self.files
            if all(f.partition_values.get(k) == v for k, v in partition_values.items())
        )


def is_delta_table(path: str) -> bool:
    """Whether ``path`` holds a Delta table (a ``_delta_log`` folder)."""
    return os.path.isdir(os.path.join(path, "_delta_log"))


def file_path(table_root: str, log_path: str) -> str:
    """Local path of a data file from the (URI-encoded) path of its add action."""
    parsed = urllib.parse.urlparse(log_path)
    if parsed.scheme in ("", "file"):
        rel = urllib.parse.unquote(parsed.path)
        return rel if os.path.isabs(rel) else os.path.join(table_root, rel)
    raise UnsupportedTableError(f"{table_root}: data file on a remote store ({log_path!r})")


def open_table(path: str, stats_columns: Sequence[str] = (KEY,),
               version: int | None = None) -> TableSnapshot:
    """Read the Delta log at ``path`` (at ``version``, default the latest) and list its live
    data files with the statistics of ``stats_columns``."""
    root = os.path.abspath(path)
    dt = DeltaTable(root, version=version)
    config = dict(dt.metadata().configuration)
    mode = config.get("delta.columnMapping.mode")
    if mode not in (None, "none"):
        raise UnsupportedTableError(f"{root}: column mapping mode {mode!r} is not supported")
    protocol = dt.protocol()
    if "deletionVectors" in (protocol.reader_features or []):
        for _batch in dt.deletion_vectors():
            raise UnsupportedTableError(
                f"{root}: files with deletion vectors; rewrite the table without them "
                "(e.g. REORG TABLE ... APPLY (PURGE)) or disable delta.enableDeletionVectors"
            )
    schema = pa.schema(dt.schema().to_arrow())
    partition_columns = tuple(dt.metadata().partition_columns)
    actions = pa.table(dt.get_add_actions(flatten=True))
    wanted = {"path", "size_bytes", "num_records", *(f"partition.{p}" for p in partition_columns),
              *(f"{what}.{c}" for c in stats_columns for what in ("min", "max", "null_count"))}
    names = wanted.intersection(actions.column_names)
    cols = {name: actions.column(name).to_pylist() for name in names}
    files = []
    for i, log_path in enumerate(cols["path"]):
        part = tuple(
            (p, cols[f"partition.{p}"][i] if f"partition.{p}" in names else None)
            for p in partition_columns
        )
        stats = tuple(
            (
                c,
                cols[f"min.{c}"][i] if f"min.{c}" in names else None,
                cols[f"max.{c}"][i] if f"max.{c}" in names else None,
                cols[f"null_count.{c}"][i] if f"null_count.{c}" in names else None,
            )
            for c in stats_columns
        )
        n = cols["num_records"][i] if "num_records" in names else None
        files.append(
            DataFile(file_path(root, log_path), int(cols["size_bytes"][i]), n, part, stats)
        )
    files.sort(key=lambda f: f.path)
    return TableSnapshot(root, dt.version(), schema, partition_columns, config, tuple(files))

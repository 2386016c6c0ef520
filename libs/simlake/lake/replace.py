"""Replacing commits: which stored rows a commit replaces, and the files that hold them.

A replacing commit removes the stored rows of some sim-run folders (and, optionally, of one
more column value, e.g. a spike threshold), like ``replaceWhere``: stored files that hold only
such rows are removed, files that mix them with other rows are rewritten without them (rare:
only after a refresh or a crashed run). Both commit back-ends take their rewrites from
:func:`rewrite_without`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simlake.datafiles import write_table_files
from simlake.lake.datafile import DataFile
from simlake.schemas import TableSpec

log = logging.getLogger(__name__)


def sql_string_list(values: Sequence[str]) -> str:
    """A SQL list literal ``('a', 'b')`` with quotes and backslashes escaped."""
    quoted = []
    for value in values:
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        quoted.append(f"'{escaped}'")
    return "(" + ", ".join(quoted) + ")"


def replace_predicate(sim_runs: Sequence[str], extra: str | None = None) -> str:
    """The ``replaceWhere`` predicate that selects the rows of ``sim_runs`` (and ``extra``)."""
    predicate = f"sim_run IN {sql_string_list(sorted(set(sim_runs)))}"
    return f"({predicate}) AND ({extra})" if extra else predicate


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

    def may_hold(self, f: DataFile) -> bool:
        """Whether ``f`` may hold rows this replaces, by its ``sim_run`` statistics (a file
        without them always may)."""
        lo, hi, _ = f.stat("sim_run")
        return lo is None or hi is None or any(lo <= s <= hi for s in self.sim_runs)


def rewrite_without(table_root: str, spec: TableSpec, f: DataFile, replace: Replace
                    ) -> tuple[int, list[DataFile]]:
    """The rows of ``f`` (a stored file, ``path`` resolvable against ``table_root``) that
    ``replace`` selects, counted, and, when it holds other rows too, new data files holding
    only those (written, not committed). ``(0, [])``: the file stays as it is."""
    local = os.path.join(table_root, f.path)  # an absolute path stays as it is
    columns = ["sim_run"] + ([replace.column] if replace.column else [])
    hit = replace.mask(pq.read_table(local, columns=columns))
    n_hit = pc.sum(hit).as_py() or 0
    if n_hit == 0 or n_hit == len(hit):
        return n_hit, []
    kept = pq.read_table(local).filter(pc.invert(hit))
    values = f.partition_values
    arrays = []
    for fld in spec.schema:  # partition values from the log, columns of older files as null
        if fld.name in spec.partition_columns:
            raw = pa.array([values.get(fld.name)] * kept.num_rows, pa.string())
            arrays.append(raw.cast(fld.type))
        elif fld.name in kept.column_names:
            arrays.append(kept.column(fld.name).cast(fld.type))
        else:
            arrays.append(pa.nulls(kept.num_rows, fld.type))
    rows = pa.table(arrays, schema=spec.schema.with_metadata(None))
    log.info("%s: rewriting %s without %d replaced rows", spec.name, f.path, n_hit)
    return n_hit, write_table_files(table_root, spec.name, spec.schema, rows,
                                    spec.partition_columns, stats_columns=spec.stats_columns)

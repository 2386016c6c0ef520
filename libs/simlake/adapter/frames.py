"""Reshaping narrow Delta rows (Arrow tables) into the ISF frames of ``docs/database.md``.

Each shape is a small picklable object that knows which Delta columns a projection needs and
builds the pandas frame of one partition; its ``meta`` is the same builder applied to an empty
table, so meta and partitions can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

KEY = "sim_trial_index"

SYNAPSE_SCALARS = ("synapse_type", "synapse_ID", "soma_distance", "section_ID",
                   "section_pt_ID", "dendrite_label")
CELL_SCALARS = ("presynaptic_cell_type", "cell_ID")

#: Spec columns of the ``metadata`` frame (``path`` is the Delta column ``sim_run``).
METADATA_COLUMNS = ("sim_trial_index", "path", "trialnr", "voltage_traces_file_name",
                    "synapses_file_name", "cells_file_name")

PARAMETERFILES_COLUMNS = ("path_neuron", "path_network", "hash_neuron", "hash_network")


def _combine(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _index(table: pa.Table) -> pd.Index:
    values = table.column(KEY).to_pandas()
    return pd.Index(values, name=KEY)


def list_lengths(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Length of every list (0 for a null list) as int64."""
    arr = _combine(col)
    return pc.fill_null(pc.list_value_length(arr), 0).to_numpy().astype(np.int64)


def max_list_length(col: pa.ChunkedArray | pa.Array) -> int:
    """The longest list in ``col`` (0 when empty)."""
    if len(col) == 0:
        return 0
    return int(list_lengths(col).max())


def list_matrix(col: pa.ChunkedArray | pa.Array, k: int) -> np.ndarray:
    """A ``(rows, k)`` float64 matrix of the lists' values, NaN-padded on the right."""
    arr = _combine(col)
    n = len(arr)
    out = np.full((n, k), np.nan)
    if n == 0 or k == 0:
        return out
    lengths = list_lengths(arr)
    if lengths.max(initial=0) > k:
        raise ValueError(f"a list holds {lengths.max()} values, more than the table's K={k}")
    values = pc.list_flatten(arr).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    rows = np.repeat(np.arange(n), lengths)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    cols = np.arange(len(values)) - np.repeat(starts, lengths)
    out[rows, cols] = values
    return out


def _select(df: pd.DataFrame, columns: Sequence | None) -> pd.DataFrame:
    return df if columns is None else df[list(columns)]


@dataclass(frozen=True, eq=False)
class VoltageShape:
    """``voltage_traces``-like frames: one row per trial, one float64 column per time point.

    ``axis`` holds the column labels (the exact parsed time stamps). A row whose ``t`` equals
    the axis is copied as is; any other row is placed by its time stamps (NaN elsewhere).
    """

    axis: np.ndarray

    def labels(self) -> pd.Index:
        return pd.Index(self.axis, dtype="float64")

    def delta_columns(self, columns: Sequence | None = None) -> list[str]:
        return [KEY, "t", "vm"]

    def to_pandas(self, table: pa.Table, columns: Sequence | None = None) -> pd.DataFrame:
        axis = self.axis
        m = len(axis)
        n = table.num_rows
        index = _index(table)
        labels = self.labels()
        if n == 0:
            values = np.empty((0, m))
        else:
            vm = _combine(table.column("vm"))
            t = _combine(table.column("t"))
            vlen = list_lengths(vm)
            tlen = list_lengths(t)
            if not np.array_equal(vlen, tlen):
                bad = int(np.flatnonzero(vlen != tlen)[0])
                raise ValueError(f"{index[bad]}: {vlen[bad]} voltages for {tlen[bad]} time points")
            vflat = pc.list_flatten(vm).to_numpy(zero_copy_only=False).astype(np.float64,
                                                                               copy=False)
            tflat = pc.list_flatten(t).to_numpy(zero_copy_only=False).astype(np.float64,
                                                                              copy=False)
            if (vlen == m).all() and np.array_equal(tflat.reshape(n, m), np.broadcast_to(axis,
                                                                                        (n, m))):
                values = vflat.reshape(n, m)
            else:
                values = self._place(index, vlen, tflat, vflat)
        if columns is not None:
            pos = labels.get_indexer(list(columns))
            if (pos < 0).any():
                raise KeyError(f"time points not in the table: {list(columns)!r}")
            return pd.DataFrame(values[:, pos], index=index, columns=labels[pos], copy=False)
        return pd.DataFrame(values, index=index, columns=labels, copy=False)

    def _place(self, index: pd.Index, lengths: np.ndarray, tflat: np.ndarray,
               vflat: np.ndarray) -> np.ndarray:
        axis = self.axis
        m = len(axis)
        pos = np.searchsorted(axis, tflat)
        ok = pos < m
        ok[ok] = axis[pos[ok]] == tflat[ok]
        if not ok.all():
            row = int(np.repeat(np.arange(len(lengths)), lengths)[np.flatnonzero(~ok)[0]])
            raise ValueError(
                f"{index[row]}: time points outside the table's time axis (the axis was "
                "derived from file statistics; report this table)"
            )
        out = np.full((len(lengths), m), np.nan)
        out[np.repeat(np.arange(len(lengths)), lengths), pos] = vflat
        return out

    def meta(self, schema: pa.Schema) -> pd.DataFrame:
        return self.to_pandas(pa.schema([schema.field(c) for c in self.delta_columns()])
                              .empty_table())


@dataclass(frozen=True, eq=False)
class ActivationShape:
    """``synapse_activation``/``cell_activation``: the scalar columns, then ``'0'..'K-1'``
    (string labels) holding the list column's values NaN-padded; index repeats per trial."""

    scalars: tuple[str, ...]
    list_column: str
    k: int

    def labels(self) -> list[str]:
        return list(self.scalars) + [str(i) for i in range(self.k)]

    def delta_columns(self, columns: Sequence | None = None) -> list[str]:
        if columns is None:
            return [KEY, *self.scalars, self.list_column]
        wanted = set(columns)
        cols = [KEY] + [c for c in self.scalars if c in wanted]
        if wanted - set(self.scalars):
            cols.append(self.list_column)
        return cols

    def to_pandas(self, table: pa.Table, columns: Sequence | None = None) -> pd.DataFrame:
        want = self.labels() if columns is None else list(columns)
        scalars = [c for c in self.scalars if c in want]
        times = [c for c in want if c not in self.scalars]
        df = table.select(scalars).to_pandas()
        if times:
            pos = [int(c) for c in times]
            mat = list_matrix(table.column(self.list_column), self.k)[:, pos]
            block = pd.DataFrame(mat, columns=pd.Index(times, dtype="str"), copy=False)
            df = pd.concat([df, block], axis=1)
        df.index = _index(table)
        return df[want] if list(df.columns) != want else df

    def meta(self, schema: pa.Schema) -> pd.DataFrame:
        return self.to_pandas(pa.schema([schema.field(c) for c in self.delta_columns()])
                              .empty_table())


def spike_frame(table: pa.Table, list_column: str = "spike_times") -> pd.DataFrame:
    """``spike_times``-like frame: int column labels ``0..K-1``, float64 NaN-padded."""
    k = max_list_length(table.column(list_column))
    mat = list_matrix(table.column(list_column), k)
    return pd.DataFrame(mat, index=_index(table), columns=pd.RangeIndex(k), copy=False)


def metadata_frame(table: pa.Table) -> pd.DataFrame:
    """The ``metadata`` frame: one row per trial in ``sim_trial_index`` order, with a plain
    integer index as ISF's (ISF code calls ``metadata.reset_index()``)."""
    table = table.sort_by(KEY)
    trialnr = pc.utf8_lpad(pc.cast(table.column("trialnr"), pa.string()), 6, "0")
    out = pa.table(
        {
            "sim_trial_index": table.column(KEY),
            "path": table.column("sim_run"),
            "trialnr": trialnr,
            "voltage_traces_file_name": table.column("voltage_traces_file_name"),
            "synapses_file_name": table.column("synapses_file_name"),
            "cells_file_name": table.column("cells_file_name"),
        }
    )
    return out.to_pandas()

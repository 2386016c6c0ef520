"""Frames as Delta tables: how user keys store pandas/dask frames and read them back.

A frame's index levels become columns and its column labels get Delta-safe physical names;
a :class:`FrameLayout` (kept in the key's entry) records labels with their Python types,
names and dtypes, so reading returns the frame as it was: a dask frame comes back as a dask
frame, one data file per partition, with divisions when the stored one had them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa

from simlake.adapter import deltafiles as df_
from simlake.datafiles import write_plain_file
from simlake.lake.commit import commit
from simlake.lake.datafile import DataFile
from simlake.schemas import TableSpec

log = logging.getLogger(__name__)

_BAD_COLUMN_CHARS = set(" ,;{}()\n\t=")

# ---------------------------------------------------------------------------------------------
# labels <-> JSON


def encode_label(label: Any) -> list:
    """A column/index label as JSON, keeping its Python type."""
    if label is None:
        return ["none"]
    if isinstance(label, bool | np.bool_):
        return ["bool", bool(label)]
    if isinstance(label, int | np.integer):
        return ["int", int(label)]
    if isinstance(label, float | np.floating):
        return ["float", repr(float(label))]
    if isinstance(label, str):
        return ["str", label]
    if isinstance(label, tuple):
        return ["tuple", [encode_label(x) for x in label]]
    raise TypeError(f"cannot store the label {label!r} of type {type(label).__name__}")


def decode_label(enc: list) -> Any:
    kind = enc[0]
    if kind == "none":
        return None
    if kind == "bool":
        return bool(enc[1])
    if kind == "int":
        return int(enc[1])
    if kind == "float":
        return float(enc[1])
    if kind == "str":
        return str(enc[1])
    if kind == "tuple":
        return tuple(decode_label(x) for x in enc[1])
    raise ValueError(f"unknown label encoding {enc!r}")


# ---------------------------------------------------------------------------------------------
# frames <-> Arrow


@dataclass(frozen=True)
class FrameLayout:
    """How a pandas frame maps onto Delta columns (stored in the manifest entry)."""

    index_physical: tuple[str, ...]
    index_names: tuple[Any, ...]
    columns_physical: tuple[str, ...]
    columns: tuple[Any, ...]
    columns_name: Any
    dtypes: tuple[str, ...]
    index_dtypes: tuple[str, ...]
    series: bool
    series_name: Any = None

    def to_json(self) -> dict:
        return {
            "index_physical": list(self.index_physical),
            "index_names": [encode_label(n) for n in self.index_names],
            "columns_physical": list(self.columns_physical),
            "columns": [encode_label(c) for c in self.columns],
            "columns_name": encode_label(self.columns_name),
            "dtypes": list(self.dtypes),
            "index_dtypes": list(self.index_dtypes),
            "series": self.series,
            "series_name": encode_label(self.series_name),
        }

    @classmethod
    def from_json(cls, d: dict) -> FrameLayout:
        return cls(
            tuple(d["index_physical"]),
            tuple(decode_label(n) for n in d["index_names"]),
            tuple(d["columns_physical"]),
            tuple(decode_label(c) for c in d["columns"]),
            decode_label(d["columns_name"]),
            tuple(d["dtypes"]),
            tuple(d["index_dtypes"]),
            bool(d["series"]),
            decode_label(d["series_name"]),
        )


def _valid_name(name: str) -> bool:
    return bool(name) and not (set(name) & _BAD_COLUMN_CHARS) and not name.startswith("__")


def frame_layout(frame: pd.DataFrame, series: bool = False, series_name: Any = None
                 ) -> FrameLayout:
    """Choose Delta column names for the index levels and columns of ``frame``."""
    labels = list(frame.columns)
    as_str = [str(c) for c in labels]
    if all(isinstance(c, str) for c in labels) and len(set(labels)) == len(labels) \
            and all(_valid_name(c) for c in labels):
        physical = as_str
    elif len(set(as_str)) == len(as_str) and all(_valid_name(c) for c in as_str) \
            and not any(isinstance(c, tuple) for c in labels):
        physical = as_str
    else:
        physical = [f"_c{i}" for i in range(len(labels))]
    names = list(frame.index.names)
    index_physical = []
    for i, n in enumerate(names):
        cand = n if isinstance(n, str) and _valid_name(n) else f"__index_level_{i}__"
        if cand in physical or cand in index_physical:
            cand = f"__index_level_{i}__"
        index_physical.append(cand)
    index_dtypes = [str(frame.index.get_level_values(i).dtype) for i in range(len(names))]
    return FrameLayout(tuple(index_physical), tuple(names), tuple(physical), tuple(labels),
                       frame.columns.name, tuple(str(t) for t in frame.dtypes),
                       tuple(index_dtypes), series, series_name)


def _delta_type(typ: pa.DataType) -> pa.DataType:
    """Arrow types Delta can store."""
    if pa.types.is_dictionary(typ):
        return _delta_type(typ.value_type)
    if pa.types.is_timestamp(typ):
        return pa.timestamp("us", tz="UTC" if typ.tz else None)
    if pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        return pa.string()
    if pa.types.is_unsigned_integer(typ):
        return {8: pa.int16(), 16: pa.int32()}.get(typ.bit_width, pa.int64())
    if pa.types.is_float16(typ):
        return pa.float32()
    if pa.types.is_null(typ):
        return pa.string()
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return pa.list_(_delta_type(typ.value_type))
    return typ


def to_arrow(frame: pd.DataFrame, layout: FrameLayout, schema: pa.Schema | None = None
             ) -> pa.Table:
    """``frame`` as an Arrow table with the layout's physical column names."""
    flat = frame.copy(deep=False)
    flat.columns = list(layout.columns_physical)
    flat.index = flat.index.set_names(list(layout.index_physical))
    flat = flat.reset_index()
    if schema is None:
        table = pa.Table.from_pandas(flat, preserve_index=False)
        schema = pa.schema([pa.field(f.name, _delta_type(f.type)) for f in table.schema])
        return table.cast(schema)
    return pa.Table.from_pandas(flat, schema=schema, preserve_index=False)


def from_arrow(table: pa.Table, layout: FrameLayout, columns: Sequence | None = None
               ) -> pd.DataFrame | pd.Series:
    """Rebuild the stored frame (or a projection of its columns) from an Arrow table."""
    labels = list(layout.columns)
    if columns is None:
        pos = list(range(len(labels)))
    else:
        lookup = {repr(encode_label(c)): i for i, c in enumerate(labels)}
        pos = [lookup[repr(encode_label(c))] for c in columns]
    physical = [layout.columns_physical[i] for i in pos]
    df = table.select(list(layout.index_physical) + physical).to_pandas()
    for i in pos:
        name = layout.columns_physical[i]
        want = layout.dtypes[i]
        if str(df[name].dtype) != want:
            try:
                df[name] = df[name].astype(want)
            except (TypeError, ValueError) as err:
                log.warning("column %r: could not restore dtype %s (%s)", labels[i], want, err)
    if layout.index_physical:
        for name, want in zip(layout.index_physical, layout.index_dtypes, strict=True):
            if str(df[name].dtype) != want:
                try:
                    df[name] = df[name].astype(want)
                except (TypeError, ValueError) as err:
                    log.warning("index %r: could not restore dtype %s (%s)", name, want, err)
        df = df.set_index(list(layout.index_physical))
        df.index = df.index.set_names(list(layout.index_names))
    sel = [labels[i] for i in pos]
    if any(isinstance(c, tuple) for c in sel) and sel and all(isinstance(c, tuple) for c in sel):
        cols: pd.Index = pd.MultiIndex.from_tuples(sel)
    else:
        cols = pd.Index(sel, dtype=object) if _mixed(sel) else pd.Index(sel)
    cols.name = layout.columns_name
    df.columns = cols
    if layout.series:
        s = df.iloc[:, 0] if df.shape[1] else pd.Series(index=df.index, dtype=object)
        s.name = layout.series_name
        return s
    return df


def _mixed(labels: list) -> bool:
    return len({type(c) for c in labels}) > 1


# ---------------------------------------------------------------------------------------------
# dask partitions


@dataclass(frozen=True, eq=False)
class UserReadSpec:
    schema: pa.Schema
    layout: FrameLayout


def read_user_partition(f: df_.DataFile, columns: Sequence | None = None, *,
                        spec: UserReadSpec) -> pd.DataFrame | pd.Series:
    """One partition of a stored dask frame (module-level, projectable)."""
    layout = spec.layout
    table = df_.read_file(f, list(spec.schema.names), spec.schema)
    return from_arrow(table, layout, None if layout.series else columns)


def _write_frame_table(dest: str, tables: list[pa.Table], layout: FrameLayout) -> None:
    schema = tables[0].schema
    stats = _stats_columns(layout, schema)
    files = [write_plain_file(dest, "", t, seq=i, stats_columns=stats)
             for i, t in enumerate(tables)]
    commit(dest, _spec(dest, schema, stats), files)


def _stats_columns(layout: FrameLayout, schema: pa.Schema) -> tuple[str, ...]:
    """Columns with statistics: the index levels (readers plan partitions by the first)."""
    return tuple(layout.index_physical) or tuple(schema.names[:32])


def _spec(dest: str, schema: pa.Schema, stats: tuple[str, ...]) -> TableSpec:
    return TableSpec(os.path.basename(dest), schema, (), stats)

def _as_frame(value: pd.DataFrame | pd.Series) -> tuple[pd.DataFrame, bool, Any]:
    if isinstance(value, pd.Series | dd.Series):
        name = value.name
        return value.to_frame(name="value"), True, name
    return value, False, None

def _write_pandas(dest: str, value: pd.DataFrame | pd.Series) -> dict:
    frame, series, name = _as_frame(value)
    layout = frame_layout(frame, series, name)
    _write_frame_table(dest, [to_arrow(frame, layout)], layout)
    return {"kind": "pandas", "layout": layout.to_json()}

def _write_dask_partition(dest: str, seq: int, part: pd.DataFrame, layout: FrameLayout,
                          schema: pa.Schema) -> DataFile:
    return write_plain_file(dest, "", to_arrow(part, layout, schema), seq=seq,
                            stats_columns=_stats_columns(layout, schema))

def _write_dask(dest: str, value: dd.DataFrame | dd.Series) -> dict:
    frame, series, name = _as_frame(value)
    meta = frame._meta
    layout = frame_layout(meta, series, name)
    schema = to_arrow(meta, layout).schema
    tasks = [dask.delayed(_write_dask_partition)(dest, i, part, layout, schema)
             for i, part in enumerate(frame.to_delayed())]
    os.makedirs(dest, exist_ok=True)
    files = list(dask.compute(*tasks))
    commit(dest, _spec(dest, schema, _stats_columns(layout, schema)), files)
    return {"kind": "dask", "layout": layout.to_json(),
            "known_divisions": bool(frame.known_divisions)}

def _dask_frame(snap: df_.TableSnapshot, files: list[df_.DataFile], layout: FrameLayout,
                entry: dict, cache: df_.FileInfoCache) -> dd.DataFrame | dd.Series:
    meta = from_arrow(snap.schema.empty_table(), layout)
    spec = UserReadSpec(snap.schema, layout)
    divisions = None
    if entry.get("known_divisions") and len(layout.index_physical) == 1 and files:
        col = layout.index_physical[0]
        ranges = []
        for f in files:
            lo, hi, nulls = f.stat(col)
            ranges.append(None if f.num_records == 0 else
                          ((lo, hi) if lo is not None and hi is not None and not nulls
                           else df_.file_range(snap, f, col, cache, pattern=None)))
        plan = df_.plan_partitions(files, ranges)
        if not plan.merged and [p.files[0] for p in plan.partitions] == \
                [f for f, r in zip(files, ranges, strict=True) if r is not None]:
            files = [p.files[0] for p in plan.partitions]
            divisions = _division_values(plan.divisions, meta.index.dtype)
    if not files:
        return dd.from_pandas(meta, npartitions=1, sort=False)
    with dask.config.set({"dataframe.convert-string": False}):
        func = read_user_partition
        if layout.series:
            return dd.from_map(_read_user_series, files, divisions=divisions, meta=meta,
                               spec=spec)
        return dd.from_map(func, files, divisions=divisions, meta=meta, spec=spec)

def _read_user_series(f: df_.DataFile, *, spec: UserReadSpec) -> pd.Series:
    return read_user_partition(f, None, spec=spec)

def _division_values(divisions: tuple | None, dtype: Any) -> tuple | None:
    if divisions is None:
        return None
    try:
        return tuple(pd.Index(list(divisions), dtype=dtype))
    except (TypeError, ValueError):
        return None


def write_frame(dest: str, value: Any) -> dict:
    """Write a pandas or dask frame/series as a Delta table at ``dest``; returns its entry."""
    if isinstance(value, dd.DataFrame | dd.Series):
        return _write_dask(dest, value)
    if isinstance(value, pd.DataFrame | pd.Series):
        return _write_pandas(dest, value)
    raise TypeError(f"format 'delta' needs a pandas or dask frame, not {type(value)}")


def read_frame(path: str, entry: dict, cache: df_.FileInfoCache | None = None) -> Any:
    """Read the frame stored at ``path`` with ``entry`` (kind ``pandas`` or ``dask``)."""
    layout = FrameLayout.from_json(entry["layout"])
    snap = df_.open_table(path, layout.index_physical[:1])
    files = sorted(snap.files, key=lambda f: os.path.basename(f.path))
    if entry["kind"] == "pandas":
        tables = [df_.read_file(f, snap.schema.names, snap.schema) for f in files]
        table = pa.concat_tables(tables) if tables else snap.schema.empty_table()
        return from_arrow(table, layout)
    return _dask_frame(snap, files, layout, entry, cache or df_.FileInfoCache())

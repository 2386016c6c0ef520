"""User keys: values an analyst stores in a database with ``db[key] = value``.

Each user key lives in the folder ``<db>/<key>/`` and has an entry in the manifest's
``user_keys`` that says how to read it back:

========== ===================================== =============================================
kind       value                                 on disk
========== ===================================== =============================================
``pandas`` ``pandas.DataFrame`` / ``Series``     a Delta table (index levels as columns)
``dask``   ``dask.dataframe.DataFrame``/Series   a Delta table, one data file per partition
``numpy``  ``numpy.ndarray`` (non-object dtype)  ``data.npy`` (``allow_pickle=False``)
``json``   dict/list/str/int/float/bool/None     ``data.json``
``pickle`` anything else                         ``data.pkl`` (protocol 5; not portable
                                                 across libraries, only used when nothing
                                                 else fits)
``sub_db`` a nested database                     ``<key>/simlake.json`` and its own keys
========== ===================================== =============================================

Frames keep their index (names and dtypes), column labels (str, int, float, bool, None or
tuples of those, with their Python types) and dtypes. Reading returns the stored type: a
dask frame comes back as a dask frame (with divisions when the stored one had them).

A value is written into a hidden temporary folder and renamed into place before the manifest
entry is written, so a reader never sees half a value.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import Schema as DeltaSchema
from deltalake.transaction import create_table_with_add_actions

from simlake.adapter import deltafiles as df_
from simlake.adapter.deltawrite import write_data_file
from simlake.layout import MANIFEST_NAME
from simlake.manifest import read_manifest, update_manifest, write_manifest

log = logging.getLogger(__name__)

KINDS = ("pandas", "dask", "numpy", "json", "pickle", "sub_db")
FORMATS = ("delta", "npy", "json", "pickle")

_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_BAD_COLUMN_CHARS = set(" ,;{}()\n\t=")


def check_key_name(key: Any) -> str:
    """A user key must be a plain name usable as a folder name."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key) or key == MANIFEST_NAME:
        raise KeyError(f"invalid user key {key!r}: use letters, digits, '_', '.', '-' "
                       "(not starting with '.', '_' or '-')")
    return key


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


# ---------------------------------------------------------------------------------------------
# store / load / delete


def _is_plain_json(obj: Any) -> bool:
    if obj is None or type(obj) in (str, int, bool):
        return True
    if type(obj) is float:
        return math.isfinite(obj)
    if type(obj) is list:
        return all(_is_plain_json(x) for x in obj)
    if type(obj) is dict:
        return all(type(k) is str and _is_plain_json(v) for k, v in obj.items())
    return False


def choose_format(value: Any) -> str:
    """The storage format a value gets by default."""
    if isinstance(value, pd.DataFrame | pd.Series | dd.DataFrame | dd.Series):
        return "delta"
    if isinstance(value, np.ndarray) and value.dtype != object:
        return "npy"
    if _is_plain_json(value):
        return "json"
    return "pickle"


def _write_frame_table(dest: str, tables: list[pa.Table], layout: FrameLayout) -> None:
    stats = list(layout.index_physical) or None
    schema = tables[0].schema
    actions = [
        write_data_file(dest, "", t, seq=i, stats_cols=stats or list(schema.names)[:32])
        for i, t in enumerate(tables)
    ]
    config = {"delta.dataSkippingStatsColumns": ",".join(stats)} if stats else {}
    create_table_with_add_actions(dest, DeltaSchema.from_arrow(schema), actions, mode="error",
                                  configuration=config)


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
                          schema: pa.Schema) -> Any:
    stats = list(layout.index_physical) or list(schema.names)[:32]
    return write_data_file(dest, "", to_arrow(part, layout, schema), seq=seq, stats_cols=stats)


def _write_dask(dest: str, value: dd.DataFrame | dd.Series) -> dict:
    frame, series, name = _as_frame(value)
    meta = frame._meta
    layout = frame_layout(meta, series, name)
    schema = to_arrow(meta, layout).schema
    tasks = [dask.delayed(_write_dask_partition)(dest, i, part, layout, schema)
             for i, part in enumerate(frame.to_delayed())]
    os.makedirs(dest, exist_ok=True)
    actions = list(dask.compute(*tasks))
    stats = list(layout.index_physical)
    config = {"delta.dataSkippingStatsColumns": ",".join(stats)} if stats else {}
    create_table_with_add_actions(dest, DeltaSchema.from_arrow(schema), actions, mode="error",
                                  configuration=config)
    return {"kind": "dask", "layout": layout.to_json(),
            "known_divisions": bool(frame.known_divisions)}


def write_value(dest: str, value: Any, fmt: str | None = None) -> dict:
    """Write ``value`` into the (new) folder ``dest``; returns its manifest entry."""
    fmt = fmt or choose_format(value)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")
    if fmt == "delta":
        if isinstance(value, dd.DataFrame | dd.Series):
            return _write_dask(dest, value)
        if isinstance(value, pd.DataFrame | pd.Series):
            return _write_pandas(dest, value)
        raise TypeError(f"format 'delta' needs a pandas or dask frame, not {type(value)}")
    os.makedirs(dest, exist_ok=True)
    if fmt == "npy":
        arr = np.asarray(value)
        np.save(os.path.join(dest, "data.npy"), arr, allow_pickle=False)
        return {"kind": "numpy"}
    if fmt == "json":
        if not _is_plain_json(value):
            raise TypeError("format 'json' needs dict/list/str/int/finite float/bool/None")
        with open(os.path.join(dest, "data.json"), "w", encoding="utf-8") as fh:
            json.dump(value, fh, allow_nan=False)
        return {"kind": "json"}
    with open(os.path.join(dest, "data.pkl"), "wb") as fh:
        pickle.dump(value, fh, protocol=5)
    return {"kind": "pickle"}


def read_value(path: str, entry: dict, cache: df_.FileInfoCache | None = None) -> Any:
    """Read a user key stored in the folder ``path`` with manifest ``entry``."""
    kind = entry["kind"]
    if kind == "numpy":
        return np.load(os.path.join(path, "data.npy"), allow_pickle=False)
    if kind == "json":
        with open(os.path.join(path, "data.json"), encoding="utf-8") as fh:
            return json.load(fh)
    if kind == "pickle":
        with open(os.path.join(path, "data.pkl"), "rb") as fh:
            return pickle.load(fh)
    layout = FrameLayout.from_json(entry["layout"])
    snap = df_.open_table(path, layout.index_physical[:1])
    files = sorted(snap.files, key=lambda f: os.path.basename(f.path))
    if kind == "pandas":
        tables = [df_.read_file(f, snap.schema.names, snap.schema) for f in files]
        table = pa.concat_tables(tables) if tables else snap.schema.empty_table()
        return from_arrow(table, layout)
    if kind == "dask":
        return _dask_frame(snap, files, layout, entry, cache or df_.FileInfoCache())
    raise ValueError(f"{path}: unknown user key kind {kind!r}")


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


# ---------------------------------------------------------------------------------------------
# placing values in a database folder


def user_entries(root: str) -> dict[str, dict]:
    return dict(read_manifest(root).get("user_keys") or {})


def store(root: str, key: str, value: Any, fmt: str | None = None) -> dict:
    """Store ``value`` as the user key ``key`` of the database at ``root`` (replacing it)."""
    check_key_name(key)
    entries = user_entries(root)
    final = os.path.join(root, key)
    if os.path.exists(final) and key not in entries:
        raise KeyError(f"{final} exists and is not a user key; refusing to replace it")
    tmp = os.path.join(root, f".tmp-{key}-{uuid.uuid4().hex}")
    try:
        entry = write_value(tmp, value, fmt)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    trash = None
    if os.path.exists(final):
        trash = os.path.join(root, f".trash-{key}-{uuid.uuid4().hex}")
        os.replace(final, trash)
    os.replace(tmp, final)
    _set_entry(root, key, entry)
    if trash:
        shutil.rmtree(trash, ignore_errors=True)
    return entry


def remove(root: str, key: str) -> None:
    """Delete the user key ``key`` (manifest entry first, then its folder)."""
    entries = user_entries(root)
    if key not in entries:
        raise KeyError(f"{key!r} is not a user key of {root}")
    _set_entry(root, key, None)
    final = os.path.join(root, key)
    if os.path.exists(final):
        trash = os.path.join(root, f".trash-{key}-{uuid.uuid4().hex}")
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)


def create_sub_db(root: str, key: str) -> str:
    """Create the folder of a nested database and register it; returns its path."""
    check_key_name(key)
    entries = user_entries(root)
    path = os.path.join(root, key)
    if key in entries or os.path.exists(path):
        raise KeyError(f"{key!r} already exists in {root}")
    os.makedirs(path)
    write_manifest(path, read_manifest(path))
    _set_entry(root, key, {"kind": "sub_db"})
    return path


def _set_entry(root: str, key: str, entry: dict | None) -> None:
    entries = user_entries(root)
    if entry is None:
        entries.pop(key, None)
    else:
        entries[key] = entry
    update_manifest(root, user_keys=entries)

"""A dask DataFrame over a table's partitions whose ``loc`` reads only the row groups that can
hold the keys asked for.

dask selects the partition of a key from the divisions, but then runs the partition's whole
read and filters it: one trial would cost its whole data file. :class:`TrialFrame` is a plain
``dd.DataFrame`` (same expression, index, columns, dtypes and divisions) whose ``loc`` first
narrows every partition to the row groups whose footer statistics admit a key, and then lets
dask's own ``loc`` run on that narrowed frame, so results (and errors for absent keys) are
exactly dask's. Keys it does not understand (boolean masks, dask objects, callables, ...) go
to dask's ``loc`` on the full frame.

Columns selected by label keep this: ``frame[cols]`` and ``frame[col]`` are a
:class:`TrialFrame`/:class:`TrialSeries` of the same parts, and ``frame.loc[rows, cols]`` and
``frame.loc[rows][cols]`` select the columns first, so the reads get both the row groups and
the columns (dask's ``loc`` hands neither a later projection nor its own column part down to
the reads).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.dataframe.dask_expr._collection import new_collection
from dask.dataframe.dask_expr.io.io import FromMapProjectable

from simlake.adapter import rowgroups
from simlake.adapter.deltafiles import KEY, FileInfoCache, Partition


@dataclass(frozen=True, eq=False)
class FrameParts:
    """How a frame was built: ``dd.from_map(read, partitions, divisions=..., meta=...,
    label=..., spec=spec)``."""

    read: Callable[..., pd.DataFrame]
    partitions: tuple[Partition, ...]
    divisions: tuple[Any, ...] | None
    meta: pd.DataFrame
    label: str
    spec: Any

    def frame(self, partitions: tuple[Partition, ...] | None = None, columns: Any = None
              ) -> dd.DataFrame | dd.Series:
        """The plain dask frame of these parts (``partitions`` in place of the own ones; only
        ``columns``, a list, or one label for a series): what ``dd.from_map`` builds (and dask
        makes of a projection of it), without its copy of the meta."""
        one = columns is not None and not isinstance(columns, list)
        expr = _FromMapKnownMeta(self.read, [list(partitions or self.partitions)],
                                 [columns] if one else columns, [], {"spec": self.spec}, False,
                                 self.meta, False, self.divisions, f"read-{self.label}", None,
                                 one)
        return new_collection(expr)


class _FromMapKnownMeta(FromMapProjectable):
    """``dd.from_map``'s expression (a ``columns=`` keyword pushes projections down), taking
    the meta as given: dask copies it column by column for every new expression (0.3 s for
    a frame of 10,000 columns, on every ``db[key]`` and every ``loc``). The meta is built for
    this frame alone and never changed."""

    @functools.cached_property
    def frame_meta(self) -> pd.DataFrame:
        meta = self.operand("user_meta")
        if self.columns_operand is not None:
            return meta[self.columns_operand]
        return meta


class _RowGroupLoc:
    """What :class:`TrialFrame` and :class:`TrialSeries` share: the parts they were built from,
    the columns they select (``None``: all; a list; or one label, for a series), and a ``loc``
    that narrows every partition to the row groups that can hold the keys."""

    _parts: FrameParts
    _cache: FileInfoCache
    _columns: Any

    def _bind(self, parts: FrameParts, cache: FileInfoCache | None, columns: Any) -> None:
        # not through dask's __setattr__, which looks the name up among 10^4 column labels
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_cache", cache if cache is not None else FileInfoCache())
        object.__setattr__(self, "_columns", columns)

    @property
    def loc(self) -> _TrialLoc:
        """Label-based row (and column) selection, as dask's, reading only the row groups
        that can hold the labels (and only the columns selected)."""
        return _TrialLoc(self)

    def narrowed(self, rows: Any) -> dd.DataFrame | dd.Series | None:
        """This frame with every partition reading only the row groups that may hold
        ``rows`` (a key, a list of keys or a slice); ``None`` for other selections."""
        wanted = _selection(rows)
        if wanted is None:
            return None
        parts = self._parts
        return parts.frame(tuple(self._narrow(p, wanted) for p in parts.partitions),
                           self._columns)

    def _narrow(self, p: Partition, wanted: tuple) -> Partition:
        kind, a, b = wanted
        if kind == "keys":
            i = bisect.bisect_left(a, p.lo)
            touched = i < len(a) and a[i] <= p.hi
        else:
            touched = (a is None or p.hi >= a) and (b is None or p.lo <= b)
            if touched and (a is None or p.lo >= a) and (b is None or p.hi <= b):
                return p  # wholly inside the slice: every row group is wanted
        if not touched:
            return replace(p, row_groups=((),) * len(p.files))
        groups = []
        for f in p.files:
            ranges = rowgroups.row_group_ranges(f, KEY, self._cache)
            groups.append(rowgroups.holding(ranges, a) if kind == "keys"
                          else rowgroups.overlapping(ranges, a, b))
        return replace(p, row_groups=tuple(groups))


class TrialFrame(_RowGroupLoc, dd.DataFrame):
    """A ``dd.DataFrame`` whose ``loc`` reads only the row groups that can hold the keys; its
    columns selected by label (``frame[cols]``, ``frame[col]``) keep that ``loc``, which then
    reads only those columns."""

    def __init__(self, parts: FrameParts, cache: FileInfoCache | None = None,
                 columns: list | None = None) -> None:
        dd.DataFrame.__init__(self, parts.frame(None, columns).expr)
        self._bind(parts, cache, columns)

    def __reduce__(self) -> tuple:
        return (TrialFrame, (self._parts, None, self._columns))  # the cache is rebuilt

    def __getitem__(self, key: Any) -> Any:
        if _column_labels(key, self._meta.columns):
            if isinstance(key, list):
                return TrialFrame(self._parts, self._cache, key)
            return TrialSeries(self._parts, self._cache, key)
        return super().__getitem__(key)


class TrialSeries(_RowGroupLoc, dd.Series):
    """One column of a :class:`TrialFrame`, with its ``loc``."""

    def __init__(self, parts: FrameParts, cache: FileInfoCache | None, column: Any) -> None:
        dd.Series.__init__(self, parts.frame(None, column).expr)
        self._bind(parts, cache, column)

    def __reduce__(self) -> tuple:
        return (TrialSeries, (self._parts, None, self._columns))


class _Located(dd.DataFrame):
    """``source.loc[rows]``, whose columns selected by label are selected before the ``loc``:
    dask's ``loc`` does not hand a later column selection down to the reads."""

    def __init__(self, located: dd.DataFrame, source: TrialFrame, rows: Any) -> None:
        dd.DataFrame.__init__(self, located.expr)
        object.__setattr__(self, "_source", source)
        object.__setattr__(self, "_rows", rows)

    def __reduce__(self) -> tuple:
        return (new_collection, (self.expr,))

    def __getitem__(self, key: Any) -> Any:
        if _column_labels(key, self._meta.columns):
            return self._source[key].loc[self._rows]
        return super().__getitem__(key)


class _TrialLoc:
    """``loc`` of a :class:`TrialFrame` or :class:`TrialSeries`: the columns selected first,
    then narrowed by the row part of the key, then dask's ``loc``."""

    def __init__(self, frame: _RowGroupLoc) -> None:
        self._frame = frame

    def __getitem__(self, key: Any) -> Any:
        frame = self._frame
        if isinstance(frame, TrialFrame) and isinstance(key, tuple) and len(key) == 2:
            rows, columns = key
            # the labels as dask's loc takes them (absent ones raise its KeyError)
            selected = frame._meta.loc[:, columns]
            labels = (list(selected.columns) if isinstance(selected, pd.DataFrame)
                      else columns)
            if _column_labels(labels, frame._meta.columns):
                return frame[labels].loc[rows]
        rows = key[0] if isinstance(key, tuple) and key else key
        narrowed = frame.narrowed(rows)
        if narrowed is None:
            return new_collection(frame.expr).loc[key]  # type: ignore[attr-defined]
        located = narrowed.loc[key]
        if isinstance(frame, TrialFrame) and isinstance(located, dd.DataFrame) \
                and not isinstance(key, tuple):
            return _Located(located, frame, rows)
        return located


def _column_labels(key: Any, columns: pd.Index) -> bool:
    """Whether ``frame[key]`` selects columns by label: one label of ``columns``, or a
    non-empty list of them without repeats."""
    if isinstance(key, list):
        return bool(key) and len(set(key)) == len(key) and all(
            _is_label(k) and k in columns for k in key)
    return _is_label(key) and key in columns


def _is_label(key: Any) -> bool:
    return isinstance(key, (str, int, float, np.integer, np.floating)) and \
        not isinstance(key, bool)


def _selection(rows: Any) -> tuple | None:
    """``("keys", sorted keys, None)`` or ``("slice", start, stop)`` for string labels;
    ``None`` for anything else."""
    if isinstance(rows, str):
        return ("keys", [str(rows)], None)
    if isinstance(rows, slice):
        if rows.step not in (None, 1):
            return None
        if not all(v is None or isinstance(v, str) for v in (rows.start, rows.stop)):
            return None
        return ("slice", rows.start, rows.stop)
    if isinstance(rows, (list, np.ndarray, pd.Index, pd.Series)):
        values = list(rows)
        if not values or not all(isinstance(v, str) for v in values):
            return None
        return ("keys", sorted({str(v) for v in values}), None)
    return None

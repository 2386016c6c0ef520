"""A dask DataFrame over a table's partitions whose ``loc`` reads only the row groups that can
hold the keys asked for.

dask selects the partition of a key from the divisions, but then runs the partition's whole
read and filters it: one trial would cost its whole data file. :class:`TrialFrame` is a plain
``dd.DataFrame`` (same expression, index, columns, dtypes and divisions) whose ``loc`` first
narrows every partition to the row groups whose footer statistics admit a key, and then lets
dask's own ``loc`` run on that narrowed frame, so results (and errors for absent keys) are
exactly dask's. Keys it does not understand (boolean masks, dask objects, callables, ...) go
to dask's ``loc`` on the full frame.
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

    def frame(self, partitions: tuple[Partition, ...] | None = None) -> dd.DataFrame:
        """The plain dask frame of these parts (``partitions`` in place of the own ones):
        what ``dd.from_map`` builds, without its copy of the meta."""
        expr = _FromMapKnownMeta(self.read, [list(partitions or self.partitions)], None, [],
                                 {"spec": self.spec}, False, self.meta, False, self.divisions,
                                 f"read-{self.label}")
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


class TrialFrame(dd.DataFrame):
    """A ``dd.DataFrame`` whose ``loc`` reads only the row groups that can hold the keys."""

    def __init__(self, parts: FrameParts, cache: FileInfoCache | None = None) -> None:
        super().__init__(parts.frame().expr)
        # not through dask's __setattr__, which looks the name up among 10^4 column labels
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_cache", cache if cache is not None else FileInfoCache())

    def __reduce__(self) -> tuple:
        return (TrialFrame, (self._parts,))  # the cache is rebuilt, not pickled

    @property
    def loc(self) -> _TrialLoc:
        """Label-based row (and column) selection, as dask's, reading only the row groups
        that can hold the labels."""
        return _TrialLoc(self)

    def narrowed(self, rows: Any) -> dd.DataFrame | None:
        """This frame with every partition reading only the row groups that may hold
        ``rows`` (a key, a list of keys or a slice); ``None`` for other selections."""
        wanted = _selection(rows)
        if wanted is None:
            return None
        parts = self._parts
        return parts.frame(tuple(self._narrow(p, wanted) for p in parts.partitions))

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


class _TrialLoc:
    """``TrialFrame.loc``: narrow by the row part of the key, then dask's ``loc``."""

    def __init__(self, frame: TrialFrame) -> None:
        self._frame = frame

    def __getitem__(self, key: Any) -> Any:
        rows = key[0] if isinstance(key, tuple) and key else key
        narrowed = self._frame.narrowed(rows)
        if narrowed is None:
            narrowed = dd.DataFrame(self._frame.expr)
        return narrowed.loc[key]


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

"""Which row groups of a data file can hold given keys, from its Parquet footer.

A row group's min/max statistics on the key column are bounds of the keys it holds. A row
group without usable statistics may hold any key and is always kept: files written before
row groups followed trials (one row group each) and files of other writers stay readable,
only slower.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import Any

import pyarrow.parquet as pq

from simlake.adapter.deltafiles import (
    STI_PATTERN,
    DataFile,
    FileInfoCache,
    exact_footer_stat,
    exact_writer,
    open_input,
)

Range = tuple[Any, Any] | None


def footer_ranges(path: str, column: str, pattern: re.Pattern[str] | None = STI_PATTERN
                  ) -> tuple[Range, ...]:
    """``(min, max)`` of ``column`` in every row group of the file at ``path``; ``None`` for a
    row group whose statistics are missing or not provably valid bounds."""
    with open_input(path) as src:
        md = pq.ParquetFile(src).metadata
    if md.num_row_groups == 0:
        return ()
    leaf = next((j for j in range(md.num_columns)
                 if md.row_group(0).column(j).path_in_schema == column), None)
    if leaf is None:
        return (None,) * md.num_row_groups
    exact = exact_writer(md)
    out: list[Range] = []
    for g in range(md.num_row_groups):
        st = md.row_group(g).column(leaf).statistics
        if st is None or not st.has_min_max or not all(
                exact_footer_stat(v, exact, pattern) for v in (st.min, st.max)):
            out.append(None)
        else:
            out.append((st.min, st.max))
    return tuple(out)


def row_group_ranges(f: DataFile, column: str, cache: FileInfoCache) -> tuple[Range, ...]:
    """:func:`footer_ranges` of a data file, cached (files are immutable)."""
    return cache.get(f.path, ("row_group_ranges", column),
                     lambda: footer_ranges(f.path, column))


def holding(ranges: Sequence[Range], keys: Sequence[Any]) -> tuple[int, ...]:
    """Row groups that may hold one of ``keys`` (sorted)."""
    out = []
    for g, r in enumerate(ranges):
        if r is None:
            out.append(g)
            continue
        i = bisect.bisect_left(keys, r[0])
        if i < len(keys) and keys[i] <= r[1]:
            out.append(g)
    return tuple(out)


def overlapping(ranges: Sequence[Range], start: Any, stop: Any) -> tuple[int, ...]:
    """Row groups that may hold a key in ``[start, stop]`` (``None``: unbounded)."""
    return tuple(g for g, r in enumerate(ranges)
                 if r is None or ((start is None or r[1] >= start)
                                  and (stop is None or r[0] <= stop)))

"""The columns of a frame that its files decide: the time axis of a voltage table and ``K``,
the longest activation list of an activation table, learnt from the Parquet footers the
ingest's writer leaves (a scan only where a footer does not tell), cached per file."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simlake.adapter import deltafiles as df_
from simlake.adapter.deltafiles import KEY, DataFile, FileInfoCache, RowFilter, TableSnapshot
from simlake.datafiles import LIST_LENGTHS_KEY

log = logging.getLogger(__name__)


def time_axis(snap: TableSnapshot, files: Sequence[DataFile], cache: FileInfoCache
              ) -> np.ndarray:
    """The time axis (column labels) of a voltage table: the ``t`` of its first row when
    every file's footer statistics agree with it, else the union of all distinct axes."""
    files = [f for f in files if f.num_records != 0]
    if not files:
        return np.empty(0)
    ranges = df_.file_ranges(snap, files, KEY, cache)
    ordered = [f for r, f in sorted(((r, f) for f, r in zip(files, ranges, strict=True)
                                     if r is not None), key=lambda x: x[0])]
    if not ordered:
        return np.empty(0)
    first = cache.get(ordered[0].path, "first_t", lambda: _first_t(ordered[0]))
    checks = df_.parallel_map(
        lambda f: cache.get(f.path, "t_footer", lambda: _t_footer(f)), ordered,
        lambda f: cache.known(f.path, "t_footer"))
    m = len(first)
    if m and (np.diff(first) > 0).all():
        lo, hi = float(first[0]), float(first[-1])
        # a file agrees when its t values span [lo, hi] and number rows * m
        odd = [f for f, c in zip(ordered, checks, strict=True)
               if c is None or c != (lo, hi, c[2], c[2] * m)]
    else:
        odd = list(ordered)
    if not odd:
        return first
    log.info("%s: %d file(s) may hold other time axes; scanning their t column",
             snap.path, len(odd))
    axes = [first]
    with ThreadPoolExecutor(df_.IO_THREADS) as pool:
        for found in pool.map(lambda f: cache.get(f.path, "t_axes",
                                                  lambda: _distinct_axes(f)), odd):
            axes.extend(found)
    return np.unique(np.concatenate(axes))


def list_k(files: Sequence[DataFile], list_column: str, row_filter: RowFilter,
           cache: FileInfoCache) -> int:
    """K: the longest list over the visible rows of the whole table (per file and sim-run
    folder from the footer the writer leaves, else a scan of the list lengths)."""
    keep = row_filter.sim_runs
    per_file = df_.parallel_map(
        lambda f: cache.get(f.path, ("k", list_column),
                            lambda: _k_by_sim_run(f, list_column)),
        [f for f in files if f.num_records != 0],
        lambda f: cache.known(f.path, ("k", list_column)))
    best = 0
    for t in per_file:
        if keep is not None:
            t = t.filter(pc.is_in(t.column("sim_run"), value_set=keep))
        if t.num_rows:
            best = max(best, int(pc.max(t.column("k")).as_py()))
    return best


def _first_t(f: DataFile) -> np.ndarray:
    with df_.open_input(f.path) as src:
        pf = pq.ParquetFile(src)
        batch = next(pf.iter_batches(batch_size=1, columns=["t"]))
    first = df_.plain(batch.column(0))[0].values
    return first.to_numpy(zero_copy_only=False).astype(np.float64)


def _t_footer(f: DataFile) -> tuple[float, float, int, int] | None:
    """``(min t, max t, rows, t values)`` from the footer, ``None`` when unknown."""
    with df_.open_input(f.path) as src:
        md = pq.ParquetFile(src).metadata
    lo = hi = None
    values = 0
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        leaf = next((rg.column(j) for j in range(rg.num_columns)
                     if rg.column(j).path_in_schema.split(".")[0] == "t"), None)
        if leaf is None:
            return None
        st = leaf.statistics
        if st is None or not st.has_min_max or st.null_count:
            return None
        lo = st.min if lo is None else min(lo, st.min)
        hi = st.max if hi is None else max(hi, st.max)
        values += leaf.num_values
    if lo is None or hi is None:
        return None
    return (float(lo), float(hi), md.num_rows, values)


def _distinct_axes(f: DataFile) -> list[np.ndarray]:
    with df_.open_input(f.path) as src:
        col = df_.plain(pq.ParquetFile(src).read(columns=["t"]).column("t"))
    seen: dict[bytes, np.ndarray] = {}
    for chunk in col.chunks:
        lengths = pc.fill_null(pc.list_value_length(chunk), 0).to_numpy()
        flat = pc.list_flatten(chunk).to_numpy(zero_copy_only=False).astype(np.float64)
        start = 0
        for n in lengths:
            row = flat[start:start + n]
            start += n
            seen.setdefault(row.tobytes(), row)
    return list(seen.values())


def _k_by_sim_run(f: DataFile, list_column: str) -> pa.Table:
    """The longest list of ``list_column`` per sim-run in one file: from the footer where the
    writer recorded it, else by reading the column."""
    with df_.open_input(f.path) as src:
        pf = pq.ParquetFile(src)
        recorded = json.loads((pf.metadata.metadata or {}).get(
            LIST_LENGTHS_KEY.encode(), b"{}")).get(list_column)
        if recorded is not None:
            return pa.table({"sim_run": pa.array(list(recorded), pa.string()),
                             "k": pa.array(list(recorded.values()), pa.int32())})
        t = pf.read(columns=["sim_run", list_column])
    lengths = pc.fill_null(pc.list_value_length(df_.plain(t.column(list_column))), 0)
    t = pa.table({"sim_run": df_.plain(t.column("sim_run")), "k": lengths})
    agg = t.group_by("sim_run").aggregate([("k", "max")])
    return pa.table({"sim_run": agg.column("sim_run"), "k": agg.column("k_max")})

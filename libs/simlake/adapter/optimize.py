"""``optimize``: rewrite Delta tables into the layout the adapter reads best, with ``deltalake``.

The ideal layout of a per-trial table: within each Hive partition (``recording_site``), data
files cover contiguous, non-overlapping ``sim_trial_index`` ranges, are sorted inside, never
split one trial's rows over two files, and are about ``target_file_bytes`` large. Nightly
incremental ingests leave many small files behind, and a crashed run may leave overlapping
ones; ``optimize`` fixes both:

1. Files are put in key order (exact ranges, see :mod:`simlake.adapter.deltafiles`) and
   overlapping files grouped; consecutive groups are packed into bins of about
   ``target_file_bytes``. A bin that is already a single file is left alone, so optimizing
   an optimal table changes nothing and commits nothing.
2. Each other bin is read (all rows, crash leftovers included: they may belong to an ingest
   that is committing right now, and hiding them is the reader's job), stably sorted by key,
   cut at trial boundaries and written as new Parquet files with exact statistics.
3. One Delta transaction removes exactly the files that were read and adds the new ones, both
   with ``dataChange=false`` (a compaction, like Delta's OPTIMIZE). A concurrent append still
   commits; a concurrent delete/replace of a file we read makes our commit fail (delta-rs
   conflict check), the new files are deleted again, and nothing changes.
4. ``vacuum`` then deletes files that were removed from the table more than
   ``retention_hours`` (default 1) ago; files removed just now stay, so a reader that listed
   the old files before the commit keeps working for at least that long. ``force=True``
   deletes them at once (only when nobody else reads the table). Files that no commit ever
   referenced (an ingest in progress) are never touched.

Table properties, schema and protocol are left as they are (the transaction only adds and
removes files).

Link mode: keys in the manifest's ``link_keys`` are lazy views over the raw files.
``optimize(db, select=[...])`` materialises the selected link keys as Delta tables (same
schemas, same layout rules) and removes them from ``link_keys``.
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from simlake import schemas
from simlake.adapter import deltafiles as df_
from simlake.adapter.deltafiles import KEY, DataFile, FileInfoCache
from simlake.adapter.deltawrite import configured_stats_columns, write_rows
from simlake.datafiles import write_plain_file
from simlake.lake.commit import commit, delete_files

log = logging.getLogger(__name__)

#: Tables rewritten when ``select`` is None: the big ones.
DEFAULT_SELECT = ("voltage_traces", "synapse_activation", "cell_activation",
                  "dendritic_recordings")
TARGET_FILE_BYTES = 64 * 1024 * 1024
#: Never delete files removed from a table less than this long ago (unless forced): Delta's
#: default retention, which keeps ``DataBase(path, as_of=...)`` working for a week.
RETENTION_HOURS = 7 * 24


@dataclass
class OptimizeResult:
    """What ``optimize`` did to one key."""

    key: str
    files_before: int = 0
    files_after: int = 0
    removed: int = 0
    added: int = 0
    version: int | None = None
    vacuumed: list[str] = field(default_factory=list)
    materialized: bool = False

    def __str__(self) -> str:
        if self.materialized:
            return f"{self.key}: materialized from the raw files ({self.files_after} files)"
        if self.version is None:
            return f"{self.key}: already optimal ({self.files_before} files)"
        return (f"{self.key}: {self.files_before} -> {self.files_after} files "
                f"(v{self.version}), {len(self.vacuumed)} old files vacuumed")


def optimize(db: Any, dumper: Any = None, select: Iterable[str] | None = None,
             scheduler: Any = None, repartition: bool = False, categorized: bool = False,
             client: Any = None, *, target_file_bytes: int = TARGET_FILE_BYTES,
             retention_hours: float = RETENTION_HOURS, force: bool = False,
             vacuum: bool = True) -> dict[str, OptimizeResult]:
    """Rewrite the selected keys of ``db`` (a ``DataBase`` or its path) into the ideal layout.

    ISF's argument order: ``optimize(db, dumper=None, select=None, ...)``. ``select=None``
    means the big per-trial tables that exist. A selected key registered as a link key is
    materialised as a Delta table. ``dumper`` (ISF's, deprecated there), ``scheduler``,
    ``repartition``, ``categorized`` and ``client`` are accepted and change nothing: tables
    keep the ingest's format and layout (an unknown dumper is still an error). Files removed
    by the rewrite are vacuumed after ``retention_hours`` (Delta's 7 days by default;
    ``force=True`` deletes them now, losing the versions ``as_of`` reads). Returns one
    :class:`OptimizeResult` per key.
    """
    from simlake.adapter.database import DataBase
    from simlake.adapter.dumpers import resolve

    if isinstance(dumper, list | tuple) and select is None:
        raise TypeError("optimize(db, dumper, select): pass the keys as select=[...]")
    resolve(dumper)
    database = db if isinstance(db, DataBase) else DataBase(db, nocreate=True)
    root = database.basedir
    links = database._link_keys(database._manifest())
    if select is None:
        keys = [k for k in DEFAULT_SELECT if df_.is_delta_table(os.path.join(root, k))]
    else:
        keys = list(select)
    # the completion record goes last: data first, then the metadata that makes it visible
    keys.sort(key=lambda k: k == "metadata")
    results: dict[str, OptimizeResult] = {}
    for key in keys:
        path = os.path.join(root, key)
        if key in links and not df_.is_delta_table(path):
            from simlake.adapter.linkwrite import materialize

            n_files, version = materialize(database._links, key,
                                           target_file_bytes=target_file_bytes)
            results[key] = OptimizeResult(key, files_after=n_files, added=n_files,
                                          version=version, materialized=True)
            continue
        if not df_.is_delta_table(path):
            raise KeyError(f"{key!r} is not a Delta table or link key of {root}; "
                           f"keys: {database.keys()}")
        res = compact_table(path, target_file_bytes=target_file_bytes, cache=database._cache)
        res.key = key
        if vacuum:
            res.vacuumed = vacuum_table(path, 0 if force else retention_hours)
        log.info("%s", res)
        results[key] = res
    return results


def vacuum_table(path: str, retention_hours: float) -> list[str]:
    """Delete files removed from the table at least ``retention_hours`` ago."""
    hours = max(0, int(math.ceil(retention_hours)))
    return list(DeltaTable(path).vacuum(retention_hours=hours, dry_run=False,
                                        enforce_retention_duration=False))


def _bins(partitions: Sequence[df_.Partition], target: int) -> list[list[DataFile]]:
    bins: list[list[DataFile]] = []
    current: list[DataFile] = []
    size = 0
    for p in partitions:
        psize = sum(f.size for f in p.files)
        if current and size + psize > target:
            bins.append(current)
            current, size = [], 0
        current.extend(p.files)
        size += psize
    if current:
        bins.append(current)
    return bins


def cut_points(keys: pa.ChunkedArray | pa.Array, rows_per_file: int) -> list[tuple[int, int]]:
    """Row ranges of about ``rows_per_file`` rows, each ending at a change of ``keys``."""
    n = len(keys)
    if n == 0:
        return []
    arr = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    changes = np.flatnonzero(
        pc.not_equal(arr.slice(1), arr.slice(0, n - 1)).to_numpy(zero_copy_only=False)) + 1
    out = []
    start = 0
    while start < n:
        want = start + max(1, rows_per_file)
        if want >= n:
            end = n
        else:
            i = np.searchsorted(changes, want)
            end = int(changes[i]) if i < len(changes) else n
        out.append((start, end))
        start = end
    return out


def compact_table(path: str, *, target_file_bytes: int = TARGET_FILE_BYTES,
                  cache: FileInfoCache | None = None) -> OptimizeResult:
    """Compact and sort one Delta table in a single transaction (see the module doc)."""
    cache = cache or FileInfoCache()
    root = os.path.abspath(path)
    snap = df_.open_table(root, (KEY,))
    res = OptimizeResult(os.path.basename(root), files_before=len(snap.files))
    data_columns = [n for n in snap.schema.names if n not in snap.partition_columns]
    stats_cols = configured_stats_columns(snap.schema, snap.configuration,
                                          snap.partition_columns)
    spec = schemas.TableSpec(os.path.basename(root), snap.schema, snap.partition_columns,
                             tuple(stats_cols))
    # an ingest table keeps the ingest's codecs and row groups: rewritten by its own writer
    ingest_table = "sim_run" in snap.schema.names
    by_part: dict[tuple, list[DataFile]] = defaultdict(list)
    for f in snap.files:
        by_part[f.partition].append(f)
    adds: list[DataFile] = []
    removes: list[DataFile] = []
    try:
        for part, files in sorted(by_part.items(), key=lambda kv: str(kv[0])):
            ranges = df_.file_ranges(snap, files, KEY, cache)
            removes.extend(f for f, r in zip(files, ranges, strict=True) if r is None)
            plan = df_.plan_partitions(files, ranges)
            rel_dir = os.path.relpath(os.path.dirname(files[0].path), root)
            rel_dir = "" if rel_dir == "." else rel_dir
            for group in _bins(plan.partitions, target_file_bytes):
                if len(group) == 1:
                    continue
                table = df_.read_files(group, data_columns, snap.schema)
                in_bytes = sum(f.size for f in group)
                rows_per_file = max(1, int(table.num_rows * target_file_bytes / max(1, in_bytes)))
                for start, end in cut_points(table.column(KEY), rows_per_file):
                    rows = table.slice(start, end - start)
                    if ingest_table:
                        adds += write_rows(root, spec, rows, partition_values=dict(part))
                    else:
                        adds.append(write_plain_file(root, rel_dir, rows, seq=len(adds),
                                                     partition_values=dict(part),
                                                     stats_columns=stats_cols))
                removes.extend(group)
        if not removes:
            res.files_after = len(snap.files)
            return res
        commit(root, spec, adds, removes=removes, data_change=False, read_version=snap.version)
    except CommitFailedError as err:
        delete_files(root, adds)
        raise CommitFailedError(f"{root}: optimize lost a race with a concurrent writer and "
                                f"changed nothing; run it again ({err})") from err
    except BaseException:
        delete_files(root, adds)
        raise
    after = df_.open_table(root, ())
    live = {f.path for f in after.files}
    stale = [f.path for f in removes if f.path in live]
    if stale:
        raise RuntimeError(f"{root}: files still live after optimize: {stale[:3]}")
    res.version = after.version
    res.files_after = len(after.files)
    res.removed = len(removes)
    res.added = len(adds)
    return res

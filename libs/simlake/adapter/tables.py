"""Frames of the ingest's Delta tables: dask for the big keys, pandas for the small ones.

The ``metadata`` table is the completion record: rows of the other per-trial tables whose
``sim_run`` has no metadata row are leftovers of a crashed or running ingest and are hidden
(filtered with ``pyarrow.compute.is_in`` inside every partition read).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simlake.adapter import deltafiles as df_
from simlake.adapter.deltafiles import (
    KEY,
    DataFile,
    FileInfoCache,
    LayoutWarning,
    Partition,
    RowFilter,
    TableSnapshot,
)
from simlake.adapter.frame_columns import list_k, time_axis
from simlake.adapter.frames import (
    CELL_SCALARS,
    PARAMETERFILES_COLUMNS,
    SYNAPSE_SCALARS,
    ActivationShape,
    VoltageShape,
    max_list_length,
    metadata_frame,
    spike_frame,
)
from simlake.adapter.trialframe import FrameParts, TrialFrame

log = logging.getLogger(__name__)

ACTIVATION = {
    "synapse_activation": (SYNAPSE_SCALARS, "activation_times"),
    "cell_activation": (CELL_SCALARS, "spike_times"),
}

SOMA_THRESHOLD = 0.0

class LayoutError(RuntimeError):
    """A data file holds keys outside the range its statistics claim."""


@dataclass(frozen=True, eq=False)
class ReadSpec:
    """Everything a partition read needs besides its files (broadcast to all partitions)."""

    schema: pa.Schema
    shape: Any
    row_filter: RowFilter
    table: str


def read_partition(partition: Partition, columns: Sequence | None = None, *,
                   spec: ReadSpec) -> pd.DataFrame:
    """Read one dask partition: its data file(s), filtered, sorted, reshaped to the ISF frame.

    Module-level with a ``columns=`` keyword so dask pushes column projections down.
    """
    table = df_.read_files(partition.files, spec.shape.delta_columns(columns), spec.schema,
                           spec.row_filter, row_groups=partition.row_groups)
    if table.num_rows:
        key = table.column(KEY)
        first, last = key[0].as_py(), key[-1].as_py()
        if first < partition.lo or last > partition.hi:
            raise LayoutError(
                f"{spec.table}: {[f.path for f in partition.files]} hold keys "
                f"[{first!r}, {last!r}] outside their statistics [{partition.lo!r}, "
                f"{partition.hi!r}]"
            )
    return spec.shape.to_pandas(table, columns)


class TableReader:
    """Builds the frames of the Delta tables of one database folder."""

    def __init__(self, root: str, cache: FileInfoCache,
                 link_metadata: Callable[[], pa.Table] | None = None,
                 versions: Mapping[str, int | None] | None = None) -> None:
        self.root = os.path.abspath(root)
        self.cache = cache
        #: the metadata rows when ``metadata`` is a link key (no Delta table)
        self.link_metadata = link_metadata
        #: table -> Delta version to read (None: the table did not exist yet); all tables at
        #: their latest version when not given
        self.versions = versions
        self._local = threading.local()  # snapshots opened while one frame is built

    # -- helpers -----------------------------------------------------------------------------

    def path(self, key: str) -> str:
        return os.path.join(self.root, key)

    def exists(self, key: str) -> bool:
        if self.versions is not None:
            return self.versions.get(key) is not None
        return df_.is_delta_table(self.path(key))

    def snapshot(self, key: str, stats: Sequence[str] = (KEY,)) -> TableSnapshot:
        """The table at its pinned version (``as_of``), else its current one; within
        :meth:`one_frame`, the one already opened for the frame being built (a frame reads one
        version of each table, and opening a log costs ~8 ms)."""
        version = None if self.versions is None else self.versions.get(key)
        memo = getattr(self._local, "snapshots", None)
        if memo is None:
            return df_.open_table(self.path(key), stats, version)
        if (key, tuple(stats)) not in memo:
            memo[key, tuple(stats)] = df_.open_table(self.path(key), stats, version)
        return memo[key, tuple(stats)]

    @contextlib.contextmanager
    def one_frame(self) -> Iterator[None]:
        """Within it, each table's log is opened once (see :meth:`snapshot`)."""
        outer = getattr(self._local, "snapshots", None)
        if outer is None:
            self._local.snapshots = {}
        try:
            yield
        finally:
            if outer is None:
                self._local.snapshots = None

    def _column_values(self, f: DataFile, column: str, what: str) -> Any:
        """Cached per-file aggregate of one column (``unique`` values)."""

        def compute() -> Any:
            with df_.open_input(f.path) as src:
                col = df_.plain(pq.ParquetFile(src).read(columns=[column]).column(column))
            return pc.unique(col)  # an Array, also for a ChunkedArray input

        return self.cache.get(f.path, (what, column), compute)

    # -- metadata: the completion record ------------------------------------------------------

    def _linked_metadata(self) -> pa.Table | None:
        if self.exists("metadata") or self.link_metadata is None:
            return None
        return self.link_metadata()

    def metadata_table(self) -> pa.Table:
        linked = self._linked_metadata()
        if linked is not None:
            return linked
        snap = self.snapshot("metadata")
        return df_.read_files(snap.files, list(snap.schema.names), snap.schema, parallel=True)

    def completed_sim_runs(self) -> pa.Array:
        """Distinct ``sim_run`` values of the metadata table (empty without one)."""
        linked = self._linked_metadata()
        if linked is not None:
            return pc.unique(linked.column("sim_run"))  # an Array
        if not self.exists("metadata"):
            return pa.array([], pa.string())
        snap = self.snapshot("metadata")
        parts = [self._column_values(f, "sim_run", "unique") for f in snap.files
                 if f.num_records != 0]
        if not parts:
            return pa.array([], pa.string())
        return pc.unique(pa.chunked_array(parts, pa.string()).combine_chunks())

    def metadata(self) -> pd.DataFrame:
        return metadata_frame(self.metadata_table())

    def trial_index(self) -> pd.Index:
        """All completed trials, sorted."""
        t = self._linked_metadata()
        if t is None:
            snap = self.snapshot("metadata")
            t = df_.read_files(snap.files, [KEY], snap.schema, parallel=True)
        keys = t.select([KEY]).sort_by(KEY).column(KEY)
        return pd.Index(keys.to_pandas(), name=KEY)

    # -- generic dask frame ------------------------------------------------------------------

    def dask_frame(self, snap: TableSnapshot, files: Sequence[DataFile], shape: Any,
                   row_filter: RowFilter, label: str) -> dd.DataFrame:
        ranges = df_.file_ranges(snap, files, KEY, self.cache)
        plan = df_.plan_partitions(files, ranges)
        meta = shape.meta(snap.schema)
        with dask.config.set({"dataframe.convert-string": False}):
            if not plan.partitions:
                return dd.from_pandas(meta, npartitions=1, sort=False)
            if plan.merged:
                warnings.warn(
                    f"{snap.path}: {plan.merged} data file(s) overlap others in {KEY}; they "
                    f"were merged into {len(plan.partitions)} sorted partitions. Run "
                    "simlake.adapter.optimize(db) to restore one file per key range.",
                    LayoutWarning,
                    stacklevel=4,
                )
            spec = ReadSpec(snap.schema, shape, row_filter, label)
            parts = FrameParts(read_partition, tuple(plan.partitions), plan.divisions, meta,
                               label, spec)
            return TrialFrame(parts, self.cache)

    # -- voltage traces ----------------------------------------------------------------------

    def voltage_traces(self, key: str = "voltage_traces", site: str | None = None
                       ) -> dd.DataFrame:
        with self.one_frame():
            snap = self.snapshot(key, stats=(KEY, "recording_site"))
            files, equals = self._site_files(snap, site)
            row_filter = RowFilter(equals, self.completed_sim_runs())
            shape = VoltageShape(time_axis(snap, files, self.cache))
            return self.dask_frame(snap, files, shape, row_filter,
                                   key if site is None else f"{key}-{site}")

    def _site_files(self, snap: TableSnapshot, site: str | None
                    ) -> tuple[tuple[DataFile, ...], tuple[tuple[str, Any], ...]]:
        if site is None:
            return snap.files, ()
        if "recording_site" in snap.partition_columns:
            return snap.select(recording_site=site), ()
        files = tuple(f for f in snap.files if site in self.sites_of(snap, f))
        return files, (("recording_site", site),)

    # -- activation tables -------------------------------------------------------------------

    def activation(self, key: str) -> dd.DataFrame:
        scalars, list_column = ACTIVATION[key]
        with self.one_frame():
            snap = self.snapshot(key)
            row_filter = RowFilter((), self.completed_sim_runs())
            k = list_k(snap.files, list_column, row_filter, self.cache)
            return self.dask_frame(snap, snap.files, ActivationShape(scalars, list_column, k),
                                   row_filter, key)

    # -- pandas tables -----------------------------------------------------------------------

    def _read_visible(self, key: str, columns: Sequence[str],
                      equals: tuple[tuple[str, Any], ...] = (),
                      files: Sequence[DataFile] | None = None) -> pa.Table:
        snap = self.snapshot(key)
        row_filter = RowFilter(equals, self.completed_sim_runs())
        return df_.read_files(snap.files if files is None else files, columns, snap.schema,
                              row_filter, parallel=True)

    def spike_times(self, key: str = "spike_times", site: str | None = None,
                    threshold: float | None = None) -> pd.DataFrame:
        """A row for every completed trial; all-NaN where the trial has no spike."""
        equals: list[tuple[str, Any]] = []
        if site is not None:
            equals.append(("recording_site", site))
        if threshold is not None:
            equals.append(("threshold", float(threshold)))
        table = self._read_visible(key, [KEY, "threshold", "spike_times"], tuple(equals))
        if threshold is None and table.num_rows:
            distinct = pc.unique(table.column("threshold")).to_pylist()
            if len(distinct) > 1:
                table = table.filter(pc.equal(table.column("threshold"), SOMA_THRESHOLD))
        frame = spike_frame(table)
        trials = self.trial_index()
        if frame.index.has_duplicates:
            dup = frame.index[frame.index.duplicated()][0]
            raise ValueError(f"{self.path(key)}: several rows for trial {dup!r}")
        return frame.reindex(trials)

    def parameterfiles(self) -> pd.DataFrame:
        table = self._read_visible("parameterfiles", [KEY, *PARAMETERFILES_COLUMNS])
        df = table.select(list(PARAMETERFILES_COLUMNS)).to_pandas()
        df.index = pd.Index(table.column(KEY).to_pandas(), name=KEY)
        return df

    def plain(self, key: str) -> pd.DataFrame:
        """A table as is (e.g. ``ingest_errors``)."""
        snap = self.snapshot(key, stats=())
        t = df_.read_files(snap.files, snap.schema.names, snap.schema, sort_key=None,
                           parallel=True)
        return t.to_pandas()

    # -- dendritic sub-databases -------------------------------------------------------------

    def sites_of(self, snap: TableSnapshot, f: DataFile) -> tuple[str, ...]:
        if "recording_site" in snap.partition_columns:
            site = f.partition_values.get("recording_site")
            return () if site is None else (site,)
        lo, hi, _ = f.stat("recording_site")
        if lo is not None and lo == hi and df_.exact_string_stat(lo, snap.string_prefix_length):
            return (lo,)
        return tuple(self._column_values(f, "recording_site", "unique").to_pylist())

    def _visible_files(self, snap: TableSnapshot) -> list[DataFile]:
        """Files holding at least one row of a completed sim-run (per-file ``sim_run``
        values are read once and cached)."""
        keep = set(self.completed_sim_runs().to_pylist())
        files = [f for f in snap.files if f.num_records != 0]
        with ThreadPoolExecutor(df_.IO_THREADS) as pool:
            runs = list(pool.map(lambda f: self._column_values(f, "sim_run", "unique"), files))
        return [f for f, r in zip(files, runs, strict=True) if keep.intersection(r.to_pylist())]

    def recording_sites(self, key: str = "dendritic_recordings") -> list[str]:
        """Recording-site labels of files that hold visible (completed) rows."""
        snap = self.snapshot(key, stats=(KEY, "recording_site"))
        sites: set[str] = set()
        for f in self._visible_files(snap):
            sites.update(self.sites_of(snap, f))
        return sorted(sites)

    def spike_keys(self, key: str = "dendritic_spike_times") -> list[tuple[str, float]]:
        """``(label, threshold)`` pairs present in a dendritic spike-times table."""
        snap = self.snapshot(key, stats=(KEY, "recording_site", "threshold"))
        pairs: set[tuple[str, float]] = set()
        for f in self._visible_files(snap):
            sites = self.sites_of(snap, f)
            if "threshold" in snap.partition_columns:
                raw = f.partition_values.get("threshold")
                thresholds: tuple[float, ...] = () if raw is None else (float(raw),)
            else:
                lo, hi, _ = f.stat("threshold")
                if lo is not None and lo == hi:
                    thresholds = (float(lo),)
                else:
                    thresholds = tuple(self._column_values(f, "threshold", "unique")
                                       .to_pylist())
            if len(sites) > 1 and len(thresholds) > 1:
                pairs.update(self._pairs_scan(f))
            else:
                pairs.update((s, float(t)) for s in sites for t in thresholds if t is not None)
        return sorted(pairs)

    def _pairs_scan(self, f: DataFile) -> set[tuple[str, float]]:
        def compute() -> set[tuple[str, float]]:
            with df_.open_input(f.path) as src:
                t = pq.ParquetFile(src).read(columns=["recording_site", "threshold"])
            return {(s, float(x)) for s, x in zip(t.column(0).to_pylist(),
                                                 t.column(1).to_pylist(), strict=True)}
        return self.cache.get(f.path, "site_threshold_pairs", compute)


def spike_key(label: str, threshold: float) -> str:
    """Sub-database key of a dendritic spike-times series: ``<label>_<threshold>``."""
    return f"{label}_{float(threshold)!r}"


__all__ = ["TableReader", "ReadSpec", "read_partition", "spike_key", "LayoutError",
           "LayoutWarning", "max_list_length"]

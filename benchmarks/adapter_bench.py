"""Benchmark of the DataBase adapter (a command, not a test).

Builds a database with a ``voltage_traces`` Delta table of ``--trials`` trials x ``--times``
time points (written with deltalake, ``--per-file`` trials per data file, plus the metadata
table), and an ISF-approach stand-in: the same wide pandas frames pickled, one file per
partition, read with ``dask`` ``from_map``. Prints, for both, ``loc[sti]`` latency and the
throughput of reading the whole frame into pandas.

    .venv/bin/python benchmarks/adapter_bench.py [--trials 2000] [--times 10000] [--per-file 200]

Numbers on shared machines swing: each figure is the median of ``--repeat`` runs after a
warm-up run, both approaches measured in one process.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, WriterProperties, write_deltalake

from simlake import schemas
from simlake.adapter import DataBase
from simlake.adapter.tables import TIME_AXIS_HASH, time_axis_hash


def time_axis(n: int) -> np.ndarray:
    return np.array([float(f"{100 + 0.025 * k:.3f}") for k in range(n)])


def sti_list(trials: int) -> list[str]:
    runs = max(1, trials // 20)
    out = [f"results/benchmark_study_folder/20250101-1553_seed{r:06d}_pid{7000 + r}/{i:06d}"
           for r in range(runs) for i in range(trials // runs)]
    return sorted(out)[:trials]


def build(root: str, trials: int, times: int, per_file: int, seed: int = 0
          ) -> tuple[list[str], int]:
    """Write the Delta database and the pickled stand-in; returns (keys, bytes of vm)."""
    rng = np.random.default_rng(seed)
    t = time_axis(times)
    stis = sti_list(trials)
    db_root = os.path.join(root, "db")
    props = WriterProperties(statistics_truncate_length=1000)
    config = {"delta.dataSkippingStatsColumns": "sim_trial_index"}
    isf = os.path.join(root, "isf")
    os.makedirs(isf)
    axis_hash = time_axis_hash(t)
    for i in range(0, len(stis), per_file):
        chunk = stis[i:i + per_file]
        vm = rng.normal(-65.0, 5.0, size=(len(chunk), times)).round(6)
        sim_run = [s.rsplit("/", 1)[0] for s in chunk]
        trialnr = [int(s.rsplit("/", 1)[1]) for s in chunk]
        flat_t = pa.array(np.tile(t, len(chunk)))
        offsets = pa.array(np.arange(0, (len(chunk) + 1) * times, times, dtype=np.int32))
        table = pa.table(
            {"sim_trial_index": chunk, "sim_run": sim_run, "trialnr": trialnr,
             "t": pa.ListArray.from_arrays(offsets, flat_t),
             "vm": pa.ListArray.from_arrays(offsets, pa.array(vm.ravel()))},
            schema=schemas.VOLTAGE_TRACES)
        write_deltalake(os.path.join(db_root, "voltage_traces"), table,
                        mode="append" if i else "overwrite", writer_properties=props,
                        configuration=None if i else config)
        meta = pa.table(
            {"sim_trial_index": chunk, "sim_run": sim_run, "trialnr": trialnr,
             "voltage_traces_file_name": ["x_vm_all_traces.csv"] * len(chunk),
             "synapses_file_name": ["s.csv"] * len(chunk),
             "cells_file_name": ["c.csv"] * len(chunk), "run_id": ["bench"] * len(chunk)})
        meta = meta.append_column("folder_fingerprint", pa.array(["fp"] * len(chunk))) \
            if "folder_fingerprint" in schemas.METADATA.names else meta
        meta = meta.cast(schemas.METADATA)
        write_deltalake(os.path.join(root, "db_nohash", "metadata"), meta,
                        mode="append" if i else "overwrite", writer_properties=props,
                        configuration=None if i else config)
        meta = meta.append_column(TIME_AXIS_HASH, pa.array([axis_hash] * len(chunk)))
        write_deltalake(os.path.join(db_root, "metadata"), meta,
                        mode="append" if i else "overwrite", writer_properties=props,
                        configuration=None if i else config)
        frame = pd.DataFrame(vm, index=pd.Index(chunk, name="sim_trial_index"),
                             columns=pd.Index(t))
        with open(os.path.join(isf, f"part.{i // per_file:05d}.pickle"), "wb") as fh:
            pickle.dump(frame, fh, protocol=pickle.HIGHEST_PROTOCOL)
    for path in ("db/voltage_traces", "db/metadata", "db_nohash/metadata"):
        DeltaTable(os.path.join(root, path)).alter.set_table_properties(
            {"delta.dataSkippingStringPrefixLength": "256"}, raise_if_not_exists=False)
    # the same voltage table, with a metadata table that lacks the time-axis hash
    os.symlink(os.path.join(db_root, "voltage_traces"),
               os.path.join(root, "db_nohash", "voltage_traces"))
    return stis, trials * times * 8


def _load_pickle(path: str) -> pd.DataFrame:
    with open(path, "rb") as fh:
        return pickle.load(fh)


def isf_frame(root: str, stis: list[str], per_file: int) -> dd.DataFrame:
    """The stand-in: one pickled wide pandas frame per partition, divisions from the keys."""
    folder = os.path.join(root, "isf")
    files = sorted(os.path.join(folder, n) for n in os.listdir(folder))
    divisions = tuple(stis[::per_file]) + (stis[-1],)
    meta = _load_pickle(files[0]).iloc[:0]
    # best case for the stand-in: without dask's string conversion (which costs it ~30x on
    # loc with 10^4 columns); the adapter builds its frames the same way
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_map(_load_pickle, files, divisions=divisions, meta=meta)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    fn()  # warm-up
    times = []
    out = None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--times", type=int, default=10_000)
    ap.add_argument("--per-file", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        t0 = time.perf_counter()
        stis, nbytes = build(root, args.trials, args.times, args.per_file)
        size = sum(os.path.getsize(os.path.join(dp, f))
                   for dp, _, fs in os.walk(os.path.join(root, "db", "voltage_traces"))
                   for f in fs)
        print(f"built {args.trials} trials x {args.times} time points "
              f"({nbytes / 1e6:.0f} MB of float64 voltages; Delta {size / 1e6:.0f} MB in "
              f"{-(-args.trials // args.per_file)} files) in {time.perf_counter() - t0:.1f} s")
        rng = np.random.default_rng(1)
        picks = [stis[i] for i in rng.choice(len(stis), size=10, replace=False)]

        t0 = time.perf_counter()
        db = DataBase(os.path.join(root, "db"))
        vt = db["voltage_traces"]
        cold_open = time.perf_counter() - t0
        warm_open, _ = timed(lambda: db["voltage_traces"], args.repeat)
        t0 = time.perf_counter()
        db2 = DataBase(os.path.join(root, "db_nohash"))
        vt2 = db2["voltage_traces"]
        cold_open2 = time.perf_counter() - t0
        isf = isf_frame(root, stis, args.per_file)

        rows = []
        for name, frame, build_graph in (
            ("simlake, t hash", vt, lambda: db["voltage_traces"]),
            ("simlake, reads t", vt2, lambda: db2["voltage_traces"]),
            ("ISF stand-in (pickles)", isf, lambda: isf_frame(root, stis, args.per_file)),
        ):
            def loc_all(frame=frame) -> None:
                for s in picks:
                    out = frame.loc[s].compute()
                    assert out.shape == (1, args.times)

            loc_s, _ = timed(loc_all, args.repeat)
            loc_fresh, _ = timed(lambda b=build_graph: b().loc[picks[0]].compute(), args.repeat)
            full_s, df = timed(lambda frame=frame: frame.compute(), args.repeat)
            assert df.shape == (args.trials, args.times)
            mem = df.memory_usage(index=False).sum()
            rows.append((name, loc_s / len(picks) * 1e3, loc_fresh * 1e3, full_s,
                         mem / 1e6 / full_s))
        print(f"DataBase open + graph of voltage_traces: cold {cold_open * 1e3:.0f} ms "
              f"(without t hash: {cold_open2 * 1e3:.0f} ms, footer checks), "
              f"warm {warm_open * 1e3:.0f} ms")
        print(f"{'approach':<24} {'loc[sti] ms':>12} {'+graph ms':>10} {'full read s':>12} "
              f"{'MB/s':>8}")
        for name, loc_ms, fresh_ms, full_s, mbs in rows:
            print(f"{name:<24} {loc_ms:>12.1f} {fresh_ms:>10.1f} {full_s:>12.2f} {mbs:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

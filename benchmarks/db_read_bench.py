"""Read latencies of an ingested database (a command, not a test).

For ``voltage_traces`` and ``synapse_activation`` of the database at ``DB``: building the frame
(``db[key]``, a fresh ``DataBase`` object and the same one again), ``db[key].loc[sti]`` on
random trials (cold: a fresh ``DataBase`` each time, page cache warm; warm: the same frame
again), a full read, and the tables' size on disk.

    .venv/bin/python benchmarks/db_read_bench.py DB [--picks 10] [--repeat 3]

Each figure is the median of ``--repeat`` runs after a warm-up run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from simlake.adapter import DataBase


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def folder_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(path)
               for f in fs) / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--picks", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keys", default="voltage_traces,synapse_activation")
    ap.add_argument("--full", action="store_true", help="also time a full read of each key")
    args = ap.parse_args(argv)
    stis = DataBase(args.db)["sim_trial_index"].tolist()
    rng = np.random.default_rng(1)
    picks = [stis[i] for i in rng.choice(len(stis), size=args.picks, replace=False)]
    print(f"{args.db}: {len(stis)} trials")
    for key in args.keys.split(","):
        db = DataBase(args.db)
        fresh = median_ms(lambda key=key: DataBase(args.db)[key], args.repeat)
        same = median_ms(lambda key=key, db=db: db[key], args.repeat)
        frame = db[key]
        warm = median_ms(lambda frame=frame: [frame.loc[s].compute() for s in picks],
                         args.repeat) / len(picks)
        new_frame = median_ms(lambda key=key, db=db: [db[key].loc[s].compute() for s in picks],
                              args.repeat) / len(picks)
        fresh_db = median_ms(lambda key=key: [DataBase(args.db)[key].loc[s].compute()
                                              for s in picks[:3]], 1) / 3
        size = folder_mb(os.path.join(args.db, key))
        line = (f"{key:<20} db[key] fresh {fresh:7.1f} ms, again {same:6.1f} ms | "
                f"loc[sti] warm {warm:6.1f} ms, db[key].loc[sti] {new_frame:6.1f} ms, "
                f"fresh DataBase {fresh_db:7.1f} ms | {size:.0f} MB")
        if args.full:
            full = median_ms(lambda frame=frame: frame.compute(), 1)
            line += f" | full read {full / 1e3:.2f} s"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

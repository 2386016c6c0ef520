"""End-to-end benchmark of the ingest (a command, not a test).

For each tree size it generates a real-sized raw simrun tree (``simlake.synth``), then measures
on the same machine and cores:

- **simlake**: ``simlake ingest RAW DB`` as its own process (local Spark + Delta): wall seconds
  (with and without Spark start-up), MB/s and trials/s, peak RSS of the driver JVM and of the
  Python processes (driver + workers, summed);
- **baseline** (``--baseline``): ``isf`` (default), the ISF-faithful baseline of
  ``isf_baseline.py``: the stages and algorithms of ISF's ``init`` with its defaults; or
  ``pandas``, a lower bound: one ``pandas.read_csv`` per voltage, dendritic, synapse and
  presynaptic-cell file, per-trial frames concatenated and pickled per folder. Both on a pool of
  as many processes as cores (ISF runs on dask processes);
- **ceiling**: ``pyarrow.csv`` parsing the same files on the same pool, writing nothing.
  Baseline and ceiling read every data file the ingest reads (the ISF-faithful baseline also
  its parameter files, as ISF's init does), and all three MB/s figures divide the same raw bytes;
- **adapter**: ``DataBase(DB)['voltage_traces']`` ``.loc[sti]`` latency and full-read MB/s.

Ingest, baseline and ceiling each start right after the tree was read once, so none of them is
measured on a page cache that the one before evicted (what the baseline writes, partitions or
pickles, is deleted before the ceiling runs).

Prints a markdown table and writes it, with the machine description, to ``--out``.

    .venv/bin/python benchmarks/ingest_bench.py --sizes 200,2000,10000
    .venv/bin/python benchmarks/ingest_bench.py --smoke      # tiny, seconds: what the tests run
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import pickle
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pandas as pd
import psutil
import pyarrow.csv as pacsv
from isf_baseline import run as run_isf_baseline

from simlake import synth
from simlake.discovery import discover

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- measuring


class PeakRSS:
    """Polls a process tree and keeps the peak RSS of its JVM and of its Python processes."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.java = 0
        self.python = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            java = python = 0
            for proc in procs:
                try:
                    name, rss = proc.name(), proc.memory_info().rss
                except psutil.Error:
                    continue
                if "java" in name:
                    java += rss
                elif "python" in name:
                    python += rss
            self.java, self.python = max(self.java, java), max(self.python, python)
            self._stop.wait(self.interval)


def run_simlake_ingest(raw: str, db: str, extra_args: tuple[str, ...] = (),
                       exit_codes: tuple[int, ...] = (0,)) -> dict:
    """``simlake ingest`` in its own process; wall time, in-job seconds, peak memory.
    ``exit_codes``: the ones that count as done (2: files rejected, the rest ingested)."""
    cmd = [sys.executable, "-m", "simlake.cli", "ingest", raw, db, *extra_args]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    started = time.monotonic()
    with open(os.path.join(os.path.dirname(db), "ingest.log"), "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        with PeakRSS(proc.pid) as peak:
            stdout, _ = proc.communicate()
    wall = time.monotonic() - started
    if proc.returncode not in exit_codes:
        raise RuntimeError(f"ingest failed ({proc.returncode}): {stdout[-2000:]}")
    seconds = float(re.search(r"seconds: ([0-9.]+)", stdout).group(1))
    return {
        "wall": wall,
        "job_seconds": seconds,
        "java_rss": peak.java,
        "python_rss": peak.python,
        "summary": stdout,
    }


# ----------------------------------------------------------------------------- baseline / ceiling


FolderJob = tuple[str, list[str], list[str], list[str], str]


#: The baselines, by ``--baseline`` name, as the figures print them.
BASELINES = {
    "isf": "ISF-faithful baseline (isf_baseline.py: ISF init's stages and algorithms)",
    "pandas": "pandas lower bound (one pandas.read_csv per data file, pickled per folder)",
}


def run_baseline(name: str, raw: str, out_dir: str, workers: int,
                 loadtxt: str = "python") -> dict[str, float]:
    """Run baseline ``name`` (a key of :data:`BASELINES`) over ``raw``, writing into the empty
    folder ``out_dir``: seconds, ``"total"`` and (``isf``) per stage."""
    if name == "pandas":
        return {"total": run_pool(_pandas_folder, raw, out_dir, workers)}
    return run_isf_baseline(raw, out_dir, workers, loadtxt)


def _pandas_folder(args: FolderJob) -> int:
    """Per-file pandas parsing, per-trial frames concatenated, pickled: a lower bound of ISF's
    init (it leaves out the loadtxt parses, the pre-pass, the per-line rewriting, the spike
    times and the parameter files)."""
    voltage_path, synapse_paths, cell_paths, dendritic_paths, out = args
    frames = {}
    if voltage_path.endswith(".csv"):
        volt = pd.read_csv(voltage_path, sep="\t")
        frames["voltage_traces"] = volt.set_index("t").T
    else:
        arr = np.load(voltage_path)["arr_0"]
        frames["voltage_traces"] = pd.DataFrame(arr[:, 1:].T, columns=arr[:, 0])
    for path in dendritic_paths:  # dendritic_voltage_traces=True: one frame per recording site
        frames[os.path.basename(path)] = pd.read_csv(path, sep="\t").set_index("t").T
    for key, paths, n_fixed in (
        ("synapse_activation", synapse_paths, 6),
        ("cell_activation", cell_paths, 2),
    ):
        per_trial = []
        for path in paths:
            frame = pd.read_csv(
                path,
                sep="\t",
                skiprows=1,
                header=None,
                dtype=str,
                names=range(n_fixed + 1),
                keep_default_na=False,
            )
            times = (
                frame[n_fixed].str.rstrip(",").str.split(",", expand=True)
                if n_fixed in frame.columns
                else pd.DataFrame(index=frame.index)
            )
            times = times.replace("", np.nan).astype(float)
            times.columns = [str(c) for c in times.columns]  # ISF labels: '0', '1', ...
            per_trial.append(pd.concat([frame.iloc[:, :n_fixed], times], axis=1))
        frames[key] = pd.concat(per_trial) if per_trial else None
    with open(out, "wb") as fh:
        pickle.dump(frames, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return 0


def _ceiling_folder(args: FolderJob) -> int:
    """pyarrow.csv parsing of the same files, nothing written."""
    voltage_path, synapse_paths, cell_paths, dendritic_paths, _ = args
    tabs = pacsv.ParseOptions(delimiter="\t")
    if voltage_path.endswith(".csv"):
        pacsv.read_csv(voltage_path, parse_options=tabs)
    else:
        np.load(voltage_path)["arr_0"]
    for path in dendritic_paths:
        pacsv.read_csv(path, parse_options=tabs)
    one_column = pacsv.ParseOptions(delimiter="\x1f", quote_char=False)
    read = pacsv.ReadOptions(skip_rows=1, column_names=["line"])
    for path in synapse_paths + cell_paths:
        pacsv.read_csv(path, read_options=read, parse_options=one_column)
    return 0


def _folder_jobs(raw: str, out_dir: str) -> list[FolderJob]:
    jobs = []
    for i, folder in enumerate(discover(raw).folders):
        jobs.append(
            (
                folder.path_of(folder.voltage_file),
                [folder.path_of(n) for _, n in sorted(folder.synapse_files.items())],
                [folder.path_of(n) for _, n in sorted(folder.cell_files.items())],
                [folder.path_of(n) for _, n in sorted(folder.dendritic_files.items())],
                os.path.join(out_dir, f"folder{i}.pkl"),
            )
        )
    return jobs


def run_pool(fn, raw: str, out_dir: str, workers: int) -> float:
    jobs = _folder_jobs(raw, out_dir)
    started = time.monotonic()
    with cf.ProcessPoolExecutor(workers) as pool:
        list(pool.map(fn, jobs))
    return time.monotonic() - started


# ----------------------------------------------------------------------------- adapter


def adapter_figures(db: str, repeat: int = 10) -> dict:
    from simlake import DataBase

    ddf = DataBase(db)["voltage_traces"]
    keys = list(DataBase(db)["sim_trial_index"])
    rng = np.random.default_rng(0)
    ddf.loc[keys[0]].compute()  # warm-up
    lat = []
    for sti in rng.choice(keys, size=min(repeat, len(keys)), replace=False):
        t = time.perf_counter()
        ddf.loc[sti].compute()
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    frame = ddf.compute()
    full = time.perf_counter() - t
    mb = frame.memory_usage(deep=False).sum() / 1e6
    return {"loc_ms": 1000 * statistics.median(lat), "read_mbs": mb / full, "read_mb": mb}


# ----------------------------------------------------------------------------- driver


def tree_bytes(raw: str) -> tuple[int, int]:
    n = size = 0
    for dirpath, _, names in os.walk(raw):
        for name in names:
            n += 1
            size += os.path.getsize(os.path.join(dirpath, name))
    return n, size


def bench_size(trials: int, args, workdir: str) -> dict:
    per_folder = min(args.trials_per_folder, trials)
    runs = max(6, trials // per_folder)
    per_folder = max(1, trials // runs)
    raw = os.path.join(workdir, f"raw_{trials}")
    if not os.path.isdir(raw):
        synth.generate_tree(
            raw,
            runs=runs,
            trials=per_folder,
            times=args.times,
            synapses=args.synapses,
            cells=args.cells,
            seed=trials,
        )
    n_files, raw_bytes = tree_bytes(raw)
    n_trials = sum(len(f.trialnrs or ()) or 0 for f in discover(raw).folders) or runs * per_folder
    db = os.path.join(workdir, f"db_{trials}")
    shutil.rmtree(db, ignore_errors=True)
    result = {"trials": n_trials, "files": n_files, "raw_mb": raw_bytes / 1e6}
    read_tree(raw)
    result["ingest"] = run_simlake_ingest(raw, db)
    pickles = os.path.join(workdir, f"pickles_{trials}")
    shutil.rmtree(pickles, ignore_errors=True)
    os.makedirs(pickles)
    if args.baseline_max_trials is None or trials <= args.baseline_max_trials:
        read_tree(raw)
        result["baseline_s"] = run_baseline(args.baseline, raw, pickles, args.workers,
                                            args.isf_loadtxt)["total"]
        if not args.keep:
            shutil.rmtree(pickles, ignore_errors=True)
        read_tree(raw)
        result["ceiling_s"] = run_pool(_ceiling_folder, raw, pickles, args.workers)
    result["adapter"] = adapter_figures(db)
    if not args.keep:
        shutil.rmtree(pickles, ignore_errors=True)
    return result


def read_tree(raw: str, chunk: int = 8 << 20) -> None:
    """Read every file under ``raw`` once (into the page cache), discarding the bytes."""
    buf = bytearray(chunk)
    for dirpath, _, names in os.walk(raw):
        for name in names:
            with open(os.path.join(dirpath, name), "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass


def markdown(results: list[dict]) -> str:
    head = (
        "| trials | raw MB | files | ingest wall s (job s) | MB/s | trials/s "
        "| peak RSS JVM / Python MB | baseline s (MB/s) | ceiling s (MB/s) | vs baseline "
        "| of ceiling | loc ms | full read MB/s |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in results:
        ing = r["ingest"]
        job = ing["job_seconds"]
        mbs = r["raw_mb"] / job
        lines.append(
            f"| {r['trials']} | {r['raw_mb']:.0f} | {r['files']} | {ing['wall']:.1f} ({job:.1f}) "
            f"| {mbs:.1f} | {r['trials'] / job:.1f} "
            f"| {ing['java_rss'] / 1e6:.0f} / {ing['python_rss'] / 1e6:.0f} "
            + (
                f"| {r['baseline_s']:.1f} ({r['raw_mb'] / r['baseline_s']:.1f}) "
                f"| {r['ceiling_s']:.1f} ({r['raw_mb'] / r['ceiling_s']:.1f}) "
                f"| {r['baseline_s'] / job:.2f}x | {100 * r['ceiling_s'] / job:.1f}% "
                if "baseline_s" in r else "| not run | not run | - | - "
            )
            + f"| {r['adapter']['loc_ms']:.0f} | {r['adapter']['read_mbs']:.0f} |"
        )
    return "\n".join(lines)


def machine() -> str:
    return (
        f"{platform.platform()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}, "
        f"load average before the run {os.getloadavg()[0]:.1f}"
    )


def add_baseline_options(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """``--baseline`` and ``--isf-loadtxt``, shared by the benchmark commands."""
    names = ", ".join(f"{k}: {v}" for k, v in BASELINES.items())
    parser.add_argument(
        "--baseline", default="isf",
        choices=None if several else list(BASELINES),
        help=("which baselines, comma-separated" if several else "which baseline")
        + f" ({names}; default isf)",
    )
    parser.add_argument(
        "--isf-loadtxt", choices=("python", "numpy"), default="python",
        help="how the ISF-faithful baseline parses trace files: python = numpy <= 1.22's "
             "loadtxt, a Python call per value (ISF pins numpy 1.19.2; default), numpy = "
             "today's compiled numpy.loadtxt",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="200,2000,10000", help="trials per tree, comma-separated"
    )
    parser.add_argument("--times", type=int, default=10_000)
    parser.add_argument("--synapses", type=int, default=4_000)
    parser.add_argument("--cells", type=int, default=4_000)
    parser.add_argument("--trials-per-folder", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    add_baseline_options(parser)
    parser.add_argument(
        "--baseline-max-trials", type=int, default=None,
        help="skip baseline and ceiling for larger trees (the baseline writes about the raw "
             "bytes again and takes longest)",
    )
    parser.add_argument("--workdir", default=None, help="where trees go (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep generated trees and databases")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "RESULTS.md"))
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="one tiny tree, no RESULTS.md: checks that the benchmark runs",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.times, args.synapses, args.cells = "12", 300, 30, 20
        args.trials_per_folder, args.out = 2, None
    workdir = args.workdir or tempfile.mkdtemp(prefix="simlake-bench-")
    os.makedirs(workdir, exist_ok=True)
    results = []
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            print(
                f"size {size}: generating / ingesting / {BASELINES[args.baseline]} / ceiling "
                "/ adapter ...",
                file=sys.stderr,
                flush=True,
            )
            results.append(bench_size(size, args, workdir))
            print(markdown(results[-1:]), file=sys.stderr, flush=True)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    table = markdown(results)
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("# Benchmark results\n\n")
            fh.write(f"Machine: {machine()}.\n\n")
            fh.write(
                f"Command: `python benchmarks/ingest_bench.py --sizes {args.sizes}` "
                f"({args.times} time points, {args.synapses} synapse lines, {args.cells} "
                f"presynaptic cells per trial; {args.workers} worker processes for baseline "
                f"and ceiling; baseline: {BASELINES[args.baseline]}).\n\n"
            )
            fh.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

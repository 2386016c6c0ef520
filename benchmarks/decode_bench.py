"""Decode throughput benchmark (not collected by pytest): ``python benchmarks/decode_bench.py``.

Compares each decoder with a plain ``pyarrow.csv.read_csv`` of the same bytes, in one process,
repeated, warm-up excluded (numbers on shared machines swing; compare ratios).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from simlake.decode.activation import decode_synapses
from simlake.decode.spikes import spike_times_table
from simlake.decode.voltage import decode_voltage_csv


def voltage_bytes(n_rows: int, n_trials: int) -> bytes:
    rng = np.random.default_rng(0)
    t = np.round(100.0 + 0.025 * np.arange(n_rows), 3)
    vm = rng.normal(-60, 10, (n_rows, n_trials))
    buf = io.StringIO()
    buf.write("\t".join(["t"] + [f"Vm run {k:02d}" for k in range(n_trials)]) + "\n")
    for r in range(n_rows):
        buf.write(repr(float(t[r])) + "\t" + "\t".join(map(repr, vm[r].tolist())) + "\n")
    return buf.getvalue().encode()


def synapse_bytes(n_lines: int) -> bytes:
    rng = np.random.default_rng(1)
    out = ["# synapse type\tsynapse ID\tsoma distance\tsection ID\tsection pt ID\t"
           "dendrite label\tactivation times\n"]
    for i in range(n_lines):
        times = "".join(f"{float(v)}," for v in rng.uniform(0, 300, int(rng.integers(0, 4))))
        out.append(f"L2_C2\t{i}\t{float(rng.uniform(0, 1500))}\t{i % 90}\t{i % 13}\t"
                   f"Dendrite\t{times}\n")
    return "".join(out).encode()


def timed(fns: dict[str, object], repeat: int) -> dict[str, tuple[float, float]]:
    """(min, median) seconds per function, calls interleaved so machine noise hits all alike."""
    for fn in fns.values():
        fn()  # warm-up
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - start)
    return {name: (min(v), statistics.median(v)) for name, v in runs.items()}


def main(argv: list[str] | None = None) -> int:
    """Print MB/s of the decoders and of plain pyarrow.csv on the same bytes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)

    data = voltage_bytes(args.rows, args.trials)
    mb = len(data) / 1e6
    parse = pacsv.ParseOptions(delimiter="\t")
    table = decode_voltage_csv("bench.csv", data, "run", range(args.trials))
    results = timed({
        "plain pyarrow.csv.read_csv": lambda: pacsv.read_csv(pa.BufferReader(data),
                                                             parse_options=parse),
        "decode_voltage_csv": lambda: decode_voltage_csv("bench.csv", data, "run",
                                                         range(args.trials)),
        "spike_times_table": lambda: spike_times_table(table, -55.0),
    }, args.repeat)
    print(f"voltage {args.rows} rows x {args.trials} trials, {mb:.1f} MB "
          f"(min / median of {args.repeat}):")
    for name, (best, median) in results.items():
        rate = (f"{args.rows * args.trials / best / 1e6:6.0f} M samples/s"
                if name == "spike_times_table" else f"{mb / best:6.1f} / {mb / median:6.1f} MB/s")
        print(f"  {name:28s} {best:.3f} s / {median:.3f} s   {rate}")

    syn = synapse_bytes(4_400)  # every line has the times tab, so plain read_csv can read it
    smb = len(syn) / 1e6
    results = timed({
        "plain pyarrow.csv.read_csv": lambda: pacsv.read_csv(pa.BufferReader(syn),
                                                             parse_options=parse),
        "decode_synapses": lambda: decode_synapses("s.csv", syn, "run", 0),
    }, args.repeat * 4)
    print(f"synapses 4,400 lines, {smb:.2f} MB (plain leaves the times as one string):")
    for name, (best, median) in results.items():
        print(f"  {name:28s} {best * 1e3:.2f} ms / {median * 1e3:.2f} ms   "
              f"{smb / best:6.1f} / {smb / median:6.1f} MB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

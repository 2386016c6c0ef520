"""``simlake synth``: arguments and the command."""
from __future__ import annotations

import argparse
import sys

from simlake.synth.shapes import NETWORK_PARAMS, PROFILES, REAL_FOLDER_SIZES
from simlake.synth.tree import generate_tree


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``simlake synth``; defaults = the 12 x 25 tree of the ingest issue."""
    parser.add_argument("out_dir", help="folder to create (must not exist or be empty)")
    parser.add_argument("--runs", type=int, default=12, help="sim-run folders (>= 6: all variants)")
    parser.add_argument("--trials", type=_sizes, default=None,
                        help="trials per folder; comma-separated: cycled over the folders "
                             "(default 25; real profile: "
                             f"{','.join(map(str, REAL_FOLDER_SIZES))})")
    parser.add_argument("--profile", choices=PROFILES, default="default",
                        help="real: files of real simrun size, structure and number formats")
    parser.add_argument("--network-params", choices=NETWORK_PARAMS, default="variants",
                        help="variants: files A and B alternate; shared: one file for all "
                             "folders; distinct: every folder its own (a parameter sweep)")
    parser.add_argument("--times", type=int, default=None,
                        help="voltage rows per trace (default 2000; real 9802)")
    parser.add_argument("--synapses", type=int, default=None,
                        help="synapses of the cell (default 400; real 24780)")
    parser.add_argument("--cells", type=int, default=None,
                        help="presynaptic cells (default 300; real 24780)")
    parser.add_argument("--morph-points", type=int, default=None,
                        help="points of the .hoc (default 300; real 13962)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")


def run(args: argparse.Namespace) -> int:
    """Generate the tree described by parsed ``args``; print a summary; return the exit code."""
    trials = args.trials or (REAL_FOLDER_SIZES if args.profile == "real" else (25,))
    try:
        report = generate_tree(args.out_dir, runs=args.runs, trials=trials,
                               times=args.times, synapses=args.synapses, cells=args.cells,
                               seed=args.seed, morph_points=args.morph_points,
                               profile=args.profile, network_params=args.network_params)
    except (FileExistsError, ValueError) as err:
        print(f"simlake synth: {err}", file=sys.stderr)
        return 2
    print(f"wrote {report.root}: {report.summary_line()}")
    for f in report.folders:
        print(f"  {f.sim_run}  era={f.era} voltage={f.voltage_format} pad={f.padding} "
              f"numbers={f.number_format} "
              f"trials={f.trial_numbers[0]}..{f.trial_numbers[-1]} ({f.n_trials})")
    print(f"  {report.running_folder}  (in progress: must be skipped)")
    return 0

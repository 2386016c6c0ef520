"""The ingest job: argument parsing, config, session, run. Shared by ``jobs/ingest_simrun.py``
(spark-submit), ``simlake ingest`` and ``simlake.isf.init``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from simlake.config import load_ingest_defaults, load_spark_profile
from simlake.ingest_options import IngestOptions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from simlake.spark.ingest import IngestSummary

log = logging.getLogger(__name__)

DEMO_DIR = "simlake-demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ingest job's command-line arguments."""
    parser.add_argument("simresult_path", nargs="?",
                        help="raw simrun tree; omitted: generate a sample tree under "
                        "./simlake-demo")
    parser.add_argument("db_path", nargs="?", help="database folder (default: ./simlake-demo/db)")
    parser.add_argument("--profile", default="local",
                        help="Spark profile (local, cluster) or a .toml path")
    parser.add_argument("--conf-dir", default=None,
                        help="configuration folder whose files replace the packaged ones "
                             "(default: $SIMLAKE_CONF_DIR)")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="Spark setting; overrides spark-defaults.conf and the profile")
    parser.add_argument("--strict", action="store_true",
                        help="any rejected file fails its folder and the run exits non-zero")
    parser.add_argument("--refresh", action="store_true",
                        help="replace folders whose files changed since they were ingested")
    parser.add_argument("--no-core", dest="core", action="store_false",
                        help="add the selected keys for folders already in the database only")
    for flag in ("voltage_traces", "synapse_activation", "dendritic_voltage_traces",
                 "parameterfiles", "spike_times", "dendritic_spike_times"):
        parser.add_argument(f"--no-{flag.replace('_', '-')}", dest=flag, action="store_false",
                            help=f"do not build {flag}")
    parser.add_argument("--dendritic-spike-times-threshold", type=float, default=None)
    parser.add_argument("--target-task-mb", type=float, default=None,
                        help="raw MB decoded per Spark task (sets data file sizes)")
    parser.add_argument("--batch-gb", type=float, default=None, help="raw GB per commit batch")
    parser.add_argument("--synth-trials", type=int, default=25,
                        help="trials per folder of the generated sample tree")
    parser.add_argument("--pause-after", default=None, metavar="STEP[:N]",
                        help="test hook: on reaching STEP (a table key, 'decoded' or "
                             "'pre-metadata') of commit batch N, create --pause-file and wait "
                             "until it is deleted")
    parser.add_argument("--pause-file", default=None, help="test hook: see --pause-after")


def options_from_args(args: argparse.Namespace) -> IngestOptions:
    """IngestOptions from parsed arguments and ``conf/ingest.toml`` defaults."""
    defaults = load_ingest_defaults(args.conf_dir)
    return IngestOptions.from_defaults(
        defaults,
        simresult_path=args.simresult_path,
        db_path=args.db_path,
        core=args.core,
        voltage_traces=args.voltage_traces,
        synapse_activation=args.synapse_activation,
        dendritic_voltage_traces=args.dendritic_voltage_traces,
        parameterfiles=args.parameterfiles,
        spike_times=args.spike_times,
        dendritic_spike_times=args.dendritic_spike_times,
        dendritic_spike_times_threshold=args.dendritic_spike_times_threshold,
        strict=args.strict,
        refresh=args.refresh,
        target_task_bytes=int(args.target_task_mb * 2**20) if args.target_task_mb else None,
        batch_bytes=int(args.batch_gb * 2**30) if args.batch_gb else None,
        pause_after=args.pause_after,
        pause_file=args.pause_file,
    )


def run(spark: SparkSession, opts: IngestOptions) -> IngestSummary:
    """Run one ingest with an existing session."""
    from simlake.spark.ingest import ingest

    return ingest(spark, opts)


#: Exit codes of the ingest job.
EXIT_OK, EXIT_FAILED, EXIT_REJECTED, EXIT_CONCURRENT = 0, 1, 2, 3


def exit_code(opts: IngestOptions, summary: IngestSummary) -> int:
    """0, or ``EXIT_REJECTED`` when ``--strict`` and any file or folder was rejected."""
    return EXIT_REJECTED if opts.strict and summary.rejections else EXIT_OK


def _ensure_demo_tree(args: argparse.Namespace) -> None:
    if args.simresult_path:
        if not args.db_path:
            raise SystemExit("simlake ingest: DB_PATH is required when SIMRESULT_PATH is given")
        return
    from simlake import synth

    raw = os.path.join(DEMO_DIR, "raw")
    if not os.path.isdir(raw):
        report = synth.generate_tree(raw, runs=12, trials=args.synth_trials, seed=0)
        print(f"generated a sample simrun tree in {raw}: {report.summary_line()}")
    args.simresult_path = raw
    args.db_path = args.db_path or os.path.join(DEMO_DIR, "db")


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, configure, start Spark, ingest, print the summary, stop Spark."""
    parser = argparse.ArgumentParser(prog="simlake ingest", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    _ensure_demo_tree(args)
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        print(f"simlake ingest: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not os.path.isdir(opts.simresult_path):
        print(f"simlake ingest: {opts.simresult_path}: not a directory", file=sys.stderr)
        return EXIT_FAILED
    profile = load_spark_profile(args.profile, args.conf_dir)

    from simlake.spark.ingest import DatabaseMismatchError
    from simlake.spark.session import build_session
    from simlake.spark.tables import ConcurrentIngestError

    spark = build_session(profile, dict(kv.split("=", 1) for kv in args.conf if "=" in kv))
    try:
        summary = run(spark, opts)
    except ConcurrentIngestError as exc:
        print(f"simlake ingest: {exc}", file=sys.stderr)
        return EXIT_CONCURRENT
    except DatabaseMismatchError as exc:
        print(f"simlake ingest: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        spark.stop()
    print(summary)
    return exit_code(opts, summary)

"""The ingest job: argument parsing, checks, config, session, run, summary, exit code. Shared
by ``jobs/ingest_simrun.py`` (spark-submit), ``simlake ingest`` and ``simlake.isf.init``.

Exit codes (a scheduler can act on them; ``simlake ingest --help`` lists them too):

- 0: every sim-run folder found is in the database (ingested now or before; ``_running``
  folders are skipped and taken by a later run);
- 1: a usage error (bad argument, unsupported URI) or a fault (full disk, unwritable database,
  Java, Delta's jars, Spark): one line says which, the log file holds the detail;
- 2: rejected files or failed folders: the good data landed, the summary and ``ingest_errors``
  name each rejected file with its reason (also for folders that failed in an earlier run and
  are not retried until their files change);
- 3: conflicting concurrent writers exhausted the retries (nothing committed is lost; rerun);
- 4: nothing to ingest where a tree was expected: no sim-run folder under the raw path, or the
  raw path is itself a sim-run folder (pass its parent).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import math
import os
import uuid
from typing import TYPE_CHECKING

from simlake.config import load_ingest_defaults, load_spark_profile
from simlake.console import NORMAL, QUIET, VERBOSE, Console
from simlake.ingest_options import IngestOptions
from simlake.preflight import PreflightError
from simlake.usage import (
    EXIT_CONCURRENT,
    EXIT_FAULT,
    EXIT_INTERRUPTED,
    EXIT_NOTHING,
    EXIT_OK,
    EXIT_REJECTED,
    UsageParser,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from simlake.ingest_report import IngestSummary
    from simlake.runlog import RunLog

log = logging.getLogger(__name__)

DEMO_DIR = "simlake-demo"

#: Exit codes of the ingest job (see the module docstring; their one home is simlake.usage).
EXIT_FAILED = EXIT_FAULT

EXIT_HELP = """exit codes:
  0  every sim-run folder found is in the database (ingested now or before)
  1  usage error or fault (one line names it; details in the log file it names)
  2  rejected files or failed folders (the good data landed; the summary names each)
  3  concurrent writers kept conflicting (nothing committed is lost; rerun)
  4  nothing to ingest: no sim-run folder under SIMRESULT_PATH, or it is itself a
     sim-run folder (pass its parent)
--strict makes any rejected file fail its whole folder (nothing of it is written)."""


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
                        help="any rejected file fails its whole folder (exit 2 as without)")
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
    parser.add_argument("--summary-json", default=None, metavar="PATH",
                        help="also write the run's summary as JSON to PATH (the database keeps "
                             "the same record in _simlake_runs/)")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", action="store_true",
                      help="show Spark's and the job's log on the console too")
    loud.add_argument("-q", "--quiet", action="store_true",
                      help="print only the summary and errors")
    parser.add_argument("--pause-after", default=None, metavar="STEP[:N]",
                        help="test hook: on reaching STEP (a table key, 'decoded' or "
                             "'pre-metadata') of commit batch N, create --pause-file and wait "
                             "until it is deleted")
    parser.add_argument("--pause-file", default=None, help="test hook: see --pause-after")


def _positive(value: float | None, flag: str) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise PreflightError(f"{flag} must be a positive number, not {value}")


def options_from_args(args: argparse.Namespace) -> IngestOptions:
    """IngestOptions from parsed arguments and ``conf/ingest.toml`` defaults; every argument
    checked (``PreflightError`` names the bad one), nothing started."""
    from simlake.preflight import local_path

    _positive(args.target_task_mb, "--target-task-mb")
    _positive(args.batch_gb, "--batch-gb")
    if args.synth_trials < 1:
        raise PreflightError(f"--synth-trials must be at least 1, not {args.synth_trials}")
    threshold = args.dendritic_spike_times_threshold
    if threshold is not None and not math.isfinite(threshold):
        raise PreflightError(f"--dendritic-spike-times-threshold must be finite, not {threshold}")
    if args.conf_dir is not None and not os.path.isdir(args.conf_dir):
        raise PreflightError(f"{args.conf_dir}: --conf-dir is not a directory")
    if args.summary_json is not None:
        folder = os.path.dirname(os.path.abspath(args.summary_json))
        if not os.path.isdir(folder):
            raise PreflightError(f"{args.summary_json}: --summary-json folder {folder} does "
                                 "not exist")
    defaults = load_ingest_defaults(args.conf_dir)
    try:
        return IngestOptions.from_defaults(
            defaults,
            simresult_path=local_path(args.simresult_path, "SIMRESULT_PATH"),
            db_path=local_path(args.db_path, "DB_PATH"),
            core=args.core,
            voltage_traces=args.voltage_traces,
            synapse_activation=args.synapse_activation,
            dendritic_voltage_traces=args.dendritic_voltage_traces,
            parameterfiles=args.parameterfiles,
            spike_times=args.spike_times,
            dendritic_spike_times=args.dendritic_spike_times,
            dendritic_spike_times_threshold=threshold,
            strict=args.strict,
            refresh=args.refresh,
            target_task_bytes=(max(1, int(args.target_task_mb * 2**20))
                               if args.target_task_mb else None),
            batch_bytes=max(1, int(args.batch_gb * 2**30)) if args.batch_gb else None,
            pause_after=args.pause_after,
            pause_file=args.pause_file,
        )
    except ValueError as exc:
        raise PreflightError(str(exc)) from exc


def run(spark: SparkSession, opts: IngestOptions) -> IngestSummary:
    """Run one ingest with an existing session."""
    from simlake.spark.ingest import ingest

    return ingest(spark, opts)


def exit_code(opts: IngestOptions, summary: IngestSummary) -> int:
    """The exit code of a run that finished (see the module docstring): ``EXIT_REJECTED`` if
    any file or folder was rejected or a folder that failed before is still left out,
    ``EXIT_NOTHING`` if the tree holds no sim-run folder at all, else ``EXIT_OK``."""
    if summary.rejections or summary.folders_failed or summary.folders_failed_before:
        return EXIT_REJECTED
    if not summary.folders_found and not summary.skipped_running:
        return EXIT_NOTHING
    return EXIT_OK


def _ensure_demo_tree(args: argparse.Namespace, console: Console) -> None:
    if args.simresult_path:
        if not args.db_path:
            raise PreflightError("DB_PATH is required when SIMRESULT_PATH is given")
        return
    from simlake import synth

    raw = os.path.join(DEMO_DIR, "raw")
    if not os.path.isdir(raw):
        report = synth.generate_tree(raw, runs=12, trials=args.synth_trials, seed=0)
        console.note(f"generated a sample simrun tree in {raw}: {report.summary_line()}")
    args.simresult_path = raw
    args.db_path = args.db_path or os.path.join(DEMO_DIR, "db")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse and check the arguments, plan the run on the driver (a run with
    nothing new ends there, without Spark), start Spark, ingest, print the summary, keep the
    run's record and log in the database; the exit code says how it went."""
    parser = UsageParser(prog="simlake ingest", epilog=EXIT_HELP,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Ingest a raw simrun tree into the Delta tables of a database.")
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error (exit 1)
        return int(exc.code or 0)
    level = QUIET if args.quiet else VERBOSE if args.verbose else NORMAL
    console = Console(level)
    try:
        _ensure_demo_tree(args, console)
        opts = options_from_args(args)
        profile = load_spark_profile(args.profile, args.conf_dir)
        spark_conf = spark_settings(args.conf)
    except (PreflightError, FileNotFoundError, ValueError) as exc:
        console.error(f"simlake ingest: {exc}")
        return EXIT_FAILED
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    opts = dataclasses.replace(opts, run_id=run_id)
    from simlake.runlog import RunLog

    runlog = RunLog(run_id, verbose=level == VERBOSE)
    runlog.start_logging()
    started = _now()
    summary, error = None, None
    try:
        summary = _run(opts, profile, console, runlog, spark_conf)
        code = exit_code(opts, summary)
    except PreflightError as exc:  # refused before doing anything: the line says it all
        runlog.discard()
        if args.summary_json:  # the scheduler still gets its record (none in the database)
            _keep_record(opts, None, started, exc.exit_code, str(exc), None, args.summary_json,
                         in_database=False)
        console.error(f"simlake ingest: {exc}")
        return exc.exit_code
    except BaseException as exc:  # every fault ends here: one line, details in the log
        code, error = _fault(exc, runlog, opts.db_path)
    log_path = runlog.keep_in(opts.db_path)
    _keep_record(opts, summary, started, code, error, log_path, args.summary_json)
    runlog.close()
    if summary is not None:
        console.summary(str(summary) + f"\n  log: {log_path}")
    if error is not None:
        console.error(f"simlake ingest: {error} (details: {log_path})")
    elif code == EXIT_NOTHING:
        console.error(f"simlake ingest: {opts.simresult_path}: no sim-run folder found; "
                      "nothing to ingest")
    return code


def spark_settings(pairs: list[str]) -> dict[str, str]:
    """``--conf KEY=VALUE`` arguments as a dict (a malformed one is a ValueError)."""
    bad = [p for p in pairs if "=" not in p or not p.split("=", 1)[0]]
    if bad:
        raise ValueError(f"--conf {bad[0]!r}: expected KEY=VALUE")
    return dict(p.split("=", 1) for p in pairs)


def _run(opts: IngestOptions, profile, console: Console, runlog: RunLog,
         spark_conf: dict[str, str] | None = None) -> IngestSummary:
    """Check, plan, and ingest with Spark only if there is something to ingest."""
    from simlake import preflight
    from simlake.discovery import discover, parse_sim_run_name
    from simlake.spark.ingest import finish_without_spark, ingest, plan_run

    preflight.check_raw_tree(opts.simresult_path)
    if parse_sim_run_name(os.path.basename(opts.simresult_path)) is not None:
        raise PreflightError(f"{opts.simresult_path}: is itself a sim-run folder, not a tree of "
                             "them; pass the folder that holds it: "
                             f"{os.path.dirname(opts.simresult_path)}", EXIT_NOTHING)
    preflight.check_database(opts.db_path)
    tree = discover(opts.simresult_path)
    if not tree.folders and not tree.skipped_running:
        return finish_without_spark(opts, plan_run(opts, tree))
    plan = plan_run(opts, tree)  # reads only: a database not created yet plans every folder
    if plan.todo and profile.master and not preflight.jvm_running():
        preflight.check_java()  # before anything is created: a bad Java leaves no folder
    preflight.check_writable(opts.db_path)
    if not plan.todo:
        log.info("nothing to ingest: Spark not started")
        return finish_without_spark(opts, plan)

    from simlake.spark.progress import IngestProgress
    from simlake.spark.session import build_session

    quiet_spark = {} if console.level == VERBOSE else {"spark.ui.showConsoleProgress": "false"}
    with runlog.process_output():  # the JVM's output (Ivy, log4j) goes to the log
        spark = build_session(profile, {**quiet_spark, **(spark_conf or {})})
    progress = IngestProgress(console)
    try:
        return ingest(spark, opts, tree=tree, progress=progress)
    finally:
        progress.stop()
        try:
            spark.stop()
        except Exception:  # a secondary error must not mask the first
            log.exception("stopping Spark failed")


def _fault(exc: BaseException, runlog: RunLog, db_path: str) -> tuple[int, str]:
    """The exit code and the one line of a run stopped by ``exc`` (logged in full)."""
    from simlake.faults import describe
    from simlake.spark.ingest import DatabaseMismatchError
    from simlake.spark.tables import ConcurrentIngestError

    log.error("the run stopped", exc_info=exc)
    if isinstance(exc, ConcurrentIngestError | DatabaseMismatchError):
        code = EXIT_CONCURRENT if isinstance(exc, ConcurrentIngestError) else EXIT_FAILED
        return code, " ".join(str(exc).split())
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, ("interrupted; nothing committed is lost, rerun the ingest to "
                                  "complete it")
    if isinstance(exc, SystemExit):
        return int(exc.code or EXIT_FAILED), f"stopped (exit {exc.code})"
    return EXIT_FAILED, describe(exc, runlog.text(), where=db_path)


def _keep_record(opts: IngestOptions, summary: IngestSummary | None, started: str, code: int,
                 error: str | None, log_path: str | None, summary_json: str | None,
                 in_database: bool = True) -> None:
    """The run record: into the database (when it is one we can write) and ``--summary-json``.
    Failing to keep it is logged, never raised (it must not mask the run's outcome)."""
    from simlake import runrecords

    try:
        versions = runrecords.table_versions(opts.db_path) if in_database else {}
    except Exception:
        log.exception("could not read the table versions")
        versions = {}
    record = runrecords.ingest_record(str(opts.run_id), summary, started=started, finished=_now(),
                                      exit_code=code, table_versions=versions, error=error,
                                      log_path=log_path)
    record.setdefault("simresult_path", opts.simresult_path)
    record.setdefault("db_path", opts.db_path)
    if in_database and os.path.isdir(opts.db_path) and (summary is not None or versions):
        try:
            runrecords.write_run_record(opts.db_path, record)
        except OSError:
            log.exception("could not keep the run record in the database")
    if summary_json:
        try:
            runrecords.write_json(summary_json, record)
        except OSError:
            log.exception("could not write --summary-json %s", summary_json)

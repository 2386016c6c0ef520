"""``simlake info | history | optimize | vacuum | verify DB``: operator commands, no JVM.

Exit codes: 0 ok, 1 usage error or fault (one line on stderr), 2 (``verify`` only): the
database has problems, one line each on stdout.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from simlake.usage import EXIT_FAULT, EXIT_OK, EXIT_PROBLEMS, UsageParser, fail

log = logging.getLogger(__name__)

def _parser(name: str, doc: str | None) -> UsageParser:
    parser = UsageParser(prog=f"simlake {name}", description=doc)
    parser.add_argument("db_path", help="database folder")
    return parser


def _open(prog: str, db_path: str) -> str | None:
    """Absolute path of the database, or None after printing why it is none."""
    from simlake.ops.tables import database_problem

    problem = database_problem(db_path)
    if problem:
        fail(prog, problem)
        return None
    return os.path.abspath(db_path)


def _guarded(prog: str, action) -> int:
    """Run ``action()``; a fault is one line on stderr and exit 1."""
    try:
        return action()
    except Exception as exc:  # a fault of the database or the file system
        log.debug("%s failed", prog, exc_info=True)
        return fail(prog, f"{type(exc).__name__}: {exc}")


def info_main(argv: list[str] | None = None) -> int:
    """``simlake info DB``: tables, Delta versions, trials, data files, size, last ingest."""
    parser = _parser("info", info_main.__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    root = _open(parser.prog, args.db_path)
    if root is None:
        return EXIT_FAULT
    from simlake.ops.info import database_info, format_info

    def run() -> int:
        info = database_info(root)
        print(json.dumps(info, indent=1) if args.json else "\n".join(format_info(info)))
        return EXIT_OK

    return _guarded(parser.prog, run)


def history_main(argv: list[str] | None = None) -> int:
    """``simlake history DB``: every ingest run, oldest first, from the kept run records
    (or, where none were kept, from the metadata table and its Delta log)."""
    parser = _parser("history", history_main.__doc__)
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")
    args = parser.parse_args(argv)
    root = _open(parser.prog, args.db_path)
    if root is None:
        return EXIT_FAULT
    from simlake.ops.info import format_history, run_history

    def run() -> int:
        source, runs = run_history(root)
        if args.json:
            print(json.dumps({"source": source, "runs": runs}, indent=1, default=str))
        else:
            print("\n".join(format_history(source, runs)))
        return EXIT_OK

    return _guarded(parser.prog, run)


def optimize_main(argv: list[str] | None = None) -> int:
    """``simlake optimize DB``: compact and sort the big tables, as ``simlake.optimize``
    does (then vacuum the files it replaced, once they are --retention-hours old)."""
    from simlake.adapter.optimize import RETENTION_HOURS, TARGET_FILE_BYTES

    parser = _parser("optimize", optimize_main.__doc__)
    parser.add_argument("--select", nargs="+", default=None, metavar="KEY",
                        help="keys to rewrite (default: the big per-trial tables)")
    parser.add_argument("--target-file-mb", type=float, default=TARGET_FILE_BYTES / 2**20,
                        help="data file size to aim at (default %(default)g)")
    parser.add_argument("--retention-hours", type=float, default=RETENTION_HOURS,
                        help="vacuum files replaced at least this long ago "
                             "(default %(default)g)")
    parser.add_argument("--no-vacuum", action="store_true", help="leave replaced files")
    args = parser.parse_args(argv)
    if args.target_file_mb <= 0:
        parser.error(f"--target-file-mb must be > 0, not {args.target_file_mb:g}")
    if args.retention_hours < 0:
        parser.error(f"--retention-hours must be >= 0, not {args.retention_hours:g}")
    root = _open(parser.prog, args.db_path)
    if root is None:
        return EXIT_FAULT
    from simlake.adapter.optimize import optimize

    def run() -> int:
        results = optimize(root, select=args.select,
                           target_file_bytes=int(args.target_file_mb * 2**20),
                           retention_hours=args.retention_hours, vacuum=not args.no_vacuum)
        for result in results.values():
            print(result)
        if not results:
            print("nothing to optimize (no big per-trial tables)")
        return EXIT_OK

    return _guarded(parser.prog, run)


def vacuum_main(argv: list[str] | None = None) -> int:
    """``simlake vacuum DB``: delete data files that every table version newer than the
    retention no longer uses (Delta's default: 7 days, so time travel and running readers
    keep working within it), and run logs older than the retention (see --keep-logs). Run
    records are history and stay."""
    from simlake.adapter.optimize import RETENTION_HOURS  # Delta's default, 7 days
    from simlake.ops.retention import KEEP_LAST_LOGS

    parser = _parser("vacuum", vacuum_main.__doc__)
    parser.add_argument("--retention-hours", type=float, default=RETENTION_HOURS,
                        help="keep files removed less than this long ago (default "
                             "%(default)g, Delta's)")
    parser.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    parser.add_argument("--force", action="store_true",
                        help="allow --retention-hours below 1 (only when no ingest and no "
                             "reader is running: their files would be deleted)")
    parser.add_argument("--keep-logs", type=int, default=KEEP_LAST_LOGS, metavar="N",
                        help="run logs older than the retention are deleted, except the "
                             "newest N (default %(default)s) and those of failed runs")
    args = parser.parse_args(argv)
    if args.retention_hours < 0:
        parser.error(f"--retention-hours must be >= 0, not {args.retention_hours:g}")
    if args.keep_logs < 0:
        parser.error(f"--keep-logs must be >= 0, not {args.keep_logs}")
    if args.retention_hours < 1 and not args.force:
        parser.error("--retention-hours below 1 deletes the files of a running ingest or "
                     "reader; add --force if none is running")
    root = _open(parser.prog, args.db_path)
    if root is None:
        return EXIT_FAULT

    def run() -> int:
        from simlake.ops.retention import prune_logs
        from simlake.ops.tables import delta_tables
        from simlake.runlog import LOGS_DIR

        total = 0
        for name in delta_tables(root):
            files = _vacuum(os.path.join(root, name), args.retention_hours, args.dry_run)
            total += len(files)
            if files:
                verb = "would delete" if args.dry_run else "deleted"
                print(f"{name}: {verb} {len(files)} file(s)")
        logs = prune_logs(root, args.retention_hours, args.keep_logs, args.dry_run)
        if logs:
            verb = "would delete" if args.dry_run else "deleted"
            print(f"{LOGS_DIR}: {verb} {len(logs)} run log(s) (kept the newest "
                  f"{args.keep_logs} and those of failed runs)")
        verb = "would be deleted" if args.dry_run else "deleted"
        print(f"vacuum: {total} file(s) {verb} (retention {args.retention_hours:g} h)")
        return EXIT_OK

    return _guarded(parser.prog, run)


def _vacuum(path: str, retention_hours: float, dry_run: bool) -> list[str]:
    import math

    from deltalake import DeltaTable

    from simlake.adapter.optimize import vacuum_table

    if not dry_run:
        return vacuum_table(path, retention_hours)
    hours = max(0, int(math.ceil(retention_hours)))
    return list(DeltaTable(path).vacuum(retention_hours=hours, dry_run=True,
                                        enforce_retention_duration=False))


def verify_main(argv: list[str] | None = None) -> int:
    """``simlake verify DB``: every data file present and readable, statistics matching,
    each trial once, param-file references resolving. One line per problem; exit 2 if any."""
    parser = _parser("verify", verify_main.__doc__)
    parser.add_argument("--full", action="store_true",
                        help="read every column of every data file (default: footers and "
                             "key columns)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no notes, problems only")
    args = parser.parse_args(argv)
    root = _open(parser.prog, args.db_path)
    if root is None:
        return EXIT_FAULT
    from simlake.ops.verify import verify

    def run() -> int:
        report = verify(root, full=args.full)
        for line in report.problems:
            print(line)
        if not args.quiet:
            for line in report.notes:
                print(f"note: {line}")
        print(report.summary())
        sys.stdout.flush()
        return EXIT_OK if report.ok else EXIT_PROBLEMS

    return _guarded(parser.prog, run)

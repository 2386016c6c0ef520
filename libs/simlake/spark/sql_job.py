"""``simlake register`` and ``simlake sql``: Spark SQL over a database folder."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import re
import uuid
from collections.abc import Iterator

from simlake.config import load_spark_profile, load_toml

log = logging.getLogger(__name__)


def catalog_defaults(conf_dir: str | None) -> dict[str, str]:
    """``conf/catalog.toml``: warehouse folder and database name."""
    raw = load_toml("catalog", conf_dir).get("catalog", {})
    return {
        "warehouse": os.path.expanduser(raw.get("warehouse", "~/.simlake/warehouse")),
        "database": raw.get("database", "simlake"),
    }


def _session(args: argparse.Namespace, catalog: bool):
    from simlake.spark.catalog import catalog_conf
    from simlake.spark.session import build_session

    extra = catalog_conf(args.warehouse) if catalog else {}
    extra["spark.ui.showConsoleProgress"] = "false"  # the printed table is the output
    return build_session(load_spark_profile(args.profile, args.conf_dir), extra_conf=extra)


class QueryFailed(Exception):
    """A Spark run of ``register``/``sql`` failed: ``str()`` is the line to print (it names
    the log file that holds the detail)."""


@contextlib.contextmanager
def _spark_run(command: str, verbose: bool) -> Iterator[None]:
    """Within: Spark's and py4j's output, log records and tracebacks go to a log file, not the
    console (``verbose``: they stay on the console). A failure inside becomes
    :class:`QueryFailed` with one line naming the cause and the log, which is kept; after a
    success the log is deleted."""
    from simlake.runlog import RunLog

    run_id = dt.datetime.now(dt.UTC).strftime(f"{command}-%Y%m%dT%H%M%SZ-") \
        + uuid.uuid4().hex[:8]
    runlog = RunLog(run_id, verbose=verbose)
    runlog.start_logging()
    try:
        with runlog.process_output():  # the JVM keeps these descriptors for its life
            yield
    except Exception as exc:
        log.error("%s failed", command, exc_info=exc)
        line = query_error_line(exc, runlog.text())
        runlog.close()
        raise QueryFailed(f"{line} (details: {runlog.path})") from exc
    except BaseException:
        runlog.close()
        raise
    runlog.discard()


#: ``[ERROR_CLASS] message`` of a Spark SQL error, its SQLSTATE and position in the query.
_SQL_ERROR = re.compile(r"^\[(?P<condition>[A-Z][A-Z0-9_.]*)\] (?P<msg>[^\n]*)")
_SQL_STATE = re.compile(r"\s*SQLSTATE: \w+.*$")
_POSITION = re.compile(r"; line (\d+) pos (\d+)")


def query_error_line(exc: BaseException, log_text: str = "") -> str:
    """One line for a failed query: Spark's error class and first message line, and where in
    the query (``[TABLE_OR_VIEW_NOT_FOUND] The table or view `x` cannot be found. ... (line 1
    pos 21)``); any other fault as :func:`simlake.faults.describe` names it."""
    from simlake.faults import describe

    text = str(exc).strip()
    m = _SQL_ERROR.match(text)
    if m is None:
        return describe(exc, log_text)
    msg = _SQL_STATE.sub("", m.group("msg")).rstrip("; ")
    at = _POSITION.search(text)
    where = f" (line {at.group(1)} pos {at.group(2)})" if at else ""
    line = " ".join(f"query failed: [{m.group('condition')}] {msg}{where}".split())
    return line if len(line) <= 400 else line[:397] + "..."


def register_main(argv: list[str] | None = None) -> int:
    """``simlake register DB_PATH [--database NAME]``: persistent catalog entries.

    ``NAME_delta.<key>``: the Delta tables themselves (all rows; for DESCRIBE HISTORY,
    OPTIMIZE, time travel). ``NAME.<key>``: views of completed folders only, and the
    long/summary views. ``simlake sql --warehouse W`` then queries them.
    """
    from simlake.usage import EXIT_OK, UsageParser, fail

    parser = UsageParser(prog="simlake register", description=register_main.__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db_path", help="database folder")
    parser.add_argument("--profile", default="local", help="Spark profile in conf/")
    parser.add_argument("--conf-dir", default=None)
    parser.add_argument("--warehouse", default=None,
                        help="metastore + warehouse folder (default: conf/catalog.toml)")
    parser.add_argument("--database", default=None, help="catalog database name")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Spark's own output and log records on the console")
    args = parser.parse_args(argv)
    problem = _check_database(args.db_path)
    if problem:
        return fail(parser.prog, problem)
    defaults = catalog_defaults(args.conf_dir)
    args.warehouse = args.warehouse or defaults["warehouse"]
    database = args.database or defaults["database"]
    from simlake.spark.catalog import register

    refused = None
    try:
        with _spark_run("register", args.verbose):
            spark = _session(args, catalog=True)
            try:
                names = register(spark, args.db_path, database)
            except ValueError as exc:  # a name that is taken: the line says it all
                refused, names = str(exc), []
            finally:
                spark.stop()
    except QueryFailed as exc:
        return fail(parser.prog, str(exc))
    if refused:
        return fail(parser.prog, refused)
    print(f"registered in {args.warehouse}: " + ", ".join(names))
    return EXIT_OK


def _printable(df):
    """Array/map/struct columns as JSON text, so any result can be printed or written as csv."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, MapType, StructType

    cols = []
    for field in df.schema.fields:
        if isinstance(field.dataType, ArrayType | MapType | StructType):
            cols.append(F.to_json(F.col(f"`{field.name}`")).alias(field.name))
        else:
            cols.append(F.col(f"`{field.name}`"))
    return df.select(*cols)


def _check_database(db_path: str) -> str | None:
    """Why ``db_path`` cannot be queried (one line), or None; checked before Spark starts."""
    from simlake.spark.catalog import existing_tables

    if not os.path.exists(db_path):
        return f"{db_path}: no such database folder"
    if not os.path.isdir(db_path):
        return f"{db_path}: not a folder"
    if not existing_tables(db_path):
        return f"{db_path}: not a simlake database (no Delta tables in it)"
    return None


def sql_main(argv: list[str] | None = None) -> int:
    """``simlake sql [DB_PATH] "SELECT ..."``: run a query over a database's tables and views.

    Plain names (``voltage_traces``, ``trial_summary`` ...) show completed folders only.
    With ``--warehouse W`` the session uses the catalog ``simlake register --warehouse W``
    wrote (its database is the current one; DB_PATH may then be left out). Exit codes:
    0 ok, 1 usage error, a failed query or a fault: one line on stderr naming the cause (and
    the log file with Spark's detail).
    """
    from simlake.usage import EXIT_OK, UsageParser, fail

    parser = UsageParser(prog="simlake sql", description=sql_main.__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db_path", nargs="?", default=None,
                        help="database folder (optional with --warehouse)")
    parser.add_argument("query", help="Spark SQL; tables and views by plain name")
    parser.add_argument("--profile", default="local", help="Spark profile in conf/")
    parser.add_argument("--conf-dir", default=None)
    parser.add_argument("--warehouse", default=None,
                        help="use the catalog that `simlake register --warehouse` wrote here")
    parser.add_argument("--database", default=None,
                        help="with --warehouse: the registered database to use "
                             "(default: conf/catalog.toml)")
    parser.add_argument("--out", default=None,
                        help="write the result: x.csv or x.parquet as one file, anything else "
                             "as a folder of parquet parts; an existing non-empty target is "
                             "refused unless --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out file or previous result folder")
    parser.add_argument("--limit", type=int, default=50, help="rows printed (default 50)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Spark's own output and log records on the console")
    args = parser.parse_args(argv)
    prog = parser.prog
    if args.db_path is None and args.warehouse is None:
        return fail(prog, "give a database folder, or --warehouse of a registered catalog")
    if args.db_path is not None:
        problem = _check_database(args.db_path)
        if problem:
            return fail(prog, problem)
    if args.warehouse is not None:
        if not os.path.isdir(os.path.join(args.warehouse, "metastore_db")):
            return fail(prog, f"{args.warehouse}: no catalog here (write one with "
                              "`simlake register DB --warehouse W`)")
        database = args.database or catalog_defaults(args.conf_dir)["database"]
    if args.limit < 0:
        return fail(prog, f"--limit must be >= 0, not {args.limit}")
    from simlake.spark.sql_out import OutputRefused, check_target, write_result

    protected = (args.db_path,) if args.db_path else ()
    if args.out:
        try:
            check_target(args.out, args.overwrite, protected)
        except OutputRefused as exc:
            return fail(prog, str(exc))
    from simlake.spark.catalog import attach

    refused = written = rows = None
    try:
        with _spark_run("sql", args.verbose):  # the result is printed after, on the console
            spark = _session(args, catalog=args.warehouse is not None)
            try:
                if args.warehouse is not None:
                    spark.sql(f"USE {database}")
                if args.db_path is not None:
                    attach(spark, args.db_path)
                result = spark.sql(args.query)
                if args.out:
                    if args.out.endswith(".csv"):
                        result = _printable(result)
                    written = write_result(result, args.out, args.overwrite, protected)
                else:
                    rows = _printable(result).limit(args.limit + 1).toPandas()
            except OutputRefused as exc:  # the target changed since the check
                refused = str(exc)
            finally:
                spark.stop()
    except QueryFailed as exc:  # a bad query or a Spark fault: one line on the console
        return fail(prog, str(exc))
    if refused:
        return fail(prog, refused)
    if written:
        print(f"wrote {written}")
    else:
        _print_rows(rows, args.limit)
    return EXIT_OK


def _print_rows(rows, limit: int) -> None:
    import pandas as pd

    with pd.option_context(
        "display.max_columns", None, "display.width", 200, "display.max_colwidth", 60
    ):
        print(rows.head(limit).to_string(index=False))
    if len(rows) > limit:
        print(f"... (first {limit} rows; use --limit or --out)")

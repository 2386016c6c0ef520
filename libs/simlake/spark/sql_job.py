"""``simlake register`` and ``simlake sql``: Spark SQL over a database folder."""

from __future__ import annotations

import argparse
import logging
import os
import sys

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


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("db_path", help="database folder")
    parser.add_argument("--profile", default="local", help="Spark profile in conf/")
    parser.add_argument("--conf-dir", default=None)
    parser.add_argument(
        "--warehouse",
        default=None,
        help="metastore + warehouse folder (default: conf/catalog.toml)",
    )


def register_main(argv: list[str] | None = None) -> int:
    """``simlake register DB_PATH [--database NAME]``: persistent catalog entries."""
    parser = argparse.ArgumentParser(prog="simlake register", description=register_main.__doc__)
    _common(parser)
    parser.add_argument("--database", default=None, help="catalog database name")
    args = parser.parse_args(argv)
    defaults = catalog_defaults(args.conf_dir)
    args.warehouse = args.warehouse or defaults["warehouse"]
    database = args.database or defaults["database"]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from simlake.spark.catalog import register

    spark = _session(args, catalog=True)
    try:
        names = register(spark, args.db_path, database)
    finally:
        spark.stop()
    print(f"registered in {args.warehouse}: " + ", ".join(names))
    return 0


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


def sql_main(argv: list[str] | None = None) -> int:
    """``simlake sql DB_PATH "SELECT ..."``: run a query over the database's tables and views."""
    parser = argparse.ArgumentParser(prog="simlake sql", description=sql_main.__doc__)
    _common(parser)
    parser.add_argument("query", help="Spark SQL; tables and views by plain name")
    parser.add_argument(
        "--out",
        default=None,
        help="write the result to a folder: *.csv (csv) or anything else (parquet)",
    )
    parser.add_argument("--limit", type=int, default=50, help="rows printed (default 50)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from simlake.spark.catalog import run_query

    spark = _session(args, catalog=False)
    try:
        result = run_query(spark, args.db_path, args.query)
        if args.out:
            if args.out.endswith(".csv"):
                _printable(result).write.mode("overwrite").option("header", True).csv(args.out)
            else:
                result.write.mode("overwrite").parquet(args.out)
            print(f"wrote {args.out}")
        else:
            rows = _printable(result).limit(args.limit + 1).toPandas()
            more = len(rows) > args.limit
            import pandas as pd

            with pd.option_context(
                "display.max_columns", None, "display.width", 200, "display.max_colwidth", 60
            ):
                print(rows.head(args.limit).to_string(index=False))
            if more:
                print(f"... (first {args.limit} rows; use --limit or --out)")
    finally:
        spark.stop()
    return 0

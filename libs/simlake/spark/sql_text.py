"""SQL text and Spark schemas of the ingest's tables: the small pure pieces that both the table
layer (:mod:`simlake.spark.tables`) and the commit layer (:mod:`simlake.spark.delta_commit`) use,
so neither imports the other's module for them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql.types import StructType


def spark_schema(arrow_schema: pa.Schema) -> StructType:
    """The Spark schema of an Arrow table schema (nullability kept)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema)


def sql_string_list(values: Sequence[str]) -> str:
    """A SQL list literal ``('a', 'b')`` with quotes and backslashes escaped."""
    quoted = []
    for value in values:
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        quoted.append(f"'{escaped}'")
    return "(" + ", ".join(quoted) + ")"


def replace_predicate(sim_runs: Sequence[str], extra: str | None = None) -> str:
    """The ``replaceWhere`` predicate that selects the rows of ``sim_runs`` (and ``extra``)."""
    predicate = f"sim_run IN {sql_string_list(sorted(set(sim_runs)))}"
    return f"({predicate}) AND ({extra})" if extra else predicate

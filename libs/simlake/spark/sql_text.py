"""SQL text and Spark schemas of the ingest's tables: the small pure pieces that both the table
layer (:mod:`simlake.spark.tables`) and the commit layer (:mod:`simlake.spark.delta_commit`) use,
so neither imports the other's module for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from simlake.lake.replace import replace_predicate as replace_predicate  # re-exported
from simlake.lake.replace import sql_string_list as sql_string_list  # re-exported

if TYPE_CHECKING:
    from pyspark.sql.types import StructType


def spark_schema(arrow_schema: pa.Schema) -> StructType:
    """The Spark schema of an Arrow table schema (nullability kept)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema)

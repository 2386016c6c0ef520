"""Spark SQL over a database: its tables by name, plus the long-format views analysts want.

Every name an analyst queries shows completed folders only, like the adapter: the ``metadata``
table is the completion record, and rows of a per-trial table whose ``sim_run`` has no
metadata row (a crashed or still-running ingest) are hidden. The Delta tables themselves,
all rows included, stay addressable for maintenance (``DESCRIBE HISTORY``, ``OPTIMIZE``,
time travel) under a second, clearly named schema.

Two ways in:

- ``attach(spark, db)``: temporary views in the current session (``simlake sql`` uses it):
  ``voltage_traces`` ... filtered, plus the long/summary views; the Delta tables are
  ``delta.`<db>/<key>```;
- ``register(spark, db, database)``: a persistent catalog entry in Spark's embedded metastore
  for sessions started with the same warehouse folder (``catalog_conf``): the external Delta
  tables as ``<database>_delta.<key>`` and, beside them, the filtered views
  ``<database>.<key>`` and the long/summary views ``<database>.voltage_traces_long`` ...
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from simlake import schemas
from simlake.adapter.database import TRIAL_TABLES  # rows visible only when sim_run completed
from simlake.layout import table_path
from simlake.manifest import read_manifest

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Suffix of the schema that holds the Delta tables themselves (all rows, for maintenance).
DELTA_SCHEMA_SUFFIX = "_delta"



def _views(ref) -> dict[str, str]:
    """View name -> SELECT text; ``ref(key)`` gives the SQL reference of a table."""
    return {
        "voltage_traces_long": f"""
            SELECT v.sim_trial_index, v.sim_run, v.trialnr, p.t, p.vm
            FROM {ref("voltage_traces")} v
            LATERAL VIEW inline(arrays_zip(v.t, v.vm)) p AS t, vm""",
        "synapse_activation_long": f"""
            SELECT s.sim_trial_index, s.sim_run, s.trialnr, s.synapse_type, s.synapse_ID,
                   s.soma_distance, s.section_ID, s.section_pt_ID, s.dendrite_label,
                   a.activation_time
            FROM {ref("synapse_activation")} s
            LATERAL VIEW explode(s.activation_times) a AS activation_time""",
        "cell_activation_long": f"""
            SELECT c.sim_trial_index, c.sim_run, c.trialnr, c.presynaptic_cell_type, c.cell_ID,
                   e.spike_time
            FROM {ref("cell_activation")} c
            LATERAL VIEW explode(c.spike_times) e AS spike_time""",
        # one row per trial: spike count and first spike (soma, 0 mV), active synapses by type
        "trial_summary": f"""
            WITH syn AS (
                SELECT sim_trial_index, synapse_type, count(*) AS n
                FROM {ref("synapse_activation")}
                WHERE size(activation_times) > 0
                GROUP BY sim_trial_index, synapse_type),
            by_type AS (
                SELECT sim_trial_index, sum(n) AS active_synapses,
                       map_from_entries(collect_list(struct(synapse_type, n)))
                           AS active_synapses_by_type
                FROM syn GROUP BY sim_trial_index)
            SELECT m.sim_trial_index, m.sim_run, m.trialnr,
                   coalesce(size(s.spike_times), 0) AS spike_count,
                   try_element_at(s.spike_times, 1) AS first_spike_time,
                   coalesce(b.active_synapses, 0) AS active_synapses,
                   b.active_synapses_by_type
            FROM {ref("metadata")} m
            LEFT JOIN {ref("spike_times")} s
                   ON s.sim_trial_index = m.sim_trial_index AND s.threshold = 0.0
            LEFT JOIN by_type b ON b.sim_trial_index = m.sim_trial_index""",
    }


#: Which tables each view needs.
VIEW_TABLES = {
    "voltage_traces_long": ("voltage_traces",),
    "synapse_activation_long": ("synapse_activation",),
    "cell_activation_long": ("cell_activation",),
    "trial_summary": ("metadata", "spike_times", "synapse_activation"),
}


def existing_tables(db_path: str) -> list[str]:
    """Keys of ``db_path`` that are Delta tables (a ``_delta_log`` folder exists)."""
    return [
        key
        for key in schemas.TABLES
        if os.path.isdir(os.path.join(table_path(db_path, key), "_delta_log"))
    ]


def _quoted_path(path: str) -> str:
    return "delta.`" + path.replace("`", "``") + "`"


def completed_view_sql(key: str, raw: Callable[[str], str], tables: list[str],
                       metadata_linked: bool = False) -> str:
    """SELECT text of the analyst's view of table ``key``: completed folders only.

    ``raw(key)`` gives the SQL reference of a Delta table. Without a metadata table nothing is
    complete yet, so a per-trial view is empty; when ``metadata`` is a link key (served from
    the raw files), the per-trial tables were materialised from complete folders and are
    shown as they are.
    """
    if key not in TRIAL_TABLES or metadata_linked:
        return f"SELECT * FROM {raw(key)}"
    if "metadata" not in tables:
        return f"SELECT * FROM {raw(key)} WHERE false"
    return (f"SELECT * FROM {raw(key)} "
            f"WHERE sim_run IN (SELECT sim_run FROM {raw('metadata')})")


def _metadata_linked(db_path: str, tables: list[str]) -> bool:
    links = read_manifest(db_path).get("link_keys") or {}
    return "metadata" in links and "metadata" not in tables


def attach(spark: SparkSession, db_path: str) -> list[str]:
    """Temporary views for every table of ``db_path`` (completed folders only) and the analyst
    views; returns their names. The Delta tables stay reachable as ``delta.`<db>/<key>```."""
    db_path = os.path.abspath(db_path)
    tables = existing_tables(db_path)
    linked = _metadata_linked(db_path, tables)
    names = []
    for key in tables:
        sql = completed_view_sql(key, lambda k: _quoted_path(table_path(db_path, k)), tables,
                                 linked)
        spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {key} AS {sql}")
        names.append(key)
    for view, sql in _views(lambda key: key).items():
        if all(t in tables for t in VIEW_TABLES[view]):
            spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {view} AS {sql}")
            names.append(view)
    return names


def delta_schema(database: str) -> str:
    """Name of the schema that holds ``database``'s Delta tables (all rows)."""
    return database + DELTA_SCHEMA_SUFFIX


def _existing_kind(spark: SparkSession, name: str, allowed: tuple[str, ...]) -> str | None:
    """Catalog type of ``name`` (``EXTERNAL``, ``VIEW``, ...) or None when absent. Raises
    ValueError for a kind register must not replace, e.g. a managed table (dropping it would
    delete its data)."""
    if not spark.catalog.tableExists(name):
        return None
    kind = spark.catalog.getTable(name).tableType
    if kind not in allowed:
        raise ValueError(f"{name} exists as a {kind} table; not replacing it")
    return kind


def register(spark: SparkSession, db_path: str, database: str = "simlake") -> list[str]:
    """Register ``db_path`` in the session catalog; returns the names created.

    ``<database>_delta.<key>``: the external Delta tables (data stay in the database folder;
    every row, for ``DESCRIBE HISTORY``, ``OPTIMIZE``, time travel). ``<database>.<key>``:
    views showing completed folders only, and the long/summary views beside them. Rerunning
    re-points everything. Needs a session with a persistent catalog (``catalog_conf``) to
    outlive the session.
    """
    if not _NAME_RE.match(database):
        raise ValueError(f"invalid database name {database!r}")
    db_path = os.path.abspath(db_path)
    tables = existing_tables(db_path)
    if not tables:
        raise FileNotFoundError(f"{db_path}: no Delta tables to register")
    linked = _metadata_linked(db_path, tables)
    store = delta_schema(database)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {store}")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
    names = []
    for key in tables:
        location = table_path(db_path, key).replace("\\", "\\\\").replace("'", "\\'")
        if _existing_kind(spark, f"{store}.{key}", ("EXTERNAL",)):
            spark.sql(f"DROP TABLE {store}.{key}")
        spark.sql(f"CREATE TABLE {store}.{key} USING DELTA LOCATION '{location}'")
        names.append(f"{store}.{key}")
    for key in tables:
        # older registrations made these names external tables; they are views now
        if _existing_kind(spark, f"{database}.{key}", ("VIEW", "EXTERNAL")) == "EXTERNAL":
            spark.sql(f"DROP TABLE {database}.{key}")
        sql = completed_view_sql(key, lambda k: f"{store}.{k}", tables, linked)
        spark.sql(f"CREATE OR REPLACE VIEW {database}.{key} AS {sql}")
        names.append(f"{database}.{key}")
    for view, sql in _views(lambda key: f"{database}.{key}").items():
        if all(t in tables for t in VIEW_TABLES[view]):
            spark.sql(f"CREATE OR REPLACE VIEW {database}.{view} AS {sql}")
            names.append(f"{database}.{view}")
    log.info("registered %d tables and views of %s as %s and %s", len(names), db_path,
             database, store)
    return names


def catalog_conf(warehouse: str) -> dict[str, str]:
    """Spark settings for a persistent embedded (Derby) metastore under ``warehouse``."""
    warehouse = os.path.abspath(warehouse)
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": os.path.join(warehouse, "tables"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={os.path.join(warehouse, 'metastore_db')};create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={warehouse}",
    }


def run_query(spark: SparkSession, db_path: str, query: str) -> DataFrame:
    """``query`` with the tables and views of ``db_path`` attached by their plain names."""
    attach(spark, db_path)
    return spark.sql(query)

"""Spark SQL over a database: its tables by name, plus the long-format views analysts want.

Two ways in:

- ``attach(spark, db)``: temporary views in the current session (``simlake sql`` uses it);
- ``register(spark, db, database)``: a persistent catalog entry in Spark's embedded metastore
  (external Delta tables ``NAME.voltage_traces`` ... and persistent views), for sessions started
  with the same warehouse folder (``catalog_conf``).
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING

from simlake import schemas
from simlake.layout import table_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def attach(spark: SparkSession, db_path: str) -> list[str]:
    """Temporary views for every table of ``db_path`` and the analyst views; returns their names."""
    tables = existing_tables(db_path)
    names = []
    for key in tables:
        spark.read.format("delta").load(table_path(db_path, key)).createOrReplaceTempView(key)
        names.append(key)
    for view, sql in _views(lambda key: key).items():
        if all(t in tables for t in VIEW_TABLES[view]):
            spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {view} AS {sql}")
            names.append(view)
    return names


def register(spark: SparkSession, db_path: str, database: str = "simlake") -> list[str]:
    """Register ``db_path``'s tables and views as ``database.<name>`` in the session catalog.

    The tables are external (the data stay in the database folder); rerunning re-points them.
    Needs a session with a persistent catalog (see ``catalog_conf``) to outlive the session.
    """
    if not _NAME_RE.match(database):
        raise ValueError(f"invalid database name {database!r}")
    db_path = os.path.abspath(db_path)
    tables = existing_tables(db_path)
    if not tables:
        raise FileNotFoundError(f"{db_path}: no Delta tables to register")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
    names = []
    for key in tables:
        location = table_path(db_path, key).replace("'", "\\'")
        spark.sql(f"DROP TABLE IF EXISTS {database}.{key}")
        spark.sql(f"CREATE TABLE {database}.{key} USING DELTA LOCATION '{location}'")
        names.append(f"{database}.{key}")
    for view, sql in _views(lambda key: f"{database}.{key}").items():
        if all(t in tables for t in VIEW_TABLES[view]):
            spark.sql(f"CREATE OR REPLACE VIEW {database}.{view} AS {sql}")
            names.append(f"{database}.{view}")
    log.info("registered %d tables and views of %s as database %s", len(names), db_path, database)
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

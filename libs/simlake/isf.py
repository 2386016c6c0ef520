"""ISF's ``load_simrun_general`` entry points, with ISF's signatures: ``init``,
``add_dendritic_voltage_traces``, ``add_dendritic_spike_times``, ``optimize``, ``reoptimize_db``.

Thin translations: ``init`` onto :func:`simlake.spark.ingest.ingest` (Delta tables, needs Spark)
or, with ``rewrite_in_optimized_format=False``, onto link mode (keys registered as lazy views
over the raw files, no Spark, no data written; ``optimize(db, select=[...])`` materialises
them later); the others onto the JVM-free adapter. An ISF notebook changes its import line
(``from simlake.isf import init, optimize``) and nothing else.
"""

from __future__ import annotations

import datetime
import logging
import os
import posixpath
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from simlake import runrecords
from simlake.adapter.deltafiles import is_delta_table
from simlake.adapter.dumpers import resolve
from simlake.config import load_ingest_defaults, load_spark_profile
from simlake.ingest_options import IngestOptions
from simlake.manifest import read_manifest, update_manifest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from simlake.adapter.database import DataBase
    from simlake.ingest_report import IngestSummary

log = logging.getLogger(__name__)

#: ISF flag -> link-mode keys it registers.
_LINK_KEYS = {
    "core": ("metadata",),
    "voltage_traces": ("voltage_traces",),
    "synapse_activation": ("synapse_activation", "cell_activation"),
    "dendritic_voltage_traces": ("dendritic_recordings",),
    "spike_times": ("spike_times",),
    "dendritic_spike_times": ("dendritic_spike_times",),
}


def _db_path(db: Any) -> str:
    return os.path.abspath(getattr(db, "basedir", db))


def init(
    db: Any,
    simresult_path: str,
    core: bool = True,
    voltage_traces: bool = True,
    synapse_activation: bool = True,
    dendritic_voltage_traces: bool = True,
    parameterfiles: bool = True,
    spike_times: bool = True,
    burst_times: bool = False,
    repartition: bool = True,
    scheduler: Any = None,
    rewrite_in_optimized_format: bool = True,
    dendritic_spike_times: bool = True,
    dendritic_spike_times_threshold: float = -30.0,
    client: Any = None,
    n_chunks: int = 5000,
    dumper: Any = None,
    *,
    spark: SparkSession | None = None,
    profile: str = "local",
    strict: bool = False,
    refresh: bool = False,
    conf_dir: str | None = None,
) -> IngestSummary | dict:
    """Build the database ``db`` (a path or ``DataBase``) from the raw tree ``simresult_path``.

    ISF's signature, argument for argument (positional order included). The flags keep ISF's
    meanings. With ``rewrite_in_optimized_format=True`` (default) the Spark ingest writes
    Delta tables (a local session from ``profile`` unless ``spark`` is given) and the summary
    is returned; run it again on a grown tree and only new sim-run folders are read. With
    ``False`` the selected keys are only registered as link keys over the raw files (no
    Spark) and the new ``link_keys`` mapping is returned; ``parameterfiles`` needs the
    ingest and is skipped in link mode.

    ISF keywords that mean nothing on Spark are accepted and change nothing: ``client`` and
    ``scheduler`` (the work runs on Spark's executors), ``repartition`` and ``n_chunks``
    (data files are laid out by trial ranges, dask partitions follow them), ``dumper``
    (tables are Delta tables; an unknown dumper is still an error). ``burst_times=True``
    raises ``ValueError``, as in ISF, where it is deprecated.
    """
    if burst_times:
        raise ValueError("burst_times is deprecated in ISF and not supported")
    if dumper is not None:
        resolve(dumper)
    db_path = _db_path(db)
    flags = {
        "core": core,
        "voltage_traces": voltage_traces,
        "synapse_activation": synapse_activation,
        "dendritic_voltage_traces": dendritic_voltage_traces,
        "spike_times": spike_times,
        "dendritic_spike_times": dendritic_spike_times,
    }
    if not rewrite_in_optimized_format:
        return _register_links(
            db_path, os.path.abspath(simresult_path), flags, dendritic_spike_times_threshold
        )
    opts = IngestOptions.from_defaults(
        load_ingest_defaults(conf_dir),
        simresult_path=simresult_path,
        db_path=db_path,
        parameterfiles=parameterfiles,
        dendritic_spike_times_threshold=dendritic_spike_times_threshold,
        strict=strict,
        refresh=refresh,
        **flags,
    )
    from simlake.spark.ingest import ingest

    started = _now()
    if spark is not None:
        summary = ingest(spark, opts)
    else:
        from simlake.spark.session import build_session

        session = build_session(load_spark_profile(profile, conf_dir))
        try:
            summary = ingest(session, opts)
        finally:
            session.stop()
    _keep_record(opts, summary, started)
    return summary


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _keep_record(opts: IngestOptions, summary: IngestSummary, started: str) -> None:
    """The run record ``simlake ingest`` keeps too (``db.history()``, ``as_of=run_id``)."""
    from simlake.spark.job import exit_code

    record = runrecords.ingest_record(
        summary.run_id, summary, started=started, finished=_now(),
        exit_code=exit_code(opts, summary), table_versions=runrecords.table_versions(opts.db_path))
    runrecords.write_run_record(opts.db_path, record)


def add_dendritic_voltage_traces(
    db: Any,
    rewrite_in_optimized_format: bool = True,
    dendritic_spike_times: bool = True,
    repartition: bool = True,
    dendritic_spike_times_threshold: float = -30.0,
    scheduler: Any = None,
    client: Any = None,
) -> None:
    """ISF's ``add_dendritic_voltage_traces``: add the dendritic recordings of the database's
    raw tree (and, with ``dendritic_spike_times``, their spike times at the threshold).

    A database ingested with ``dendritic_voltage_traces=True`` has them already (nothing is
    read again; spike times at a new threshold are still added). Otherwise the key is
    registered over the raw files and, with ``rewrite_in_optimized_format``, written as a
    Delta table (``optimize``), as ISF does. ``repartition``, ``scheduler`` and ``client``
    are accepted and change nothing.
    """
    database = _database(db)
    if "dendritic_recordings" not in database.keys():
        _register_links(database.basedir, database["simresult_path"],
                        {"dendritic_voltage_traces": True}, dendritic_spike_times_threshold)
        if database._is_table("metadata"):  # only the folders the database holds
            links = database._link_keys(database._manifest())
            links["dendritic_recordings"] = {
                "sim_runs": sorted(set(database["metadata"]["path"]))}
            update_manifest(database.basedir, link_keys=links)
        if rewrite_in_optimized_format:
            optimize(database, select=["dendritic_recordings"])
    if dendritic_spike_times:
        add_dendritic_spike_times(database, dendritic_spike_times_threshold)


def add_dendritic_spike_times(db: Any, dendritic_spike_times_threshold: float = -30.0) -> None:
    """ISF's ``add_dendritic_spike_times``: spike times of every recording site at the
    threshold, as ``db["dendritic_spike_times"][label + "_" + str(threshold)]``."""
    from simlake.adapter.dendritic import add_spike_times

    add_spike_times(_database(db), dendritic_spike_times_threshold)


def optimize(db: Any, dumper: Any = None, select: Iterable[str] | None = None,
             scheduler: Any = None, repartition: bool = False, categorized: bool = False,
             client: Any = None, **kwargs: Any) -> dict:
    """ISF's ``optimize(db, dumper=None, select=None, ...)``: see
    :func:`simlake.adapter.optimize.optimize` (``kwargs`` go there)."""
    from simlake.adapter.optimize import optimize as optimize_tables

    return optimize_tables(db, dumper, select, scheduler, repartition, categorized, client,
                           **kwargs)


def reoptimize_db(db: Any, client: Any = None, progress: bool = False, n_db_parents: int = 0,
                  suppress_warnings: bool = False) -> dict:
    """ISF's ``reoptimize_db``: bring every key of ``db`` and of its sub-databases into the
    best format: the ingest's tables compacted (``optimize``), link keys materialised, and
    user frames stored with a pickle dumper rewritten as Delta tables (same frames back).
    Returns ``{key: what was done}``; the other arguments are accepted for ISF code."""
    database = _database(db)
    done: dict[Any, Any] = {}
    links = database._link_keys(database._manifest())
    tables = [k for k in database.keys() if database._is_table(k) or k in links]
    if tables:
        done.update(optimize(database, select=[k for k in tables if k != "sim_trial_index"]))
    for key in database.keys():
        entry = database._user_entries().get(key)
        if entry is None:
            continue
        if entry["kind"] == "sub_db":
            done.update({(key, *(k if isinstance(k, tuple) else (k,))): v
                         for k, v in reoptimize_db(database[key]).items()})
        elif entry["kind"] == "pickle":
            value = database[key]
            if isinstance(value, pd.DataFrame | pd.Series):
                database.set(key, value, dumper="delta")
                done[key] = "pickled frame rewritten as a Delta table"
    return done


def _database(db: Any) -> DataBase:
    from simlake.adapter.database import DataBase

    return db if isinstance(db, DataBase) else DataBase(db, nocreate=True)


def _register_links(
    db_path: str, simresult_path: str, flags: dict[str, bool], threshold: float
) -> dict:
    from simlake.discovery import discover

    known = read_manifest(db_path).get("simresult_path")
    if known and known != simresult_path:
        raise ValueError(f"{db_path}: database holds {known}, not {simresult_path}")
    tree = discover(simresult_path)
    filelist = sorted(
        posixpath.join(f.sim_run, f.voltage_file) for f in tree.folders if f.voltage_file
    )
    links = dict(read_manifest(db_path).get("link_keys", {}))
    for flag, keys in _LINK_KEYS.items():
        # link keys need the trial list: core's keys come along unless a table holds them
        if flags.get(flag) or (flag == "core" and not is_delta_table(
                os.path.join(db_path, "metadata"))):
            for key in keys:
                links[key] = {"thresholds": [threshold]} if key == "dendritic_spike_times" else {}
    update_manifest(db_path, simresult_path=simresult_path, filelist=filelist, link_keys=links)
    log.info("registered %d link keys over %d folders", len(links), len(tree.folders))
    return links

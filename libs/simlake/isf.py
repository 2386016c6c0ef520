"""ISF-compatible entry point: ``init(db, simresult_path, ...)`` with ISF's flag names.

A thin translation onto :func:`simlake.spark.ingest.ingest` (Delta tables, needs Spark) or, with
``rewrite_in_optimized_format=False``, onto link mode (keys registered as lazy views over the raw
files, no Spark, no data written; ``optimize(db, select=[...])`` materialises them later).
"""

from __future__ import annotations

import logging
import os
import posixpath
from typing import TYPE_CHECKING, Any

from simlake.config import load_ingest_defaults, load_spark_profile
from simlake.ingest_options import IngestOptions
from simlake.manifest import read_manifest, update_manifest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from simlake.spark.ingest import IngestSummary

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
    dendritic_spike_times: bool = True,
    dendritic_spike_times_threshold: float = -30.0,
    rewrite_in_optimized_format: bool = True,
    *,
    spark: SparkSession | None = None,
    profile: str = "local",
    strict: bool = False,
    refresh: bool = False,
    conf_dir: str | None = None,
) -> IngestSummary | dict:
    """Build the database ``db`` (a path or ``DataBase``) from the raw tree ``simresult_path``.

    Flags keep ISF's names and meanings. With ``rewrite_in_optimized_format=True`` (default) the
    Spark ingest writes Delta tables (a local session from ``profile`` unless ``spark`` is
    given) and the summary is returned. With ``False`` the selected keys are only registered in
    the manifest as link keys and the new ``link_keys`` mapping is returned; ``parameterfiles``
    needs the ingest and is skipped in link mode.
    """
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

    if spark is not None:
        return ingest(spark, opts)
    from simlake.spark.session import build_session

    session = build_session(load_spark_profile(profile, conf_dir))
    try:
        return ingest(session, opts)
    finally:
        session.stop()


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
        if flags.get(flag) or flag == "core":
            for key in keys:
                links[key] = {"thresholds": [threshold]} if key == "dendritic_spike_times" else {}
    update_manifest(db_path, simresult_path=simresult_path, filelist=filelist, link_keys=links)
    log.info("registered %d link keys over %d folders", len(links), len(tree.folders))
    return links

"""A link key written as a Delta table (``optimize(db, select=[key])`` on a link-mode
database): the raw files decoded as :mod:`simlake.adapter.link` reads them, written by the
ingest's writer with the table's schema and layout rules, committed with ``deltalake`` (no
JVM), and the key dropped from the manifest's ``link_keys``."""

from __future__ import annotations

import logging
import os
import uuid

import pyarrow as pa
from deltalake import DeltaTable

from simlake import schemas
from simlake.adapter.deltawrite import write_rows
from simlake.adapter.link import (
    DENDRITIC_THRESHOLD,
    LINKABLE,
    LinkSource,
    decode_folder,
    folders,
    key_options,
    metadata_table,
    parallel_map,
    spike_table,
)
from simlake.adapter.tables import ACTIVATION, SOMA_THRESHOLD
from simlake.lake.commit import commit
from simlake.lake.datafile import DataFile
from simlake.manifest import read_manifest, update_manifest

log = logging.getLogger(__name__)

def _tables_for(src: LinkSource, key: str) -> list[tuple[dict[str, str], list[pa.Table]]]:
    """(partition values, tables in key order) of a link key's Delta table."""
    if key == "metadata":
        return [({}, [metadata_table(src)])]
    if key == "spike_times":
        return [({}, [spike_table(src, key, None, SOMA_THRESHOLD).sort_by("sim_trial_index")])]
    fs = folders(src, key)
    if key == "voltage_traces":
        return [({}, parallel_map(lambda f: decode_folder(f, "voltage"), fs))]
    if key in ACTIVATION:
        kind = "synapses" if key == "synapse_activation" else "cells"
        return [({}, parallel_map(lambda f: decode_folder(f, kind), fs))]
    out = []
    labels = sorted({label for f in fs for label in f.dendritic_files})
    for label in labels:
        if key == "dendritic_recordings":
            tables = parallel_map(lambda f, lb=label: decode_folder(f, "dendritic", lb),
                               [f for f in fs if label in f.dendritic_files])
            out.append(({"recording_site": label}, tables))
        else:
            thresholds = key_options(src, key).get("thresholds", [DENDRITIC_THRESHOLD])
            for thr in thresholds:
                t = spike_table(src, key, label, float(thr)).sort_by("sim_trial_index")
                out.append(({"recording_site": label}, [t]))
    return out


def materialize(src: LinkSource, key: str, *, target_file_bytes: int) -> tuple[int, int]:
    """Write the link key ``key`` as a Delta table (deltalake, no JVM) and drop it from
    ``link_keys``. Files hold contiguous, sorted, non-overlapping trial ranges of about
    ``target_file_bytes``; statistics on ``sim_trial_index`` are exact. Returns the number of
    data files and the table's version."""
    if key not in LINKABLE:
        raise KeyError(f"{key!r} cannot be a link key; linkable keys: {LINKABLE}")
    spec = schemas.SPECS[key]
    root = os.path.join(src.root, key)
    if os.path.exists(root):
        raise FileExistsError(f"{root} exists; a link key is materialised into a new table")
    staging = os.path.join(src.root, f".tmp-{key}-{uuid.uuid4().hex}")
    os.makedirs(staging)
    adds: list[DataFile] = []
    for part, tables in _tables_for(src, key):
        current: list[pa.Table] = []
        size = 0
        for t in tables + [None]:  # type: ignore[list-item]
            if t is not None and t.num_rows == 0:
                continue
            if current and (t is None or size + t.nbytes > target_file_bytes):
                adds += write_rows(staging, spec, pa.concat_tables(current),
                                   partition_values=part)
                current, size = [], 0
            if t is not None:
                current.append(t)
                size += t.nbytes
    commit(staging, spec, adds)
    os.replace(staging, root)
    links = dict(read_manifest(src.root).get("link_keys") or {})
    links.pop(key, None)
    update_manifest(src.root, link_keys=links)
    log.info("materialized link key %s as %s (%d files)", key, root, len(adds))
    return len(adds), DeltaTable(root).version()

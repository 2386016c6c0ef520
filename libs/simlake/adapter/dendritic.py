"""Dendritic spike times at another threshold, from the stored dendritic recordings (no JVM).

ISF's ``add_dendritic_spike_times(db, threshold)`` adds one sub-key ``<label>_<threshold>``
per recording site. Here the rows go into the ``dendritic_spike_times`` table (created if
missing), one data file per recording site with exact key statistics, in one Delta commit.
Only trials that are complete now get rows; a later nightly ingest adds its new folders'
spike times at the ingest's own threshold only.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import pyarrow as pa

from simlake import schemas
from simlake.adapter import deltafiles as df_
from simlake.adapter.deltawrite import write_rows
from simlake.decode.spikes import dendritic_spike_times_table
from simlake.lake.commit import commit
from simlake.lake.datafile import DataFile
from simlake.manifest import read_manifest, update_manifest

if TYPE_CHECKING:
    from simlake.adapter.database import DataBase

log = logging.getLogger(__name__)

SOURCE, TARGET = "dendritic_recordings", "dendritic_spike_times"


def add_spike_times(db: DataBase, threshold: float) -> int:
    """Store the spike times of every recording site of ``db`` at ``threshold``; returns
    the rows written (0 when that threshold is already there)."""
    threshold = float(threshold)
    links = dict(read_manifest(db.basedir).get("link_keys") or {})
    if SOURCE in links and not db._is_table(SOURCE):
        options = dict(links.get(TARGET) or {})
        thresholds = sorted({*map(float, options.get("thresholds", [])), threshold})
        links[TARGET] = {**options, "thresholds": thresholds}
        update_manifest(db.basedir, link_keys=links)
        return 0
    if not db._is_table(SOURCE):
        raise KeyError(f"{db.basedir} has no dendritic recordings to detect spikes in")
    reader = db._reader
    if db._is_table(TARGET) and any(t == threshold for _, t in reader.spike_keys(TARGET)):
        log.info("%s: spike times at %s mV are there already", db.basedir, threshold)
        return 0
    per_site: dict[str, list[pa.Table]] = {}
    snap = reader.snapshot(SOURCE, stats=(df_.KEY, "recording_site"))
    for site in reader.recording_sites(SOURCE):
        rows = reader._read_visible(SOURCE, [df_.KEY, "sim_run", "trialnr", "t", "vm"],
                                    (("recording_site", site),),
                                    files=[f for f in snap.files
                                           if site in reader.sites_of(snap, f)])
        rows = rows.append_column("recording_site",
                                  pa.array([site] * rows.num_rows, pa.string()))
        per_site[site] = [dendritic_spike_times_table(rows, threshold)]
    return _commit(os.path.join(db.basedir, TARGET), per_site)


def _commit(root: str, per_site: dict[str, list[pa.Table]]) -> int:
    spec = schemas.SPECS[TARGET]
    files: list[DataFile] = []
    for _site, tables in sorted(per_site.items()):
        table = pa.concat_tables(tables).sort_by(df_.KEY)
        if table.num_rows:
            files += write_rows(root, spec, table.cast(spec.schema))
    rows = commit(root, spec, files)
    log.info("%s: %d spike-time rows at a new threshold for %d sites", root, rows,
             len(per_site))
    return rows

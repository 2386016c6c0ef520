"""Where things live inside a database folder.

```
<db>/
  simlake.json                      manifest (see simlake.manifest)
  <key>/                            one Delta table per key (schemas.TABLES), e.g. voltage_traces/
  parameterfiles_cell_folder/<md5>  each distinct neuron param file once, references rewritten
  parameterfiles_network_folder/<md5>
  morphology/ syn_folder/ con_folder/ recsites_folder/   files the param files reference
  _simlake_paramfiles/<kind>/<md5>.json   what storing each distinct param file gave
```

Every Delta table is addressable from Spark SQL as ``delta.`<db>/<key>```.
"""

from __future__ import annotations

import os

MANIFEST_NAME = "simlake.json"

#: Managed folder keys (docs/database.md); values are folder names under the database root.
FOLDER_KEYS: dict[str, str] = {
    "parameterfiles_cell_folder": "parameterfiles_cell_folder",
    "parameterfiles_network_folder": "parameterfiles_network_folder",
    "morphology": "morphology",
    "syn_folder": "syn_folder",
    "con_folder": "con_folder",
    "recsites_folder": "recsites_folder",
}


def table_path(db_root: str, key: str) -> str:
    """Absolute path of the Delta table of ``key`` inside the database ``db_root``."""
    return os.path.join(os.path.abspath(db_root), key)


def folder_path(db_root: str, key: str) -> str:
    """Absolute path of a managed folder key inside the database ``db_root``."""
    return os.path.join(os.path.abspath(db_root), FOLDER_KEYS[key])


#: Per-trial tables of the ingest, in the order ``DataBase.keys()`` lists them.
TRIAL_TABLES = ("voltage_traces", "synapse_activation", "cell_activation", "spike_times",
                "dendritic_recordings", "dendritic_spike_times", "parameterfiles")
#: Every key the ingest writes as a Delta table, in listing order.
INGEST_TABLE_KEYS = ("metadata",) + TRIAL_TABLES + ("ingest_errors",)


def delta_tables(db_root: str) -> list[str]:
    """Names of the Delta tables in the database ``db_root`` (folders with a ``_delta_log``,
    hidden ones left out): the ingest's keys in listing order, then any other (bookkeeping,
    user keys) sorted."""
    try:
        names = [n for n in os.listdir(db_root) if not n.startswith(".")]
    except OSError:
        return []
    found = {n for n in names if os.path.isdir(os.path.join(db_root, n, "_delta_log"))}
    known = [k for k in INGEST_TABLE_KEYS if k in found]
    return known + sorted(found - set(known))


"""What a database holds, for people: ``ls``'s tree and ``db.metadata[key]`` (how and when
each key was written)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from simlake.adapter.versions import commit_time

if TYPE_CHECKING:
    from simlake.adapter.database import DataBase
    from simlake.adapter.sitedb import SiteDataBase


def tree_lines(db: DataBase | SiteDataBase, depth: int, max_depth: int, per_key: int,
               all_files: bool, color: bool, limit: int | None) -> list[str]:
    """Lines of ``ls``: each key with how it is stored, sub-databases indented below it."""
    keys = list(db.keys())
    shown = keys if limit is None else keys[:limit]
    indent = "    " * depth
    out = []
    for k in shown:
        name = f"\033[96m{k}\033[0m" if color else k
        out.append(f"{indent}├── {name}  {db.describe(k)}")
        sub_db = getattr(db, "_sub_db", None)  # site sub-databases have no nested ones
        sub = sub_db(k) if sub_db else None
        if sub is not None and depth + 1 < max_depth:
            out += tree_lines(sub, depth + 1, max_depth, per_key, all_files, color, per_key)
        elif all_files and os.path.isdir(os.path.join(db.basedir, k)):
            names = sorted(os.listdir(os.path.join(db.basedir, k)))
            out += [f"{indent}    {n}" for n in names[:per_key]]
    if len(shown) < len(keys):
        out.append(f"{indent}... ({len(keys) - len(shown)} more)")
    return out


class KeyMetadata:
    """``db.metadata[key]``: how and when a key was written (ISF's metadata accessor)."""

    def __init__(self, db: DataBase) -> None:
        self._db = db

    def __getitem__(self, key: str) -> dict[str, Any]:
        db = self._db
        if not db.check_if_key_exists(key):
            raise db._missing(key)
        entry = db._user_entries().get(key)
        if entry is not None:
            return {k: entry.get(k) for k in ("dumper", "format", "time", "simlake_version",
                                              "hostname")} | {"kind": entry["kind"]}
        table = "metadata" if key == "sim_trial_index" else key
        if db._is_table(table):
            snap = db._reader.snapshot(table, ())
            return {"dumper": "simlake_ingest", "format": "delta", "kind": "table",
                    "version": snap.version,
                    "time": commit_time(db._reader.path(table), snap.version)}
        return {"dumper": "simlake_ingest", "format": db.describe(key), "kind": "ingest",
                "time": None}

    def keys(self) -> tuple:
        """Every key of the database (each has metadata)."""
        return self._db.keys()

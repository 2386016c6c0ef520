"""The database manifest ``<db>/simlake.json``: the small, non-tabular keys.

Fields: ``format_version`` (int), ``simresult_path`` (absolute str), ``filelist`` (soma voltage
files relative to ``simresult_path``, sorted), ``link_keys`` (keys registered as lazy views over the
raw files instead of Delta tables, see the adapter), ``user_keys`` (reserved for the adapter).
Written atomically (temp file + rename) so a reader never sees half a manifest.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from simlake.layout import MANIFEST_NAME

FORMAT_VERSION = 1


def manifest_path(db_root: str) -> str:
    """Path of the manifest file of the database ``db_root``."""
    return os.path.join(os.path.abspath(db_root), MANIFEST_NAME)


def read_manifest(db_root: str) -> dict[str, Any]:
    """The manifest of ``db_root``; an empty default if none was written yet."""
    try:
        with open(manifest_path(db_root), encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {"format_version": FORMAT_VERSION, "filelist": [], "link_keys": {}, "user_keys": {}}


def write_manifest(db_root: str, manifest: dict[str, Any]) -> None:
    """Replace the manifest of ``db_root`` atomically."""
    os.makedirs(os.path.abspath(db_root), exist_ok=True)
    data = dict(manifest)
    data["format_version"] = FORMAT_VERSION
    fd, tmp = tempfile.mkstemp(prefix=".simlake.", suffix=".json", dir=os.path.abspath(db_root))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, manifest_path(db_root))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def update_manifest(db_root: str, **fields: Any) -> dict[str, Any]:
    """Read, update the given top-level fields, write back; returns the new manifest."""
    manifest = read_manifest(db_root)
    manifest.update(fields)
    write_manifest(db_root, manifest)
    return manifest

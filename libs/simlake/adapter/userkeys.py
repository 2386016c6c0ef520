"""User keys: values an analyst stores in a database with ``db[key] = value``.

Each user key is a folder ``<db>/<key>/`` that describes itself in ``.simlake_key.json`` (its
entry): the key exists exactly when that folder holds that file. A value is written into a
hidden temporary folder, entry last, and renamed into place in one step, so a crash never
leaves half a key (replacing a key moves the old folder aside first: a crash in between leaves
neither, never a mix). Databases of earlier versions listed their keys in the manifest's
``user_keys``; those entries are still read.

========== ===================================== =============================================
kind       value                                 on disk
========== ===================================== =============================================
``pandas`` ``pandas.DataFrame`` / ``Series``     a Delta table (:mod:`.userframes`)
``dask``   ``dask.dataframe.DataFrame``/Series   a Delta table, one data file per partition
``numpy``  ``numpy.ndarray`` (non-object dtype)  ``data.npy`` (``allow_pickle=False``)
``json``   dict/list/str/int/float/bool/None     ``data.json``
``pickle`` anything else                         ``data.pkl`` (protocol 5; not portable
                                                 across libraries, only used when nothing
                                                 else fits or asked for)
``folder`` a managed folder                      the folder itself
``sub_db`` a nested database                     its own manifest and keys
========== ===================================== =============================================

Besides ``kind`` (and a frame's layout), an entry records how and when the key was written
(``dumper``, ``format``, ``time``, ``simlake_version``, ``hostname``): ISF's per-key metadata.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import pickle
import re
import shutil
import socket
import uuid
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd

from simlake.adapter import deltafiles as df_
from simlake.adapter.dumpers import FOLDER, JSON_OR_PICKLE, SUB_DB, VALUE_FORMATS, Dumper
from simlake.adapter.userframes import read_frame, write_frame
from simlake.layout import MANIFEST_NAME
from simlake.manifest import read_manifest, update_manifest, write_manifest

KINDS = ("pandas", "dask", "numpy", "json", "pickle", "folder", "sub_db")
FORMATS = VALUE_FORMATS
ENTRY_NAME = ".simlake_key.json"

_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,119}")


def check_key_name(key: Any) -> str:
    """A user key must be a plain name usable as a folder name (ISF's characters)."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key) or key == MANIFEST_NAME:
        raise KeyError(f"invalid key {key!r}: use up to 120 letters, digits, '_', '.', '-' "
                       "(not starting with '.', '_' or '-')")
    return key


def is_plain_json(obj: Any) -> bool:
    """Whether ``obj`` survives a JSON round trip unchanged (types included)."""
    if obj is None or type(obj) in (str, int, bool):
        return True
    if type(obj) is float:
        return math.isfinite(obj)
    if type(obj) is list:
        return all(is_plain_json(x) for x in obj)
    if type(obj) is dict:
        return all(type(k) is str and is_plain_json(v) for k, v in obj.items())
    return False


def choose_format(value: Any) -> str:
    """The storage format a value gets by default."""
    if isinstance(value, pd.DataFrame | pd.Series | dd.DataFrame | dd.Series):
        return "delta"
    if isinstance(value, np.ndarray) and value.dtype != object:
        return "npy"
    if is_plain_json(value):
        return "json"
    return "pickle"


def write_value(dest: str, value: Any, fmt: str | None = None) -> dict:
    """Write ``value`` into the (new) folder ``dest``; returns its entry (kind, layout)."""
    fmt = fmt or choose_format(value)
    if fmt == JSON_OR_PICKLE:
        fmt = "json" if is_plain_json(value) else "pickle"
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")
    if fmt == "delta":
        return write_frame(dest, value)
    os.makedirs(dest, exist_ok=True)
    if fmt == "npy":
        if isinstance(value, np.ndarray) and value.dtype == object:
            raise TypeError("format 'npy' needs a numpy array of a non-object dtype")
        np.save(os.path.join(dest, "data.npy"), np.asarray(value), allow_pickle=False)
        return {"kind": "numpy"}
    if fmt == "json":
        if not is_plain_json(value):
            raise TypeError("format 'json' needs dict/list/str/int/finite float/bool/None")
        with open(os.path.join(dest, "data.json"), "w", encoding="utf-8") as fh:
            json.dump(value, fh, allow_nan=False)
        return {"kind": "json"}
    with open(os.path.join(dest, "data.pkl"), "wb") as fh:
        pickle.dump(value, fh, protocol=5)
    return {"kind": "pickle"}


def read_value(path: str, entry: dict, cache: df_.FileInfoCache | None = None) -> Any:
    """Read a user value stored in the folder ``path`` with ``entry``."""
    kind = entry["kind"]
    if kind == "numpy":
        return np.load(os.path.join(path, "data.npy"), allow_pickle=False)
    if kind == "json":
        with open(os.path.join(path, "data.json"), encoding="utf-8") as fh:
            return json.load(fh)
    if kind == "pickle":
        with open(os.path.join(path, "data.pkl"), "rb") as fh:
            return pickle.load(fh)
    if kind in ("pandas", "dask"):
        return read_frame(path, entry, cache)
    raise ValueError(f"{path}: unknown user key kind {kind!r}")


# ---------------------------------------------------------------------------------------------
# placing keys in a database folder


def _read_entry(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, ENTRY_NAME), encoding="utf-8") as fh:
            return json.load(fh)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_entry(folder: str, entry: dict) -> None:
    with open(os.path.join(folder, ENTRY_NAME), "w", encoding="utf-8") as fh:
        json.dump(entry, fh, indent=1, sort_keys=True)


def user_entries(root: str) -> dict[str, dict]:
    """Every user key of the database at ``root`` with its entry."""
    entries = {k: v for k, v in (read_manifest(root).get("user_keys") or {}).items()
               if os.path.isdir(os.path.join(root, k))}
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return entries
    for name in names:
        if name.startswith((".", "_")):
            continue
        entry = _read_entry(os.path.join(root, name))
        if entry is not None:
            entries[name] = entry
    return entries


def _provenance(dumper: Dumper | None, fmt: str) -> dict:
    from simlake import __version__

    return {"dumper": dumper.__name__ if dumper else None, "format": fmt,
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "simlake_version": __version__, "hostname": socket.gethostname()}


def _place(root: str, key: str, fill: Any, dumper: Dumper | None, fmt: str) -> dict:
    """Build a key in a hidden folder with ``fill(tmp) -> entry`` and rename it into place,
    replacing an existing user key ``key``."""
    check_key_name(key)
    final = os.path.join(root, key)
    legacy = key in (read_manifest(root).get("user_keys") or {})
    if os.path.exists(final) and _read_entry(final) is None and not legacy:
        raise KeyError(f"{final} exists and is not a user key; refusing to replace it")
    tmp = os.path.join(root, f".tmp-{key}-{uuid.uuid4().hex}")
    try:
        entry = {**fill(tmp), **_provenance(dumper, fmt)}
        os.makedirs(tmp, exist_ok=True)
        _write_entry(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    trash = _move_aside(root, key)
    os.replace(tmp, final)
    if legacy:
        _drop_legacy_entry(root, key)
    if trash:
        shutil.rmtree(trash, ignore_errors=True)
    return entry


def _move_aside(root: str, key: str) -> str | None:
    final = os.path.join(root, key)
    if not os.path.exists(final):
        return None
    trash = os.path.join(root, f".trash-{key}-{uuid.uuid4().hex}")
    os.replace(final, trash)
    return trash


def _drop_legacy_entry(root: str, key: str) -> None:
    entries = dict(read_manifest(root).get("user_keys") or {})
    if entries.pop(key, None) is not None:
        update_manifest(root, user_keys=entries)


def store(root: str, key: str, value: Any, fmt: str | None = None,
          dumper: Dumper | None = None) -> dict:
    """Store ``value`` as the user key ``key`` of the database at ``root`` (replacing it)."""
    fmt = fmt or choose_format(value)
    return _place(root, key, lambda tmp: write_value(tmp, value, fmt), dumper, fmt)


def create_folder(root: str, key: str, dumper: Dumper | None = None) -> str:
    """Create the managed folder ``key``; returns its path."""
    def fill(tmp: str) -> dict:
        os.makedirs(tmp)
        return {"kind": "folder"}

    _place(root, key, fill, dumper, FOLDER)
    return os.path.join(root, key)


def create_sub_db(root: str, key: str, dumper: Dumper | None = None) -> str:
    """Create the folder of a nested database; returns its path."""

    def fill(tmp: str) -> dict:
        write_manifest(tmp, read_manifest(tmp) | {"unique_id": uuid.uuid4().hex})
        return {"kind": "sub_db"}

    _place(root, key, fill, dumper, SUB_DB)
    return os.path.join(root, key)


def remove(root: str, key: str) -> None:
    """Delete the user key ``key`` (moved aside in one rename, then deleted)."""
    if key not in user_entries(root):
        raise KeyError(f"{key!r} is not a user key of {root}")
    trash = _move_aside(root, key)
    _drop_legacy_entry(root, key)
    if trash:
        shutil.rmtree(trash, ignore_errors=True)


def rename(root: str, old: str, new: str) -> None:
    """Rename the user key ``old`` to ``new`` (which must not exist)."""
    check_key_name(new)
    entries = user_entries(root)
    if old not in entries:
        raise KeyError(f"{old!r} is not a user key of {root}")
    if os.path.exists(os.path.join(root, new)):
        raise KeyError(f"{new!r} already exists in {root}")
    if old in (read_manifest(root).get("user_keys") or {}):
        _write_entry(os.path.join(root, old), entries[old])  # self-describing from now on
        _drop_legacy_entry(root, old)
    os.rename(os.path.join(root, old), os.path.join(root, new))

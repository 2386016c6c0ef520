"""``DataBase``: ISF's ``DataBase`` interface over one simlake database folder.

``db[key]`` returns what ISF's ``load_simrun_general.init`` database returns for that key
(``docs/database.md``): pandas/dask frames built from the Delta tables (or, for keys
registered in the manifest's ``link_keys``, straight from the raw simrun files), managed
folders, the manifest's small values, and the user keys stored with ``db[key] = value`` or
``db.set(key, value, dumper=...)``.

ISF's semantics are kept where ISF code relies on them: a missing folder is created unless
``nocreate``/``readonly``; ``get`` of a missing key raises ``KeyError``; tuple keys address
nested sub-databases (``db.set(("binned", "L2"), df)`` creates ``binned``);
``create_sub_db`` returns an existing sub-database; ``keys()`` is a tuple; ``db.metadata[key]``
says how and when a key was written. Keys the ingest writes are read-only here.

Beyond ISF: ``DataBase(path, as_of=...)`` opens the database as it was at a time or right
after an ingest run (every table at its Delta version of that moment), and ``history()``
lists the ingest runs.

Graphs are built at read time from the Delta log and never stored. The object holds no state
besides its path, its flags, the pinned versions of ``as_of`` and a cache of facts about
immutable data files; it pickles as those.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import uuid
from typing import Any

import pandas as pd

from simlake.adapter import link as link_mode
from simlake.adapter import userkeys
from simlake.adapter.deltafiles import FileInfoCache, is_delta_table
from simlake.adapter.dumpers import DUMPERS, FOLDER, SUB_DB, resolve
from simlake.adapter.folders import ManagedFolder
from simlake.adapter.listing import KeyMetadata, tree_lines
from simlake.adapter.mapping import IsfMapping
from simlake.adapter.sitedb import SiteDataBase
from simlake.adapter.tables import TableReader
from simlake.adapter.versions import ingest_history, table_versions_as_of
from simlake.layout import FOLDER_KEYS, TRIAL_TABLES, folder_path
from simlake.manifest import manifest_path, read_manifest, update_manifest

log = logging.getLogger(__name__)

MANIFEST_KEYS = ("simresult_path", "filelist")
#: Keys the ingest owns; user keys cannot take these names.
RESERVED = frozenset(MANIFEST_KEYS + ("sim_trial_index", "metadata", "ingest_errors")
                     + TRIAL_TABLES + tuple(FOLDER_KEYS))
#: Sub-databases served from one table each (keys: recording sites, or site + threshold).
SITE_KEYS = ("dendritic_recordings", "dendritic_spike_times")

#: ``db[key]`` of an ingested table key, from the table reader.
_TABLE_VALUES = {
    "sim_trial_index": lambda r: r.trial_index(),
    "metadata": lambda r: r.metadata(),
    "voltage_traces": lambda r: r.voltage_traces(),
    "synapse_activation": lambda r: r.activation("synapse_activation"),
    "cell_activation": lambda r: r.activation("cell_activation"),
    "spike_times": lambda r: r.spike_times(),
    "parameterfiles": lambda r: r.parameterfiles(),
    "ingest_errors": lambda r: r.plain("ingest_errors"),
}


class DataBaseException(Exception):
    """A database operation that cannot be done (ISF's exception of the same name)."""


def _is_database(root: str) -> bool:
    return os.path.isfile(manifest_path(root)) or is_delta_table(os.path.join(root, "metadata"))


class DataBase(IsfMapping):
    """A simlake database folder behind ISF's ``DataBase`` interface.

    ``DataBase(path)`` opens the database at ``path``, creating an empty one where there is
    no folder or an empty one (``nocreate=True`` or ``readonly=True`` refuse instead, as in
    ISF); a folder that holds other files is refused. ``readonly=True`` blocks every write
    with :class:`DataBaseException` (``'warning'``: logs and skips it). ``as_of`` (a time,
    as ``datetime``/``pandas.Timestamp``/ISO string, naive meaning UTC, or the run id of an
    ingest) opens the database as it was then, read-only. ``suppress_errors`` is ISF's flag:
    blocked writes log instead of raising.
    """

    def __init__(self, basedir: str | os.PathLike[str], readonly: bool | str = False,
                 nocreate: bool = False, suppress_errors: bool = False, *,
                 as_of: Any = None) -> None:
        root = os.path.abspath(os.fspath(basedir))
        if os.path.exists(root) and not os.path.isdir(root):
            raise DataBaseException(f"{root} is a file, not a database folder")
        if not _is_database(root):
            why = ("nocreate" if nocreate else "readonly" if readonly or as_of is not None
                   else None)
            if why:
                raise DataBaseException(f"no simlake database at {root}; a new one is not "
                                        f"created since {why} is set")
            if os.path.isdir(root) and any(not n.startswith(".") for n in os.listdir(root)):
                raise DataBaseException(
                    f"{root} is not a simlake database (it holds other files and no "
                    f"{os.path.basename(manifest_path(root))}); open the database folder "
                    "or give an empty or new folder to create one")
            os.makedirs(root, exist_ok=True)
            update_manifest(root, unique_id=uuid.uuid4().hex)
        self.basedir = root
        self.readonly = True if as_of is not None else readonly
        self.nocreate = nocreate
        self._suppress_errors = suppress_errors
        self._as_of = as_of
        self._versions = None if as_of is None else table_versions_as_of(root, as_of)
        self._cache = FileInfoCache()
        self._reader = TableReader(root, self._cache, self._link_metadata, self._versions)
        self._links = link_mode.LinkSource(root, self._cache, self._reader.trial_index)
        self.metadata = KeyMetadata(self)

    def _link_metadata(self) -> Any:
        """The metadata rows when ``metadata`` is a link key, else None."""
        if "metadata" not in self._link_keys(self._manifest()):
            return None
        return link_mode.metadata_table(self._links)

    # -- identity ----------------------------------------------------------------------------

    def __reduce__(self) -> tuple:
        return (_reopen, (self.basedir, self.readonly, self._suppress_errors, self._as_of))

    def __repr__(self) -> str:
        return f"DataBase({self.basedir!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataBase) and other.basedir == self.basedir

    def __hash__(self) -> int:
        return hash(self.basedir)

    def get_id(self) -> str | None:
        """The unique id of this database (made and kept on first use if it has none; None
        for a read-only database that has none)."""
        uid = self._manifest().get("unique_id")
        if uid is None and self.readonly is False:
            uid = uuid.uuid4().hex
            update_manifest(self.basedir, unique_id=uid)
        return uid

    # -- keys --------------------------------------------------------------------------------

    def _manifest(self) -> dict[str, Any]:
        return read_manifest(self.basedir)

    def _link_keys(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return dict(manifest.get("link_keys") or {})

    def _is_table(self, key: str) -> bool:
        return self._reader.exists(key)

    def _user_entries(self) -> dict[str, dict]:
        if self._as_of is not None:
            return {}
        return {k: v for k, v in userkeys.user_entries(self.basedir).items()
                if k not in RESERVED}

    def keys(self, recurse: bool = False) -> tuple:  # type: ignore[override]
        """The keys of this database: ingest keys first, then user keys (a tuple, as in
        ISF). ``recurse=True`` gives tuples of names down into every sub-database."""
        manifest = self._manifest()
        links = self._link_keys(manifest)
        out: list[str] = []
        if manifest.get("simresult_path"):
            out.append("simresult_path")
        if manifest.get("filelist"):
            out.append("filelist")
        if self._is_table("metadata") or "metadata" in links:
            out += ["sim_trial_index", "metadata"]
            out += [k for k in TRIAL_TABLES if self._is_table(k) or k in links]
        if self._is_table("ingest_errors"):
            out.append("ingest_errors")
        out += [k for k in FOLDER_KEYS if os.path.isdir(folder_path(self.basedir, k))]
        out += sorted(self._user_entries())
        if not recurse:
            return tuple(out)
        nested: list[tuple] = []
        for k in out:
            sub = self._sub_db(k)
            if sub is None:
                nested.append((k,))
            else:
                nested += [(k, *rest) for rest in sub.keys(recurse=True)] or [(k,)]
        return tuple(nested)

    def _sub_db(self, key: str) -> DataBase | SiteDataBase | None:
        if key in SITE_KEYS and key in self.keys():
            return SiteDataBase(self, key)
        entry = self._user_entries().get(key)
        if entry and entry["kind"] == SUB_DB:
            return DataBase(os.path.join(self.basedir, key), self.readonly, self.nocreate,
                            self._suppress_errors)
        return None

    def check_if_key_exists(self, key: Any) -> bool:
        """Whether ``key`` (a name or a tuple of names into sub-databases) exists."""
        if isinstance(key, tuple):
            if not key:
                return False
            if len(key) == 1:
                return self.check_if_key_exists(key[0])
            sub = self._sub_db(key[0]) if isinstance(key[0], str) else None
            return sub is not None and sub.check_if_key_exists(key[1:])
        return isinstance(key, str) and key in self.keys()

    def _missing(self, key: Any) -> KeyError:
        return KeyError(f"{key!r} is not in the database {self.basedir}; "
                        f"available keys: {list(self.keys())}")

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            if len(key) == 1:
                return self[key[0]]
            sub = self._sub_db(key[0]) if key else None
            if sub is None:
                raise self._missing(key)
            return sub[key[1:]]
        if not self.check_if_key_exists(key):
            raise self._missing(key)
        manifest = self._manifest()
        links = self._link_keys(manifest)
        if key in MANIFEST_KEYS:
            value = manifest[key]
            return str(value) if key == "simresult_path" else list(value)
        if key in FOLDER_KEYS:
            return ManagedFolder(folder_path(self.basedir, key))
        entry = self._user_entries().get(key)
        if entry is not None:
            path = os.path.join(self.basedir, key)
            if entry["kind"] == SUB_DB:
                return self._sub_db(key)
            if entry["kind"] == FOLDER:
                return ManagedFolder(path)
            return userkeys.read_value(path, entry, self._cache)
        if key in SITE_KEYS:
            return SiteDataBase(self, key)
        table = "metadata" if key == "sim_trial_index" else key
        if key in links or (key == "sim_trial_index" and "metadata" in links):
            if not self._is_table(table):
                return link_mode.link_value(self._links, key, links)
        return _TABLE_VALUES[key](self._reader)

    # -- writing user keys -------------------------------------------------------------------

    def _may_write(self, key: Any) -> bool:
        """False (after a warning) where a write is to be skipped; raises where refused."""
        if self.readonly is False:
            return True
        why = f"as of {self._as_of}" if self._as_of is not None else "readonly"
        msg = f"{self.basedir} is opened {why}: blocked writing {key!r}"
        if self.readonly == "warning" or self._suppress_errors:
            log.warning("%s", msg)
            return False
        raise DataBaseException(msg)

    def _writable_name(self, key: str) -> str:
        if key in RESERVED:
            raise DataBaseException(f"{key!r} is written by the ingest and read-only here")
        userkeys.check_key_name(key)
        return key

    def set(self, key: Any, value: Any, lock: Any = None, dumper: Any = None,
            **kwargs: Any) -> None:
        """Store ``value`` under ``key`` (a name, or a tuple of names: all but the last are
        sub-databases, created as needed).

        ``dumper`` is ISF's dumper (module, object from :mod:`simlake.dumpers` or name) or a
        simlake format (``'delta'``, ``'npy'``, ``'json'``, ``'pickle'``); by default the most
        portable format that fits. ``overwrite=False`` refuses to replace an existing key.
        ``lock``, ``client`` and ``scheduler`` are accepted for ISF code and unused: a key
        is written atomically, so concurrent readers see the old or the new value.
        """
        chosen = resolve(dumper)  # an unknown dumper fails before anything is written
        if not self._may_write(key):
            return
        if isinstance(key, tuple):
            if not key:
                raise KeyError("an empty tuple is not a key")
            if len(key) > 1:
                self.create_sub_db(key[0]).set(key[1:], value, dumper=dumper, **kwargs)
                return
            key = key[0]
        self._writable_name(key)
        entry = self._user_entries().get(key)
        if entry is not None:
            if entry["kind"] == SUB_DB:
                raise DataBaseException(f"{key!r} is a sub-database; delete it before "
                                        "storing data under its name")
            if kwargs.get("overwrite", True) is False:
                raise KeyError(f"{key!r} is already set and overwrite=False")
        elif key in self.keys():
            raise DataBaseException(f"{key!r} exists and is not a user key")
        fmt = chosen.format if chosen else None
        if fmt == FOLDER:
            userkeys.create_folder(self.basedir, key, chosen)
        elif fmt == SUB_DB:
            userkeys.create_sub_db(self.basedir, key, chosen)
        else:
            userkeys.store(self.basedir, key, value, fmt, chosen)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: Any) -> None:
        if isinstance(key, tuple) and len(key) > 1:
            sub = self._sub_db(key[0])
            if not isinstance(sub, DataBase):
                raise self._missing(key)
            del sub[key[1:]]
            return
        if isinstance(key, tuple):
            key = key[0]
        if not self._may_write(key):
            return
        if key in RESERVED and key in self.keys():
            raise DataBaseException(f"{key!r} is written by the ingest and read-only here")
        if key not in self._user_entries():
            raise self._missing(key)
        userkeys.remove(self.basedir, key)

    def maybe_calculate(self, key: Any, fun: Any, **kwargs: Any) -> Any:
        """``db[key]`` if it exists; else ``fun()``, stored under ``key`` (``kwargs`` go
        to :meth:`set`, e.g. ``dumper=``) and returned. ``force_calculation=True``
        recomputes and replaces it."""
        force = kwargs.pop("force_calculation", False)
        if not force and self.check_if_key_exists(key):
            return self[key]
        value = fun()
        self.set(key, value, **kwargs)
        return value

    def create_sub_db(self, key: Any, register: str = "as_parent", **kwargs: Any) -> DataBase:
        """The nested database ``key`` (a name or tuple of names), created where missing;
        an existing one is returned. A key holding data is an error."""
        names = key if isinstance(key, tuple) else (key,)
        db: DataBase = self
        for name in names:
            sub = db._sub_db(name) if name not in SITE_KEYS else None
            if isinstance(sub, DataBase):
                db = sub
                continue
            if name in db.keys():
                raise DataBaseException(f"{name!r} in {db.basedir} holds data, not a "
                                        "sub-database; delete it first")
            if db._may_write(name):
                userkeys.create_sub_db(db.basedir, db._writable_name(name),
                                      DUMPERS["just_create_isf_db"])
            db = DataBase(os.path.join(db.basedir, name), db.readonly, db.nocreate,
                          db._suppress_errors)
        return db

    def create_managed_folder(self, key: str, raise_: bool = True) -> ManagedFolder:
        """A new folder inside the database, as ``db[key]``; an existing one raises
        :class:`DataBaseException` (``raise_=False`` returns it instead), as in ISF."""
        if self.check_if_key_exists(key):
            if raise_:
                raise DataBaseException(f"key {key!r} is already set; delete it first")
            return self[key]
        self.set(key, None, dumper=DUMPERS["just_create_folder"])
        return self[key]

    def rename(self, old_key: str, new_key: str) -> None:
        """Rename the user key ``old_key`` to ``new_key``."""
        if self._may_write(old_key):
            if old_key in RESERVED:
                raise DataBaseException(f"{old_key!r} is written by the ingest; read-only")
            userkeys.rename(self.basedir, old_key, self._writable_name(new_key))

    def remove(self) -> None:
        """Delete this whole database from disk (ISF's ``remove``)."""
        if self._may_write(self.basedir):
            trash = os.path.join(os.path.dirname(self.basedir),
                                 f".deleting-{os.path.basename(self.basedir)}-{uuid.uuid4().hex}")
            os.replace(self.basedir, trash)
            shutil.rmtree(trash, ignore_errors=True)

    # -- history -----------------------------------------------------------------------------

    def history(self) -> pd.DataFrame:
        """The ingest runs of this database, oldest first: run id, start and end, exit
        code, folders and trials added (from the kept run records; where none were kept,
        from the completion record's run ids), as ``simlake history`` lists them."""
        return ingest_history(self.basedir)

    # -- listing -----------------------------------------------------------------------------

    def describe(self, key: str) -> str:
        """A one-line description of how ``key`` is stored."""
        manifest = self._manifest()
        links = self._link_keys(manifest)
        if key in MANIFEST_KEYS:
            return "manifest value"
        if key in FOLDER_KEYS:
            return "managed folder"
        entry = self._user_entries().get(key)
        if entry is not None:
            how = entry.get("dumper") or entry.get("format") or entry["kind"]
            return f"user key ({entry['kind']}, {how})"
        table = "metadata" if key == "sim_trial_index" else key
        if self._is_table(table):
            snap = self._reader.snapshot(table, ())
            rows = sum(f.num_records or 0 for f in snap.files)
            size = sum(f.size for f in snap.files)
            extra = "derived from metadata, " if key == "sim_trial_index" else ""
            return (f"{extra}Delta table v{snap.version}: {len(snap.files)} files, "
                    f"{rows} rows, {size / 1e6:.1f} MB")
        if key in links or (key == "sim_trial_index" and "metadata" in links):
            return "link to the raw simrun files"
        return "?"

    def ls(self, depth: int = 0, max_depth: int = 2, max_lines: int = 20,
           all_files: bool = False, max_lines_per_key: int = 3, color: bool = True) -> None:
        """Print the database as a tree: every key with how it is stored, sub-databases
        down to ``max_depth``, at most ``max_lines`` lines (``max_lines_per_key`` inside a
        sub-database); ``all_files`` also lists the files in key folders."""
        lines = [self.basedir]
        lines += tree_lines(self, depth, max_depth, max_lines_per_key, all_files,
                       color and sys.stdout.isatty(), limit=None)
        if len(lines) > max_lines + 1:
            lines = lines[:max_lines + 1] + [f"... ({len(lines) - max_lines - 1} more)"]
        print("\n".join(lines))


def _reopen(root: str, readonly: Any, suppress_errors: bool, as_of: Any) -> DataBase:
    return DataBase(root, readonly, True, suppress_errors, as_of=as_of)

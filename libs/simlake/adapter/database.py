"""``DataBase``: the ISF-compatible key interface over one database folder.

``db[key]`` returns what ISF's ``load_simrun_general.init`` database returns for that key
(``spec/database-keys.md``): pandas/dask frames built from the Delta tables (or, for keys
registered in the manifest's ``link_keys``, straight from the raw simrun files), managed
folders, the manifest's small values, and user keys stored with ``db[key] = value``.

Graphs are built at read time from the current Delta log and never stored. The object
holds no state besides its path and a cache of facts about immutable data files, and it
pickles as its path only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from simlake.adapter import link as link_mode
from simlake.adapter import userkeys
from simlake.adapter.deltafiles import FileInfoCache, is_delta_table, open_table
from simlake.adapter.folders import ManagedFolder
from simlake.adapter.tables import TableReader, spike_key
from simlake.layout import FOLDER_KEYS, folder_path
from simlake.manifest import manifest_path, read_manifest

log = logging.getLogger(__name__)

#: Per-trial Delta tables, in the order keys are listed.
TRIAL_TABLES = ("voltage_traces", "synapse_activation", "cell_activation", "spike_times",
                "dendritic_recordings", "dendritic_spike_times", "parameterfiles")
MANIFEST_KEYS = ("simresult_path", "filelist")
#: Keys the ingest owns; user keys cannot take these names.
RESERVED = frozenset(MANIFEST_KEYS + ("sim_trial_index", "metadata", "ingest_errors")
                     + TRIAL_TABLES + tuple(FOLDER_KEYS))


class DataBase(Mapping):
    """A simlake database folder behind ISF's key interface.

    ``DataBase(path)`` opens an existing folder (``create=True`` makes an empty one).
    ``db.keys()`` lists the keys that exist; ``db[key]`` reads one; ``db[key] = value``,
    ``db.set(key, value)``, ``del db[key]`` and ``db.create_sub_db(name)`` manage user keys.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        root = os.path.abspath(os.fspath(path))
        if not os.path.isdir(root):
            if not create:
                raise FileNotFoundError(f"no database folder at {root} (create=True makes one)")
            os.makedirs(root)
        self._root = root
        self._cache = FileInfoCache()
        self._reader = TableReader(root, self._cache, self._link_metadata)

    def _link_metadata(self) -> Any:
        """The metadata rows when ``metadata`` is a link key, else None."""
        if "metadata" not in self._link_keys(self._manifest()):
            return None
        return link_mode.metadata_table(self)

    # -- identity ----------------------------------------------------------------------------

    @property
    def basedir(self) -> str:
        """Absolute path of the database folder."""
        return self._root

    def __reduce__(self) -> tuple:
        return (DataBase, (self._root,))

    def __repr__(self) -> str:
        return f"DataBase({self._root!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataBase) and other._root == self._root

    def __hash__(self) -> int:
        return hash(self._root)

    # -- keys --------------------------------------------------------------------------------

    def _manifest(self) -> dict[str, Any]:
        return read_manifest(self._root)

    def _has_manifest(self) -> bool:
        return os.path.isfile(manifest_path(self._root))

    def _link_keys(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return dict(manifest.get("link_keys") or {})

    def _is_table(self, key: str) -> bool:
        return is_delta_table(os.path.join(self._root, key))

    def keys(self) -> list[str]:  # type: ignore[override]
        """The keys that exist in this database, ingest keys first, then user keys."""
        manifest = self._manifest() if self._has_manifest() else {}
        links = self._link_keys(manifest)
        out: list[str] = []
        if manifest.get("simresult_path"):
            out.append("simresult_path")
        if "filelist" in manifest:
            out.append("filelist")
        has_meta = self._is_table("metadata") or "metadata" in links
        if has_meta:
            out += ["sim_trial_index", "metadata"]
            out += [k for k in TRIAL_TABLES if self._is_table(k) or k in links]
        if self._is_table("ingest_errors"):
            out.append("ingest_errors")
        out += [k for k in FOLDER_KEYS if os.path.isdir(folder_path(self._root, k))]
        out += sorted(k for k in (manifest.get("user_keys") or {}) if k not in RESERVED)
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def _missing(self, key: Any) -> KeyError:
        return KeyError(f"{key!r} is not in the database {self._root}; "
                        f"available keys: {self.keys()}")

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise self._missing(key)
        manifest = self._manifest()
        links = self._link_keys(manifest)
        if key in MANIFEST_KEYS:
            value = manifest[key]
            return str(value) if key == "simresult_path" else list(value)
        if key in FOLDER_KEYS:
            return ManagedFolder(folder_path(self._root, key))
        if key in (manifest.get("user_keys") or {}) and key not in RESERVED:
            entry = manifest["user_keys"][key]
            if entry["kind"] == "sub_db":
                return DataBase(os.path.join(self._root, key))
            return userkeys.read_value(os.path.join(self._root, key), entry, self._cache)
        if key in links and not self._is_table(key if key != "sim_trial_index"
                                               else "metadata"):
            return link_mode.link_value(self, key, links)
        if key == "sim_trial_index":
            if "metadata" in links and not self._is_table("metadata"):
                return link_mode.link_value(self, key, links)
            return self._reader.sim_trial_index()
        if key == "metadata":
            return self._reader.metadata()
        if key == "voltage_traces":
            return self._reader.voltage_traces()
        if key in ("synapse_activation", "cell_activation"):
            return self._reader.activation(key)
        if key == "spike_times":
            return self._reader.spike_times()
        if key == "dendritic_recordings":
            return SiteDataBase(self, key)
        if key == "dendritic_spike_times":
            return SiteDataBase(self, key)
        if key == "parameterfiles":
            return self._reader.parameterfiles()
        if key == "ingest_errors":
            return self._reader.plain(key)
        raise self._missing(key)

    # -- user keys ---------------------------------------------------------------------------

    def set(self, key: str, value: Any, *, format: str | None = None) -> None:
        """Store ``value`` as the user key ``key``.

        ``format`` picks the storage: ``'delta'`` (pandas/dask frames and series), ``'npy'``
        (numpy arrays), ``'json'`` or ``'pickle'``; by default the most portable one that
        fits (see :mod:`simlake.adapter.userkeys`).
        """
        if key in RESERVED:
            raise KeyError(f"{key!r} is written by the ingest, not a user key")
        userkeys.store(self._root, key, value, format)

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        if key in RESERVED:
            raise KeyError(f"{key!r} is written by the ingest and cannot be deleted here")
        if key not in userkeys.user_entries(self._root):
            raise self._missing(key)
        userkeys.remove(self._root, key)

    def create_sub_db(self, key: str, raise_: bool = True) -> DataBase:
        """Create (or, with ``raise_=False``, open an existing) nested database ``key``."""
        entries = userkeys.user_entries(self._root)
        if key in entries and entries[key]["kind"] == "sub_db" and not raise_:
            return DataBase(os.path.join(self._root, key))
        if key in RESERVED:
            raise KeyError(f"{key!r} is written by the ingest, not a user key")
        return DataBase(userkeys.create_sub_db(self._root, key))

    # -- listing -----------------------------------------------------------------------------

    def describe(self, key: str) -> str:
        """A one-line description of how ``key`` is stored."""
        manifest = self._manifest()
        links = self._link_keys(manifest)
        if key in MANIFEST_KEYS:
            return "manifest value"
        if key in FOLDER_KEYS:
            return "managed folder"
        if key in (manifest.get("user_keys") or {}) and key not in RESERVED:
            return f"user key ({manifest['user_keys'][key]['kind']})"
        table = "metadata" if key == "sim_trial_index" else key
        if self._is_table(table):
            snap = open_table(os.path.join(self._root, table), ())
            rows = sum(f.num_records or 0 for f in snap.files)
            size = sum(f.size for f in snap.files)
            extra = "derived from metadata, " if key == "sim_trial_index" else ""
            return (f"{extra}Delta table v{snap.version}: {len(snap.files)} files, "
                    f"{rows} rows, {size / 1e6:.1f} MB")
        if key in links or (key == "sim_trial_index" and "metadata" in links):
            return "link to the raw simrun files"
        return "?"

    def ls(self) -> None:
        """Print every key with how it is stored."""
        keys = self.keys()
        width = max((len(k) for k in keys), default=0)
        print(f"{self._root}")
        for k in keys:
            print(f"  {k:<{width}}  {self.describe(k)}")


class SiteDataBase(Mapping):
    """The read-only sub-database of ``dendritic_recordings`` (keys: recording-site labels,
    values like ``voltage_traces``) or ``dendritic_spike_times`` (keys:
    ``<label>_<threshold>``, values like ``spike_times``)."""

    def __init__(self, db: DataBase, key: str) -> None:
        self._db = db
        self._key = key

    def __reduce__(self) -> tuple:
        return (_site_db, (self._db.basedir, self._key))

    def __repr__(self) -> str:
        return f"{self._db!r}[{self._key!r}]"

    def _linked(self) -> bool:
        links = self._db._link_keys(self._db._manifest())
        return self._key in links and not self._db._is_table(self._key)

    def _index(self) -> dict[str, Any]:
        if self._linked():
            return link_mode.site_index(self._db, self._key)
        reader = self._db._reader
        if self._key == "dendritic_recordings":
            return {s: s for s in reader.recording_sites(self._key)}
        return {spike_key(s, t): (s, t) for s, t in reader.spike_keys(self._key)}

    def keys(self) -> list[str]:  # type: ignore[override]
        """Labels (recordings) or ``<label>_<threshold>`` (spike times), sorted."""
        return sorted(self._index())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self._index()

    def __getitem__(self, key: str) -> Any:
        index = self._index()
        if key not in index:
            raise KeyError(f"{key!r} is not in {self!r}; available keys: {sorted(index)}")
        if self._linked():
            return link_mode.site_value(self._db, self._key, index[key])
        reader = self._db._reader
        if self._key == "dendritic_recordings":
            return reader.voltage_traces(self._key, site=index[key])
        site, threshold = index[key]
        return reader.spike_times(self._key, site=site, threshold=threshold)


def _site_db(root: str, key: str) -> SiteDataBase:
    return SiteDataBase(DataBase(root), key)

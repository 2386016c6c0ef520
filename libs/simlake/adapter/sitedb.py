"""The dendritic sub-databases: one Delta table (or link key) seen as ISF's sub-database of
recording sites (``dendritic_recordings``) or of ``<label>_<threshold>`` keys
(``dendritic_spike_times``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from simlake.adapter import link as link_mode
from simlake.adapter.mapping import IsfMapping
from simlake.adapter.tables import spike_key

if TYPE_CHECKING:
    from simlake.adapter.database import DataBase


class SiteDataBase(IsfMapping):
    """The read-only sub-database of ``dendritic_recordings`` (keys: recording-site labels,
    values like ``voltage_traces``) or ``dendritic_spike_times`` (keys: ISF's
    ``label + "_" + str(threshold)``, values like ``spike_times``)."""

    def __init__(self, db: DataBase, key: str) -> None:
        self._db = db
        self._key = key

    @property
    def basedir(self) -> str:
        """The folder of the table behind this sub-database."""
        return os.path.join(self._db.basedir, self._key)

    def __reduce__(self) -> tuple:
        return (_site_db, (self._db, self._key))

    def __repr__(self) -> str:
        return f"{self._db!r}[{self._key!r}]"

    def _linked(self) -> bool:
        links = self._db._link_keys(self._db._manifest())
        return self._key in links and not self._db._is_table(self._key)

    def _index(self) -> dict[str, Any]:
        if self._linked():
            return link_mode.site_index(self._db._links, self._key)
        reader = self._db._reader
        if self._key == "dendritic_recordings":
            return {s: s for s in reader.recording_sites(self._key)}
        return {spike_key(s, t): (s, t) for s, t in reader.spike_keys(self._key)}

    def keys(self, recurse: bool = False) -> tuple:  # type: ignore[override]
        """Labels (recordings) or ``<label>_<threshold>`` (spike times), sorted."""
        keys = sorted(self._index())
        return tuple((k,) for k in keys) if recurse else tuple(keys)

    def describe(self, key: str) -> str:
        """How a sub-key is stored."""
        return f"rows of the Delta table {self._key}"

    def check_if_key_exists(self, key: Any) -> bool:
        """Whether ``key`` is a sub-key here."""
        if isinstance(key, tuple):
            return len(key) == 1 and self.check_if_key_exists(key[0])
        return key in self._index()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple) and len(key) == 1:
            key = key[0]
        index = self._index()
        if key not in index:
            raise KeyError(f"{key!r} is not in {self!r}; available keys: {sorted(index)}")
        if self._linked():
            return link_mode.site_value(self._db._links, self._key, index[key])
        reader = self._db._reader
        if self._key == "dendritic_recordings":
            return reader.voltage_traces(self._key, site=index[key])
        site, threshold = index[key]
        return reader.spike_times(self._key, site=site, threshold=threshold)


def _site_db(db: DataBase, key: str) -> SiteDataBase:
    return SiteDataBase(db, key)

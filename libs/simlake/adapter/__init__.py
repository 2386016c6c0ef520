"""The JVM-free reading side: ``DataBase`` over the Delta tables, and ``optimize``.

Never imports pyspark; needs ``deltalake``, ``pyarrow``, ``dask`` and ``pandas`` only.

    db = DataBase("/path/to/db")
    db.keys(); db.ls()
    vt = db["voltage_traces"]                                   # dask, divisions known
    vt.loc["results/20150815-1530_20240/000003"].compute()      # reads one data file
    db["my_result"] = frame; del db["my_result"]                # user keys
    optimize(db)                                                # compact + sort big tables

Modules: :mod:`~simlake.adapter.database` (the key interface), :mod:`.tables` (Delta tables
to frames), :mod:`.frames` (the ISF reshapes), :mod:`.deltafiles` (files, ranges, reading),
:mod:`.versions` (``as_of``, history), :mod:`.userkeys` and :mod:`.userframes` (user keys),
:mod:`.dumpers` (ISF's dumpers), :mod:`.sitedb` (dendritic sub-databases), :mod:`.listing`
(``ls``, key metadata), :mod:`.dendritic` (spike times at a new threshold), :mod:`.optimize`,
:mod:`.link` (keys served from the raw files, through a ``LinkSource``).

What the adapter relies on in the ingest's Delta tables (``docs/database.md``):

- schemas as in :mod:`simlake.schemas`; plain column names (no column mapping), no deletion
  vectors (both are refused with :class:`UnsupportedTableError`); ``recording_site`` may be a
  Hive partition column of the dendritic tables;
- add actions with ``numRecords`` and min/max statistics on ``sim_trial_index``; they are
  used as they are when provably untruncated: shorter than the table property
  ``delta.dataSkippingStringPrefixLength`` or ``simlake.statsStringPrefixLength`` (32 when
  neither is set). Otherwise the ranges come from the Parquet footers (exact below 64 bytes)
  or a scan of the key column: correct, but one more read per file on open;
- files with sorted rows covering non-overlapping key ranges, one trial's rows never split
  over two files (otherwise the files share a partition and a :class:`LayoutWarning` says so);
- ``metadata`` written last per sim-run folder: it is the completion record, rows of other
  tables whose ``sim_run`` is not in it are hidden;
"""

from __future__ import annotations

from typing import Any

from simlake.adapter.deltafiles import LayoutWarning, UnsupportedTableError
from simlake.adapter.folders import ManagedFolder
from simlake.adapter.optimize import OptimizeResult, optimize  # rebinds the submodule name

#: Loaded on first use: the key interface imports dask, which tools that only read Delta logs
#: (``simlake info``, ``verify``) need not pay for.
_LAZY = {"DataBase": "database", "DataBaseException": "database", "SiteDataBase": "sitedb"}

__all__ = ["DataBase", "DataBaseException", "SiteDataBase", "ManagedFolder", "LayoutWarning",
           "UnsupportedTableError", "OptimizeResult", "optimize"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"simlake.adapter.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'simlake.adapter' has no attribute {name!r}")

"""simlake: simrun output as Delta Lake tables, served as ISF-shaped dask frames.

Importing this package never starts or imports Spark; Spark lives in ``simlake.spark``.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: Names re-exported lazily from the JVM-free adapter (``simlake.DataBase`` etc.).
_ADAPTER_EXPORTS = ("DataBase", "optimize")
#: Names re-exported lazily from the cell/network loaders (pure numpy; NEURON only on demand).
_CELLNET_EXPORTS = ("load_param_files_from_db", "load_initialized_cell_and_evokedNW_from_db",
                    "check_consistency")


def __getattr__(name: str):
    if name in _ADAPTER_EXPORTS:
        from simlake import adapter

        return getattr(adapter, name)
    if name in _CELLNET_EXPORTS:
        from simlake import cellnet

        return getattr(cellnet, name)
    raise AttributeError(f"module 'simlake' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_ADAPTER_EXPORTS, *_CELLNET_EXPORTS])

"""simlake: simrun output as Delta Lake tables, served as ISF-shaped dask frames.

Importing this package never starts or imports Spark; Spark lives in ``simlake.spark``.
"""

from __future__ import annotations

# one home for the version: the installed distribution's metadata (pyproject.toml)
try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("simlake")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

#: Submodules reachable as attributes (``import simlake; simlake.isf.init(...)``), imported on
#: first use so that ``import simlake`` stays light.
_LAZY_SUBMODULES = ("isf",)

#: Names re-exported lazily from the JVM-free adapter (``simlake.DataBase`` etc.).
_ADAPTER_EXPORTS = ("DataBase", "optimize")
#: Names re-exported lazily from the cell/network loaders (pure numpy; NEURON only on demand).
_CELLNET_EXPORTS = ("load_param_files_from_db", "load_initialized_cell_and_evokedNW_from_db",
                    "check_consistency")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"simlake.{name}")
    if name in _ADAPTER_EXPORTS:
        from simlake import adapter

        return getattr(adapter, name)
    if name in _CELLNET_EXPORTS:
        from simlake import cellnet

        return getattr(cellnet, name)
    raise AttributeError(f"module 'simlake' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_ADAPTER_EXPORTS, *_CELLNET_EXPORTS, *_LAZY_SUBMODULES])

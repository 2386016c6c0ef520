"""simlake: simrun output as Delta Lake tables, served as ISF-shaped dask frames.

Importing this package never starts or imports Spark; Spark lives in ``simlake.spark``.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: Names re-exported lazily from the JVM-free adapter (``simlake.DataBase`` etc.).
_ADAPTER_EXPORTS = ("DataBase", "optimize")


def __getattr__(name: str):
    if name in _ADAPTER_EXPORTS:
        from simlake import adapter

        return getattr(adapter, name)
    raise AttributeError(f"module 'simlake' has no attribute {name!r}")

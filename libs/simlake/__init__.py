"""simlake: simrun output as Delta Lake tables, served as ISF-shaped dask frames.

Importing this package never starts or imports Spark; Spark lives in ``simlake.spark``.
"""

from __future__ import annotations

__version__ = "0.1.0"

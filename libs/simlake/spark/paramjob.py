"""Param files of a batch's folders stored on the executors (``simlake.paramstore`` plans;
the hashing and storing run as an RDD job like the decoding's, in its already started workers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simlake.ingest_report import Rejection
from simlake.spark import executor_tasks

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from simlake.discovery import SimRunFolder


@dataclass(frozen=True)
class StoredParams:
    """Where each folder's param files are stored (``sim_run`` -> the ``parameterfiles``
    columns) and the param files that could not be stored."""

    by_folder: dict[str, dict[str, str | None]]
    rejections: tuple[Rejection, ...]


def store_param_files(spark: SparkSession, db: str, folders: Sequence[SimRunFolder],
                      known_in: str | None = None, prepared_in: str | None = None
                      ) -> StoredParams:
    """Store the folders' param files in ``db``, each distinct md5 once. An md5 whose outcome
    the database ``known_in`` recorded (strict mode's real database, while ``db`` is its
    scratch folder) is not stored again; one stored in the scratch folder ``prepared_in``
    (strict mode, once the folders are known good) is copied from there, not parsed again."""
    from simlake import paramstore

    items = [paramstore.FolderFiles(
        f.sim_run, f"{f.abspath}/{f.neuron_param}" if f.neuron_param else None,
        f"{f.abspath}/{f.network_param}" if f.network_param else None) for f in folders]
    if not items:
        return StoredParams({}, ())
    sc = spark.sparkContext

    def on_executors(fn, work: list) -> list:
        if not work:
            return []
        slices = min(len(work), sc.defaultParallelism * 2)
        task: Any = executor_tasks.each(fn)  # pyspark's stubs want an Iterable function
        return sc.parallelize(work, slices).mapPartitions(task).collect()

    stored = paramstore.store_folders(items, db, on_executors,
                                      known_in=[known_in] if known_in and known_in != db else [],
                                      prepared_in=prepared_in)
    rejections = tuple(Rejection(path, r.sim_run, kind, reason)
                       for r in stored for path, kind, reason in r.rejections)
    return StoredParams({r.sim_run: {"sim_run": r.sim_run, "path_neuron": r.path_neuron,
                                     "path_network": r.path_network,
                                     "hash_neuron": r.hash_neuron,
                                     "hash_network": r.hash_network} for r in stored},
                        rejections)

"""Where ``simlake sql --out`` writes a result, without ever deleting what is not its own.

- ``x.csv`` / ``x.parquet``: one file (the result coalesced to one task, written beside the
  target and renamed onto it);
- anything else: a folder of Parquet part files.

An existing target that is not empty is refused unless ``overwrite``; even then only a file or
a folder that holds nothing but Spark output files (a previous result) is replaced. The new
result is written to a hidden temporary sibling first and swapped in once complete, so a
failing query leaves the old target as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SINGLE_FILE_SUFFIXES = (".csv", ".parquet")
#: Names Spark's file writers leave in an output folder (a folder holding only these is a
#: previous result that ``overwrite`` may replace).
_SPARK_OUTPUT = re.compile(r"^(\.?part-.*|\.?_SUCCESS(\.crc)?|_committed_.*|_started_.*)$")


class OutputRefused(Exception):
    """The target exists and may not be replaced; the message says why, in one line."""


def check_target(path: str, overwrite: bool, protected: tuple[str, ...] = ()) -> None:
    """Raise :class:`OutputRefused` unless ``path`` may receive a result.

    ``protected``: folders (e.g. the database) that the target may neither be nor lie in
    nor contain.
    """
    target = os.path.abspath(path)
    for folder in map(os.path.abspath, protected):
        inside = os.path.commonpath([target, folder])
        if inside in (target, folder):
            raise OutputRefused(f"{target}: overlaps the database folder {folder}; not writing")
    if os.path.isdir(target):
        names = os.listdir(target)
        if not names:
            return
        if not overwrite:
            raise OutputRefused(f"{target}: folder exists and is not empty (--overwrite "
                                "replaces a previous result)")
        foreign = sorted(n for n in names if not _SPARK_OUTPUT.match(n))
        if foreign:
            raise OutputRefused(f"{target}: holds files that are no query result "
                                f"({', '.join(foreign[:3])}); not replacing it")
    elif os.path.lexists(target):
        if not os.path.isfile(target) or os.path.islink(target):
            raise OutputRefused(f"{target}: exists and is not a regular file; not replacing it")
        if os.path.getsize(target) and not overwrite:
            raise OutputRefused(f"{target}: file exists (--overwrite replaces it)")


def write_result(df: DataFrame, path: str, overwrite: bool = False,
                 protected: tuple[str, ...] = ()) -> str:
    """Write ``df`` to ``path`` as the suffix says; returns the absolute path written."""
    check_target(path, overwrite, protected)
    target = os.path.abspath(path)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(target)}.simlake-{uuid.uuid4().hex[:8]}")
    single = target.endswith(SINGLE_FILE_SUFFIXES)
    try:
        if single:
            df = df.coalesce(1)
        if target.endswith(".csv"):
            df.write.option("header", True).csv(tmp)
        else:
            df.write.parquet(tmp)
        if single:
            _single_file(tmp, target)
        else:
            _swap_folder(tmp, target)
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _single_file(folder: str, target: str) -> None:
    suffix = os.path.splitext(target)[1]
    parts = sorted(n for n in os.listdir(folder) if n.startswith("part-") and n.endswith(suffix))
    if len(parts) != 1:
        raise RuntimeError(f"{target}: expected one part file from Spark, found {len(parts)}")
    if os.path.isdir(target):  # a previous folder result (check_target allowed replacing it)
        shutil.rmtree(target)
    os.replace(os.path.join(folder, parts[0]), target)


def _swap_folder(new: str, target: str) -> None:
    if os.path.lexists(target):
        old = f"{new}.old"
        os.replace(target, old)
        os.replace(new, target)
        if os.path.isdir(old):
            shutil.rmtree(old)
        else:
            os.unlink(old)
    else:
        os.replace(new, target)

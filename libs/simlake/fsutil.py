"""Atomic, concurrency-safe file writes for the database folders.

Writers on several executors may store the same file at the same time. Both helpers write to a
uniquely named temporary file in the target folder first, so a reader never sees a partial file
and a crashed writer leaves at most a ``.tmp-*`` file behind, never a truncated target.
"""

from __future__ import annotations

import logging
import os
import uuid

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"


def _write_temp(folder: str, data: bytes) -> str:
    """Write ``data`` to a new temp file in ``folder`` (mode 0666 & ~umask); return its path."""
    tmp = os.path.join(folder, f"{_TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _same_content(path: str, data: bytes) -> bool:
    try:
        if os.path.getsize(path) != len(data):
            return False
        with open(path, "rb") as fh:
            return fh.read() == data
    except FileNotFoundError:
        return False


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (temp file in the same folder + ``os.replace``)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = _write_temp(folder, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def put_content_addressed(path: str, data: bytes) -> None:
    """Make ``path`` hold ``data``, where the name of ``path`` is derived from ``data``.

    Nothing is written when the file already holds these bytes (the normal case on a rerun or
    when another writer was first). Concurrent writers all write the same bytes, so whichever
    ``os.replace`` lands last leaves the same file.
    """
    if _same_content(path, data):
        return
    if os.path.exists(path):
        log.warning("content-addressed file %s held other bytes; replacing it", path)
    atomic_write_bytes(path, data)


def create_once(path: str, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists already (first writer wins, atomically).

    Returns True when this call created the file, False when the file was there. Uses a hard
    link from a temporary file, which fails atomically if the target exists; on file systems
    without hard links it falls back to ``os.replace`` (then concurrent writers of *different*
    bytes race, writers of equal bytes still leave one identical file).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(path):
        return False
    tmp = _write_temp(folder, data)
    try:
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some network / object-store file systems)
            if os.path.exists(path):
                return False
            os.replace(tmp, path)
            return True
    finally:
        _unlink_quietly(tmp)

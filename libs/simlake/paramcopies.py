"""Copy the files a param file references into the database's managed folders.

Each copy is content addressed: ``<folder>/<md5>_<basename>``, ``<md5>`` the md5 hex of the
stored bytes (equal names mean equal bytes, so concurrent writers agree). A ``.syn``/``.con``
file names its morphology/``.syn`` on its second header line; that file is copied too and the
header rewritten to ISF's ``reldb://`` reference of the copy.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable
from typing import NamedTuple

from simlake.fsutil import put_content_addressed
from simlake.layout import FOLDER_KEYS
from simlake.paramparse import decode_param_bytes
from simlake.paramrecords import MissingReference
from simlake.paramrefs import RELDB, reldb_reference, resolve_reference, resolve_written

_MAX_NAME = 255
#: The category and suffix of the file a header of each category names.
_HEADER_TARGET = {"syn_folder": ("morphology", ".hoc"), "con_folder": ("syn_folder", ".syn")}


class Missing(Exception):
    """A referenced file that cannot be copied (its message: the one-line reason)."""


# "# <label>: <reference>"; a label never starts a path ("C:\", "reldb://")
_HEADER_LABEL = re.compile(r"^\s*#\s*(?:[^:/\\]*:(?![/\\])\s*)?")


def header_reference(data: bytes) -> tuple[int, int, str] | None:
    """Byte span and text of the file reference on the 2nd header line of a .syn/.con file.

    The line is ``# <label>: <reference>`` (``# corresponding to cell: <name>``) or
    ``# <reference>``.
    """
    lines = data.split(b"\n", 2)
    if len(lines) < 2 or not lines[1].lstrip().startswith(b"#"):
        return None
    text, codec = decode_param_bytes(lines[1].rstrip(b"\r"))
    m = _HEADER_LABEL.match(text)
    if m is None:
        return None
    ref = text[m.end():].rstrip()
    if not ref:
        return None
    start = len(lines[0]) + 1 + len(text[: m.end()].encode(codec))
    return start, start + len(ref.encode(codec)), ref


class _HeaderCopy(NamedTuple):
    """A header reference rewritten to the copy ``ref`` of ``path`` in ``category``."""

    category: str
    path: str
    ref: str


class _Unresolved(NamedTuple):
    """A header reference that names no file (left as it was)."""

    ref: str


class _Copy(NamedTuple):
    ref: str  # the reldb:// reference of the copy
    target: str  # its absolute path
    source_stat: tuple[int, int]  # size and mtime of the source when it was copied
    header: _HeaderCopy | _Unresolved | None


class CopyCache:
    """The referenced files that earlier param files copied into one database in this process
    (one Spark task, or one call): a parameter sweep's network files all name the same
    ``.syn``/``.con``, which then cost a ``stat`` per param file instead of being read, hashed and
    compared again. An entry is used while its source has the size and mtime it had when copied
    and its copy exists, and while its header reference gives what it gave (the same copy of the
    same file, or still no file); a file whose header's file could not be read is not kept."""

    def __init__(self) -> None:
        self._copies: dict[tuple[str, str, str | None], _Copy] = {}

    def get(self, category: str, abspath: str, hint: str | None) -> _Copy | None:
        """The copy of ``abspath`` in ``category`` (made with morphology ``hint``), if its
        source and copy are unchanged."""
        copy = self._copies.get((category, abspath, hint))
        if copy is None:
            return None
        try:
            st = os.stat(abspath)
        except OSError:
            return None
        if (st.st_size, st.st_mtime_ns) != copy.source_stat or not os.path.exists(copy.target):
            return None
        return copy

    def put(self, category: str, abspath: str, hint: str | None, copy: _Copy) -> None:
        """Remember ``copy`` of ``abspath`` in ``category``."""
        self._copies[category, abspath, hint] = copy


class Copier:
    """Copies the referenced files of one param file into one database (each source once),
    collecting the references it cannot copy in ``missing``.

    ``morphology_hint`` (network files): the absolute path of the sim-run's morphology, for
    ``.syn`` headers that name their cell by file name only. ``cache``: copies made for earlier
    param files in this process.
    """

    def __init__(self, db_root: str, morphology_hint: str | None = None,
                 cache: CopyCache | None = None) -> None:
        self.db_root = os.path.abspath(db_root)
        self.morphology_hint = morphology_hint
        self.cache = cache
        self.done: dict[tuple[str, str], str] = {}
        self.missing: list[MissingReference] = []

    def copy(self, category: str, abspath: str, key: str) -> str:
        """Copy ``abspath`` into ``category`` (``key``: the dotted key path naming it, for the
        missing references of its header); return its ``reldb://`` reference, or raise
        :class:`Missing`."""
        done_key = (category, abspath)
        if done_key in self.done:
            return self.done[done_key]
        cached = (self.cache.get(category, abspath, self.morphology_hint)
                  if self.cache is not None else None)
        if cached is not None and self._header_again(cached.header, category, abspath, key):
            self.done[done_key] = cached.ref
            return cached.ref
        try:
            st = os.stat(abspath)
        except OSError:
            raise Missing("no such file") from None
        if not stat.S_ISREG(st.st_mode):
            raise Missing("no such file")
        try:
            with open(abspath, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise Missing(f"cannot read: {exc.strerror or exc}") from None
        header: _HeaderCopy | _Unresolved | None = None
        cacheable = True
        if category in ("syn_folder", "con_folder"):
            data, header, cacheable = self._rewrite_header(category, abspath, data, key)
        digest = hashlib.md5(data).hexdigest()
        base = os.path.basename(abspath)[: _MAX_NAME - len(digest) - 1]
        name = f"{digest}_{base}"
        folder = FOLDER_KEYS[category]
        target = os.path.join(self.db_root, folder, name)
        put_content_addressed(target, data)
        ref = reldb_reference(f"{folder}/{name}")
        self.done[done_key] = ref
        if self.cache is not None and cacheable:
            self.cache.put(category, abspath, self.morphology_hint,
                           _Copy(ref, target, (st.st_size, st.st_mtime_ns), header))
        return ref

    def _header_again(self, header: _HeaderCopy | _Unresolved | None, category: str,
                      abspath: str, key: str) -> bool:
        """Redo what a cached file's header reference did: the copy of its file, or the missing
        reference; False if that now turns out otherwise (then the file is copied again)."""
        if isinstance(header, _HeaderCopy):
            try:
                return self.copy(header.category, header.path, f"{key}[header]") == header.ref
            except Missing:
                return False
        if isinstance(header, _Unresolved):
            if self._header_target(category, abspath, header.ref) is not None:
                return False
            self._unresolved(category, header.ref, key)
        return True

    def _header_target(self, category: str, abspath: str, ref: str) -> str | None:
        """The file the header reference ``ref`` of the ``.syn``/``.con`` ``abspath`` names."""
        suffix = _HEADER_TARGET[category][1]
        candidate = resolve_written(ref, os.path.dirname(abspath))
        candidates = [candidate]
        if not os.path.splitext(ref)[1]:
            candidates.append(candidate + suffix)
        target = next((c for c in candidates if os.path.isfile(c)), None)
        hint = self.morphology_hint
        if target is None and category == "syn_folder" and hint and os.path.isfile(hint):
            # "corresponding to cell: <name>" names the sim-run's morphology by file name or stem
            name = os.path.basename(ref.replace("\\", "/"))
            if name in (os.path.basename(hint), os.path.splitext(os.path.basename(hint))[0]):
                target = hint
        return target

    def _unresolved(self, category: str, ref: str, key: str) -> None:
        # a bare cell name ("corresponding to cell: 86_L5_...") is no file reference
        if "/" in ref or "\\" in ref or ref.endswith(_HEADER_TARGET[category][1]):
            self.missing.append(MissingReference(f"{key}[header]", ref, "no such file"))

    def _rewrite_header(self, category: str, abspath: str, data: bytes, key: str
                        ) -> tuple[bytes, _HeaderCopy | _Unresolved | None, bool]:
        """``data`` with its header reference rewritten, what the reference gave, and whether
        that may be cached (not when its file could not be read: tried again next time)."""
        found = header_reference(data)
        if found is None:
            return data, None, True
        start, end, ref = found
        target = self._header_target(category, abspath, ref)
        if target is None:
            self._unresolved(category, ref, key)
            return data, _Unresolved(ref), True
        header_key = f"{key}[header]"
        target_category = _HEADER_TARGET[category][0]
        try:
            stored = self.copy(target_category, target, header_key)
        except Missing as exc:
            self.missing.append(MissingReference(header_key, ref, str(exc)))
            return data, None, False
        return (data[:start] + stored.encode("utf-8") + data[end:],
                _HeaderCopy(target_category, target, stored), True)


def copy_stored(src_root: str, db_root: str, refs: Iterable[str]) -> None:
    """Copy the stored files ``refs`` (``reldb://`` references) of the database folder
    ``src_root`` into ``db_root`` (the same names: content addressed), with the files their
    headers reference in turn; raises ``OSError`` if one cannot be read."""
    with_header = tuple(f"{RELDB}{FOLDER_KEYS[c]}/" for c in _HEADER_TARGET)
    todo, seen = list(refs), set()
    while todo:
        ref = todo.pop()
        if ref in seen or not ref.startswith(RELDB):
            continue
        seen.add(ref)
        with open(resolve_reference(src_root, ref), "rb") as fh:
            data = fh.read()
        put_content_addressed(resolve_reference(db_root, ref), data)
        found = header_reference(data) if ref.startswith(with_header) else None
        if found is not None:
            todo.append(found[2])

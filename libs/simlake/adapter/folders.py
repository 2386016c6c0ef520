"""Managed folder keys: a folder path that behaves like ISF's ``ManagedFolder``."""

from __future__ import annotations

import os


class ManagedFolder(str):
    """An absolute folder path (a ``str``) with ``join`` and ``listdir`` helpers.

    Note that ``join`` is a path join (as in ISF), not ``str.join``.
    """

    def join(self, *names: str) -> ManagedFolder:  # type: ignore[override]
        """The path of ``names`` inside this folder."""
        return ManagedFolder(os.path.join(self, *names))

    def listdir(self) -> list[str]:
        """Sorted names in the folder, hidden files left out."""
        return sorted(n for n in os.listdir(self) if not n.startswith("."))

    def get_file(self, suffix: str) -> ManagedFolder:
        """The one file in the folder whose name ends with ``suffix``."""
        hits = [n for n in self.listdir() if n.endswith(suffix)]
        if len(hits) != 1:
            raise FileNotFoundError(
                f"{self}: expected one file ending in {suffix!r}, found {hits!r}")
        return self.join(hits[0])

    def __repr__(self) -> str:
        return f"ManagedFolder({str(self)!r})"

    def __reduce__(self) -> tuple:
        return (ManagedFolder, (str(self),))

"""The mapping protocol ISF's ``DataBase`` objects share: iteration, ``len``, ``in`` and
``get`` from ``keys()``, ``check_if_key_exists`` and ``[key]`` (which each database defines)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class IsfMapping(Mapping):
    """A ``Mapping`` whose ``get`` raises ``KeyError`` for a missing key, as ISF's does."""

    def keys(self, recurse: bool = False) -> tuple:  # type: ignore[override]
        raise NotImplementedError

    def check_if_key_exists(self, key: Any) -> bool:
        raise NotImplementedError

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: object) -> bool:
        return self.check_if_key_exists(key)

    def get(self, key: Any, lock: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """``self[key]``; a missing key raises ``KeyError``. ``lock`` and loader keywords are
        accepted for ISF code and unused (reads take no lock: values are replaced atomically)."""
        return self[key]

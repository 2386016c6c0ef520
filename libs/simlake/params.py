"""A nested parameter mapping with attribute access, in the spirit of NeuroTools' ParameterSet.

``p.neuron.filename`` and ``p["neuron"]["filename"]`` and ``p["neuron.filename"]`` are the same
value. ``save(path)`` writes the dict-literal format of the param files back (parsed again by
:func:`simlake.paramfiles.parse_param_text`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from simlake.fsutil import atomic_write_bytes
from simlake.paramfiles import parse_param_file


class Params(dict):
    """A ``dict`` whose nested dicts are ``Params`` too, readable as attributes.

    Keys that are also ``dict`` method names (``items``, ``keys``, ...) are reachable by item
    access only. Dotted item keys traverse levels: ``p["sim.tStop"]``.
    """

    def __init__(self, data: Mapping | None = None, **kwargs: Any) -> None:
        super().__init__()
        for key, value in dict(data or {}, **kwargs).items():
            super().__setitem__(key, _wrap(value))

    @classmethod
    def from_file(cls, path: str) -> Params:
        """Parse a param file (never executes code)."""
        return cls(parse_param_file(path))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no parameter {name!r}; have {sorted(map(str, self))}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str) and "." in key and not super().__contains__(key):
            node: Any = self
            for part in key.split("."):
                node = node[part]
            return node
        return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, _wrap(value))

    def __reduce__(self):  # pickle as a plain dict payload
        return (self.__class__, (self.as_dict(),))

    def copy(self) -> Params:
        """A deep copy."""
        return Params(self.as_dict())

    def as_dict(self) -> dict:
        """Plain nested ``dict``/``list``/``tuple`` copy."""
        return _unwrap(self)

    def pretty(self) -> str:
        """The param-file text of this mapping (dict literal, 4-space indent, trailing commas)."""
        return format_literal(self.as_dict()) + "\n"

    def save(self, path: str) -> None:
        """Write the param-file text to ``path`` atomically."""
        atomic_write_bytes(os.fspath(path), self.pretty().encode("utf-8"))


def _wrap(value: Any) -> Any:
    if isinstance(value, Params):
        return value
    if isinstance(value, Mapping):
        return Params(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    return value


def _scalar(value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        value = value.item()
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("NaN cannot be written as a literal")
        if math.isinf(value):
            return "1e999" if value > 0 else "-1e999"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid Python literal, double quoted
    if isinstance(value, (bytes, complex)):
        return repr(value)
    raise TypeError(f"cannot write {type(value).__name__} as a param literal")


def format_literal(value: Any, indent: int = 0, step: int = 4) -> str:
    """Python literal text of nested dicts/lists/tuples of plain values (param-file style)."""
    pad, inner = " " * indent, " " * (indent + step)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        body = "".join(f"{inner}{_scalar(k)}: {format_literal(v, indent + step, step)},\n"
                       for k, v in value.items())
        return "{\n" + body + pad + "}"
    if isinstance(value, (list, tuple)):
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        if not value:
            return opening + closing
        items = [format_literal(v, indent + step, step) for v in value]
        one_line = opening + ", ".join(items) + ("," if len(items) == 1 and closing == ")" else "")
        one_line += closing
        if "\n" not in one_line and len(one_line) + indent <= 100:
            return one_line
        return opening + "\n" + "".join(f"{inner}{it},\n" for it in items) + pad + closing
    return _scalar(value)

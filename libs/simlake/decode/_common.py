"""Helpers shared by the decoders: text checks, error diagnosis, constant columns."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from simlake import schemas
from simlake.errors import SimrunFormatError

#: Offsets of ``list<double>`` are int32: a table may hold at most this many values per column.
MAX_LIST_VALUES = 2**31 - 1

_NUMBER = r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:nan|inf|infinity))"
_INT_RE = r"^[+-]?[0-9]+$"


def short(value: object, limit: int = 40) -> str:
    """``repr`` of ``value`` cut to about ``limit`` characters, for one-line reasons."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def text_problem(data: bytes) -> str | None:
    """Reason why ``data`` is not UTF-8 text (NUL bytes, invalid UTF-8), or None."""
    nul = data.find(b"\x00")
    if nul >= 0:
        return f"binary content, not text (NUL byte at offset {nul})"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (f"not UTF-8: invalid byte 0x{data[exc.start]:02x} at offset {exc.start} "
                f"(line {line})")
    return None


def line_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of every line of ``data`` (end excludes ``\\n``; no empty tail)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    ends = newlines if data.endswith(b"\n") else np.append(newlines, len(buf))
    starts = np.concatenate(([0], newlines + 1))[: len(ends)]
    return starts, ends


def field_counts(data: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Number of tab-separated fields of every line (an empty line counts 1)."""
    tabs = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 9)
    return np.searchsorted(tabs, ends) - np.searchsorted(tabs, starts) + 1


def first_not_matching(values: pa.Array, pattern: str) -> int | None:
    """Index of the first string in ``values`` not matching the regex ``pattern``, or None."""
    import pyarrow.compute as pc

    ok = pc.match_substring_regex(values, pattern).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if len(bad) else None


def float_pattern(padded: bool = False) -> str:
    """Regex of what Arrow parses as a float (``padded``: surrounding spaces allowed, as in csv)."""
    return f"^ *{_NUMBER} *$" if padded else f"^{_NUMBER}$"


def int_pattern() -> str:
    """Regex of a decimal integer literal."""
    return _INT_RE


def repeat(value: object, n: int, type_: pa.DataType) -> pa.Array:
    """An array of ``n`` copies of ``value``."""
    return pa.repeat(pa.scalar(value, type_), n)


def list_array(offsets: np.ndarray, values: np.ndarray | pa.Array, path: str) -> pa.ListArray:
    """``list<double>`` from int offsets and float64 values; checks the int32 offset limit."""
    if offsets[-1] > MAX_LIST_VALUES:
        raise SimrunFormatError(path, f"too many values for one table ({int(offsets[-1])})")
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32, copy=False)),
                                    pa.array(values, pa.float64()))


def trial_key_columns(sim_run: str, trialnrs: list[int]) -> list[pa.Array]:
    """``sim_trial_index``, ``sim_run``, ``trialnr`` for one row per trial."""
    return [
        pa.array([schemas.sim_trial_index(sim_run, nr) for nr in trialnrs], pa.string()),
        repeat(sim_run, len(trialnrs), pa.string()),
        pa.array(trialnrs, pa.int64()),
    ]


def arrow_message(exc: BaseException, limit: int = 160) -> str:
    """First line of an Arrow error message, cut to ``limit`` characters."""
    text = " ".join(str(exc).split())
    text = re.sub(r"^(CSV parse error|In CSV column #\d+): ", "", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."

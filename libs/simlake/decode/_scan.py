"""One compiled pass over the body of an activation file: where every field and time value is.

The activation decoders otherwise locate separators with a dozen numpy passes and searches per
file (about half of their time); this scan reads each byte once (numba, compiled on first use
and cached on disk). It only finds positions: numbers are still parsed by Arrow's casts, and
anything unexpected is left to the decoder that names the defect.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

#: ``ActivationLayout.status`` values.
OK = 0
BAD_FIELD_COUNT = 1  # a line with fewer or more tab-separated fields than the layout has
NOT_TERMINATED = 2  # a times field whose last value is not followed by a comma


class ActivationLayout(NamedTuple):
    """Positions (byte offsets into the body) of the fields of an activation file.

    ``field_end[k, i]``: end of fixed field ``k`` of line ``i`` (field ``k`` starts after field
    ``k - 1``, the first at ``line_start[i]``; one contiguous row per field);
    ``value_start``/``value_end``: every time value, in line order; ``values_per_line``: how
    many belong to each line.
    """

    status: int
    line_start: np.ndarray
    field_end: np.ndarray
    value_start: np.ndarray
    value_end: np.ndarray
    values_per_line: np.ndarray


def compiled(function):
    """``function`` compiled by numba, cached on disk (next to this module, else in the user's
    cache folder or ``NUMBA_CACHE_DIR``); where no cache folder is writable, compiled once per
    process instead (numba would refuse to import the module)."""
    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(nogil=True)(function)


def scan_activation(body: np.ndarray, n_fixed: int) -> ActivationLayout:
    """Scan ``body`` (uint8; complete lines, each ending with ``\\n``) for lines of
    ``n_fixed`` tab-separated fields, optionally followed by a tab and comma-terminated times.
    ``status`` is :data:`OK` or the first defect's kind (positions are then meaningless)."""
    return ActivationLayout(*_scan(body, n_fixed))


@compiled
def _scan(body, n_fixed):  # pragma: no cover - compiled
    n_lines = 0
    n_commas = 0
    for c in body:
        if c == 10:
            n_lines += 1
        elif c == 44:
            n_commas += 1
    line_start = np.empty(n_lines, np.int64)
    field_end = np.empty((n_fixed, n_lines), np.int64)
    value_start = np.empty(n_commas, np.int64)
    value_end = np.empty(n_commas, np.int64)
    values_per_line = np.zeros(n_lines, np.int64)
    line = 0
    field = 0  # tabs seen on this line
    start = 0  # of the line
    value = 0  # start of the next time value; -1 outside the times
    n_values = 0
    status = OK
    for i in range(body.shape[0]):
        c = body[i]
        if c == 9:
            if field >= n_fixed:
                status = BAD_FIELD_COUNT
                break
            field_end[field, line] = i
            field += 1
            value = i + 1 if field == n_fixed else -1
        elif c == 10:
            if field == n_fixed - 1:
                field_end[field, line] = i
            elif field < n_fixed - 1:
                status = BAD_FIELD_COUNT
                break
            elif value != i:  # times present: the last value must end with a comma
                status = NOT_TERMINATED
                break
            line_start[line] = start
            line += 1
            start = i + 1
            field = 0
            value = -1
        elif c == 44 and value >= 0:
            value_start[n_values] = value
            value_end[n_values] = i
            values_per_line[line] += 1
            n_values += 1
            value = i + 1
    return (status, line_start, field_end, value_start[:n_values], value_end[:n_values],
            values_per_line)


def parse_ints(body: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """``body[starts[i]:ends[i]]`` as int64 when every piece is a plain decimal integer
    (``-?[0-9]{1,18}``: no overflow possible); None otherwise (left to Arrow's cast)."""
    ok, values = _parse_ints(body, starts, ends)
    return values if ok else None


@compiled
def _parse_ints(body, starts, ends):  # pragma: no cover - compiled
    values = np.empty(starts.shape[0], np.int64)
    for j in range(starts.shape[0]):
        i, end = starts[j], ends[j]
        negative = i < end and body[i] == 45  # '-'
        if negative:
            i += 1
        if end - i < 1 or end - i > 18:
            return False, values
        v = 0
        while i < end:
            d = np.int64(body[i]) - 48
            if d < 0 or d > 9:
                return False, values
            v = v * 10 + d
            i += 1
        values[j] = -v if negative else v
    return True, values

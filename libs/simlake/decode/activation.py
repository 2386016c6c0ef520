"""Decoders of per-trial activation files (``spec/simrun-format.md``).

- ``simulation_run<NNNN>_synapses.csv`` -> ``schemas.SYNAPSE_ACTIVATION``
- ``simulation_run<NNNN>_presynaptic_cells.csv`` -> ``schemas.CELL_ACTIVATION``

A ``#`` header line, then one line per synapse/cell: fixed tab-separated fields, a tab, and
comma-terminated times (``1.5,2.25,``), possibly none (the line ends after the tab or right after
the last fixed field). The whole file is parsed at once: separator positions found with numpy,
fields cut out of the file buffer as Arrow string arrays, numbers cast in Arrow compute; no
Python loop per line or value. Rows keep the line order.

A well-formed file (the normal case) is located by one compiled pass (``_scan``, about 1.5x
faster decoding); a file that pass does not accept as it is, or whose fields do not cast, goes
through the exact decoder (:func:`_decode_exact`, numpy), which names the line and the reason.
The fast path accepts nothing the exact one rejects: same casts, same checks; it gives up
instead of explaining.

Decisions: a file with only the header line is a valid trial with zero rows; a 0-byte file is an
error ("empty file"). A final line without a newline is accepted when complete; a times field that
does not end with ``,`` is an error (every time is comma-terminated, so the line was cut).
NaN/inf times and empty string fields are rejected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simlake import schemas
from simlake.decode._common import (
    first_not_matching,
    float_pattern,
    int_pattern,
    list_array,
    repeat,
    short,
    text_problem,
)
from simlake.errors import SimrunFormatError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Layout:
    fields: tuple[tuple[str, pa.DataType], ...]  # the fixed fields before the times
    times: str  # name of the times column
    schema: pa.Schema


_SYNAPSES = _Layout(
    fields=(("synapse_type", pa.string()), ("synapse_ID", pa.int64()),
            ("soma_distance", pa.float64()), ("section_ID", pa.int64()),
            ("section_pt_ID", pa.int64()), ("dendrite_label", pa.string())),
    times="activation_times",
    schema=schemas.SYNAPSE_ACTIVATION,
)
_CELLS = _Layout(
    fields=(("presynaptic_cell_type", pa.string()), ("cell_ID", pa.int64())),
    times="spike_times",
    schema=schemas.CELL_ACTIVATION,
)


def decode_synapses(path: str, data: bytes, sim_run: str, trialnr: int) -> pa.Table:
    """Decode ``simulation_run<NNNN>_synapses.csv`` into ``schemas.SYNAPSE_ACTIVATION`` rows."""
    return _decode(path, data, sim_run, trialnr, _SYNAPSES)


def decode_presynaptic_cells(path: str, data: bytes, sim_run: str, trialnr: int) -> pa.Table:
    """Decode ``simulation_run<NNNN>_presynaptic_cells.csv`` into ``schemas.CELL_ACTIVATION``."""
    return _decode(path, data, sim_run, trialnr, _CELLS)


# --------------------------------------------------------------------------- internals
#
# The fields are located with numpy on the raw bytes (positions of tab, newline and comma), and
# each field column is cut out of the file buffer as an Arrow string array whose offsets
# alternate between field starts and ends (the odd pieces are the separators and are dropped).


def _check_text(path: str, data: bytes) -> None:
    if not data:
        raise SimrunFormatError(path, "empty file")
    whole = pa.LargeStringArray.from_buffers(
        1, pa.py_buffer(np.array([0, len(data)], dtype=np.int64)), pa.py_buffer(data))
    try:
        whole.validate(full=True)
    except pa.ArrowInvalid:
        raise SimrunFormatError(path, text_problem(data) or "not UTF-8") from None
    if b"\x00" in data:
        raise SimrunFormatError(path, text_problem(data) or "binary content")
    if not data.startswith(b"#"):
        first = data.split(b"\n", 1)[0].decode("utf-8")
        raise SimrunFormatError(path, f"first line is not a '#' header line: {short(first)}")


def _pieces(buf: pa.Buffer, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """String array of ``buf[starts[i]:ends[i]]`` (ranges sorted and non-overlapping)."""
    n = len(starts)
    if n == 0:
        return pa.array([], pa.string())
    offsets = np.empty(2 * n, dtype=np.int32)
    offsets[0::2] = starts
    offsets[1::2] = ends
    interleaved = pa.StringArray.from_buffers(2 * n - 1, pa.py_buffer(offsets), buf)
    return interleaved.take(pa.array(np.arange(0, 2 * n - 1, 2, dtype=np.int32)))


def _decode(path: str, data: bytes, sim_run: str, trialnr: int, layout: _Layout) -> pa.Table:
    _check_text(path, data)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    columns = _scanned_columns(path, data, layout)
    if columns is None:
        return _decode_exact(path, data, sim_run, trialnr, layout)
    n_rows = len(columns[0])
    keys = [
        repeat(schemas.sim_trial_index(sim_run, trialnr), n_rows, pa.string()),
        repeat(sim_run, n_rows, pa.string()),
        repeat(int(trialnr), n_rows, pa.int64()),
    ]
    return pa.Table.from_arrays(keys + columns, schema=layout.schema)


def _scanned_columns(path: str, data: bytes, layout: _Layout) -> list[pa.Array] | None:
    """The fixed fields and times of a well-formed file (a header line, then complete lines
    ending with a newline), located by the compiled scan; None at the first defect."""
    from simlake.decode._scan import OK, parse_ints, scan_activation

    header_end = data.find(b"\n")
    body = data[header_end + 1:] if header_end >= 0 else b""
    if not body or not body.endswith(b"\n") or len(body) >= 2**31:
        return None
    raw = np.frombuffer(body, dtype=np.uint8)
    found = scan_activation(raw, len(layout.fields))
    if found.status != OK:
        return None
    buf = pa.py_buffer(body)
    columns = []
    starts = found.line_start
    for k, (_, type_) in enumerate(layout.fields):
        ends = found.field_end[k]
        if (starts == ends).any():  # an empty field
            return None
        ints = parse_ints(raw, starts, ends) if pa.types.is_int64(type_) else None
        if ints is not None:  # plain decimal integers, parsed in the compiled code
            column = pa.array(ints)
        else:
            column = _pieces(buf, starts, ends)
            if not pa.types.is_string(type_):
                try:
                    column = pc.cast(column, type_)
                except pa.ArrowInvalid:
                    return None
                if pa.types.is_floating(type_) and not _all_finite(column):
                    return None
        columns.append(column)
        starts = ends + 1
    try:
        values = pc.cast(_pieces(buf, found.value_start, found.value_end), pa.float64())
    except pa.ArrowInvalid:
        return None
    if not _all_finite(values):
        return None
    offsets = np.zeros(len(found.line_start) + 1, dtype=np.int64)
    np.cumsum(found.values_per_line, out=offsets[1:])
    columns.append(list_array(offsets, values, path))
    return columns


def _all_finite(values: pa.Array) -> bool:
    return bool(np.isfinite(values.to_numpy(zero_copy_only=False)).all())


def _decode_exact(path: str, data: bytes, sim_run: str, trialnr: int,
                  layout: _Layout) -> pa.Table:
    """The decoder that names defects: separators located with numpy, every check reported
    with the line it fails on (``data``: checked text with LF line ends)."""
    header_end = data.find(b"\n")
    body = b"" if header_end < 0 else data[header_end + 1:]
    ends_with_newline = body.endswith(b"\n") or not body
    if not ends_with_newline:
        body += b"\n"
    if len(body) >= 2**31:
        raise SimrunFormatError(path, "file too large (2 GB or more)")
    buf = pa.py_buffer(body)
    raw = np.frombuffer(body, dtype=np.uint8)
    n_fixed = len(layout.fields)

    def fail(row: int, reason: str) -> SimrunFormatError:
        return SimrunFormatError(path, f"line {row + 2}: {reason}")

    # lines and their tab-separated fields: n_fixed, or n_fixed + 1 with the times last
    line_ends = np.flatnonzero(raw == 10)
    n_rows = len(line_ends)
    line_starts = np.zeros(n_rows, dtype=np.int64)
    line_starts[1:] = line_ends[:-1] + 1
    tabs = np.flatnonzero(raw == 9)
    first_tab = np.searchsorted(tabs, line_starts)
    counts = np.searchsorted(tabs, line_ends) - first_tab + 1
    bad = np.flatnonzero((counts != n_fixed) & (counts != n_fixed + 1))
    if len(bad):
        i = int(bad[0])
        if line_starts[i] == line_ends[i]:
            raise fail(i, "empty line")
        reason = f"{counts[i]} tab-separated fields, expected {n_fixed} (+ times)"
        if i == n_rows - 1 and not ends_with_newline and counts[i] < n_fixed:
            reason += " (file truncated mid-line?)"
        raise fail(i, reason)
    tabs = np.append(tabs, len(body))  # sentinel: keeps the index arithmetic in bounds
    has_times = counts == n_fixed + 1

    columns: list[pa.Array] = [
        repeat(schemas.sim_trial_index(sim_run, trialnr), n_rows, pa.string()),
        repeat(sim_run, n_rows, pa.string()),
        repeat(int(trialnr), n_rows, pa.int64()),
    ]
    starts = line_starts
    for k, (name, type_) in enumerate(layout.fields):
        last = k == n_fixed - 1
        ends = np.where(has_times, tabs[first_tab + k], line_ends) if last else tabs[first_tab + k]
        empty = np.flatnonzero(starts == ends)
        if len(empty):
            raise fail(int(empty[0]), f"empty {name}")
        columns.append(_typed_field(_pieces(buf, starts, ends), name, type_, fail))
        starts = ends + 1

    # times: comma-terminated values between the last tab and the end of the line
    t_start = np.where(has_times, starts, line_ends)
    terminated = (t_start == line_ends) | (raw[line_ends - 1] == 44)
    if not terminated.all():
        i = int(np.argmin(terminated))
        text = body[t_start[i]:line_ends[i]].decode("utf-8")
        last = i == n_rows - 1 and not ends_with_newline
        raise fail(i, f"{layout.times} {short(text)} not comma-terminated"
                      + (" (file truncated mid-line?)" if last else ""))
    commas = np.flatnonzero(raw == 44)
    row_of = np.searchsorted(line_ends, commas)
    inside = commas >= t_start[row_of] if n_rows else np.zeros(0, dtype=bool)
    commas, row_of = commas[inside], row_of[inside]
    first = np.ones(len(commas), dtype=bool)
    first[1:] = row_of[1:] != row_of[:-1]
    v_start = np.where(first, t_start[row_of], np.concatenate(([0], commas[:-1] + 1)))
    strings = _pieces(buf, v_start, commas)
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of, minlength=n_rows), out=offsets[1:])
    try:
        numbers = pc.cast(strings, pa.float64())
    except pa.ArrowInvalid:
        j = first_not_matching(strings, float_pattern())
        if j is None:
            raise SimrunFormatError(path, f"{layout.times}: unreadable value") from None
        raise fail(int(row_of[j]), f"{layout.times} value {short(strings[j].as_py())} "
                                   "is not a number") from None
    finite = np.isfinite(numbers.to_numpy(zero_copy_only=False))
    if not finite.all():
        j = int(np.argmin(finite))
        raise fail(int(row_of[j]), f"{layout.times} value {short(strings[j].as_py())} "
                                   "is not finite")
    columns.append(list_array(offsets, numbers, path))
    return pa.Table.from_arrays(columns, schema=layout.schema)


def _typed_field(raw: pa.Array, name: str, type_: pa.DataType, fail) -> pa.Array:
    """Cast one fixed field column; reasons name the first bad line."""
    if pa.types.is_string(type_):
        return raw
    try:
        out = pc.cast(raw, type_)
    except pa.ArrowInvalid:
        is_int = pa.types.is_integer(type_)
        row = first_not_matching(raw, int_pattern() if is_int else float_pattern())
        if row is None:  # matches the pattern but does not fit, e.g. beyond int64
            digits = pc.utf8_length(pc.utf8_ltrim(raw, characters="+-"))
            long = pc.greater_equal(digits, 19).to_numpy(zero_copy_only=False)
            row = int(np.argmax(long))
            raise fail(row, f"{name} {short(raw[row].as_py())} is out of range") from None
        kind = "an integer" if is_int else "a number"
        raise fail(row, f"{name} {short(raw[row].as_py())} is not {kind}") from None
    if pa.types.is_floating(type_):
        finite = np.isfinite(out.to_numpy(zero_copy_only=False))
        if not finite.all():
            row = int(np.argmin(finite))
            raise fail(row, f"{name} {short(raw[row].as_py())} is not finite")
    return out

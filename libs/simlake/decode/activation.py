"""Decoders of per-trial activation files (``docs/input-format.md``).

- ``simulation_run<NNNN>_synapses.csv`` -> ``schemas.SYNAPSE_ACTIVATION``
- ``simulation_run<NNNN>_presynaptic_cells.csv`` -> ``schemas.CELL_ACTIVATION``

A ``#`` header line, then one line per synapse/cell: fixed tab-separated fields, a tab, and
comma-terminated times (``1.5,2.25,``), possibly none (the line ends after the tab or right after
the last fixed field). Rows keep the line order; no Python loop per line or value.

Two paths. Well-formed files (the normal case) are decoded many at a time
(:func:`decode_synapse_files`): one compiled pass over all of them (``_scan``) locates the
fields and parses the plain numbers exactly, Arrow casts the others, and a handful of Arrow
calls per batch build the columns. A file that pass does not accept as it is, or whose numbers
do not cast, goes alone through the exact decoder (:func:`_decode_exact`: separators located
with numpy, fields cut out as Arrow strings and cast), which names the line and the reason.
The fast path accepts nothing the exact one rejects: same values, same checks; it gives up
instead of explaining.

Decisions: a file with only the header line is a valid trial with zero rows; a 0-byte file is an
error ("empty file"). A final line without a newline is accepted when complete; a times field that
does not end with ``,`` is an error (every time is comma-terminated, so the line was cut).
NaN/inf times and empty string fields are rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simlake import schemas
from simlake.datafiles import encode_strings
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


@dataclass(frozen=True)
class ActivationFile:
    """One raw activation file: its path (for messages), content and trial."""

    path: str
    data: bytes
    sim_run: str
    trialnr: int


@dataclass
class DecodedFiles:
    """The rows of a batch of activation files, in file order, and the files rejected
    (``(index into the batch, error)``; their rows are not in ``table``)."""

    table: pa.Table
    failures: list[tuple[int, Exception]]


def decode_synapses(path: str, data: bytes, sim_run: str, trialnr: int) -> pa.Table:
    """Decode ``simulation_run<NNNN>_synapses.csv`` into ``schemas.SYNAPSE_ACTIVATION`` rows."""
    return _decode_one(ActivationFile(path, data, sim_run, trialnr), _SYNAPSES)


def decode_presynaptic_cells(path: str, data: bytes, sim_run: str, trialnr: int) -> pa.Table:
    """Decode ``simulation_run<NNNN>_presynaptic_cells.csv`` into ``schemas.CELL_ACTIVATION``."""
    return _decode_one(ActivationFile(path, data, sim_run, trialnr), _CELLS)


def decode_synapse_files(files: Sequence[ActivationFile], encoded: bool = False
                         ) -> DecodedFiles:
    """Decode many synapse files at once (same rows as :func:`decode_synapses` per file).
    ``encoded``: string columns dictionary-encoded (``schemas.encoded``), as the data file
    writer takes them without hashing every value again."""
    return _decode_files(files, _SYNAPSES, encoded)


def decode_presynaptic_cell_files(files: Sequence[ActivationFile], encoded: bool = False
                                  ) -> DecodedFiles:
    """Decode many presynaptic-cell files at once (same rows as
    :func:`decode_presynaptic_cells` per file; ``encoded`` as for :func:`decode_synapse_files`)."""
    return _decode_files(files, _CELLS, encoded)


# --------------------------------------------------------------------------- internals


def _decode_one(file: ActivationFile, layout: _Layout) -> pa.Table:
    out = _decode_files([file], layout)
    if out.failures:
        raise out.failures[0][1]
    return out.table


def _decode_files(files: Sequence[ActivationFile], layout: _Layout,
                  encoded: bool = False) -> DecodedFiles:
    """The fast path for the files it accepts, the exact decoder for the others; rows in file
    order (runs of fast-path files stay one slice); string columns dictionary-encoded if
    ``encoded`` (the fast path builds them so; plain strings are decoded from it)."""
    schema = schemas.encoded(layout.schema) if encoded else layout.schema
    fast, accepted, rows = _fast_rows(files, layout)
    if fast is not None and not encoded:
        fast = fast.cast(layout.schema)  # dictionary-encoded strings decoded
    pieces: list[pa.Table] = []
    failures: list[tuple[int, Exception]] = []
    offset = 0
    i = 0
    while i < len(files):
        if accepted[i]:
            j = i
            while j < len(files) and accepted[j]:
                j += 1
            n = int(rows[i:j].sum())
            assert fast is not None  # accepted files exist only where the fast path ran
            pieces.append(fast.slice(offset, n))
            offset += n
            i = j
            continue
        try:
            exact = _decode_checked(files[i], layout)
            pieces.append(encode_strings(exact) if encoded else exact)
        except MemoryError:  # the worker's fault, not the file's: never a rejection
            raise
        except Exception as exc:  # one bad file must not stop the others
            failures.append((i, exc))
        i += 1
    table = pa.concat_tables(pieces) if pieces else schema.empty_table()
    return DecodedFiles(table, failures)


def _decode_checked(file: ActivationFile, layout: _Layout) -> pa.Table:
    """The exact decoder on one file, after the text checks."""
    _check_text(file.path, file.data)
    return _decode_exact(file.path, _lf(file.data), file.sim_run, file.trialnr, layout)


def _lf(data: bytes) -> bytes:
    """``data`` with CRLF line ends made LF (a copy only where there is a CR)."""
    return data.replace(b"\r\n", b"\n") if b"\r" in data else data


def _check_text(path: str, data: bytes) -> None:
    if not data:
        raise SimrunFormatError(path, "empty file")
    if not _valid_utf8(data):
        raise SimrunFormatError(path, text_problem(data) or "not UTF-8")
    if b"\x00" in data:
        raise SimrunFormatError(path, text_problem(data) or "binary content")
    if not data.startswith(b"#"):
        first = data.split(b"\n", 1)[0].decode("utf-8")
        raise SimrunFormatError(path, f"first line is not a '#' header line: {short(first)}")


def _valid_utf8(data: bytes) -> bool:
    whole = pa.LargeStringArray.from_buffers(
        1, pa.py_buffer(np.array([0, len(data)], dtype=np.int64)), pa.py_buffer(data))
    try:
        whole.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _plain_text(data: bytes) -> bool:
    """UTF-8 without NUL bytes (what the fast path needs checked; CRs are removed before)."""
    return b"\x00" not in data and _valid_utf8(data)


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


def _fast_rows(files: Sequence[ActivationFile], layout: _Layout
               ) -> tuple[pa.Table | None, np.ndarray, np.ndarray]:
    """Rows of the files that are well-formed as they are (a ``#`` header line, complete
    lines, plain numbers), located and parsed in one compiled pass over all of them; the
    table, which files it holds, and the rows of each. Every other file is left to the exact
    decoder."""
    from simlake.decode._scan import FLOAT, INT, OK, STRING, dictionary_codes, scan_files

    accepted = np.zeros(len(files), dtype=bool)
    rows = np.zeros(len(files), dtype=np.int64)
    datas = [_lf(f.data) for f in files]
    candidates = [i for i, d in enumerate(datas) if d.startswith(b"#") and d.endswith(b"\n")]
    joined = b"".join(datas[i] for i in candidates)
    if not _plain_text(joined):  # find the culprits (rare)
        candidates = [i for i in candidates if _plain_text(datas[i])]
        joined = b"".join(datas[i] for i in candidates)
    if not candidates or len(joined) >= 2**31:  # int32 string offsets
        return None, accepted, rows
    raw = np.frombuffer(joined, dtype=np.uint8)
    file_start = np.zeros(len(candidates) + 1, dtype=np.int64)
    np.cumsum([len(datas[i]) for i in candidates], out=file_start[1:])
    kinds = np.array([STRING if pa.types.is_string(t) else INT if pa.types.is_integer(t)
                      else FLOAT for _, t in layout.fields], dtype=np.int64)
    found = scan_files(raw, file_start, kinds)
    ok_files = np.asarray(candidates)[found.status == OK]
    lines = found.lines_per_file[found.status == OK]
    file_of_line = np.repeat(np.arange(len(ok_files)), lines)
    buf = pa.py_buffer(joined)

    # numbers that are not plain decimals: Arrow's cast, or the file goes to the exact decoder
    line_of_value = None  # built only where needed (not on the common path)
    bad_line = np.zeros(len(file_of_line), dtype=bool)
    starts = found.line_start
    for k, kind in enumerate(kinds):
        if kind == FLOAT and found.float_left[k].any():
            left = np.flatnonzero(found.float_left[k])
            good = _cast_floats(buf, starts[left], found.field_end[k][left],
                                found.floats[k], left)
            bad_line[left[~good]] = True
        starts = found.field_end[k] + 1
    values = found.values
    if len(found.left_index):
        good = _cast_floats(buf, found.left_start, found.left_end, values, found.left_index)
        line_of_value = np.repeat(np.arange(len(file_of_line)), found.values_per_line)
        bad_line[line_of_value[found.left_index[~good]]] = True

    keep_line = None
    if bad_line.any():
        keep_file = np.ones(len(ok_files), dtype=bool)
        keep_file[file_of_line[bad_line]] = False
        keep_line = keep_file[file_of_line]
        ok_files, lines = ok_files[keep_file], lines[keep_file]
        if line_of_value is None:
            line_of_value = np.repeat(np.arange(len(keep_line)), found.values_per_line)
        file_of_line = np.repeat(np.arange(len(ok_files)), lines)
        values = values[keep_line[line_of_value]]
    accepted[ok_files] = True
    rows[ok_files] = lines

    def kept(a: np.ndarray) -> np.ndarray:
        return a if keep_line is None else a[keep_line]

    which = pa.array(file_of_line.astype(np.int32))
    columns = [
        pa.DictionaryArray.from_arrays(which, pa.array(
            [schemas.sim_trial_index(files[i].sim_run, files[i].trialnr) for i in ok_files],
            pa.string())),
        pa.DictionaryArray.from_arrays(which, pa.array([files[i].sim_run for i in ok_files],
                                                       pa.string())),
        pa.array(np.asarray([files[i].trialnr for i in ok_files], dtype=np.int64)).take(which),
    ]
    starts = found.line_start
    for k, kind in enumerate(kinds):
        ends = found.field_end[k]
        if kind == STRING:
            lo, hi = kept(starts), kept(ends)
            codes, first = dictionary_codes(raw, lo, hi)
            columns.append(pa.DictionaryArray.from_arrays(pa.array(codes),
                                                          _pieces(buf, lo[first], hi[first])))
        else:
            columns.append(pa.array(kept(found.ints[k] if kind == INT else found.floats[k])))
        starts = ends + 1
    offsets = np.zeros(len(file_of_line) + 1, dtype=np.int32)
    np.cumsum(kept(found.values_per_line), out=offsets[1:])
    columns.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)))
    return pa.Table.from_arrays(columns, schema=schemas.encoded(layout.schema)), accepted, rows


def _cast_floats(buf: pa.Buffer, starts: np.ndarray, ends: np.ndarray, out: np.ndarray,
                 where: np.ndarray) -> np.ndarray:
    """Cast ``buf[starts[i]:ends[i]]`` to float64 with Arrow into ``out[where[i]]``; which
    ones gave a finite number (the others send their file to the exact decoder)."""
    pieces = _pieces(buf, starts, ends)
    good = np.zeros(len(starts), dtype=bool)
    castable = np.arange(len(starts))
    try:
        cast = pc.cast(pieces, pa.float64())
    except pa.ArrowInvalid:  # cast the pieces that look like numbers (the others are bad)
        match = pc.match_substring_regex(pieces, float_pattern())
        castable = np.flatnonzero(match.to_numpy(zero_copy_only=False))
        try:
            cast = pc.cast(pieces.filter(match), pa.float64())
        except pa.ArrowInvalid:  # e.g. out of range: the exact decoder says which
            return good
    cast = cast.to_numpy(zero_copy_only=False)
    out[where[castable]] = cast
    good[castable] = np.isfinite(cast)
    return good


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

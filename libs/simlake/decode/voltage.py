"""Decoders of voltage trace files: ``*_vm_all_traces.csv/.npz`` and ``*_vm_dend_traces.csv``.

Pure functions, bytes in, Arrow out (``schemas.VOLTAGE_TRACES`` / ``schemas.DENDRITIC_RECORDINGS``):
one row per trial, ``t`` = the time column exactly as parsed from the file, ``vm`` = the trial's
column. Trace csv files of plain decimals (what simrun writes) are parsed in one compiled pass
(``_scan.trace_matrix``, correctly rounded: the same doubles as any exact parser); any other
file goes through ``pyarrow.csv`` with every column typed float64, which reads every float
syntax it accepts and names the defects. Any defect raises
:class:`~simlake.errors.SimrunFormatError` with the path and a one-line reason.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from simlake import schemas
from simlake.decode._common import (
    arrow_message,
    field_counts,
    first_not_matching,
    float_pattern,
    line_bounds,
    list_array,
    repeat,
    short,
    text_problem,
    trial_key_columns,
)
from simlake.errors import SimrunFormatError

log = logging.getLogger(__name__)

_PARSE = pacsv.ParseOptions(delimiter="\t", quote_char=False, double_quote=False,
                            escape_char=False, newlines_in_values=False,
                            ignore_empty_lines=False)
_CONVERSION_RE = re.compile(r"In CSV column #(\d+): CSV conversion error to double: "
                            r"invalid value '(.*)'$", re.S)


def decode_voltage_csv(path: str, data: bytes, sim_run: str,
                       trialnrs: Sequence[int] | None) -> pa.Table:
    """Decode a somatic ``*_vm_all_traces.csv`` into ``schemas.VOLTAGE_TRACES`` rows.

    ``trialnrs`` are the folder's trial numbers (sorted synapse-file numbers): column i holds
    trial ``sorted(trialnrs)[i]`` and the file must have exactly that many trial columns.
    ``None`` means the folder has no synapse files: column i is trial i. Duplicate numbers in
    ``trialnrs`` are a caller error (``ValueError``), not a file defect.
    """
    t, vm, nrs = _decode_trace_csv(path, data, trialnrs)
    return _trace_table(path, schemas.VOLTAGE_TRACES, sim_run, t, vm, nrs)


def decode_dendritic_csv(path: str, data: bytes, sim_run: str, trialnrs: Sequence[int] | None,
                         recording_site: str) -> pa.Table:
    """Decode a ``*_vm_dend_traces.csv`` into ``schemas.DENDRITIC_RECORDINGS`` rows.

    Same layout and trial numbering as :func:`decode_voltage_csv`; every row carries
    ``recording_site``.
    """
    t, vm, nrs = _decode_trace_csv(path, data, trialnrs)
    table = _trace_table(path, schemas.VOLTAGE_TRACES, sim_run, t, vm, nrs)
    site = repeat(recording_site, table.num_rows, pa.string())
    return pa.Table.from_arrays([site, *table.columns], schema=schemas.DENDRITIC_RECORDINGS)


def decode_voltage_npz(path: str, data: bytes, sim_run: str) -> pa.Table:
    """Decode a ``*_vm_all_traces.npz`` (array ``arr_0``, shape (n_times, 1 + n_trials)).

    Trials are numbered 0..n-1; ``t`` is the stored column 0 (not recomputed from a step).
    """
    if not data:
        raise SimrunFormatError(path, "empty file")
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise SimrunFormatError(path, f"not a readable npz archive: {exc}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise SimrunFormatError(path, "a single .npy array, not an npz archive")
    with loaded:
        if "arr_0" not in loaded.files:
            raise SimrunFormatError(path, f"npz archive has no array arr_0 (has {loaded.files})")
        try:
            arr = loaded["arr_0"]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise SimrunFormatError(path, f"cannot read npz member arr_0: {exc}") from None
    if arr.ndim != 2:
        raise SimrunFormatError(path, f"arr_0 has shape {arr.shape}, "
                                      "expected (n_times, 1 + n_trials)")
    if arr.dtype.kind not in "fiu":
        raise SimrunFormatError(path, f"arr_0 has dtype {arr.dtype}, expected numbers")
    n_times, n_cols = arr.shape
    if n_cols < 2:
        raise SimrunFormatError(path, "arr_0 has no trial columns (only the time column)")
    if n_times == 0:
        raise SimrunFormatError(path, "arr_0 has no time rows")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        value = float(arr[row, col])
        raise SimrunFormatError(path, f"non-finite value {value!r} in arr_0 at row {row}, "
                                      f"column {col}")
    t = np.ascontiguousarray(arr[:, 0])
    vm = np.ascontiguousarray(arr[:, 1:].T).reshape(-1)  # trial-major
    return _trace_table(path, schemas.VOLTAGE_TRACES, sim_run, t, vm, list(range(n_cols - 1)))


# --------------------------------------------------------------------------- internals


def _trace_table(path: str, schema: pa.Schema, sim_run: str, t: np.ndarray, vm: np.ndarray,
                 trialnrs: list[int]) -> pa.Table:
    """One row per trial; ``vm`` holds the trial columns one after the other."""
    n_trials, n_times = len(trialnrs), len(t)
    offsets = np.arange(n_trials + 1, dtype=np.int64) * n_times
    columns = trial_key_columns(sim_run, trialnrs)
    columns.append(list_array(offsets, np.tile(t, n_trials), path))
    columns.append(list_array(offsets, vm, path))
    return pa.Table.from_arrays(columns, schema=schema)


def _header(path: str, data: bytes) -> tuple[list[str], int]:
    """Column names of the header line and the offset where the data rows start."""
    if not data:
        raise SimrunFormatError(path, "empty file")
    end = data.find(b"\n")
    body_start = len(data) if end < 0 else end + 1
    raw = data[: len(data) if end < 0 else end].rstrip(b"\r")
    try:
        header = raw.decode("utf-8")
    except UnicodeDecodeError:
        header = None
    if header is None or "\x00" in header:
        raise SimrunFormatError(path, text_problem(data) or "header line is not text")
    names = header.split("\t")
    if names[0] != "t":
        raise SimrunFormatError(path, f"header must start with column 't', got {short(names[0])}")
    if len(names) < 2:
        raise SimrunFormatError(path, "header has no trial columns ('Vm run NN')")
    for k, name in enumerate(names[1:]):
        if name != f"Vm run {k:02d}":
            raise SimrunFormatError(path, f"header column {k + 2} is {short(name)}, "
                                          f"expected 'Vm run {k:02d}'")
    return names, body_start


def _decode_trace_csv(path: str, data: bytes, trialnrs: Sequence[int] | None
                      ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    names, body_start = _header(path, data)
    n_trials = len(names) - 1
    if trialnrs is not None:
        nrs = sorted(int(n) for n in trialnrs)
        if len(set(nrs)) != len(nrs):
            raise ValueError(f"duplicate trial numbers given for {path}")
        if len(nrs) != n_trials:
            raise SimrunFormatError(
                path, f"{n_trials} trial columns but {len(nrs)} trials expected from the "
                      f"folder's synapse files ({'fewer' if n_trials < len(nrs) else 'more'} "
                      "columns than synapse files)")
    else:
        nrs = list(range(n_trials))
    if body_start == len(data):
        raise SimrunFormatError(path, "header only, no data rows")
    from simlake.decode._scan import trace_matrix

    matrix = trace_matrix(np.frombuffer(data, dtype=np.uint8), body_start, len(names))
    if matrix is not None:  # plain decimals throughout (the normal case): finite, exact
        return matrix[0], matrix[1:].reshape(-1), nrs
    return (*_parse_trace_csv(path, data, body_start, names), nrs)


def _parse_trace_csv(path: str, data: bytes, body_start: int, names: list[str]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The general parser (pyarrow.csv): any float syntax it reads; every defect named."""
    body = pa.py_buffer(data)[body_start:]
    columns = [f"c{i}" for i in range(len(names))]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(column_names=columns, block_size=_block_size(body)),
            parse_options=_PARSE,
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.float64() for c in columns}, null_values=[],
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        raise SimrunFormatError(path, _diagnose(data, body_start, names, exc)) from None
    if table.num_rows == 0:
        raise SimrunFormatError(path, "header only, no data rows")
    t = table.column(0).to_numpy()
    vm = np.concatenate([table.column(i).to_numpy() for i in range(1, len(names))])
    for values, offset in ((t, 0), (vm, len(t))):
        finite = np.isfinite(values)
        if not finite.all():
            flat = int(np.argmin(finite)) + offset
            col, row = divmod(flat, len(t))
            value = float(values[flat - offset])
            raise SimrunFormatError(path, f"non-finite value {value!r} at line {row + 2}, "
                                          f"column {names[col]!r}")
    return t, vm


def _block_size(body) -> int:
    """A pyarrow.csv block size that holds the longest line of ``body`` (its default, 1 MiB,
    refuses longer lines: a file of ~60,000 trials)."""
    newlines = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)
    ends = np.append(newlines, len(body))
    longest = int(np.diff(ends, prepend=-1).max())
    return max(1 << 20, longest + 1)


def _diagnose(data: bytes, body_start: int, names: list[str], exc: BaseException) -> str:
    """One-line reason for a csv that pyarrow refused (error path only)."""
    problem = text_problem(data)
    if problem:
        return problem
    body = data[body_start:]
    starts, ends = line_bounds(body)
    counts = field_counts(body, starts, ends)
    bad = np.flatnonzero(counts != len(names))
    if len(bad):
        i = int(bad[0])
        line = i + 2
        if ends[i] - starts[i] == 0 or body[starts[i]:ends[i]] == b"\r":
            return f"line {line} is empty"
        reason = f"line {line} has {int(counts[i])} fields, expected {len(names)}"
        if i == len(ends) - 1 and not body.endswith(b"\n") and counts[i] < len(names):
            reason += " (file truncated mid-line?)"
        return reason
    m = _CONVERSION_RE.search(str(exc))
    if m is not None:  # pyarrow names the column whose conversion failed first (of its
        # threads): the reason names the first bad value in line order instead, every time
        columns = [f"c{i}" for i in range(len(names))]
        text = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(body)),
            read_options=pacsv.ReadOptions(column_names=columns, block_size=_block_size(body)),
            parse_options=_PARSE,
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(columns,
                                                                            pa.string())),
        )
        pattern = float_pattern(padded=True)
        bad_cells = []
        for col in range(len(names)):
            first_bad = first_not_matching(text.column(col).combine_chunks(), pattern)
            if first_bad is not None:
                bad_cells.append((first_bad, col))
        if bad_cells:
            row, col = min(bad_cells)
            value = text.column(col)[row].as_py()
            return (f"non-numeric value {short(value)} at line {row + 2}, "
                    f"column {names[col]!r}")
        return f"non-numeric value {short(m.group(2))} in column {names[int(m.group(1))]!r}"
    return f"cannot parse: {arrow_message(exc)}"

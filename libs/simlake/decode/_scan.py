"""One compiled pass over a batch of activation files: where every field and time value is,
and the numbers that need no general parser.

The activation decoders otherwise locate separators with a dozen numpy passes and searches per
file and parse every number with Arrow's casts; ``scan_files`` reads each byte once for a whole
batch of files (numba, compiled on first use and cached on disk), parses the plain integers and
decimals exactly, and says which numbers it left to Arrow. Anything unexpected is left to the
decoder that names the defect: the scan only ever answers "here it is" or "not sure".
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

#: ``ActivationLayout.status`` values, per file.
OK = 0
BAD_FIELD_COUNT = 1  # a line with fewer or more tab-separated fields than the layout has
NOT_TERMINATED = 2  # a times field whose last value is not followed by a comma
NO_FINAL_NEWLINE = 3  # the file (header included) does not end with a newline
NOT_PLAIN = 4  # an empty field or value, or an integer field that is not a plain integer

#: Kinds of fixed fields (``kinds`` argument of :func:`scan_files`).
STRING, INT, FLOAT = 0, 1, 2

#: Exact powers of ten: every ``10**k`` up to ``k = 22`` is a double without rounding.
_POW10 = np.array([10.0**k for k in range(23)])

#: Plain decimals with at most this many significant digits are parsed here (their digits form
#: an integer below 10**18, which an int64 holds); longer ones are left to a general parser.
MAX_DIGITS = 18

#: ``5**k`` as integers, for the exact comparisons of :func:`_decimal`.
_POW5_INT = np.array([5**k for k in range(23)], dtype=np.uint64)


class ActivationLayout(NamedTuple):
    """A batch of activation files, scanned: field positions (byte offsets into the buffer),
    numbers parsed, and what is left to a general parser.

    Per file ``f``: ``status[f]`` is :data:`OK` or its first defect (its lines are then left
    out); ``lines_per_file[f]`` its lines below the header (0 unless OK).
    Per line ``i`` of the OK files, in file order: ``line_start[i]``; ``field_end[k, i]``, the
    end of fixed field ``k`` (which starts after field ``k - 1``, the first at the line's
    start); ``ints[k, i]``/``floats[k, i]``: the number in an INT/FLOAT field;
    ``float_left[k, i]``: a FLOAT field that is not a plain decimal (left to a general parser,
    ``floats`` holds 0); ``values_per_line[i]``: how many time values the line has.
    Per time value, in line order: ``values`` (0 where left); ``left_index``/``left_start``/
    ``left_end``: the values left to a general parser and their byte ranges.
    """

    status: np.ndarray
    lines_per_file: np.ndarray
    line_start: np.ndarray
    field_end: np.ndarray
    ints: np.ndarray
    floats: np.ndarray
    float_left: np.ndarray
    values_per_line: np.ndarray
    values: np.ndarray
    left_index: np.ndarray
    left_start: np.ndarray
    left_end: np.ndarray


def compiled(function):
    """``function`` compiled by numba, cached on disk (next to this module, else in the user's
    cache folder or ``NUMBA_CACHE_DIR``); where no cache folder is writable, compiled once per
    process instead (numba would refuse to import the module)."""
    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(nogil=True)(function)


def scan_files(data: np.ndarray, file_start: np.ndarray, kinds: np.ndarray) -> ActivationLayout:
    """Scan the files ``data[file_start[f]:file_start[f + 1]]`` (uint8), each a header line
    and lines of ``len(kinds)`` tab-separated fields (:data:`STRING`, :data:`INT` or
    :data:`FLOAT`), optionally followed by a tab and comma-terminated time values; every line,
    the header's included, ends with ``\n``.

    Integers are parsed when plain (``-?[0-9]{1,18}``: no overflow possible); floats when
    plain decimals (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?``) of at most :data:`MAX_DIGITS` digits,
    correctly rounded (:func:`_decimal`: the same double as any correctly rounding parser).
    Other floats are left (positions given), other integers fail the file."""
    return ActivationLayout(*_scan_files(data, file_start, kinds))


@compiled
def _count(data, byte):  # pragma: no cover - compiled
    n = 0
    for c in data:  # one test per loop: vectorised
        if c == byte:
            n += 1
    return n


@compiled
def _scan_files(data, file_start, kinds):  # pragma: no cover - compiled
    n_fixed = kinds.shape[0]
    n_lines = _count(data, 10)
    n_commas = _count(data, 44)
    n_files = file_start.shape[0] - 1
    status = np.zeros(n_files, np.int64)
    lines_per_file = np.zeros(n_files, np.int64)
    line_start = np.empty(n_lines, np.int64)
    field_end = np.empty((n_fixed, n_lines), np.int64)
    ints = np.empty((n_fixed, n_lines), np.int64)
    floats = np.empty((n_fixed, n_lines), np.float64)
    float_left = np.zeros((n_fixed, n_lines), np.bool_)
    values_per_line = np.zeros(n_lines, np.int64)
    values = np.empty(n_commas, np.float64)
    left_index = np.empty(n_commas, np.int64)
    left_start = np.empty(n_commas, np.int64)
    left_end = np.empty(n_commas, np.int64)
    line = 0
    n_values = 0
    n_left = 0
    for f in range(n_files):
        lo, hi = file_start[f], file_start[f + 1]
        if hi <= lo or data[hi - 1] != 10:
            status[f] = NO_FINAL_NEWLINE
            continue
        i = lo
        while data[i] != 10:  # the header line
            i += 1
        i += 1
        first_line, first_value, first_left = line, n_values, n_left
        found = OK
        # Every inner loop stops at a newline, and the file ends with one: no bounds to test.
        while i < hi and found == OK:  # one line per iteration
            line_start[line] = i
            c = np.uint8(10)
            for k in range(n_fixed):
                token = i
                kind = kinds[k]
                if kind == STRING:
                    c = data[i]
                    while c != 9 and c != 10:
                        i += 1
                        c = data[i]
                else:
                    w, digits, fraction, plain, i = _number(data, i, 9)
                    c = data[i]
                    if not plain:
                        while c != 9 and c != 10:
                            i += 1
                            c = data[i]
                    if kind == INT:
                        if not plain or fraction >= 0 or digits > 18:
                            found = NOT_PLAIN  # the exact decoder's cast decides
                            break
                        ints[k, line] = -w if data[token] == 45 else w
                    elif plain and _decimal_ok(w, digits, fraction):
                        v = _decimal(w, max(fraction, 0))
                        floats[k, line] = -v if data[token] == 45 else v
                    else:
                        floats[k, line] = 0.0
                        float_left[k, line] = True
                if i == token:
                    found = NOT_PLAIN  # an empty field
                    break
                if c == 10 and k < n_fixed - 1:
                    found = BAD_FIELD_COUNT
                    break
                field_end[k, line] = i
                i += 1
            if found != OK:
                break
            if c == 9:  # comma-terminated time values up to the newline
                c = data[i]
                while c != 10:
                    token = i
                    w, digits, fraction, plain, i = _number(data, i, 44)
                    c = data[i]
                    if not plain:
                        while c != 44 and c != 9 and c != 10:
                            i += 1
                            c = data[i]
                    if c != 44:
                        found = NOT_TERMINATED if c == 10 else BAD_FIELD_COUNT
                        break
                    if i == token:
                        found = NOT_PLAIN  # an empty value
                        break
                    if plain and _decimal_ok(w, digits, fraction):
                        v = _decimal(w, max(fraction, 0))
                        values[n_values] = -v if data[token] == 45 else v
                    else:
                        values[n_values] = 0.0
                        left_index[n_left] = n_values
                        left_start[n_left] = token
                        left_end[n_left] = i
                        n_left += 1
                    values_per_line[line] += 1
                    n_values += 1
                    i += 1
                    c = data[i]
                i += 1
            line += 1
        if found != OK:  # leave the file out: forget its lines and values
            status[f] = found
            values_per_line[first_line:line + 1] = 0
            float_left[:, first_line:line + 1] = False
            line, n_values, n_left = first_line, first_value, first_left
        else:
            lines_per_file[f] = line - first_line
    return (status, lines_per_file, line_start[:line], field_end[:, :line], ints[:, :line],
            floats[:, :line], float_left[:, :line], values_per_line[:line], values[:n_values],
            left_index[:n_left], left_start[:n_left], left_end[:n_left])


@compiled
def _number(data, i, terminator):  # pragma: no cover - compiled
    """The number starting at ``data[i]``: its digits as an integer, how many (not counting
    the zeros right after ``0.``), how many after the point (-1: no point), whether it is plain
    (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?`` followed by ``terminator``, a tab or a newline), and
    where it stops."""
    if data[i] == 45:  # '-'
        i += 1
    first = i
    w = 0
    c = data[i]
    while 48 <= c <= 57:
        w = w * 10 + (np.int64(c) - 48)
        i += 1
        c = data[i]
    digits = i - first
    fraction = -1
    zeros = 0
    if c == 46 and digits > 0:  # '.'
        i += 1
        c = data[i]
        point = i
        if w == 0:  # 0.000ddd: the zeros add nothing to w
            while c == 48:
                i += 1
                c = data[i]
            zeros = i - point
        while 48 <= c <= 57:
            w = w * 10 + (np.int64(c) - 48)
            i += 1
            c = data[i]
        fraction = i - point
        digits += fraction
    plain = ((c == terminator or c == 9 or c == 10) and digits > 0
             and not (data[first] == 48 and i - first > 1 and data[first + 1] != 46))
    return w, digits - zeros, fraction, plain, i


def dictionary_codes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Dictionary encoding of the byte strings ``data[starts[i]:ends[i]]``: a code per string
    (int32, numbered in order of first appearance) and, per code, the index of the string that
    first had it. Runs of equal strings (a file's sorted type column) cost one comparison per
    string; other strings, while there are at most :data:`FEW_CODES` distinct ones, a comparison
    with each, else one hash lookup."""
    return _dictionary_codes(data, starts, ends)


@compiled
def _same(data, a, b, n):  # pragma: no cover - compiled
    for j in range(n):
        if data[a + j] != data[b + j]:
            return False
    return True


#: Up to this many distinct strings, a string is compared with each of them instead of hashed:
#: label columns (``dendrite_label``: a handful of values, not in runs) cost a third as much.
FEW_CODES = 8


@compiled
def _dictionary_codes(data, starts, ends):  # pragma: no cover - compiled
    n = starts.shape[0]
    codes = np.empty(n, np.int32)
    first = np.empty(16, np.int64)
    size = 64  # open addressing, power of two, at most half full
    slots = np.full(size, -1, np.int64)
    n_codes = 0
    for i in range(n):
        s = starts[i]
        length = ends[i] - s
        if i > 0 and ends[i - 1] - starts[i - 1] == length and _same(data, s, starts[i - 1],
                                                                   length):
            codes[i] = codes[i - 1]
            continue
        if n_codes <= FEW_CODES:  # compare with each: cheaper than hashing every byte
            code = -1
            for c in range(n_codes):
                other = first[c]
                if ends[other] - starts[other] == length and _same(data, s, starts[other],
                                                                   length):
                    code = c
                    break
            if code >= 0:
                codes[i] = code
                continue
        h = np.uint64(14695981039346656037)  # FNV-1a
        for j in range(length):
            h = (h ^ np.uint64(data[s + j])) * np.uint64(1099511628211)
        slot = np.int64(h & np.uint64(size - 1))
        while True:
            code = slots[slot]
            if code < 0:
                break
            other = first[code]
            if ends[other] - starts[other] == length and _same(data, s, starts[other], length):
                break
            slot = (slot + 1) & (size - 1)
        if code >= 0:
            codes[i] = code
            continue
        if n_codes == first.shape[0]:
            grown = np.empty(2 * n_codes, np.int64)
            grown[:n_codes] = first
            first = grown
        first[n_codes] = i
        slots[slot] = n_codes
        codes[i] = n_codes
        n_codes += 1
        if 2 * n_codes > size:  # rehash into twice the slots
            size *= 2
            slots = np.full(size, -1, np.int64)
            for c in range(n_codes):
                line = first[c]
                h = np.uint64(14695981039346656037)
                for j in range(ends[line] - starts[line]):
                    h = (h ^ np.uint64(data[starts[line] + j])) * np.uint64(1099511628211)
                slot = np.int64(h & np.uint64(size - 1))
                while slots[slot] >= 0:
                    slot = (slot + 1) & (size - 1)
                slots[slot] = c
    return codes, first[:n_codes].copy()


def trace_matrix(data: np.ndarray, start: int, n_columns: int) -> np.ndarray | None:
    """The tab-separated lines of ``data[start:]`` (uint8; every line ``n_columns`` plain
    decimals of at most :data:`MAX_DIGITS` digits, ended by ``\n``) as a float64 matrix
    with one row per column of the file (``[column, line]``); ``None`` if any line is not like
    that, or there are none (then a general parser decides)."""
    if data.shape[0] <= start or data[data.shape[0] - 1] != 10:
        return None
    matrix, ok = _trace_matrix(data, start, n_columns)
    return matrix if ok and matrix.shape[1] > 0 else None


@compiled
def _trace_matrix(data, start, n_columns):  # pragma: no cover - compiled
    n_lines = _count(data[start:], 10)
    columns = np.empty((n_columns, n_lines), np.float64)
    i = start
    for line in range(n_lines):
        for k in range(n_columns):
            token = i
            w, digits, fraction, plain, i = _number(data, i, 9)
            if not plain or not _decimal_ok(w, digits, fraction):
                return columns, False
            if (data[i] == 10) != (k == n_columns - 1):  # too few or too many fields
                return columns, False
            v = _decimal(w, max(fraction, 0))
            columns[k, line] = -v if data[token] == 45 else v
            i += 1
    return columns, True


# --------------------------------------------------------------------------- exact decimals
#
# A plain decimal is w / 10**f: w its digits as an integer (below 10**18), f the digits after
# the point. Below 2**53, w is a double without rounding, and so is 10**f (f <= 22): one IEEE
# division then rounds the exact quotient correctly (Clinger's fast path). Above (the 16-17
# significant digits of Python's str(float)), that division is within two units in the last
# place of the correct double; it is corrected by comparing the exact quotient with the
# midpoints between neighbouring doubles, in 128-bit integer arithmetic (10**f = 5**f * 2**f):
#     w / 10**f  vs  mid * 2**e   <=>   w * 2**(-e - f)  vs  mid * 5**f.
# Ties go to the even significand, as IEEE rounding does.

_HIDDEN = 1 << 52  # the smallest normal significand (53 bits)


@compiled
def _decimal_ok(w, digits, fraction):  # pragma: no cover - compiled
    """Whether the passes parse a plain number themselves (:func:`_decimal`), as
    :func:`_number` gives it: ``w`` with ``digits`` significant digits, ``fraction`` after the
    point (``-1``: no point; ``0``, as in ``5.``, is left to the general parser): up to 18
    significant digits, below 2**53, at most 22 digits after the point."""
    if fraction == 0 or digits > MAX_DIGITS or fraction >= _POW10.shape[0]:
        return False
    return w < 9007199254740992 or (fraction > 0 and (
        fraction >= 3 or w // 9007199254740992 < 10**fraction))  # below 2**53


@compiled
def _decimal(w, f):  # pragma: no cover - compiled
    """The double nearest to ``w / 10**f`` (``0 <= w < 10**18``; :func:`_decimal_ok`)."""
    x = np.float64(w) / _POW10[f]
    if w < 9007199254740992:  # 2**53: exact operands, one rounding
        return x
    mantissa, exponent = math.frexp(x)
    m = np.int64(mantissa * 9007199254740992.0)  # 53-bit significand: x = m * 2**e
    e = exponent - 53
    uw = np.uint64(w)
    for _ in range(8):  # at most two steps are ever needed
        above = _compare(uw, f, np.uint64(2 * m + 1), e - 1)  # vs the midpoint above
        if above > 0 or (above == 0 and m & 1):
            m += 1
            if m == 2 * _HIDDEN:
                m, e = _HIDDEN, e + 1
            continue
        if m == _HIDDEN:  # the double below is in the binade below: half the spacing
            below = _compare(uw, f, np.uint64(4 * m - 1), e - 2)
        else:
            below = _compare(uw, f, np.uint64(2 * m - 1), e - 1)
        if below < 0 or (below == 0 and m & 1):
            m -= 1
            if m < _HIDDEN:
                m, e = 2 * _HIDDEN - 1, e - 1
            continue
        break
    return math.ldexp(np.float64(m), e)


@compiled
def _compare(w, f, mid, e):  # pragma: no cover - compiled
    """The sign of ``w / 10**f - mid * 2**e`` (``w``, ``mid`` unsigned, ``e <= 0``). As
    :func:`_decimal` has them (``w < 2**60``, ``mid < 2**55``, ``f <= 22``, quotient below
    2**53), every product fits 128 bits."""
    right_hi, right_lo = _multiply128(mid, _POW5_INT[f])
    shift = -e - f
    if shift >= 0:
        left_hi, left_lo = _shift128(np.uint64(0), w, shift)
    else:
        left_hi, left_lo = np.uint64(0), w
        right_hi, right_lo = _shift128(right_hi, right_lo, -shift)
    if left_hi != right_hi:
        return 1 if left_hi > right_hi else -1
    if left_lo != right_lo:
        return 1 if left_lo > right_lo else -1
    return 0


@compiled
def _shift128(hi, lo, s):  # pragma: no cover - compiled
    """``(hi, lo) * 2**s`` as (high, low) 64-bit halves (``0 <= s < 128``; no overflow)."""
    if s == 0:
        return hi, lo
    if s < 64:
        return (hi << np.uint64(s)) | (lo >> np.uint64(64 - s)), lo << np.uint64(s)
    return lo << np.uint64(s - 64), np.uint64(0)


@compiled
def _multiply128(a, b):  # pragma: no cover - compiled
    """``a * b`` (64-bit unsigned each) as (high, low) 64-bit halves."""
    low32 = np.uint64(0xFFFFFFFF)
    thirty_two = np.uint64(32)
    a_lo, a_hi = a & low32, a >> thirty_two
    b_lo, b_hi = b & low32, b >> thirty_two
    lo_lo = a_lo * b_lo
    lo_hi = a_lo * b_hi
    hi_lo = a_hi * b_lo
    middle = (lo_lo >> thirty_two) + (lo_hi & low32) + (hi_lo & low32)
    low = (lo_lo & low32) | (middle << thirty_two)
    high = a_hi * b_hi + (lo_hi >> thirty_two) + (hi_lo >> thirty_two) + (middle >> thirty_two)
    return high, low


def load_compiled() -> None:
    """Load every compiled function of this module now (from numba's disk cache, or compile
    it), for the argument types the decoders pass: a process that forks workers calls this
    once, so that no worker loads them on its first file."""
    text = np.frombuffer(b"#\n1\t2\n", dtype=np.uint8)
    one = np.zeros(1, dtype=np.int64)
    _scan_files(text, np.array([0, text.shape[0]], dtype=np.int64), one)
    _dictionary_codes(text, one, one + 1)
    _trace_matrix(text, 2, 2)

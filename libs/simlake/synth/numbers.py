"""Numbers as simrun prints them, vectorised: the three printers of the generated csv files.

A printer turns values into *codes*, codes into the floats a reader parses back, and codes into
text tokens (each followed by a separator byte), without a per-value Python loop (``Repr`` has
one ``repr`` of a whole list, in C):

- :class:`FixedPoint` (``"fixed10"``): the value rounded to 10 decimals, printed as
  ``repr()`` of that decimal (trailing zeros stripped). The generator's historical format.
- :class:`Str12` (``"str12"``): Python 2's ``str(float)`` (``'%.12g'``, plus ``.0`` for
  integral values) that older simrun versions print, e.g. ``-61.4607218758``.
- :class:`Repr` (``"repr"``): Python 3's ``repr(float)``, 16-17 significant digits for computed
  values, as newer simrun versions print.

Every token is exactly what ``str``/``repr`` print for the float it parses to, and the values keep
their full entropy (a trace compresses as a real one does).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

FORMATS = ("fixed10", "str12", "repr")  #: names of the number formats


def gather(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate the byte ranges ``buf[s:s+l]`` in order, vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    idx = np.repeat(np.asarray(starts, dtype=np.int64) - offsets, lengths)
    idx += np.arange(idx.size, dtype=np.int64)
    return buf[idx]


def pack(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(bytes, starts, lengths)`` of the UTF-8 encodings of ``strings``, concatenated."""
    encoded = [s.encode() for s in strings]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return buf, np.cumsum(lengths) - lengths, lengths


class Printer(Protocol):
    """Values -> codes -> (floats read back, text tokens)."""

    name: str

    def encode(self, values: Any) -> np.ndarray:
        """Codes of ``values`` (order-preserving: int64 units, or the doubles themselves)."""

    def floats(self, codes: np.ndarray) -> np.ndarray:
        """The doubles a reader parses from the tokens of ``codes``."""

    def tokens(self, codes: np.ndarray, sep: Any) -> tuple[np.ndarray, np.ndarray]:
        """Text of every code (row-major), each followed by its separator byte, concatenated.

        Returns ``(bytes as uint8 array, token lengths including the separator)``.
        """


# --------------------------------------------------------------------------------------------
# Fixed point, 10 decimals.
#
# A value is quantised to an integer n of 1e-10 units; its text is the decimal n / 10**10 with
# trailing zeros stripped (one fractional digit kept). For 1e-4 <= |v| < 1e5 that decimal has at
# most 15 significant digits, so it is exactly repr() of the float nearest to it, and that float is
# n / 1e10 (a correctly rounded IEEE division of two exact doubles). Values in (0, 1e-4) would be
# printed in exponent notation by repr(): they are nudged to +-1e-4.
#
# Each token is laid out in 20 bytes (5 little-endian uint32 words filled from digit tables):
#   [0, 0, '-', d4] [d3 d2 d1 d0] ['.', f1, f2, f3] [f4 f5 f6 f7] [f8 f9 f10 sep]
# and a per-token keep mask (one of 100 patterns: sign, 1-5 integer digits, 1-10 fraction
# digits) squeezes out the unused bytes.

_DEC = 10
_SCALE = 10**_DEC
_MIN_UNITS = 10**6
MAX_ABS = 1e5  #: values printable by :class:`FixedPoint`: ``|v| < MAX_ABS``
_CHUNK = 1 << 16


def _digit_words(width: int, prefix: bytes = b"") -> np.ndarray:
    rows = [(prefix + f"{i:0{width}d}".encode()).ljust(4, b"\0") for i in range(10**width)]
    return np.frombuffer(b"".join(rows), dtype="<u4")


def _trailing_zeros(width: int) -> np.ndarray:
    texts = (f"{i:0{width}d}" for i in range(10**width))
    return np.array([len(t) - len(t.rstrip("0")) for t in texts], dtype=np.int64)


def _keep_patterns() -> np.ndarray:
    col = np.arange(20)
    pat = np.zeros((2, 5, 10, 20), bool)
    for neg in range(2):
        for nint in range(1, 6):
            for nfrac in range(1, 11):
                row = ((col >= 8 - nint) & (col <= 8 + nfrac)) | (col == 19)
                row[2] = bool(neg)
                pat[neg, nint - 1, nfrac - 1] = row
    return pat.reshape(100, 20)


_WORDS4 = _digit_words(4)
_WORDS3 = _digit_words(3)
_WORDS_DOT3 = _digit_words(3, b".")
_TZ3 = _trailing_zeros(3)
_TZ4 = _trailing_zeros(4)
_KEEP = _keep_patterns()
_POW10 = 10 ** np.arange(1, 5, dtype=np.int64)


def quantise(values: Any) -> np.ndarray:
    """Codes of :class:`FixedPoint`: ``values`` in integer units of 1e-10."""
    v = np.asarray(values, dtype=np.float64)
    if v.size and not np.all(np.abs(v) < MAX_ABS):
        raise ValueError(f"value out of the printable range |v| < {MAX_ABS:g}")
    n = np.rint(v * _SCALE).astype(np.int64)
    small = (n != 0) & (np.abs(n) < _MIN_UNITS)
    n[small] = np.sign(n[small]) * _MIN_UNITS
    return n


def units_as_float(units: np.ndarray) -> np.ndarray:
    """Doubles of :class:`FixedPoint` codes."""
    return units / float(_SCALE)


def _tokens_chunk(n: np.ndarray, sep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    neg = n < 0
    ip, fp = np.divmod(np.abs(n), _SCALE)
    top, low = np.divmod(ip, 10**4)
    a, rest = np.divmod(fp, 10**7)
    b, c = np.divmod(rest, 10**3)
    words = np.empty((n.size, 5), "<u4")
    words[:, 0] = (neg.astype(np.uint32) * (ord("-") << 16)) | ((top.astype(np.uint32) + 48) << 24)
    words[:, 1] = _WORDS4[low]
    words[:, 2] = _WORDS_DOT3[a]
    words[:, 3] = _WORDS4[b]
    words[:, 4] = _WORDS3[c] | (sep.astype(np.uint32) << 24)
    nint = 1 + np.searchsorted(_POW10, ip, side="right")
    nfrac = np.where(c != 0, 10 - _TZ3[c],
                     np.where(b != 0, 7 - _TZ4[b], np.where(a != 0, 3 - _TZ3[a], 1)))
    keep = _KEEP[neg * 50 + (nint - 1) * 10 + (nfrac - 1)]
    return words.view(np.uint8).reshape(n.size, 20)[keep], neg + nint + nfrac + 2


def fixed_point_tokens(units: np.ndarray, sep: Any) -> tuple[np.ndarray, np.ndarray]:
    """Text of every :class:`FixedPoint` code followed by its separator byte, concatenated.

    Returns ``(bytes as uint8 array, token lengths)``. ``sep`` is a byte value or an array of them
    broadcastable to ``units``.
    """
    units = np.ascontiguousarray(units, dtype=np.int64)
    seps = np.broadcast_to(np.asarray(sep, dtype=np.uint8), units.shape).ravel()
    units = units.ravel()
    if units.size == 0:
        return np.empty(0, np.uint8), np.empty(0, np.int64)
    parts = [_tokens_chunk(units[i:i + _CHUNK], seps[i:i + _CHUNK])
             for i in range(0, units.size, _CHUNK)]
    return (np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]).astype(np.int64))


class FixedPoint:
    """Values rounded to 10 decimals, printed as ``repr`` of that decimal."""

    name = "fixed10"

    def encode(self, values: Any) -> np.ndarray:
        """See :class:`Printer`."""
        return quantise(values)

    def floats(self, codes: np.ndarray) -> np.ndarray:
        """See :class:`Printer`."""
        return units_as_float(codes)

    def tokens(self, codes: np.ndarray, sep: Any) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Printer`."""
        return fixed_point_tokens(codes, sep)


# --------------------------------------------------------------------------------------------
# str (Python 2: 12 significant digits) and repr (Python 3: shortest round trip, 16-17 digits).


def py2_str(value: float) -> str:
    """``str(value)`` as Python 2 prints it: ``'%.12g'``, with ``.0`` on integral values."""
    text = f"{value:.12g}"
    return text if any(c in text for c in ".en") else text + ".0"


class Str12(FixedPoint):
    """Python 2's ``str(float)``: values rounded to 12 significant digits, printed as such.

    A decimal of at most 12 significant digits is exactly what ``'%.12g'`` prints for the double
    it parses to; values below 10 in magnitude keep 10 decimals (11 or fewer significant digits,
    which print back the same way).
    """

    name = "str12"

    def encode(self, values: Any) -> np.ndarray:
        """See :class:`Printer`."""
        v = np.asarray(values, dtype=np.float64)
        exponent = np.floor(np.log10(np.maximum(np.abs(v), 1e-300))).astype(np.int64)
        drop = np.clip(exponent - 1, 0, _DEC)  # decimal digits beyond the 12th
        scale = 10 ** drop
        return quantise(np.rint(v * 10.0 ** (_DEC - drop)) * scale / float(_SCALE))


class Repr:
    """Python 3's ``repr(float)``: the codes are the doubles themselves.

    The text comes from one ``repr`` of the whole list (C speed, exactly ``repr`` per value); its
    ``", "`` separators become the wanted separator bytes. Values with ``|v| < 1e-3`` are moved
    to ``+-1e-3`` (``repr`` would print them in exponent notation).
    """

    name = "repr"

    def encode(self, values: Any) -> np.ndarray:
        """See :class:`Printer`."""
        v = np.array(values, dtype=np.float64)
        tiny = np.abs(v) < 1e-3
        v[tiny] = np.where(v[tiny] < 0, -1e-3, 1e-3)
        return v

    def floats(self, codes: np.ndarray) -> np.ndarray:
        """See :class:`Printer`."""
        return codes

    def tokens(self, codes: np.ndarray, sep: Any) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Printer`."""
        codes = np.ascontiguousarray(codes, dtype=np.float64)
        seps = np.broadcast_to(np.asarray(sep, dtype=np.uint8), codes.shape).ravel()
        if codes.size == 0:
            return np.empty(0, np.uint8), np.empty(0, np.int64)
        text = np.frombuffer((repr(codes.ravel().tolist())[1:-1] + ", ").encode(), np.uint8)
        commas = np.flatnonzero(text == ord(","))
        out = text.copy()
        out[commas] = seps
        keep = np.ones(out.size, bool)
        keep[commas + 1] = False  # the space after each comma
        ends = commas - np.arange(commas.size)  # separator positions once spaces are gone
        lengths = np.diff(np.concatenate([[-1], ends]))
        return out[keep], lengths.astype(np.int64)


def printer(name: str) -> Printer:
    """The printer of number format ``name`` (one of :data:`FORMATS`)."""
    printers: dict[str, Callable[[], Printer]] = {"fixed10": FixedPoint, "str12": Str12,
                                                  "repr": Repr}
    if name not in printers:
        raise ValueError(f"number format must be one of {FORMATS}, got {name!r}")
    return printers[name]()

"""Numbers as simrun prints them, vectorised: the three printers of the generated csv files.

A printer turns values into integer *codes*, codes into the floats a reader parses back, and codes
into text tokens (each followed by a separator byte), all without a per-value Python loop:

- :class:`FixedPoint` (``"fixed10"``): the value rounded to 10 decimals, printed as
  ``repr()`` of that decimal (trailing zeros stripped). The generator's historical format.
- :class:`Pool` with ``"str12"``: Python 2's ``str(float)`` (``'%.12g'``, plus ``.0`` for
  integral values) that older simrun versions print, e.g. ``-61.4607218758``.
- :class:`Pool` with ``"repr"``: Python 3's ``repr(float)``, 16-17 significant digits for
  computed values, as newer simrun versions print.

A pool is a fixed grid of doubles over a range, each jittered inside its grid cell so that it looks
computed, printed once with Python's own formatting; a value's code is its grid cell, its token
the pool entry's bytes. So every token is exactly what ``str``/``repr`` print for the float it
parses to, and printing a file is one gather.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
        """Codes of ``values`` (int64, order-preserving)."""

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
# Pools: str (Python 2, 12 significant digits) and repr (Python 3).


def py2_str(value: float) -> str:
    """``str(value)`` as Python 2 prints it: ``'%.12g'``, with ``.0`` on integral values."""
    text = f"{value:.12g}"
    return text if any(c in text for c in ".en") else text + ".0"


_FORMATTERS = {"str12": py2_str, "repr": repr}


@dataclass(frozen=True, eq=False)
class Pool:
    """A jittered grid of ``size`` doubles over ``[lo, hi)``, printed once in format ``name``."""

    name: str
    lo: float
    step: float
    values: np.ndarray  #: the double each entry's text parses to, ascending
    buf: np.ndarray  #: texts, concatenated
    starts: np.ndarray
    lengths: np.ndarray

    def encode(self, values: Any) -> np.ndarray:
        """See :class:`Printer`: the grid cell of each value (clipped to the range)."""
        cells = np.floor((np.asarray(values, dtype=np.float64) - self.lo) / self.step)
        return np.clip(cells, 0, self.values.size - 1).astype(np.int64)

    def floats(self, codes: np.ndarray) -> np.ndarray:
        """See :class:`Printer`."""
        return self.values[codes]

    def tokens(self, codes: np.ndarray, sep: Any) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Printer`."""
        codes = np.ascontiguousarray(codes, dtype=np.int64)
        seps = np.broadcast_to(np.asarray(sep, dtype=np.uint8), codes.shape).ravel()
        codes = codes.ravel()
        src = np.concatenate([self.buf, seps])
        starts = np.column_stack([self.starts[codes], self.buf.size + np.arange(codes.size)])
        lengths = np.column_stack([self.lengths[codes], np.ones(codes.size, np.int64)])
        return gather(src, starts.ravel(), lengths.ravel()), self.lengths[codes] + 1


def make_pool(name: str, lo: float, hi: float, size: int, rng: np.random.Generator) -> Pool:
    """A :class:`Pool` of format ``name`` (``"str12"`` or ``"repr"``).

    Entries with ``|v| < 1e-3`` are moved to ``+-1e-3``: Python would print them in exponent
    notation, which simrun output does not show for these quantities.
    """
    fmt = _FORMATTERS[name]
    step = (hi - lo) / size
    raw = lo + (np.arange(size) + rng.uniform(0.05, 0.95, size)) * step
    tiny = np.abs(raw) < 1e-3
    raw[tiny] = np.where(raw[tiny] < 0, -1e-3, 1e-3) * (1.0 + rng.uniform(0.0, 0.5, tiny.sum()))
    texts = [fmt(v) for v in raw.tolist()]
    values = np.array([float(t) for t in texts])
    order = np.argsort(values, kind="stable")  # the nudged entries may be out of order
    texts, values = [texts[i] for i in order.tolist()], values[order]
    buf, starts, lengths = pack(texts)
    return Pool(name, float(lo), float(step), values, buf, starts, lengths)

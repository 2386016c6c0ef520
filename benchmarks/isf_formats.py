"""How ISF's ``init`` reads and writes each kind of file, in our own code (for the baseline).

Trace files by ``loadtxt`` (optionally as numpy <= 1.22 computed it, a Python call per value),
activation files normalised line by line and parsed by pandas, spike times by a Python loop,
frames written as blosc-compressed partitions (``lz4`` after a byte shuffle stands in for
``blosclz``), parameter files turned into JSON text by regular expressions. These are ISF's
algorithms on purpose, per-value Python loops included: the baseline measures them, our own
code must not use them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re

import numpy as np
import pandas as pd
import pyarrow as pa

SYNAPSE_HEADER = "synapse_type,synapse_ID,soma_distance,section_ID,section_pt_ID,dendrite_label,"
CELL_HEADER = "presynaptic_cell_type,cell_ID,"

_COMMENT = re.compile("#")


def _float_field(text: str) -> float:
    text = text.lower()
    return float.fromhex(text) if "0x" in text else float(text)


def _split_line(line: str) -> list[str]:
    line = _COMMENT.split(line, maxsplit=1)[0].strip("\r\n")
    return line.split() if line else []


def _pack(items: list[float], packing):
    """numpy <= 1.22 nested each row by the dtype's packing: here one tuple of all values."""
    if packing is tuple:
        return tuple(items)
    packed, start = [], 0
    for length, inner in packing:
        packed.append(_pack(items[start:start + length], inner))
        start += length
    return tuple(packed)


def loadtxt_python(path: str, skiprows: int = 1) -> np.ndarray:
    """``numpy.loadtxt(path, skiprows=1, unpack=True)`` as numpy <= 1.22 computed it: each
    line split by a Python function (comment regex, strip, split), each value converted by a
    Python call, each row packed in nested tuples, rows collected in a list."""
    rows = []
    with open(path) as fh:
        for _ in range(skiprows):
            next(fh, None)
        packing = None
        for line in fh:
            fields = _split_line(line)
            if not fields:
                continue
            packing = packing or [(len(fields), tuple)]
            rows.append(_pack([_float_field(f) for f in fields], packing))
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1).T


def read_traces(path: str, rel: str, loadtxt: str) -> pd.DataFrame:
    """One voltage-trace file as ISF's frame: a row per trial, a column per time point."""
    if path.endswith(".npz"):
        data = np.load(path)["arr_0"].T
        values = data[1:, :]
        times = [0.025 * n for n in range(data.shape[1])]  # ISF assumes a fixed 0.025 ms step
        trials = list(range(len(values)))
    else:
        if loadtxt == "python":
            data = loadtxt_python(path)
        else:
            with open(path) as fh:
                data = np.loadtxt(fh, skiprows=1, unpack=True, dtype="float64")
        if data.ndim == 1:
            data = data.reshape(len(data), 1)
        times, values = data[0], data[1:]
        folder = os.path.dirname(path)  # trial numbers from the synapse file names, as ISF
        trials = sorted(int(n.split("_")[1][3:]) for n in os.listdir(folder) if "synapses" in n)
    frame = pd.DataFrame(values, columns=times)
    frame["sim_trial_index"] = [os.path.join(rel, str(nr).zfill(6)) for nr in trials]
    return frame.set_index("sim_trial_index")


def max_delimiters(path: str) -> int:
    """The pre-pass: the largest count of ``,`` and tab delimiters of a line of ``path``
    (one more when the line does not end with a comma)."""
    with open(path) as fh:
        text = fh.read().replace("\t", ",")
    counts = [line.count(",") + (line[-1] != ",") for line in text.split("\n") if line]
    return max(counts)


def _padded(line: str, n_commas: int) -> str:
    line = line.strip().replace("\t", ",")
    return line + "," * (n_commas - line.count(",")) + "\n"


def read_activation(path: str, sti: str, n_commas: int, header: str) -> pd.DataFrame:
    """An activation file normalised line by line in Python (tabs to commas, padded with
    commas to ``n_commas``), then parsed by pandas."""
    out = io.StringIO()
    out.write(header + ",".join(str(k) for k in range(n_commas - header.count(","))) + "\n")
    with open(path) as fh:
        lines = fh.read().split("\n")[1:]
    for line in lines:
        if line.strip():
            out.write(_padded(line, n_commas))
    out.seek(0)
    frame = pd.read_csv(out, index_col=False)
    frame["sim_trial_index"] = sti
    return frame.set_index("sim_trial_index")


def spike_times(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Threshold crossings from below, per row, by a Python loop over the time points.

    This loop is the point: it is how ISF finds spikes. It is no pattern for our own code."""
    def crossings(row: pd.Series) -> pd.Series:
        t, v = row.index.values.astype(float), row.values
        found = []
        for i in range(1, len(t)):
            if v[i - 1] < threshold and v[i] >= threshold:
                found.append(t[i])
        return pd.Series(dict(enumerate(found)))

    return frame.apply(crossings, axis=1)


# ----------------------------------------------------------------------------- the dumper


def dump_frame(frame: pd.DataFrame, path: str, categorize: bool = False) -> None:
    """One partition: the frame's value blocks byte-shuffled and compressed (blosc-like)."""
    if categorize:  # ISF: every object column, and an object index, become categoricals
        for column in frame.columns:
            if frame[column].dtype == object:
                frame[column] = frame[column].astype("category")
        if frame.index.dtype == object:
            frame.index = pd.CategoricalIndex(frame.index, name=frame.index.name)
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(frame, protocol=5, buffer_callback=buffers.append)
    blocks = []
    for buffer in buffers:
        raw = np.frombuffer(buffer.raw(), np.uint8)
        whole = len(raw) // 8 * 8
        shuffled = np.concatenate([raw[:whole].reshape(-1, 8).T.ravel(), raw[whole:]])
        blocks.append((len(raw), pa.compress(shuffled, codec="lz4", asbytes=True)))
    with open(path, "wb") as fh:
        pickle.dump((head, blocks), fh, protocol=5)


def load_frame(path: str) -> pd.DataFrame:
    """The inverse of :func:`dump_frame`."""
    with open(path, "rb") as fh:
        head, blocks = pickle.load(fh)
    buffers = []
    for size, data in blocks:
        raw = np.frombuffer(pa.decompress(data, size, codec="lz4", asbytes=True), np.uint8)
        whole = size // 8 * 8
        buffers.append(np.concatenate([raw[:whole].reshape(8, -1).T.ravel(), raw[whole:]]))
    return pickle.loads(head, buffers=buffers)


# ----------------------------------------------------------------------------- parameter files


def read_param_file(path: str) -> dict:
    """A ``.param`` dict literal read as ISF reads it: text rewritten towards JSON, ``json``."""
    with open(path) as fh:
        text = fh.read()
    # ISF's JSON route takes no comments (real files have none); generated ones have some
    text = re.sub(r"(?m)#[^\n\"']*$", "", text).replace("'", '"')
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    text = re.sub(r"\(([^()]+)\)", r"[\1]", text)
    value = json.loads(text.replace("None", "null"))
    return walk_copy(value)


def walk_copy(value):
    """A copy of the parsed value (ISF walks the whole value to resolve database paths and
    again to wrap it in its ``ParameterSet``)."""
    if isinstance(value, dict):
        return {k: walk_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [walk_copy(v) for v in value]
    return value


def md5_of(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.md5(fh.read()).hexdigest()

"""Voltage trace decoders vs independent expectations (Python float(), pandas, numpy)."""

from __future__ import annotations

import io
import pickle
import re
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from simlake import schemas
from simlake.decode import voltage
from simlake.decode.voltage import decode_dendritic_csv, decode_voltage_csv, decode_voltage_npz
from simlake.errors import SimrunFormatError

PATH = "/sim/20150815-1530_20240/20240_vm_all_traces.csv"
SIM_RUN = "20150815-1530_20240"


def make_csv(n_rows: int, n_trials: int, seed: int = 0,
             t0: float = 100.0) -> tuple[bytes, list[str], list[list[str]]]:
    """A file as the simulator prints it (Python str(float)); returns the text cells too."""
    rng = np.random.default_rng(seed)
    times = [str(round(t0 + 0.025 * k, 3)) for k in range(n_rows)]
    cols = [[str(float(v)) for v in rng.normal(-60, 10, n_rows)] for _ in range(n_trials)]
    header = "\t".join(["t"] + [f"Vm run {k:02d}" for k in range(n_trials)])
    lines = [header] + ["\t".join([times[r]] + [c[r] for c in cols]) for r in range(n_rows)]
    return ("\n".join(lines) + "\n").encode(), times, cols


def bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).view(np.int64)


def error(match: str, path: str = PATH):
    """pytest.raises for a SimrunFormatError whose message names the path and the reason."""
    return pytest.raises(SimrunFormatError, match=re.escape(path) + ": .*" + match)


def test_spec_example_bit_exact():
    data = (b"t\tVm run 00\tVm run 01\n"
            b"100.0\t-61.4607218758\t-55.1366909604\n"
            b"100.025\t-61.4665809176\t-55.1294343391\n")
    table = decode_voltage_csv(PATH, data, SIM_RUN, None)
    assert table.schema.equals(schemas.VOLTAGE_TRACES)
    rows = table.to_pylist()
    assert [r["sim_trial_index"] for r in rows] == [f"{SIM_RUN}/000000", f"{SIM_RUN}/000001"]
    assert [r["trialnr"] for r in rows] == [0, 1]
    assert all(r["sim_run"] == SIM_RUN for r in rows)
    assert rows[0]["t"] == [float("100.0"), float("100.025")]
    assert rows[0]["vm"] == [float("-61.4607218758"), float("-61.4665809176")]
    assert rows[1]["vm"] == [float("-55.1366909604"), float("-55.1294343391")]
    assert rows[1]["t"] == rows[0]["t"]


def test_many_rows_bit_exact_against_python_float_and_pandas():
    data, times, cols = make_csv(400, 5, seed=1, t0=0.1)
    table = decode_voltage_csv(PATH, data, SIM_RUN, [10, 3, 8, 1, 4])
    assert table.column("trialnr").to_pylist() == [1, 3, 4, 8, 10]
    expected_t = [float(s) for s in times]
    for k, row in enumerate(table.to_pylist()):
        assert np.array_equal(bits(row["t"]), bits(expected_t))
        assert np.array_equal(bits(row["vm"]), bits([float(s) for s in cols[k]]))
    frame = pd.read_csv(io.BytesIO(data), sep="\t")
    vm = np.stack(table.column("vm").to_pylist())
    assert np.array_equal(bits(vm), bits(frame.iloc[:, 1:].to_numpy().T))
    # never recomputed from a step: 100 + 0.025*k differs from the printed value somewhere
    assert not np.array_equal(bits(table.column("t")[0].as_py()),
                              bits(0.1 + 0.025 * np.arange(400)))


def test_trial_columns_past_99():
    data, _, cols = make_csv(3, 102, seed=2)
    assert b"\tVm run 99\tVm run 100\tVm run 101\n" in data
    table = decode_voltage_csv(PATH, data, SIM_RUN, list(range(0, 204, 2)))
    assert table.num_rows == 102
    assert table.column("sim_trial_index")[101].as_py() == f"{SIM_RUN}/000202"
    assert table.column("vm")[101].as_py() == [float(s) for s in cols[101]]
    loaded = np.loadtxt(io.BytesIO(data), delimiter="\t", skiprows=1)
    assert np.array_equal(bits(np.stack(table.column("vm").to_pylist())), bits(loaded[:, 1:].T))


def test_file_larger_than_one_parse_block():
    data, times, cols = make_csv(3000, 40, seed=6)
    assert len(data) > 2_000_000  # several pyarrow blocks, several chunks per column
    table = decode_voltage_csv(PATH, data, SIM_RUN, None)
    loaded = np.loadtxt(io.BytesIO(data), delimiter="\t", skiprows=1)
    assert np.array_equal(bits(np.stack(table.column("vm").to_pylist())), bits(loaded[:, 1:].T))
    assert np.array_equal(bits(table.column("t")[39].as_py()), bits([float(x) for x in times]))
    bad = data[: data.rfind(b"\t") + 1] + b"-6x.5\n"  # a non-number far into the file
    with error(r"non-numeric value '-6x.5' at line 3001, column 'Vm run 39'"):
        decode_voltage_csv(PATH, bad, SIM_RUN, None)


def test_crlf_and_missing_final_newline_accepted():
    data = b"t\tVm run 00\r\n1.5\t-60.25\r\n1.525\t-60.5"
    table = decode_voltage_csv(PATH, data, SIM_RUN, None)
    assert table.column("t")[0].as_py() == [1.5, 1.525]
    assert table.column("vm")[0].as_py() == [-60.25, -60.5]


def _general(path: str, data: bytes) -> pa.Table:
    """The trace file read by the general parser alone (pyarrow.csv), as the compiled pass
    must read it."""
    names, start = voltage._header(path, data)
    if start == len(data):
        raise SimrunFormatError(path, "header only, no data rows")
    t, vm = voltage._parse_trace_csv(path, data, start, names)
    return voltage._trace_table(path, schemas.VOLTAGE_TRACES, SIM_RUN, t, vm,
                                list(range(len(names) - 1)))


def _compiled(data: bytes, n_columns: int):
    from simlake.decode._scan import trace_matrix

    return trace_matrix(np.frombuffer(data, np.uint8), data.find(b"\n") + 1, n_columns)


def test_compiled_pass_reads_python_str_of_any_double_exactly():
    """What simrun writes: str(float) of computed doubles, 16-17 significant digits, values
    near zero (0.0123...) where the membrane potential crosses it, and decimals right at or
    next to midpoints between two doubles (where a single rounded division goes wrong)."""
    rng = np.random.default_rng(21)
    n_rows = 3000
    columns = [rng.normal(-60, 15, n_rows), rng.uniform(-0.1, 0.1, n_rows),
               np.exp(rng.uniform(-6, 30, n_rows)) * rng.choice([-1, 1], n_rows)]
    texts = [[repr(float(v)) for v in c] for c in columns]
    texts = [[t if "e" not in t else "1.5" for t in c] for c in texts]  # exponents: see below
    mids = []  # 18 digits of the exact midpoint above a double (below, above or equal to it)
    for x in rng.uniform(1, 1e6, n_rows // 2):
        mid = (Decimal(float(x)) + Decimal(float(np.nextafter(x, np.inf)))) / 2
        whole, _, fraction = format(mid, "f").partition(".")
        below = whole + "." + fraction[:18 - len(whole)]  # truncated: just below the midpoint
        last = below[-1]  # one more in the last digit: just above it
        above = below[:-1] + str(int(last) + 1) if last != "9" else below
        mids += [below, above]
    ties = ["4503599627370496.5", "4503599627370497.5", "2251799813685248.25",
            "2251799813685248.75", "9007199254740991.5", "4503599627370495.75"]
    mids[:len(ties)] = ties
    texts.append(mids)
    times = [str(round(0.025 * k, 3)) for k in range(n_rows)]
    lines = ["\t".join(["t"] + [f"Vm run {k:02d}" for k in range(len(texts))])]
    lines += ["\t".join([times[r]] + [c[r] for c in texts]) for r in range(n_rows)]
    data = ("\n".join(lines) + "\n").encode()
    assert _compiled(data, len(texts) + 1) is not None  # the compiled pass reads it all
    table = decode_voltage_csv(PATH, data, SIM_RUN, None)
    for k, row in enumerate(table.to_pylist()):
        assert np.array_equal(bits(row["vm"]), bits([float(s) for s in texts[k]])), k
        assert np.array_equal(bits(row["t"]), bits([float(s) for s in times]))
    assert table.equals(_general(PATH, data))
    # one number the pass does not read (an exponent) sends the file to the general parser
    odd = data.replace(b"\t1.5\t", b"\t1.5e-05\t", 1) if b"\t1.5\t" in data else \
        data[:-1] + b"\n0.0" + b"\t1e-05" * len(texts) + b"\n"
    assert _compiled(odd, len(texts) + 1) is None
    assert decode_voltage_csv(PATH, odd, SIM_RUN, None).equals(_general(PATH, odd))


def test_lines_longer_than_a_parse_block_read_by_both_parsers():
    """A file of 42,000 trials has lines over pyarrow.csv's default 1 MiB block: the compiled
    pass reads it, and so does the general parser when one value needs it (an exponent)."""
    n = 42_000
    value = "-0.0000012345678901234567"  # 25 bytes, the most a plain decimal the pass reads
    header = "\t".join(["t"] + [f"Vm run {k:02d}" for k in range(n)])
    rows = ["\t".join(["0.0"] + [value] * n), "\t".join(["0.025"] + ["-61.25"] * n)]
    data = (header + "\n" + "\n".join(rows) + "\n").encode()
    assert len(rows[0]) > 1 << 20
    fast = decode_voltage_csv(PATH, data, SIM_RUN, None)
    general = decode_voltage_csv(PATH, data.replace(b"\t-61.25\n", b"\t-6.125e1\n"),
                                 SIM_RUN, None)
    assert _compiled(data, n + 1) is not None
    assert fast.num_rows == n and general.equals(fast)
    assert general.column("vm")[n - 1].as_py() == [float(value), -61.25]


_TOKENS = [b"0", b"1", b"9", b".", b"-", b"+", b"e", b"\t", b"\n", b"\r", b"x", b" ", b"00",
           b"1.", b".5", b"-0", b"12345678901234567890", b"0.000000000000000000001"]


def _outcome(decode, data: bytes):
    try:
        return decode(data)
    except SimrunFormatError as exc:
        return str(exc)


def test_compiled_pass_and_general_parser_agree():
    """Damaged copies of a trace file: the compiled pass reads only what the general parser
    reads to the same doubles, and leaves the rest to it (same error, same message)."""
    rng = np.random.default_rng(5)
    base, _, _ = make_csv(6, 4, seed=9)
    header_end = base.find(b"\n") + 1
    accepted = 0
    for _ in range(1200):
        pos = int(rng.integers(header_end, len(base)))
        op = int(rng.integers(0, 3))
        token = _TOKENS[int(rng.integers(0, len(_TOKENS)))]
        if op == 0:
            data = base[:pos] + token + base[pos:]
        elif op == 1:
            data = base[:pos] + base[pos + int(rng.integers(1, 4)):]
        else:
            data = base[:pos] + token + base[pos + 1:]
        fast = _outcome(lambda d: decode_voltage_csv(PATH, d, SIM_RUN, None), data)
        general = _outcome(lambda d: _general(PATH, d), data)
        if isinstance(general, str):
            assert fast == general, data
        else:
            assert not isinstance(fast, str) and fast.equals(general), data
            accepted += _compiled(data, 5) is not None
    assert accepted > 100  # the compiled pass read many of them


def test_dendritic_recording():
    label = "apical_ID_000_sec_038_seg_032_x_0.929_somaDist_920.7"
    data, times, cols = make_csv(20, 3, seed=3)
    path = f"/sim/{SIM_RUN}/20240_{label}_vm_dend_traces.csv"
    table = decode_dendritic_csv(path, data, SIM_RUN, [2, 5, 9], label)
    assert table.schema.equals(schemas.DENDRITIC_RECORDINGS)
    assert table.column("recording_site").to_pylist() == [label] * 3
    assert table.column("trialnr").to_pylist() == [2, 5, 9]
    assert table.column("vm")[2].as_py() == [float(s) for s in cols[2]]
    assert table.column("t")[0].as_py() == [float(s) for s in times]
    with error("2 trials expected", path):
        decode_dendritic_csv(path, data, SIM_RUN, [1, 2], label)


# --------------------------------------------------------------------------- npz


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_npz_uses_stored_time_column():
    t = np.array([float(s) for s in ("100.0", "100.025", "100.05", "100.075")])
    vm = np.random.default_rng(4).normal(-60, 5, (4, 3))
    data = npz_bytes(arr_0=np.column_stack([t, vm]))
    table = decode_voltage_npz("/x/1_vm_all_traces.npz", data, SIM_RUN)
    assert table.schema.equals(schemas.VOLTAGE_TRACES)
    assert table.column("trialnr").to_pylist() == [0, 1, 2]
    for k in range(3):
        assert np.array_equal(bits(table.column("t")[k].as_py()), bits(t))
        assert np.array_equal(bits(table.column("vm")[k].as_py()), bits(vm[:, k]))


NPZ = "/x/1_vm_all_traces.npz"


@pytest.mark.parametrize("data, match", [
    (b"", "empty file"),
    (b"PK\x03\x04 this is not really a zip", "not a readable npz archive"),
    (b"t\tVm run 00\n1.0\t2.0\n", "not a readable npz archive"),
    (pickle.dumps({"arr_0": [1, 2]}), "not a readable npz archive"),
])
def test_npz_corrupt(data, match):
    with error(match, NPZ):
        decode_voltage_npz(NPZ, data, SIM_RUN)


def test_npz_structural_defects():
    good = npz_bytes(arr_0=np.ones((5, 3)))
    with error("not a readable npz archive|cannot read npz member", NPZ):
        decode_voltage_npz(NPZ, good[: len(good) // 2], SIM_RUN)
    with error("no array arr_0", NPZ):
        decode_voltage_npz(NPZ, npz_bytes(traces=np.ones((5, 3))), SIM_RUN)
    with error(r"shape \(5,\)", NPZ):
        decode_voltage_npz(NPZ, npz_bytes(arr_0=np.ones(5)), SIM_RUN)
    with error("no trial columns", NPZ):
        decode_voltage_npz(NPZ, npz_bytes(arr_0=np.ones((5, 1))), SIM_RUN)
    with error("no time rows", NPZ):
        decode_voltage_npz(NPZ, npz_bytes(arr_0=np.ones((0, 3))), SIM_RUN)
    with error("dtype", NPZ):
        decode_voltage_npz(NPZ, npz_bytes(arr_0=np.array([["a", "b"]])), SIM_RUN)
    bad = np.ones((5, 3))
    bad[2, 1] = np.nan
    with error("non-finite value nan in arr_0 at row 2, column 1", NPZ):
        decode_voltage_npz(NPZ, npz_bytes(arr_0=bad), SIM_RUN)
    obj = io.BytesIO()
    np.savez(obj, arr_0=np.array([{"a": 1}], dtype=object))
    with error("cannot read npz member arr_0: Object arrays cannot be loaded", NPZ):
        decode_voltage_npz(NPZ, obj.getvalue(), SIM_RUN)
    npy = io.BytesIO()
    np.save(npy, np.ones((3, 3)))
    with error("not an npz archive", NPZ):
        decode_voltage_npz(NPZ, npy.getvalue(), SIM_RUN)


# --------------------------------------------------------------------------- csv errors

H2 = b"t\tVm run 00\tVm run 01\n"
R1 = H2 + b"1.0\t-60.0\t-61.0\n"  # header and one good row


@pytest.mark.parametrize("data, match", [
    (b"", "empty file"),
    (H2, "header only, no data rows"),
    (H2.rstrip(b"\n"), "header only, no data rows"),
    (R1 + b"1.025\t-60.1", r"line 3 has 2 fields, expected 3 \(file truncated"),
    (R1 + b"1.025\n1.05\t1\t2\n", "line 3 has 1 fields, expected 3"),
    (H2 + b"1.0\t-60.0\t-61.0\t5.0\n", "line 2 has 4 fields, expected 3"),
    (R1 + b"\n1.05\t1\t2\n", "line 3 is empty"),
    (R1 + b"1.025\t-60.0\tabc\n", "non-numeric value 'abc' at line 3, column 'Vm run 01'"),
    (R1 + b"1.025\t\t-61.0\n", "non-numeric value '' at line 3, column 'Vm run 00'"),
    (H2 + b"x1.0\t-60.0\t-61.0\n", "non-numeric value 'x1.0' at line 2, column 't'"),
    (R1 + b"1.025\tnan\t-61.0\n", "non-finite value nan at line 3, column 'Vm run 00'"),
    (H2 + b"1.0\t-60.0\tinf\n", "non-finite value inf at line 2, column 'Vm run 01'"),
    (R1 + b"1e999\t-60.0\t-61.0\n", "non-finite value inf at line 3, column 't'"),
    (H2 + b"1.0\t-60.0\t-6\xe91.0\n", r"not UTF-8: invalid byte 0xe9 at offset \d+ \(line 2\)"),
    (b"t\tVm run 0\xff\n1.0\t2.0\n", "not UTF-8: invalid byte 0xff at offset 10 \\(line 1\\)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary content, not text"),
    (bytes(range(256)) * 4, "binary content, not text"),
    (b"time\tVm run 00\n1.0\t2.0\n", "header must start with column 't', got 'time'"),
    (b"t\n1.0\n", "header has no trial columns"),
    (b"t\tVm run 00\tVm run 02\n1.0\t2.0\t3.0\n",
     "header column 3 is 'Vm run 02', expected 'Vm run 01'"),
    (b"t\tVm run 0\n1.0\t2.0\n", "header column 2 is 'Vm run 0', expected 'Vm run 00'"),
])
def test_csv_defects(data, match):
    with error(match):
        decode_voltage_csv(PATH, data, SIM_RUN, None)


def test_column_count_must_match_synapse_files():
    data, _, _ = make_csv(4, 3)
    with error("3 trial columns but 4 trials expected from the folder's synapse files "
               r"\(fewer columns than synapse files\)"):
        decode_voltage_csv(PATH, data, SIM_RUN, [0, 1, 2, 3])
    with error(r"3 trial columns but 2 trials expected .*\(more columns than synapse files\)"):
        decode_voltage_csv(PATH, data, SIM_RUN, [0, 1])
    assert decode_voltage_csv(PATH, data, SIM_RUN, (7, 8, 9)).num_rows == 3


def test_error_message_is_one_line_with_path():
    with pytest.raises(SimrunFormatError) as info:
        decode_voltage_csv(PATH, H2 + b"1.0\t-60.0\t" + b"-61.0\t" * 500 + b"\n", SIM_RUN, None)
    assert info.value.path == PATH
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 200

"""Synapse and presynaptic-cell decoders vs a plain line-by-line reference parse in the test."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest

from simlake import schemas
from simlake.decode.activation import decode_presynaptic_cells, decode_synapses
from simlake.errors import SimrunFormatError

SIM_RUN = "results/20150815-1530_20240"
SYN = f"/sim/{SIM_RUN}/simulation_run0003_synapses.csv"
CELLS = f"/sim/{SIM_RUN}/simulation_run0003_presynaptic_cells.csv"

SYN_HEADER = ("# synapse type\tsynapse ID\tsoma distance\tsection ID\tsection pt ID\t"
              "dendrite label\tactivation times\n")
CELLS_HEADER = "# presynaptic cell type\tcell ID\tspike times\n"

SPEC_SYNAPSES = (SYN_HEADER
                 + "L1_C1\t19\t1539.71545505\t50\t80\tApicalDendrite\t14.3144635349,\n"
                 + "L2_C2\t7\t412.5\t12\t3\tDendrite\t12.5,80.25,243.0,\n"
                 + "VPM_C2\t3\t30.1\t0\t0\tSoma\t\n"  # empty list, line ends after the tab
                 + "VPM_C2\t4\t31.5\t0\t0\tSoma\n")  # empty list, line ends after the 6th field
SPEC_CELLS = (CELLS_HEADER
              + "L1_B1\t0\t66.1219815159,\n"
              + "L1_B1\t6\t174.863960609,281.277497845,\n"
              + "L4ss_C2\t3\t\n"
              + "L4ss_C2\t9\n")


def reference(text: str, n_fixed: int, kinds: str) -> list[tuple]:
    """Independent parse: a Python loop over lines, float()/int() per value."""
    rows = []
    for line in text.split("\n")[1:]:
        if not line:
            continue
        fields = line.split("\t")
        fixed = [int(v) if k == "i" else float(v) if k == "f" else v
                 for v, k in zip(fields[:n_fixed], kinds, strict=True)]
        times = fields[n_fixed].split(",")[:-1] if len(fields) > n_fixed else []
        rows.append((*fixed, [float(v) for v in times]))
    return rows


def rows_of(table, names) -> list[tuple]:
    data = table.to_pydict()
    return list(zip(*(data[n] for n in names), strict=True))


SYN_NAMES = ["synapse_type", "synapse_ID", "soma_distance", "section_ID", "section_pt_ID",
             "dendrite_label", "activation_times"]
CELL_NAMES = ["presynaptic_cell_type", "cell_ID", "spike_times"]


def error(path: str, match: str):
    return pytest.raises(SimrunFormatError, match=re.escape(path) + ": .*" + match)


def test_spec_synapses():
    table = decode_synapses(SYN, SPEC_SYNAPSES.encode(), SIM_RUN, 3)
    assert table.schema.equals(schemas.SYNAPSE_ACTIVATION)
    assert rows_of(table, SYN_NAMES) == reference(SPEC_SYNAPSES, 6, "sififs")
    assert table.column("activation_times").to_pylist() == [[14.3144635349],
                                                            [12.5, 80.25, 243.0], [], []]
    assert set(table.column("sim_trial_index").to_pylist()) == {f"{SIM_RUN}/000003"}
    assert set(table.column("sim_run").to_pylist()) == {SIM_RUN}
    assert set(table.column("trialnr").to_pylist()) == {3}


def test_spec_cells():
    table = decode_presynaptic_cells(CELLS, SPEC_CELLS.encode(), SIM_RUN, 3)
    assert table.schema.equals(schemas.CELL_ACTIVATION)
    assert rows_of(table, CELL_NAMES) == reference(SPEC_CELLS, 2, "si")
    assert table.column("spike_times").to_pylist() == [[66.1219815159],
                                                       [174.863960609, 281.277497845], [], []]


def random_synapses(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = [SYN_HEADER]
    for i in range(n):
        k = int(rng.integers(0, 40))
        # ISF writes 12 significant digits; repr (up to 17) takes the general parser
        fmt = "{:.12g}," if i % 3 else "{!r},"
        times = "".join(fmt.format(float(v)) for v in rng.uniform(0, 300, k))
        tail = "" if k == 0 and i % 2 else "\t" + times
        lines.append(f"T{i % 7}\t{i}\t{float(rng.uniform(0, 1500))}\t{i % 90}\t{i % 13}\t"
                     f"Dendrite{tail}\n")
    return "".join(lines)


def test_many_lines_bit_exact_and_in_line_order():
    text = random_synapses(3000, seed=5)
    table = decode_synapses(SYN, text.encode(), SIM_RUN, 12)
    expected = reference(text, 6, "sififs")
    got = rows_of(table, SYN_NAMES)
    assert got == expected  # float() of each text, exact; row order = line order
    assert table.column("synapse_ID").to_pylist() == list(range(3000))
    assert max(len(r[-1]) for r in got) >= 30  # dozens of times per synapse
    assert any(r[-1] == [] for r in got)


def test_header_only_is_a_valid_trial_with_zero_rows():
    for data in (SYN_HEADER.encode(), SYN_HEADER.rstrip("\n").encode()):
        table = decode_synapses(SYN, data, SIM_RUN, 3)
        assert table.num_rows == 0
        assert table.schema.equals(schemas.SYNAPSE_ACTIVATION)
    assert decode_presynaptic_cells(CELLS, CELLS_HEADER.encode(), SIM_RUN, 3).num_rows == 0


def test_crlf_and_missing_final_newline():
    data = SPEC_CELLS.replace("\n", "\r\n").encode()
    assert rows_of(decode_presynaptic_cells(CELLS, data, SIM_RUN, 3), CELL_NAMES) == \
        reference(SPEC_CELLS, 2, "si")
    data = SPEC_CELLS.rstrip("\n").encode()  # complete last line, no newline
    assert decode_presynaptic_cells(CELLS, data, SIM_RUN, 3).num_rows == 4


S = SYN_HEADER.encode()
C = CELLS_HEADER.encode()


@pytest.mark.parametrize("data, match", [
    (b"", "empty file$"),
    (b"L1_C1\t19\t1.5\t50\t80\tApical\t14.3,\n", "first line is not a '#' header line: 'L1_C1"),
    (S + b"L1_C1\t19\t1.5\t50\t80\n",
     "line 2: 5 tab-separated fields, expected 6"),
    (SPEC_SYNAPSES.encode() + b"L2_C2\t7\t41",
     r"line 6: 3 tab-separated fields, expected 6 \(\+ times\) \(file truncated mid-line\?\)"),
    (SPEC_SYNAPSES.encode() + b"L2_C2\t7\t412.5\t12\t3\tDendrite\t12.5,80.2",
     r"line 6: activation_times '12.5,80.2' not comma-terminated "
     r"\(file truncated mid-line\?\)"),
    (S + b"L2_C2\t7\t412.5\t12\t3\tDendrite\t12.5,80\n",
     r"line 2: activation_times '12.5,80' not comma-terminated$"),
    (S + b"L1\t1\t1.5\t5\t8\tApical\t1.0,\tx\n", "line 2: 8 tab-separated fields"),
    (S + b"L1\t1\t1.5\t5\t8\tA\t1.0,\n\nL1\t1\t1.5\t5\t8\tA\t1.0,\n",
     "line 3: empty line"),
    (S + b"L1\t1\t1.5\t5\t8\tA\t1.0,\nL1\t1.5\t1.5\t5\t8\tA\t1.0,\n",
     "line 3: synapse_ID '1.5' is not an integer"),
    (S + b"L1\tx19\t1.5\t5\t8\tA\t1.0,\n", "line 2: synapse_ID 'x19' is not an integer"),
    (S + b"L1\t1\t1.5\t5\t8\tA\t\nL1\t1\t1.5\t5\t99999999999999999999\tA\t\n",
     "line 3: section_pt_ID '99999999999999999999' is out of range"),
    (S + b"L1\t1\tfar\t5\t8\tA\t1.0,\n", "line 2: soma_distance 'far' is not a number"),
    (S + b"L1\t1\tnan\t5\t8\tA\t1.0,\n", "line 2: soma_distance 'nan' is not finite"),
    (S + b"\t1\t1.5\t5\t8\tA\t1.0,\n", "line 2: empty synapse_type"),
    (S + b"L1\t1\t1.5\t5\t8\tA\t1.0,\nL1\t1\t1.5\t5\t8\tA\t1.0,2.x,\n",
     "line 3: activation_times value '2.x' is not a number"),
    (S + b"L1\t1\t1.5\t5\t8\tA\t1.0,,2.0,\n",
     "line 2: activation_times value '' is not a number"),
    (S + b"L1\t1\t1.5\t5\t8\tA\t1.0,\nL1\t1\t1.5\t5\t8\tA\t1.0,inf,\n",
     "line 3: activation_times value 'inf' is not finite"),
    (S + b"L1\t1\t1.5\t5\t8\tApical\xe9\t1.0,\n",
     r"not UTF-8: invalid byte 0xe9 at offset \d+ \(line 2\)"),
    (b"#\x00\x01\x02binary\xff\xfe", "binary content, not text|not UTF-8"),
    (b"#\x00\x01\x02binary", r"binary content, not text \(NUL byte at offset 1\)"),
])
def test_synapse_defects(data, match):
    with error(SYN, match):
        decode_synapses(SYN, data, SIM_RUN, 3)


@pytest.mark.parametrize("data, match", [
    (b"", "empty file$"),
    (C + b"L1_B1\n", "line 2: 1 tab-separated fields, expected 2"),
    (C + b"L1_B1\t0\t66.1,\nL1_B1\t6\t174.8",
     r"line 3: spike_times '174.8' not comma-terminated \(file truncated"),
    (C + b"L1_B1\tzero\t66.1,\n", "line 2: cell_ID 'zero' is not an integer"),
    (C + b"L1_B1\t0\t66.1,abc,\n", "line 2: spike_times value 'abc' is not a number"),
    (C + b"L1_B1\t0\tNaN,\n", "line 2: spike_times value 'NaN' is not finite"),
    (C + b"L1_B1\t0\t66.1,\t5\n", "line 2: 4 tab-separated fields, expected 2"),
    (b"\xff\xd8\xff\xe0 jpeg", "not UTF-8: invalid byte 0xff at offset 0"),
])
def test_cell_defects(data, match):
    with error(CELLS, match):
        decode_presynaptic_cells(CELLS, data, SIM_RUN, 3)


def test_synapse_file_given_to_cell_decoder_is_rejected():
    with error(CELLS, "line 2: 7 tab-separated fields, expected 2"):
        decode_presynaptic_cells(CELLS, SPEC_SYNAPSES.encode(), SIM_RUN, 3)


# --------------------------------------------------------------------------- two paths
#
# Well-formed files go through a compiled scan, anything else through the exact decoder that
# names the defect. Both must agree on every input: the same rows, or the same error.

_TOKENS = [b"\t", b",", b"\n", b"-", b"+", b" ", b".", b"e5", b"nan", b"inf", b"x", b",,",
           b"9" * 19, b"0", b"\t\t", b"\r\n", b"1e400", b"00", b"0.", b".5", b"5.", b"-0",
           b"1234567890123456", b"\x00", b"\xff"]


def _mutated(base: bytes, rng: np.random.Generator) -> bytes:
    pos = int(rng.integers(len(SYN_HEADER), len(base)))  # the header line stays
    op = int(rng.integers(0, 4))
    if op == 3:  # one field of one line emptied
        lines = base.split(b"\n")
        i = int(rng.integers(1, len(lines) - 1))
        fields = lines[i].split(b"\t")
        fields[int(rng.integers(0, len(fields)))] = b""
        lines[i] = b"\t".join(fields)
        return b"\n".join(lines)
    if op == 0:
        return base[:pos] + _TOKENS[int(rng.integers(0, len(_TOKENS)))] + base[pos:]
    if op == 1:
        return base[:pos] + base[pos + int(rng.integers(1, 4)):]
    return base[:pos] + _TOKENS[int(rng.integers(0, len(_TOKENS)))] + base[pos + 1:]


def _outcome(decode, path, data):
    try:
        return decode(path, data, SIM_RUN, 3)
    except SimrunFormatError as exc:
        return str(exc)


@pytest.mark.parametrize("kind", ["synapses", "cells"])
def test_compiled_scan_and_exact_decoder_agree(kind):
    from simlake.decode import activation

    layout = activation._SYNAPSES if kind == "synapses" else activation._CELLS
    path = SYN if kind == "synapses" else CELLS
    public = decode_synapses if kind == "synapses" else decode_presynaptic_cells

    def exact(path, data, sim_run, trialnr):
        activation._check_text(path, data)
        data = data.replace(b"\r\n", b"\n")
        return activation._decode_exact(path, data, sim_run, trialnr, layout)

    text = random_synapses(12, seed=3)
    if kind == "cells":  # the same values as cell lines: type, id, times
        text = CELLS_HEADER + "".join(
            "\t".join(f for i, f in enumerate(line.split("\t")) if i in (0, 1, 6)) + "\n"
            for line in text.splitlines()[1:])
    base = text.encode()
    one = [activation.ActivationFile(path, base, SIM_RUN, 3)]
    assert activation._fast_rows(one, layout)[1].all()  # the fast path runs
    rng = np.random.default_rng(11)
    accepted = 0
    for _ in range(1500):
        data = _mutated(base, rng)
        fast, slow = _outcome(public, path, data), _outcome(exact, path, data)
        if isinstance(slow, str):
            assert fast == slow, data
        else:
            assert not isinstance(fast, str) and fast.equals(slow), data
            accepted += 1
    assert 100 < accepted < 1200  # both valid and invalid mutants were tried


def test_compiled_code_without_a_cache_folder_still_runs():
    """numba refuses to cache a function it cannot locate a cache folder for; the scan's
    functions then compile per process instead of failing the import."""
    from numba import njit

    from simlake.decode._scan import compiled

    namespace: dict = {}
    exec(compile("def twice(x):\n    return 2 * x\n", "<no file>", "exec"), namespace)
    with pytest.raises(RuntimeError, match="no locator available"):
        njit(cache=True)(namespace["twice"])
    assert compiled(namespace["twice"])(21) == 42


@pytest.mark.parametrize("kind", ["synapses", "cells"])
def test_a_batch_gives_each_file_its_own_rows_or_error(kind):
    """Many files decoded together (one compiled pass): the rows of every good file in file
    order, and for every bad file the error it gets alone; good files around a bad one land."""
    from simlake.decode import activation

    batch_decode = (activation.decode_synapse_files if kind == "synapses"
                    else activation.decode_presynaptic_cell_files)
    alone = decode_synapses if kind == "synapses" else decode_presynaptic_cells
    rng = np.random.default_rng(5)
    files = []
    for i in range(60):
        text = random_synapses(int(rng.integers(0, 30)), seed=100 + i)
        if kind == "cells":
            text = CELLS_HEADER + "".join(
                "\t".join(f for j, f in enumerate(line.split("\t")) if j in (0, 1, 6)) + "\n"
                for line in text.splitlines()[1:])
        data = text.encode()
        if i % 4 == 1:
            data = _mutated(data, rng) if len(data) > len(SYN_HEADER) + 1 else b""
        files.append(activation.ActivationFile(f"/sim/f{i:02d}.csv", data, SIM_RUN, i))

    out = batch_decode(files)
    expected_rows, expected_errors = [], {}
    for i, f in enumerate(files):
        result = _outcome(lambda p, d, s, t, f=f: alone(p, d, s, f.trialnr), f.path, f.data)
        if isinstance(result, str):
            expected_errors[i] = result
        else:
            expected_rows.append(result)
    assert {i: str(e) for i, e in out.failures} == expected_errors
    assert 3 <= len(expected_errors) <= 15  # bad files among good ones were tried
    assert out.table.combine_chunks().equals(pa.concat_tables(expected_rows).combine_chunks())
    assert out.table.column("trialnr").to_pylist() == sorted(out.table.column("trialnr")
                                                             .to_pylist())
    # the writer's form: strings dictionary-encoded (fast and exact files alike), same values
    encoded = batch_decode(files, encoded=True)
    schema = out.table.schema
    assert encoded.table.schema == schemas.encoded(schema)
    assert {i: str(e) for i, e in encoded.failures} == expected_errors
    assert encoded.table.cast(schema).combine_chunks().equals(out.table.combine_chunks())


def test_dictionary_codes_number_strings_in_order_of_first_appearance():
    """Codes of the compiled dictionary encoder against a plain dict: runs, repeats, empty
    strings, a prefix of another string, equal hashes' neighbours, and enough distinct
    strings to grow its table several times."""
    from simlake.decode._scan import dictionary_codes

    rng = np.random.default_rng(11)
    words = [b"", b"a", b"ab", b"abc", b"L5tt", b"L5tt_C2", b"Soma", b"x" * 300]
    words += [f"w{i}".encode() for i in range(3000)]
    picks = np.concatenate([np.repeat(rng.integers(0, 8, 200), rng.integers(1, 20, 200)),
                            rng.integers(0, len(words), 20000)])
    strings = [words[i] for i in picks]
    lengths = np.array([len(w) for w in strings])
    ends = np.cumsum(lengths)
    starts = ends - lengths
    data = np.frombuffer(b"".join(strings), dtype=np.uint8)

    codes, first = dictionary_codes(data, starts, ends)
    numbering: dict[bytes, int] = {}
    for w in strings:
        numbering.setdefault(w, len(numbering))
    assert codes.tolist() == [numbering[w] for w in strings]
    assert [strings[i] for i in first] == list(numbering)
    assert codes.dtype == np.int32


def _plain(text: str) -> bool:
    """The numbers the compiled scan parses itself: plain decimals of up to 18 significant
    digits below 2**53, at most 22 digits after the point."""
    m = re.fullmatch(r"-?(0|[1-9][0-9]*)(?:\.([0-9]+))?", text)
    if not m:
        return False
    whole, fraction = m.group(1), m.group(2)
    zeros = len(fraction) - len(fraction.lstrip("0")) if whole == "0" and fraction else 0
    if len(whole) + len(fraction or "") - zeros > 18:
        return False
    digits = int(whole + (fraction or ""))
    places = len(fraction) if fraction is not None else 0
    if places > 22:
        return False
    return digits < 2**53 or (places > 0 and digits < 2**53 * 10**places)


def test_plain_decimals_parse_to_the_correctly_rounded_double():
    """The compiled scan parses plain decimals of up to 18 significant digits itself and must
    give the same double as Python's float() (correctly rounded), bit for bit; it leaves every
    other number to the general parser (the times of a cell file here, one value per line)."""
    from simlake.decode._scan import INT, OK, STRING, scan_files

    rng = np.random.default_rng(8)
    values = np.concatenate([rng.uniform(-1e4, 1e4, 3000), rng.uniform(0, 1, 1000),
                             10.0 ** rng.uniform(-12, 15, 2000)])
    texts = []
    for v in values:
        texts.append(f"{v:.{int(rng.integers(1, 18))}g}")  # may print an exponent
        texts.append(f"{v:.{int(rng.integers(0, 16))}f}")
        texts.append(repr(float(v)))
    texts += ["0", "-0", "0.0", "-0.0", "00", "01.5", "1.", ".5", "1e5", "+1", "-.5", "-",
              "-0.", "0.-5",
              "999999999999999", "9999999999999999", "0.000000000000001", "1.0000000000000",
              "0.010000000000000002", "0.00012345678901234567", "9007199254740993",
              "123456789012345678", "1234567890123456789", "0.1234567890123456789"]
    data = (CELLS_HEADER + "".join(f"L1\t{i}\t{t},\n" for i, t in enumerate(texts))).encode()
    found = scan_files(np.frombuffer(data, np.uint8), np.array([0, len(data)]),
                       np.array([STRING, INT]))
    assert found.status.tolist() == [OK]
    assert found.ints[1].tolist() == list(range(len(texts)))
    left = np.zeros(len(texts), dtype=bool)
    left[found.left_index] = True
    plain = np.array([_plain(t) for t in texts])
    assert (~left == plain).all()
    assert 5000 < plain.sum() < len(texts) - 1000  # both kinds tried
    assert sum(_plain(t) and sum(c.isdigit() for c in t) > 15 for t in texts) > 1000
    expected = np.array([float(t) for t, p in zip(texts, plain, strict=True) if p])
    assert (found.values[plain].view(np.int64) == expected.view(np.int64)).all()  # -0.0 too
    assert [data[s:e].decode() for s, e in zip(found.left_start, found.left_end,
                                               strict=True)] == [t for t in texts if not _plain(t)]

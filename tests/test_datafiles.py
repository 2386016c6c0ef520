"""Data files written with pyarrow (no Spark): what is written equals what was given, files
split where the layout says, and the Delta statistics are exact."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from simlake import schemas
from simlake.datafiles import DataFile, TableFileWriter, write_table_files


def _dendritic_rows(site: str, sim_run: str, trials: range) -> pa.Table:
    n = len(trials)
    return pa.table({
        "recording_site": [site] * n,
        "sim_trial_index": [schemas.sim_trial_index(sim_run, t) for t in trials],
        "sim_run": [sim_run] * n,
        "trialnr": list(trials),
        "t": [[0.0, 0.025]] * n,
        "vm": [[-65.0, float(t)] for t in trials],
    }, schema=schemas.DENDRITIC_RECORDINGS)


def _read(root: str, f: DataFile) -> pa.Table:
    return pq.read_table(os.path.join(root, f.path))


def test_files_hold_the_rows_given_and_exact_stats(tmp_path):
    root = str(tmp_path)
    rows = pa.concat_tables([
        _dendritic_rows("apical", "results/run_a", range(0, 3)),
        _dendritic_rows("apical", "results/run_b", range(0, 2)),
        _dendritic_rows("basal", "results/run_a", range(0, 3)),
    ])
    files = write_table_files(root, "dendritic_recordings", schemas.DENDRITIC_RECORDINGS, rows,
                              partition_columns=["recording_site"])
    # one file per partition value, in order; the partition column stays in the log only
    assert [f.partition_values for f in files] == [{"recording_site": "apical"},
                                                   {"recording_site": "basal"}]
    assert [f.sim_runs for f in files] == [("results/run_a", "results/run_b"),
                                           ("results/run_a",)]
    for f, site in zip(files, ("apical", "basal"), strict=True):
        expected = rows.filter(pc.equal(rows.column("recording_site"), site))
        back = _read(root, f)
        assert "recording_site" not in back.column_names
        assert back.to_pylist() == expected.drop_columns(["recording_site"]).to_pylist()
        assert f.num_records == expected.num_rows
        assert f.size == os.path.getsize(os.path.join(root, f.path))
        stats = json.loads(f.stats)
        keys = expected.column("sim_trial_index").to_pylist()
        assert stats["numRecords"] == len(keys)
        assert stats["minValues"]["sim_trial_index"] == min(keys)
        assert stats["maxValues"]["sim_trial_index"] == max(keys)
        assert stats["nullCount"] == {"sim_trial_index": 0, "sim_run": 0}
        assert f.add_action()["add"]["partitionValues"] == {"recording_site": site}
        assert DataFile.from_record(f.to_record()) == f


def test_split_folders_gives_one_file_per_folder(tmp_path):
    root = str(tmp_path)
    writer = TableFileWriter(root, "voltage_traces", schemas.VOLTAGE_TRACES, split_folders=True)
    parts = [_dendritic_rows("x", s, range(n)).drop_columns(["recording_site"])
             for s, n in (("r/a", 2), ("r/b", 3))]
    writer.add(pa.concat_tables(parts))  # one add spanning both folders
    writer.add(_dendritic_rows("x", "r/c", range(1)).drop_columns(["recording_site"]))
    files = writer.close()
    assert [f.sim_runs for f in files] == [("r/a",), ("r/b",), ("r/c",)]
    assert [f.num_records for f in files] == [2, 3, 1]
    assert [_read(root, f).column("sim_run").to_pylist() for f in files] == [
        ["r/a"] * 2, ["r/b"] * 3, ["r/c"]]


def test_without_split_folders_share_a_file_and_each_flush_ends_a_row_group(tmp_path):
    root = str(tmp_path)
    writer = TableFileWriter(root, "voltage_traces", schemas.VOLTAGE_TRACES,
                             buffer_bytes=1)  # every add is written at once
    for s in ("r/a", "r/b", "r/c"):
        writer.add(_dendritic_rows("x", s, range(2)).drop_columns(["recording_site"]))
    (f,) = writer.close()
    assert f.sim_runs == ("r/a", "r/b", "r/c") and f.num_records == 6
    assert pq.ParquetFile(os.path.join(root, f.path)).metadata.num_row_groups == 3


def _trial_rows(sizes: list[int]) -> pa.Table:
    """cell_activation rows: ``sizes[i]`` rows for trial i (in key order)."""
    stis = [schemas.sim_trial_index("results/r", i) for i, n in enumerate(sizes) for _ in range(n)]
    n = len(stis)
    return pa.table({
        "sim_trial_index": stis, "sim_run": ["results/r"] * n,
        "trialnr": [int(s[-6:]) for s in stis], "presynaptic_cell_type": ["L4ss"] * n,
        "cell_ID": list(range(n)), "spike_times": [[float(i)] * 3 for i in range(n)],
    }, schema=schemas.CELL_ACTIVATION)


def _row_groups(path: str) -> list[tuple[list[str], str, str]]:
    """Per row group: its keys as read back, and the footer's min/max of the key."""
    pf = pq.ParquetFile(path)
    out = []
    for g in range(pf.metadata.num_row_groups):
        keys = pf.read_row_group(g, columns=["sim_trial_index"]).column(0).to_pylist()
        st = pf.metadata.row_group(g).column(0).statistics
        assert pf.metadata.row_group(g).column(0).path_in_schema == "sim_trial_index"
        out.append((keys, st.min, st.max))
    return out


@pytest.mark.parametrize("target,per_group", [(1, 1), (None, 3), (1 << 30, None)])
def test_row_groups_hold_whole_trials_with_exact_key_statistics(tmp_path, target, per_group):
    sizes = [5, 1, 7, 2, 2, 9, 4, 3, 1, 6]
    rows = _trial_rows(sizes)
    if target is None:  # about three trials' bytes (trials average 4 rows)
        target = int(rows.nbytes / rows.num_rows * 4 * 3)
    writer = TableFileWriter(str(tmp_path), "cell_activation", schemas.CELL_ACTIVATION,
                             row_group_bytes=target)
    writer.add(rows.slice(0, 20))
    writer.add(rows.slice(20))
    (f,) = writer.close()
    groups = _row_groups(os.path.join(str(tmp_path), f.path))
    read_back = [k for keys, _, _ in groups for k in keys]
    assert read_back == rows.column("sim_trial_index").to_pylist()
    seen: set[str] = set()
    for keys, lo, hi in groups:
        assert (lo, hi) == (min(keys), max(keys))  # exact bounds
        assert not seen.intersection(keys)  # no trial is cut between two row groups
        seen.update(keys)
    trials_per_group = [len(set(keys)) for keys, _, _ in groups]
    if per_group == 1:
        assert trials_per_group == [1] * len(sizes)
    elif per_group is None:
        assert len(groups) == 1
    else:  # groups of about the target: more than one trial each, never all of them
        assert 1 < len(groups) < len(sizes) and max(trials_per_group) <= 2 * per_group


def test_abort_deletes_the_files_written(tmp_path):
    root = str(tmp_path)
    writer = TableFileWriter(root, "voltage_traces", schemas.VOLTAGE_TRACES, split_folders=True)
    writer.add(_dendritic_rows("x", "r/a", range(2)).drop_columns(["recording_site"]))
    writer.add(_dendritic_rows("x", "r/b", range(2)).drop_columns(["recording_site"]))
    writer.abort()
    assert writer.files == [] and os.listdir(root) == []


def test_rows_of_another_schema_are_refused(tmp_path):
    writer = TableFileWriter(str(tmp_path), "voltage_traces", schemas.VOLTAGE_TRACES)
    wrong = pa.table({"sim_trial_index": ["r/a/000000"], "sim_run": ["r/a"]})
    with pytest.raises(KeyError):
        writer.add(wrong)


def test_encoded_strings_are_written_as_plain_strings(tmp_path):
    """Rows with dictionary-encoded strings (as the activation decoder hands them over) and
    plain rows in one file: pyarrow reads plain strings back, the same Arrow schema as a file
    pyarrow writes itself, and the footer has min/max statistics on the key columns only."""
    from simlake.datafiles import arrow_schema_metadata, conform, encode_strings

    schema = schemas.CELL_ACTIVATION

    def rows(sim_run: str, trials: range, types: list[str]) -> pa.Table:
        n = len(trials) * len(types)
        return pa.table({
            "sim_trial_index": [schemas.sim_trial_index(sim_run, t) for t in trials
                                for _ in types],
            "sim_run": [sim_run] * n,
            "trialnr": [t for t in trials for _ in types],
            "presynaptic_cell_type": types * len(trials),
            "cell_ID": list(range(n)),
            "spike_times": [[float(i), i + 0.5] for i in range(n)],
        }, schema=schema)

    plain = [rows("results/a", range(0, 3), ["L4ss", "L5tt", "L4ss"]),
             rows("results/a", range(3, 5), ["VPM", "L4ss"]),
             rows("results/b", range(0, 2), ["L6cc"])]
    parts = [encode_strings(plain[0]), plain[1], encode_strings(plain[2])]
    assert pa.types.is_dictionary(parts[0].schema.field("presynaptic_cell_type").type)
    writer = TableFileWriter(str(tmp_path), "cell_activation", schema)
    for part in parts:
        writer.add(conform(part, schema))
    [f] = writer.close()

    path = os.path.join(str(tmp_path), f.path)
    back = pq.read_table(path)
    assert back.schema == schema
    assert back.equals(pa.concat_tables(plain))
    native = str(tmp_path / "native.parquet")
    pq.write_table(pa.concat_tables(plain), native)
    footer = pq.ParquetFile(path).metadata
    assert footer.metadata[b"ARROW:schema"] == \
        pq.ParquetFile(native).metadata.metadata[b"ARROW:schema"] == arrow_schema_metadata(schema)
    with_stats = {footer.row_group(0).column(j).path_in_schema
                  for j in range(footer.num_columns)
                  if footer.row_group(0).column(j).statistics is not None
                  and footer.row_group(0).column(j).statistics.has_min_max}
    assert with_stats == {"sim_trial_index", "sim_run", "trialnr"}
    stats = json.loads(f.stats)
    assert stats["minValues"] == {"sim_trial_index": "results/a/000000", "sim_run": "results/a"}
    assert stats["maxValues"] == {"sim_trial_index": "results/b/000001", "sim_run": "results/b"}


def test_footer_records_the_longest_list_per_sim_run(tmp_path):
    from simlake.datafiles import LIST_LENGTHS_KEY, encode_strings

    def rows(sim_run: str, lengths: list[int]) -> pa.Table:
        n = len(lengths)
        return pa.table({
            "sim_trial_index": [schemas.sim_trial_index(sim_run, 0)] * n,
            "sim_run": [sim_run] * n, "trialnr": [0] * n,
            "presynaptic_cell_type": ["L4ss"] * n, "cell_ID": list(range(n)),
            "spike_times": [None if k < 0 else [1.0] * k for k in lengths],
        }, schema=schemas.CELL_ACTIVATION)

    parts = {"results/a": [2, 0, 5], "results/b": [-1, 1], "results/c": [0]}
    writer = TableFileWriter(str(tmp_path), "cell_activation", schemas.CELL_ACTIVATION)
    for i, (run, lengths) in enumerate(parts.items()):
        part = rows(run, lengths)
        writer.add(encode_strings(part) if i == 1 else part)  # as decoders hand them over
    [f] = writer.close()
    footer = pq.ParquetFile(os.path.join(str(tmp_path), f.path)).metadata.metadata
    recorded = json.loads(footer[LIST_LENGTHS_KEY.encode()])
    assert recorded == {"spike_times": {run: max(max(v), 0) for run, v in parts.items()}}

    # one part holding several folders (a decoder's batch), in chunks with their own
    # dictionaries, a folder in two places, plain strings too: the same longest lists
    encoded = [encode_strings(rows(run, lengths)) for run, lengths in parts.items()]
    encoded.append(encode_strings(rows("results/a", [7, 1])))
    plain = [rows(run, lengths) for run, lengths in parts.items()]
    cases = [(pa.concat_tables(encoded), {"results/a": 7, "results/b": 1, "results/c": 0}),
             (pa.concat_tables(plain), {"results/a": 5, "results/b": 1, "results/c": 0})]
    for i, (part, expected) in enumerate(cases):
        out = tmp_path / f"many{i}"
        writer = TableFileWriter(str(out), "cell_activation", schemas.CELL_ACTIVATION)
        writer.add(part)
        [f] = writer.close()
        footer = pq.ParquetFile(os.path.join(str(out), f.path)).metadata.metadata
        assert json.loads(footer[LIST_LENGTHS_KEY.encode()]) == {"spike_times": expected}


def test_plain_files_use_the_ingest_codec_and_exact_stats(tmp_path):
    """A user's frame goes through the same writer module: the codec of the ingest's non-trace
    columns (not pyarrow's snappy default), rows as given, exact statistics of the columns
    asked for."""
    from simlake.datafiles import write_plain_file

    ingest_root, plain_root = str(tmp_path / "ingest"), str(tmp_path / "plain")
    ingested = write_table_files(ingest_root, "dendritic_recordings", schemas.DENDRITIC_RECORDINGS,
                                 _dendritic_rows("apical", "results/run_a", range(3)),
                                 ("recording_site",))
    key_codec = {c.path_in_schema: c.compression for c in
                 [pq.ParquetFile(os.path.join(ingest_root, ingested[0].path)).metadata
                  .row_group(0).column(i) for i in range(3)]}["sim_run"]
    frame = pa.table({"b": [3.0, 1.0, 2.0], "name": ["z", "x", "y"]})
    written = write_plain_file(plain_root, "part=1", frame, seq=7, partition_values={"part": "1"},
                               stats_columns=["b"])
    meta = pq.ParquetFile(os.path.join(plain_root, written.path)).metadata
    assert {meta.row_group(0).column(i).compression for i in range(2)} == {key_codec}
    assert key_codec != "SNAPPY"
    assert os.path.basename(written.path).startswith("part-00007-")
    assert _read(plain_root, written).equals(frame)
    assert written.stat("b")[:2] == (1.0, 3.0) and written.num_records == 3
    assert written.partition_values == {"part": "1"}

"""``loc`` over data files written by the ingest's writer (row groups of whole trials): it reads
the row groups that hold the keys and nothing else of the file, and its frames equal frames
built independently from the generated data (``adapter_corpus``) and dask's own ``loc``."""

from __future__ import annotations

import io
import os
import pickle
from collections import Counter
from dataclasses import replace

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, create_table_with_add_actions

import adapter_corpus as ac
from simlake import schemas
from simlake.adapter import DataBase, readfiles
from simlake.adapter import deltafiles as df_
from simlake.adapter.trialframe import TrialFrame
from simlake.datafiles import TableFileWriter

N_TIMES = 12_000  # ~100 KB of voltages a trial: a row group well above pyarrow's footer read


def _write_with_ingest_writer(root: str, key: str, groups: list[list[ac.Trial]]) -> None:
    """One data file per group, written as the ingest writes them (one trial a row group
    here), committed with deltalake."""
    schema = schemas.TABLES[key]
    actions = []
    for group in groups:
        writer = TableFileWriter(root, key, schema, row_group_bytes=1)
        writer.add(ac._rows(key, group))
        for f in writer.close():
            a = f.add_action()["add"]
            actions.append(AddAction(a["path"], a["size"], a["partitionValues"],
                                     a["modificationTime"], True, a["stats"]))
    create_table_with_add_actions(root, DeltaSchema.from_arrow(schema), actions,
                                  configuration={"delta.dataSkippingStatsColumns":
                                                 "sim_trial_index,sim_run"})


@pytest.fixture(scope="module")
def corpus() -> ac.Corpus:
    return ac.make_corpus(n_times=N_TIMES, seed=3)


@pytest.fixture(scope="module")
def expected(corpus) -> dict[str, pd.DataFrame]:
    return {"voltage_traces": ac.expected_voltage(corpus),
            "synapse_activation": ac.expected_synapses(corpus)}


@pytest.fixture(scope="module")
def db(corpus, tmp_path_factory) -> DataBase:
    root = str(tmp_path_factory.mktemp("rowgroups") / "db")
    ac.write_table(os.path.join(root, "metadata"),
                   [ac._rows("metadata", g) for g in ac.groups_of_runs(corpus.trials, 3)])
    everything = corpus.trials + corpus.leftovers  # leftovers share files with visible runs
    for key in ("voltage_traces", "synapse_activation"):
        _write_with_ingest_writer(os.path.join(root, key), key,
                                  ac.groups_of_runs(everything, 4))
    return DataBase(root)


class CountingFile(io.FileIO):
    """A data file that counts the bytes read from it."""

    def __init__(self, path: str, counts: Counter) -> None:
        super().__init__(path, "rb")
        self._counts = counts

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self._counts[self.name] += len(data)
        return data

    def readinto(self, buffer) -> int:
        n = super().readinto(buffer)
        self._counts[self.name] += n or 0
        return n


class CountingFS:
    """Stands in for the adapter's filesystem handle; counts the bytes read per file."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()

    def open_input_file(self, path: str) -> CountingFile:
        return CountingFile(path, self.counts)


@pytest.fixture
def counting(monkeypatch) -> CountingFS:
    fs = CountingFS()
    monkeypatch.setattr(readfiles, "_FS", fs)
    return fs


def _holding(path: str, sti: str) -> list[int]:
    """Row groups of a data file whose rows include ``sim_trial_index == sti`` (by reading
    them, not by statistics)."""
    pf = pq.ParquetFile(path)
    return [g for g in range(pf.metadata.num_row_groups)
            if sti in pf.read_row_group(g, columns=["sim_trial_index"]).column(0).to_pylist()]


def _files(db: DataBase, key: str) -> list[str]:
    return sorted(df_.open_table(os.path.join(db.basedir, key)).files, key=lambda f: f.path)


def _plain(frame: TrialFrame) -> dd.DataFrame:
    """The same frame without the row-group narrowing: dask's loc reads whole partitions."""
    return dd.DataFrame(frame.expr)


def _assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal frames: index, column labels with their Python types, dtypes, exact values."""
    assert [type(c) for c in got.columns.tolist()] == [type(c) for c in want.columns.tolist()]
    if len(want.columns) < 100:
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        return
    # wide float frames (traces): the same checks, without a pass per column
    pd.testing.assert_index_equal(got.index, want.index, exact=True)
    pd.testing.assert_index_equal(got.columns, want.columns, exact=True)
    assert (got.dtypes == want.dtypes).all()
    assert np.array_equal(got.to_numpy(), want.to_numpy(), equal_nan=True)


def _picks(corpus: ac.Corpus) -> dict[str, str]:
    stis = [tr.sti for tr in corpus.visible]
    return {"first": stis[0], "middle of a file": stis[4], "last": stis[-1]}


def test_files_have_a_row_group_per_trial(db, corpus):
    for f in _files(db, "voltage_traces"):
        md = pq.ParquetFile(f.path).metadata
        assert md.num_row_groups == md.num_rows > 1


@pytest.mark.parametrize("where", ["first", "middle of a file", "last"])
def test_loc_reads_only_the_row_group_of_the_trial(db, corpus, expected, counting, where):
    sti = _picks(corpus)[where]
    frame = db["voltage_traces"]
    counting.counts.clear()
    got = frame.loc[sti].compute()
    _assert_same(got, expected["voltage_traces"].loc[[sti]])
    (path,) = counting.counts  # one data file touched
    md = pq.ParquetFile(path).metadata
    (group,) = _holding(path, sti)
    # the footer twice (row groups chosen, then read; pyarrow reads the last 64 KiB first),
    # and that one row group (its columns wanted, gaps under 8 KiB between them coalesced)
    rg = md.row_group(group)
    group_bytes = sum(rg.column(j).total_compressed_size for j in range(rg.num_columns))
    budget = 2 * (64 * 1024 + md.serialized_size) + group_bytes
    assert counting.counts[path] <= budget < os.path.getsize(path) / 2


@pytest.mark.parametrize("key", ["voltage_traces", "synapse_activation"])
def test_loc_narrows_partitions_to_the_row_groups_holding_the_keys(db, corpus, expected, key):
    frame = db[key]
    want = expected[key]
    for sti in _picks(corpus).values():
        narrowed = frame.narrowed(sti)
        plan = [(f.path, groups) for p in narrowed.expr.operand("iterables")[0]
                for f, groups in zip(p.files, p.row_groups, strict=True) if groups]
        hits = [(f.path, tuple(_holding(f.path, sti))) for f in _files(db, key)]
        assert plan == [h for h in hits if h[1]]
        _assert_same(frame.loc[sti].compute(), want.loc[[sti]])


@pytest.mark.parametrize("key", ["voltage_traces", "synapse_activation"])
def test_loc_of_lists_slices_and_absent_keys_equals_dask_and_the_data(db, corpus, expected, key):
    frame = db[key]
    want = expected[key]
    plain = _plain(frame)
    stis = [tr.sti for tr in corpus.visible]
    first_file = next(set(pq.read_table(f.path, columns=["sim_trial_index"]).column(0)
                          .to_pylist()) for f in _files(db, key)
                      if _holding(f.path, stis[0]))
    spanning = [s for s in stis if s in first_file][-2:] + \
        [s for s in stis if s not in first_file][:2]  # the end of one file, the next's start
    _assert_same(frame.loc[spanning].compute(), want.loc[spanning])
    _assert_same(frame.loc[spanning].compute(), plain.loc[spanning].compute())
    _assert_same(frame.loc[stis[2]:stis[9]].compute(), want.loc[stis[2]:stis[9]])
    _assert_same(frame.loc[:stis[1]].compute(), want.loc[:stis[1]])
    _assert_same(frame.loc[stis[-2]:].compute(), want.loc[stis[-2]:])
    hidden = corpus.leftovers[0].sti  # in a data file, but no metadata: not visible
    absent = stis[3][:-6] + "000099"  # inside the table's key range, in no file
    for sti in (hidden, absent):
        got = frame.loc[sti].compute()
        assert got.empty
        _assert_same(got, plain.loc[sti].compute())
    with pytest.raises(KeyError):
        frame.loc["zzz/000001"]  # outside every division: dask's KeyError
    two = frame.loc[[stis[0], stis[-1]], list(want.columns[:2])].compute()
    _assert_same(two, want.loc[[stis[0], stis[-1]], list(want.columns[:2])])


def test_the_frame_is_a_dask_frame_and_pickles(db, corpus, expected):
    frame = db["voltage_traces"]
    assert isinstance(frame, dd.DataFrame) and frame.known_divisions
    back = pickle.loads(pickle.dumps(frame))
    assert isinstance(back, TrialFrame)
    assert back.divisions == frame.divisions
    sti = corpus.visible[5].sti
    _assert_same(back.loc[sti].compute(), expected["voltage_traces"].loc[[sti]])
    _assert_same(frame.compute(), expected["voltage_traces"])


def test_activation_frame_sizes_itself_from_footers(db, expected, counting):
    """K (the activation columns) comes from the longest lists the writer recorded in the
    footers: building the frame reads no activation times."""
    fresh = DataBase(db.basedir)
    counting.counts.clear()
    frame = fresh["synapse_activation"]
    assert list(frame.columns) == list(expected["synapse_activation"].columns)
    for f in _files(db, "synapse_activation"):
        # two footer reads (key range, longest lists), each of the file's last 64 KiB at least;
        # reading a column would read its bytes once more
        footer_read = min(os.path.getsize(f.path),
                          max(64 * 1024, pq.ParquetFile(f.path).metadata.serialized_size + 8))
        assert counting.counts[f.path] <= 2 * footer_read


def _column_selections(frame: TrialFrame, sti: str, cols: list) -> dict[str, object]:
    """The ways to select columns of one trial: before ``loc``, after it, inside it, and one
    column as a series."""
    return {"frame[cols].loc[sti]": frame[cols].loc[sti],
            "frame.loc[sti][cols]": frame.loc[sti][cols],
            "frame.loc[sti, cols]": frame.loc[sti, cols],
            "frame[col].loc[sti]": frame[cols[0]].loc[sti],
            "frame.loc[[sti]][col]": frame.loc[[sti]][cols[0]]}


def _want(want: pd.DataFrame, sti: str, cols: list, form: str) -> pd.DataFrame | pd.Series:
    return want.loc[[sti], cols[0]] if "[col]" in form else want.loc[[sti], cols]


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_column_selection_keeps_reading_only_the_trials_row_group(db, corpus, expected,
                                                                     counting, where):
    sti = _picks(corpus)[where]
    want = expected["voltage_traces"]
    cols = list(want.columns[[3, 7, 11]])
    for form, selected in _column_selections(db["voltage_traces"], sti, cols).items():
        counting.counts.clear()
        got = selected.compute()
        if isinstance(got, pd.Series):
            pd.testing.assert_series_equal(got, _want(want, sti, cols, form), check_exact=True)
        else:
            _assert_same(got, _want(want, sti, cols, form))
        (path,) = counting.counts  # one data file, and of it the footer and one row group
        md = pq.ParquetFile(path).metadata
        rg = md.row_group(_holding(path, sti)[0])
        group_bytes = sum(rg.column(j).total_compressed_size for j in range(rg.num_columns))
        budget = 2 * (64 * 1024 + md.serialized_size) + group_bytes
        assert counting.counts[path] <= budget < os.path.getsize(path) / 2, form


def test_a_column_selection_reads_only_those_columns_of_the_trials_row_group(db, corpus,
                                                                             expected):
    """Scalar columns of synapse activations need no activation times: each partition read
    is asked for those columns of the row groups holding the trial."""
    frame = db["synapse_activation"]
    reads: list[tuple] = []

    def read(partition, columns=None, *, spec):  # the real read, with what it was asked
        reads.append((columns, [(f.path, g) for f, g in zip(partition.files,
                                                            partition.row_groups or (),
                                                            strict=True) if g]))
        return frame._parts.read(partition, columns, spec=spec)

    watched = TrialFrame(replace(frame._parts, read=read))
    want = expected["synapse_activation"]
    sti = _picks(corpus)["middle of a file"]
    cols = ["synapse_type", "soma_distance"]
    holding = [(f.path, tuple(_holding(f.path, sti))) for f in _files(db, "synapse_activation")]
    for form, selected in _column_selections(watched, sti, cols).items():
        reads.clear()
        got = selected.compute()
        if isinstance(got, pd.Series):
            pd.testing.assert_series_equal(got, _want(want, sti, cols, form), check_exact=True)
        else:
            _assert_same(got, _want(want, sti, cols, form))
        asked = [c for c, groups in reads if groups]
        assert asked and all(c in (cols, cols[:1]) for c in asked), (form, reads)
        assert [g for _, groups in reads for g in groups] == [h for h in holding if h[1]], form

"""The DataBase adapter against Delta tables written with deltalake (no JVM), compared with
frames built independently from the generated data (``adapter_corpus``)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

import adapter_corpus as ac
from simlake.adapter import DataBase, DataBaseException, LayoutWarning, ManagedFolder, readfiles
from simlake.adapter import deltafiles as df_


@pytest.fixture(scope="module")
def corpus() -> ac.Corpus:
    return ac.make_corpus()


@pytest.fixture(scope="module")
def db(corpus, tmp_path_factory) -> DataBase:
    root = ac.write_db(corpus, str(tmp_path_factory.mktemp("adapter") / "db"))
    return DataBase(root)


class CountingFS:
    """Stands in for the adapter's filesystem handle and records every data file opened."""

    def __init__(self) -> None:
        self.fs = pafs.LocalFileSystem()
        self.opened: list[str] = []

    def open_input_file(self, path: str):
        self.opened.append(path)
        return self.fs.open_input_file(path)


@pytest.fixture
def counting(monkeypatch) -> CountingFS:
    fs = CountingFS()
    monkeypatch.setattr(readfiles, "_FS", fs)
    return fs


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal frames, including index, column labels with their Python types, and dtypes."""
    pd.testing.assert_frame_equal(got, want, check_exact=True)  # RangeIndex ~ int64 Index
    assert [type(c) for c in got.columns.tolist()] == [type(c) for c in want.columns.tolist()]
    assert got.index.name == want.index.name == "sim_trial_index"


# -------------------------------------------------------------------------------------------
# keys


def test_keys_and_mapping_behaviour(db):
    keys = db.keys()
    assert keys == ("simresult_path", "filelist", "sim_trial_index", "metadata",
                    "voltage_traces", "synapse_activation", "cell_activation", "spike_times",
                    "dendritic_recordings", "dendritic_spike_times", "parameterfiles",
                    "morphology", "syn_folder")
    assert "voltage_traces" in db and "con_folder" not in db
    assert len(db) == len(keys) and tuple(db) == keys
    with pytest.raises(KeyError, match=r"available keys: \['simresult_path'"):
        db["con_folder"]
    assert repr(db) == f"DataBase({db.basedir!r})"
    assert os.path.isabs(db.basedir)


def test_ls_is_readable(db, capsys):
    db.ls()
    out = capsys.readouterr().out
    assert out.splitlines()[0] == db.basedir
    assert "voltage_traces" in out and "Delta table" in out and "managed folder" in out


def test_pickles_as_its_path(db):
    db["voltage_traces"]  # fill the file cache
    data = pickle.dumps(db)
    assert len(data) < 300
    assert pickle.loads(data) == db
    assert pickle.loads(data).basedir == db.basedir


def test_manifest_keys(db):
    assert db["simresult_path"] == "/data/raw" and type(db["simresult_path"]) is str
    fl = db["filelist"]
    assert isinstance(fl, list) and all(isinstance(x, str) for x in fl) and len(fl) == 6


def test_managed_folder(db):
    m = db["morphology"]
    assert isinstance(m, ManagedFolder) and isinstance(m, str)
    assert m.listdir() == ["cell.hoc"]
    assert m.join("cell.hoc") == os.path.join(db.basedir, "morphology", "cell.hoc")
    assert m.get_file(".hoc") == m.join("cell.hoc")
    assert db["syn_folder"].listdir() == []


def test_missing_folder_is_created_unless_nocreate_or_readonly(tmp_path):
    for flags in ({"nocreate": True}, {"readonly": True}):
        with pytest.raises(DataBaseException, match=f"no simlake database .* {list(flags)[0]}"):
            DataBase(tmp_path / "nope", **flags)
        assert not (tmp_path / "nope").exists()
    assert DataBase(tmp_path / "new").keys() == ()
    assert DataBase(tmp_path / "new", nocreate=True).get_id() == DataBase(tmp_path / "new").get_id()


def test_a_folder_that_is_no_database_is_refused(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "results.csv").write_text("x")
    with pytest.raises(DataBaseException, match="is not a simlake database"):
        DataBase(tmp_path / "raw")
    with pytest.raises(DataBaseException, match="is a file"):
        DataBase(tmp_path / "raw" / "results.csv")


# -------------------------------------------------------------------------------------------
# frames


def test_metadata_and_sim_trial_index(db, corpus):
    meta = db["metadata"]
    pd.testing.assert_frame_equal(meta, ac.expected_metadata(corpus), check_exact=True)
    assert isinstance(meta.index, pd.RangeIndex)
    assert meta.reset_index().columns.tolist()[:2] == ["index", "sim_trial_index"]
    sti = db["sim_trial_index"]
    want = pd.Index(sorted(tr.sti for tr in corpus.visible), dtype="str", name="sim_trial_index")
    pd.testing.assert_index_equal(sti, want)
    assert sti.is_monotonic_increasing and len(sti[0]) > 32
    assert corpus.visible[0].sti in sti  # ISF code tests membership like this


def test_voltage_traces(db, corpus):
    vt = db["voltage_traces"]
    assert isinstance(vt, dd.DataFrame)
    assert vt.known_divisions
    assert vt.npartitions == len(DeltaTable(os.path.join(db.basedir, "voltage_traces"))
                                 .file_uris())
    got = vt.compute()
    assert_same(got, ac.expected_voltage(corpus))
    assert got.columns.tolist()[:3] == [100.0, 100.025, 100.05]
    assert all(type(c) is float for c in got.columns.tolist())


def test_activation_frames(db, corpus):
    sa = db["synapse_activation"]
    assert sa.known_divisions
    got = sa.compute()
    want = ac.expected_synapses(corpus)
    assert_same(got, want)
    assert got.columns.tolist()[6:] == [str(i) for i in range(9)]  # K = 9, string labels
    assert np.isnan(got["8"]).sum() == len(got) - 1
    assert_same(db["cell_activation"].compute(), ac.expected_cells(corpus))


def test_spike_times_have_a_row_per_trial(db, corpus):
    st = db["spike_times"]
    assert isinstance(st, pd.DataFrame)
    want = ac.expected_spike_times(corpus)
    assert_same(st, want)
    assert len(st) == len(corpus.trials)
    assert st.isna().all(axis=1).any()  # trials without a spike are all-NaN rows
    assert all(type(c) is int for c in st.columns.tolist())


def test_parameterfiles(db, corpus):
    pf = db["parameterfiles"]
    assert_same(pf, ac.expected_parameterfiles(corpus))


def test_dendritic_sub_databases(db, corpus):
    dr = db["dendritic_recordings"]
    assert dr.keys() == tuple(sorted(ac.SITES))
    for site in ac.SITES:
        frame = dr[site]
        assert frame.known_divisions
        assert_same(frame.compute(), ac.expected_dendritic(corpus, site))
    with pytest.raises(KeyError, match="available keys"):
        dr["nope"]
    ds = db["dendritic_spike_times"]
    want = ac.expected_dendritic_spikes(corpus)
    assert ds.keys() == tuple(sorted(want))
    assert f"{ac.SITES[0]}_-30.0" in ds
    for key, frame in want.items():
        assert_same(ds[key], frame)
    assert pickle.loads(pickle.dumps(dr)).keys() == dr.keys()


def test_crash_leftovers_are_hidden(db, corpus):
    assert corpus.leftovers
    hidden = {tr.sti for tr in corpus.leftovers}
    for key in ("voltage_traces", "synapse_activation", "cell_activation"):
        assert not hidden & set(db[key].index.compute())
    for frame in (db["spike_times"], db["parameterfiles"]):
        assert not hidden & set(frame.index)
    assert not hidden & set(db["metadata"]["sim_trial_index"])
    assert not hidden & set(db["dendritic_recordings"][ac.SITES[0]].index.compute())
    # the leftover rows are in the Delta tables, next to completed ones
    raw = DeltaTable(os.path.join(db.basedir, "voltage_traces")).to_pyarrow_table()
    assert hidden <= set(raw.column("sim_trial_index").to_pylist())


def test_column_projection(db, corpus):
    want = ac.expected_voltage(corpus)
    cols = [100.025, 100.5]
    assert_same(db["voltage_traces"][cols].compute(), want[cols])
    sa = db["synapse_activation"]
    assert_same(sa[["synapse_type", "0", "3"]].compute(),
                ac.expected_synapses(corpus)[["synapse_type", "0", "3"]])
    pd.testing.assert_series_equal(sa["synapse_ID"].compute(),
                                   ac.expected_synapses(corpus)["synapse_ID"])


def _file_holding(table_dir: str, sti: str) -> str:
    dt = DeltaTable(table_dir)
    hits = []
    for path in dt.file_uris():
        col = pq.read_table(path, columns=["sim_trial_index"]).column(0).to_pylist()
        if sti in col:
            hits.append(path)
    assert len(hits) == 1
    return hits[0]


@pytest.mark.parametrize("key", ["voltage_traces", "synapse_activation"])
def test_loc_reads_exactly_one_data_file(db, corpus, counting, key):
    frame = db[key]
    want = ac.expected_voltage(corpus) if key == "voltage_traces" else \
        ac.expected_synapses(corpus)
    for tr in (corpus.visible[0], corpus.visible[7], corpus.visible[-1]):
        counting.opened.clear()
        got = frame.loc[tr.sti].compute()
        # the footer (for the row groups holding the key), then the rows: one file
        assert set(counting.opened) == {_file_holding(os.path.join(db.basedir, key), tr.sti)}
        assert_same(got, want.loc[[tr.sti]])


def test_loc_on_dendritic_site_reads_one_file(db, corpus, counting):
    frame = db["dendritic_recordings"][ac.SITES[1]]
    tr = corpus.visible[4]
    counting.opened.clear()
    got = frame.loc[tr.sti].compute()
    assert len(set(counting.opened)) == 1
    assert f"recording_site={ac.SITES[1]}" in counting.opened[0]
    assert_same(got, ac.expected_dendritic(corpus, ac.SITES[1]).loc[[tr.sti]])


# -------------------------------------------------------------------------------------------
# layouts that need a fallback


def test_overlapping_files_are_merged_with_a_warning(corpus, tmp_path, counting):
    root = ac.write_db(corpus, str(tmp_path / "db"), overlap="synapse_activation")
    db = DataBase(root)
    with pytest.warns(LayoutWarning, match="overlap"):
        sa = db["synapse_activation"]
    assert sa.known_divisions
    n_files = len(DeltaTable(os.path.join(root, "synapse_activation")).file_uris())
    assert sa.npartitions == n_files - 1
    assert_same(sa.compute(), ac.expected_synapses(corpus))
    tr = corpus.visible[4]  # held by the second (overlapped) file
    counting.opened.clear()
    assert_same(sa.loc[tr.sti].compute(), ac.expected_synapses(corpus).loc[[tr.sti]])
    assert len(set(counting.opened)) == 2  # the merged partition's two files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db["voltage_traces"]  # no warning for the well laid-out tables


def test_truncated_statistics_fall_back_to_footers_or_a_scan(corpus, tmp_path, counting):
    """delta-rs' default stats (64-byte truncation) without the prefix-length property."""
    root = str(tmp_path / "t")
    long_run = "results/" + "x" * 70 + "/20150810-1530_20240"
    tables = []
    for i in range(3):
        rows = [f"{long_run}{i}/{nr:06d}" for nr in (1, 5)]
        tables.append(pa.table({"sim_trial_index": rows, "sim_run": [r[:-7] for r in rows]}))
    ac.write_table(root, tables, prefix_length=None, writer_properties=None)
    snap = df_.open_table(root)
    lo, hi, _ = snap.files[0].stat("sim_trial_index")
    assert len(lo) < len(f"{long_run}0/000001")  # the log really holds truncated values
    cache = df_.FileInfoCache()
    ranges = df_.file_ranges(snap, snap.files, "sim_trial_index", cache)
    exact = [(t.column(0)[0].as_py(), t.column(0)[1].as_py()) for t in tables]
    assert sorted(ranges) == exact
    counting.opened.clear()
    df_.file_ranges(snap, snap.files, "sim_trial_index", cache)
    assert counting.opened == []  # cached per immutable file


def test_spark_style_truncated_stats(tmp_path):
    """32-character prefixes with a tie-breaker maximum, as delta-spark writes them by
    default: not trusted, exact ranges come from the Parquet footers."""
    root = str(tmp_path / "t")
    run = "results/a_rather_long_study_folder_name/20150810-1530_2024"
    tables = [pa.table({"sim_trial_index": [f"{run}{i}/000001", f"{run}{i}/000002"]})
              for i in range(3)]
    ac.write_table(root, tables, prefix_length=None)
    snap = df_.open_table(root)
    fake = []
    for f in snap.files:
        lo, hi, n = f.stat("sim_trial_index")
        fake.append(df_.DataFile(f.path, f.size, f.num_records, f.partition,
                                 (("sim_trial_index", lo[:32], hi[:32] + "\ufffd", n),)))
    assert not df_.exact_string_stat(fake[0].column_stats[0][1], snap.string_prefix_length)
    ranges = df_.file_ranges(snap, fake, "sim_trial_index", df_.FileInfoCache())
    assert sorted(ranges) == [(t.column(0)[0].as_py(), t.column(0)[1].as_py()) for t in tables]
    plan = df_.plan_partitions(fake, ranges)
    assert plan.merged == 0 and len(plan.partitions) == 3


def test_different_time_axes_are_unioned_and_nan_filled(tmp_path):
    c = ac.make_corpus(odd_axes=True)
    db = DataBase(ac.write_db(c, str(tmp_path / "db")))
    got = db["voltage_traces"].compute()
    want = ac.expected_voltage(c)
    assert_same(got, want)
    assert got.isna().any(axis=None) and len(got.columns) > 40


def test_empty_tables(tmp_path, corpus):
    root = str(tmp_path / "db")
    for key in ("metadata", "voltage_traces", "synapse_activation", "spike_times"):
        from simlake import schemas

        ac.write_table(os.path.join(root, key), [schemas.TABLES[key].empty_table()])
    db = DataBase(root)
    vt = db["voltage_traces"]
    assert isinstance(vt, dd.DataFrame) and len(vt.columns) == 0
    assert vt.compute().shape == (0, 0)
    sa = db["synapse_activation"].compute()
    assert list(sa.columns) == list(ac.expected_synapses(corpus).columns[:6])
    assert sa.empty and sa.index.name == "sim_trial_index"
    assert db["spike_times"].shape == (0, 0)
    assert db["metadata"].empty and db["sim_trial_index"].empty


def test_without_metadata_nothing_is_visible(tmp_path, corpus):
    root = ac.write_db(corpus, str(tmp_path / "db"))
    import shutil

    shutil.rmtree(os.path.join(root, "metadata"))
    db = DataBase(root)
    assert "voltage_traces" not in db and "metadata" not in db


def test_no_pyspark_needed(db):
    code = (
        "import sys; sys.modules['pyspark'] = None\n"
        "import simlake\n"
        f"db = simlake.DataBase({db.basedir!r})\n"
        "vt = db['voltage_traces']\n"
        "print(vt.loc[db['sim_trial_index'][0]].compute().shape)\n"
        "print(db['synapse_activation'].compute().shape)\n"
        "assert not any(m == 'pyspark' or m.startswith('pyspark.') for m in sys.modules\n"
        "               if sys.modules[m] is not None)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "(1, 40)"
    probe = subprocess.run([sys.executable, "-c",
                            "import sys; sys.modules['pyspark'] = None\nimport pyspark"],
                           capture_output=True, text=True, check=False)
    assert probe.returncode != 0  # the trick does make pyspark unimportable


# -------------------------------------------------------------------------------------------
# user keys


def test_user_key_pandas_round_trip(tmp_path):
    db = DataBase(tmp_path)
    frame = pd.DataFrame(
        {"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, np.nan, 2.0],
         "d": pd.Categorical(["u", "v", "u"]), "e": [True, False, True]},
        index=pd.Index(["r1", "r2", "r3"], name="sim_trial_index"),
    )
    db["frame"] = frame
    got = db["frame"]
    pd.testing.assert_frame_equal(got, frame)
    wide = pd.DataFrame(np.arange(6.0).reshape(2, 3), columns=[100.0, 100.025, 100.05],
                        index=pd.Index([5, 7], name="nr"))
    db.set("wide", wide)
    got = db["wide"]
    pd.testing.assert_frame_equal(got, wide)
    assert all(type(c) is float for c in got.columns.tolist())
    mixed = pd.DataFrame({0: [1.0], "0": [2.0], ("a", 1): [3.0]})
    db["mixed"] = mixed
    pd.testing.assert_frame_equal(db["mixed"], mixed)
    s = pd.Series([1.5, 2.5], index=pd.Index(["a", "b"], name="k"), name="vals")
    db["series"] = s
    pd.testing.assert_series_equal(db["series"], s)
    # the table is a real Delta table (readable by Spark SQL / deltalake)
    t = DeltaTable(os.path.join(db.basedir, "frame")).to_pyarrow_table()
    assert set(t.column_names) == {"sim_trial_index", "a", "b", "c", "d", "e"}
    assert set(db.keys()) == {"frame", "wide", "mixed", "series"}
    assert db.metadata["frame"]["format"] == "delta"


def test_user_key_dask_round_trip(tmp_path):
    db = DataBase(tmp_path)
    pdf = pd.DataFrame({"x": np.arange(20.0), "y": [f"s{i}" for i in range(20)]},
                       index=pd.Index([f"k{i:03d}" for i in range(20)], name="idx"))
    ddf = dd.from_pandas(pdf, npartitions=4)
    db["dask_frame"] = ddf
    got = db["dask_frame"]
    assert isinstance(got, dd.DataFrame)
    assert got.npartitions == 4 and got.divisions == ddf.divisions
    stored = ddf.compute()  # dask may have converted the strings: compare with what it holds
    pd.testing.assert_frame_equal(got.compute(), stored)
    pd.testing.assert_frame_equal(got.loc["k007"].compute(), stored.loc[["k007"]])
    unknown = dd.from_pandas(pdf.reset_index(drop=True), npartitions=3, sort=False)
    unknown = unknown.clear_divisions()
    db["unknown"] = unknown
    back = db["unknown"]
    assert back.npartitions == 3 and not back.known_divisions
    pd.testing.assert_frame_equal(back.compute(), unknown.compute())


def test_user_key_arrays_objects_and_deletion(tmp_path):
    db = DataBase(tmp_path)
    arr = np.arange(12, dtype="int32").reshape(3, 4)
    db["arr"] = arr
    got = db["arr"]
    assert got.dtype == arr.dtype and (got == arr).all()
    assert os.path.isfile(os.path.join(db.basedir, "arr", "data.npy"))
    db["cfg"] = {"a": [1, 2.5, "x", None, True], "b": {"c": 1}}
    assert db["cfg"] == {"a": [1, 2.5, "x", None, True], "b": {"c": 1}}
    assert os.path.isfile(os.path.join(db.basedir, "cfg", "data.json"))
    db["tup"] = (1, {2: "x"})  # not JSON-exact: pickled
    assert db["tup"] == (1, {2: "x"})
    assert db.metadata["tup"]["kind"] == "pickle"
    db["cfg"] = np.ones(2)  # replacing changes the type
    assert isinstance(db["cfg"], np.ndarray)
    del db["cfg"]
    assert "cfg" not in db and not os.path.exists(os.path.join(db.basedir, "cfg"))
    with pytest.raises(KeyError, match="available keys"):
        del db["cfg"]
    with pytest.raises(DataBaseException, match="written by the ingest"):
        db["voltage_traces"] = 1
    with pytest.raises(KeyError, match="invalid key"):
        db["../x"] = 1
    assert not [n for n in os.listdir(db.basedir) if n.startswith((".tmp", ".trash"))]


def test_sub_database(tmp_path):
    db = DataBase(tmp_path)
    sub = db.create_sub_db("analysis")
    assert isinstance(sub, DataBase) and sub.basedir == os.path.join(db.basedir, "analysis")
    sub["x"] = [1, 2]
    assert db["analysis"]["x"] == [1, 2]
    assert db.create_sub_db("analysis") == sub  # ISF returns the existing one
    assert "analysis" in db.keys()

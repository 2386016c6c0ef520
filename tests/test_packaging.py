"""simlake installed as users install it: a built wheel in a fresh virtualenv, no checkout.

The reading side (``pip install simlake``) needs no pyspark and no JVM; with the ``spark``
extra the same install ingests a tree. Configuration ships inside the package, and an
operator's folder replaces it file by file."""

from __future__ import annotations

import os
import tomllib

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

import reference as ref
from packaged_env import ROOT, read_with
from simlake import config, synth


def _version() -> str:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)["project"]["version"]


@pytest.mark.spark
def test_reading_side_alone_reads_the_suites_database(wheel_venv, ingested):
    got = wheel_venv.reading_side
    assert not got["pyspark"]  # installed without the spark extra: no pyspark, no JVM
    site = os.path.join(wheel_venv.venv, "lib")
    assert got["simlake_file"].startswith(site), got["simlake_file"]  # not the checkout

    assert set(ref.INGEST_TABLES) - {"parameterfiles"} <= set(got["keys"]), got["keys"]
    stored = DeltaTable(os.path.join(ingested["db"], "voltage_traces")).to_pyarrow_table()
    assert got["trials"] == sorted(stored["sim_trial_index"].to_pylist())
    assert got["vm_sum"] == pytest.approx(pc.sum(pc.list_flatten(stored["vm"])).as_py(),
                                          rel=1e-12)
    # the generator's own count of somatic spikes, independent of the ingest
    assert got["spikes"] == sum(sum(f.soma_spike_counts) for f in ingested["report"].folders)


@pytest.mark.spark
def test_installed_wheel_ingests_and_reads_with_no_checkout(wheel_venv, tmp_path):
    raw, db, elsewhere = tmp_path / "raw", tmp_path / "db", tmp_path / "elsewhere"
    elsewhere.mkdir()
    report = synth.generate_tree(str(raw), runs=3, trials=2, times=200, synapses=20, cells=15,
                                 seed=5)
    version = wheel_venv.run(["simlake", "--version"], cwd=str(elsewhere))
    assert version.stdout.strip() == f"simlake {_version()}"

    out = wheel_venv.run(["simlake", "ingest", str(raw), str(db)], cwd=str(elsewhere),
                         SIMLAKE_CACHE_DIR=str(tmp_path / "cache"))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    expected = sorted(sti for f in report.folders for sti in f.sim_trial_indices())
    assert f"trials ingested: {len(expected)}" in out.stdout

    got = read_with(wheel_venv, str(db), cwd=str(elsewhere))
    assert got["simlake_file"].startswith(os.path.join(wheel_venv.venv, "lib"))
    assert got["trials"] == expected
    assert got["spikes"] == sum(sum(f.soma_spike_counts) for f in report.folders)
    assert not (tmp_path / "cache").exists()  # no JVM class archive written unasked


def test_packaged_configuration_and_operator_folders(tmp_path, monkeypatch):
    monkeypatch.delenv(config.CONF_DIR_ENV, raising=False)
    packaged = config.default_conf_dir()
    assert os.path.dirname(packaged) == os.path.dirname(os.path.abspath(config.__file__))
    assert config.load_ingest_defaults() == config.IngestDefaults()  # file == built-in values

    ops, cli = tmp_path / "ops", tmp_path / "cli"
    ops.mkdir()
    cli.mkdir()
    (ops / "ingest.toml").write_text("[ingest]\ntarget_task_bytes = 1234\n")
    (cli / "ingest.toml").write_text("[ingest]\ntarget_task_bytes = 99\n")
    monkeypatch.setenv(config.CONF_DIR_ENV, str(ops))
    assert config.load_ingest_defaults().target_task_bytes == 1234  # the variable's folder
    assert config.load_ingest_defaults(str(cli)).target_task_bytes == 99  # --conf-dir first
    # a file the operator's folder lacks comes from the package
    assert config.load_spark_profile("local").master == "local[*]"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        config.load_ingest_defaults(str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match="'nosuch' not found"):
        config.load_spark_profile("nosuch")

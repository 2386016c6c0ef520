"""``simlake.isf.init``: ISF's flags onto the ingest; link mode equals the Delta tables."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from simlake import DataBase
from simlake.isf import init

pytestmark = pytest.mark.spark


def _equal(a, b) -> None:
    if hasattr(a, "compute"):
        a = a.compute()
    if hasattr(b, "compute"):
        b = b.compute()
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_link_mode_frames_equal_delta_frames(ingested, tmp_path):
    link_db = tmp_path / "linkdb"
    links = init(str(link_db), ingested["raw"], rewrite_in_optimized_format=False)
    assert {"metadata", "voltage_traces", "synapse_activation", "spike_times"} <= set(links)
    linked, delta = DataBase(str(link_db)), DataBase(ingested["db"])
    assert not any((link_db / key).exists() for key in links)  # nothing written but the manifest
    assert linked["filelist"] == delta["filelist"]
    for key in ("voltage_traces", "synapse_activation", "cell_activation", "spike_times"):
        _equal(linked[key], delta[key])
    pd.testing.assert_index_equal(linked["sim_trial_index"], delta["sim_trial_index"])
    site = delta["dendritic_recordings"].keys()[0]
    _equal(linked["dendritic_recordings"][site], delta["dendritic_recordings"][site])


def test_link_mode_needs_no_jvm(ingested, tmp_path):
    code = (
        "import sys; sys.modules['pyspark'] = None\n"
        "from simlake.isf import init\nfrom simlake import DataBase\n"
        f"init({str(tmp_path / 'db')!r}, {ingested['raw']!r}, rewrite_in_optimized_format=False)\n"
        f"print(DataBase({str(tmp_path / 'db')!r})['voltage_traces'].compute().shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    n_trials = ingested["report"].n_trials
    assert out.stdout.strip().startswith(f"({n_trials}, ")


def test_init_ingests_with_isf_flags(spark, ingested, tmp_path):
    db = tmp_path / "db"
    summary = init(
        str(db),
        ingested["raw"],
        synapse_activation=False,
        dendritic_voltage_traces=False,
        dendritic_spike_times=False,
        parameterfiles=False,
        spark=spark,
    )
    assert summary.trials == ingested["report"].n_trials
    got = DataBase(str(db))
    assert "voltage_traces" in got.keys() and "spike_times" in got.keys()
    assert "synapse_activation" not in got.keys() and "dendritic_recordings" not in got.keys()
    np.testing.assert_array_equal(
        got["spike_times"].to_numpy(), DataBase(ingested["db"])["spike_times"].to_numpy()
    )

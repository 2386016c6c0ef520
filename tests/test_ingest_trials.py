"""Trials of a folder are those its voltage traces hold: activation files are decoded in the
same Spark job as the traces, expecting their trials there; where the traces lack one, the
folders concerned are decoded again, and the tables equal an ingest that knew it from the
start (the plain reference reading without the file)."""

from __future__ import annotations

import glob
import logging
import os

import numpy as np
import pytest
from deltalake import DeltaTable

import ingest_compare as cmp
from simlake import schemas, synth
from simlake.ingest_options import IngestOptions
from simlake.spark.ingest import ingest

pytestmark = pytest.mark.spark

TREE = {"runs": 6, "trials": 3, "times": 120, "synapses": 20, "cells": 15}


def test_activation_files_of_trials_missing_from_the_traces(spark, tmp_path, caplog):
    report = synth.generate_tree(tmp_path / "raw", seed=9, **TREE)
    expected = cmp.expected_tables(report.root)
    folder = next(f for f in report.folders if f.voltage_format == "npz")
    path = os.path.join(report.root, folder.sim_run)
    # the traces lose their last trial (npz: trials 0..n-1); its activation files stay
    npz = os.path.join(path, folder.voltage_file)
    with np.load(npz) as archive:
        traces = archive["arr_0"]
    np.savez(npz, traces[:, :-1])
    lost = folder.trial_numbers[-1]
    lost_files = [os.path.join(path, f"simulation_run{lost:0{folder.padding}d}_{kind}.csv")
                  for kind in ("synapses", "presynaptic_cells")]
    assert all(os.path.exists(p) for p in lost_files)
    sti = schemas.sim_trial_index(folder.sim_run, lost)
    for key, frame in expected.items():  # dendritic recordings keep their own columns
        if key not in ("dendritic_recordings", "dendritic_spike_times"):
            expected[key] = frame[frame["sim_trial_index"] != sti].reset_index(drop=True)

    db = str(tmp_path / "db")
    with caplog.at_level(logging.INFO, logger="simlake.spark.decode"):
        summary = ingest(spark, IngestOptions(report.root, db))

    assert any("decoding" in r.message and "again" in r.message for r in caplog.records)
    assert summary.folders_failed == []
    assert sorted((r.path, r.reason) for r in summary.rejections) == sorted(
        (p, f"no voltage trace for trial {lost}") for p in lost_files)
    cmp.assert_matches_reference(db, expected)
    for key in cmp.KEYS:  # the first decoding's files are gone, not just uncommitted
        root = os.path.join(db, key)
        on_disk = {os.path.relpath(p, root)
                   for p in glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True)}
        live = DeltaTable(root).get_add_actions(flatten=True).column("path").to_pylist()
        assert on_disk == set(live), key

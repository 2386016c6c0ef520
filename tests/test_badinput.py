"""Bad input: the damaged corpus of ``simlake.badinput`` through the real ingest.

Every good trial lands (compared with the plain reference reading of an undamaged twin tree,
minus exactly what each damage destroys), every damaged file is in ``ingest_errors`` and in the
summary with its reason, the job exits 0; with ``--strict`` the damaged folders get nothing in
any table and the job exits non-zero; code in a param file is never executed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd
import pytest

import ingest_compare as cmp
from simlake import badinput, synth
from simlake.ingest_options import IngestOptions
from simlake.spark import job
from simlake.spark.ingest import ingest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 4
TREE = {"trials": 3, "times": 120, "synapses": 20, "cells": 15}

#: What each kind of damage destroys (decided here, from the format spec, not by the product).
FOLDER_LOST = {"header_only", "truncated_mid_line", "non_numeric_voltage", "row_too_few_columns",
               "fewer_voltage_columns", "corrupt_npz"}
SYNAPSE_FILE_LOST = {"empty_file", "truncated_mid_number", "synapse_missing_field", "binary_csv",
                     "unreadable", "duplicate_trial"}
CELL_FILE_LOST = {"non_integer_id", "non_utf8"}
SITE_LOST = {"nan_inf", "row_too_many_columns"}
NOTHING_LOST = {"param_not_literal", "param_code", "param_missing_reference", "symlink_loop"}


# --------------------------------------------------------------------------- no JVM


def test_corpus_kinds_and_determinism(tmp_path):
    a = badinput.make_bad_corpus(tmp_path / "a", seed=SEED)
    b = badinput.make_bad_corpus(tmp_path / "b", seed=SEED)
    assert [d.kind for d in a] == list(badinput.KINDS) and len(a) >= 15
    assert FOLDER_LOST | SYNAPSE_FILE_LOST | CELL_FILE_LOST | SITE_LOST | NOTHING_LOST == set(
        badinput.KINDS)
    assert [(d.path, d.kind) for d in a] == [(d.path, d.kind) for d in b]
    folders = [badinput.sim_run_of(d) for d in a if d.kind != "symlink_loop"]
    assert len(set(folders)) == len(folders) and None not in folders  # one folder per damage
    for d in a:
        path = os.path.join(tmp_path / "a", d.path)
        assert os.path.lexists(path), d
        if os.path.isfile(path) and os.access(path, os.R_OK) and d.kind != "unreadable":
            with open(path, "rb") as fa, open(os.path.join(tmp_path / "b", d.path), "rb") as fb:
                if not d.kind.startswith("param"):  # param files hold absolute paths
                    assert fa.read() == fb.read(), d


def test_badcorpus_command(tmp_path):
    from simlake.cli import main

    assert main(["badcorpus", str(tmp_path / "c"), "--seed", "1"]) == 0
    assert os.path.islink(tmp_path / "c" / "results" / "loop")
    assert main(["badcorpus", str(tmp_path / "c")]) == 2  # not empty: refused


# --------------------------------------------------------------------------- the ingest


def _trialnr(path: str) -> int:
    return int(re.search(r"simulation_run([0-9]+)_", os.path.basename(path)).group(1))


def _site(path: str, rep: synth.FolderReport) -> str:
    return os.path.basename(path)[len(rep.dendritic_prefix):-len("_vm_dend_traces.csv")]


def _expected(pristine: synth.SynthReport, damages) -> dict[str, pd.DataFrame]:
    """Reference tables of the undamaged twin, minus what each damage destroys."""
    expected = cmp.expected_tables(pristine.root)
    reps = {r.sim_run: r for r in pristine.folders}

    def drop(keys, mask_of) -> None:
        for key in keys:
            frame = expected[key]
            expected[key] = frame[~mask_of(frame)].reset_index(drop=True)

    for d in damages:
        sim_run = badinput.sim_run_of(d)
        if d.kind in FOLDER_LOST:
            drop(expected, lambda f, s=sim_run: f["sim_run"] == s)
        elif d.kind in SYNAPSE_FILE_LOST | CELL_FILE_LOST:
            key = "synapse_activation" if d.kind in SYNAPSE_FILE_LOST else "cell_activation"
            nr = _trialnr(d.path)
            drop([key], lambda f, s=sim_run, n=nr: (f["sim_run"] == s) & (f["trialnr"] == n))
        elif d.kind in SITE_LOST:
            site = _site(d.path, reps[sim_run])
            drop(["dendritic_recordings", "dendritic_spike_times"],
                 lambda f, s=sim_run, x=site: (f["sim_run"] == s) & (f["recording_site"] == x))
    return expected


@pytest.fixture(scope="module")
def corpus(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    raw, db, cli_db = str(base / "raw"), str(base / "db"), str(base / "cli_db")
    damages = badinput.make_bad_corpus(raw, seed=SEED, **TREE)
    pristine = synth.generate_tree(base / "pristine", runs=badinput.RUNS, seed=SEED, **TREE)
    # the command-line job, non-strict, runs meanwhile in its own process
    cli = subprocess.Popen([sys.executable, "-m", "simlake.cli", "ingest", raw, cli_db,
                            "--profile", "test"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        strict_opts = IngestOptions(raw, db, strict=True)
        strict = ingest(spark, strict_opts)
        strict_tables = {k: cmp.table_frame(db, k) for k in cmp.KEYS}
        relaxed = ingest(spark, IngestOptions(raw, db))
        before = cmp.versions(db)
        again = ingest(spark, IngestOptions(raw, db))
        after = cmp.versions(db)
        out, err = cli.communicate(timeout=1800)
    finally:
        if cli.poll() is None:
            cli.kill()
    return {"raw": raw, "db": db, "cli_db": cli_db, "damages": damages, "pristine": pristine,
            "strict": strict, "strict_code": job.exit_code(strict_opts, strict),
            "strict_tables": strict_tables, "relaxed": relaxed, "again": again,
            "before": before, "after": after, "cli": (cli.returncode, out, err)}


def _errors(db: str) -> pd.DataFrame:
    from deltalake import DeltaTable

    return DeltaTable(os.path.join(db, "ingest_errors")).to_pyarrow_table().to_pandas()


def _summary_has(text: str, path: str, fragment: str) -> bool:
    return any(line.strip().startswith(f"{path}: [") and fragment in line
               for line in text.splitlines())


@pytest.mark.spark
def test_strict_run_writes_nothing_for_damaged_folders(corpus):
    s, raw = corpus["strict"], corpus["raw"]
    assert corpus["strict_code"] == job.EXIT_REJECTED
    damaged = {badinput.sim_run_of(d) for d in corpus["damages"]} - {None}
    assert set(s.folders_failed) == damaged
    clean = {r.sim_run for r in corpus["pristine"].folders} - damaged
    assert len(clean) == 2
    for key, frame in corpus["strict_tables"].items():  # not a row, visible or not
        assert set(frame["sim_run"]) == clean, key
    expected = cmp.expected_tables(corpus["pristine"].root, clean)
    for key, exp in expected.items():
        got = corpus["strict_tables"][key]
        cmp.assert_frames_equal(cmp.canonical(got[list(exp.columns)]), exp, key)
    text = str(s)
    for d in corpus["damages"]:
        assert _summary_has(text, os.path.join(raw, d.path), d.reason), d
    # the damaged folders' param files were checked, not stored
    stored = set(os.listdir(os.path.join(corpus["db"], "parameterfiles_network_folder")))
    assert stored == set(corpus["strict_tables"]["parameterfiles"]["hash_network"])


@pytest.mark.spark
def test_every_good_trial_lands(corpus):
    cmp.assert_matches_reference(corpus["db"], _expected(corpus["pristine"], corpus["damages"]))
    s = corpus["relaxed"]
    assert set(s.folders_failed) == {badinput.sim_run_of(d) for d in corpus["damages"]
                                     if d.kind in FOLDER_LOST}
    # strict failures are retried by a non-strict run: every damaged folder was read again
    assert set(s.folders_new) == set(corpus["strict"].folders_failed)


@pytest.mark.spark
def test_every_damaged_file_is_logged_and_summarised(corpus):
    raw, s = corpus["raw"], corpus["relaxed"]
    errors = _errors(corpus["db"])
    mine = errors[errors["run_id"] == s.run_id]
    assert mine["time"].notna().all()
    text = str(s)
    for d in corpus["damages"]:
        path = os.path.join(raw, d.path)
        rows = mine[mine["path"] == path]
        assert len(rows), f"{d.kind}: {path} not in ingest_errors"
        assert any(d.reason in r for r in rows["reason"]), (d, rows["reason"].tolist())
        assert set(rows["sim_run"].map(lambda v: v if isinstance(v, str) else None)) == {
            badinput.sim_run_of(d)}
        assert _summary_has(text, path, d.reason), d


@pytest.mark.spark
def test_param_code_never_executed_and_bad_params_reported(corpus):
    assert not os.path.exists(os.path.join(corpus["raw"], badinput.MARKER))
    params = cmp.table_frame(corpus["db"], "parameterfiles")
    by_kind = {d.kind: badinput.sim_run_of(d) for d in corpus["damages"]}
    def missing(sim_run: str, column: str) -> list[bool]:
        return params.loc[params["sim_run"] == sim_run, column].isna().tolist()

    assert missing(by_kind["param_not_literal"], "hash_neuron") == [True] * 3
    assert missing(by_kind["param_not_literal"], "hash_network") == [False] * 3
    assert missing(by_kind["param_code"], "hash_network") == [True] * 3
    assert missing(by_kind["param_missing_reference"], "hash_neuron") == [False] * 3
    assert params["hash_neuron"].isna().sum() == 3 and params["hash_network"].isna().sum() == 3


@pytest.mark.spark
def test_rerun_skips_unchanged_failed_folders_and_writes_nothing(corpus):
    s = corpus["again"]
    assert s.nothing_new and corpus["after"] == corpus["before"]
    assert set(s.folders_failed_before) == set(corpus["relaxed"].folders_failed)


@pytest.mark.spark
def test_command_line_job_on_the_corpus(corpus):
    code, out, err = corpus["cli"]
    assert code == job.EXIT_REJECTED, err[-3000:]  # rejected files: exit 2, also not strict
    assert err == "", err[-3000:]  # the chatter is in the log file
    for d in corpus["damages"]:  # the printed summary names every damaged file and its reason
        assert _summary_has(out, os.path.join(corpus["raw"], d.path), d.reason), d
    cmp.assert_same_tables(corpus["cli_db"], corpus["db"])

"""A tiny run of the benchmark command: it must run end to end and print its table."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.spark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ingest_benchmark_smoke(tmp_path):
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "ingest_bench.py"),
            "--smoke",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| trials | raw MB")
    row = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert int(row[0]) == 12  # 6 folders x 2 trials
    assert float(row[3].split()[0]) > 0  # ingest wall seconds
    assert float(row[11]) > 0  # loc latency measured


def test_real_bench_smoke(tmp_path):
    """Issue-18 commands (d), (c) and (e) on a tiny real-shaped tree: they run and print
    verdicts (figures for (e)).

    (a) and (b) share their code paths (tree, ingest, pools) with ``ingest_bench.py``'s smoke
    run above and with (d)'s database build.
    """
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    lines, nightly = [], []
    for command in (["rerun", "--repeat-rerun", "1"], ["loc", "--repeat", "1"], ["nightly"]):
        out = subprocess.run(
            [sys.executable, os.path.join(ROOT, "benchmarks", "real_bench.py"), *command,
             "--workdir", str(tmp_path), "--trials", "3"],
            capture_output=True, text=True, env=env, timeout=900,
        )
        assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
        lines += [line for line in out.stdout.splitlines() if "target " in line]
        nightly += [line for line in out.stdout.splitlines() if line.startswith("(e)")]
    assert [line[:3] for line in lines] == ["(d)", *["(c)"] * 4]
    assert all(": met" in line or ": NOT met" in line for line in lines)
    assert "ingesting 3 trials" not in out.stdout  # (c) and (e) reused the database (d) built
    assert len(nightly) == 1 and " s wall" in nightly[0]
    from simlake import DataBase  # the kept database did not get the new folder

    assert len(DataBase(str(tmp_path / "db_study_3"))["sim_trial_index"]) == 3


def test_real_bench_copies_smoke(tmp_path):
    """(r) on copies of one sim-run folder (a generated old-era one stands in for a real one):
    the copies are distinct folders the ingest takes, and the figures are printed."""
    from simlake import synth
    from simlake.discovery import discover

    synth.generate_tree(tmp_path / "gen", runs=1, trials=2, times=50, profile="real")
    source = discover(str(tmp_path / "gen")).folders[0]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "real_bench.py"), "copies",
         "--source", source.abspath, "--folders", "3", "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    assert "(r) 3 copies of" in out.stdout and "(6 trials," in out.stdout
    assert any(line.startswith("(r) of parse ceiling") for line in out.stdout.splitlines())
    copies = discover(str(tmp_path / "work" / f"copies_3_{os.path.basename(source.abspath)}"))
    assert len({f.sim_run for f in copies.folders}) == 3
    for folder in copies.folders:  # each copy's id-prefixed files carry its own id
        assert folder.voltage_file.startswith(folder.abspath.rsplit("_", 1)[1] + "_")

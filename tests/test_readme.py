"""Every snippet of the README runs as written.

Python blocks and the ``simlake.isf.init`` call of the prose run against the demo database the
README's main command builds (the same generated tree, ingested by the shared session); the
``$ simlake sql`` examples must print exactly the output shown. Shell blocks that install,
submit to a cluster or run the suite are run by the tests named in ``SHELL_COVERED_BY``."""

from __future__ import annotations

import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)

#: First words of a shell command in the README -> the test that runs it as written.
SHELL_COVERED_BY = {
    "./.ci/venv-run simlake ingest": "test_readme.py::test_python_snippets (demo tree, same job)",
    "./.ci/venv-run pytest": ".ci/run (CI)",
    "pip install simlake": "test_packaging.py::test_reading_side_alone_reads_the_suites_database",
    'pip install "simlake[spark]"': "test_packaging.py::test_installed_wheel_ingests_and_reads",
    "simlake --version": "test_packaging.py::test_installed_wheel_ingests_and_reads",
    "venv-pack": "test_cluster.py (packaged_env.WheelVenv.pack)",
    "spark-submit": "test_cluster.py::test_spark_submit_with_shipped_environment_equals_local",
}


def blocks() -> list[tuple[str, str]]:
    with open(README, encoding="utf-8") as fh:
        return FENCE.findall(fh.read())


def shell_commands(code: str) -> list[str]:
    """The commands of a shell block (comments dropped, continuation lines joined)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line.split(" #")[0].strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def sql_examples() -> list[tuple[str, str]]:
    """(command, expected output) of every ``$ simlake sql`` line in the plain blocks."""
    out = []
    for lang, code in blocks():
        if lang:
            continue
        for chunk in re.split(r"^\$ ", code, flags=re.M)[1:]:
            command, _, shown = chunk.partition("\n")
            out.append((command, shown.strip("\n")))
    return out


def test_every_snippet_is_covered():
    kinds = {lang for lang, _ in blocks()}
    assert kinds <= {"", "bash", "python"}, kinds
    for lang, code in blocks():
        if lang == "bash":
            for command in shell_commands(code):
                assert any(command.startswith(k) for k in SHELL_COVERED_BY), command
    assert len(sql_examples()) >= 1


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory):
    """The folder ``simlake ingest`` (no arguments) leaves: the same tree, the same job."""
    from simlake import synth
    from simlake.ingest_options import IngestOptions
    from simlake.spark.ingest import ingest
    from simlake.spark.job import DEMO_DIR

    cwd = tmp_path_factory.mktemp("readme")
    raw, db = cwd / DEMO_DIR / "raw", cwd / DEMO_DIR / "db"
    synth.generate_tree(str(raw), runs=12, trials=25, seed=0)
    ingest(spark, IngestOptions(str(raw), str(db)))
    return cwd


@pytest.mark.spark
def test_python_snippets(demo, monkeypatch):
    monkeypatch.chdir(demo)
    python = [code for lang, code in blocks() if lang == "python"]
    assert python
    for code in python:
        exec(compile(code, README, "exec"), {})


@pytest.mark.spark
def test_isf_init_as_the_readme_calls_it(demo, monkeypatch):
    monkeypatch.chdir(demo)
    import simlake

    simlake.isf.init("linked-db", "simlake-demo/raw", rewrite_in_optimized_format=False)
    db = simlake.DataBase("linked-db")
    assert len(db["sim_trial_index"]) == 12 * 25


@pytest.mark.spark
@pytest.mark.parametrize("command,shown", sql_examples(), ids=lambda x: x[:40])
def test_sql_examples_print_what_the_readme_shows(demo, spark, monkeypatch, capsys, command,
                                                   shown):
    from pyspark.sql import SparkSession

    from simlake.spark.sql_job import sql_main

    monkeypatch.chdir(demo)
    # the suite's one session serves the command (it would stop its own session at the end)
    monkeypatch.setattr(SparkSession, "stop", lambda self: None)
    words = shlex.split(command)
    assert words[:2] == ["simlake", "sql"]
    capsys.readouterr()
    assert sql_main(words[2:]) == 0
    printed = capsys.readouterr().out.strip("\n")
    assert printed == shown

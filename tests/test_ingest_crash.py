"""Crash safety and concurrency of the ingest, with real processes.

- Kills: real `simlake ingest` processes (own local Spark from conf/test.toml) are stopped at
  named steps by the documented test hook (`--pause-after STEP[:BATCH] --pause-file F`: the
  driver creates F and waits) and their whole process group (driver, JVM, Python workers) is
  SIGKILLed there. Between kill and rerun, the reader-visible view must show no half-written
  folder; after a rerun every table must hold exactly the rows of a clean ingest.
- Concurrency: two ingest subprocesses into one database started together; two ingests
  interleaved (one held between two commits while the other ingests the whole tree); a
  deterministic Delta write conflict (a write held between its snapshot and its commit while
  another commits) that must be retried, or reported in one line once the retries run out.

The tree is small (4 folders x 3 trials); runs that must stop between batches cut it into 2
commit batches. All subprocesses start together; reruns, the clean reference ingest and the
interleaved ingests use the session's Spark.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

import ingest_compare as cmp
from simlake import synth
from simlake.discovery import discover
from simlake.ingest_options import IngestOptions
from simlake.spark import tables
from simlake.spark.ingest import ingest

pytestmark = pytest.mark.spark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Generous bound on waiting for a subprocess to reach its pause point (a hang guard, not a
#: timing assertion: machines under load take minutes).
WAIT_LIMIT = 1200.0


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("crash")
    raw = str(base / "raw")
    synth.generate_tree(raw, runs=4, trials=3, times=400, synapses=40, cells=30, seed=21)
    folders = discover(raw).folders
    # two commit batches: folders 0-1, then 2-3
    batch_bytes = max(folders[0].total_bytes + folders[1].total_bytes,
                      folders[2].total_bytes + folders[3].total_bytes)
    return {"base": base, "raw": raw, "batch_bytes": batch_bytes,
            "batches": [[f.sim_run for f in folders[:2]], [f.sim_run for f in folders[2:]]]}


class Ingest:
    """One `simlake ingest` process in its own process group (session)."""

    def __init__(self, raw: str, db: str, batch_bytes: int | None, workdir: str, name: str,
                 pause_after: str | None = None) -> None:
        self.name = name
        self.pause_file = os.path.join(workdir, f"{name}.paused")
        self.out = open(os.path.join(workdir, f"{name}.out"), "w+")  # noqa: SIM115
        self.err = open(os.path.join(workdir, f"{name}.err"), "w+")  # noqa: SIM115
        cmd = [sys.executable, "-m", "simlake.cli", "ingest", raw, db, "--profile", "test"]
        if batch_bytes:
            cmd += ["--batch-gb", repr((batch_bytes + 0.5) / 2**30)]
        if pause_after:
            cmd += ["--pause-after", pause_after, "--pause-file", self.pause_file]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.out, stderr=self.err,
                                     start_new_session=True)

    def wait_paused(self) -> None:
        deadline = time.monotonic() + WAIT_LIMIT
        while not os.path.exists(self.pause_file):
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before its "
                                     f"pause point:\n{self.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: pause point not reached")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the whole process group; wait until none of its processes is left."""
        group = os.getpgid(self.proc.pid)
        members = [p for p in psutil.process_iter(["pid", "name"]) if _pgid(p.pid) == group]
        assert any((p.info["name"] or "").startswith("java") for p in members), "no JVM"
        os.killpg(group, signal.SIGKILL)
        self.proc.wait()
        psutil.wait_procs(members, timeout=60)
        assert not [p for p in members if p.is_running() and p.status() != "zombie"]

    def release(self) -> None:
        os.unlink(self.pause_file)

    def finish(self) -> int:
        return self.proc.wait(timeout=WAIT_LIMIT)

    def stdout(self) -> str:
        self.out.seek(0)
        return self.out.read()

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


#: (name, pause step, batches committed when the process is killed). The last one runs with
#: two commit batches: batch 1 committed, batch 2 written but for its completion record.
KILL_POINTS = [
    ("after_first_commit", "voltage_traces", 0),
    ("mid_batch", "dendritic_recordings", 0),
    # the smallest table's commit thread is held while the other tables' commits, started
    # side by side with it, are still running: the kill lands inside the parallel commits
    ("during_parallel_commits", "cell_activation", 0),
    ("before_metadata_of_batch_2", "pre-metadata:2", 1),
]


@pytest.fixture(scope="module")
def runs(spark, tree, tmp_path_factory):
    """Every subprocess of the module, started together so that their start-up overlaps:

    - three ingests killed at three points;
    - ingests P and Q into one database at the same time;

    and meanwhile, in this process: the reference (one uninterrupted ingest of the tree), and
    two interleaved ingests (A held after its first commit in a thread while B runs to the end
    into the same database, then released).
    """
    work = str(tmp_path_factory.mktemp("procs"))
    raw, two_batches = tree["raw"], tree["batch_bytes"]
    db = {name: os.path.join(work, name) for name in
          [k[0] for k in KILL_POINTS] + ["interleaved", "simultaneous"]}
    procs = {name: Ingest(raw, db[name], two_batches if step.endswith(":2") else None, work,
                          name, pause_after=step)
             for name, step, _ in KILL_POINTS}
    procs["p"] = Ingest(raw, db["simultaneous"], None, work, "p")
    procs["q"] = Ingest(raw, db["simultaneous"], None, work, "q")
    out: dict = {"db": db, "procs": procs}
    try:
        out["clean"] = str(tree["base"] / "clean")
        summary = ingest(spark, IngestOptions(raw, out["clean"]))
        assert summary.rejections == [] and summary.trials == 12
        for name, _, _ in KILL_POINTS:
            procs[name].wait_paused()
            procs[name].kill()
        out["a"], out["b"] = _interleaved(spark, raw, db["interleaved"], two_batches, work)
        out["codes"] = {name: procs[name].finish() for name in ("p", "q")}
    finally:
        for proc in procs.values():
            if proc.proc.poll() is None:
                os.killpg(os.getpgid(proc.proc.pid), signal.SIGKILL)
    return out


@pytest.mark.parametrize("name,step,batches_done", KILL_POINTS)
def test_killed_ingest_rerun_equals_clean_ingest(spark, tree, runs, name, step, batches_done):
    db, clean = runs["db"][name], runs["clean"]
    table = step.split(":")[0]
    if table in cmp.KEYS:  # the table committed right before the kill holds the batch's rows
        assert cmp.has_table(db, table)
    # between the kill and the rerun: readers see whole folders or nothing
    done = cmp.assert_visible_is_complete(db, clean)
    assert done == {s for b in tree["batches"][:batches_done] for s in b}
    if step.startswith("pre-metadata"):  # batch 2's rows are all there, just not visible
        assert set(cmp.table_frame(db, "voltage_traces")["sim_run"]) == set(
            tree["batches"][0] + tree["batches"][1])

    summary = ingest(spark, IngestOptions(tree["raw"], db))
    expected_new = [s for b in tree["batches"][batches_done:] for s in b]
    assert summary.folders_new == expected_new
    assert summary.rejections == []
    cmp.assert_same_tables(db, clean)
    assert cmp.error_set(db) == set() and not cmp.has_table(db, "ingest_failed_folders")


def test_clean_reference_equals_plain_reading(tree, runs):
    """The reference ingest itself is checked against the independent reading."""
    cmp.assert_matches_reference(runs["clean"], cmp.expected_tables(tree["raw"]))


class HoldFirstCommit:
    """A checkpoint holding the thread that committed ``voltage_traces`` until another
    table's commit is reached: with commits one after another this never happens."""

    def __init__(self) -> None:
        self.other_commit = threading.Event()
        self.held_until_other: bool | None = None
        self.threads: dict[str, str] = {}

    def reached(self, step: str, batch: int) -> None:
        self.threads[step] = threading.current_thread().name
        if step == "voltage_traces":
            self.held_until_other = self.other_commit.wait(WAIT_LIMIT)
        elif step in cmp.KEYS:
            self.other_commit.set()


def test_checkpoint_holds_one_commit_while_the_others_run(spark, tree, runs, tmp_path):
    """The injected checkpoint is told each table's commit from the thread that made it;
    holding one leaves the others running, and the result equals a clean ingest."""
    hold = HoldFirstCommit()
    db = str(tmp_path / "db")
    summary = ingest(spark, IngestOptions(tree["raw"], db), checkpoint=hold)
    assert hold.held_until_other is True
    assert hold.threads["voltage_traces"] != hold.threads["cell_activation"]
    assert hold.threads["voltage_traces"].startswith("simlake-commit")
    assert hold.threads["metadata"] == threading.current_thread().name  # last, alone
    assert summary.trials == 12
    cmp.assert_same_tables(db, runs["clean"])


# --------------------------------------------------------------------------- concurrency


def _interleaved(spark, raw: str, db: str, batch_bytes: int, work: str):
    """Ingest A (a thread) held after its first commit while ingest B runs to the end."""
    pause = os.path.join(work, "a.paused")
    result: dict = {}

    def run_a() -> None:
        try:
            result["a"] = ingest(spark, IngestOptions(raw, db, batch_bytes=batch_bytes,
                                                      pause_after="voltage_traces:1",
                                                      pause_file=pause))
        except Exception as exc:  # handed to the test thread
            result["a"] = exc

    thread = threading.Thread(target=run_a)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_LIMIT
        while not os.path.exists(pause):
            assert thread.is_alive() and time.monotonic() < deadline, result
            time.sleep(0.1)
        b = ingest(spark, IngestOptions(raw, db, batch_bytes=batch_bytes))
    finally:
        if os.path.exists(pause):
            os.unlink(pause)
        thread.join()
    return result["a"], b


def test_interleaved_ingests_both_finish_correctly(tree, runs):
    """A is held between two commits of its first batch while B ingests everything; then A
    goes on: it replaces its batch (same data), skips what B committed, and both end well."""
    a, b = runs["a"], runs["b"]
    assert not isinstance(a, Exception), a
    assert b.folders_new == tree["batches"][0] + tree["batches"][1]
    assert a.folders_new == b.folders_new  # both planned everything
    assert a.folders_done_concurrently == tree["batches"][1]  # B committed batch 2 meanwhile
    assert "committed meanwhile by another run" in str(a)
    cmp.assert_same_tables(runs["db"]["interleaved"], runs["clean"])


def test_simultaneous_ingests_finish_or_loser_reruns(spark, tree, runs):
    db = runs["db"]["simultaneous"]
    for name in ("p", "q"):
        code, proc = runs["codes"][name], runs["procs"][name]
        assert code in (0, 3), proc.stderr()[-3000:]
        if code == 3:  # the loser says what happened in one line, and a rerun completes
            assert "rerun the ingest to complete it" in proc.stderr().splitlines()[-1]
    if 3 in runs["codes"].values():
        ingest(spark, IngestOptions(tree["raw"], db))
    cmp.assert_same_tables(db, runs["clean"])


def _param_rows(spark, sim_run: str, tag: str):
    from pyspark.sql.pandas.types import from_arrow_schema

    from simlake import schemas

    rows = [(f"{sim_run}/{i:06d}", sim_run, f"/n/{tag}", f"/w/{tag}", tag, tag) for i in range(3)]
    return spark.createDataFrame(rows, from_arrow_schema(schemas.PARAMETERFILES))


def _held(df, started: str, release: str):
    """``df`` whose (single) write task signals ``started`` and waits for ``release``: the
    write's Delta transaction has read its snapshot and is held before its commit."""
    def gate(batches):
        import os as _os
        import time as _time

        open(started, "w").close()
        while not _os.path.exists(release):
            _time.sleep(0.05)
        yield from batches

    return df.coalesce(1).mapInArrow(gate, df.schema)


def _conflicting_writes(spark, tmp_path, attempts: int):
    db = str(tmp_path / "db")
    tables.replace_rows(_param_rows(spark, "a", "old"), db, "parameterfiles", ["a"])
    tables.replace_rows(_param_rows(spark, "b", "keep"), db, "parameterfiles", ["b"])
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    held = _held(_param_rows(spark, "a", "held"), started, release)
    path = os.path.join(db, "parameterfiles")
    outcome: dict = {}

    def first() -> None:
        def write() -> None:
            (held.write.format("delta").mode("overwrite")
             .option("replaceWhere", tables.replace_predicate(["a"])).save(path))
        try:
            tables.with_conflict_retry(write, "write parameterfiles", attempts=attempts)
        except Exception as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_LIMIT
        while not os.path.exists(started) and thread.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # the second writer commits while the first is held between snapshot and commit
        tables.replace_rows(_param_rows(spark, "a", "second"), db, "parameterfiles", ["a"])
    finally:
        open(release, "w").close()
        thread.join()
    return db, outcome


def test_delta_conflict_is_retried(spark, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="simlake.spark.tables")
    db, outcome = _conflicting_writes(spark, tmp_path, attempts=6)
    assert "error" not in outcome, outcome
    assert any("concurrent Delta commit" in r.getMessage() for r in caplog.records)
    rows = cmp.table_frame(db, "parameterfiles")
    # the retried write committed last: its rows for 'a', nothing duplicated, 'b' untouched
    assert sorted(zip(rows["sim_run"], rows["hash_neuron"], strict=True)) == \
        [("a", "held")] * 3 + [("b", "keep")] * 3


def test_delta_conflict_after_last_attempt_is_one_clear_line(spark, tmp_path):
    db, outcome = _conflicting_writes(spark, tmp_path, attempts=1)
    error = outcome.get("error")
    assert isinstance(error, tables.ConcurrentIngestError), outcome
    text = str(error)
    assert "\n" not in text and text.startswith("write parameterfiles: concurrent Delta commits")
    assert text.endswith("rerun the ingest to complete it")
    rows = cmp.table_frame(db, "parameterfiles")
    assert sorted(zip(rows["sim_run"], rows["hash_neuron"], strict=True)) == \
        [("a", "second")] * 3 + [("b", "keep")] * 3


def test_concurrent_table_creation(spark, tmp_path):
    """Writers creating the same table at once: all land, no duplicate rows."""
    db = str(tmp_path / "db")
    frames = {s: _param_rows(spark, s, s) for s in ("x", "y", "z")}
    errors: list = []

    def write(sim_run: str) -> None:
        try:
            tables.replace_rows(frames[sim_run], db, "parameterfiles", [sim_run])
        except Exception as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s,)) for s in frames]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = cmp.table_frame(db, "parameterfiles")
    assert sorted(rows["sim_run"]) == ["x"] * 3 + ["y"] * 3 + ["z"] * 3

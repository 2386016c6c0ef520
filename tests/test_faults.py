"""Faults of an ingest, each made for real: one line on the console naming the cause and the
resource, a documented non-zero exit code, the detail in the log file the line names, nothing
committed lost, and the next run recovers.

Faults detected before Spark starts (bad arguments, unsupported URIs, a database path that is a
file, a database written by a newer simlake, a read-only database, a missing or unreadable raw
tree, a broken Java) run ``simlake ingest`` in-process or as a short subprocess that starts no
JVM. The full disk (a real tmpfs) and unobtainable Delta jars (an empty Ivy cache and an
unreachable repository) need a Spark subprocess each; the reruns use the shared session.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import ingest_compare as cmp
from simlake import schemas, synth
from simlake.datafiles import write_table_files
from simlake.discovery import discover
from simlake.faults import describe
from simlake.ingest_options import IngestOptions
from simlake.preflight import java_major
from simlake.spark import job
from simlake.spark.ingest import ingest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="mounts a tmpfs / bind mount (root only)")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """One small raw tree shared by every fault (3 folders x 3 trials, long traces)."""
    path = str(tmp_path_factory.mktemp("faults") / "raw")
    synth.generate_tree(path, runs=3, trials=3, times=6000, synapses=60, cells=40, seed=11)
    return path


def _cli(args, env=None, cwd=None, timeout=900):
    """``simlake ingest ARGS`` as a subprocess: (exit code, stdout lines, stderr lines)."""
    done = subprocess.run([sys.executable, "-m", "simlake.cli", "ingest", *args],
                          cwd=cwd or ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout.splitlines(), done.stderr.splitlines()


def _main(capsys, *args):
    """``simlake ingest ARGS`` in this process (faults found before Spark starts)."""
    code = job.main(list(args))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def _log_of(line: str) -> str:
    m = re.search(r"\(details: (\S+\.log)\)$", line)
    assert m, line
    return m.group(1)


@contextlib.contextmanager
def _mount(*args: str):
    target = args[-1]
    subprocess.run(["mount", *args], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", target], check=False)


# --------------------------------------------------------------------------- before Spark


@pytest.mark.parametrize("args, fragment", [
    (["--target-task-mb", "-5"], "--target-task-mb must be a positive number"),
    (["--batch-gb", "0"], "--batch-gb must be a positive number"),
    (["--target-task-mb", "nan"], "--target-task-mb must be a positive number"),
    (["--dendritic-spike-times-threshold", "inf"], "must be finite"),
])
def test_bad_arguments_refused_before_anything_is_made(capsys, raw, tmp_path, args, fragment):
    db = tmp_path / "db"
    code, out, err = _main(capsys, raw, str(db), *args)
    assert code == job.EXIT_FAILED
    assert out == [] and len(err) == 1 and fragment in err[0], err
    assert not db.exists()  # no table, no morphology copy, no folder


@pytest.mark.parametrize("which", ["db", "raw"])
def test_unsupported_uri_refused(capsys, raw, tmp_path, which):
    uri = "s3a://bucket/db" if which == "db" else "hdfs://namenode/raw"
    args = [raw, uri] if which == "db" else [uri, str(tmp_path / "db")]
    with contextlib.chdir(tmp_path):
        code, out, err = _main(capsys, *args)
    assert code == job.EXIT_FAILED and len(err) == 1
    assert uri in err[0] and "not supported" in err[0], err
    assert os.listdir(tmp_path) == []  # not turned into a folder named "s3a:"


def test_file_uri_is_a_path(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _main(capsys, f"file://{empty}", str(tmp_path / "db"))
    assert code == job.EXIT_NOTHING and str(empty) in err[-1]


def test_usage_error_exits_1(capsys):
    code, _, err = _main(capsys, "--no-such-flag")
    assert code == job.EXIT_FAILED and "unrecognized arguments" in err[-1]


def test_help_lists_exit_codes(capsys):
    code, out, _ = _main(capsys, "--help")
    text = "\n".join(out)
    assert code == 0
    for n in range(5):
        assert re.search(rf"^  {n}  \S", text, re.M), n


def test_database_path_is_a_file(capsys, raw, tmp_path):
    path = tmp_path / "db"
    path.write_text("not a database")
    code, out, err = _main(capsys, raw, str(path))
    assert code == job.EXIT_FAILED and out == []
    assert err == [f"simlake ingest: {path}: database path exists and is not a directory"]
    assert path.read_text() == "not a database"


def test_raw_tree_missing(capsys, tmp_path):
    code, _, err = _main(capsys, str(tmp_path / "nowhere"), str(tmp_path / "db"))
    assert code == job.EXIT_FAILED and len(err) == 1
    assert f"{tmp_path / 'nowhere'}: raw simrun tree not found" in err[0]
    assert not (tmp_path / "db").exists()


def test_raw_path_is_a_sim_run_folder(capsys, raw, tmp_path):
    folder = discover(raw).folders[0]
    code, _, err = _main(capsys, folder.abspath, str(tmp_path / "db"))
    assert code == job.EXIT_NOTHING and len(err) == 1
    assert "is itself a sim-run folder" in err[0]
    assert os.path.dirname(folder.abspath) in err[0]  # says what to pass instead


def test_empty_raw_tree(capsys, tmp_path):
    (tmp_path / "raw" / "empty_subfolder").mkdir(parents=True)
    code, out, err = _main(capsys, str(tmp_path / "raw"), str(tmp_path / "db"))
    assert code == job.EXIT_NOTHING
    assert err == [f"simlake ingest: {tmp_path / 'raw'}: no sim-run folder found; nothing to "
                   "ingest"]
    assert any("0 found" in line for line in out)


def test_database_of_a_newer_simlake(capsys, raw, tmp_path):
    db = tmp_path / "db"
    db.mkdir()
    (db / "simlake.json").write_text(json.dumps({"format_version": 99, "filelist": []}))
    code, _, err = _main(capsys, raw, str(db))
    assert code == job.EXIT_FAILED and len(err) == 1
    assert "newer simlake (format version 99" in err[0]
    assert os.listdir(db) == ["simlake.json"]  # nothing written into it


@needs_root
def test_read_only_database(capsys, raw, tmp_path):
    real, ro = tmp_path / "real", tmp_path / "ro"
    real.mkdir()
    ro.mkdir()
    with _mount("--bind", str(real), str(ro)):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        code, out, err = _main(capsys, raw, str(ro / "db"))
    assert code == job.EXIT_FAILED and out == [] and len(err) == 1
    assert err[0] == (f"simlake ingest: {ro / 'db'}: database folder cannot be written: "
                      "Read-only file system")


@needs_root
def test_unreadable_raw_tree_as_unprivileged_user(raw, tmp_path):
    """A raw tree the user may not read (mode 000, checked as ``nobody``: root reads all)."""
    import tempfile

    import simlake.discovery  # noqa: F401  everything the child needs, imported before setuid
    import simlake.preflight  # noqa: F401
    import simlake.runlog  # noqa: F401

    base = tempfile.mkdtemp(prefix="simlake-unreadable-")  # pytest's own tmp is root-only
    os.chmod(base, 0o755)
    locked = os.path.join(base, "locked")
    os.mkdir(locked, mode=0o000)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, run the job, report its exit code and stderr
        code = 99
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
                    contextlib.redirect_stderr(os.fdopen(write, "w")) as err:
                code = job.main([locked, os.path.join(base, "db")])
                err.flush()
        finally:
            os._exit(code)
    os.close(write)
    err = os.fdopen(read).read().splitlines()
    _, status = os.waitpid(pid, 0)
    os.rmdir(locked)
    os.rmdir(base)
    assert os.waitstatus_to_exitcode(status) == job.EXIT_FAILED, err
    assert err == [f"simlake ingest: {locked}: raw simrun tree cannot be read: Permission denied"]


@pytest.mark.parametrize("java", ["missing", "not-java"])
def test_java_missing_or_broken(raw, tmp_path, java):
    home = tmp_path / "jdk"
    if java == "not-java":
        (home / "bin").mkdir(parents=True)
        os.symlink("/bin/false", home / "bin" / "java")
    code, out, err = _cli([raw, str(tmp_path / "db"), "--profile", "test"],
                          env={"JAVA_HOME": str(home)})
    assert code == job.EXIT_FAILED and out == [] and len(err) == 1, err
    assert err[0].startswith(f"simlake ingest: {home}/bin/java: Java (from JAVA_HOME)"), err
    assert "cannot be run: No such file or directory" in err[0] if java == "missing" \
        else "does not run (exit 1" in err[0]
    assert not os.path.exists(tmp_path / "db")  # refused before anything was created


def test_java_version_parsing():
    assert java_major('openjdk version "17.0.2" 2022-01-18\nOpenJDK Runtime') == 17
    assert java_major('java version "1.8.0_392"\nJava(TM) SE Runtime') == 8
    assert java_major('openjdk version "11" 2018-09-25') == 11
    assert java_major("Error: could not find libjava.so") is None


# --------------------------------------------------------------------------- secondary errors


@needs_root
def test_full_disk_while_writing_a_data_file_is_reported_not_masked(tmp_path):
    """The abort path must not replace ``No space left on device`` by a writer error."""
    rng = np.random.default_rng(0)
    n = 40
    rows = pa.table({
        "recording_site": ["apical"] * n,
        "sim_trial_index": [schemas.sim_trial_index("r/x", t) for t in range(n)],
        "sim_run": ["r/x"] * n, "trialnr": list(range(n)),
        "t": [rng.random(4000).tolist() for _ in range(n)],
        "vm": [rng.random(4000).tolist() for _ in range(n)],
    }, schema=schemas.DENDRITIC_RECORDINGS)
    disk = tmp_path / "disk"
    disk.mkdir()
    with _mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)):
        with pytest.raises(OSError) as caught:
            write_table_files(str(disk), "dendritic_recordings", schemas.DENDRITIC_RECORDINGS,
                              rows)
        assert caught.value.errno == 28 or "No space left" in str(caught.value)
        assert os.listdir(disk) == []  # the partial file is gone too
    assert describe(caught.value).startswith("No space left on device")


def test_root_cause_found_under_secondary_errors():
    text = ("org.apache.spark.SparkException: Job aborted due to stage failure: ...\n"
            "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
            "OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No space "
            "left on device\n\nDuring handling of the above exception, another exception "
            "occurred:\n\npyarrow.lib.ArrowInvalid: Operation on closed file\n")
    assert describe(RuntimeError(text), where="/db") == "No space left on device (writing /db)"
    lost = RuntimeError("Job aborted: ExecutorLostFailure (executor 0 exited caused by one of "
                        "the running tasks) Reason: Remote RPC client disassociated\n")
    assert describe(lost).startswith("a Spark executor was lost")


# --------------------------------------------------------------------------- with Spark


@needs_root
@pytest.mark.spark
def test_full_disk_one_line_nothing_lost_next_run_recovers(spark, raw, tmp_path):
    """The database on a small tmpfs: a first folder fits and is committed; the run that
    brings the other two fills the disk. One line, exit 1, the log names the cause; the
    committed folder is intact; with room again, the next run completes the database."""
    folders = discover(raw).folders
    first_raw = tmp_path / "first"
    for f in folders[:1]:  # a tree holding the first folder only (the same relative path)
        os.makedirs(first_raw / os.path.dirname(f.sim_run), exist_ok=True)
        os.symlink(f.abspath, first_raw / f.sim_run)
    disk = tmp_path / "disk"
    disk.mkdir()
    db = str(disk / "db")
    with _mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)):
        ingest(spark, IngestOptions(str(first_raw), db))
        os.remove(os.path.join(db, "simlake.json"))  # the manifest names the first tree
        before = {k: cmp.table_frame(db, k) for k in cmp.KEYS}
        used = os.statvfs(disk)
        used_kb = (used.f_blocks - used.f_bfree) * used.f_frsize // 1024
        subprocess.run(["mount", "-o", f"remount,size={used_kb + 384}k", str(disk)], check=True)

        code, out, err = _cli([raw, db, "--profile", "test", "-q"])
        assert code == job.EXIT_FAILED and out == [] and len(err) == 1, (out, err)
        assert err[0].startswith("simlake ingest: No space left on device"), err
        assert db in err[0]
        with open(_log_of(err[0]), encoding="utf-8") as fh:
            detail = fh.read()
        assert "Traceback" in detail and "No space left on device" in detail
        for key, frame in before.items():  # what was committed is intact
            cmp.assert_frames_equal(cmp.canonical(cmp.table_frame(db, key)),
                                    cmp.canonical(frame), key)
        assert cmp.committed_sim_runs(db) == {folders[0].sim_run}

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        again = ingest(spark, IngestOptions(raw, db))
        assert sorted(again.folders_new) == sorted(f.sim_run for f in folders[1:])
        cmp.assert_matches_reference(db, cmp.expected_tables(raw))


@pytest.mark.spark
def test_delta_jars_not_obtainable(raw, tmp_path):
    """An empty Ivy cache and a repository that cannot be reached (no network)."""
    ivy = tmp_path / "ivy"
    ivy.mkdir()
    settings = tmp_path / "ivysettings.xml"
    settings.write_text(
        '<ivysettings><settings defaultResolver="nowhere"/><resolvers>'
        '<ibiblio name="nowhere" m2compatible="true" root="http://127.0.0.1:9/maven2/"/>'
        "</resolvers></ivysettings>")
    profile = tmp_path / "nojars.toml"
    profile.write_text(f'[spark]\nmaster = "local[1]"\napp_name = "simlake-nojars"\n'
                       f'[spark.conf]\n"spark.ui.enabled" = "false"\n'
                       f'"spark.jars.ivy" = "{ivy}"\n"spark.jars.ivySettings" = "{settings}"\n')
    db = tmp_path / "db"
    code, out, err = _cli([raw, str(db), "--profile", str(profile)])
    assert code == job.EXIT_FAILED and out == [] and len(err) == 1, (out, err)
    assert err[0].startswith("simlake ingest: Delta's jars could not be obtained: "
                             "io.delta#delta-spark_2.13;"), err
    with open(_log_of(err[0]), encoding="utf-8") as fh:
        assert "unresolved dependency" in fh.read()
    assert not any((db / k).exists() for k in cmp.KEYS)  # no table was created


def test_an_executor_python_error_is_named_not_the_spark_wrapper():
    text = ("org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage "
            "0.0 failed 1 times, most recent failure: Lost task 0.0:\n"
            "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
            '  File "/x/executor_tasks.py", line 3, in run\n    raise KeyError("k")\n'
            "ValueError: bad trial number in /raw/a/b.csv\n"
            "\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException\n")
    assert describe(RuntimeError(text)) == "ValueError: bad trial number in /raw/a/b.csv"


@pytest.mark.spark
def test_python_worker_killed_mid_task(spark, raw, tmp_path):
    """A Python worker of Spark SIGKILLed while it decodes (the local form of a lost worker):
    one line, exit 1, nothing committed; the next run completes the database."""
    import signal
    import time

    import psutil

    db = str(tmp_path / "db")
    proc = subprocess.Popen([sys.executable, "-m", "simlake.cli", "ingest", raw, db,
                             "--profile", "test"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # every worker the daemon forks is killed until the run ends: a worker that was idle
    # between tasks when it died is replaced, so only killing each one makes sure that a
    # task's worker dies in its task (killing the first one seen made the test flaky)
    killed: list[int] = []
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        children = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(proc.pid).children(recursive=True)
        for p in children:
            with contextlib.suppress(psutil.Error):
                parent = p.parent()
                if parent is not None and "simlake.spark.daemon" in parent.cmdline():
                    p.send_signal(signal.SIGKILL)
                    killed.append(p.pid)
        time.sleep(0.01)
    out, err = proc.communicate(timeout=600)
    assert killed, "no Python worker seen"
    err_lines = err.splitlines()
    assert proc.returncode == job.EXIT_FAILED and len(err_lines) == 1, (out, err)
    assert "a Python worker of Spark died" in err_lines[0], err_lines
    assert cmp.committed_sim_runs(db) == set()
    again = ingest(spark, IngestOptions(raw, db))
    assert len(again.folders_new) == 3
    cmp.assert_matches_reference(db, cmp.expected_tables(raw))


def test_refused_run_still_writes_summary_json(capsys, raw, tmp_path):
    path = tmp_path / "db"
    path.write_text("a file")
    out = tmp_path / "summary.json"
    code, _, err = _main(capsys, raw, str(path), "--summary-json", str(out))
    record = json.loads(out.read_text())
    assert code == record["exit_code"] == job.EXIT_FAILED
    assert record["error"] in err[0] and record["table_versions"] == {}


def test_memory_faults_are_named():
    jvm = RuntimeError("py4j.protocol.Py4JJavaError: An error occurred while calling o42.collect"
                       ".\n: java.lang.OutOfMemoryError: Java heap space\n\tat java.base/...")
    assert describe(jvm).startswith("out of memory in the JVM (Java heap space)")
    worker = RuntimeError("PythonException: Traceback (most recent call last):\n  File x\n"
                          "MemoryError\n\tat org.apache.spark.api.python.BasePythonRunner")
    assert describe(worker).startswith("out of memory in a Python worker")


def test_a_known_cause_with_a_long_path_is_never_cut():
    """Real HPC paths run long: the line keeps its end (what to do), while another's
    message (a Java exception's can run for pages) is still cut."""
    from simlake.ingest_plan import VOLTAGE, FileTask
    from simlake.spark.executor_tasks import TaskOutOfMemory

    path = "/scratch/" + "/".join(["C2_evoked_UpState_INH_PW_1.0_SuW_0.5_C2center"] * 6) + \
        "/20150815-1530_20240/20240_vm_all_traces.csv"
    try:
        raise TaskOutOfMemory([FileTask(VOLTAGE, "r", path, 65 * 2**20)], "decoding")
    except TaskOutOfMemory as exc:
        line = describe(exc)
    assert len(line) > 400 and "\n" not in line
    assert line.startswith(f"out of memory in a Python worker decoding {path} (65.0 MB)")
    assert line.endswith("then rerun")
    other = describe(RuntimeError("x" * 5000))
    assert len(other) == 400 and other.endswith("...")

"""The driver JVM's class archive (opt-in): written once by a real session that asks for it,
mapped by the next one."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
import time

from simlake.spark.class_archive import driver_archive, publish_when_done

SESSION_SCRIPT = textwrap.dedent("""
    import sys
    from simlake.config import load_spark_profile
    from simlake.spark.session import build_session

    extra = {"spark.simlake.classArchive": "true"}  # opt-in: off in every profile
    if len(sys.argv) > 1:
        extra["spark.driver.extraJavaOptions"] = sys.argv[1]
    spark = build_session(load_spark_profile("test"), extra)
    assert spark.range(5).count() == 5
    args = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    print("JVM-ARGS", " ".join(args.getInputArguments()))
""")


def _session(env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", SESSION_SCRIPT, *args], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return next(line for line in out.stdout.splitlines() if line.startswith("JVM-ARGS"))


def test_first_session_writes_the_archive_and_the_next_maps_it(tmp_path):
    env = dict(os.environ, SIMLAKE_CACHE_DIR=str(tmp_path / "cache"),
               PYSPARK_PYTHON=sys.executable)
    folder = tmp_path / "cache" / "jvm"

    first = _session(env)
    assert "-XX:ArchiveClassesAtExit=" in first
    deadline = time.monotonic() + 600  # written by the JVM on its way out, then moved in place
    while (not glob.glob(str(folder / "*.jsa")) or glob.glob(str(folder / "*.lock"))) \
            and time.monotonic() < deadline:
        time.sleep(1)
    archives = glob.glob(str(folder / "*.jsa"))
    assert len(archives) == 1 and os.path.getsize(archives[0]) > 10_000_000
    assert os.listdir(folder) == [os.path.basename(archives[0])]  # no lock, no partial file

    # a truncated archive (a full disk while the JVM wrote it) would crash every later JVM:
    # the publisher checks that a JVM starts with it, and drops it
    cut = str(tmp_path / "cut.jsa.tmp")
    with open(archives[0], "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(os.path.getsize(archives[0]) // 3))
    assert not publish_when_done(_dead_pid(), cut, str(tmp_path / "cut.jsa"),
                                 str(tmp_path / "cut.lock"))
    assert not os.path.exists(tmp_path / "cut.jsa") and not os.path.exists(cut)

    load_log = tmp_path / "class-load.txt"
    second = _session(env, f"-Xlog:class+load=info:file={load_log}")
    assert f"-XX:SharedArchiveFile={archives[0]}" in second
    loaded = load_log.read_text()
    # Spark's classes come from the archive written by the first session (its "top" layer)
    assert "org.apache.spark.SparkContext source: shared objects file (top)" in loaded


def test_existing_archive_is_mapped(tmp_path):
    first = driver_archive({}, str(tmp_path))
    assert first.writing is not None and "-XX:ArchiveClassesAtExit=" in first.java_options
    open(first.final, "wb").close()
    again = driver_archive({}, str(tmp_path))
    assert again.java_options.startswith(f"-XX:SharedArchiveFile={first.final} ")
    assert again.writing is None


def test_one_writer_at_a_time_and_a_dead_writers_lock_is_taken_over(tmp_path):
    writer = driver_archive({}, str(tmp_path))
    assert writer.writing is not None
    assert driver_archive({}, str(tmp_path)).java_options == ""  # the lock holder (us) lives

    with open(writer.lock, "w") as fh:  # a writer that died, leaving half an archive
        fh.write(f"{_dead_pid()}\n")
    with open(writer.writing, "wb") as fh:
        fh.write(b"half")
    takeover = driver_archive({}, str(tmp_path))
    assert takeover.writing is not None and takeover.writing != writer.writing
    assert not os.path.exists(writer.writing)


def test_no_archive_where_the_path_has_white_space(tmp_path):
    assert driver_archive({}, str(tmp_path / "my cache")).java_options == ""


def test_the_key_follows_the_class_path(tmp_path):
    plain = driver_archive({}, str(tmp_path / "a"))
    more = driver_archive({"spark.jars": "/opt/extra.jar"}, str(tmp_path / "b"))
    assert os.path.basename(plain.final) != os.path.basename(more.final)


def test_the_key_follows_where_the_jars_are(tmp_path, monkeypatch):
    """Another checkout's venv has the same jars elsewhere: the JVM would ignore an archive
    made with the first one's class path, so it gets its own."""
    from simlake.spark import class_archive

    here = driver_archive({}, str(tmp_path / "a"))
    real = class_archive._spark_jars_dir()
    copy = tmp_path / "venv2" / "jars"
    copy.mkdir(parents=True)
    for name in os.listdir(real):
        os.symlink(os.path.join(real, name), copy / name)  # same files, another path
    monkeypatch.setattr(class_archive, "_spark_jars_dir", lambda: str(copy))
    there = driver_archive({}, str(tmp_path / "a"))
    assert os.path.basename(here.final) != os.path.basename(there.final)


def test_unwritable_cache_means_no_archive(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert driver_archive({}, str(blocked / "jvm")).java_options == ""


def test_publish_moves_the_archive_once_the_jvm_is_gone(tmp_path):
    writing, final, lock = (str(tmp_path / n) for n in ("a.tmp", "a.jsa", "a.jsa.lock"))
    with open(writing, "wb") as fh:  # not an archive at all: a JVM ignores it, harmless
        fh.write(b"archive")
    assert publish_when_done(_dead_pid(), writing, final, lock)
    assert sorted(os.listdir(tmp_path)) == ["a.jsa"]

    assert not publish_when_done(_dead_pid(), writing, final + "2", lock)  # nothing written
    assert sorted(os.listdir(tmp_path)) == ["a.jsa"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid

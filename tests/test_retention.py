"""Run-log retention: ``simlake vacuum`` prunes ``_simlake_logs/`` and keeps every run record.

No JVM: a database folder with its manifest, real log files aged with ``os.utime`` and real
run records; the expected survivors are worked out from the ages chosen here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from simlake import runrecords
from simlake.manifest import FORMAT_VERSION, write_manifest
from simlake.ops.retention import logs_to_prune
from simlake.runlog import logs_path

HOUR = 3600.0


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simlake.cli", *args], capture_output=True,
                          text=True, timeout=120)


def _database(tmp_path, ages_hours: list[float], failed: set[int]) -> tuple[str, list[str]]:
    """A database whose run ``i`` ended ``ages_hours[i]`` hours ago with a log and a record
    (exit 1 for the runs in ``failed``); returns the root and the log names, oldest first."""
    db = str(tmp_path / "db")
    os.makedirs(db)
    write_manifest(db, {"format_version": FORMAT_VERSION, "filelist": []})
    os.makedirs(logs_path(db))
    now = time.time()
    names = []
    for i, age in enumerate(ages_hours):
        run_id = f"2026010{i % 10}T000000Z-{i:08x}"
        log = os.path.join(logs_path(db), f"{run_id}.log")
        with open(log, "w") as fh:
            fh.write(f"log of run {i}\n")
        os.utime(log, (now - age * HOUR, now - age * HOUR))
        runrecords.write_run_record(db, {
            "run_id": run_id, "started": f"2026-01-{i + 1:02d}T00:00:00+00:00",
            "finished": f"2026-01-{i + 1:02d}T00:05:00+00:00",
            "exit_code": 1 if i in failed else 0, "log": log})
        names.append(f"{run_id}.log")
    return db, names


def test_vacuum_prunes_old_logs_keeps_newest_failed_and_every_record(tmp_path):
    # runs 0-5 are 30 days old, 6 is 10 days, 7-9 are an hour old; run 2 failed
    ages = [720, 719, 718, 717, 716, 715, 240, 1, 1, 1]
    db, names = _database(tmp_path, ages, failed={2})
    records_before = sorted(os.listdir(runrecords.runs_path(db)))
    # a week's retention and the newest 5 kept: 7-9 are recent, 5 and 6 are among the newest 5
    expected_gone = [names[i] for i in (0, 1, 3, 4)]
    dry = _cli("vacuum", db, "--keep-logs", "5", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "_simlake_logs: would delete 4 run log(s) (kept the newest 5 and those of failed " \
           "runs)" in dry.stdout
    assert sorted(os.listdir(logs_path(db))) == sorted(names)  # a dry run deletes nothing
    done = _cli("vacuum", db, "--keep-logs", "5")
    assert done.returncode == 0, done.stderr
    assert "_simlake_logs: deleted 4 run log(s)" in done.stdout
    assert sorted(os.listdir(logs_path(db))) == sorted(set(names) - set(expected_gone))
    assert sorted(os.listdir(runrecords.runs_path(db))) == records_before  # history stays
    assert len(runrecords.read_run_records(db)) == len(ages)
    # a second vacuum finds nothing more; a shorter retention takes run 6 (not the failed 2)
    assert logs_to_prune(db, 168, keep_last=5) == []
    gone = logs_to_prune(db, 100, keep_last=3)
    assert [os.path.basename(p) for p in gone] == [names[5], names[6]]


def test_vacuum_without_logs_and_bad_keep_logs(tmp_path):
    db, _ = _database(tmp_path, [], failed=set())
    os.rmdir(logs_path(db))
    assert logs_to_prune(db, 0) == []
    out = _cli("vacuum", db)
    assert out.returncode == 0 and "_simlake_logs" not in out.stdout
    bad = _cli("vacuum", db, "--keep-logs", "-1")
    assert bad.returncode == 1 and "--keep-logs must be >= 0, not -1" in bad.stderr

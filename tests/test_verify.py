"""`simlake verify`, `info`, `history`, `vacuum`, `optimize` on the shared ingested database.

Damage is made for real on a copy of the ingested database (a deleted or truncated data file,
a trial committed twice through a real Delta append, a stored morphology deleted ...); the
expected lines name what was damaged, computed from the damage done, not from verify.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from simlake import runrecords
from simlake.ops.info import database_info, format_history, format_info, run_history
from simlake.ops.verify import MAX_LINES_PER_KIND, verify

pytestmark = pytest.mark.spark


@pytest.fixture
def copy(ingested, tmp_path):
    dest = str(tmp_path / "db")
    shutil.copytree(ingested["db"], dest)
    return dest


def _files(db: str, key: str) -> list[str]:
    """Local paths of the live data files of table ``key``, the one with most rows first."""
    paths = [u.removeprefix("file://") for u in DeltaTable(os.path.join(db, key)).file_uris()]
    return sorted(paths, key=lambda p: -pq.ParquetFile(p).metadata.num_rows)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simlake.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_verify_passes_on_ingested_database(ingested):
    report = verify(ingested["db"], full=True)
    assert report.problems == []
    assert report.trials == ingested["report"].n_trials
    expected_files = sum(len(DeltaTable(os.path.join(ingested["db"], k)).file_uris())
                         for k in os.listdir(ingested["db"])
                         if os.path.isdir(os.path.join(ingested["db"], k, "_delta_log")))
    assert report.files == expected_files
    # the landmark file deleted before the ingest: a note (reported at ingest), not a problem
    landmark = os.path.basename(ingested["missing"])
    assert any(landmark in n and "was not stored" in n for n in report.notes), report.notes
    assert not [n for n in report.notes if n.startswith("hidden rows")]


def test_verify_names_a_deleted_data_file(copy):
    victim = _files(copy, "voltage_traces")[0]
    lost = sorted(pq.read_table(victim, columns=["sim_trial_index"]).column(0).to_pylist())
    os.unlink(victim)
    report = verify(copy)
    name = os.path.basename(victim)
    missing = [f"voltage_traces: trial {sti} of metadata is missing" for sti in lost]
    if len(missing) > MAX_LINES_PER_KIND:
        missing = missing[:MAX_LINES_PER_KIND] + [
            f"voltage_traces: {len(lost) - MAX_LINES_PER_KIND} more like the above"]
    assert report.problems == [
        f"voltage_traces: data file {name} named by the Delta log is missing", *missing]


def test_verify_names_a_duplicated_trial(copy):
    path = os.path.join(copy, "voltage_traces")
    row = pq.read_table(_files(copy, "voltage_traces")[0]).slice(1, 1)
    write_deltalake(path, row, mode="append")  # a real commit of the same trial again
    sti = row.column("sim_trial_index")[0].as_py()
    report = verify(copy)
    assert report.problems == [f"voltage_traces: trial {sti} appears 2 times"]


def test_verify_names_unreadable_and_miscounted_files(copy):
    syn = _files(copy, "synapse_activation")[0]
    with open(syn, "rb") as fh:
        data = fh.read()
    with open(syn, "wb") as fh:
        fh.write(data[: len(data) // 2])
    # a valid file with fewer rows than its add action says, and other keys
    volt = _files(copy, "voltage_traces")[0]
    table = pq.read_table(volt)
    n = table.num_rows
    assert n >= 3
    pq.write_table(table.slice(1, n - 2), volt)
    keys = table.column("sim_trial_index")
    problems = verify(copy).problems
    volt_where = f"voltage_traces: data file {os.path.basename(volt)}"
    assert f"{volt_where} holds {n - 2} rows, the Delta log says {n}" in problems
    assert any(p.startswith(f"{volt_where}: sim_trial_index min is "
                            f"{keys[1].as_py()!r}") for p in problems), problems
    assert any(p.startswith(f"synapse_activation: data file {os.path.basename(syn)} is "
                            "unreadable: ") for p in problems), problems
    # the two trials cut from the file are missing from voltage_traces
    for lost in (keys[0].as_py(), keys[n - 1].as_py()):
        assert f"voltage_traces: trial {lost} of metadata is missing" in problems


def test_verify_param_references_plain_reldb_and_broken(copy):
    folder = os.path.join(copy, "parameterfiles_cell_folder")
    stored = sorted(os.listdir(folder))
    texts = {n: open(os.path.join(folder, n), encoding="utf-8").read() for n in stored}
    # one stored file's references in the reldb:// form: accepted like plain db-relative ones
    first = stored[0]
    with open(os.path.join(folder, first), "w", encoding="utf-8") as fh:
        fh.write(texts[first].replace('"morphology/', '"reldb://morphology/'))
    assert "reldb://morphology/" in open(os.path.join(folder, first)).read()
    assert verify(copy).problems == []
    # then the morphology it references is deleted
    morph = sorted(os.listdir(os.path.join(copy, "morphology")))
    users = [n for n in stored if any(m in texts[n] for m in morph)]
    victim = next(m for m in morph if m in texts[first])
    os.unlink(os.path.join(copy, "morphology", victim))
    problems = verify(copy).problems
    referencing = sorted(n for n in users if victim in texts[n])
    # the stored .syn files whose header names that morphology (2nd line)
    syn_folder = os.path.join(copy, "syn_folder")
    headers = sorted(n for n in os.listdir(syn_folder)
                     if victim in _header_line(os.path.join(syn_folder, n)))
    assert len(problems) == len(referencing) + len(headers), problems
    for name, line in zip(referencing, problems[:len(referencing)], strict=True):
        assert line.startswith(f"parameterfiles_cell_folder/{name}: neuron.filename -> ")
        assert line.endswith(f"morphology/{victim} does not resolve (no such file in the "
                             "database)")
    assert problems[len(referencing):] == [
        f"syn_folder/{n}: header -> reldb://morphology/{victim} does not resolve (no such "
        "file in the database)" for n in headers]


def _header_line(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        fh.readline()
        return fh.readline()


def _completed_network_files(db: str) -> dict[str, str]:
    """{md5: text} of the stored network param files the committed trials name."""
    hashes = DeltaTable(os.path.join(db, "parameterfiles")).to_pyarrow_table(
        columns=["hash_network"]).column(0).to_pylist()
    folder = os.path.join(db, "parameterfiles_network_folder")
    return {h: open(os.path.join(folder, h), encoding="utf-8").read() for h in set(hashes)}


def test_verify_names_a_deleted_stored_syn_in_param_files_and_con_headers(copy):
    networks = _completed_network_files(copy)
    syn_folder = os.path.join(copy, "syn_folder")
    victim = max(sorted(os.listdir(syn_folder)),
                 key=lambda n: sum(t.count(n) for t in networks.values()))
    ref = f"reldb://syn_folder/{victim}"
    assert any(ref in t for t in networks.values())
    os.unlink(os.path.join(syn_folder, victim))
    expected = []
    for md5 in sorted(networks):
        n = networks[md5].count(f'"distributionFile": "{ref}"')
        if n:
            keys = "network.*.synapses.distributionFile" + (f" and {n - 1} more keys"
                                                            if n > 1 else "")
            expected.append(f"parameterfiles_network_folder/{md5}: {keys} -> {ref} does not "
                            "resolve (no such file in the database)")
    cons = sorted({c for c in os.listdir(os.path.join(copy, "con_folder"))
                   if any(c in t for t in networks.values())})
    headed = [c for c in cons
              if victim in _header_line(os.path.join(copy, "con_folder", c))]
    assert headed  # the .con files name their .syn: the ingest rewrote that header
    expected += [f"con_folder/{c}: header -> {ref} does not resolve (no such file in the "
                 "database)" for c in headed]
    problems = verify(copy).problems
    assert len(expected) <= MAX_LINES_PER_KIND  # else the check below would cap them
    assert len(problems) == len(expected), problems
    for got, want in zip(problems, expected, strict=True):  # the cell type: any of the file
        assert re.fullmatch(re.escape(want).replace(r"\*", r"[^.]+"), got), (got, want)
    out = _cli("verify", copy, "-q")
    assert out.returncode == 2 and out.stdout.splitlines()[:-1] == problems


def test_verify_names_a_trial_missing_at_one_recording_site(copy):
    path = os.path.join(copy, "dendritic_recordings")
    rows = DeltaTable(path).to_pyarrow_table(columns=["recording_site", "sim_trial_index"])
    sites = sorted(set(rows.column("recording_site").to_pylist()))
    assert len(sites) >= 2
    site = sites[-1]
    sti = sorted(rows.filter(pc.equal(rows.column("recording_site"), site))
                 .column("sim_trial_index").to_pylist())[1]
    # a real Delta commit removing that one row (the other sites keep the trial)
    DeltaTable(path).delete(f"recording_site = '{site}' AND sim_trial_index = '{sti}'")
    after = DeltaTable(path).to_pyarrow_table(columns=["recording_site", "sim_trial_index"])
    assert after.num_rows == rows.num_rows - 1
    line = f"dendritic_recordings: trial {sti} of metadata is missing at site {site}"
    assert verify(copy).problems == [line]
    out = _cli("verify", copy, "-q")
    assert out.returncode == 2 and out.stdout.splitlines()[0] == line


def test_verify_names_a_missing_stored_param_file(copy):
    folder = os.path.join(copy, "parameterfiles_network_folder")
    victim = sorted(os.listdir(folder))[0]
    os.unlink(os.path.join(folder, victim))
    assert verify(copy).problems == [
        f"parameterfiles: stored network param file parameterfiles_network_folder/{victim} "
        "is missing"]


def test_info_counts_from_the_logs(ingested):
    info = database_info(ingested["db"])
    assert info["trials"] == ingested["report"].n_trials
    assert info["folders"] == len({f.sim_run for f in ingested["report"].folders
                                   if f.n_trials})
    tables = {t["name"]: t for t in info["tables"]}
    for name, t in tables.items():
        files = [pq.ParquetFile(u.removeprefix("file://")) for u in
                 DeltaTable(os.path.join(ingested["db"], name)).file_uris()]
        assert t["files"] == len(files)
        assert t["rows"] == sum(f.metadata.num_rows for f in files)
    assert tables["voltage_traces"]["rows"] == ingested["report"].n_trials
    lines = format_info(info)
    assert any(line.startswith("trials") and str(info["trials"]) in line for line in lines)


def test_history_prefers_kept_run_records(copy):
    source, runs = run_history(copy)
    assert source.startswith("metadata")  # this ingest kept no record yet
    run_ids = {r["run_id"] for r in runs}
    assert run_ids == set(DeltaTable(os.path.join(copy, "metadata")).to_pyarrow_table(
        columns=["run_id"]).column(0).to_pylist())
    records = [{"run_id": "r1", "started": "2026-01-02T03:04:05+00:00",
                "finished": "2026-01-02T03:09:00+00:00", "exit_code": 0, "trials": 28,
                "rejected": [{"path": "x", "reason": "y"}]},
               {"run_id": "r0", "started": "2026-01-01T00:00:00+00:00",
                "finished": "2026-01-01T00:01:00+00:00", "exit_code": 2}]
    for record in records:
        runrecords.write_run_record(copy, record)
    source, runs = run_history(copy)
    assert source == "run records" and [r["run_id"] for r in runs] == ["r0", "r1"]
    lines = format_history(source, runs)
    assert lines[1].split() == ["2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00",
                                "r0", "2"]
    assert "trials=28" in lines[2] and "rejected=1" in lines[2]
    assert database_info(copy)["last_ingest"]["run_id"] == "r1"


def test_cli_verify_info_history_exit_codes(ingested, copy, tmp_path):
    ok = _cli("verify", ingested["db"], "-q")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [verify(ingested["db"]).summary()]
    victim = _files(copy, "cell_activation")[0]
    os.unlink(victim)
    bad = _cli("verify", copy)
    assert bad.returncode == 2
    assert bad.stdout.splitlines()[0] == (f"cell_activation: data file "
                                          f"{os.path.basename(victim)} named by the Delta log "
                                          "is missing")
    info = _cli("info", ingested["db"], "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["trials"] == ingested["report"].n_trials
    assert _cli("history", ingested["db"]).returncode == 0
    for command in ("verify", "info", "history", "vacuum", "optimize"):
        missing = _cli(command, str(tmp_path / "nowhere"))
        assert missing.returncode == 1
        assert missing.stderr.strip() == (f"simlake {command}: {tmp_path / 'nowhere'}: "
                                          "no such database folder")


def test_vacuum_keeps_recent_files_and_optimize_compacts(copy):
    path = os.path.join(copy, "voltage_traces")
    more = pq.read_table(_files(copy, "voltage_traces")[0])
    # a second small file of other trials, so the table has something to compact
    keys = [f"zz/{i:06d}" for i in range(more.num_rows)]
    extra = more.set_column(0, "sim_trial_index", pa.array(keys)).set_column(
        1, "sim_run", pa.array(["zz"] * more.num_rows))
    write_deltalake(path, extra, mode="append")
    before = len(DeltaTable(path).file_uris())
    out = _cli("optimize", copy, "--select", "voltage_traces", "--no-vacuum")
    assert out.returncode == 0, out.stderr
    version = DeltaTable(path).version()
    assert out.stdout.strip() == (f"voltage_traces: {before} -> 1 files (v{version}), "
                                  "0 old files vacuumed")
    on_disk = glob.glob(os.path.join(path, "*.parquet"))
    assert len(on_disk) == before + 1
    # the replaced files are minutes old: Delta's 7-day retention keeps them
    dry = _cli("vacuum", copy, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.strip().endswith(
        "vacuum: 0 file(s) would be deleted (retention 168 h)")
    refused = _cli("vacuum", copy, "--retention-hours", "0")
    assert refused.returncode == 1 and "--force" in refused.stderr
    done = _cli("vacuum", copy, "--retention-hours", "0", "--force")
    assert done.returncode == 0, done.stderr
    assert f"voltage_traces: deleted {before} file(s)" in done.stdout
    assert sorted(glob.glob(os.path.join(path, "*.parquet"))) == _files(copy, "voltage_traces")
    # the appended folder 'zz' has no metadata: hidden rows, a note and no problem
    report = verify(copy)
    assert report.problems == []
    assert [n for n in report.notes if "incomplete folder" in n] == [
        "hidden rows of incomplete folder zz (no metadata rows; readers hide them, its next "
        f"ingest replaces them): voltage_traces {more.num_rows}"]

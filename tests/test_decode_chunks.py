"""How an executor decodes a group's files: activation files in batches, others one by one;
every file's rows or its own error, in task order, across batch boundaries."""

from __future__ import annotations

import os

import pyarrow as pa

from simlake import schemas
from simlake.decode.activation import decode_synapses
from simlake.ingest_plan import FileTask
from simlake.spark import executor_tasks
from simlake.spark.executor_tasks import decode_chunks, decode_task

SIM_RUN = "20150815-1530_20240"
SYN_HEADER = ("# synapse type\tsynapse ID\tsoma distance\tsection ID\tsection pt ID\t"
              "dendrite label\tactivation times\n")


def _write(path, text: str | bytes) -> int:
    data = text.encode() if isinstance(text, str) else text
    with open(path, "wb") as fh:
        fh.write(data)
    return len(data)


def test_batches_keep_task_order_and_each_files_error(tmp_path, monkeypatch):
    monkeypatch.setattr(executor_tasks, "ACTIVATION_BATCH_BYTES", 300)  # several batches
    tasks = []
    for nr in range(12):
        path = tmp_path / f"simulation_run{nr:04d}_synapses.csv"
        lines = "".join(f"L{k}\t{k}\t{12.5 * k}\t{k}\t0\tSoma\t{nr + 0.25 * k},{nr + 1.5},\n"
                        for k in range(nr % 4))
        if nr == 5:
            lines += "L1\t1\tnot-a-number\t1\t0\tSoma\t\n"
        size = _write(path, SYN_HEADER + lines)
        tasks.append(FileTask("synapses", SIM_RUN, str(path), size, trialnr=nr))
    bad, gone = tasks[5], tasks[8]
    os.remove(gone.path)  # unreadable by the time the executor gets there
    voltage = tmp_path / "vm_all_traces.csv"
    size = _write(voltage, "t\tVm run 00\n100.0\t-61.5\n100.025\t-61.25\n")
    tasks.insert(6, FileTask("voltage", SIM_RUN, str(voltage), size, trialnrs=(0,)))

    chunks = list(decode_chunks(tasks))
    assert [t for chunk, _, _ in chunks for t in chunk] == tasks  # every task, in order, once
    assert len(chunks) >= 5 and any(len(chunk) > 1 for chunk, _, _ in chunks)
    assert all({t.kind for t in chunk} in ({"synapses"}, {"voltage"}) for chunk, _, _ in chunks)

    failed = {t.path: type(e).__name__ for _, _, fails in chunks for t, e in fails}
    assert failed == {bad.path: "SimrunFormatError", gone.path: "FileNotFoundError"}
    expected = {}  # each file decoded alone
    for task in tasks:
        if task.path in failed:
            continue
        if task.kind == "synapses":
            with open(task.path, "rb") as fh:
                rows = decode_synapses(task.path, fh.read(), task.sim_run, task.trialnr)
        else:
            rows = decode_task(task)
        expected.setdefault(task.kind, []).append(rows)
    got = {}
    for chunk, table, _ in chunks:
        if table is not None:
            if chunk[0].kind == "synapses":  # strings come dictionary-encoded for the writer
                assert table.schema == schemas.encoded(schemas.SYNAPSE_ACTIVATION)
                table = table.cast(schemas.SYNAPSE_ACTIVATION)
            got.setdefault(chunk[0].kind, []).append(table)
    for kind in ("synapses", "voltage"):
        assert pa.concat_tables(got[kind]).combine_chunks().equals(
            pa.concat_tables(expected[kind]).combine_chunks())

"""What an ingest should do: one options object shared by the CLI, the job and ``init``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from simlake.config import IngestDefaults

#: ISF ``init`` flags (their names and meanings) and the tables each one produces.
KEY_FLAGS: dict[str, tuple[str, ...]] = {
    "voltage_traces": ("voltage_traces",),
    "synapse_activation": ("synapse_activation", "cell_activation"),
    "dendritic_voltage_traces": ("dendritic_recordings",),
    "spike_times": ("spike_times",),
    "dendritic_spike_times": ("dendritic_spike_times",),
    "parameterfiles": ("parameterfiles",),
}


@dataclass(frozen=True)
class IngestOptions:
    """Options of one ingest run.

    ``core`` (ISF meaning): build the core keys (metadata, filelist) for the new sim-run
    folders. With ``core=False`` nothing new is added; the selected keys are (re)built for the
    folders the database already holds (e.g. dendritic spike times at another threshold).

    ``strict``: any rejected file fails its folder: nothing of that folder is written (see
    ``simlake.spark.ingest``). ``refresh``: folders whose files changed since they were
    ingested, and folders that failed in an earlier run, are ingested again.

    ``pause_after``/``pause_file`` are a test hook, off by default: with
    ``pause_after="STEP"`` or ``"STEP:N"`` the driver, on reaching STEP of commit batch N
    (default 1), creates ``pause_file`` and waits until that file is deleted
    (``simlake.checkpoint.PauseFile``). STEP is a table key (right after that table's commit,
    in the thread that committed it: the other commits go on), ``decoded`` (all raw files of
    the batch decoded and written as data files, nothing committed yet; see
    ``simlake.spark.decode``) or ``pre-metadata`` (right before the completion record). The
    crash tests SIGKILL the paused process; the concurrency tests release it.

    ``batch_bytes``: raw bytes per commit batch.
    """

    simresult_path: str
    db_path: str
    core: bool = True
    voltage_traces: bool = True
    synapse_activation: bool = True
    dendritic_voltage_traces: bool = True
    parameterfiles: bool = True
    spike_times: bool = True
    dendritic_spike_times: bool = True
    dendritic_spike_times_threshold: float = -30.0
    spike_threshold: float = 0.0
    strict: bool = False
    refresh: bool = False
    target_task_bytes: int = 128 * 1024 * 1024
    batch_bytes: int = 4 * 1024**3
    run_id: str | None = None
    pause_after: str | None = None
    pause_file: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "simresult_path", os.path.abspath(self.simresult_path))
        object.__setattr__(self, "db_path", os.path.abspath(self.db_path))
        if bool(self.pause_after) != bool(self.pause_file):
            raise ValueError("pause_after and pause_file go together (a test hook)")
        if self.pause_after:
            step, _, batch = self.pause_after.partition(":")
            if not step or (batch and not batch.isdigit()):
                raise ValueError(f"pause_after must be STEP or STEP:N, not {self.pause_after!r}")

    def pause_point(self) -> tuple[str, int] | None:
        """``(step, batch number)`` of the test hook, or None."""
        if not self.pause_after:
            return None
        step, _, batch = self.pause_after.partition(":")
        return step, int(batch or 1)

    @classmethod
    def from_defaults(cls, defaults: IngestDefaults, **kwargs) -> IngestOptions:
        """Options with ``conf/ingest.toml`` defaults under explicit keyword overrides."""
        base: dict[str, Any] = {
            "target_task_bytes": defaults.target_task_bytes,
            "batch_bytes": defaults.batch_bytes,
            "spike_threshold": defaults.spike_threshold,
            "dendritic_spike_times_threshold": defaults.dendritic_spike_times_threshold,
        }
        base.update({k: v for k, v in kwargs.items() if v is not None})
        return cls(**base)

    def tables(self) -> list[str]:
        """Tables this run writes, in commit order (``metadata``, the completion record, last)."""
        out: list[str] = []
        for flag, tables in KEY_FLAGS.items():
            if getattr(self, flag):
                out.extend(tables)
        # The trial set of a folder is defined by its voltage file, and spike times are
        # computed from the stored traces: both need the voltage_traces table.
        if (self.core or self.spike_times) and "voltage_traces" not in out:
            out.insert(0, "voltage_traces")
        if self.dendritic_spike_times and not self.dendritic_voltage_traces:
            out.insert(0, "dendritic_recordings")
        if self.core:
            out.append("metadata")
        return out

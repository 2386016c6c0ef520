"""``simlake verify``: is a database intact? Every finding is one line.

Problems (the database is damaged; the command exits non-zero):

- a table whose Delta log cannot be read;
- a data file the log names that is missing or unreadable (its footer and key columns are
  read; ``full=True`` reads every column);
- a file whose row count differs from the log's ``numRecords``, or whose ``sim_trial_index``
  lies outside the log's min/max (exact statistics must match exactly; truncated string
  statistics must bound the values);
- a trial listed twice in ``metadata``; a trial of ``metadata`` missing from, or present more
  than once in, ``voltage_traces``, ``spike_times`` (per threshold) or ``parameterfiles``;
  rows there of a completed folder's trial that ``metadata`` does not list;
- a stored param file that is missing, or that references a db-relative file (plain
  ``folder/file`` or ``reldb://folder/file``) that does not exist.

Notes (reported, not problems):

- hidden rows of an incomplete folder: rows whose ``sim_run`` has no ``metadata`` row. They
  are a killed or still-running ingest's leftovers; every reader hides them, and the next
  ingest of the folder replaces them;
- param-file references kept as absolute paths: the file was missing when the ingest stored
  the param file (the ingest reported it then).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simlake import paramfiles, paramrefs
from simlake.adapter import deltafiles as df_
from simlake.adapter.deltafiles import KEY
from simlake.manifest import manifest_path
from simlake.ops.tables import TRIAL_TABLES, completed_sim_runs, delta_tables

#: Tables holding exactly one row per trial of ``metadata`` (``spike_times``: per threshold).
ONCE_PER_TRIAL = ("voltage_traces", "spike_times", "parameterfiles")
#: Findings of one kind printed per table before they are summed up in one line.
MAX_LINES_PER_KIND = 10
#: parquet-rs (delta-rs writes) truncates string statistics at 64 bytes.
_PARQUET_RS_STAT_BYTES = 64


@dataclass
class Report:
    """What ``verify`` found: ``problems`` and ``notes`` (one line each), and counts."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: int = 0
    files: int = 0
    trials: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """The last line ``simlake verify`` prints."""
        what = f"{self.tables} tables, {self.files} data files, {self.trials} trials checked"
        if self.ok:
            return f"verify: ok ({what})"
        return f"verify: {len(self.problems)} problem(s) ({what})"


def _capped(lines: Iterable[str], what: str) -> list[str]:
    lines = list(lines)
    if len(lines) <= MAX_LINES_PER_KIND:
        return lines
    rest = len(lines) - MAX_LINES_PER_KIND
    return lines[:MAX_LINES_PER_KIND] + [f"{what}: {rest} more like the above"]


# --------------------------------------------------------------------------------------------
# data files


@dataclass
class _FileResult:
    problems: list[str]
    #: key rows (``sim_trial_index``, ``sim_run``, ``threshold``), kept for the tables whose
    #: trials are counted; else None
    rows: pa.Table | None = None
    #: rows per ``sim_run`` of the file
    runs: pa.Table | None = None


def _check_file(snap: df_.TableSnapshot, f: df_.DataFile, name: str, full: bool
                ) -> _FileResult:
    """Problems of one data file, with what the trial checks need of it (small: per-trial
    key rows only for :data:`ONCE_PER_TRIAL` and ``metadata``, else rows per sim-run)."""
    rel = os.path.relpath(f.path, snap.path)
    where = f"{name}: data file {rel}"
    if not os.path.isfile(f.path):
        return _FileResult([f"{where} named by the Delta log is missing"])
    wanted = [c for c in (KEY, "sim_run", "threshold") if c in snap.schema.names
              and c not in snap.partition_columns]
    try:
        pf = pq.ParquetFile(f.path)
        rows = pf.metadata.num_rows
        if full:  # every page decodes; batch by batch, so memory stays bounded
            for _batch in pf.iter_batches(batch_size=4096):
                pass
        table = pf.read(columns=[c for c in wanted if c in pf.schema_arrow.names])
    except Exception as exc:  # any reason a reader would fail on this file
        return _FileResult([f"{where} is unreadable: {type(exc).__name__}: {_one_line(exc)}"])
    problems = []
    if f.num_records is not None and f.num_records != rows:
        problems.append(f"{where} holds {rows} rows, the Delta log says {f.num_records}")
    if KEY in table.column_names and table.num_rows:
        problems += _check_key_stats(snap, f, table.column(KEY), where)
    keep = name in ONCE_PER_TRIAL or name == "metadata"
    runs = (table.group_by("sim_run").aggregate([([], "count_all")])
            if "sim_run" in table.column_names else None)
    return _FileResult(problems, table if keep else None, runs)


def _check_key_stats(snap: df_.TableSnapshot, f: df_.DataFile, keys: pa.ChunkedArray,
                     where: str) -> list[str]:
    lo, hi, _ = f.stat(KEY)
    bounds = pc.min_max(keys)
    actual_lo, actual_hi = bounds["min"].as_py(), bounds["max"].as_py()
    limit = snap.string_prefix_length
    problems = []
    for stat, actual, side in ((lo, actual_lo, "min"), (hi, actual_hi, "max")):
        if stat is None or actual is None:
            continue
        if df_.exact_string_stat(stat, limit, _PARQUET_RS_STAT_BYTES):
            bad = stat != actual
        else:  # a truncated statistic is a bound
            bad = stat > actual if side == "min" else stat < actual
        if bad:
            problems.append(f"{where}: {KEY} {side} is {actual!r}, the Delta log says {stat!r}")
    return problems


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or "no detail"


def _check_table(db_root: str, name: str, full: bool, report: Report
                 ) -> tuple[pa.Table | None, pa.Table | None]:
    """Check one table's log and files; returns its kept key rows (see :func:`_check_file`)
    and its rows per ``sim_run`` (None where the log is unreadable or there is no such
    column)."""
    path = os.path.join(db_root, name)
    try:
        snap = df_.open_table(path)
    except Exception as exc:  # an unreadable log, an unsupported feature, ...
        report.problems.append(f"{name}: cannot read the Delta log: {type(exc).__name__}: "
                               f"{_one_line(exc)}")
        return None, None
    report.tables += 1
    report.files += len(snap.files)
    with ThreadPoolExecutor(df_.IO_THREADS) as pool:
        results = list(pool.map(lambda f: _check_file(snap, f, name, full), snap.files))
    report.problems += _capped([p for r in results for p in r.problems], f"{name}: files")
    names = [c for c in (KEY, "sim_run", "threshold") if c in snap.schema.names]
    rows = None
    if name in ONCE_PER_TRIAL or name == "metadata":
        parts = [r.rows for r in results if r.rows is not None]
        # no readable file: the table's trials are all missing
        rows = (pa.concat_tables(parts, promote_options="default") if parts
                else df_.schema_subset(snap.schema, names).empty_table())
    runs = None
    if "sim_run" in snap.schema.names:
        counts = [r.runs for r in results if r.runs is not None and r.runs.num_rows]
        runs = (pa.concat_tables(counts).group_by("sim_run").aggregate(
            [("count_all", "sum")]) if counts else None)
    return rows, runs


# --------------------------------------------------------------------------------------------
# trials


def _check_trials(metadata: pa.Table | None, keys: dict[str, pa.Table], report: Report) -> None:
    if metadata is None:
        return
    listed = metadata.group_by(KEY).aggregate([([], "count_all")])
    report.trials = listed.num_rows
    report.problems += _capped(_repeated(listed, "metadata", "listed", ""), "metadata")
    trials = listed.column(KEY)
    done = pc.unique(metadata.column("sim_run"))
    for name in ONCE_PER_TRIAL:
        rows = keys.get(name)
        if rows is None:
            continue
        visible = rows.filter(pc.is_in(rows.column("sim_run"), value_set=done))
        by = [KEY, "threshold"] if "threshold" in visible.column_names else [KEY]
        counts = visible.group_by(by).aggregate([([], "count_all")])
        variants = (pc.unique(counts.column("threshold")).to_pylist()
                    if "threshold" in by else [None])
        found: list[str] = []
        for threshold in sorted(variants, key=str) if counts.num_rows else [None]:
            part = counts if threshold is None else counts.filter(
                pc.equal(counts.column("threshold"), threshold))
            at = "" if threshold is None else f" (threshold {threshold})"
            found += _repeated(part, name, "appears", at)
            present = part.column(KEY)
            found += [f"{name}: trial {k} of metadata is missing{at}" for k in
                      sorted(trials.filter(pc.invert(pc.is_in(trials, present))).to_pylist())]
            found += [f"{name}: trial {k} is not listed in metadata{at}" for k in
                      sorted(present.filter(pc.invert(pc.is_in(present, trials))).to_pylist())]
        report.problems += _capped(found, name)


def _repeated(counts: pa.Table, name: str, verb: str, at: str) -> list[str]:
    """Lines for the keys of ``counts`` (KEY, count_all) that occur more than once."""
    many = counts.filter(pc.greater(counts.column("count_all"), 1))
    pairs = sorted(zip(many.column(KEY).to_pylist(), many.column("count_all").to_pylist(),
                       strict=True))
    return [f"{name}: trial {k} {verb} {n} times{at}" for k, n in pairs]


def _note_hidden(runs: dict[str, pa.Table], completed: pa.Array, report: Report) -> None:
    by_folder: dict[str, list[str]] = defaultdict(list)
    for name in TRIAL_TABLES:
        counts = runs.get(name)
        if counts is None:
            continue
        hidden = counts.filter(pc.invert(pc.is_in(counts.column("sim_run"),
                                                  value_set=completed)))
        for sim_run, n in sorted(zip(hidden.column("sim_run").to_pylist(),
                                     hidden.column("count_all_sum").to_pylist(), strict=True)):
            by_folder[sim_run].append(f"{name} {n}")
    for sim_run, where in sorted(by_folder.items()):
        report.notes.append(f"hidden rows of incomplete folder {sim_run} (no metadata rows; "
                            f"readers hide them, its next ingest replaces them): "
                            + ", ".join(where))


# --------------------------------------------------------------------------------------------
# param files


def _check_param_files(db_root: str, report: Report) -> None:
    path = os.path.join(db_root, "parameterfiles")
    if not df_.is_delta_table(path):
        return
    try:
        snap = df_.open_table(path, stats_columns=())
        done = completed_sim_runs(db_root)
        rows = df_.read_files(snap.files, ["hash_neuron", "hash_network"], snap.schema,
                              df_.RowFilter(sim_runs=done), sort_key=None, parallel=True)
    except Exception:  # the files' own problems are reported by the table check
        return
    problems: list[str] = []
    for kind, column in (("neuron", "hash_neuron"), ("network", "hash_network")):
        for md5 in sorted(h for h in set(rows.column(column).to_pylist()) if h):
            problems += _check_param_file(db_root, kind, md5, report)
    report.problems += _capped(problems, "param files")


def _check_param_file(db_root: str, kind: str, md5: str, report: Report) -> list[str]:
    stored = paramfiles.stored_param_path(db_root, kind, md5)  # type: ignore[arg-type]
    rel = os.path.relpath(stored, db_root)
    if not os.path.isfile(stored):
        return [f"parameterfiles: stored {kind} param file {rel} is missing"]
    try:
        params = paramfiles.parse_param_file(stored)
    except Exception as exc:
        return [f"parameterfiles: stored {kind} param file {rel} is unreadable: "
                f"{_one_line(exc)}"]
    problems = []
    for ref in paramrefs.referenced_files(params, kind, base_dir=db_root):  # type: ignore
        written = ref.path
        if paramrefs.is_stored_reference(written):
            if not os.path.isfile(paramrefs.resolve_reference(db_root, written)):
                problems.append(f"{rel}: {ref.key} -> {written} does not resolve "
                                "(no such file in the database)")
        else:
            state = "exists outside the database" if os.path.exists(written) else "missing"
            report.notes.append(f"{rel}: {ref.key} -> {written} was not stored (missing at "
                                f"ingest; now {state})")
    return problems


# --------------------------------------------------------------------------------------------


def verify(db_root: str, full: bool = False) -> Report:
    """Check the database ``db_root``; see the module docstring for what is checked."""
    root = os.path.abspath(db_root)
    report = Report()
    if os.path.isfile(manifest_path(root)):
        try:
            with open(manifest_path(root), encoding="utf-8") as fh:
                json.load(fh)
        except (OSError, ValueError) as exc:
            report.problems.append(f"{manifest_path(root)}: unreadable manifest: "
                                   f"{_one_line(exc)}")
    keys: dict[str, pa.Table] = {}
    runs: dict[str, pa.Table] = {}
    for name in delta_tables(root):
        rows, counts = _check_table(root, name, full, report)
        if rows is not None:
            keys[name] = rows
        if counts is not None:
            runs[name] = counts
    metadata = keys.get("metadata")
    _check_trials(metadata, keys, report)
    completed = (pa.array([], pa.string()) if metadata is None
                 else pc.unique(metadata.column("sim_run")))
    _note_hidden(runs, completed, report)
    _check_param_files(root, report)
    return report

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
- per dendritic recording site (and threshold, for ``dendritic_spike_times``): a trial
  present more than once, or not listed in ``metadata``, or a trial of ``metadata`` missing
  while its folder holds the site for other trials (every trial of a folder records the same
  sites; a folder with no row of a site is taken as not recording it);
- a stored param file that is missing, or a reference into the database that resolves to no
  file, in a param file or in a stored ``.syn``/``.con`` header (:mod:`simlake.ops.verify_refs`).

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

from simlake.adapter import deltafiles as df_
from simlake.adapter.deltafiles import KEY
from simlake.manifest import manifest_path
from simlake.ops.tables import TRIAL_TABLES, delta_tables
from simlake.ops.verify_refs import check_param_files

#: Tables holding exactly one row per trial of ``metadata`` (``spike_times``: per threshold).
ONCE_PER_TRIAL = ("voltage_traces", "spike_times", "parameterfiles")
#: Tables holding, per recording site (and threshold), one row per trial of each folder that
#: records the site.
PER_SITE = ("dendritic_recordings", "dendritic_spike_times")
SITE = "recording_site"
#: Columns kept of the tables whose trials are counted (those a table has).
_TRIAL_COLUMNS = (KEY, "sim_run", SITE, "threshold")
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
    wanted = [c for c in _TRIAL_COLUMNS if c in snap.schema.names
              and c not in snap.partition_columns]
    try:
        pf = pq.ParquetFile(f.path)
        rows = pf.metadata.num_rows
        if full:  # every page decodes; batch by batch, so memory stays bounded
            for _batch in pf.iter_batches(batch_size=4096):
                pass
        table = pf.read(columns=[c for c in wanted if c in pf.schema_arrow.names])
        # delta-rs writes string_view: plain strings, for the kernels and to concatenate
        table = pa.table([df_.plain(c) for c in table.columns], names=table.column_names)
    except Exception as exc:  # any reason a reader would fail on this file
        return _FileResult([f"{where} is unreadable: {type(exc).__name__}: {_one_line(exc)}"])
    problems = []
    if f.num_records is not None and f.num_records != rows:
        problems.append(f"{where} holds {rows} rows, the Delta log says {f.num_records}")
    if KEY in table.column_names and table.num_rows:
        problems += _check_key_stats(snap, f, table.column(KEY), where)
    runs = (table.group_by("sim_run").aggregate([([], "count_all")])
            if "sim_run" in table.column_names else None)
    if not _counts_trials(name):
        return _FileResult(problems, None, runs)
    return _FileResult(problems, _with_partition_values(snap, f, table), runs)


def _counts_trials(name: str) -> bool:
    return name in ONCE_PER_TRIAL or name in PER_SITE or name == "metadata"


def _with_partition_values(snap: df_.TableSnapshot, f: df_.DataFile, table: pa.Table
                           ) -> pa.Table:
    """``table`` with the columns of :data:`_TRIAL_COLUMNS` the table has, in that order;
    partition columns (``recording_site``) filled from the file's partition values."""
    part = f.partition_values
    columns = []
    for c in _TRIAL_COLUMNS:
        if c in table.column_names:
            columns.append(table.column(c))
        elif c in part:
            typ = snap.schema.field(c).type
            columns.append(pa.array([part[c]] * table.num_rows, pa.string()).cast(typ))
    names = [c for c in _TRIAL_COLUMNS if c in table.column_names or c in part]
    return pa.table(columns, names=names)


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
    names = [c for c in _TRIAL_COLUMNS if c in snap.schema.names]
    rows = None
    if _counts_trials(name):
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
    done = pc.unique(metadata.column("sim_run"))
    for name in ONCE_PER_TRIAL + PER_SITE:
        rows = keys.get(name)
        if rows is None:
            continue
        visible = rows.filter(pc.is_in(rows.column("sim_run"), value_set=done))
        report.problems += _capped(_trial_findings(name, visible, metadata), name)


def _trial_findings(name: str, visible: pa.Table, metadata: pa.Table) -> list[str]:
    """Lines for the trials of ``visible`` (rows of completed folders of table ``name``)
    that are repeated, not in ``metadata``, or missing, per variant (site, threshold)."""
    variant_columns = [c for c in (SITE, "threshold") if c in visible.column_names]
    counts = visible.group_by([*variant_columns, KEY, "sim_run"]).aggregate(
        [([], "count_all")])
    variants = counts.group_by(variant_columns).aggregate([]).to_pylist() \
        if variant_columns else []
    if name in ONCE_PER_TRIAL and not variants:
        variants = [{}]  # no rows at all: every trial is missing
    found: list[str] = []
    all_trials = metadata.column(KEY)
    for variant in sorted(variants, key=lambda v: [str(v[c]) for c in variant_columns]):
        part = counts
        for column, value in variant.items():
            part = part.filter(pc.equal(part.column(column), pa.scalar(
                value, part.schema.field(column).type)))
        at = _variant_text(variant)
        found += _repeated(part, name, "appears", at)
        present = part.column(KEY)
        if name in PER_SITE:  # the trials of the folders that record this site
            trials = metadata.filter(pc.is_in(metadata.column("sim_run"),
                                              value_set=pc.unique(part.column("sim_run"))))
            trials = trials.column(KEY)
        else:
            trials = all_trials
        found += [f"{name}: trial {k} of metadata is missing{at}" for k in
                  sorted(set(trials.filter(pc.invert(pc.is_in(trials, present))).to_pylist()))]
        found += [f"{name}: trial {k} is not listed in metadata{at}" for k in
                  sorted(present.filter(pc.invert(pc.is_in(present, all_trials))).to_pylist())]
    return found


def _variant_text(variant: dict) -> str:
    """`` at site S (threshold T)`` for a variant of a per-trial table's rows."""
    text = f" at site {variant[SITE]}" if SITE in variant else ""
    if "threshold" in variant:
        text += f" (threshold {variant['threshold']})"
    return text


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
    refs = check_param_files(root)
    report.problems += _capped(refs.problems, "param files")
    report.notes += refs.notes
    return report

"""Discovery: find the sim-run folders of a simrun tree and classify their files.

Two layers (``docs/input-format.md``, "Tree" and "Files inside a sim-run folder"):

- :func:`classify_folder` is pure: it gets a folder's listing (file name -> size and mtime) and
  returns a :class:`SimRunFolder` saying which file is which, the trial numbers, and the
  listing-level defects. No I/O, so every naming variant is testable without a file system.
- :func:`discover` walks a tree with ``os.scandir`` (names and ``stat`` only, never contents),
  skips ``*_running`` folders, survives unreadable directories and symlink loops, and returns a
  :class:`SimrunTree` with the folders in ``sim_trial_index`` order.
"""

from __future__ import annotations

import logging
import os
import re
import stat as stat_mod
from collections.abc import Mapping
from dataclasses import dataclass, field

from simlake import schemas

log = logging.getLogger(__name__)

#: ``YYYYMMDD-HHMM_<uid>``, ``<uid>`` = ``<pid>`` (old era) or ``seed<seed>_pid<pid>`` (new era).
SIM_RUN_FOLDER_RE = re.compile(
    r"^[0-9]{8}-[0-9]{4}_(?:(?P<pid_old>[0-9]+)|seed(?P<seed>[0-9]+)_pid(?P<pid_new>[0-9]+))$"
)
RUNNING_SUFFIX = "_running"

_SYNAPSES_RE = re.compile(r"^simulation_run(?P<nr>[0-9]+)_synapses\.csv$")
_CELLS_RE = re.compile(r"^simulation_run(?P<nr>[0-9]+)_presynaptic_cells\.csv$")
_DEND_SUFFIX = "_vm_dend_traces.csv"
_VOLTAGE_ANY_RE = re.compile(r"_vm_all_traces\.(?:csv|npz)$")
#: Names that a data file of a sim-run folder can have (for entries that are not regular files).
_DATA_NAME_RE = re.compile(r"(?:^simulation_run[0-9]+_(?:synapses|presynaptic_cells)\.csv"
                           r"|_vm_all_traces\.(?:csv|npz)|_vm_dend_traces\.csv|_model\.param)$")


@dataclass(frozen=True)
class FileStat:
    """Size and modification time of one file, as the listing saw it."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class SimRunFolder:
    """One sim-run folder: which file is which, and what is wrong with the listing.

    All file attributes hold file *names* inside :attr:`abspath`; paths in :attr:`problems`
    are absolute.
    """

    sim_run: str
    abspath: str
    uid: str
    era: str
    voltage_file: str | None
    voltage_format: str | None
    synapse_files: dict[int, str]
    cell_files: dict[int, str]
    dendritic_files: dict[str, str]
    neuron_param: str | None
    network_param: str | None
    trialnrs: tuple[int, ...] | None
    files: dict[str, FileStat]
    ignored: tuple[str, ...] = ()
    problems: tuple[tuple[str, str], ...] = ()

    def __hash__(self) -> int:  # the dict fields are unhashable; identity is the location
        return hash((self.sim_run, self.abspath))

    def sim_trial_index(self, trialnr: int) -> str:
        """The ``sim_trial_index`` of trial ``trialnr`` of this folder."""
        return schemas.sim_trial_index(self.sim_run, trialnr)

    def path_of(self, name: str) -> str:
        """Absolute path of the file ``name`` inside this folder."""
        return f"{self.abspath}/{name}"

    @property
    def total_bytes(self) -> int:
        """Bytes of all files the ingest of this folder uses."""
        return sum(s.size for s in self.files.values())

    @property
    def n_trial_files(self) -> int:
        """Number of usable per-trial files (synapse plus presynaptic-cell files)."""
        return len(self.synapse_files) + len(self.cell_files)


@dataclass(frozen=True)
class SimrunTree:
    """Result of :func:`discover`.

    ``skipped_running`` holds ``*_running`` folders as paths relative to ``root``;
    ``problems`` holds ``(absolute path, reason)`` for unreadable directories, symlink loops and
    other tree-level findings (per-folder defects are in each folder's ``problems``).
    """

    root: str
    folders: tuple[SimRunFolder, ...]
    skipped_running: tuple[str, ...] = ()
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def n_folders(self) -> int:
        """Number of sim-run folders found."""
        return len(self.folders)

    @property
    def n_trial_files(self) -> int:
        """Number of usable synapse plus presynaptic-cell files."""
        return sum(f.n_trial_files for f in self.folders)

    @property
    def total_bytes(self) -> int:
        """Bytes of all files the ingest of the whole tree uses."""
        return sum(f.total_bytes for f in self.folders)

    @property
    def n_problems(self) -> int:
        """Tree-level plus folder-level problems."""
        return len(self.problems) + sum(len(f.problems) for f in self.folders)

    def folder(self, sim_run: str) -> SimRunFolder:
        """The folder with this ``sim_run``; ``KeyError`` if there is none."""
        for f in self.folders:
            if f.sim_run == sim_run:
                return f
        raise KeyError(sim_run)


def parse_sim_run_name(name: str) -> tuple[str, str, str] | None:
    """``(uid, era, pid)`` of a sim-run folder name, or None if ``name`` is not one."""
    m = SIM_RUN_FOLDER_RE.match(name)
    if m is None:
        return None
    if m.group("pid_old") is not None:
        pid = m.group("pid_old")
        return pid, "old", pid
    return f"seed{m.group('seed')}_pid{m.group('pid_new')}", "new", m.group("pid_new")


def _trial_files(pattern: re.Pattern[str], names: list[str], abspath: str,
                 problems: list[tuple[str, str]], unusable: frozenset[str] = frozenset()
                 ) -> tuple[dict[int, str], set[int], set[str]]:
    """Trial number -> name for names matching ``pattern``; duplicate numbers dropped and reported.

    Returns the kept mapping, every trial number seen (duplicates and ``unusable`` names, i.e.
    entries that are not readable files, included) and the names matched.
    """
    by_nr: dict[int, list[str]] = {}
    for name in names:
        m = pattern.match(name)
        if m is not None:
            by_nr.setdefault(int(m.group("nr")), []).append(name)
    kept: dict[int, str] = {}
    for nr, found in sorted(by_nr.items()):
        if len(found) == 1:
            if found[0] not in unusable:
                kept[nr] = found[0]
            continue
        for name in sorted(found):
            others = ", ".join(o for o in sorted(found) if o != name)
            problems.append((f"{abspath}/{name}",
                             f"duplicate trial number {nr} (also {others}); none of them is used"))
    matched = {n for found in by_nr.values() for n in found}
    return kept, set(by_nr), matched


def classify_folder(sim_run: str, abspath: str, entries: Mapping[str, FileStat],
                    unreadable: Mapping[str, str] | None = None) -> SimRunFolder:
    """Classify the files of one sim-run folder from its listing (pure, no I/O).

    ``sim_run`` is the folder path relative to the tree root (its last component must be a
    sim-run folder name), ``abspath`` its absolute path, ``entries`` maps the names of the
    regular files in it to their :class:`FileStat`. ``unreadable`` maps names of entries that
    carry a data-file name but cannot be read as one (a FIFO, a directory, ...) to the reason:
    each is a problem, and a trial file among them still owns its trial number (so the voltage
    columns keep their meaning) while it is not used.

    Raises ``ValueError`` if the last component of ``sim_run`` is not a sim-run folder name.
    """
    name = sim_run.rsplit("/", 1)[-1]
    parsed = parse_sim_run_name(name)
    if parsed is None:
        raise ValueError(f"not a sim-run folder name: {name!r}")
    uid, era, pid = parsed
    abspath = abspath.rstrip("/") or "/"
    unreadable = dict(unreadable or {})
    names = sorted(entries)
    problems: list[tuple[str, str]] = [(f"{abspath}/{n}", reason)
                                       for n, reason in sorted(unreadable.items())]
    used: set[str] = set()
    recognised: set[str] = set()

    # somatic voltage: csv preferred, npz only where there is no csv
    csv_name, npz_name = f"{uid}_vm_all_traces.csv", f"{uid}_vm_all_traces.npz"
    voltage_file: str | None = None
    voltage_format: str | None = None
    if csv_name in entries:
        voltage_file, voltage_format = csv_name, "csv"
    elif npz_name in entries:
        voltage_file, voltage_format = npz_name, "npz"
    else:
        strays = [n for n in names if _VOLTAGE_ANY_RE.search(n)]
        hint = f" (found {', '.join(strays)}, whose prefix is not '{uid}_')" if strays else ""
        problems.append((abspath, f"no voltage file {csv_name} or {npz_name}{hint}"))
    if voltage_file is not None:
        used.add(voltage_file)
        recognised.add(voltage_file)

    # per-trial files
    trial_names = sorted(set(names) | set(unreadable))
    bad = frozenset(unreadable)
    synapse_files, synapse_nrs, matched = _trial_files(_SYNAPSES_RE, trial_names, abspath,
                                                       problems, bad)
    recognised |= matched
    cell_files, cell_nrs, matched = _trial_files(_CELLS_RE, trial_names, abspath, problems, bad)
    recognised |= matched
    for nr in sorted(set(synapse_files) - cell_nrs):
        problems.append((f"{abspath}/{synapse_files[nr]}",
                         f"trial {nr} has a synapse file but no presynaptic-cell file"))
    for nr in sorted(set(cell_files) - synapse_nrs):
        problems.append((f"{abspath}/{cell_files[nr]}",
                         f"trial {nr} has a presynaptic-cell file but no synapse file; "
                         "not used (the voltage columns are numbered by the synapse files)"))
        del cell_files[nr]
    used |= set(synapse_files.values()) | set(cell_files.values())
    # voltage column i belongs to the i-th smallest trial number of the synapse files; a number
    # whose synapse files are duplicated still owns its voltage column
    trialnrs = tuple(sorted(synapse_nrs)) if synapse_nrs else None

    # dendritic recordings: <uid>_<label>_vm_dend_traces.csv or seed_<pid>_<label>_...
    by_label: dict[str, list[str]] = {}
    for n in names:
        if not n.endswith(_DEND_SUFFIX):
            continue
        for prefix in (f"{uid}_", f"seed_{pid}_"):
            if n.startswith(prefix) and len(n) > len(prefix) + len(_DEND_SUFFIX):
                by_label.setdefault(n[len(prefix):-len(_DEND_SUFFIX)], []).append(n)
                recognised.add(n)
                break
    dendritic_files: dict[str, str] = {}
    for label, found in sorted(by_label.items()):
        if len(found) == 1:
            dendritic_files[label] = found[0]
            continue
        for n in sorted(found):
            problems.append((f"{abspath}/{n}", f"duplicate recording site {label!r} "
                             f"({', '.join(sorted(found))}); none of them is used"))
    used |= set(dendritic_files.values())

    # parameter files
    params: dict[str, str | None] = {}
    for kind in ("neuron", "network"):
        pname = f"{uid}_{kind}_model.param"
        if pname in entries:
            params[kind] = pname
            used.add(pname)
            recognised.add(pname)
        else:
            params[kind] = None
            problems.append((abspath, f"no {kind} parameter file {pname}"))

    # everything not used and not reported: markers, leftovers, a superseded npz
    ignored = tuple(n for n in names if n not in used and (n not in recognised or n == npz_name))
    return SimRunFolder(
        sim_run=sim_run,
        abspath=abspath,
        uid=uid,
        era=era,
        voltage_file=voltage_file,
        voltage_format=voltage_format,
        synapse_files=synapse_files,
        cell_files=cell_files,
        dendritic_files=dendritic_files,
        neuron_param=params["neuron"],
        network_param=params["network"],
        trialnrs=trialnrs,
        files={n: entries[n] for n in sorted(used)},
        ignored=ignored,
        problems=tuple(problems),
    )


# --------------------------------------------------------------------------- the walk


@dataclass
class _Walk:
    root: str
    folders: list[SimRunFolder] = field(default_factory=list)
    skipped_running: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    visited: dict[tuple[int, int], str] = field(default_factory=dict)  # (dev, ino) -> relpath
    symlinks: list[tuple[str, str]] = field(default_factory=list)  # (abspath, relpath) to follow

    def rel(self, relpath: str, name: str) -> str:
        return f"{relpath}/{name}" if relpath else name


def _file_type(mode: int) -> str:
    for test, name in ((stat_mod.S_ISFIFO, "a FIFO"), (stat_mod.S_ISSOCK, "a socket"),
                       (stat_mod.S_ISCHR, "a character device"),
                       (stat_mod.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a file"


def _dir_key(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _walk_dir(walk: _Walk, abspath: str, relpath: str) -> None:
    """Depth-first walk of one real directory; symlinked directories are queued, not entered."""
    stack = [(abspath, relpath)]
    while stack:
        path, rel = stack.pop()
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError as exc:
            walk.problems.append((path, f"cannot list directory: {exc.strerror or exc}"))
            continue
        files: dict[str, FileStat] = {}
        unreadable: dict[str, str] = {}
        subdirs: list[tuple[str, str]] = []
        name = os.path.basename(path)
        is_sim_run = bool(rel) and parse_sim_run_name(name) is not None
        for entry in sorted(entries, key=lambda e: e.name):
            child_rel = walk.rel(rel, entry.name)
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError as exc:
                walk.problems.append((entry.path, f"cannot stat: {exc.strerror or exc}"))
                continue
            if is_dir and is_sim_run and _DATA_NAME_RE.search(entry.name):
                unreadable[entry.name] = "is a directory, not a data file; not used"
                continue
            if is_dir:
                if entry.name.endswith(RUNNING_SUFFIX):
                    walk.skipped_running.append(child_rel)
                elif is_link:
                    walk.symlinks.append((entry.path, child_rel))
                else:
                    subdirs.append((entry.path, child_rel))
                continue
            if is_sim_run:
                try:
                    st = entry.stat(follow_symlinks=True)
                except OSError as exc:
                    walk.problems.append((entry.path, f"cannot stat: {exc.strerror or exc}"))
                    continue
                if stat_mod.S_ISREG(st.st_mode):
                    files[entry.name] = FileStat(st.st_size, st.st_mtime_ns)
                elif _DATA_NAME_RE.search(entry.name):
                    unreadable[entry.name] = (f"not a regular file ({_file_type(st.st_mode)}); "
                                              "cannot be read as data, not used")
            elif _VOLTAGE_ANY_RE.search(entry.name):
                walk.problems.append((entry.path, "voltage file outside a sim-run folder (the "
                                      "folder name is not YYYYMMDD-HHMM_<uid>); not ingested"))
        if is_sim_run:
            walk.folders.append(classify_folder(rel, path, files, unreadable))
        # real subdirectories: mark visited now, so a symlink to them is recognised later
        for sub_abs, sub_rel in reversed(subdirs):
            try:
                key = _dir_key(os.stat(sub_abs))
            except OSError as exc:
                walk.problems.append((sub_abs, f"cannot stat: {exc.strerror or exc}"))
                continue
            if key in walk.visited:  # bind mounts and the like
                walk.problems.append((sub_abs, f"same directory as {walk.visited[key]!r}; "
                                      "not walked twice"))
                continue
            walk.visited[key] = sub_rel
            stack.append((sub_abs, sub_rel))


def _follow_symlink(walk: _Walk, link_abs: str, link_rel: str) -> None:
    try:
        key = _dir_key(os.stat(link_abs))
    except OSError as exc:
        walk.problems.append((link_abs, f"cannot follow symlink: {exc.strerror or exc}"))
        return
    if key in walk.visited:
        first = walk.visited[key] or "."
        target = os.path.realpath(link_abs)
        parent = os.path.realpath(os.path.dirname(link_abs))
        if parent == target or parent.startswith(target.rstrip("/") + "/"):
            reason = f"symlink loop: points to its ancestor {first!r}; not followed"
        else:
            reason = f"symlink to a directory already walked as {first!r}; not followed"
        walk.problems.append((link_abs, reason))
        return
    walk.visited[key] = link_rel
    _walk_dir(walk, link_abs, link_rel)


def discover(simresult_path: str) -> SimrunTree:
    """Walk ``simresult_path`` and classify every sim-run folder below it.

    Reads directory listings and file metadata only. Folders named ``*_running`` are skipped
    with everything below them; symlinked directories are followed once per real directory,
    after the real tree (so a folder reached both ways keeps its real path); unreadable
    directories and symlink loops are reported in ``problems``. Folders come sorted by
    ``sim_run + "/"``, the order of their ``sim_trial_index`` values.

    Raises ``NotADirectoryError``/``FileNotFoundError`` if ``simresult_path`` is not a directory.
    """
    root = os.path.abspath(simresult_path)
    if not os.path.isdir(root):
        if os.path.exists(root):
            raise NotADirectoryError(root)
        raise FileNotFoundError(root)
    walk = _Walk(root=root)
    walk.visited[_dir_key(os.stat(root))] = ""
    if parse_sim_run_name(os.path.basename(root)) is not None:
        walk.problems.append((root, "the root itself is a sim-run folder; its files are not "
                              "ingested (point simresult_path at its parent)"))
    _walk_dir(walk, root, "")
    while walk.symlinks:  # symlinks found inside followed symlinks are appended as we go
        link_abs, link_rel = walk.symlinks.pop(0)
        _follow_symlink(walk, link_abs, link_rel)
    folders = sorted(walk.folders, key=lambda f: f.sim_run + "/")
    log.info("discovered %d sim-run folders under %s (%d skipped as running, %d problems)",
             len(folders), root, len(walk.skipped_running), len(walk.problems))
    return SimrunTree(
        root=root,
        folders=tuple(folders),
        skipped_running=tuple(sorted(walk.skipped_running)),
        problems=tuple(walk.problems),
    )

"""File references of param files: where they are in the dict, how they resolve.

A source param file references files by absolute path (or relative to its folder); a stored
copy references the database's copies as ISF does, ``reldb://<folder>/<file>`` (relative to the
database root), or, written by older simlake versions, by plain db-relative paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["neuron", "network"]
KeyPath = tuple[Any, ...]

#: ISF's scheme for a path relative to the database root (``data_base.dbopen``).
RELDB = "reldb://"
#: The last key of every reference's key path (see :func:`reference_slots`) ...
REFERENCE_KEYS = ("filename", "distributionFile", "connectionFile")
#: ... and the key whose list entries are references.
REFERENCE_LIST_KEY = "recordingSites"


def key_string(key_path: Iterable[Any]) -> str:
    """``("network", "L2", "synapses", "distributionFile")`` -> ``network.L2.synapses...``;
    list indices as ``[i]``."""
    parts = tuple(key_path)
    if all(type(part) is str for part in parts):  # a network file's 556: one join each
        return ".".join(parts)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass(frozen=True)
class Reference:
    """A file referenced by a param file.

    ``key_path``: where in the dict (list indices as int); ``path``: the value as written;
    ``abspath``: ``path`` resolved (relative paths against the ``base_dir`` given);
    ``category``: the managed folder key it belongs in (``morphology``, ``recsites_folder``,
    ``syn_folder``, ``con_folder``).
    """

    key_path: KeyPath
    path: str
    abspath: str
    category: str

    @property
    def key(self) -> str:
        """The key path as one dotted string (not cached: Python 3.11's cached_property takes
        a lock, dearer than the join of a network file's key paths)."""
        return key_string(self.key_path)


def resolve_written(path: str, base_dir: str | None) -> str:
    """Absolute path of a reference as written in a source param file (relative: against
    ``base_dir``, default the current directory)."""
    if os.path.isabs(path):
        return os.path.normpath(path)
    return os.path.normpath(os.path.join(base_dir if base_dir is not None else os.getcwd(), path))


def reference_slots(params: Mapping, kind: Kind) -> Iterator[tuple[KeyPath, Any, Any, str]]:
    """Every place where a parsed param dict of ``kind`` holds a file reference, present or
    not yet checked: ``(key path, container, key or index, category)``, with the value at
    ``container[key]`` (any type).

    neuron: ``neuron.filename`` (morphology) and ``sim.recordingSites``, each entry of it when it
    is a list or tuple (recsites_folder); network: ``network.<celltype>.synapses.distributionFile``
    (syn_folder) and ``...connectionFile`` (con_folder).
    """
    if kind == "neuron":
        neuron = params.get("neuron")
        if isinstance(neuron, Mapping) and "filename" in neuron:
            yield ("neuron", "filename"), neuron, "filename", "morphology"
        sim = params.get("sim")
        if isinstance(sim, Mapping) and REFERENCE_LIST_KEY in sim:
            sites = sim[REFERENCE_LIST_KEY]
            if isinstance(sites, (list, tuple)):
                for i in range(len(sites)):
                    yield ("sim", REFERENCE_LIST_KEY, i), sites, i, "recsites_folder"
            else:
                yield ("sim", REFERENCE_LIST_KEY), sim, REFERENCE_LIST_KEY, "recsites_folder"
    elif kind == "network":
        network = params.get("network")
        if isinstance(network, Mapping):
            for celltype, cfg in network.items():
                syn = cfg.get("synapses") if isinstance(cfg, Mapping) else None
                if not isinstance(syn, Mapping):
                    continue
                for key, category in (("distributionFile", "syn_folder"),
                                      ("connectionFile", "con_folder")):
                    if key in syn:
                        yield ("network", celltype, "synapses", key), syn, key, category
    else:
        raise ValueError(f"kind must be 'neuron' or 'network', not {kind!r}")


def referenced_files(params: Mapping, kind: Kind, base_dir: str | None = None) -> list[Reference]:
    """The file references of a parsed param dict of ``kind`` ``"neuron"`` or ``"network"``
    (the string values at the places :func:`reference_slots` lists).

    Relative paths are resolved against ``base_dir`` (default: the current directory). Absent
    keys, empty strings and non-string values are skipped.
    """
    refs: list[Reference] = []
    resolved: dict[str, str] = {}  # a network file names one .syn and one .con many times
    for key_path, container, key, category in reference_slots(params, kind):
        value = container[key]
        if isinstance(value, str) and value.strip():
            abspath = resolved.get(value)
            if abspath is None:
                abspath = resolved[value] = resolve_written(value, base_dir)
            refs.append(Reference(key_path, value, abspath, category))
    return refs


def reldb_reference(db_relative: str) -> str:
    """ISF's reference to a file at the ``/``-separated path ``db_relative`` in the database."""
    return RELDB + db_relative


def is_stored_reference(ref: str) -> bool:
    """Whether ``ref`` (a reference in a stored param file) points into the database:
    ``reldb://...``, or a plain relative path (older simlake); absolute: missing at ingest."""
    return ref.startswith(RELDB) or not os.path.isabs(ref)


def resolve_reference(db_root: str, ref: str) -> str:
    """Absolute path of a reference as stored in the database: ``reldb://<folder>/<file>``
    (resolved against ``db_root``, as ISF's ``dbopen`` does), a plain db-relative path (written
    by older simlake versions), or absolute (the file was missing at ingest)."""
    if ref.startswith(RELDB):
        ref = ref[len(RELDB):]
    elif os.path.isabs(ref):
        return ref
    return os.path.join(os.path.abspath(db_root), *[p for p in ref.split("/") if p])

"""Parameter files: their file references, and storing them in a database.

Runs on Spark executors: pure Python, file system only, idempotent, safe when several processes
store the same files at once. Parsing is :mod:`simlake.paramparse` (never executes code).

Storage rules (``store_parameter_file``):

- the param file is stored once as ``parameterfiles_{cell|network}_folder/<md5>``, ``<md5>`` the
  md5 hex of its *original* bytes (= ``hash_neuron`` / ``hash_network`` of the ``parameterfiles``
  table);
- every file it references is copied into its managed folder as ``<md5>_<basename>``, ``<md5>``
  the md5 hex of the *stored* bytes of that copy (content addressed: equal names mean equal bytes,
  so the name is collision free and concurrent writers agree);
- every rewritten reference (in the param file and in the ``.syn``/``.con`` headers) is ISF's
  ``reldb://<folder>/<file>``: relative to the database root, e.g.
  ``reldb://morphology/<md5>_cell.hoc``; resolve it with :func:`resolve_reference` (which also
  reads the plain db-relative paths older simlake versions wrote);
- the param file is rewritten textually: only the quoted path literals of the references are
  replaced, comments and layout stay, so parsing the stored copy gives the original dict with only
  those paths changed;
- a referenced file that does not exist is reported in ``StoredParamFile.missing`` and its
  reference is left as it was;
- the outcome (references, missing references, or the reason the file was rejected) is recorded
  once per md5 in ``_simlake_paramfiles/<kind>/<md5>.json`` (see :mod:`simlake.paramrecords`): a
  param file whose md5 is recorded costs one md5 and no parse.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simlake.errors import SimrunFormatError
from simlake.fsutil import create_once, put_content_addressed
from simlake.layout import FOLDER_KEYS
from simlake.paramparse import (
    KeyPath,
    Scanned,
    ast_spans,
    decode_param_bytes,
    parse_param_text,
    replace_spans,
    rewrite_param_text,  # noqa: F401 - part of this module's interface
    scan_param_text,
    string_value,
)
from simlake.paramrecords import MissingReference, Outcome, read_outcome, write_outcome
from simlake.paramrefs import (  # noqa: F401 - Reference, resolve_reference: this interface
    Kind,
    Reference,
    is_stored_reference,
    key_string,
    referenced_files,
    reldb_reference,
    resolve_reference,
    resolve_written,
)

log = logging.getLogger(__name__)

Scanner = Callable[..., Scanned]  # scan_param_text(text, path, locate=...)


#: Managed folder of the stored param files of each kind ("cell" = neuron).
PARAM_FOLDER: dict[str, str] = {
    "neuron": FOLDER_KEYS["parameterfiles_cell_folder"],
    "network": FOLDER_KEYS["parameterfiles_network_folder"],
}

_MAX_NAME = 255


# --------------------------------------------------------------------------------------------
# parsing


def parse_param_file(path: str) -> dict:
    """Read and parse the param file at ``path`` (see :func:`parse_param_text`)."""
    with open(path, "rb") as fh:
        text, _ = decode_param_bytes(fh.read())
    return parse_param_text(text, path)


def md5_file(path: str) -> str:
    """md5 hex digest of the bytes of the file at ``path``."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# storing


@dataclass(frozen=True)
class StoredParamFile:
    """Outcome of :func:`store_parameter_file` for one source file.

    ``md5``: hex digest of the original bytes; ``stored_path``: the stored copy relative to the
    database root (``parameterfiles_cell_folder/<md5>``); ``references``: dotted key path -> the
    ``reldb://`` reference it was rewritten to; ``missing``: references left as they were;
    ``sources``: dotted key path -> absolute path of the referenced file in the raw tree (as
    resolved from this source's folder, whether it exists or not; unknown for references of a
    copy stored by an older simlake version);
    ``created``: this call wrote the param file (False: it was there already);
    ``parsed``: this call parsed the source (False: the md5's recorded outcome was reused);
    ``conflict`` (only with ``verify=True``): set when the existing stored copy differs from what
    this call would have written (the same param file referencing files whose content changed);
    the existing copy is kept.
    """

    kind: str
    source_path: str
    md5: str
    stored_path: str
    references: dict[str, str] = field(default_factory=dict)
    missing: tuple[MissingReference, ...] = ()
    created: bool = False
    conflict: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    parsed: bool = True


def stored_for(outcome: Outcome, src_path: str, created: bool = False, parsed: bool = False,
               conflict: str | None = None) -> StoredParamFile:
    """The :class:`StoredParamFile` of the source ``src_path`` whose md5 has ``outcome``
    (raises its ``SimrunFormatError`` when the outcome is a rejection)."""
    if outcome.rejected is not None:
        raise SimrunFormatError(src_path, outcome.rejected)
    base = os.path.dirname(src_path)
    resolved: dict[str, str] = {}  # a network file names the same .syn/.con many times
    for path in outcome.written.values():
        if path not in resolved:
            resolved[path] = resolve_written(path, base)
    return StoredParamFile(
        kind=outcome.kind, source_path=src_path, md5=outcome.md5,
        stored_path=f"{PARAM_FOLDER[outcome.kind]}/{outcome.md5}",
        references=dict(outcome.references), missing=outcome.missing, created=created,
        conflict=conflict, parsed=parsed,
        sources={key: resolved[path] for key, path in outcome.written.items()})


class _Missing(Exception):
    pass


# "# <label>: <reference>"; a label never starts a path ("C:\", "reldb://")
_HEADER_LABEL = re.compile(r"^\s*#\s*(?:[^:/\\]*:(?![/\\])\s*)?")


def header_reference(data: bytes) -> tuple[int, int, str] | None:
    """Byte span and text of the file reference on the 2nd header line of a .syn/.con file.

    The line is ``# <label>: <reference>`` (``# corresponding to cell: <name>``) or
    ``# <reference>``.
    """
    lines = data.split(b"\n", 2)
    if len(lines) < 2 or not lines[1].lstrip().startswith(b"#"):
        return None
    text, codec = decode_param_bytes(lines[1].rstrip(b"\r"))
    m = _HEADER_LABEL.match(text)
    if m is None:
        return None
    ref = text[m.end():].rstrip()
    if not ref:
        return None
    start = len(lines[0]) + 1 + len(text[: m.end()].encode(codec))
    return start, start + len(ref.encode(codec)), ref


class _Store:
    """Copies referenced files into one database, caching by source path within one call."""

    def __init__(self, db_root: str, morphology_hint: str | None = None) -> None:
        self.db_root = os.path.abspath(db_root)
        self.morphology_hint = morphology_hint
        self.done: dict[tuple[str, str], str] = {}
        self.missing: list[MissingReference] = []

    def store(self, category: str, abspath: str, key: str) -> str:
        """Copy ``abspath`` into ``category``; return its ``reldb://`` reference or raise
        _Missing."""
        cache_key = (category, abspath)
        if cache_key in self.done:
            return self.done[cache_key]
        if not os.path.isfile(abspath):
            raise _Missing("no such file")
        try:
            with open(abspath, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise _Missing(f"cannot read: {exc.strerror or exc}") from None
        if category in ("syn_folder", "con_folder"):
            data = self._rewrite_header(category, abspath, data, key)
        digest = hashlib.md5(data).hexdigest()
        base = os.path.basename(abspath)[: _MAX_NAME - len(digest) - 1]
        name = f"{digest}_{base}"
        folder = FOLDER_KEYS[category]
        put_content_addressed(os.path.join(self.db_root, folder, name), data)
        ref = reldb_reference(f"{folder}/{name}")
        self.done[cache_key] = ref
        return ref

    def _rewrite_header(self, category: str, abspath: str, data: bytes, key: str) -> bytes:
        found = header_reference(data)
        if found is None:
            return data
        start, end, ref = found
        target_category, suffix = (("morphology", ".hoc") if category == "syn_folder"
                                   else ("syn_folder", ".syn"))
        candidate = resolve_written(ref, os.path.dirname(abspath))
        candidates = [candidate]
        if not os.path.splitext(ref)[1]:
            candidates.append(candidate + suffix)
        target = next((c for c in candidates if os.path.isfile(c)), None)
        hint = self.morphology_hint
        if target is None and category == "syn_folder" and hint and os.path.isfile(hint):
            # "corresponding to cell: <name>" names the sim-run's morphology by file name or stem
            name = os.path.basename(ref.replace("\\", "/"))
            if name in (os.path.basename(hint), os.path.splitext(os.path.basename(hint))[0]):
                target = hint
        header_key = f"{key}[header]"
        if target is None:
            # a bare cell name ("corresponding to cell: 86_L5_...") is no file reference
            if "/" in ref or "\\" in ref or ref.endswith(suffix):
                self.missing.append(MissingReference(header_key, ref, "no such file"))
            return data
        try:
            stored = self.store(target_category, target, header_key)
        except _Missing as exc:
            self.missing.append(MissingReference(header_key, ref, str(exc)))
            return data
        return data[:start] + stored.encode("utf-8") + data[end:]


def stored_param_path(db_root: str, kind: Kind, md5: str) -> str:
    """Absolute path of the stored param file of ``kind`` with hash ``md5``."""
    return os.path.join(os.path.abspath(db_root), PARAM_FOLDER[kind], md5)


def _outcome_of_stored_copy(db_root: str, kind: Kind, digest: str) -> Outcome | None:
    """The outcome read back from a stored copy that has no record (None if there is no copy):
    its in-database references, and the absolute ones, which were missing when it was stored."""
    try:
        stored = parse_param_file(stored_param_path(db_root, kind, digest))
    except FileNotFoundError:
        return None
    references: dict[str, str] = {}
    written: dict[str, str] = {}
    missing: list[MissingReference] = []
    for ref in referenced_files(stored, kind, base_dir=db_root):
        if is_stored_reference(ref.path):
            references[ref.key] = ref.path
        else:
            written[ref.key] = ref.path
            reason = ("no such file" if not os.path.exists(ref.path)
                      else "missing when the param file was first stored")
            missing.append(MissingReference(ref.key, ref.path, reason))
    return Outcome(kind=kind, md5=digest, references=references, written=written,
                   missing=tuple(missing))


def known_outcome(db_root: str, kind: Kind, md5: str) -> Outcome | None:
    """The outcome of param file ``kind``/``md5`` if the database has it: its record, else (a
    copy stored without one) read back from the stored copy and recorded."""
    outcome = read_outcome(db_root, kind, md5)
    if outcome is None and os.path.exists(stored_param_path(db_root, kind, md5)):
        outcome = _outcome_of_stored_copy(db_root, kind, md5)
        if outcome is not None:
            write_outcome(db_root, outcome)
    return outcome


def _reference_spans(scanned: Scanned, text: str, values: dict[KeyPath, str], src_path: str
                     ) -> dict[KeyPath, tuple[int, int]]:
    """The span of the literal at each key path of ``values``: where the fast parser located
    it, each span checked to hold a literal of the value there (a cheap guard: never store a
    corrupted file), else located by ``ast``."""
    spans: dict[KeyPath, Any] = {}
    if scanned.locations is not None:
        spans = {k: scanned.locations.span(k) for k in values}
        literals: dict[str, Any] = {}
        for key_path, span in spans.items():
            if span is None:
                break
            literal = text[span[0]:span[1]]
            if literal not in literals:
                literals[literal] = string_value(literal)
            if literals[literal] != values[key_path]:
                break
        else:
            return spans
    return ast_spans(text, list(values), src_path)  # a text the fast parser did not take


def store_parameter_file(src_path: str, db_root: str, kind: Kind, verify: bool = False,
                         morphology_hint: str | None = None,
                         scan: Scanner = scan_param_text) -> StoredParamFile:
    """Store the param file ``src_path`` of ``kind`` (``"neuron"``/``"network"``) in ``db_root``.

    Copies the files it references into the managed folders, then writes the param file, with
    its references rewritten to ``reldb://`` references, as
    ``parameterfiles_{cell|network}_folder/<md5>`` (see the module docstring), then records the
    outcome for its md5. Idempotent and safe to run concurrently; the first stored copy of a
    given md5 is kept.

    When the md5 has an outcome already (recorded, or a stored copy), only the source's md5 is
    computed: no parse (``parsed`` False). A recorded rejection raises again. With ``verify``,
    everything is recomputed and ``conflict`` says whether the stored copy differs from what
    would be written now (the referenced files changed in between).

    ``morphology_hint`` (network files): the absolute path of the morphology of the same
    sim-run (``StoredParamFile.sources["neuron.filename"]`` of its neuron file). A ``.syn``
    header naming the cell by a path that does not resolve from the ``.syn``'s folder, but whose
    file name or stem is that morphology's, is rewritten to point at the copy of that morphology.

    ``scan``: the parser (:func:`simlake.paramparse.scan_param_text`; tests count its calls).

    Raises ``SimrunFormatError`` if the file is not a param dict literal, ``OSError`` if it cannot
    be read; missing referenced files are returned in ``.missing``, not raised.
    """
    src_path = os.path.abspath(src_path)
    outcome, created, parsed, conflict = store_outcome(src_path, db_root, kind, verify,
                                                       morphology_hint, scan)
    return stored_for(outcome, src_path, created=created, parsed=parsed, conflict=conflict)


def store_outcome(src_path: str, db_root: str, kind: Kind, verify: bool = False,
                  morphology_hint: str | None = None, scan: Scanner = scan_param_text
                  ) -> tuple[Outcome, bool, bool, str | None]:
    """:func:`store_parameter_file`, returning ``(outcome, created, parsed, conflict)``: the
    md5's outcome (a rejection is returned, not raised), whether this call wrote the stored
    copy, whether it parsed the file, and the ``verify`` conflict."""
    if kind not in PARAM_FOLDER:
        raise ValueError(f"kind must be 'neuron' or 'network', not {kind!r}")
    src_path = os.path.abspath(src_path)
    with open(src_path, "rb") as fh:
        data = fh.read()
    digest = hashlib.md5(data).hexdigest()
    if not verify:
        outcome = known_outcome(db_root, kind, digest)
        if outcome is not None:
            return outcome, False, False, None
    text, codec = decode_param_bytes(data)
    try:
        scanned = scan(text, src_path, locate=True)
    except SimrunFormatError as exc:
        rejected = Outcome(kind=kind, md5=digest, rejected=exc.reason)
        write_outcome(db_root, rejected)
        return rejected, False, True, None

    store = _Store(db_root, morphology_hint)
    replacements: dict[KeyPath, str] = {}
    written: dict[KeyPath, str] = {}
    refs = referenced_files(scanned.value, kind, base_dir=os.path.dirname(src_path))
    for ref in refs:
        try:
            replacements[ref.key_path] = store.store(ref.category, ref.abspath, ref.key)
            written[ref.key_path] = ref.path
        except _Missing as exc:
            store.missing.append(MissingReference(ref.key, ref.path, str(exc)))
    new_text = text
    if replacements:
        spans = _reference_spans(scanned, text, written, src_path)
        new_text = replace_spans(text, spans, replacements)
    try:
        new_data = new_text.encode(codec)
    except UnicodeEncodeError:
        new_data = new_text.encode("utf-8")

    target = stored_param_path(db_root, kind, digest)
    created = create_once(target, new_data)  # its presence means the copies are there
    outcome = Outcome(kind=kind, md5=digest,
                      references={key_string(k): v for k, v in replacements.items()},
                      written={ref.key: ref.path for ref in refs}, missing=tuple(store.missing))
    conflict = None
    if not created:
        with open(target, "rb") as fh:
            if fh.read() != new_data:
                conflict = ("stored copy differs (referenced files changed since it was stored); "
                            "kept the stored copy")
                log.warning("%s: %s", src_path, conflict)
    if conflict is None:  # the record describes the stored copy; after it, so it never lies
        write_outcome(db_root, outcome)
    for miss in store.missing:
        log.info("%s: referenced file missing: %s %s (%s)", src_path, *miss)
    return outcome, created, True, conflict

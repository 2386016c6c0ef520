"""Parameter files: safe parsing, their file references, and storing them in a database.

Runs on Spark executors: pure Python, file system only, idempotent, safe when several processes
store the same files at once.

Storage rules (``store_parameter_file``):

- the param file is stored once as ``parameterfiles_{cell|network}_folder/<md5>``, ``<md5>`` the
  md5 hex of its *original* bytes (= ``hash_neuron`` / ``hash_network`` of the ``parameterfiles``
  table);
- every file it references is copied into its managed folder as ``<md5>_<basename>``, ``<md5>``
  the md5 hex of the *stored* bytes of that copy (content addressed: equal names mean equal bytes,
  so the name is collision free and concurrent writers agree);
- every rewritten reference (in the param file and in the ``.syn``/``.con`` headers) is a
  ``/``-separated path relative to the database root, e.g. ``morphology/<md5>_cell.hoc``; resolve
  it with :func:`resolve_reference`;
- the param file is rewritten textually: only the quoted path literals of the references are
  replaced, comments and layout stay, so parsing the stored copy gives the original dict with only
  those paths changed;
- a referenced file that does not exist is reported in ``StoredParamFile.missing`` and its
  reference is left as it was.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from simlake.errors import SimrunFormatError
from simlake.fsutil import create_once, put_content_addressed
from simlake.layout import FOLDER_KEYS

log = logging.getLogger(__name__)

Kind = Literal["neuron", "network"]
KeyPath = tuple[Any, ...]

#: Managed folder of the stored param files of each kind ("cell" = neuron).
PARAM_FOLDER: dict[str, str] = {
    "neuron": FOLDER_KEYS["parameterfiles_cell_folder"],
    "network": FOLDER_KEYS["parameterfiles_network_folder"],
}

_MAX_NAME = 255


# --------------------------------------------------------------------------------------------
# parsing


def _decode(data: bytes) -> tuple[str, str]:
    """Text and codec of a param file: UTF-8, else latin-1 (which round-trips any bytes)."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


class _Parsed(NamedTuple):
    """A parsed param text: the AST plus what is needed to map AST positions back to the text."""

    tree: ast.Expression
    source: str  # the text actually parsed: "(" + text[lead:] + "\n)"
    lead: int  # characters of the original text dropped in front (a BOM)


_ALLOWED_NODES = (ast.Expression, ast.Dict, ast.List, ast.Tuple, ast.Set, ast.Constant,
                  ast.UnaryOp, ast.BinOp, ast.UAdd, ast.USub, ast.Add, ast.Sub, ast.Load)


def _first_disallowed(tree: ast.AST) -> ast.AST | None:
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            return node
    return None


def _parse(text: str, path: str) -> _Parsed:
    lead = 1 if text.startswith("\ufeff") else 0
    # Parenthesised, so leading indentation and a final comment without newline are fine. Python's
    # own tokenizer drops the '#' comments, never inside a string literal.
    source = "(" + text[lead:] + "\n)"
    try:
        tree = ast.parse(source, filename=path, mode="eval")
    except SyntaxError as exc:
        raise SimrunFormatError(path, f"not a Python literal: {exc.msg} (line {exc.lineno})") \
            from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SimrunFormatError(path, f"not a Python literal: {type(exc).__name__}") from None
    if not isinstance(tree.body, ast.Dict):
        raise SimrunFormatError(path, f"top level is a {type(tree.body).__name__}, "
                                      "not a dict literal")
    bad = _first_disallowed(tree)
    if bad is not None:
        where = f" at line {bad.lineno}" if hasattr(bad, "lineno") else ""
        raise SimrunFormatError(path, f"not a plain literal: {type(bad).__name__}{where}")
    return _Parsed(tree, source, lead)


def _literal(parsed: _Parsed, path: str) -> dict:
    try:
        value = ast.literal_eval(parsed.tree)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        raise SimrunFormatError(path, f"not a plain literal: {exc}") from None
    return value


def parse_param_text(text: str, path: str) -> dict:
    """The dict literal of a param file's ``text``; ``path`` is used in error messages only.

    Accepts nested dicts, lists, tuples, trailing commas and ``#`` comments. Nothing is ever
    evaluated: anything but a dict literal of plain constants (names, calls, attribute access,
    f-strings, ...) raises ``SimrunFormatError(path, reason)``.
    """
    return _literal(_parse(text, path), path)


def parse_param_file(path: str) -> dict:
    """Read and parse the param file at ``path`` (see :func:`parse_param_text`)."""
    with open(path, "rb") as fh:
        text, _ = _decode(fh.read())
    return parse_param_text(text, path)


def md5_file(path: str) -> str:
    """md5 hex digest of the bytes of the file at ``path``."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# references


def key_string(key_path: Iterable[Any]) -> str:
    """``("network", "L2", "synapses", "distributionFile")`` -> ``network.L2.synapses...``;
    list indices as ``[i]``."""
    out = ""
    for part in key_path:
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
        """The key path as one dotted string."""
        return key_string(self.key_path)


class MissingReference(NamedTuple):
    """A referenced file that could not be stored: dotted key path, path as written, reason."""

    key: str
    path: str
    reason: str


def _resolve(path: str, base_dir: str | None) -> str:
    if os.path.isabs(path):
        return os.path.normpath(path)
    return os.path.normpath(os.path.join(base_dir if base_dir is not None else os.getcwd(), path))


def referenced_files(params: Mapping, kind: Kind, base_dir: str | None = None) -> list[Reference]:
    """The file references of a parsed param dict of ``kind`` ``"neuron"`` or ``"network"``.

    neuron: ``neuron.filename`` (morphology) and each entry of ``sim.recordingSites``
    (recsites_folder); network: ``network.<celltype>.synapses.distributionFile`` (syn_folder) and
    ``...connectionFile`` (con_folder). Relative paths are resolved against ``base_dir`` (default:
    the current directory). Absent keys and non-string values are skipped.
    """
    if kind not in PARAM_FOLDER:
        raise ValueError(f"kind must be 'neuron' or 'network', not {kind!r}")
    refs: list[Reference] = []

    def add(key_path: KeyPath, value: Any, category: str) -> None:
        if isinstance(value, str) and value.strip():
            refs.append(Reference(key_path, value, _resolve(value, base_dir), category))

    if kind == "neuron":
        neuron = params.get("neuron")
        if isinstance(neuron, Mapping):
            add(("neuron", "filename"), neuron.get("filename"), "morphology")
        sim = params.get("sim")
        if isinstance(sim, Mapping):
            sites = sim.get("recordingSites")
            if isinstance(sites, str):
                add(("sim", "recordingSites"), sites, "recsites_folder")
            elif isinstance(sites, (list, tuple)):
                for i, site in enumerate(sites):
                    add(("sim", "recordingSites", i), site, "recsites_folder")
    else:
        network = params.get("network")
        if isinstance(network, Mapping):
            for celltype, cfg in network.items():
                syn = cfg.get("synapses") if isinstance(cfg, Mapping) else None
                if not isinstance(syn, Mapping):
                    continue
                base = ("network", celltype, "synapses")
                add(base + ("distributionFile",), syn.get("distributionFile"), "syn_folder")
                add(base + ("connectionFile",), syn.get("connectionFile"), "con_folder")
    return refs


def resolve_reference(db_root: str, ref: str) -> str:
    """Absolute path of a reference as stored in the database (db-relative, or absolute when the
    file was missing at ingest)."""
    if os.path.isabs(ref):
        return ref
    return os.path.join(os.path.abspath(db_root), *ref.split("/"))


# --------------------------------------------------------------------------------------------
# textual rewriting


def _line_starts(source: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", source)]


def _char_offset(source: str, starts: list[int], lineno: int, col_bytes: int) -> int:
    line_start = starts[lineno - 1]
    line_end = starts[lineno] if lineno < len(starts) else len(source)
    line = source[line_start:line_end]
    return line_start + len(line.encode("utf-8")[:col_bytes].decode("utf-8", errors="ignore"))


def _value_node(tree: ast.Expression, key_path: KeyPath) -> ast.Constant | None:
    node: ast.AST = tree.body
    for part in key_path:
        if isinstance(node, ast.Dict):
            found = None
            for k, v in zip(node.keys, node.values, strict=True):  # last duplicate wins
                if isinstance(k, ast.Constant) and k.value == part and type(k.value) is type(part):
                    found = v
            if found is None:
                return None
            node = found
        elif isinstance(node, (ast.List, ast.Tuple)) and isinstance(part, int):
            if not 0 <= part < len(node.elts):
                return None
            node = node.elts[part]
        else:
            return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node
    return None


def _quote(value: str, like: str) -> str:
    """A Python string literal of ``value``, quoted with the quote character of ``like``."""
    body = json.dumps(value, ensure_ascii=False)[1:-1]
    quote = "'" if like.lstrip("rRuUbBfF")[:1] == "'" else '"'
    if quote == "'":
        body = body.replace('\\"', '"').replace("'", "\\'")
    return quote + body + quote


def _with_replacements(obj: Any, replacements: Mapping[KeyPath, str], prefix: KeyPath = ()) -> Any:
    if prefix in replacements:
        return replacements[prefix]
    if not any(k[: len(prefix)] == prefix and len(k) > len(prefix) for k in replacements):
        return obj
    if isinstance(obj, dict):
        return {k: _with_replacements(v, replacements, prefix + (k,)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_with_replacements(v, replacements, prefix + (i,)) for i, v in enumerate(obj)]
        return type(obj)(items)
    return obj


def rewrite_param_text(text: str, replacements: Mapping[KeyPath, str], path: str) -> str:
    """``text`` with the string literals at the given key paths replaced by new values.

    Only the characters of those literals change. Raises ``SimrunFormatError`` if the text is not
    a param dict, ``KeyError`` if a key path does not lead to a string literal.
    """
    parsed = _parse(text, path)
    starts = _line_starts(parsed.source)
    spans = []
    for key_path, new in replacements.items():
        node = _value_node(parsed.tree, key_path)
        if node is None or node.end_lineno is None or node.end_col_offset is None:
            raise KeyError(f"{path}: no string literal at {key_string(key_path)}")
        begin = _char_offset(parsed.source, starts, node.lineno, node.col_offset)
        end = _char_offset(parsed.source, starts, node.end_lineno, node.end_col_offset)
        # source = "(" + text[lead:] + ...: map back to positions in ``text``
        spans.append((begin - 1 + parsed.lead, end - 1 + parsed.lead, new))
    out = text
    for begin, end, new in sorted(spans, reverse=True):
        out = out[:begin] + _quote(new, out[begin:end]) + out[end:]
    expected = _with_replacements(_literal(parsed, path), replacements)
    if parse_param_text(out, path) != expected:  # cheap guard: never store a corrupted file
        raise SimrunFormatError(path, "internal error: rewriting the references changed the dict")
    return out


# --------------------------------------------------------------------------------------------
# storing


@dataclass(frozen=True)
class StoredParamFile:
    """Outcome of :func:`store_parameter_file`.

    ``md5``: hex digest of the original bytes; ``stored_path``: the stored copy relative to the
    database root (``parameterfiles_cell_folder/<md5>``); ``references``: dotted key path -> the
    db-relative path it was rewritten to; ``missing``: references left as they were;
    ``sources``: dotted key path -> absolute path of the referenced file in the raw tree (as
    resolved at ingest, whether it exists or not);
    ``created``: this call wrote the param file (False: it was there already);
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


class _Missing(Exception):
    pass


_HEADER_LABEL = re.compile(r"^\s*#\s*(?:[^:/\\]*:\s*)?")


def _header_reference(data: bytes) -> tuple[int, int, str] | None:
    """Byte span and text of the file reference on the 2nd header line of a .syn/.con file.

    The line is ``# <label>: <reference>`` (``# corresponding to cell: <name>``) or
    ``# <reference>``.
    """
    lines = data.split(b"\n", 2)
    if len(lines) < 2 or not lines[1].lstrip().startswith(b"#"):
        return None
    text, codec = _decode(lines[1].rstrip(b"\r"))
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
        """Copy ``abspath`` into ``category``; return its db-relative path or raise _Missing."""
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
        rel = f"{folder}/{name}"
        self.done[cache_key] = rel
        return rel

    def _rewrite_header(self, category: str, abspath: str, data: bytes, key: str) -> bytes:
        found = _header_reference(data)
        if found is None:
            return data
        start, end, ref = found
        target_category, suffix = (("morphology", ".hoc") if category == "syn_folder"
                                   else ("syn_folder", ".syn"))
        candidate = _resolve(ref, os.path.dirname(abspath))
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
            rel = self.store(target_category, target, header_key)
        except _Missing as exc:
            self.missing.append(MissingReference(header_key, ref, str(exc)))
            return data
        return data[:start] + os.fsencode(rel) + data[end:]


def stored_param_path(db_root: str, kind: Kind, md5: str) -> str:
    """Absolute path of the stored param file of ``kind`` with hash ``md5``."""
    return os.path.join(os.path.abspath(db_root), PARAM_FOLDER[kind], md5)


def _already_stored(target: str, src_path: str, src_text: str, kind: Kind, db_root: str,
                    digest: str) -> StoredParamFile | None:
    """The outcome for a param file whose stored copy exists (its copies were written first)."""
    try:
        stored = parse_param_file(target)
    except FileNotFoundError:
        return None
    references: dict[str, str] = {}
    missing: list[MissingReference] = []
    for ref in referenced_files(stored, kind, base_dir=db_root):
        if os.path.isabs(ref.path):
            reason = ("no such file" if not os.path.exists(ref.path)
                      else "missing when the param file was first stored")
            missing.append(MissingReference(ref.key, ref.path, reason))
        else:
            references[ref.key] = ref.path
    original = parse_param_text(src_text, src_path)
    sources = {ref.key: ref.abspath
               for ref in referenced_files(original, kind, base_dir=os.path.dirname(src_path))}
    return StoredParamFile(kind=kind, source_path=src_path, md5=digest,
                           stored_path=f"{PARAM_FOLDER[kind]}/{digest}", references=references,
                           missing=tuple(missing), created=False, sources=sources)


def store_parameter_file(src_path: str, db_root: str, kind: Kind, verify: bool = False,
                         morphology_hint: str | None = None) -> StoredParamFile:
    """Store the param file ``src_path`` of ``kind`` (``"neuron"``/``"network"``) in ``db_root``.

    Copies the files it references into the managed folders, then writes the param file, with
    its references rewritten to db-relative paths, as
    ``parameterfiles_{cell|network}_folder/<md5>`` (see the module docstring). Idempotent and
    safe to run concurrently; the first stored copy of a given md5 is kept.

    When that copy exists already, only the source's md5 is computed and the outcome is read from
    the stored copy (``missing`` = its references that point outside the database), unless
    ``verify``: then everything is recomputed and ``conflict`` says whether the stored copy
    differs from what would be written now (the referenced files changed in between).

    ``morphology_hint`` (network files): the absolute path of the morphology of the same
    sim-run (``StoredParamFile.sources["neuron.filename"]`` of its neuron file). A ``.syn``
    header naming the cell by a path that does not resolve from the ``.syn``'s folder, but whose
    file name or stem is that morphology's, is rewritten to point at the copy of that morphology.

    Raises ``SimrunFormatError`` if the file is not a param dict literal, ``OSError`` if it cannot
    be read; missing referenced files are returned in ``.missing``, not raised.
    """
    if kind not in PARAM_FOLDER:
        raise ValueError(f"kind must be 'neuron' or 'network', not {kind!r}")
    src_path = os.path.abspath(src_path)
    with open(src_path, "rb") as fh:
        data = fh.read()
    digest = hashlib.md5(data).hexdigest()
    target = stored_param_path(db_root, kind, digest)
    text, codec = _decode(data)
    if not verify and os.path.exists(target):
        done = _already_stored(target, src_path, text, kind, db_root, digest)
        if done is not None:
            return done
    params = parse_param_text(text, src_path)

    store = _Store(db_root, morphology_hint)
    replacements: dict[KeyPath, str] = {}
    refs = referenced_files(params, kind, base_dir=os.path.dirname(src_path))
    for ref in refs:
        try:
            replacements[ref.key_path] = store.store(ref.category, ref.abspath, ref.key)
        except _Missing as exc:
            store.missing.append(MissingReference(ref.key, ref.path, str(exc)))
    new_text = rewrite_param_text(text, replacements, src_path) if replacements else text
    try:
        new_data = new_text.encode(codec)
    except UnicodeEncodeError:
        new_data = new_text.encode("utf-8")

    created = create_once(target, new_data)  # last: its presence means the copies are there
    conflict = None
    if not created:
        with open(target, "rb") as fh:
            if fh.read() != new_data:
                conflict = ("stored copy differs (referenced files changed since it was stored); "
                            "kept the stored copy")
                log.warning("%s: %s", src_path, conflict)
    for miss in store.missing:
        log.info("%s: referenced file missing: %s %s (%s)", src_path, *miss)
    return StoredParamFile(
        kind=kind,
        source_path=src_path,
        md5=digest,
        stored_path=f"{PARAM_FOLDER[kind]}/{digest}",
        references={key_string(k): v for k, v in replacements.items()},
        missing=tuple(store.missing),
        created=created,
        conflict=conflict,
        sources={ref.key: ref.abspath for ref in refs},
    )

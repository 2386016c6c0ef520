"""The outcome of storing one param file, recorded once per md5 in the database.

``<db>/_simlake_paramfiles/<neuron|network>/<md5>.json``: what storing the param file with that
md5 gave (its references as written and as stored, the references that could not be stored, or
the reason it was rejected). Every later sim-run folder holding a file with that md5 reuses it:
one md5, no parse. A record is written after the stored copy it describes (first writer wins),
so a record never names a copy that is not there; a stored copy without a record (a database
of an older simlake version, a writer killed in between, or one that has not got to it yet) is
described again from the copy, and that record gives way to the one of a store that parsed
the file (which also knows the references as written).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from simlake.fsutil import atomic_write_bytes, create_once

RECORDS_DIR = "_simlake_paramfiles"
#: Bumped when the parser accepts more, so that older rejections are not trusted.
PARSER_VERSION = 2


class MissingReference(NamedTuple):
    """A referenced file that could not be stored: dotted key path, path as written, reason."""

    key: str
    path: str
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What storing the param file ``kind``/``md5`` gave.

    ``references``: dotted key path -> stored reference (``reldb://...``); ``written``: dotted key
    path -> the path as written in the original file (every reference, stored or missing; empty
    for references of a copy stored by an older simlake, whose originals are unknown);
    ``missing``: references left as they were; ``rejected``: one-line reason when the file is
    not a param dict literal (then nothing was stored); ``derived``: read back from a stored
    copy, not from storing the file.
    """

    kind: str
    md5: str
    references: dict[str, str] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)
    missing: tuple[MissingReference, ...] = ()
    rejected: str | None = None
    derived: bool = False

    def to_json(self) -> dict[str, Any]:
        """The record's JSON document."""
        doc = {"kind": self.kind, "md5": self.md5, "parser": PARSER_VERSION,
               "references": self.references, "written": self.written,
               "missing": [list(m) for m in self.missing], "rejected": self.rejected}
        if self.derived:
            doc["derived"] = True
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Outcome:
        """The outcome of a record's JSON document."""
        return cls(kind=doc["kind"], md5=doc["md5"], references=dict(doc["references"]),
                   written=dict(doc["written"]),
                   missing=tuple(MissingReference(*m) for m in doc["missing"]),
                   rejected=doc.get("rejected"), derived=bool(doc.get("derived", False)))


def record_path(db_root: str, kind: str, md5: str) -> str:
    """Where the outcome record of param file ``kind``/``md5`` lives in ``db_root``."""
    return os.path.join(os.path.abspath(db_root), RECORDS_DIR, kind, f"{md5}.json")


def read_outcome(db_root: str, kind: str, md5: str) -> Outcome | None:
    """The recorded outcome, or None (no record, an unreadable one, or a rejection recorded by
    an older parser)."""
    try:
        with open(record_path(db_root, kind, md5), encoding="utf-8") as fh:
            doc = json.load(fh)
        outcome = Outcome.from_json(doc)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if outcome.rejected is not None and doc.get("parser") != PARSER_VERSION:
        return None
    return outcome


def write_outcome(db_root: str, outcome: Outcome) -> bool:
    """Record ``outcome`` unless a record exists (first writer wins; but a record derived from
    the stored copy gives way to one that is not); True if written."""
    path = record_path(db_root, outcome.kind, outcome.md5)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = json.dumps(outcome.to_json(), sort_keys=True, ensure_ascii=False).encode("utf-8")
    if create_once(path, data):
        return True
    if outcome.derived:
        return False
    existing = read_outcome(db_root, outcome.kind, outcome.md5)
    if existing is None or not existing.derived:
        return False
    atomic_write_bytes(path, data)  # writers of equal records may race: either one lands
    return True

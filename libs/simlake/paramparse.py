"""Param-file text: parse the dict literal without executing anything, and rewrite string
literals in place.

The values are those of ``ast.literal_eval`` (same types, same key order). Two fast parsers read
the text as JSON (:mod:`simlake.paramjson`: real param files take the first, texts with escapes,
quotes or code-like characters in their strings the second); ``ast`` reads whatever they do not
take (numbers such as ``.5`` or ``1_000``, non-string keys, sets, groupings, and every malformed
or non-literal text, for which it gives the reason).

The fast parsers also locate the string literals that are the values of the reference keys
(``filename``, ``distributionFile``, ``connectionFile``, the entries of ``recordingSites``), so
that they can be replaced in the original text.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from collections.abc import Mapping
from typing import NamedTuple

from simlake.errors import SimrunFormatError
from simlake.paramjson import Locations, Scanned, plain_scan, split_scan, string_value
from simlake.paramrefs import KeyPath

__all__ = ["KeyPath", "Locations", "Scanned", "ast_parse_param_text", "ast_spans",
           "decode_param_bytes", "parse_param_text", "quote_like", "replace_spans",
           "rewrite_param_text", "scan_param_text", "string_value"]


# --------------------------------------------------------------------------------------------
# the ast parser (everything the fast ones leave)


class _Parsed(NamedTuple):
    """An ``ast`` parse: the tree plus what maps its positions back to the text."""

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


def _ast_parse(text: str, path: str) -> _Parsed:
    lead = 1 if text.startswith("\ufeff") else 0
    # Parenthesised, so leading indentation and a final comment without newline are fine. Python's
    # own tokenizer drops the '#' comments, never inside a string literal.
    source = "(" + text[lead:] + "\n)"
    try:
        with warnings.catch_warnings():  # an unknown escape ("\\d") stays as written, quietly
            warnings.simplefilter("ignore")
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


def _ast_literal(parsed: _Parsed, path: str) -> dict:
    try:
        return ast.literal_eval(parsed.tree)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        raise SimrunFormatError(path, f"not a plain literal: {exc}") from None


def ast_parse_param_text(text: str, path: str) -> dict:
    """:func:`parse_param_text` by ``ast`` alone (the reference the fast parser must agree
    with, and the previous implementation)."""
    return _ast_literal(_ast_parse(text, path), path)


# --------------------------------------------------------------------------------------------
# public


def scan_param_text(text: str, path: str, locate: bool = False, exact: bool = True) -> Scanned:
    """Parse a param file's ``text``; with ``locate``, also where its reference literals are
    (``Scanned.locations`` is None when the fast parsers did not take the text). Not
    ``exact``, floats may come back as their text: what storing needs (the references, and
    the proof that the text is a literal) in two thirds of the time.

    Raises ``SimrunFormatError(path, reason)`` (one line) for anything but a dict literal of
    plain constants; nothing is ever evaluated.
    """
    fast = plain_scan(text, locate, exact) or split_scan(text, locate)
    if fast is not None:
        return fast
    return Scanned(ast_parse_param_text(text, path), None)


def parse_param_text(text: str, path: str) -> dict:
    """The dict literal of a param file's ``text``; ``path`` is used in error messages only.

    Accepts nested dicts, lists, tuples, trailing commas and ``#`` comments. Nothing is ever
    evaluated: anything but a dict literal of plain constants (names, calls, attribute access,
    f-strings, ...) raises ``SimrunFormatError(path, reason)``.
    """
    return scan_param_text(text, path).value


def decode_param_bytes(data: bytes) -> tuple[str, str]:
    """Text and codec of a param file: UTF-8, else latin-1 (which round-trips any bytes)."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


# --------------------------------------------------------------------------------------------
# rewriting


def quote_like(value: str, like: str) -> str:
    """A Python string literal of ``value``, quoted with the quote character of ``like``."""
    body = json.dumps(value, ensure_ascii=False)[1:-1]
    quote = "'" if like.lstrip("rRuUbBfF")[:1] == "'" else '"'
    if quote == "'":
        body = body.replace('\\"', '"').replace("'", "\\'")
    return quote + body + quote


def replace_spans(text: str, spans: Mapping[KeyPath, tuple[int, int]],
                  replacements: Mapping[KeyPath, str]) -> str:
    """``text`` with the literal at each span replaced by a literal of its new value."""
    out, prev = [], 0
    quoted: dict[tuple[str, str], str] = {}  # a network file names one .syn many times
    for begin, end, new in sorted((*spans[k], v) for k, v in replacements.items()):
        out.append(text[prev:begin])
        quote = text[begin]
        literal = quoted.get((new, quote))
        if literal is None:
            literal = quoted[new, quote] = quote_like(new, text[begin:end])
        out.append(literal)
        prev = end
    out.append(text[prev:])
    return "".join(out)


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


def ast_spans(text: str, key_paths: list[KeyPath], path: str) -> dict[KeyPath, tuple[int, int]]:
    """Character spans of the string literals at ``key_paths``, located by ``ast`` (any valid
    text); raises ``KeyError`` if a key path does not lead to a string literal."""
    parsed = _ast_parse(text, path)
    starts = _line_starts(parsed.source)
    spans = {}
    for key_path in key_paths:
        node = _value_node(parsed.tree, key_path)
        if node is None or node.end_lineno is None or node.end_col_offset is None:
            raise KeyError(f"{path}: no string literal at {key_path}")
        begin = _char_offset(parsed.source, starts, node.lineno, node.col_offset)
        end = _char_offset(parsed.source, starts, node.end_lineno, node.end_col_offset)
        # source = "(" + text[lead:] + ...: map back to positions in ``text``
        spans[key_path] = (begin - 1 + parsed.lead, end - 1 + parsed.lead)
    return spans


def rewrite_param_text(text: str, replacements: Mapping[KeyPath, str], path: str) -> str:
    """``text`` with the string literals at the given key paths replaced by new values.

    Only the characters of those literals change. Raises ``SimrunFormatError`` if the text is not
    a param dict, ``KeyError`` if a key path does not lead to a string literal.
    """
    locations = scan_param_text(text, path, locate=True).locations
    found = {k: locations.span(k) for k in replacements} if locations is not None else {}
    spans = {k: span for k, span in found.items() if span is not None}
    if not spans or len(spans) < len(found):
        spans = ast_spans(text, list(replacements), path)
    return replace_spans(text, spans, replacements)

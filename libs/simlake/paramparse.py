"""Param-file text: parse the dict literal without executing anything, and rewrite string
literals in place.

Two parsers give the same values as ``ast.literal_eval`` (same types, same key order):

- the fast one splits the text into string literals, comments and code with one regular
  expression, checks the code for anything that is not a plain literal (names other than
  ``True``/``False``/``None``, quotes, backslashes, parenthesised groupings), turns the rest into
  JSON (``True`` -> ``true``, tuples -> a marked JSON object, trailing commas dropped) and lets
  the C JSON decoder read it and check its grammar; all in C-level passes over the text;
- the ``ast`` one, for whatever the fast one does not take (numbers such as ``.5`` or ``1_000``,
  escapes in strings, non-string keys, sets, groupings, and every malformed or non-literal
  text, for which it gives the reason).

The fast scanner also locates the string literals that are the values of the reference keys
(``filename``, ``distributionFile``, ``connectionFile``, the entries of ``recordingSites``), so
that they can be replaced in the original text.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from collections.abc import Mapping
from itertools import accumulate
from typing import Any, NamedTuple

from simlake.errors import SimrunFormatError
from simlake.paramrefs import REFERENCE_KEYS, REFERENCE_LIST_KEY, KeyPath

# string literals (no prefix, one line) and comments; unrolled loops keep the regex engine fast
_SPLIT_DOUBLE = re.compile(r'("[^"\\\n\r]*(?:\\.[^"\\\n\r]*)*")')  # no ' and no # in the text
_SPLIT = re.compile(r'("[^"\\\n\r]*(?:\\.[^"\\\n\r]*)*"'
                    r"|'[^'\\\n\r]*(?:\\.[^'\\\n\r]*)*'"
                    r"|#[^\n\r]*)")
#: Characters the fast parser leaves to ``ast``: its own markers, and odd line ends.
_FAST_TEXT_BAD = ("\x00", "\x01", "\x02", "\x03", "\r", "\f", "\v")
#: Outside string literals, the fast parser leaves to ``ast``: quotes (a prefix, a triple quote,
#: a string over lines), backslashes, and the names JSON would take as its own.
_CODE_BAD = ('"', "'", "\\", "true", "false", "null", "NaN", "Infinity")
#: A parenthesised grouping (a value, not a tuple) goes to ``ast``.
_GROUPING = re.compile(r"\((?=\s*[\[{(]|\s*[^\s,()\[\]{}]+\s*\))")
#: A trailing comma right after a value is dropped for JSON; any other comma before a closing
#: bracket (after a space, or an empty element such as ``[,]``, a syntax error that dropping it
#: would hide) goes to ``ast``.
_VALUE_TRAILING_COMMA = re.compile(r",(?<=[^\s\[{(,:],)(?=\s*[}\]])")
_TRAILING_COMMA = re.compile(r",(?=\s*[}\]])")
_TUPLE = "\x02"  # JSON object key marking a tuple
_TAG = "\x03"  # prefix of a located reference literal in the JSON text
_KEY_COLON = re.compile(r"\s*:\s*\Z")
_LIST_OPEN = re.compile(r'\s*:\s*(?:\[|\{"\\u0002":\[)\s*\Z')
_LIST_COMMA = re.compile(r"\s*,\s*\Z")
_LIST_CLOSE = re.compile(r"\s*,?\s*[\])]")


def _tuple_hook(obj: dict) -> Any:
    return tuple(obj[_TUPLE]) if _TUPLE in obj else obj


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


_DECODER = json.JSONDecoder(object_hook=_tuple_hook, strict=False,
                            parse_constant=_reject_constant)


class Locations:
    """Where the located reference literals of one fast-parsed text are: the text's pieces and
    ``(id(container), key or index) -> literal number`` of each located literal."""

    def __init__(self, value: Any, parts: list[str], string_parts: list[int] | None,
                 where: dict[tuple[int, Any], int], keep: list[Any]) -> None:
        self._value, self._parts, self._where, self._keep = value, parts, where, keep
        self._string_parts = string_parts
        self._ends: list[int] | None = None

    def span(self, key_path: KeyPath) -> tuple[int, int] | None:
        """(begin, end) character span of the literal at ``key_path``; None if not located."""
        if not key_path or not self._where:
            return None
        node = self._value
        try:
            for part in key_path[:-1]:
                node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
        i = self._where.get((id(node), key_path[-1]))
        if i is None:
            return None
        if self._ends is None:
            self._ends = list(accumulate(map(len, self._parts)))
        p = 2 * i + 1 if self._string_parts is None else self._string_parts[i]
        return self._ends[p] - len(self._parts[p]), self._ends[p]


class Scanned(NamedTuple):
    """A parsed param text: its ``value``, and where its reference literals are (None when the
    ``ast`` parser read it: locate them with :func:`ast_spans`)."""

    value: dict
    locations: Locations | None


# --------------------------------------------------------------------------------------------
# the fast parser


def string_value(token: str) -> Any:
    """The value of one literal token of a param text (never evaluates anything)."""
    with warnings.catch_warnings():  # an unknown escape ("\\d") stays as written, quietly
        warnings.simplefilter("ignore")
        return ast.literal_eval(token)


def _json_string(token: str) -> str:
    """JSON text of a Python string literal token (no prefix, one line)."""
    if "\\" not in token:
        if token[0] == '"':
            return token
        return json.dumps(token[1:-1], ensure_ascii=False)
    return json.dumps(string_value(token), ensure_ascii=False)


def _fast_scan(text: str, locate: bool) -> Scanned | None:
    """The value (and with ``locate`` its reference literals) by the fast path, or None when it
    does not take the text."""
    if any(c in text for c in _FAST_TEXT_BAD):
        return None
    plain = "#" not in text and "'" not in text and "\\" not in text
    # even: code, odd: string literals (and comments)
    parts = (_SPLIT_DOUBLE if plain else _SPLIT).split(text)
    tokens = parts[1::2]
    codes = parts[0::2]
    if text.startswith("\ufeff"):
        codes[0] = codes[0][1:]
    if plain:  # the common case: double-quoted literals only, no comments
        strings = tokens
        code = "\x01".join(codes)
        string_parts = None
    else:
        marks = ["\x01" if t[0] != "#" else " " for t in tokens]
        joined: list[str] = [""] * len(parts)
        joined[0::2] = codes
        joined[1::2] = marks
        code = "".join(joined)
        string_parts = [2 * i + 1 for i, t in enumerate(tokens) if t[0] != "#"]
        try:
            strings = [_json_string(parts[p]) for p in string_parts]
        except (ValueError, SyntaxError):
            return None
    if any(c in code for c in _CODE_BAD) or _GROUPING.search(code):
        return None
    code = code.replace("True", "true").replace("False", "false").replace("None", "null")
    code = code.replace("(", '{"\\u0002":[').replace(")", "]}")
    code = _VALUE_TRAILING_COMMA.sub("", code)
    if _TRAILING_COMMA.search(code):
        return None
    between = code.split("\x01")  # between[i]: the code before string i
    located = _reference_literals(parts, string_parts, between) if locate else []
    if located:
        strings = list(strings)
        for i in located:
            strings[i] = f'"\\u0003{i}"'  # a tag, restored by the decoder's hook
    pieces: list[str] = [""] * (len(between) + len(strings))
    pieces[0::2] = between
    pieces[1::2] = strings
    json_text = "".join(pieces)
    try:
        if not located:
            value, where, keep = _DECODER.decode(json_text), {}, []  # type: ignore[var-annotated]
        else:
            value, where, keep = _decode_tagged(json_text, parts, string_parts)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    return Scanned(value, Locations(value, parts, string_parts, where, keep) if locate else None)


def _token(parts: list[str], string_parts: list[int] | None, i: int) -> str:
    return parts[2 * i + 1] if string_parts is None else parts[string_parts[i]]


def _reference_literals(parts: list[str], string_parts: list[int] | None,
                        between: list[str]) -> list[int]:
    """Indices of the string literals that are values of reference keys (or entries of a
    ``recordingSites`` list), found in the text: the key literal, a colon, the literal."""
    n = len(between) - 1
    keys = {json.dumps(k) for k in REFERENCE_KEYS} | {f"'{k}'" for k in REFERENCE_KEYS}
    list_keys = {f'"{REFERENCE_LIST_KEY}"', f"'{REFERENCE_LIST_KEY}'"}
    found = []
    tokens = parts[1::2] if string_parts is None else [parts[p] for p in string_parts]
    for i, token in enumerate(tokens):
        if token in keys and i + 1 < n and _KEY_COLON.match(between[i + 1]):
            found.append(i + 1)
        elif token in list_keys and i + 1 < n and _LIST_OPEN.match(between[i + 1]):
            j = i + 1
            while j < n:
                found.append(j)
                if _LIST_CLOSE.match(between[j + 1]):
                    break
                if not _LIST_COMMA.match(between[j + 1]):
                    break
                j += 1
    return found


def _decode_tagged(json_text: str, parts: list[str], string_parts: list[int] | None
                   ) -> tuple[Any, dict[tuple[int, Any], int], list[Any]]:
    """Decode JSON whose reference literals are tags ``"\\x03<i>"``: each tag is replaced by its
    string, and ``(id(container), key or index) -> i`` says where each one ended up (the
    containers, kept alive with the third item, so that no id is reused)."""
    where: dict[tuple[int, Any], int] = {}
    values: dict[str, str] = {}  # literal token -> its value (references repeat a lot)
    keep: list[Any] = []  # every recorded container stays alive: no id is reused meanwhile

    def restore(tag: Any) -> tuple[Any, int | None]:
        if type(tag) is str and tag[:1] == _TAG:
            i = int(tag[1:])
            token = _token(parts, string_parts, i)
            value = values.get(token)
            if value is None:
                value = values[token] = json.loads(_json_string(token))
            return value, i
        return tag, None

    def hook(obj: dict) -> Any:
        if _TUPLE in obj:
            return tuple(obj[_TUPLE])
        for key in REFERENCE_KEYS:
            if key in obj:
                obj[key], i = restore(obj[key])
                if i is not None:
                    where[id(obj), key] = i
                    keep.append(obj)
        sites = obj.get(REFERENCE_LIST_KEY)
        if isinstance(sites, (list, tuple)):
            restored = [restore(v) for v in sites]
            new = type(sites)(v for v, _ in restored)
            obj[REFERENCE_LIST_KEY] = new
            keep.append(new)
            for k, (_, i) in enumerate(restored):
                if i is not None:
                    where[id(new), k] = i
        return obj

    decoder = json.JSONDecoder(object_hook=hook, strict=False, parse_constant=_reject_constant)
    # every tag follows a reference key's colon (or sits in the list after one), so a hook
    # restores each one that the value keeps (an earlier duplicate key's value is dropped)
    return decoder.decode(json_text), where, keep


# --------------------------------------------------------------------------------------------
# the ast parser (everything the fast one leaves)


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


def scan_param_text(text: str, path: str, locate: bool = False) -> Scanned:
    """Parse a param file's ``text``; with ``locate``, also the spans of its reference literals
    (``Scanned.spans`` is None when the fast parser did not take the text).

    Raises ``SimrunFormatError(path, reason)`` (one line) for anything but a dict literal of
    plain constants; nothing is ever evaluated.
    """
    fast = _fast_scan(text, locate)
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

"""Param-file text read as JSON: the two fast parsers of :mod:`simlake.paramparse`.

Both turn the text of a dict literal into JSON with C-level passes (regular expressions, string
methods) and let the C JSON decoder build the value and check the grammar; neither evaluates
anything, and each returns None for a text it does not take (the caller then asks ``ast``):

- :func:`plain_scan`, for texts whose string literals hold nothing that looks like code
  (no quotes, backslashes, ``#``, parentheses, ``True``/``False``/``None``, or a comma before a
  closing bracket) and whose code holds no name but ``True``/``False``/``None``: one regular
  expression proves that, so the code transformations run over the whole text at once; real
  param files (paths, cell-type names, numbers) are such texts;
- :func:`split_scan`, for the rest: the text is split into string literals, comments and code
  first, and only the code is transformed.

With ``locate``, both also find the string literals that are the values of the reference keys
(``filename``, ``distributionFile``, ``connectionFile``, the entries of ``recordingSites``), so
that they can be replaced in the original text.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from itertools import accumulate
from typing import Any, NamedTuple, Protocol

from simlake.paramrefs import REFERENCE_KEYS, REFERENCE_LIST_KEY, KeyPath, reference_slots

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


class Locations(Protocol):
    """Where the located reference literals of a parsed text are."""

    def span(self, key_path: KeyPath) -> tuple[int, int] | None:
        """(begin, end) character span of the literal at ``key_path``; None if not located."""


class SpanTable:
    """Locations held as ``key path -> span`` (what :func:`plain_scan` finds)."""

    def __init__(self, spans: dict[KeyPath, tuple[int, int]]) -> None:
        self._spans = spans

    def span(self, key_path: KeyPath) -> tuple[int, int] | None:
        """(begin, end) character span of the literal at ``key_path``; None if not located."""
        return self._spans.get(tuple(key_path))


class TaggedLocations:
    """Locations of a :func:`split_scan`: the text's pieces and ``(id(container), key or index)
    -> literal number`` of each located literal, mapped to a span on demand."""

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
    ``ast`` parser read it)."""

    value: dict
    locations: Locations | None


# --------------------------------------------------------------------------------------------
# the plain parser

# A text of code and string literals of one line each; comments run to the end of their line.
# Code holds no name but True/False/None (an "e" of a number aside), and strings none of what
# the transformations below touch: no quote of either kind, backslash, "#", parenthesis, the
# three names, or a comma before a closing bracket. Possessive, so a failed match never
# backtracks; the odd line ends and the marker characters are left to the other parsers.
_PLAIN_STRING_BODY = (r"(?:[^\"'\\\n()#,TFN\x00-\x03\r\f\v]++|,(?![ \t]*+[\]}])"
                      r"|T(?!rue)|F(?!alse)|N(?!one))*+")
_PLAIN = re.compile(r"(?:[^\"'#\\\x00-\x03\r\f\vA-Za-z]++|[eE]|True|False|None"
                    r"|#[^\n\x00-\x03\r\f\v]*+"
                    rf'|"{_PLAIN_STRING_BODY}"'
                    rf"|'{_PLAIN_STRING_BODY}')*+")
_COMMENT = re.compile(r"#[^\n]*+")
# a reference key's entry in a dict (quotes made double): key, colon, the literal
_REFERENCE_ENTRY = re.compile(
    r'"(?:' + "|".join(REFERENCE_KEYS) + r')"\s*+:\s*+("[^"]*+")')
_PLAIN_TRAILING_COMMA = re.compile(r",(?<=[^\s\[{(,:],)(?=\s*+[}\]])")


def plain_scan(text: str, locate: bool, exact: bool = True) -> Scanned | None:
    """The value (and with ``locate`` its reference literals) of a plain text (see the module
    docstring), or None when the text is not plain or not a dict literal. Not ``exact``: its
    floats are left as their text (a third of the time; the grammar is checked all the
    same)."""
    if _PLAIN.fullmatch(text) is None:
        return None
    original = text
    if text[:1] == "\ufeff":
        text = " " + text[1:]
    # every transformation up to the tags keeps each character's offset: spans stay valid
    if "#" in text:
        text = _COMMENT.sub(lambda m: " " * len(m[0]), text)
    if "'" in text:
        if '"' in text:  # both quote kinds: the other parser
            return None
        text = text.replace("'", '"')
    literals: list[tuple[int, int]] = []
    if locate:
        if REFERENCE_LIST_KEY in text:  # list entries: the other parser (neuron files, small)
            return None

        def tag(m: re.Match) -> str:
            literals.append(m.span(1))
            return f'{m[0][:m.start(1) - m.start()]}"{_TAG}{len(literals) - 1}"'

        text = _REFERENCE_ENTRY.sub(tag, text)
    for name, json_name in (("True", "true"), ("False", "false"), ("None", "null")):
        if name in text:
            text = text.replace(name, json_name)
    coded = text  # where a grouping is looked for
    if "(" in text:
        # the markers as raw characters (the decoder takes them: strict=False) read faster
        # than their JSON escapes
        text = text.replace("(", '{"' + _TUPLE + '":[').replace(")", "]}")
    # any other comma before a closing bracket is left for the decoder to refuse
    text = _PLAIN_TRAILING_COMMA.sub("", text)
    one_item: list[list] = []  # "(x)" is a grouping, "(x,)" a tuple: both are a one-item list here

    def hook(obj: dict) -> Any:
        if _TUPLE in obj:
            items = obj[_TUPLE]
            if len(items) == 1:
                one_item.append(items)
            return tuple(items)
        return obj

    try:
        value = json.JSONDecoder(object_hook=hook, strict=False,
                                 parse_float=float if exact else str).decode(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or (one_item and _GROUPING.search(coded)):
        return None
    if not locate:
        return Scanned(value, None)
    spans = _restore_literals(value, literals, original)
    return None if spans is None else Scanned(value, SpanTable(spans))


def _restore_literals(value: dict, literals: list[tuple[int, int]], text: str
                      ) -> dict[KeyPath, tuple[int, int]] | None:
    """Put the value of each tagged literal (a plain one: no escapes) back in its place in
    ``value``; ``key path -> span`` of each, or None when a tag is not at a reference's place
    (a duplicate key dropped it, or a reference key elsewhere: the other parser reads those) or
    a reference's place holds another string (a float left as text)."""
    spans: dict[KeyPath, tuple[int, int]] = {}
    for kind in ("neuron", "network"):
        for key_path, container, key, _ in reference_slots(value, kind):
            tag = container[key]
            if type(tag) is str:
                if tag[:1] != _TAG or not isinstance(container, dict):
                    return None
                begin, end = literals[int(tag[1:])]
                container[key] = text[begin + 1:end - 1]
                spans[key_path] = (begin, end)
    return spans if len(spans) == len(literals) else None


# --------------------------------------------------------------------------------------------
# the split parser


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


def split_scan(text: str, locate: bool) -> Scanned | None:
    """The value (and with ``locate`` its reference literals) of a text split into string
    literals, comments and code first (any text :func:`plain_scan` does not take), or None when
    it does not take the text either."""
    if any(c in text for c in _FAST_TEXT_BAD):
        return None
    double_only = "#" not in text and "'" not in text and "\\" not in text
    # even: code, odd: string literals (and comments)
    parts = (_SPLIT_DOUBLE if double_only else _SPLIT).split(text)
    tokens = parts[1::2]
    codes = parts[0::2]
    if text.startswith("\ufeff"):
        codes[0] = codes[0][1:]
    if double_only:  # the common case: double-quoted literals only, no comments
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
    if not locate:
        return Scanned(value, None)
    return Scanned(value, TaggedLocations(value, parts, string_parts, where, keep))


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



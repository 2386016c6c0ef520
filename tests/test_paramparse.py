"""The fast param-file parser agrees with ``ast.literal_eval`` and never runs code (no JVM).

Expectations are ``ast.literal_eval`` of the same text, compared by ``repr`` (so types count:
``1`` is not ``1.0``, a tuple is not a list, key order matters).
"""

from __future__ import annotations

import ast
import random

import pytest

from simlake import paramjson
from simlake.errors import SimrunFormatError
from simlake.paramparse import parse_param_text, rewrite_param_text, scan_param_text


def _number(rng: random.Random, style: str) -> str:
    x = rng.choice([rng.uniform(-100, 100), rng.uniform(0, 1e-3), rng.expovariate(1e-4),
                    -61.4607218758, 0.1, 245.0, -0.0, 1e-05, 3.26e-05])
    if rng.random() < 0.15:
        return str(rng.randint(-500, 500))
    return f"{x:.12g}" if style == "12g" else repr(x)


def _value(rng: random.Random, depth: int, style: str) -> str:
    pick = rng.random()
    if depth > 3 or pick < 0.45:
        return rng.choice([_number(rng, style), _number(rng, style), '"PSTH"', "True",
                           "False", "None", '"/gpfs/x/cell.syn"', "'single'", '"a # b"'])
    if pick < 0.6:
        items = [_value(rng, depth + 1, style) for _ in range(rng.randint(0, 6))]
        return "[" + ", ".join(items) + rng.choice(["", ","]) * bool(items) + "]"
    if pick < 0.7:
        items = [f"({_number(rng, style)}, {_number(rng, style)})"
                 for _ in range(rng.randint(1, 5))]
        return "[" + ", ".join(items) + "]"
    if pick < 0.75:
        return "(" + _number(rng, style) + ",)"
    return _dict(rng, depth + 1, style)


def _dict(rng: random.Random, depth: int, style: str) -> str:
    pad = "  " * depth
    lines = []
    for k in range(rng.randint(1, 6)):
        key = rng.choice([f'"key{k}"', f"'key{k}'", '"synapses"', '"cellNr"'])
        comment = "  # a comment, with 'quotes' and {braces}" if rng.random() < 0.1 else ""
        lines.append(f"{pad}  {key}: {_value(rng, depth, style)},{comment}\n")
    return "{\n" + "".join(lines) + pad + "}"


@pytest.mark.parametrize("style", ["12g", "repr"])
def test_fast_parser_agrees_with_literal_eval_on_real_shaped_texts(style):
    rng = random.Random(7)
    taken = 0
    for _ in range(300):
        text = _dict(rng, 0, style)
        got = parse_param_text(text, "gen.param")
        assert repr(got) == repr(ast.literal_eval(text)), text
        taken += (paramjson.plain_scan(text, locate=False) is not None
                  or paramjson.split_scan(text, locate=False) is not None)
    assert taken == 300  # the fast parsers read them all, not the ast fallback


def _network_text(n: int, style: str) -> str:
    """Shaped like ISF's example network file (nested dicts, interval tuples, 2-space
    indent, trailing commas, references)."""
    rng = random.Random(n)
    cells = []
    for i in range(n):
        probs = ", ".join(_number(rng, style) for _ in range(5))
        cells.append(
            f'    "L{i}_C2": {{\n      "synapses": {{\n'
            f'        "releaseProb": {_number(rng, style)},\n'
            f'        "distributionFile": "/gpfs/anatomy/L{i % 3}.syn",\n'
            '        "receptors": {\n          "glutamate_syn": {\n'
            f'            "parameter": {{"tau1": {_number(rng, style)}, "e": -80.0,}},\n'
            f'            "weight": [{_number(rng, style)}, 1.68],\n          }},\n        }},\n'
            f'        "connectionFile": "/gpfs/anatomy/L{i % 3}.con",\n      }},\n'
            f'      "cellNr": {rng.randint(1, 400)},\n'
            f'      "celltype": {{"pointcell": {{"probabilities": [{probs}],\n'
            f'        "intervals": [(0.0, 1.0), (2.0, 3.0)], "offset": 245.0,}},\n'
            f'        "spiketrain": {{"interval": {_number(rng, style)},}},}},\n    }},\n')
    return ('{\n  "info": {"date": "11Feb2015", "author": "regger",},\n  "network": {\n'
            + "".join(cells) + '  },\n  "NMODL_mechanisms": {"VecStim": "/",},\n}')


@pytest.mark.parametrize("style", ["12g", "repr"])
@pytest.mark.parametrize("comment", ["", "# a network ('quoted', True) # twice\n"])
def test_network_file_parses_and_its_references_are_located(style, comment):
    text = comment + _network_text(60, style)
    expected = ast.literal_eval(text)
    scanned = scan_param_text(text, "net.param", locate=True)
    assert repr(scanned.value) == repr(expected)
    assert isinstance(scanned.locations, paramjson.SpanTable)  # the plain parser took it
    for celltype, cfg in expected["network"].items():
        for key in ("distributionFile", "connectionFile"):
            begin, end = scanned.locations.span(("network", celltype, "synapses", key))
            assert ast.literal_eval(text[begin:end]) == cfg["synapses"][key]
    new = {("network", ct, "synapses", "connectionFile"): f"reldb://con_folder/{ct}.con"
           for ct in expected["network"]}
    rewritten = rewrite_param_text(text, new, "net.param")
    for key_path, value in new.items():
        expected["network"][key_path[1]]["synapses"]["connectionFile"] = value
    assert repr(ast.literal_eval(rewritten)) == repr(expected)
    # only the replaced literals changed: the rest of the text is the same, in order
    assert rewritten.replace("reldb://con_folder/", "").count("\n") == text.count("\n")


@pytest.mark.parametrize("text", [
    '{"a": (1)}', '{"a": ((1, 2))}', '{"a": ([1],)}', '{"a": (1,)}', '{"a": ()}', '{"a": ( )}',
    '{"a": -0.0, "b": -0, "c": 0e5, "d": 1E+05, "e": 1e999, "f": -1e999}',
    '{"a": .5, "b": 5., "c": 1_000, "d": 0x1F, "e": 1j, "f": 1+2j, "g": - 1, "h": +1}',
    '{"a": "x\\ty", "b": \'it\\\'s\', "c": "\\u00e9\\x41", "d": "\\/", "e": r"\\d"}',
    '{"a": "a" "b", "b": u"u"}', '{1: 2, (1, 2): "t", None: 0}', '{"a": {1, 2}}',
    '{"a": [True, False, None], "t": "true", "n": "null # x"}',
    '{"a": 1, # comment\n "b": "#", \'c\': "\'",}  # end',
    '{"a": 1, "a": 2, "b": {"filename": "x", "filename": "y"}}',
    '\ufeff  {"a": "ü", "b": "\t tab inside"}',
    '{"sim": {"recordingSites": ("/a", "/b",)}, "neuron": {"filename": "/c.hoc"}}',
    '{"sim": {"recordingSites": ["/a", 1, ["/b"]]}}',
    '{\n"a": [\n(0.0,\n 1.0),\n],\n}', '{"a": """x\ny""", "b": \'\'\'\'\'\'}',
])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # literal_eval of "\\/"
def test_edge_cases_agree_with_literal_eval(text):
    body = text.lstrip("\ufeff").strip()
    assert repr(parse_param_text(text, "e.param")) == repr(ast.literal_eval(body))


def _plain_value(rng: random.Random, depth: int, quote: str) -> str:
    """A value of a text the plain parser takes: literals hold no quote, backslash, "#",
    parenthesis, True/False/None or comma before a closing bracket."""
    pick = rng.random()
    if depth > 3 or pick < 0.5:
        word = rng.choice(["/gpfs/x/cell.syn", "PSTH", "a, b", "[x]", "{y}", "Tru e", "Nine",
                           "tab\there", "ü", ""])
        return rng.choice([_number(rng, "repr"), _number(rng, "12g"), "True", "False", "None",
                           quote + word + quote])
    if pick < 0.65:
        items = [_plain_value(rng, depth + 1, quote) for _ in range(rng.randint(0, 5))]
        return "[" + ", ".join(items) + rng.choice(["", ","]) * bool(items) + "]"
    if pick < 0.8:  # tuples of scalars ("((" or "([" with a one-item tuple: left to others)
        items = [_plain_value(rng, 9, quote) for _ in range(rng.choice([0, 1, 2, 3]))]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else rng.choice(["", ","]) *
                                         bool(items)) + ")"
    return _plain_dict(rng, depth + 1, quote)


def _plain_dict(rng: random.Random, depth: int, quote: str) -> str:
    pad = "  " * depth
    lines = [f"{pad}  {quote}k{k}{quote}: {_plain_value(rng, depth, quote)},"
             + rng.choice(["", "", "  # (a 'comment', \"True\")"]) + "\n"
             for k in range(rng.randint(0, 5))]
    return "{\n" + "".join(lines) + pad + "}"


@pytest.mark.parametrize("quote", ['"', "'"])
def test_plain_parser_takes_plain_texts_and_agrees_with_literal_eval(quote):
    rng = random.Random(11)
    for _ in range(300):
        text = rng.choice(["", "\ufeff", "# head\n"]) + _plain_dict(rng, 0, quote)
        scanned = paramjson.plain_scan(text, locate=False)
        assert scanned is not None, text
        assert repr(scanned.value) == repr(ast.literal_eval(text.lstrip("\ufeff"))), text


@pytest.mark.parametrize("text", [
    '{"a": "x (y)"}', '{"a": "TrueColor", "b": "isNone"}', '{"a": "p, ]", "b": "q,}"}',
    '{"a": "#1"}', '{"a": "it\'s"}', '{"a": \'say "x"\'}', '{"a": "x\\ty"}', '{"a": 1, \'b\': 2}',
    '{"a": x}', '{"a": (1)}', '{"a": ((1, 2))}', '{"a": ([1],)}', '{"a": [1][0]}',
    '{"a": 1 + 2}', '{"a": 1,\r"b": 2}', '{"a": NaN}', '{"a": "\x02"}', '{"a": "\x03"}',
])
def test_plain_parser_leaves_what_it_cannot_prove(text):
    """Literals with what the plain transformations would touch, both quote kinds, escapes,
    names, groupings, subscripts, odd line ends and the marker characters: not taken (the
    other parsers read or reject them)."""
    assert paramjson.plain_scan(text, locate=False) is None
    assert paramjson.plain_scan(text, locate=True) is None


@pytest.mark.parametrize("text", [
    '{"a": true}', '{"a": false}', '{"a": null}', '{"a": NaN}', '{"a": Infinity}',
    '{"a": -Infinity}', '{"a": [,]}', '{"a": (,)}', '{"a": [1,,]}', '{"a": {,}}', '{"a": 1,,}',
    '{"a": 1 2}', '{"a": [1 2]}', '{"a": "x"\n"b": 2}', '{"a": x}', '{"a": True()}',
    '{"a": None.x}', '{"a": "s".upper()}', '{"a": [1]}[0]', '{"a": 1} + {}', '{"a": 1}\n{}',
    '["a"]', '("a",)', '{"a": 1', '{"a": 1e}', '{"a": 01}',
    '{"a": f"{1}"}', '{"a": b"x"}.decode()', '{"a": [1][0]}', '{"a": 1 + 2}', '{"a": ~1}',
    '{"a": (1)(2)}', '{"a": 1 < 2}', '{"a": (1, 2)[0]}', '{"a": {"b": 1}["b"]}',
])
def test_non_literals_are_rejected_with_one_line(text):
    try:
        ast_ok = isinstance(ast.literal_eval(text), dict)
    except (ValueError, SyntaxError, TypeError):
        ast_ok = False
    assert not ast_ok  # the premise: not a dict literal
    with pytest.raises(SimrunFormatError) as info:
        parse_param_text(text, "/runs/x_network_model.param")
    message = str(info.value)
    assert message.startswith("/runs/x_network_model.param: ") and "\n" not in message


def test_code_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    for text in (f"{{'a': __import__('os').system('touch {marker}')}}",
                 f"{{'a': open('{marker}', 'w')}}",
                 f"{{'a': [x for x in [open('{marker}', 'w')]]}}"):
        with pytest.raises(SimrunFormatError, match="not a plain literal|not a Python literal"):
            parse_param_text(text, "p")
    assert not marker.exists()


@pytest.mark.parametrize("text, key_path", [
    ('{"neuron": {"filename": "a"}, "neuron": {"filename": "b"}}', ("neuron", "filename")),
    ('{"sim": {"recordingSites": ["/a", ["/b"], "/c"]}}', ("sim", "recordingSites", 2)),
    ('{"sim": {"recordingSites": ("/a", "/c",)}}', ("sim", "recordingSites", 1)),
    ("{'neuron': {'filename': 'a', # c\n 'x': (1),}}", ("neuron", "filename")),
    ('\ufeff{"neuron": {"filename": "ü/a"}}', ("neuron", "filename")),
    ('{"n": {"filename": "a"}, "neuron": {"filename": "a"}}', ("neuron", "filename")),
])
def test_rewrite_replaces_exactly_the_literal_at_the_key_path(text, key_path):
    rewritten = rewrite_param_text(text, {key_path: "reldb://morphology/x.hoc"}, "p")
    expected = ast.literal_eval(text.lstrip("\ufeff"))
    node = expected
    for part in key_path[:-1]:
        node = node[part]
    if isinstance(node, tuple):  # rebuild the tuple with the new entry
        parent = expected
        for part in key_path[:-2]:
            parent = parent[part]
        items = list(node)
        items[key_path[-1]] = "reldb://morphology/x.hoc"
        parent[key_path[-2]] = tuple(items)
    else:
        node[key_path[-1]] = "reldb://morphology/x.hoc"
    assert repr(ast.literal_eval(rewritten.lstrip("\ufeff"))) == repr(expected)
    # one literal changed: the texts differ in one place only
    head = next(i for i, (a, b) in enumerate(zip(text, rewritten, strict=False)) if a != b)
    tail = next(i for i, (a, b) in enumerate(zip(text[::-1], rewritten[::-1], strict=False))
                if a != b)
    assert "reldb://morphology/x.hoc" in rewritten[head - 1: len(rewritten) - tail + 1]
    assert len(rewritten) - tail - head <= len('"reldb://morphology/x.hoc"')


@pytest.mark.parametrize("text", [
    '{"n": {"filename": "a"}, "neuron": {"filename": "b"}}',  # a reference key elsewhere
    '{"neuron": {"filename": "a", "filename": "b"}}',  # a duplicate key dropped a literal
    '{"sim": {"recordingSites": ["/a"]}}',  # list entries
])
def test_plain_parser_leaves_references_it_cannot_place(text):
    assert paramjson.plain_scan(text, locate=False) is not None
    assert paramjson.plain_scan(text, locate=True) is None
    scanned = scan_param_text(text, "p", locate=True)  # the split parser places them
    assert repr(scanned.value) == repr(ast.literal_eval(text))
    assert isinstance(scanned.locations, paramjson.TaggedLocations)


def _same_but_floats_as_text(rough, exact) -> bool:
    """``rough`` is ``exact`` with every float given as a text that reads as that float."""
    if isinstance(exact, float):
        return isinstance(rough, str) and float(rough) == exact
    if isinstance(exact, dict):
        return isinstance(rough, dict) and list(rough) == list(exact) and all(
            _same_but_floats_as_text(rough[k], exact[k]) for k in exact)
    if isinstance(exact, (list, tuple)):
        return type(rough) is type(exact) and len(rough) == len(exact) and all(
            _same_but_floats_as_text(r, e) for r, e in zip(rough, exact, strict=True))
    return type(rough) is type(exact) and rough == exact


@pytest.mark.parametrize("style", ["12g", "repr"])
def test_an_inexact_scan_leaves_floats_as_text_and_locates_the_same_literals(style):
    """What storing asks for: the same references at the same places, the numbers unread."""
    text = "# sweep point 3\n" + _network_text(40, style)
    expected = ast.literal_eval(text)
    rough = scan_param_text(text, "net.param", locate=True, exact=False)
    assert isinstance(rough.locations, paramjson.SpanTable)
    assert _same_but_floats_as_text(rough.value, expected)
    exact = scan_param_text(text, "net.param", locate=True)
    for celltype in expected["network"]:
        for key in ("distributionFile", "connectionFile"):
            key_path = ("network", celltype, "synapses", key)
            assert rough.locations.span(key_path) == exact.locations.span(key_path)
    # a float where a reference belongs is no reference: left to the exact parsers
    odd = '{"network": {"L2": {"synapses": {"distributionFile": 1.5}}}}'
    assert paramjson.plain_scan(odd, locate=True, exact=False) is None
    assert scan_param_text(odd, "p", locate=True, exact=False).value == ast.literal_eval(odd)
    with pytest.raises(SimrunFormatError, match="not a plain literal"):
        scan_param_text('{"a": [1.5][0]}', "p", locate=True, exact=False)

"""Param files: safe parsing, references, storing in the database folders (no JVM)."""

from __future__ import annotations

import ast
import hashlib
import multiprocessing
import os
import shutil

import pytest

from simlake import paramstore
from simlake.errors import SimrunFormatError
from simlake.paramfiles import (
    md5_file,
    parse_param_file,
    parse_param_text,
    referenced_files,
    resolve_reference,
    store_parameter_file,
)
from simlake.paramjson import SpanTable
from simlake.paramparse import scan_param_text
from simlake.paramrecords import Outcome
from simlake.paramstore import FolderFiles, local_runner, store_folders

NEURON_TEXT = """# a neuron model; "quotes" and 'quotes' in a comment, and a { brace
{
    'info': {'author': "A # B", 'note': 'x = "y" # z',},   # comment after a dict
    "neuron": {
        "filename": "{hoc}",  # the morphology
        "Soma": {"properties": {"Ra": 100.0, "cm": 1.0,}, "mechanisms": {"range": {
            "pas": {"g": 3.26e-05, "e": -90,},},},},
    },
    "sim": {
        "tStop": 300.0,
        "dt": 0.025,
        "recordingSites": ['{site}', "{missing}",],
        "window": (100.0, 300.0,),
        "single": (1,),
        "neg": -1.5e-3,
    },
}
"""

NETWORK_TEXT = """{
    "network": {
        "L2": {"cellNr": 3, "synapses": {
            "distributionFile": "{syn}", "connectionFile": "{con}",
            "receptors": {"glutamate_syn": {"weight": (1.0, 1.0),},},},},
        "VPM": {"cellNr": 2, "synapses": {
            "distributionFile": "{syn}",   # the same .syn for every cell type
            "connectionFile": "{con}",},},
        "L6": {"cellNr": 1, "synapses": {"distributionFile": "{gone_syn}",
                                          "connectionFile": "{gone_con}"}},
    },
}
"""


def _fill(template: str, **paths: str) -> str:
    for key, value in paths.items():
        template = template.replace("{" + key + "}", value)
    return template


@pytest.fixture()
def sources(tmp_path):
    """A raw tree: morphology, landmarks, .syn (header: absolute .hoc), .con (header: relative
    .syn), one neuron and one network param file."""
    src = tmp_path / "raw" / "20150815-1530_20240"
    anat = tmp_path / "anatomy"
    src.mkdir(parents=True)
    anat.mkdir()
    hoc = anat / "cell.hoc"
    hoc.write_text("{create soma}\n{access soma}\n{pt3dclear()}\n{pt3dadd(0,0,0,10)}\n"
                   "{pt3dadd(0,10,0,10)}\n")
    site = anat / "sites.landmarkAscii"
    site.write_text("# AmiraMesh 3D ASCII 2.0\n\n@1\n1 2 3\n")
    syn = anat / "cell.syn"
    syn.write_text(f"# Synapse distribution file\n# corresponding to cell: {hoc}\n"
                   "# Type - section - section.x\n\nL2\t0\t0.5\nVPM\t0\t1.0\n")
    con = anat / "cell.con"
    con.write_text("# Functional realization file; only valid with synapse realization:\n"
                   "# cell.syn\n# Type - cell ID - synapse ID\n\nL2\t0\t0\nVPM\t1\t0\n")
    neuron = src / "20240_neuron_model.param"
    neuron.write_text(_fill(NEURON_TEXT, hoc=str(hoc), site=str(site),
                            missing="/gone/away.landmarkAscii"))
    network = src / "20240_network_model.param"
    network.write_text(_fill(NETWORK_TEXT, syn=str(syn), con=str(con),
                             gone_syn="/gone/l6.syn", gone_con="/gone/l6.con"))
    return {"hoc": str(hoc), "site": str(site), "syn": str(syn), "con": str(con),
            "neuron": str(neuron), "network": str(network), "db": str(tmp_path / "db")}


def _tree(root: str) -> dict[str, bytes]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


def _md5(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.md5(fh.read()).hexdigest()


# -- parsing -----------------------------------------------------------------------------------


def test_parse_literals_tuples_trailing_commas_and_comments():
    params = parse_param_text(_fill(NEURON_TEXT, hoc="/a/c.hoc", site="/a/s", missing="/m"), "x")
    assert params["info"] == {"author": "A # B", "note": 'x = "y" # z'}
    assert params["sim"]["window"] == (100.0, 300.0)
    assert params["sim"]["single"] == (1,)
    assert params["sim"]["neg"] == -1.5e-3
    assert params["sim"]["recordingSites"] == ["/a/s", "/m"]
    assert params["neuron"]["Soma"]["mechanisms"]["range"]["pas"] == {"g": 3.26e-05, "e": -90}


def test_parse_accepts_leading_indentation_bom_and_final_comment():
    assert parse_param_text('\ufeff  {"a": 1}  # end', "p") == {"a": 1}


@pytest.mark.parametrize("text, reason", [
    ("{'a': __import__('os').system('touch {marker}')}", "Call"),
    ("{'a': open('{marker}', 'w')}", "Call"),
    ("{'a': true}", "Name"),
    ("{'a': os.path}", "Attribute"),
    ("{'a': (lambda: 1)}", "Lambda"),
    ("{'a': f'{1+1}'}", "JoinedStr"),
    ("[1, 2]", "not a dict literal"),
    ("{'a': 1", "not a Python literal"),
    ("{'a': 1}; import os", "not a Python literal"),
    ("{[1]: 2}", "unhashable"),
])
def test_parse_rejects_code_without_running_it(tmp_path, text, reason):
    marker = tmp_path / "executed"
    text = text.replace("{marker}", str(marker))
    with pytest.raises(SimrunFormatError, match=reason) as info:
        parse_param_text(text, "/some/model.param")
    assert str(info.value).startswith("/some/model.param: ")
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_parse_param_file_rejects_code_in_a_file(tmp_path):
    path = tmp_path / "evil.param"
    marker = tmp_path / "pwned"
    call = f"__import__('os').system('touch {marker}')"
    path.write_text(f"{{\n 'neuron': {{'filename': {call}}},\n}}\n")
    with pytest.raises(SimrunFormatError, match=r"evil\.param: .*Call at line 2"):
        parse_param_file(str(path))
    assert not marker.exists()


def test_md5_file(tmp_path):
    path = tmp_path / "f"
    data = os.urandom(3 << 20)
    path.write_bytes(data)
    assert md5_file(str(path)) == hashlib.md5(data).hexdigest()


def test_referenced_files(sources):
    neuron = parse_param_file(sources["neuron"])
    refs = referenced_files(neuron, "neuron")
    assert [(r.key, r.abspath, r.category) for r in refs] == [
        ("neuron.filename", sources["hoc"], "morphology"),
        ("sim.recordingSites[0]", sources["site"], "recsites_folder"),
        ("sim.recordingSites[1]", "/gone/away.landmarkAscii", "recsites_folder"),
    ]
    network = parse_param_file(sources["network"])
    got = {(r.key, r.category) for r in referenced_files(network, "network")}
    assert got == {(f"network.{t}.synapses.{k}", c) for t in ("L2", "VPM", "L6")
                   for k, c in (("distributionFile", "syn_folder"),
                                ("connectionFile", "con_folder"))}
    rel = referenced_files({"neuron": {"filename": "m/c.hoc"}}, "neuron", base_dir="/db")
    assert rel[0].abspath == "/db/m/c.hoc" and rel[0].path == "m/c.hoc"


# -- storing -----------------------------------------------------------------------------------


def test_store_neuron_param_file(sources):
    db = sources["db"]
    stored = store_parameter_file(sources["neuron"], db, "neuron")
    assert stored.md5 == _md5(sources["neuron"])
    assert stored.stored_path == f"parameterfiles_cell_folder/{stored.md5}"
    path = os.path.join(db, stored.stored_path)
    text = open(path).read()
    # the original text with only the quoted paths replaced: comments and layout survive
    assert "# the morphology" in text and "# a neuron model;" in text
    original = parse_param_file(sources["neuron"])
    copy = parse_param_file(path)
    hoc_ref = copy["neuron"]["filename"]
    site_ref = copy["sim"]["recordingSites"][0]
    assert hoc_ref == f"reldb://morphology/{_md5(sources['hoc'])}_cell.hoc"
    assert site_ref == f"reldb://recsites_folder/{_md5(sources['site'])}_sites.landmarkAscii"
    original["neuron"]["filename"] = hoc_ref
    original["sim"]["recordingSites"][0] = site_ref
    assert copy == original  # everything else identical (tuples stay tuples)
    # the references resolve inside the database to byte-identical copies
    for ref, src in ((hoc_ref, sources["hoc"]), (site_ref, sources["site"])):
        target = resolve_reference(db, ref)
        assert target.startswith(os.path.abspath(db) + os.sep)
        assert open(target, "rb").read() == open(src, "rb").read()
    # the missing landmark is reported and left as it was
    assert [(m.key, m.path) for m in stored.missing] == [
        ("sim.recordingSites[1]", "/gone/away.landmarkAscii")]
    assert copy["sim"]["recordingSites"][1] == "/gone/away.landmarkAscii"
    assert stored.references == {"neuron.filename": hoc_ref, "sim.recordingSites[0]": site_ref}


def test_store_network_param_file_rewrites_syn_and_con_headers(sources):
    db = sources["db"]
    stored = store_parameter_file(sources["network"], db, "network")
    assert stored.md5 == _md5(sources["network"])
    copy = parse_param_file(os.path.join(db, "parameterfiles_network_folder", stored.md5))
    l2 = copy["network"]["L2"]["synapses"]
    assert copy["network"]["VPM"]["synapses"]["distributionFile"] == l2["distributionFile"]
    assert copy["network"]["VPM"]["synapses"]["connectionFile"] == l2["connectionFile"]
    assert l2["receptors"]["glutamate_syn"]["weight"] == (1.0, 1.0)
    # one stored copy per distinct file
    assert len(os.listdir(os.path.join(db, "syn_folder"))) == 1
    assert len(os.listdir(os.path.join(db, "con_folder"))) == 1
    assert len(os.listdir(os.path.join(db, "morphology"))) == 1  # the .hoc the .syn names
    syn_copy = open(resolve_reference(db, l2["distributionFile"])).read().splitlines()
    con_copy = open(resolve_reference(db, l2["connectionFile"])).read().splitlines()
    hoc_ref = f"reldb://morphology/{_md5(sources['hoc'])}_cell.hoc"
    assert syn_copy[1] == f"# corresponding to cell: {hoc_ref}"
    assert con_copy[1] == f"# {l2['distributionFile']}"
    # the header references resolve to the copies; the data lines are unchanged
    assert os.path.isfile(resolve_reference(db, hoc_ref))
    assert syn_copy[2:] == open(sources["syn"]).read().splitlines()[2:]
    assert con_copy[2:] == open(sources["con"]).read().splitlines()[2:]
    # names are content addressed: <md5 of the stored bytes>_<basename>
    for ref in (l2["distributionFile"], l2["connectionFile"]):
        name = ref.split("/")[-1]
        assert name.split("_", 1)[0] == _md5(resolve_reference(db, ref))
    assert {(m.key, m.path) for m in stored.missing} == {
        ("network.L6.synapses.distributionFile", "/gone/l6.syn"),
        ("network.L6.synapses.connectionFile", "/gone/l6.con")}
    assert copy["network"]["L6"]["synapses"]["distributionFile"] == "/gone/l6.syn"


def test_same_basename_different_content_gets_two_copies(sources, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    hoc2 = other / "cell.hoc"
    hoc2.write_text("{create soma}\n{access soma}\n{pt3dadd(0,0,0,1)}\n")
    param2 = tmp_path / "n2.param"
    param2.write_text(_fill(NEURON_TEXT, hoc=str(hoc2), site=sources["site"], missing="/m"))
    a = store_parameter_file(sources["neuron"], sources["db"], "neuron")
    b = store_parameter_file(str(param2), sources["db"], "neuron")
    assert a.md5 != b.md5
    assert a.references["neuron.filename"] != b.references["neuron.filename"]
    assert a.references["sim.recordingSites[0]"] == b.references["sim.recordingSites[0]"]
    assert len(os.listdir(os.path.join(sources["db"], "morphology"))) == 2
    assert len(os.listdir(os.path.join(sources["db"], "recsites_folder"))) == 1
    assert len(os.listdir(os.path.join(sources["db"], "parameterfiles_cell_folder"))) == 2


def test_store_is_idempotent(sources):
    db = sources["db"]
    first = [store_parameter_file(sources[k], db, k) for k in ("neuron", "network")]
    before = _tree(db)
    second = [store_parameter_file(sources[k], db, k) for k in ("neuron", "network")]
    assert _tree(db) == before
    assert [s.md5 for s in first] == [s.md5 for s in second]
    assert all(s.created for s in first) and not any(s.created for s in second)
    # the second call reads its outcome from the stored copy: same references, same missing
    assert [s.references for s in first] == [s.references for s in second]
    assert [sorted(m[:2] for m in s.missing) for s in first] == [
        sorted(m[:2] for m in s.missing) for s in second]
    third = store_parameter_file(sources["neuron"], db, "neuron", verify=True)
    assert third.conflict is None and not third.created
    assert _tree(db) == before


def test_first_stored_copy_wins_and_verify_reports_a_conflict(sources):
    db = sources["db"]
    first = store_parameter_file(sources["neuron"], db, "neuron")
    stored = open(os.path.join(db, first.stored_path), "rb").read()
    with open(sources["hoc"], "a") as fh:  # the morphology changes, the param file does not
        fh.write("{pt3dadd(0,20,0,10)}\n")
    again = store_parameter_file(sources["neuron"], db, "neuron")
    assert again.conflict is None and again.references == first.references
    checked = store_parameter_file(sources["neuron"], db, "neuron", verify=True)
    assert checked.conflict and "kept the stored copy" in checked.conflict
    assert open(os.path.join(db, first.stored_path), "rb").read() == stored


def _store_both(args):
    neuron, network, db = args
    return (store_parameter_file(neuron, db, "neuron").md5,
            store_parameter_file(network, db, "network").md5)


def test_concurrent_stores_leave_identical_files(sources, tmp_path):
    serial_db = str(tmp_path / "serial")
    _store_both((sources["neuron"], sources["network"], serial_db))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(_store_both, [(sources["neuron"], sources["network"],
                                          sources["db"])] * 8)
    assert len(set(results)) == 1
    assert _tree(sources["db"]) == _tree(serial_db)  # no temp files, same bytes


def test_a_non_literal_param_file_is_not_stored(tmp_path):
    bad = tmp_path / "bad.param"
    bad.write_text("{'neuron': {'filename': __import__('os').getcwd()}}")
    with pytest.raises(SimrunFormatError, match="Call"):
        store_parameter_file(str(bad), str(tmp_path / "db"), "neuron")
    assert not os.path.exists(tmp_path / "db" / "parameterfiles_cell_folder")


def test_rewrite_handles_non_ascii_and_single_line(tmp_path):
    hoc = tmp_path / "zelle_ü.hoc"
    hoc.write_text("{create soma}\n")
    param = tmp_path / "p.param"
    template = '{"ä": "ö", "neuron": {"x": "é", "filename": \'PATH\'}, "z": "ß"}'
    param.write_text(template.replace("PATH", str(hoc)), encoding="utf-8")
    stored = store_parameter_file(str(param), str(tmp_path / "db"), "neuron")
    text = open(os.path.join(tmp_path, "db", stored.stored_path), encoding="utf-8").read()
    ref = stored.references["neuron.filename"]
    assert text == template.replace("PATH", ref)
    assert os.path.isfile(resolve_reference(str(tmp_path / "db"), ref))


def test_syn_header_naming_the_cell_by_file_name_uses_the_morphology_hint(sources, tmp_path):
    """As in generated trees: the .syn names its cell by the .hoc's file name, which does not
    resolve from the .syn's folder; the sim-run's neuron file tells which morphology it is."""
    netdir = tmp_path / "network"
    netdir.mkdir()
    syn = netdir / "cell.syn"
    syn.write_text("# Synapse distribution file\n# corresponding to cell: cell.hoc\n"
                   "# Type - section - section.x\n\nL2\t0\t0.5\n")
    param = tmp_path / "net.param"
    param.write_text(_fill('{"network": {"L2": {"synapses": {"distributionFile": "{syn}"}}}}',
                           syn=str(syn)))
    plain = store_parameter_file(str(param), str(tmp_path / "db1"), "network")
    assert [(m.key, m.path) for m in plain.missing] == [
        ("network.L2.synapses.distributionFile[header]", "cell.hoc")]
    neuron = store_parameter_file(sources["neuron"], str(tmp_path / "db2"), "neuron")
    hoc = neuron.sources["neuron.filename"]
    assert hoc == sources["hoc"]
    hinted = store_parameter_file(str(param), str(tmp_path / "db2"), "network",
                                  morphology_hint=hoc)
    assert hinted.missing == ()
    copy = resolve_reference(str(tmp_path / "db2"),
                             hinted.references["network.L2.synapses.distributionFile"])
    assert open(copy).read().splitlines()[1] == (
        f"# corresponding to cell: {neuron.references['neuron.filename']}")


# -- reldb:// references -----------------------------------------------------------------------


def _isf_resolve(db: str, ref: str) -> str:
    """ISF's rule (data_base.dbopen): the path after ``reldb://``, inside the database."""
    assert ref.startswith("reldb://"), ref
    return os.path.join(db, *ref.split("/")[2:])


def test_references_round_trip_through_reldb(sources):
    db = sources["db"]
    neuron = store_parameter_file(sources["neuron"], db, "neuron")
    hint = neuron.sources["neuron.filename"]
    network = store_parameter_file(sources["network"], db, "network", morphology_hint=hint)
    copies = {kind: parse_param_file(os.path.join(db, s.stored_path))
              for kind, s in (("neuron", neuron), ("network", network))}
    raw = {kind: parse_param_file(sources[kind]) for kind in ("neuron", "network")}
    checked = 0
    for kind, copy in copies.items():
        originals = {r.key: r.path for r in referenced_files(raw[kind], kind)}
        for ref in referenced_files(copy, kind):
            source = originals[ref.key]
            if source.startswith("/gone/"):  # missing at ingest: kept as written
                assert ref.path == source
                continue
            target = _isf_resolve(db, ref.path)
            assert resolve_reference(db, ref.path) == target
            data, original = open(target, "rb").read(), open(source, "rb").read()
            if target.endswith((".syn", ".con")):  # header line 2 names the copy, reldb too
                lines, raw_lines = data.split(b"\n"), original.split(b"\n")
                assert lines[:1] + lines[2:] == raw_lines[:1] + raw_lines[2:]
                header_ref = lines[1].decode().split()[-1]
                assert os.path.isfile(_isf_resolve(db, header_ref))
            else:
                assert data == original
            checked += 1
    assert checked == 2 + 4  # hoc + landmark; .syn and .con of L2 and VPM


def test_older_databases_with_plain_relative_references_still_load(sources):
    """A database written before reldb://: stored copy with ``morphology/<md5>_cell.hoc``."""
    from simlake.cellnet import load_stored_params
    from simlake.paramrecords import RECORDS_DIR

    db = sources["db"]
    stored = store_parameter_file(sources["neuron"], db, "neuron")
    path = os.path.join(db, stored.stored_path)
    text = open(path).read().replace("reldb://", "")
    with open(path, "w") as fh:  # as an older simlake wrote it, with no outcome record
        fh.write(text)
    shutil.rmtree(os.path.join(db, RECORDS_DIR))
    params = load_stored_params(db, "neuron", stored.md5)
    assert params["neuron"]["filename"] == os.path.join(os.path.abspath(db), "morphology",
                                                        f"{_md5(sources['hoc'])}_cell.hoc")
    assert open(params["neuron"]["filename"], "rb").read() == open(sources["hoc"], "rb").read()
    # storing the same md5 again reads the stored copy, not the source, and records it
    scans = CountingScan()
    again = store_parameter_file(sources["neuron"], db, "neuron", scan=scans)
    assert scans.calls == [] and not again.parsed
    assert again.references == {k: v.replace("reldb://", "") for k, v in stored.references.items()}
    assert [m.path for m in again.missing] == ["/gone/away.landmarkAscii"]
    assert os.path.isdir(os.path.join(db, RECORDS_DIR))


# -- each distinct file once -------------------------------------------------------------------


class CountingScan:
    """The real parser, counting the texts it is given (picklable)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, text: str, path: str, locate: bool = False, exact: bool = True):
        self.calls.append(path)
        return scan_param_text(text, path, locate=locate, exact=exact)


def _folders(tmp_path, sources, networks: list[str], tag: str) -> list[FolderFiles]:
    """One sim-run folder per network text, each with a copy of the same neuron file."""
    out = []
    for k, text in enumerate(networks):
        folder = tmp_path / "raw" / f"20150815-1530_{tag}{k}"
        folder.mkdir(parents=True)
        neuron = folder / f"{k}_neuron_model.param"
        neuron.write_bytes(open(sources["neuron"], "rb").read())
        network = folder / f"{k}_network_model.param"
        network.write_text(text)
        out.append(FolderFiles(f"raw/{folder.name}", str(neuron), str(network)))
    return out


def test_a_repeated_md5_is_parsed_once_per_database(sources, tmp_path):
    shared = open(sources["network"]).read()
    other = shared.replace('"cellNr": 3', '"cellNr": 4')
    evil = "{'network': __import__('os').getcwd()}"
    networks = [shared, shared, other, evil, shared, evil]
    folders = _folders(tmp_path, sources, networks, "a")
    db = str(tmp_path / "db")
    scans = CountingScan()
    first = store_folders(folders, db, local_runner, scan=scans)
    # one parse per distinct md5: the neuron file, two good network files, the rejected one
    assert len(scans.calls) == 4
    assert sorted(map(_md5, scans.calls)) == sorted(
        {_md5(f.neuron) for f in folders} | {_md5(f.network) for f in folders})
    for f, result, text in zip(folders, first, networks, strict=True):
        assert result.hash_neuron == _md5(f.neuron)
        kinds = [kind for _, kind, _ in result.rejections]
        if text is evil:
            assert result.hash_network is None
            assert (f.network, "network_param", "not a plain literal: Call at line 1") in \
                result.rejections
        else:
            assert result.hash_network == _md5(f.network)
            assert kinds.count("network_param_reference") == 2  # L6's .syn and .con
        assert kinds.count("neuron_param_reference") == 1  # the missing landmark
        assert all(path in (f.neuron, f.network) for path, _, _ in result.rejections)
    # a later batch or run: new folders with the same files cost their md5s, no parse
    scans.calls.clear()
    later = _folders(tmp_path, sources, networks, "b")
    second = store_folders(later, db, local_runner, scan=scans)
    assert scans.calls == []
    for a, b in zip(first, second, strict=True):
        assert (a.hash_neuron, a.hash_network) == (b.hash_neuron, b.hash_network)
        assert [(k, r) for _, k, r in a.rejections] == [(k, r) for _, k, r in b.rejections]
    # the stored copies are the ones the first pass wrote: one per distinct good file
    assert sorted(os.listdir(os.path.join(db, "parameterfiles_network_folder"))) == sorted(
        {_md5(f.network) for f, t in zip(folders, networks, strict=True) if t is not evil})


def test_network_files_of_a_new_neuron_file_get_its_morphology_hint(sources, tmp_path):
    """The .syn names its cell by file name only; the folder's neuron file (stored in the same
    call) says which morphology that is, so the stored .syn points at the stored .hoc."""
    netdir = tmp_path / "network"
    netdir.mkdir()
    (netdir / "cell.syn").write_text("# Synapse distribution file\n"
                                     "# corresponding to cell: cell.hoc\n# x\n\nL2\t0\t0.5\n")
    syn = netdir / "cell.syn"
    text = f'{{"network": {{"L2": {{"synapses": {{"distributionFile": "{syn}"}}}}}}}}'
    folders = _folders(tmp_path, sources, [text, text.replace("L2", "L3")], "h")
    db = str(tmp_path / "db")
    results = store_folders(folders, db, local_runner)
    assert all(r.hash_network for r in results)
    assert not [r for res in results for r in res.rejections if "header" in r[2]]
    for f in folders:
        stored = parse_param_file(os.path.join(db, "parameterfiles_network_folder",
                                               _md5(f.network)))
        (cfg,) = stored["network"].values()
        syn = open(_isf_resolve(db, cfg["synapses"]["distributionFile"])).read().splitlines()
        assert syn[1] == f"# corresponding to cell: reldb://morphology/{_md5(sources['hoc'])}" \
                         "_cell.hoc"


def test_a_missing_file_named_by_many_cell_types_is_one_line_per_folder(sources, tmp_path):
    cells = ", ".join(f'"L{i}": {{"synapses": {{"distributionFile": "/gone/all.syn"}}}}'
                      for i in range(50))
    folders = _folders(tmp_path, sources, ["{'network': {" + cells + "}}"] * 2, "m")
    for result in store_folders(folders, str(tmp_path / "db"), local_runner):
        lines = [r for _, kind, r in result.rejections if kind == "network_param_reference"]
        assert lines == ["reference network.L0.synapses.distributionFile (and 49 more) -> "
                         "/gone/all.syn not stored: no such file"]


def test_an_md5_known_in_another_database_is_not_stored_again(sources, tmp_path):
    """Strict runs check param files in a scratch folder: what the database knows is reused."""
    folders = _folders(tmp_path, sources, [open(sources["network"]).read()], "k")
    db, scratch = str(tmp_path / "db"), str(tmp_path / "scratch")
    first = store_folders(folders, db, local_runner)
    scans = CountingScan()
    checked = store_folders(folders, scratch, local_runner, scan=scans, known_in=[db])
    assert scans.calls == [] and not os.path.exists(scratch)
    assert checked == first


def test_an_unexpected_failure_is_one_folder_line_not_a_failed_run(sources, tmp_path):
    def broken(text, path, locate=False, exact=True):
        raise RuntimeError("boom\nsecond line")

    folders = _folders(tmp_path, sources, [open(sources["network"]).read()] * 2, "u")
    results = store_folders(folders, str(tmp_path / "db"), local_runner, scan=broken)
    for f, result in zip(folders, results, strict=True):
        assert (result.hash_neuron, result.hash_network) == (None, None)
        assert (f.network, "network_param", "RuntimeError: boom second line") in result.rejections


# -- real-shaped sweeps ------------------------------------------------------------------------


def _real_sweep(tmp_path, runs: int) -> list[FolderFiles]:
    """The sim-run folders of a ``simlake synth --profile real`` parameter sweep (every folder
    its own ~350 KB network file, all naming one .syn and one .con)."""
    from simlake import synth

    report = synth.generate_tree(tmp_path / "raw", runs=runs, trials=1, times=20,
                                 profile="real", network_params="distinct")
    folders = []
    for f in report.folders:
        folder = os.path.join(report.root, f.sim_run)
        names = os.listdir(folder)
        neuron = [n for n in names if n.endswith("_neuron_model.param")]
        network = [n for n in names if n.endswith("_network_model.param")]
        folders.append(FolderFiles(f.sim_run, os.path.join(folder, neuron[0]),
                                   os.path.join(folder, network[0])))
    return folders


def test_a_real_shaped_sweep_is_stored_as_ast_reads_it(tmp_path):
    """Each stored network copy is its source as ``ast.literal_eval`` reads it with only the
    references changed, and the files are the ones each param file stored alone gives."""
    folders = _real_sweep(tmp_path, 3)
    assert len({_md5(f.network) for f in folders}) == 3
    db, alone = str(tmp_path / "db"), str(tmp_path / "alone")
    results = store_folders(folders, db, local_runner)
    for f, result in zip(folders, results, strict=True):
        assert result.hash_network == _md5(f.network) and not result.rejections
        with open(f.network) as fh:
            text = fh.read()
        source = ast.literal_eval(text.lstrip())
        # the plain parser took it (the fast path real files take)
        assert isinstance(scan_param_text(text, f.network, locate=True).locations, SpanTable)
        stored_path = os.path.join(db, "parameterfiles_network_folder", result.hash_network)
        with open(stored_path) as fh:
            copy = ast.literal_eval(fh.read().lstrip())
        assert len(source["network"]) >= 200
        for celltype, cfg in source["network"].items():
            for key, folder in (("distributionFile", "syn_folder"),
                                ("connectionFile", "con_folder")):
                ref = copy["network"][celltype]["synapses"][key]
                assert ref.startswith(f"reldb://{folder}/")
                assert open(_isf_resolve(db, ref), "rb").read()[-2000:] == \
                    open(cfg["synapses"][key], "rb").read()[-2000:]
                cfg["synapses"][key] = ref
        assert repr(copy) == repr(source)
        # the same bytes as storing each file alone, with no copy remembered between files
        store_parameter_file(f.neuron, alone, "neuron")
        hint = store_parameter_file(f.neuron, alone, "neuron").sources["neuron.filename"]
        store_parameter_file(f.network, alone, "network", morphology_hint=hint)
    assert _tree(db) == _tree(alone)


def test_remembered_copies_are_made_again_when_their_file_changes(sources, tmp_path):
    """Within one store, a .syn named by many network files is copied once; a .syn that
    changes in between, and a header naming a missing file, come out as without memory."""
    gone_hoc = tmp_path / "gone.syn"
    gone_hoc.write_text("# Synapse distribution file\n# corresponding to cell: /gone/x.hoc\n"
                        "# x\n\nL2\t0\t0.5\n")
    texts = [f'{{"network": {{"L{k}": {{"synapses": {{"distributionFile": "{sources["syn"]}", '
             f'"connectionFile": "{gone_hoc}"}}}}}}}}' for k in range(3)]
    folders = _folders(tmp_path, sources, texts, "c")
    store_file = paramstore.StoreFile(str(tmp_path / "db"))
    first = store_file(("network", folders[0].network, _md5(folders[0].network), None))
    with open(sources["syn"], "a") as fh:  # a new line: another size
        fh.write("L3\t0\t0.25\n")
    second = store_file(("network", folders[1].network, _md5(folders[1].network), None))
    third = store_file(("network", folders[2].network, _md5(folders[2].network), None))
    refs = [Outcome.from_json(r[2]).references for r in (first, second, third)]
    syn_refs = [next(v for k, v in r.items() if k.endswith("distributionFile")) for r in refs]
    assert syn_refs[0] != syn_refs[1] == syn_refs[2]
    copies = [open(resolve_reference(str(tmp_path / "db"), r)).read().splitlines()
              for r in syn_refs[:2]]
    assert copies[0][2:] + ["L3\t0\t0.25"] == copies[1][2:] == \
        open(sources["syn"]).read().splitlines()[2:]
    for k, result in enumerate((first, second, third)):
        missing = Outcome.from_json(result[2]).missing
        assert [(m.key, m.path) for m in missing] == [
            (f"network.L{k}.synapses.connectionFile[header]", "/gone/x.hoc")]


def test_a_strict_run_stores_what_its_check_prepared_without_parsing_again(sources, tmp_path):
    """Strict runs store param files in a scratch folder first, and into the database once the
    folders are known good: the second store copies what the first prepared, no parse; the
    database then holds what storing there directly gives."""
    shared = open(sources["network"]).read()
    evil = "{'network': __import__('os').getcwd()}"
    networks = [shared, shared.replace('"cellNr": 3', '"cellNr": 4'), evil, shared]
    folders = _folders(tmp_path, sources, networks, "s")
    db, scratch, direct = (str(tmp_path / name) for name in ("db", "scratch", "direct"))
    scans = CountingScan()
    checked = store_folders(folders, scratch, local_runner, scan=scans, known_in=[db])
    assert len(scans.calls) == 4  # the neuron file, two network files, the rejected one
    scans.calls.clear()
    stored = store_folders(folders, db, local_runner, scan=scans, prepared_in=scratch)
    assert scans.calls == []
    assert stored == checked == store_folders(folders, direct, local_runner)
    assert _tree(db) == _tree(direct) == _tree(scratch)
    # a prepared md5 whose copies are gone is stored again (parsed), with the same result
    db2 = str(tmp_path / "db2")
    shutil.rmtree(os.path.join(scratch, "con_folder"))
    assert store_folders(folders, db2, local_runner, scan=scans, prepared_in=scratch) == stored
    assert sorted(map(_md5, scans.calls)) == sorted({_md5(f.network) for f in folders[:2]})
    assert _tree(db2) == _tree(direct)


def test_a_record_read_back_from_the_stored_copy_gives_way_to_the_stores_own(sources):
    """Between a store's copy and its record, another store of the same md5 describes the
    copy and records that (it cannot know the paths as written): the parsing store's record
    then replaces it, never the other way round."""
    from simlake.paramfiles import known_outcome
    from simlake.paramrecords import read_outcome, record_path, write_outcome

    db = sources["db"]
    stored = store_parameter_file(sources["network"], db, "network")
    full = read_outcome(db, "network", stored.md5)
    os.remove(record_path(db, "network", stored.md5))  # the first store, before its record
    derived = known_outcome(db, "network", stored.md5)  # the second store, meanwhile
    assert derived is not None and derived.derived and not full.derived
    assert derived.references == full.references and derived.written != full.written
    assert write_outcome(db, full)  # the first store's record lands after all
    assert read_outcome(db, "network", stored.md5) == full
    assert not write_outcome(db, derived)
    assert read_outcome(db, "network", stored.md5) == full

"""Trees made of copies of one real simrun folder, as a new user tries simlake on real output.

Issue 18 measured simlake on 100 copies of a real ISF sim-run folder (572 MB csv, 6 trials a
folder). A real folder is not part of this project (never commit one): point ``--source`` at
one you have, e.g. the example folder of ISF's ``getting_started`` data
(``simulation_data/C2_evoked_UpState_INH_PW_1.0_SuW_0.5_C2center/20150815-1530_20240``).

Each copy is a folder of its own: ``<date>-<time>_<id>`` with ``id`` counted up from the
source's, and the files that carry the source's id as their prefix (``20240_vm_all_traces.csv``)
renamed to the copy's, as simrun names them; the per-trial files keep their names.
"""

from __future__ import annotations

import os
import re
import shutil

#: simrun folder names: a timestamp and an id (older runs: a pid; newer: seed and pid).
FOLDER_NAME = re.compile(r"^(?P<stamp>\d{8}-\d{4})_(?P<id>\d+)$")


def copies_tree(source: str, out: str, copies: int) -> str:
    """``out/results/`` holding ``copies`` copies of the sim-run folder ``source`` (made once;
    reused while ``out + '.complete'`` names the same source and count). Returns ``out``."""
    source = os.path.abspath(source)
    name = os.path.basename(source.rstrip("/"))
    match = FOLDER_NAME.match(name)
    if match is None:
        raise ValueError(f"{source}: not a simrun folder name (<yyyymmdd>-<hhmm>_<id>)")
    stamp, first_id = match["stamp"], int(match["id"])
    done = out + ".complete"
    tag = f"{source} x {copies}\n"
    if os.path.exists(done) and open(done).read() == tag:
        return out
    shutil.rmtree(out, ignore_errors=True)
    results = os.path.join(out, "results")
    os.makedirs(results)
    prefix = f"{first_id}_"
    names = sorted(os.listdir(source))
    for k in range(copies):
        new_id = first_id + k
        folder = os.path.join(results, f"{stamp}_{new_id}")
        os.mkdir(folder)
        for n in names:
            target = f"{new_id}_{n[len(prefix):]}" if n.startswith(prefix) else n
            shutil.copyfile(os.path.join(source, n), os.path.join(folder, target))
    with open(done, "w") as fh:
        fh.write(tag)
    return out

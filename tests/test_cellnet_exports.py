"""``simlake.load_param_files_from_db`` & co.: lazy exports that need neither Spark nor NEURON."""

from __future__ import annotations

import subprocess
import sys

import simlake
from simlake import cellnet

EXPORTS = ("load_param_files_from_db", "load_initialized_cell_and_evokedNW_from_db",
           "check_consistency")


def test_loaders_are_exported_from_the_package():
    for name in EXPORTS:
        assert getattr(simlake, name) is getattr(cellnet, name)
        assert name in dir(simlake)


def test_exports_import_without_pyspark_and_neuron():
    code = (
        "import sys\n"
        "sys.modules['pyspark'] = None\n"  # any import of them raises ImportError
        "sys.modules['neuron'] = None\n"
        "import simlake\n"
        f"for name in {EXPORTS!r}:\n"
        "    assert callable(getattr(simlake, name)), name\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('pyspark', 'neuron', 'delta')\n"
        "          and sys.modules[m] is not None]\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

"""The notebooks run end to end against a database ingested by the real Spark job."""

from __future__ import annotations

import json
import os
import sys

import matplotlib.image
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.spark

NOTEBOOKS = os.path.join(os.path.dirname(__file__), os.pardir, "notebooks")
FIGURES = ("soma_voltage.png", "synapse_raster.png", "morphology_synapses.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def execute(name: str, parameters: dict, workdir: str) -> nbformat.NotebookNode:
    """Run notebook ``name`` with its ``parameters`` cell replaced, in the ``python3`` kernel of
    the interpreter running the tests (plus a last cell reporting that interpreter)."""
    nb = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert set(parameters) <= set(_assigned_names(cell.source)), "unknown parameter"
    cell.source = "".join(f"{key} = {value!r}\n" for key, value in parameters.items())
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, sys\n"
        "print(json.dumps({'prefix': sys.prefix, 'executable': sys.executable}))"))
    NotebookClient(nb, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": workdir}}).execute()
    return nb


def _assigned_names(source: str) -> list[str]:
    return [line.split("=")[0].strip() for line in source.splitlines() if "=" in line]


def stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o["text"] for o in cell.get("outputs", []) if o["output_type"] == "stream"
                   and o["name"] == "stdout")


def test_notebooks_are_stored_without_outputs():
    for name in sorted(os.listdir(NOTEBOOKS)):
        if name.endswith(".ipynb"):
            nb = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
            nbformat.validate(nb)
            assert nb.metadata.kernelspec.name == "python3"
            assert all(not c.get("outputs") and c.get("execution_count") is None
                       for c in nb.cells if c.cell_type == "code"), name


def test_inspect_trial_notebook(ingested, tmp_path):
    out_dir = tmp_path / "figures"
    nb = execute("inspect_trial.ipynb", {"DB_PATH": ingested["db"], "TRIAL": None,
                                         "OUT_DIR": str(out_dir)}, str(tmp_path))
    text = "".join(stdout(c) for c in nb.cells)

    # the kernel is the interpreter (virtualenv) running the tests
    kernel = json.loads(stdout(nb.cells[-1]))
    assert kernel["prefix"] == sys.prefix, kernel

    # default trial: the first (sorted) trial with a somatic spike, from the generator's report
    spiking = sorted(sti for f in ingested["report"].folders
                     for sti, n in zip(f.sim_trial_indices(), f.soma_spike_counts, strict=True)
                     if n > 0)
    assert f"trial: {spiking[0]}\n" in text
    assert "\nconsistent: " in text and "INCONSISTENT" not in text

    for name in FIGURES:
        path = out_dir / name
        with open(path, "rb") as fh:
            assert fh.read(8) == PNG_SIGNATURE, name
        image = matplotlib.image.imread(str(path))
        height, width = image.shape[:2]
        assert height >= 300 and width >= 500, (name, image.shape)
        rgb = image[..., :3]
        inked = np.any(rgb < 0.9, axis=-1).mean()
        assert 0.01 < inked < 0.6, (name, inked)  # drawn on, not a blank or flooded canvas
        colours = np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)
        assert len(colours) > 50, (name, len(colours))  # lines, markers, text: many shades
    # the morphology and the raster mark synapses in the cell-type colours (tab10, one per type)
    tab10 = np.array(matplotlib.colormaps["tab10"].colors[:5])
    for name in ("synapse_raster.png", "morphology_synapses.png"):
        rgb = matplotlib.image.imread(str(out_dir / name))[..., :3].reshape(-1, 1, 3)
        used = np.any(np.all(np.abs(rgb - tab10) < 0.02, axis=-1), axis=0)
        assert used.sum() >= 3, (name, used)


def test_inspect_trial_fails_on_a_missing_database_and_writes_nothing(tmp_path):
    """A wrong DB_PATH is one clear error, raised before any folder is created."""
    from nbclient.exceptions import CellExecutionError

    missing = tmp_path / "no-such-db"
    with pytest.raises(CellExecutionError, match="no simlake database at"):
        execute("inspect_trial.ipynb", {"DB_PATH": str(missing), "TRIAL": None,
                                        "OUT_DIR": None}, str(tmp_path))
    assert os.listdir(tmp_path) == []  # no ./figures, no temporary folder in the caller's folder

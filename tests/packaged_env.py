"""simlake as users install it: the wheel built from this tree, installed (not editable) into a
fresh virtualenv with the versions of ``.ci/constraints.txt``, run with nothing of the checkout
on its path. Shared by the packaging and cluster tests (one venv per test session)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSTRAINTS = os.path.join(ROOT, ".ci", "constraints.txt")
#: what a Python worker never needs: the JVM side of pyspark (the executor has its own Spark)
PACK_EXCLUDE = "lib/python*/site-packages/pyspark/jars/*"


def _run(cmd: list[str], timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {out.returncode}:\n"
                             f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def build_wheel(out_dir: str) -> str:
    """``pip wheel`` of this tree (the project alone); the path of the wheel."""
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out_dir, ROOT])
    (wheel,) = glob.glob(os.path.join(out_dir, "simlake-*.whl"))
    return wheel


def isolated_env(venv: str, **extra: str) -> dict[str, str]:
    """The environment of a user of ``venv``: its ``bin`` first on PATH, nothing of the
    checkout's virtualenv or source tree (no PYTHONPATH, no PYSPARK_PYTHON pointing there)."""
    dropped = ("PYTHONPATH", "VIRTUAL_ENV", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON",
               "PYTHONHOME", "PYSPARK_SUBMIT_ARGS", "SIMLAKE_CONF_DIR")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    ours = os.path.dirname(sys.executable)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != ours]
    env["PATH"] = os.pathsep.join([os.path.join(venv, "bin"), *path])
    env["VIRTUAL_ENV"] = venv
    env.update(extra)
    return env


class WheelVenv:
    """A fresh virtualenv with the built wheel installed from it (no editable install)."""

    def __init__(self, base: str):
        self.base = base
        self.venv = os.path.join(base, "venv")
        self.python = os.path.join(self.venv, "bin", "python")
        self.seconds: dict[str, float] = {}
        start = time.monotonic()
        self.wheel = build_wheel(os.path.join(base, "dist"))
        self.seconds["build wheel"] = time.monotonic() - start
        start = time.monotonic()
        # --copies: bin/python is the interpreter itself, not an absolute symlink to it, so the
        # packed environment holds no link out of its folder
        _run([sys.executable, "-m", "venv", "--copies", self.venv])
        self.seconds["create venv"] = time.monotonic() - start

    def install(self, extras: str = "") -> None:
        """``pip install -c constraints WHEEL[extras]`` (from the pip cache where it can)."""
        start = time.monotonic()
        _run([self.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "-c", CONSTRAINTS, f"{self.wheel}[{extras}]" if extras else self.wheel],
             env=isolated_env(self.venv))
        self.seconds[f"install {extras or 'reading side'}"] = time.monotonic() - start

    def run(self, args: list[str], cwd: str, timeout: float = 900,
            **env: str) -> subprocess.CompletedProcess:
        """Run ``args`` (a console script of the venv or ``python``) in ``cwd``, as its user."""
        exe = self.python if args[0] == "python" else os.path.join(self.venv, "bin", args[0])
        return subprocess.run([exe, *args[1:]], capture_output=True, text=True, cwd=cwd,
                              timeout=timeout, env=isolated_env(self.venv, **env))

    def pack(self, out: str) -> str:
        """The venv packed by venv-pack for ``spark-submit --archives OUT#environment``: a
        ``.tar.gz`` at gzip level 1 (Spark unpacks it with the system's tar, which keeps the
        executable bits; it unpacks a plain ``.tar`` without them)."""
        start = time.monotonic()
        venv_pack = os.path.join(os.path.dirname(sys.executable), "venv-pack")
        _run([venv_pack, "--prefix", self.venv, "--output", out, "--format", "tar.gz",
              "--compress-level", "1", "--exclude", PACK_EXCLUDE, "--quiet"])
        self.seconds["venv-pack"] = time.monotonic() - start
        return out


#: What a reading-side user does with a database (run by the venv's python, argv[1] = DB):
#: prints one JSON line with where simlake came from, whether pyspark is importable, and
#: figures of the frames to compare against the Delta tables.
READ_SCRIPT = """
import importlib.util, json, sys
import numpy as np
import simlake
from simlake import DataBase

db = DataBase(sys.argv[1])
vt = db["voltage_traces"].compute()
spikes = db["spike_times"]
print("READ " + json.dumps({
    "simlake_file": simlake.__file__,
    "pyspark": importlib.util.find_spec("pyspark") is not None,
    "keys": sorted(db.keys()),
    "trials": sorted(vt.index),
    "vm_sum": float(np.nansum(vt.to_numpy(dtype=float))),
    "spikes": int(spikes.notna().to_numpy().sum()),
}))
"""


def read_with(venv: WheelVenv, db: str, cwd: str) -> dict:
    """The figures ``READ_SCRIPT`` prints for ``db``, read by ``venv``'s simlake."""
    import json

    out = venv.run(["python", "-c", READ_SCRIPT, db], cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("READ "))
    return json.loads(line.removeprefix("READ "))

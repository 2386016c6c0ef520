"""Lint and type checks, run by the suite so that CI's one command (``.ci/run``) covers them:
``ruff check libs jobs tests`` and ``mypy libs`` (settings in ``pyproject.toml``)."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def _check(tool: str, *args: str) -> None:
    out = subprocess.run([os.path.join(BIN, tool), *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    report = out.stdout[-6000:] + out.stderr[-2000:]
    assert out.returncode == 0, f"{tool} {' '.join(args)}:\n{report}"


def test_ruff():
    _check("ruff", "check", "libs", "jobs", "tests")


def test_mypy():
    _check("mypy", "libs")

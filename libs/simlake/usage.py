"""Argument parsing for the operator-facing commands: a usage error is one line and exit 1.

Exit codes of ``simlake sql``, ``info``, ``history``, ``optimize``, ``vacuum`` and ``verify``:
0 ok, 1 usage error or fault (one line on stderr), and for ``verify`` 2: problems found.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_OK = 0
EXIT_FAULT = 1
EXIT_PROBLEMS = 2


class UsageParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors exit 1 (argparse's own 2 means something
    else to a scheduler: rejected input of an ingest)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_FAULT, f"{self.prog}: error: {message}\n")


def fail(prog: str, message: str) -> int:
    """Print ``prog: message`` as one line on stderr; returns :data:`EXIT_FAULT`."""
    line = " ".join(str(message).split("\n")[0].split()) or "failed"
    print(f"{prog}: {line}", file=sys.stderr)
    return EXIT_FAULT

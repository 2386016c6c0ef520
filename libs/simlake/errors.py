"""Errors raised for bad simrun input."""

from __future__ import annotations


class SimrunFormatError(ValueError):
    """A raw simrun file that cannot be read as its kind; carries the file path.

    ``str(err)`` is one line: ``<path>: <reason>``.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # always one line
        super().__init__(f"{self.path}: {self.reason}")

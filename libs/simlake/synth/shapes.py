"""Tree profiles: the sizes and formats of the files a generated tree holds.

``default``: the small trees of the tests and the historical benchmarks (5 cell types, small
param files, every number printed with 10 decimals). ``real``: files of the size and structure of
ISF's example simrun folder (6 trials, ISF's getting-started data): 9,802 voltage rows
(100.0-345.025 ms), ~4,400 synapse and ~5,500 presynaptic-cell lines a trial, 278 cell types, a
~350 KB network and ~8.7 KB neuron param file, a ~820 KB ``.hoc`` (167 sections, ~14,000 points,
``%f``), ~640 KB ``.syn`` and ~370 KB ``.con``; old-era folders print numbers as Python 2's
``str`` (12 significant digits), new-era folders as ``repr`` (16-17 digits).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

PROFILES = ("default", "real")
NETWORK_PARAMS = ("variants", "shared", "distinct")


@dataclass(frozen=True)
class Shape:
    """Sizes and formats of a tree's files."""

    profile: str
    times: int  #: voltage rows
    synapses: int  #: synapses of the cell (``.syn`` lines)
    cells: int  #: presynaptic cells
    morph_points: int
    morph_sections: int = 16
    hoc_decimals: int = 4
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)  #: soma position of the cell
    celltypes: int = 0  #: 0: the default 5 types; else that many real-named types
    old_format: str = "fixed10"  #: number format of old-era folders
    new_format: str = "fixed10"  #: number format of new-era folders
    listed: str = "all"  #: ``"all"`` synapses/cells in every trial file, or ``"active"``

    @property
    def real(self) -> bool:
        """Real-shaped parameter files and cell types."""
        return self.profile == "real"

    def number_format(self, era: str) -> str:
        """Number format of a folder of naming era ``era``."""
        return self.old_format if era == "old" else self.new_format


DEFAULT = Shape("default", times=2000, synapses=400, cells=300, morph_points=300)
REAL = Shape("real", times=9802, synapses=24780, cells=24780, morph_points=13962,
             morph_sections=167, hoc_decimals=6, origin=(-126.7, 397.9, -379.4), celltypes=278,
             old_format="str12", new_format="repr", listed="active")
#: folder sizes of the real profile's default trees (cycled): a study's folders hold from a
#: handful of trials (6 in ISF's example) to hundreds
REAL_FOLDER_SIZES = (6, 6, 24, 6, 100, 6, 12, 300, 6, 50)


def shape_for(profile: str, **sizes: int | None) -> Shape:
    """The shape of ``profile`` with the given sizes (those not None) replacing its own."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    base = REAL if profile == "real" else DEFAULT
    changes: dict[str, Any] = {k: v for k, v in sizes.items() if v is not None}
    return replace(base, **changes)

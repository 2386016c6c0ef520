"""What the generator wrote: per sim-run folder and for the whole tree."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FolderReport:
    """What was written into one sim-run folder."""

    sim_run: str  #: path relative to the tree root, ``/``-separated
    era: str  #: ``"old"`` (uid = pid) or ``"new"`` (uid = ``seed<seed>_pid<pid>``)
    uid: str
    voltage_format: str  #: ``"csv"``, ``"npz"`` or ``"csv+npz"``
    voltage_file: str  #: the file a reader must use (``.csv`` if present)
    trial_numbers: tuple[int, ...]  #: ascending = voltage column order
    padding: int  #: digits of ``<NNNN>`` in the trial file names
    dendritic_labels: tuple[str, ...]
    dendritic_prefix: str  #: ``"<uid>_"`` or ``"seed_<pid>_"``
    neuron_variant: str
    network_variant: str
    leftovers: tuple[str, ...]  #: file names that match no pattern and must be ignored
    synapse_lines: int  #: data lines over all trial synapse files
    cell_lines: int
    soma_spike_counts: tuple[int, ...]  #: upward 0 mV crossings per trial (trial_numbers order)
    number_format: str = "fixed10"  #: how the csv numbers are printed (``numbers.FORMATS``)

    @property
    def n_trials(self) -> int:
        """Number of trials of the folder."""
        return len(self.trial_numbers)

    def sim_trial_indices(self) -> list[str]:
        """``<sim_run>/<trialnr padded to 6>`` of every trial, ascending."""
        return [f"{self.sim_run}/{n:06d}" for n in self.trial_numbers]


@dataclass(frozen=True)
class SynthReport:
    """What :func:`generate_tree` wrote."""

    root: str
    anatomy_dir: str
    folders: tuple[FolderReport, ...]
    running_folder: str  #: relative path of the ``_running`` folder (skipped with all below it)
    running_files: tuple[str, ...]  #: files below it, relative to the root
    n_times: int
    t_stop: float
    seed: int
    seconds: float = field(compare=False, default=0.0)
    profile: str = "default"  #: ``"default"`` or ``"real"`` (real-shaped files)
    network_params: str = "variants"  #: ``"variants"``, ``"shared"`` or ``"distinct"``

    @property
    def n_trials(self) -> int:
        """Trials over all (non-running) sim-run folders."""
        return sum(f.n_trials for f in self.folders)

    @property
    def n_synapse_lines(self) -> int:
        """Data lines over all synapse files of all (non-running) folders."""
        return sum(f.synapse_lines for f in self.folders)

    @property
    def n_cell_lines(self) -> int:
        """Data lines over all presynaptic-cell files of all (non-running) folders."""
        return sum(f.cell_lines for f in self.folders)

    def sim_trial_indices(self) -> list[str]:
        """Every ``sim_trial_index`` of the tree, sorted."""
        return sorted(s for f in self.folders for s in f.sim_trial_indices())

    def summary_line(self) -> str:
        """One line: folders, trials, lines, time."""
        return (f"{len(self.folders)} sim-run folders, {self.n_trials} trials, "
                f"{self.n_times} time points, {self.n_synapse_lines} synapse lines, "
                f"{self.n_cell_lines} cell lines, plus {self.running_folder} (to skip); "
                f"{self.seconds:.1f} s")

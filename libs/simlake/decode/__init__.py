"""Decoders: pure functions from raw file bytes to Arrow tables with the ``schemas`` layouts.

No file system access and no Spark: the caller reads the bytes and passes the context (sim_run,
trial numbers, recording site). Every defect raises ``SimrunFormatError(path, reason)``.
"""

from __future__ import annotations

from simlake.decode.activation import decode_presynaptic_cells, decode_synapses
from simlake.decode.spikes import (
    SpikeTrains,
    dendritic_spike_times_table,
    detect_spikes,
    detect_spikes_flat,
    spike_times_table,
)
from simlake.decode.voltage import decode_dendritic_csv, decode_voltage_csv, decode_voltage_npz

__all__ = [
    "SpikeTrains",
    "decode_dendritic_csv",
    "decode_presynaptic_cells",
    "decode_synapses",
    "decode_voltage_csv",
    "decode_voltage_npz",
    "dendritic_spike_times_table",
    "detect_spikes",
    "detect_spikes_flat",
    "spike_times_table",
]

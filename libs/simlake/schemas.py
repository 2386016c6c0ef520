"""The table contract: Arrow schemas of the Delta tables and how each table is laid out.

One narrow row per natural record, plain column names, arrays for series. A :class:`TableSpec`
per table (:data:`SPECS`) adds its Hive partition columns, the columns with Delta statistics
and the Delta table properties; the decoders, the ingest's writer and commits, ``optimize``,
link mode and the adapter all read them from here (``docs/database.md`` describes them).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

F64_LIST = pa.list_(pa.float64())


def encoded(schema: pa.Schema) -> pa.Schema:
    """``schema`` with its string columns dictionary-encoded (``dictionary<int32, string>``):
    how decoders hand low-cardinality strings to the data file writer (same values, same
    files; readers see plain strings)."""
    return pa.schema([f.with_type(pa.dictionary(pa.int32(), f.type))
                      if pa.types.is_string(f.type) else f for f in schema],
                     metadata=schema.metadata)


_TRIAL_KEY = [
    pa.field("sim_trial_index", pa.string(), nullable=False),
    pa.field("sim_run", pa.string(), nullable=False),
    pa.field("trialnr", pa.int64(), nullable=False),
]

METADATA = pa.schema(
    _TRIAL_KEY
    + [
        pa.field("voltage_traces_file_name", pa.string()),
        pa.field("synapses_file_name", pa.string()),
        pa.field("cells_file_name", pa.string()),
        # ingest bookkeeping: the run that committed the trial, and the folder's listing
        # fingerprint (names, sizes, mtimes) used to detect re-simulated folders
        pa.field("run_id", pa.string()),
        pa.field("folder_fingerprint", pa.string()),
    ]
)

VOLTAGE_TRACES = pa.schema(_TRIAL_KEY + [pa.field("t", F64_LIST), pa.field("vm", F64_LIST)])

SYNAPSE_ACTIVATION = pa.schema(
    _TRIAL_KEY
    + [
        pa.field("synapse_type", pa.string()),
        pa.field("synapse_ID", pa.int64()),
        pa.field("soma_distance", pa.float64()),
        pa.field("section_ID", pa.int64()),
        pa.field("section_pt_ID", pa.int64()),
        pa.field("dendrite_label", pa.string()),
        pa.field("activation_times", F64_LIST),
    ]
)

CELL_ACTIVATION = pa.schema(
    _TRIAL_KEY
    + [
        pa.field("presynaptic_cell_type", pa.string()),
        pa.field("cell_ID", pa.int64()),
        pa.field("spike_times", F64_LIST),
    ]
)

SPIKE_TIMES = pa.schema(
    _TRIAL_KEY + [pa.field("threshold", pa.float64()), pa.field("spike_times", F64_LIST)]
)

DENDRITIC_RECORDINGS = pa.schema(
    [pa.field("recording_site", pa.string(), nullable=False)] + list(VOLTAGE_TRACES)
)

DENDRITIC_SPIKE_TIMES = pa.schema(
    [pa.field("recording_site", pa.string(), nullable=False), pa.field("threshold", pa.float64())]
    + _TRIAL_KEY
    + [pa.field("spike_times", F64_LIST)]
)

PARAMETERFILES = pa.schema(
    [
        pa.field("sim_trial_index", pa.string(), nullable=False),
        pa.field("sim_run", pa.string(), nullable=False),
        pa.field("path_neuron", pa.string()),
        pa.field("path_network", pa.string()),
        pa.field("hash_neuron", pa.string()),
        pa.field("hash_network", pa.string()),
    ]
)

INGEST_ERRORS = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("sim_run", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("time", pa.timestamp("us", tz="UTC")),
    ]
)

#: Delta table name -> Arrow schema.
TABLES: dict[str, pa.Schema] = {
    "metadata": METADATA,
    "voltage_traces": VOLTAGE_TRACES,
    "synapse_activation": SYNAPSE_ACTIVATION,
    "cell_activation": CELL_ACTIVATION,
    "spike_times": SPIKE_TIMES,
    "dendritic_recordings": DENDRITIC_RECORDINGS,
    "dendritic_spike_times": DENDRITIC_SPIKE_TIMES,
    "parameterfiles": PARAMETERFILES,
    "ingest_errors": INGEST_ERRORS,
}


#: Key columns with Delta statistics, by preference; a table gets the first two it has (wide
#: array rows make full statistics costly, and the keys are all that readers skip on).
STATS_COLUMNS = ("sim_trial_index", "sim_run", "run_id")
#: Tables stored with a coarse Hive partition column.
PARTITION_COLUMNS: dict[str, tuple[str, ...]] = {
    "dendritic_recordings": ("recording_site",),
    "dendritic_spike_times": ("recording_site",),
}
#: Table property saying that string statistics are written untruncated up to this length
#: (readers trust them as exact bounds; delta-spark would truncate at 32 characters).
PREFIX_LENGTH_PROPERTY = "simlake.statsStringPrefixLength"
STATS_PREFIX_LENGTH = 1024


def stats_columns(schema: pa.Schema) -> list[str]:
    """The columns of ``schema`` with Delta min/max/null-count statistics: the table property
    ``delta.dataSkippingStatsColumns`` declares them, the writer computes them exactly."""
    return [c for c in STATS_COLUMNS if c in schema.names][:2]


@dataclass(frozen=True)
class TableSpec:
    """What every writer and reader of one Delta table needs to know about it.

    ``stats_columns``: the columns with exact Delta statistics; :func:`stats_columns` of the
    schema unless given.
    """

    name: str
    schema: pa.Schema
    partition_columns: tuple[str, ...] = ()
    stats_columns: tuple[str, ...] = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.stats_columns is None:
            object.__setattr__(self, "stats_columns", tuple(stats_columns(self.schema)))

    @property
    def data_schema(self) -> pa.Schema:
        """The columns stored in the data files (partition columns live in the log)."""
        return pa.schema([f for f in self.schema if f.name not in self.partition_columns])

    @property
    def properties(self) -> dict[str, str]:
        """Delta table properties: statistics on :attr:`stats_columns` only, and the note
        that they are untruncated."""
        return {"delta.dataSkippingStatsColumns": ",".join(self.stats_columns),
                PREFIX_LENGTH_PROPERTY: str(STATS_PREFIX_LENGTH)}


#: Table name -> its contract.
SPECS: dict[str, TableSpec] = {name: TableSpec(name, schema, PARTITION_COLUMNS.get(name, ()))
                               for name, schema in TABLES.items()}


def sim_trial_index(sim_run: str, trialnr: int) -> str:
    """The primary key of a trial: ``<sim_run>/<trialnr padded to 6 digits>``."""
    return f"{sim_run}/{int(trialnr):06d}"

"""Typed configuration loaded from the TOML files in ``conf/``.

No module-level state: every function takes the configuration folder (or a file path) it reads.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def default_conf_dir() -> str:
    """The project's ``conf/`` folder (the package lives in ``<project>/libs/simlake``)."""
    return os.path.normpath(os.path.join(_PACKAGE_DIR, "..", "..", "conf"))


def _resolve(name_or_path: str, conf_dir: str | None) -> str:
    if os.path.sep in name_or_path or name_or_path.endswith(".toml"):
        path = name_or_path
    else:
        path = os.path.join(conf_dir or default_conf_dir(), f"{name_or_path}.toml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"configuration {name_or_path!r} not found (looked for {path})")
    return path


def load_toml(name_or_path: str, conf_dir: str | None = None) -> dict[str, Any]:
    """Parse ``conf/<name>.toml`` (or an explicit path)."""
    with open(_resolve(name_or_path, conf_dir), "rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True)
class SparkProfile:
    """A named Spark profile: the master (None = leave it to spark-submit) and Spark settings."""

    name: str
    master: str | None
    app_name: str
    conf: dict[str, str] = field(default_factory=dict)
    #: map (and first write) a JVM class archive for the driver we launch; see
    #: ``simlake.spark.class_archive``
    class_archive: bool = False


def load_spark_profile(name_or_path: str = "local", conf_dir: str | None = None) -> SparkProfile:
    """Load a Spark profile such as ``local``, ``cluster`` or ``test`` from ``conf/``."""
    raw = load_toml(name_or_path, conf_dir).get("spark", {})
    conf = {str(k): str(v) for k, v in raw.get("conf", {}).items()}
    return SparkProfile(
        name=os.path.splitext(os.path.basename(name_or_path))[0],
        master=raw.get("master"),
        app_name=raw.get("app_name", "simlake"),
        conf=conf,
        class_archive=bool(raw.get("class_archive", False)),
    )


@dataclass(frozen=True)
class IngestDefaults:
    """Defaults of the ingest job, from ``conf/ingest.toml``."""

    target_task_bytes: int = 128 * 1024 * 1024
    batch_bytes: int = 4 * 1024**3
    spike_threshold: float = 0.0
    dendritic_spike_times_threshold: float = -30.0


def load_ingest_defaults(conf_dir: str | None = None) -> IngestDefaults:
    """Load ``conf/ingest.toml``; built-in defaults where the file or a field is absent."""
    try:
        raw = load_toml("ingest", conf_dir).get("ingest", {})
    except FileNotFoundError:
        raw = {}
    return IngestDefaults(
        **{k: v for k, v in raw.items() if k in IngestDefaults.__dataclass_fields__}
    )

"""Typed configuration loaded from TOML files: the defaults shipped in the package
(``simlake/conf/``), or an operator's folder that replaces them file by file.

No module-level state: every function takes the configuration folder (or a file path) it reads.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

#: Environment variable naming an operator's configuration folder (as ``SPARK_CONF_DIR`` names
#: Spark's): its files take the place of the packaged ones of the same name.
CONF_DIR_ENV = "SIMLAKE_CONF_DIR"


def default_conf_dir() -> str:
    """The configuration shipped inside the package (``simlake/conf``): the defaults every
    install has, whatever its layout (wheel, editable checkout, packed environment)."""
    return os.path.join(_PACKAGE_DIR, "conf")


def conf_search_path(conf_dir: str | None = None) -> list[str]:
    """Folders searched for a named configuration file, first match wins: ``conf_dir`` (the
    ``--conf-dir`` option), then ``$SIMLAKE_CONF_DIR``, then the packaged defaults. A folder
    that is named but does not exist is an error, not silently skipped."""
    folders = []
    for source, folder in (("--conf-dir", conf_dir),
                           (CONF_DIR_ENV, os.environ.get(CONF_DIR_ENV))):
        if folder:
            folder = os.path.expanduser(folder)
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"configuration folder {folder} ({source}) does not exist")
            folders.append(folder)
    folders.append(default_conf_dir())
    return folders


def _resolve(name_or_path: str, conf_dir: str | None) -> str:
    if os.path.sep in name_or_path or name_or_path.endswith(".toml"):
        if not os.path.isfile(name_or_path):
            raise FileNotFoundError(f"configuration file {name_or_path} not found")
        return name_or_path
    folders = conf_search_path(conf_dir)
    for folder in folders:
        path = os.path.join(folder, f"{name_or_path}.toml")
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"configuration {name_or_path!r} not found (looked for "
                            f"{name_or_path}.toml in {', '.join(folders)})")


def load_toml(name_or_path: str, conf_dir: str | None = None) -> dict[str, Any]:
    """Parse the configuration ``<name>.toml`` (see :func:`conf_search_path`) or a file path."""
    with open(_resolve(name_or_path, conf_dir), "rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True)
class SparkProfile:
    """A named Spark profile: the master (None = leave it to spark-submit) and Spark settings."""

    name: str
    master: str | None
    app_name: str
    conf: dict[str, str] = field(default_factory=dict)
    #: default of the driver JVM's class archive switch (``spark.simlake.classArchive``, which
    #: overrides it); see ``simlake.spark.class_archive``
    class_archive: bool = False


def load_spark_profile(name_or_path: str = "local", conf_dir: str | None = None) -> SparkProfile:
    """Load a Spark profile such as ``local``, ``cluster`` or ``test`` (or a ``.toml`` path)."""
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
    """Defaults of the ingest job, from ``ingest.toml``."""

    target_task_bytes: int = 128 * 1024 * 1024
    batch_bytes: int = 4 * 1024**3
    spike_threshold: float = 0.0
    dendritic_spike_times_threshold: float = -30.0


def load_ingest_defaults(conf_dir: str | None = None) -> IngestDefaults:
    """Load ``ingest.toml``; built-in defaults where a field is absent."""
    conf_search_path(conf_dir)  # a named folder that does not exist is an error
    try:
        raw = load_toml("ingest", conf_dir).get("ingest", {})
    except FileNotFoundError:
        raw = {}
    return IngestDefaults(
        **{k: v for k, v in raw.items() if k in IngestDefaults.__dataclass_fields__}
    )

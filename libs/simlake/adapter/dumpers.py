"""ISF's dumpers, mapped onto simlake's storage formats.

ISF code picks how a value is stored with ``db.set(key, value, dumper=<module>)``, a module of
``data_base.isf_data_base.IO.LoaderDumper`` (``pandas_to_parquet``, ``dask_to_msgpack``,
``to_cloudpickle``, ...). simlake keeps the call and maps each dumper onto the format that
stores the same value without loss:

========================================================== ====================================
ISF dumper                                                 simlake format
========================================================== ====================================
``pandas_to_parquet``, ``pandas_to_msgpack``,              ``delta`` (a Delta table; the frame
``dask_to_parquet``, ``dask_to_msgpack``,                  comes back as the type it was:
``dask_to_categorized_msgpack``                            pandas or dask)
``numpy_to_npy``, ``numpy_to_npz``, ``numpy_to_msgpack``,  ``npy``
``numpy_to_zarr``, ``shared_numpy_store``
``to_pickle``, ``to_cloudpickle``, ``pandas_to_pickle``    ``pickle``
``to_msgpack``                                             ``json`` for plain JSON values,
                                                           else ``pickle``
``just_create_folder``                                     a managed folder
``just_create_isf_db``                                     a sub-database
========================================================== ====================================

A dumper may be given as one of the objects of this module (``from simlake.dumpers import
pandas_to_parquet``), as ISF's own module (matched by its last name), as the name string, or
as a simlake format name (``'delta'``, ``'npy'``, ``'json'``, ``'pickle'``). Anything else is
an :class:`UnknownDumperError` naming the dumpers that exist.
"""

from __future__ import annotations

from typing import Any

#: simlake's storage formats for values (see :mod:`simlake.adapter.userkeys`).
VALUE_FORMATS = ("delta", "npy", "json", "pickle")
#: Pseudo-formats that create containers instead of storing a value.
FOLDER, SUB_DB = "folder", "sub_db"
#: ``to_msgpack`` stores any value; JSON when it is plain JSON, pickle otherwise.
JSON_OR_PICKLE = "json_or_pickle"


class Dumper:
    """An ISF dumper name (``__name__``, as ISF's dumper modules have) and the simlake
    format it maps to."""

    def __init__(self, name: str, fmt: str) -> None:
        self.__name__ = name
        self.format = fmt

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dumper) and (other.__name__, other.format) == (
            self.__name__, self.format)

    def __hash__(self) -> int:
        return hash((self.__name__, self.format))

    def __repr__(self) -> str:
        return f"<dumper {self.__name__} -> {self.format}>"


class UnknownDumperError(ValueError):
    """A dumper with no simlake equivalent."""


_FORMAT_OF = {
    "pandas_to_parquet": "delta", "pandas_to_msgpack": "delta", "dask_to_parquet": "delta",
    "dask_to_msgpack": "delta", "dask_to_categorized_msgpack": "delta",
    "numpy_to_npy": "npy", "numpy_to_npz": "npy", "numpy_to_msgpack": "npy",
    "numpy_to_zarr": "npy", "shared_numpy_store": "npy",
    "to_pickle": "pickle", "to_cloudpickle": "pickle", "pandas_to_pickle": "pickle",
    "to_msgpack": JSON_OR_PICKLE,
    "just_create_folder": FOLDER, "just_create_isf_db": SUB_DB,
}

DUMPERS: dict[str, Dumper] = {name: Dumper(name, fmt) for name, fmt in _FORMAT_OF.items()}
globals().update(DUMPERS)  # ``from simlake.dumpers import pandas_to_parquet``
__all__ = ["Dumper", "UnknownDumperError", "DUMPERS", "resolve", *DUMPERS]


def resolve(dumper: Any) -> Dumper | None:
    """The :class:`Dumper` that ``dumper`` names (None stays None: the default format)."""
    if dumper is None:
        return None
    if isinstance(dumper, Dumper):
        return dumper
    if isinstance(dumper, str):
        name = dumper
    else:
        # ISF's dumper modules: data_base.isf_data_base.IO.LoaderDumper.<name>
        name = str(getattr(dumper, "__name__", "")).rsplit(".", 1)[-1]
    if name in DUMPERS:
        return DUMPERS[name]
    if name in VALUE_FORMATS:
        return Dumper(name, name)
    raise UnknownDumperError(
        f"dumper {dumper!r} has no simlake equivalent; use one of {sorted(DUMPERS)} "
        f"or a format {list(VALUE_FORMATS)}")

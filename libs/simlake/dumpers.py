"""ISF's dumper names for ``db.set(key, value, dumper=...)``: change ISF's import line
``from data_base.isf_data_base.IO.LoaderDumper import pandas_to_parquet`` to
``from simlake.dumpers import pandas_to_parquet``. See :mod:`simlake.adapter.dumpers`."""

from simlake.adapter.dumpers import *  # noqa: F403
from simlake.adapter.dumpers import __all__  # noqa: F401

"""spark-submit entry point of the ingest: ``spark-submit jobs/ingest_simrun.py RAW DB [options]``."""

from __future__ import annotations

import sys

from simlake.spark.job import main

if __name__ == "__main__":
    sys.exit(main())

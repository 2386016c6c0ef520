"""spark-submit entry point of the ingest.

    spark-submit --packages io.delta:delta-spark_2.13:4.0.0 jobs/ingest_simrun.py RAW DB [options]
"""

from __future__ import annotations

import sys

from simlake.spark.job import main

if __name__ == "__main__":
    sys.exit(main())

"""An accumulator of rejection records, filled by the executors, read by the driver."""

from __future__ import annotations

from pyspark.accumulators import AccumulatorParam


class ListParam(AccumulatorParam):
    """Accumulates lists by concatenation. Tasks retried by Spark may add a record twice: the
    driver de-duplicates."""

    def zero(self, value: list) -> list:
        return []

    def addInPlace(self, value1: list, value2: list) -> list:
        value1.extend(value2)
        return value1

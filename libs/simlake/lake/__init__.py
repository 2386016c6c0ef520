"""The JVM-free lake layer: data files of Delta tables, snapshots of their logs, and one commit
call with two back-ends (``deltalake`` here, delta-spark's transaction in ``simlake.spark``).

Importing it never imports pyspark.
"""

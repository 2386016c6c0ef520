"""Operator commands over a database folder, without a JVM (``deltalake`` + ``pyarrow``).

- :mod:`.tables`: which Delta tables a database holds, which rows readers see;
- :mod:`.info`: ``simlake info`` (tables, versions, trials, files, size, last ingest) and
  ``simlake history`` (every ingest run, from the kept run records or the Delta log);
- :mod:`.verify`: ``simlake verify`` (files, statistics, trials once, param-file references);
- :mod:`.commands`: the command-line entry points, ``optimize`` and ``vacuum`` among them.
"""

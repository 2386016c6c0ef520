"""The ``simlake`` console script: one subcommand per job."""

from __future__ import annotations

import argparse
import sys


def _synth(argv: list[str]) -> int:
    from simlake import synth

    parser = argparse.ArgumentParser(prog="simlake synth",
                                     description="Write a generated raw simrun tree.")
    synth.add_arguments(parser)
    return synth.run(parser.parse_args(argv))


def _badcorpus(argv: list[str]) -> int:
    from simlake import badinput

    parser = argparse.ArgumentParser(prog="simlake badcorpus",
                                     description="Write a generated raw simrun tree with one "
                                                 "damaged file per kind of bad input.")
    badinput.add_arguments(parser)
    return badinput.run(parser.parse_args(argv))


def _ingest(argv: list[str]) -> int:
    from simlake.spark.job import main

    return main(argv)


def _register(argv: list[str]) -> int:
    from simlake.spark.sql_job import register_main

    return register_main(argv)


def _sql(argv: list[str]) -> int:
    from simlake.spark.sql_job import sql_main

    return sql_main(argv)


def _ops(name: str):
    """A command of :mod:`simlake.ops.commands` (imported when run: no JVM, no Spark)."""
    def command(argv: list[str]) -> int:
        from simlake.ops import commands

        return getattr(commands, f"{name}_main")(argv)

    return command


COMMANDS = {
    "synth": (_synth, "write a generated raw simrun tree (every format variant)"),
    "ingest": (_ingest, "ingest a raw simrun tree into Delta tables (Spark)"),
    "register": (_register, "register a database's tables and views in the Spark SQL catalog"),
    "sql": (_sql, "run a Spark SQL query over a database and print or save the result"),
    "badcorpus": (_badcorpus, "write a raw simrun tree with every kind of damaged input"),
    "info": (_ops("info"), "tables, versions, trials, files, size and last ingest of a database"),
    "history": (_ops("history"), "every ingest run of a database"),
    "optimize": (_ops("optimize"), "compact and sort a database's big tables (no JVM)"),
    "vacuum": (_ops("vacuum"), "delete data files no table version within the retention uses"),
    "verify": (_ops("verify"), "check a database is intact; one line per problem"),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``simlake <command> ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        from simlake import __version__

        print(f"simlake {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: simlake [--version] <command> [options]\n\ncommands:\n" + "\n".join(lines))
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nsimlake: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    command, _ = COMMANDS[argv[0]]
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())

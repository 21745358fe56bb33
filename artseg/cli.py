"""``artseg`` command line: discovers the subcommands in :mod:`artseg.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from artseg import __version__
from artseg.errors import ArtsegInputError


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every discovered subcommand registered."""
    import artseg.commands as commands

    parser = argparse.ArgumentParser(
        prog="artseg",
        description="Artifact segmentation in brightfield microscopy from image-level labels.",
    )
    parser.add_argument("--version", action="version", version=f"artseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"artseg.commands.{info.name}")
        module.register(subparsers)
    return parser


def run_command(func, args) -> int:
    """Run a command, turning input errors into one line on stderr and exit status 2."""
    try:
        status = func(args)
    except ArtsegInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0 if status is None else int(status)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``artseg`` and ``python -m artseg``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return run_command(args.func, args)

"""``artseg info``: the versions and the compute path this machine will use."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``info`` subcommand."""
    parser = subparsers.add_parser(
        "info",
        help="torch version, CPU capability, and the precision, layout and threads networks will use",
        description=(
            "Print the ArtSeg and torch versions, the CPU and the vector instruction set torch "
            "dispatches to, and the precision (bf16 or fp32), activation layout and thread count "
            "that training and inference will use on this machine (artseg.hardware)."
        ),
    )
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                        help="the configured precision to resolve (default auto, as the built-in configs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one ``key: value`` line per fact."""
    from artseg import __version__
    from artseg.hardware import describe

    facts = {"artseg": __version__, **describe(args.precision)}
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        print(f"{key.ljust(width)}  {value}")
    return 0

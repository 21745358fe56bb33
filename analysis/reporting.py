"""Small output helpers shared by the analysis commands (tables on stdout, figures on disk)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import pandas as pd

from artseg.cli import run_command
from artseg.io import atomic_target


def format_table(table: pd.DataFrame, digits: int = 3) -> str:
    """Render a summary table for the terminal, floats with ``digits`` decimals."""
    shown = table.copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda v: "nan" if pd.isna(v) else f"{v:.{digits}f}")
    return shown.to_string(index=False)


def save_figure(figure, path: Path, dpi: int = 110) -> None:
    """Save a matplotlib figure atomically (temporary name, then rename)."""
    path = Path(path)
    with atomic_target(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format=path.suffix.lstrip(".") or "png")


def run_cli(parser, run: Callable, outputs: str, argv: list[str] | None = None) -> int:
    """Parse ``argv``, call ``run(args) -> summary table``, print it; errors as every ``artseg`` command.

    Bad input is one line and exit status 2, an interrupt 130 (:func:`artseg.cli.run_command`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        Must define ``--out``.
    run : callable
        Does the work and returns the summary table to print.
    outputs : str
        The files written, named in the closing message.
    """
    args = parser.parse_args(argv)

    def run_and_report(args) -> int:
        summary = run(args)
        print(format_table(summary))
        if getattr(args, "shard", None):
            print(f"\nwrote part {args.shard} of the fields in {Path(args.out) / 'shards'}; "
                  "when every part is there, run the same command with --merge-shards")
        else:
            print(f"\nwrote {outputs} in {args.out}")
        return 0

    return run_command(run_and_report, args)


def save_figure_formats(figure, folder: str | os.PathLike, stem: str,
                        formats: Sequence[str] = ("png", "svg"), dpi: int = 110) -> list[Path]:
    """Save ``figure`` as ``folder/stem.<format>`` for each format (atomic writes); return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.{fmt}" for fmt in formats]
    for path in paths:
        save_figure(figure, path, dpi=dpi)
    return paths

"""Small output helpers shared by the analysis commands (tables on stdout, figures on disk)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import pandas as pd

from artseg.errors import ArtsegInputError


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    figure.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    tmp.replace(path)


def run_cli(parser, run: Callable, outputs: str, argv: list[str] | None = None) -> int:
    """Parse ``argv``, call ``run(args) -> summary table``, print it; 2 and one line on bad input.

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
    try:
        summary = run(args)
    except ArtsegInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(summary))
    print(f"\nwrote {outputs} in {args.out}")
    return 0

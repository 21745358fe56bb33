"""Small output helpers shared by the analysis commands (tables on stdout, figures on disk)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


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

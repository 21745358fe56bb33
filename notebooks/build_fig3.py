"""The cells of ``fig3_model_comparison.ipynb``, for code that imported them from here.

The notebooks are all written by ``python notebooks/build_notebooks.py``; this script only
re-exports the Fig. 3 cells (``CELLS``) and, run, rebuilds every notebook the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from build_notebooks import FIG3 as CELLS  # noqa: E402
from build_notebooks import build  # noqa: E402

NOTEBOOK = "fig3_model_comparison.ipynb"
__all__ = ["CELLS", "NOTEBOOK", "build"]

if __name__ == "__main__":
    for path in build():
        print(path)

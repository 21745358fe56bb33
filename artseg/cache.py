"""Location of generated data, caches and trained models (git-ignored)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Return the cache folder, creating it if needed.

    ``$ARTSEG_CACHE`` wins; otherwise ``data/cache`` below the current working
    directory (ignored by git in the repository).
    """
    root = Path(os.environ.get("ARTSEG_CACHE", Path.cwd() / "data" / "cache"))
    root.mkdir(parents=True, exist_ok=True)
    return root

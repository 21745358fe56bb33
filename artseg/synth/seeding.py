"""Seeded random streams: one independent generator per (run seed, purpose, index).

Every field is drawn from its own generator keyed by the run seed and its index, so a
field does not depend on how many fields are generated, and the label, split and plate
decisions use streams of their own.
"""

from __future__ import annotations

import numpy as np

from artseg.errors import ArtsegInputError

__all__ = ["STREAMS", "check_seed", "stream"]

STREAMS = {
    "field": 0,
    "label": 1,
    "split": 2,
    "pair": 3,
    "clean": 4,
    "plate_field": 5,
    "plate_design": 6,
}


def check_seed(seed: int) -> int:
    """Return ``seed`` as an int, or raise if it is not a non-negative integer.

    Raises
    ------
    ArtsegInputError
        Negative or non-integer seed.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArtsegInputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def stream(seed: int, purpose: str, index: int = 0) -> np.random.Generator:
    """Generator for one purpose and index under a run seed (``SeedSequence([seed, purpose, index])``)."""
    return np.random.default_rng(np.random.SeedSequence([check_seed(seed), STREAMS[purpose], int(index)]))

"""A second, independent synthetic look of brightfield microscopy: FOR TESTING GENERALISATION ONLY.

.. warning::

   **Never use these fields to choose settings** (a recipe, a threshold, an epoch count, a
   network). They exist to check that what was tuned on the ``artseg synth`` presets also
   holds on data the recipe never saw; tuning on them, even by picking the better of two
   runs, turns them into one more training preset and defeats their purpose. Judge a recipe
   change here *after* choosing it on the presets, and report the number whatever it is.

The renderer is written apart from :mod:`artseg.synth` and shares none of its models: a
phase-contrast-like layer of adherent cells (sparse to confluent, elongated along a common
direction, granular, with nuclei and bright gaps between neighbours, and a few rounded mitotic
cells that are *not* artifacts), uneven illumination, a Poisson-Gaussian sensor with a column
pattern and a 12- or 16-bit range; and artifacts of the paper's five kinds, each with its
pixel mask: angular debris shards, thin wandering (dark or bright) fibres, air bubbles that blur
what lies beneath, grape-like clumps of phase-bright detached cells, and dust specks (sharp
grains or defocused donuts). See :mod:`.cells`, :mod:`.optics` and :mod:`.artifacts`.

Files and manifest: :func:`write_heldout_look` (``image, label, mask, split`` as
:func:`artseg.io.read_image_manifest` reads them, plus ``artifact_kinds``); one field in memory:
:func:`render_field`. From the repository root::

    python -m benchmarks.heldout_look --out /tmp/heldout --preview /tmp/heldout.png
    python benchmarks/bench_generalisation.py --config fast --seed 0
"""

from .artifacts import ARTIFACT_KINDS, Artifact
from .render import Field, field_streams, render_field
from .write import LOOK_VERSION, look_settings, split_plan, write_heldout_look

__all__ = [
    "ARTIFACT_KINDS",
    "Artifact",
    "Field",
    "LOOK_VERSION",
    "field_streams",
    "look_settings",
    "render_field",
    "split_plan",
    "write_heldout_look",
]

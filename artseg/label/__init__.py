"""A local labelling page for image-level labels (``artseg label``).

:mod:`artseg.label.state` holds the pure labelling logic, :mod:`artseg.label.store` the files
(the output image manifest and its skipped-fields sidecar, rewritten atomically after every
answer), :mod:`artseg.label.render` the pictures and :mod:`artseg.label.server` the
127.0.0.1-only HTTP server that serves ``page.html``.
"""

from artseg.label.state import ANSWERS, Field, answer_counts, labels_table, next_unanswered, record_answer
from artseg.label.store import LabelStore, attach_predictions, collect_fields, skipped_path

__all__ = [
    "ANSWERS",
    "Field",
    "LabelStore",
    "answer_counts",
    "attach_predictions",
    "collect_fields",
    "labels_table",
    "next_unanswered",
    "record_answer",
    "skipped_path",
]

"""``artseg label``: label fields as artifact / clean in a local browser page, resumable."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path

from artseg.errors import ArtsegInputError


def register(subparsers) -> None:
    """Add the ``label`` subcommand."""
    parser = subparsers.add_parser(
        "label",
        help="label images as artifact / clean in a local browser page (writes an image manifest)",
        description=(
            "Serve a labelling page on 127.0.0.1 (the printed URL carries a secret token). It shows one "
            "field at a time at full resolution, scaled by its own percentiles: keys A artifact, C clean, "
            "S skip, B / left arrow back, right arrow forward, O model mask, + / - zoom, 1 full resolution, "
            "F fit, Q stop. Every answer is saved at once (atomically) to --out, an image manifest "
            "(image, label[, split]) that 'artseg train' reads; skipped fields go to <out>.skipped.csv "
            "instead. Running it again with the same --out resumes at the first unanswered field."
        ),
    )
    parser.add_argument("--images", required=True, type=Path,
                        help="folder (all .tif/.tiff/.png/.jpg/.jpeg below it) or image manifest CSV")
    parser.add_argument("--out", required=True, type=Path, help="labels CSV to write (and resume from)")
    parser.add_argument("--overlay", type=Path, default=None,
                        help="output folder of 'artseg predict' on the same images: show its masks to review")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="only print the URL; do not open a browser")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the inputs, resume earlier answers and serve until stopped; returns the exit status."""
    from artseg.label.server import LabelApp, make_server, page_url
    from artseg.label.store import LabelStore, attach_predictions, collect_fields

    if not 0 <= args.port <= 65535:
        raise ArtsegInputError(f"--port must be in 0..65535, got {args.port}")
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise ArtsegInputError(f"{out}: the labels are written as a .csv image manifest")
    if out.is_dir():
        raise ArtsegInputError(f"{out}: is a folder; --out names the labels CSV")
    if args.images.is_file() and out.resolve() == args.images.resolve():
        raise ArtsegInputError(f"{out}: --out would overwrite the --images manifest; choose another file")
    if args.overlay is not None and not args.overlay.is_dir():
        raise ArtsegInputError(f"{args.overlay}: --overlay folder not found")
    fields = collect_fields(args.images, exclude=[args.overlay] if args.overlay is not None else [])
    if args.overlay is not None:
        fields = attach_predictions(fields, args.overlay)
    out.parent.mkdir(parents=True, exist_ok=True)
    store = LabelStore(fields, out)
    app = LabelApp(store)
    server = make_server(app, args.port)
    url = page_url(server, app)
    counts = store.counts()
    print(f"labelling {counts['total']} fields ({counts['answered']} already answered) into {out}", flush=True)
    print(f"open {url}", flush=True)
    print("stop with Q on the page or Ctrl-C here; every answer is saved as it is given", flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    counts = store.counts()
    print(f"stopped: {counts['answered']} of {counts['total']} fields answered "
          f"({counts['artifact']} artifact, {counts['clean']} clean, {counts['skip']} skipped) in {out}", flush=True)
    return 0

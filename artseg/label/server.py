"""The labelling page's HTTP server: 127.0.0.1 only, a secret token on every request.

Routes (each needs ``?token=TOKEN``, else 403):

``GET /``
    The page (``page.html``, self-contained: no external script, style or URL).
``GET /api/state``
    The fields (name, answer, whether a predicted mask exists, the model's ``p_artifact``),
    where to resume, and the answer counts.
``GET /image/<i>.png``, ``GET /overlay/<i>.png``
    Field ``i`` as 8-bit gray at full resolution, scaled by its own percentiles; its
    predicted mask as a see-through RGBA layer.
``POST /api/answer``
    JSON ``{"index": i, "answer": "artifact" | "clean" | "skip"}``; saved before the reply,
    which gives the next unanswered field and the counts.
``POST /api/quit``
    Stop the server (the answers are already saved).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from artseg.errors import ArtsegInputError
from artseg.io import read_image, read_mask
from artseg.label.render import display_gray, mask_overlay, png_bytes
from artseg.label.store import LabelStore

HOST = "127.0.0.1"
_PICTURE_ROUTE = re.compile(r"^/(image|overlay)/(\d+)\.png$")
_MAX_BODY = 4096
# Rendered PNGs kept in memory: the page asks for the current and the next field.
_RENDER_CACHE = 8
# The page may talk to this server only; it loads nothing from anywhere else.
_CONTENT_POLICY = ("default-src 'none'; img-src 'self'; connect-src 'self'; "
                   "script-src 'unsafe-inline'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


def read_page() -> bytes:
    """The labelling page shipped with the package."""
    return importlib.resources.files("artseg.label").joinpath("page.html").read_bytes()


class LabelApp:
    """What the handler serves: the store of answers, the token and the rendered pictures.

    Parameters
    ----------
    store : LabelStore
        The session's fields and answers.
    token : str, optional
        Secret every request must carry; a random one by default.
    """

    def __init__(self, store: LabelStore, token: str | None = None) -> None:
        self.store = store
        self.token = token if token is not None else secrets.token_urlsafe(24)
        self.page = read_page()
        self.field_png = functools.lru_cache(maxsize=_RENDER_CACHE)(self._render_field)
        self.overlay_png = functools.lru_cache(maxsize=_RENDER_CACHE)(self._render_overlay)

    def token_ok(self, token: str) -> bool:
        """Whether ``token`` is this session's (compared in constant time)."""
        return secrets.compare_digest(token.encode(), self.token.encode())

    def state(self) -> dict:
        """The page's view of the session."""
        answers = self.store.answers
        fields = [
            {
                "name": field.name,
                "answer": answers.get(field.image),
                "overlay": field.overlay is not None,
                "p_artifact": field.p_artifact,
            }
            for field in self.store.fields
        ]
        return {
            "fields": fields,
            "start": self.store.resume_index(),
            "counts": self.store.counts(),
            "out": str(self.store.out_csv),
        }

    def answer(self, index: int, answer: str) -> dict:
        """Save one answer; the reply the page moves on with."""
        following = self.store.answer(index, answer)
        return {"index": index, "answer": answer, "next": following, "counts": self.store.counts()}

    def _render_field(self, index: int) -> bytes:
        return png_bytes(display_gray(read_image(self.store.fields[index].image)))

    def _render_overlay(self, index: int) -> bytes | None:
        overlay = self.store.fields[index].overlay
        return None if overlay is None else png_bytes(mask_overlay(read_mask(overlay)), compress_level=1)


class LabelHandler(BaseHTTPRequestHandler):
    """Routes requests to the server's :class:`LabelApp` (``self.server.app``)."""

    server_version = "artseg-label"

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass  # one line per key press would bury the printed URL

    def _send(self, status: int, body: bytes, content_type: str, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", _CONTENT_POLICY)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": message})

    def _route(self) -> str | None:
        """The request's path if its token is right; otherwise answer 403 and return ``None``."""
        parts = urlsplit(self.path)
        token = parse_qs(parts.query).get("token", [""])[0]
        if not self.server.app.token_ok(token):
            self._error(HTTPStatus.FORBIDDEN, "missing or wrong token: open the URL that 'artseg label' printed")
            return None
        return parts.path

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        path = self._route()
        if path is None:
            return
        app = self.server.app
        if path == "/":
            self._send(HTTPStatus.OK, app.page, "text/html; charset=utf-8")
            return
        if path == "/api/state":
            self._send_json(HTTPStatus.OK, app.state())
            return
        picture = _PICTURE_ROUTE.match(path)
        if picture is None or int(picture.group(2)) >= len(app.store.fields):
            self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")
            return
        kind, index = picture.group(1), int(picture.group(2))
        try:
            body = app.field_png(index) if kind == "image" else app.overlay_png(index)
        except ArtsegInputError as err:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, str(err))
            return
        if body is None:
            self._error(HTTPStatus.NOT_FOUND, f"field {index} has no predicted mask")
            return
        self._send(HTTPStatus.OK, body, "image/png", cache=True)

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        path = self._route()
        if path is None:
            return
        if path == "/api/quit":
            self._send_json(HTTPStatus.OK, {"stopped": True})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return
        if path != "/api/answer":
            self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= _MAX_BODY:
            self._error(HTTPStatus.BAD_REQUEST, "the answer must be a small JSON body")
            return
        try:
            request = json.loads(self.rfile.read(length))
            index, answer = request["index"], request["answer"]
            if not isinstance(index, int) or isinstance(index, bool):
                raise ValueError("index must be an integer")
            reply = self.server.app.answer(index, answer)
        except (ValueError, KeyError, TypeError, IndexError) as err:
            self._error(HTTPStatus.BAD_REQUEST, f"bad answer: {err}")
            return
        except OSError as err:  # the labels file could not be written: the page must say so
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"answer not saved: {err}")
            return
        self._send_json(HTTPStatus.OK, reply)


def make_server(app: LabelApp, port: int = 0) -> ThreadingHTTPServer:
    """Bind a threading HTTP server for ``app`` on 127.0.0.1 (``port=0``: a free port).

    Raises
    ------
    ArtsegInputError
        The port cannot be bound (in use, or privileged).
    """
    try:
        server = ThreadingHTTPServer((HOST, port), LabelHandler)
    except OSError as err:
        raise ArtsegInputError(f"--port {port}: cannot listen on {HOST} ({err.strerror or err})") from None
    server.app = app
    return server


def page_url(server: ThreadingHTTPServer, app: LabelApp) -> str:
    """The address to open, token included."""
    return f"http://{HOST}:{server.server_address[1]}/?token={app.token}"

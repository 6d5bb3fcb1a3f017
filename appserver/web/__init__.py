"""The browser client's static files (index.html, its scripts and style sheet), served by
the websocket listener at `GET /` (transports/http_routes.py). Only the names in `ASSETS`
are served: a request path is looked up in that table, never joined to a directory."""

from __future__ import annotations

import hashlib
from importlib import resources

import attrs

# URL path -> (file in this package, Content-Type)
ASSETS: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/rpc.js": ("rpc.js", "text/javascript; charset=utf-8"),
    "/store.js": ("store.js", "text/javascript; charset=utf-8"),
    "/render.js": ("render.js", "text/javascript; charset=utf-8"),
}

# Everything the page loads comes from the listener itself; no inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@attrs.frozen
class Asset:
    content_type: str
    body: bytes
    etag: str


def load_assets() -> dict[str, Asset]:
    """Read every asset once (at listener start, in a worker thread)."""
    files = resources.files(__name__)
    loaded: dict[str, Asset] = {}
    for path, (name, content_type) in ASSETS.items():
        body = files.joinpath(name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        loaded[path] = Asset(content_type, body, etag)
    return loaded

"""Static files (CSS, JS, icons) served under content-hashed names with long cache lifetimes.

`app.css` is served as `/static/app.<hash>.css`: a new release changes the name, so browsers may
keep a file for a year and never see a stale one. Files are read and compressed once at start.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

STATIC_DIR = Path(__file__).resolve().parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}


@dataclass(frozen=True)
class Asset:
    name: str
    hashed_name: str
    media_type: str
    body: bytes
    gzipped: bytes | None


class Assets:
    def __init__(self, root: Path = STATIC_DIR) -> None:
        self._by_logical: dict[str, Asset] = {}
        self._by_hashed: dict[str, Asset] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            logical = path.relative_to(root).as_posix()
            body = path.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:12]
            stem, dot, suffix = logical.rpartition(".")
            hashed = f"{stem}.{digest}.{suffix}" if dot else f"{logical}.{digest}"
            media_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            compressible = media_type.startswith(("text/", "image/svg"))
            gz = gzip.compress(body, compresslevel=9, mtime=0) if compressible else None
            asset = Asset(logical, hashed, media_type, body, gz if gz and len(gz) < len(body) else None)
            self._by_logical[logical] = asset
            self._by_hashed[hashed] = asset

    def url(self, logical: str) -> str:
        """The hashed URL of a static file; a name that does not exist fails at render time, in tests."""
        return f"/static/{self._by_logical[logical].hashed_name}"

    def get(self, hashed: str) -> Asset | None:
        return self._by_hashed.get(hashed)

    def response(self, request: Request, hashed: str) -> Response:
        asset = self._by_hashed.get(hashed)
        if asset is None:
            return Response("未找到该文件。", status_code=404, media_type="text/plain; charset=utf-8")
        headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
        if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

"""Baseline for bench/web_pages.py: the least a server-rendered page can cost.

    .venv/bin/python bench/bare_page_app.py --port 8198 --bytes 20000

A bare FastAPI app under uvicorn with the settings the web tier's `serve()` uses (uvloop and
httptools from uvicorn[standard], no access log), and the same gzip middleware as the web tier:
`GET /q/{code}` renders one Jinja2 template (autoescaped, compiled once) to a page of about
--bytes bytes, with the code and a fresh form key in it, as the scan page has. No upstream calls,
no cookies, no security headers. `GET /readyz` answers 200 at once.
"""

from __future__ import annotations

import argparse
import uuid

import jinja2
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.middleware.gzip import GZipMiddleware

from shared.telemetry import setup_logging

# Same threshold as the web tier, so both compress the same pages.
GZIP_MINIMUM = 800
TEMPLATE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · 人大代表联络</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<main>
<h1>{{ title }}</h1>
<form method="post" action="/q/{{ code }}">
<input type="hidden" name="idempotency_key" value="{{ key }}">
{% for line in lines %}
<p class="hint" id="hint-{{ loop.index }}">{{ line }}</p>
{% endfor %}
<button type="submit">提交</button>
</form>
</main>
<script src="/static/app.js" defer></script>
</body>
</html>
"""
# Text of the kind a report form carries: hints, promises, what happens next.
LINES = (
    "请写清楚问题发生的地点、时间和经过，代表会在两个工作日内受理。",
    "可以上传最多六张照片和一段语音，照片会自动去掉拍摄位置。",
    "匿名反映同样会转给代表；留下姓名和电话，代表可以当面回复您。",
    "提交后会得到一个回执码，用它可以随时查看办理进度和答复。",
    "紧急情况请拨打 110、119、120，本平台不受理紧急求助。",
    "反映问题不收取任何费用，任何人不得以此为由索要钱物。",
)
TITLE = "向王代表反映问题"


class Page:
    """The template, and as many lines as make its rendering about `size` bytes."""

    def __init__(self, size: int) -> None:
        env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, auto_reload=False)
        self.template = env.from_string(TEMPLATE)
        probe = {"title": TITLE, "code": "x" * 12, "key": uuid.uuid4().hex}
        used = len(self.template.render(lines=[], **probe).encode())
        self.lines: list[str] = []
        # Each line adds its own markup and text, so add them until the page reaches the size.
        while used < size:
            line = LINES[len(self.lines) % len(LINES)]
            with_line = len(self.template.render(lines=[*self.lines, line], **probe).encode())
            self.lines.append(line)
            used = with_line
        self.size = used

    def render(self, code: str) -> str:
        return self.template.render(title=TITLE, code=code, key=uuid.uuid4().hex, lines=self.lines)


def build_app(size: int) -> FastAPI:
    page = Page(size)
    app = FastAPI(title="bare page", docs_url=None, redoc_url=None)

    @app.get("/q/{code}")
    async def scan_page(code: str) -> HTMLResponse:
        return HTMLResponse(page.render(code))

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        return JSONResponse({"status": "ready", "page_bytes": page.size})

    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bytes", type=int, required=True, help="size of the rendered page, uncompressed")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    if args.bytes <= 0:
        parser.error("--bytes must be positive")
    setup_logging("bare", args.log_level)
    # The uvicorn.Config of services/web/service.py serve(), so only the app differs.
    config = uvicorn.Config(build_app(args.bytes), host=args.host, port=args.port, log_config=None,
                            access_log=False, timeout_graceful_shutdown=25, lifespan="on")
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()

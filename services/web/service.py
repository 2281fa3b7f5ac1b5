"""Wiring of the web tier: the pages people use, over the five services' public HTTP APIs.

No database, no NATS: everything comes from the services' APIs (`upstreams.py`). The citizen's
address is taken out of each request first (`citizen_address.py`) and given only to intake's flood
control; every answer gets the security headers; pages are compressed; request bodies are capped
before they are read; traces and metrics see route templates, never receipt codes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request

from services.web import (
    console_admin_pages,
    console_home,
    console_scoring_pages,
    console_staff_pages,
    deputy_pages,
    error_pages,
    matter_pages,
    public_pages,
    receipt_pages,
    report_form,
    report_pages,
    signin_pages,
    station_pages,
    unit_pages,
    work_home,
)
from services.web.assets import Assets
from services.web.citizen_address import CitizenAddress
from services.web.context import Web
from services.web.rendering import Pages
from services.web.security import Csrf, SecurityHeaders
from services.web.signed_in import SessionWriter
from services.web.upstreams import Upstreams
from services.web.work_session import SessionCodec
from shared.body_limit import BodyLimit, readable_size
from shared.metrics import CONTENT_TYPE, HttpMetrics, Metrics
from shared.proxy import load_proxy_secret
from shared.secret_files import ensure_dev_secret
from shared.service import outermost, span_redactor
from shared.settings import Settings, get_settings
from shared.telemetry import setup_logging, setup_tracing

log = logging.getLogger("minyi.web")

# Receipt codes are in follow-up URLs (`/r/{code}`, `/r?code=`): never in a span unredacted.
SECRET_PATHS = (r"(?<=/r/)[^/?]+", r"(?<=[?&]code=)[^&]+")
# Forms without files are small; a report may carry six photos and a recording.
FORM_LIMIT = 64 * 1024
# The station clerk's registration carries scans and a recording, as the citizens' form does.
UPLOAD_PATHS = ("/q/", "/kiosk/", "/report", "/work/station/register")


def load_web_secret(settings: Settings) -> bytes:
    """The key of the forms' tokens: the operator's file, or with MINYI_DEV_SECRETS a development one."""
    path, dev = settings.secret_file("web_secret_file", settings.dev_web_secret_file)
    secret = ensure_dev_secret(path, lambda: secrets.token_bytes(32)) if dev else path.read_bytes()
    if len(secret) < 32:
        raise ValueError(f"MINYI_WEB_SECRET_FILE ({path}) holds {len(secret)} bytes; at least 32 are needed")
    return secret


def _html_refusal(path: str, limit: int) -> tuple[bytes, str]:
    body = ("<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>内容过大</title>"
            f"<p>提交的内容过大（上限 {readable_size(limit)}）。请少选几张照片，或者选小一些的文件，返回上一页再提交。"
            "</p><p><a href=\"javascript:history.back()\">返回上一页</a></p></html>")
    return body.encode(), "text/html; charset=utf-8"


def build_app(settings: Settings | None = None, *,
              transports: Mapping[str, httpx.AsyncBaseTransport] | None = None) -> FastAPI:
    settings = settings or get_settings()
    setup_tracing("web")
    # httpx logs every request's URL at INFO, and a receipt lookup's URL holds the receipt code.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    secret = load_web_secret(settings)
    proxy_secret = load_proxy_secret(settings)
    if proxy_secret is None:
        log.warning("no proxy secret (MINYI_PROXY_SECRET_FILE): intake will count every citizen as this web tier")
    assets = Assets()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await app.state.web.upstreams.close()
            await signin_pages.close(app)

    app = FastAPI(title="Minyi web", description="Pages for citizens, deputies and staff (HTML).",
                  version="1.0.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.web = Web(settings=settings, upstreams=Upstreams(settings, proxy_secret=proxy_secret,
                                                               transports=transports),
                        pages=Pages(assets, Csrf(secret), secure_cookies=settings.web_secure_cookies),
                        sessions=SessionCodec(secret))
    signin_pages.install(app, settings, secret)
    matter_pages.install(app, secret)
    error_pages.install(app)

    @app.get("/healthz", tags=["ops"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Ready to serve pages; each service's reachability is reported")
    async def readyz() -> JSONResponse:
        # Ready whenever this process can answer: a service being down is the same for every replica,
        # and a replica taken out of rotation would leave citizens the ingress's bare 503 instead of
        # this tier's own page that says what happened and that the form may be sent again.
        web: Web = app.state.web
        results = await asyncio.gather(*(_reachable(u.client) for u in web.upstreams.all))
        checks = {u.name: result for u, result in zip(web.upstreams.all, results, strict=True)}
        degraded = sorted(name for name, result in checks.items() if result != "ok")
        return JSONResponse({"status": "degraded" if degraded else "ready", "checks": checks})

    @app.get("/metrics", include_in_schema=False)
    async def metrics_page() -> Response:
        return Response(await metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/static/{name:path}", include_in_schema=False)
    async def static(name: str, request: Request) -> Response:
        return assets.response(request, name)

    for router in (report_pages.router, receipt_pages.router, matter_pages.router, public_pages.router,
                   signin_pages.router, work_home.router, deputy_pages.router, station_pages.router,
                   unit_pages.router, console_home.router, console_staff_pages.router, console_scoring_pages.router,
                   console_admin_pages.router):
        app.include_router(router)

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,static", exclude_spans=["receive", "send"],
                                       server_request_hook=span_redactor(SECRET_PATHS))
    outermost(app, lambda inner: CitizenAddress(inner, trust_forwarded_for=settings.trust_forwarded_for))
    app.add_middleware(SessionWriter, codec=app.state.web.sessions, secure=settings.web_secure_cookies)
    app.add_middleware(GZipMiddleware, minimum_size=800)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, limits=dict.fromkeys(UPLOAD_PATHS, report_form.MAX_FORM_BYTES),
                       default=FORM_LIMIT, refusal=_html_refusal)
    app.add_middleware(HttpMetrics, metrics=metrics)
    return app


async def _reachable(client: httpx.AsyncClient) -> str:
    try:
        response = await client.get("/healthz", timeout=2.0)
    except httpx.HTTPError as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok" if response.status_code == 200 else f"answered {response.status_code}"


def serve() -> None:
    """Run the web tier until SIGTERM/SIGINT; uvicorn finishes in-flight requests first."""
    settings = get_settings()
    setup_logging("web", settings.log_level)
    try:
        app = build_app(settings)
    except (RuntimeError, OSError, ValueError) as exc:
        log.error("web cannot start: %s", exc)
        raise SystemExit(2) from None
    uvicorn.Server(uvicorn.Config(app, host=settings.http_host, port=settings.web_port, log_config=None,
                                  access_log=False, timeout_graceful_shutdown=25, lifespan="on")).run()

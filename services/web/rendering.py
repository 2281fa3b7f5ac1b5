"""Templates and the answer every page shares: Jinja2 with autoescape, Chinese filters, hashed
asset URLs, the CSRF cookie, and no caching of pages that hold a person's own data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from services.web import words
from services.web.assets import Assets
from services.web.security import CSRF_COOKIE, CSRF_FIELD, Csrf

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def environment(assets: Assets) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )
    env.filters.update(
        date_cn=words.date_cn, short_date_cn=words.short_date_cn, datetime_cn=words.datetime_cn,
        iso=words.iso, receipt=words.group_receipt_code,
    )
    env.globals.update(asset=assets.url, words=words, percent=words.percent, csrf_field=CSRF_FIELD)
    return env


class Pages:
    def __init__(self, assets: Assets, csrf: Csrf, *, secure_cookies: bool = False) -> None:
        self.assets = assets
        self.csrf = csrf
        self.env = environment(assets)
        self.secure_cookies = secure_cookies

    def render(self, request: Request, template: str, *, status: int = 200, private: bool = False,
               posts: bool = False, public: bool = False, headers: dict[str, str] | None = None,
               **context: Any) -> HTMLResponse:
        """The page; `posts` when it holds a form that POSTs (it gets a CSRF token and its cookie),
        `private` when it shows one person's data, `public` when it is the same for everyone."""
        cookie = request.cookies.get(CSRF_COOKIE)
        new_cookie = None
        if posts and (not cookie or len(cookie) > 64):
            cookie = new_cookie = self.csrf.new_cookie()
        html = self.env.get_template(template).render(
            request=request, path=request.url.path, csrf_token=self.csrf.token(cookie) if cookie else "", **context)
        response = HTMLResponse(html, status_code=status, headers=headers)
        # Receipt pages show one citizen's report, and a form carries its token: no shared cache may keep
        # either. Public boards are the same for everyone and may be kept a minute.
        if private or posts:
            response.headers["Cache-Control"] = "no-store"
        elif public:
            response.headers["Cache-Control"] = "public, max-age=60"
        else:
            response.headers["Cache-Control"] = "no-cache"
        if new_cookie:
            response.set_cookie(CSRF_COOKIE, new_cookie, httponly=True, samesite="lax", path="/",
                                secure=self.secure_cookies or request.url.scheme == "https")
        return response

    def csrf_ok(self, request: Request, token: str | None) -> tuple[bool, bool]:
        """(valid, expired) for the token a form sent back."""
        result = self.csrf.check(request.cookies.get(CSRF_COOKIE), token)
        return result.ok, result.expired

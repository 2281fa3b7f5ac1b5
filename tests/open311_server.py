"""A grid platform that speaks Open311 GeoReport v2 (JSON), for routing's open311 transport: a real
HTTP server on 127.0.0.1 (Starlette under uvicorn, in the test's event loop).

It serves `services.json`, takes form-encoded `POST requests.json` (checking the api_key, the
jurisdiction, the service code, a location and the 4,000-character description), answers
`GET requests.json` by ids or by service code and date range, `GET requests/{id}.json`,
`GET tokens/{token}.json` and, when told to offer it, mySociety's `servicerequestupdates.json`.
Errors come in the spec's form `[{"code": …, "description": …}]`.

A test drives it: `behave(marker, …)` makes a POST whose description holds `marker` be refused
(400), answered 503 a number of times, answered only after the client has given up (the request is
stored first), or queued behind a token; `change(…)` moves a request's status as the platform's
staff would, and `release(token)` turns a queued request into a listed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# The platform keeps Beijing time, as a Chinese platform would; the spec wants the zone written.
CST = timezone(timedelta(hours=8))
SERVICES = [
    {"service_code": "SZ-01", "service_name": "市政设施", "description": "路灯、井盖、供排水设施", "metadata": False,
     "type": "realtime", "keywords": "路灯,井盖", "group": "城市管理"},
    {"service_code": "DL-02", "service_name": "道路交通", "description": "信号灯、道路破损", "metadata": False,
     "type": "realtime", "keywords": "红绿灯,道路", "group": "城市管理"},
    {"service_code": "HW-03", "service_name": "环境卫生", "description": "垃圾清运、卫生死角", "metadata": False,
     "type": "batch", "keywords": "垃圾", "group": "城市管理"},
]


def w3(at: datetime) -> str:
    return at.astimezone(CST).isoformat(timespec="seconds")


def parse_w3(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def errors(status: int, *descriptions: str) -> JSONResponse:
    return JSONResponse([{"code": status, "description": d} for d in descriptions], status_code=status)


@dataclass
class ServiceRequest:
    number: int
    service_code: str
    description: str
    form: dict[str, list[str]]
    requested_at: datetime
    updated_at: datetime
    status: str = "open"
    status_notes: str | None = None
    token: str | None = None
    listed: bool = True

    @property
    def id(self) -> str:
        return str(self.number)

    def doc(self) -> dict[str, Any]:
        first = {k: v[0] for k, v in self.form.items()}
        service = next(s for s in SERVICES if s["service_code"] == self.service_code)
        return {"service_request_id": self.number, "status": self.status, "status_notes": self.status_notes,
                "service_name": service["service_name"], "service_code": self.service_code,
                "description": self.description, "agency_responsible": "街道网格中心", "service_notice": None,
                "requested_datetime": w3(self.requested_at), "updated_datetime": w3(self.updated_at),
                "expected_datetime": None, "address": first.get("address_string"), "address_id": None,
                "zipcode": None, "lat": float(first["lat"]) if "lat" in first else None,
                "long": float(first["long"]) if "long" in first else None, "media_url": first.get("media_url")}


@dataclass
class Open311Server:
    url: str
    api_key: str
    jurisdiction_id: str | None
    offer_updates: bool
    requests: dict[str, ServiceRequest] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    behaviours: dict[str, str] = field(default_factory=dict)
    busy_left: dict[str, int] = field(default_factory=dict)
    slow_seconds: float = 3.0
    posts: list[dict[str, list[str]]] = field(default_factory=list)
    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    _next: int = 1000

    # ---- what a test does ----

    def behave(self, marker: str, behaviour: str, *, times: int = 1) -> None:
        """`reject` (400), `busy` (503 `times` times, then taken), `slow` (stored, answered after the
        client gave up) or `token` (queued: a token now, a request once released)."""
        self.behaviours[marker] = behaviour
        if behaviour == "busy":
            self.busy_left[marker] = times

    def holding(self, text: str) -> list[ServiceRequest]:
        return [r for r in self.requests.values() if text in r.description]

    def posts_holding(self, text: str) -> list[dict[str, list[str]]]:
        return [p for p in self.posts if any(text in d for d in p.get("description", []))]

    def change(self, request_id: str, status: str, notes: str | None = None, *, update_status: str | None = None,
               at: datetime | None = None) -> None:
        """The platform's staff move a request: its GeoReport status (`open`/`closed`), and an update
        with mySociety's status (`update_status`, by default the same) in the updates feed."""
        request = self.requests[request_id]
        when = at or datetime.now(CST)
        request.status, request.status_notes = status, notes
        request.updated_at = max(request.updated_at, when)
        self.updates.append({"update_id": f"u{len(self.updates) + 1}", "service_request_id": request.number,
                             "status": (update_status or status).upper(), "updated_datetime": w3(when),
                             "description": notes or "", "media_url": None})

    def release(self, token: str) -> ServiceRequest:
        request = self.requests[self.tokens[token]]
        request.listed = True
        return request

    def reads(self, path: str) -> int:
        return sum(1 for method, p, _ in self.calls if method == "GET" and p.endswith(path))

    # ---- the protocol ----

    def _jurisdiction_refused(self, given: str | None) -> JSONResponse | None:
        if self.jurisdiction_id is None or given == self.jurisdiction_id:
            return None
        if not given:
            return errors(400, "jurisdiction_id was not provided")
        return errors(404, f"jurisdiction_id {given} not found")

    def _note(self, request: Request) -> dict[str, str]:
        params = dict(request.query_params)
        self.calls.append((request.method, request.url.path, params))
        return params

    async def services(self, request: Request) -> Response:
        params = self._note(request)
        return self._jurisdiction_refused(params.get("jurisdiction_id")) or JSONResponse(SERVICES)

    async def post_request(self, request: Request) -> Response:
        self._note(request)
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return errors(400, "POST must be application/x-www-form-urlencoded")
        form = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True)
        self.posts.append(form)
        first = {k: v[0] for k, v in form.items()}
        if first.get("api_key") != self.api_key:
            return errors(403, "api_key is missing or not valid")
        refused = self._jurisdiction_refused(first.get("jurisdiction_id"))
        if refused is not None:
            return refused
        code = first.get("service_code")
        if not code:
            return errors(400, "service_code was not provided")
        if code not in {s["service_code"] for s in SERVICES}:
            return errors(404, f"service_code {code} not found")
        if not (("lat" in first and "long" in first) or first.get("address_string") or first.get("address_id")):
            return errors(400, "a location (lat & long, address_string or address_id) is required")
        description = first.get("description", "")
        if len(description) > 4000:
            return errors(400, "description is longer than 4000 characters")
        behaviour = next((b for m, b in self.behaviours.items() if m in description), None)
        marker = next((m for m in self.behaviours if m in description), "")
        if behaviour == "reject":
            return errors(400, "描述中的事项不属于本平台受理范围")
        if behaviour == "busy" and self.busy_left.get(marker, 0) > 0:
            self.busy_left[marker] -= 1
            return errors(503, "系统维护中，请稍后再试")
        now = datetime.now(CST)
        self._next += 1
        created = ServiceRequest(self._next, code, description, form, now, now)
        self.requests[created.id] = created
        if behaviour == "token":
            created.listed = False
            created.token = f"tk-{created.number}"
            self.tokens[created.token] = created.id
            return JSONResponse([{"token": created.token}])
        if behaviour == "slow":
            await asyncio.sleep(self.slow_seconds)
        return JSONResponse([{"service_request_id": created.number, "service_notice": "已受理，将于三个工作日内处理",
                              "account_id": None}])

    async def get_requests(self, request: Request) -> Response:
        params = self._note(request)
        refused = self._jurisdiction_refused(params.get("jurisdiction_id"))
        if refused is not None:
            return refused
        listed = [r for r in self.requests.values() if r.listed]
        if params.get("service_request_id"):
            wanted = params["service_request_id"].split(",")
            if len(wanted) > 100:
                return errors(400, "at most 100 service_request_id at once")
            return JSONResponse([r.doc() for r in listed if r.id in wanted])
        if params.get("service_code"):
            listed = [r for r in listed if r.service_code in params["service_code"].split(",")]
        if params.get("status"):
            listed = [r for r in listed if r.status in params["status"].split(",")]
        try:
            start = parse_w3(params["start_date"]) if params.get("start_date") else datetime.now(CST) - timedelta(90)
            end = parse_w3(params["end_date"]) if params.get("end_date") else datetime.now(CST) + timedelta(1)
        except ValueError:
            return errors(400, "start_date and end_date must be w3 datetimes")
        if end - start > timedelta(days=90):
            return errors(400, "the range may not span more than 90 days")
        return JSONResponse([r.doc() for r in listed if start <= r.requested_at <= end][:1000])

    async def get_request(self, request: Request) -> Response:
        params = self._note(request)
        refused = self._jurisdiction_refused(params.get("jurisdiction_id"))
        found = self.requests.get(request.path_params["request_id"])
        if refused is not None:
            return refused
        if found is None or not found.listed:
            return errors(404, "service_request_id not found")
        return JSONResponse([found.doc()])

    async def get_token(self, request: Request) -> Response:
        params = self._note(request)
        refused = self._jurisdiction_refused(params.get("jurisdiction_id"))
        if refused is not None:
            return refused
        token = request.path_params["token"]
        if token not in self.tokens:
            return errors(404, "token not found")
        found = self.requests[self.tokens[token]]
        return JSONResponse([{"service_request_id": found.number, "token": token} if found.listed
                             else {"token": token}])

    async def get_updates(self, request: Request) -> Response:
        params = self._note(request)
        if not self.offer_updates:
            return errors(404, "not found")
        if params.get("api_key") != self.api_key:
            return errors(403, "api_key is missing or not valid")
        try:
            start = parse_w3(params["start_date"]) if params.get("start_date") else None
            end = parse_w3(params["end_date"]) if params.get("end_date") else None
        except ValueError:
            return errors(400, "start_date and end_date must be w3 datetimes")
        chosen = [u for u in self.updates if (start is None or parse_w3(u["updated_datetime"]) >= start)
                  and (end is None or parse_w3(u["updated_datetime"]) <= end)]
        return JSONResponse({"service_request_updates": chosen})


@contextlib.asynccontextmanager
async def open311_server(*, api_key: str, jurisdiction_id: str | None = None, offer_updates: bool = False,
                         host: str = "127.0.0.1") -> AsyncIterator[Open311Server]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    base = "/open311/v2"
    server_state = Open311Server(f"http://{host}:{sock.getsockname()[1]}{base}", api_key, jurisdiction_id,
                                 offer_updates)
    app = Starlette(routes=[
        Route(f"{base}/services.json", server_state.services, methods=["GET"]),
        Route(f"{base}/requests.json", server_state.post_request, methods=["POST"]),
        Route(f"{base}/requests.json", server_state.get_requests, methods=["GET"]),
        Route(f"{base}/requests/{{request_id}}.json", server_state.get_request, methods=["GET"]),
        Route(f"{base}/tokens/{{token}}.json", server_state.get_token, methods=["GET"]),
        Route(f"{base}/servicerequestupdates.json", server_state.get_updates, methods=["GET"]),
    ])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "the Open311 server did not start"
        await asyncio.sleep(0.01)
    try:
        yield server_state
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)

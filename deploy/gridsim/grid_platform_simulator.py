#!/usr/bin/env python3
"""SIMULATOR of an outside grid-governance platform (基层治理四平台, 12345), for tests, benchmarks and demos.

This is NOT part of Minyi's production services and is never deployed with them. It stands in for the
outside systems that Minyi's routing service sends tickets to, so that Minyi can be exercised against the
real wire protocol over real HTTP, in a separate process:

* Minyi -> platform: ``POST /tickets`` (signed JSON). Answers 200 ``{ticket_id, status: "received"}``;
  a repeated ``ticket_id`` is the same ticket (200 again, counted as a duplicate delivery, no new callbacks).
* Platform -> Minyi: signed ``POST {callback_url}`` with ``accepted`` -> ``in_progress`` -> ``resolved`` or
  ``returned``, retried with capped exponential backoff on connection errors, 5xx, 408 and 429.

Both directions are signed with ``X-Minyi-Timestamp: <unix seconds>`` and
``X-Minyi-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw_body)>``.

Faults (outage, random 503s, slow answers, rejected content, returned tickets, repeated callbacks) are set
by command-line flags and can be changed at runtime through the unauthenticated control API under ``/_sim``.

Run: ``python deploy/gridsim/grid_platform_simulator.py --port 0 --secret S``; the first stdout line is
``gridsim listening on http://HOST:PORT``. See deploy/gridsim/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("gridsim")

TIMESTAMP_HEADER = "X-Minyi-Timestamp"
SIGNATURE_HEADER = "X-Minyi-Signature"
MAX_CLOCK_SKEW_S = 300
# Chinese platforms stamp times in Beijing time; sending +08:00 (not UTC) checks that Minyi honours offsets.
PLATFORM_TZ = timezone(timedelta(hours=8))
# Minyi's own retry policy; the simulator mirrors it so that both directions behave alike.
RETRYABLE_4XX = frozenset({408, 429})

_SIGNATURE_RE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")

NOTE_ACCEPTED = "已受理，已派发至属地网格员"
NOTE_IN_PROGRESS = "网格员已到场核实，正在处置"
NOTE_RESOLVED = "已安排维修人员处理完毕"
NOTE_RETURNED = "不属于本平台受理范围，已退回"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The value of X-Minyi-Signature for a body sent at ``timestamp`` (unix seconds as ASCII digits)."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: bytes, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify_signature(secret: bytes, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str | None:
    """None when the request is authentic, otherwise the reason (English, for logs)."""
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if timestamp is None or signature is None:
        return "missing signature headers"
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        return "malformed timestamp"
    match = _SIGNATURE_RE.fullmatch(signature)
    if match is None:
        return "malformed signature"
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAX_CLOCK_SKEW_S:
        return "timestamp outside the allowed window"
    expected = sign(secret, timestamp, body).removeprefix("sha256=")
    if not hmac.compare_digest(expected, match.group(1).lower()):
        return "signature mismatch"
    return None


def problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


@dataclass
class SimConfig:
    """Everything a test may want to flip at runtime; field names are the keys of POST /_sim/config."""

    down: bool = False
    failure_rate: float = 0.0
    ack_delay_ms: float = 0
    reject_marker: str | None = None
    callbacks: bool = True
    callback_delay_ms: float = 200
    return_rate: float = 0.0
    repeat_callbacks: bool = False
    callback_backoff_ms: float = 250
    callback_backoff_max_ms: float = 5000
    callback_give_up_s: float = 600
    callback_timeout_s: float = 10

    def updated(self, changes: Mapping[str, Any]) -> SimConfig:
        """A copy with ``changes`` applied; ValueError names the first bad key, and nothing is applied then."""
        known = {f.name for f in fields(self)}
        values = asdict(self)
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown config key {key!r}")
            values[key] = _checked(key, value)
        return SimConfig(**values)


_BOOL_KEYS = frozenset({"down", "callbacks", "repeat_callbacks"})
_RATE_KEYS = frozenset({"failure_rate", "return_rate"})
_POSITIVE_KEYS = frozenset({"callback_timeout_s"})


def _checked(key: str, value: Any) -> Any:
    if key in _BOOL_KEYS:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        return value
    if key == "reject_marker":
        if value is not None and not isinstance(value, str):
            raise ValueError("reject_marker must be a string or null")
        # An empty marker would be contained in every content and reject everything.
        return value or None
    # bool is an int subclass; a stray true must not silently become 1 ms.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    if key in _RATE_KEYS and not 0 <= value <= 1:
        raise ValueError(f"{key} must be between 0 and 1")
    if key in _POSITIVE_KEYS and value <= 0:
        raise ValueError(f"{key} must be greater than 0")
    if value < 0:
        raise ValueError(f"{key} must not be negative")
    return value


@dataclass
class Stats:
    received: int = 0
    duplicates: int = 0
    duplicate_mismatches: int = 0
    rejected_signature: int = 0
    bad_requests: int = 0
    rejected_content: int = 0
    failed_injected: int = 0
    callbacks_sent: int = 0
    callbacks_retried: int = 0
    callbacks_failed: int = 0


@dataclass
class CallbackRecord:
    status: str
    note: str
    at: str
    result: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    delivered: int = 0  # 2 when repeat_callbacks got both copies through
    http_status: int | None = None
    error: str | None = None


@dataclass
class Ticket:
    ticket_id: str
    report_id: Any
    region_code: Any
    category: Any
    due_at: Any
    callback_url: str | None
    first_received_at: float
    outcome: str
    body_digest: str
    deliveries: int = 1
    status: str = "received"
    callbacks: list[CallbackRecord] = field(default_factory=list)
    last_at: datetime | None = None

    def view(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "report_id": self.report_id,
            "region_code": self.region_code,
            "category": self.category,
            "due_at": self.due_at,
            "callback_url": self.callback_url,
            "first_received_at": self.first_received_at,
            "deliveries": self.deliveries,
            "status": self.status,
            "outcome": self.outcome,
            "callbacks": [asdict(c) for c in self.callbacks],
        }


class Simulator:
    """State and behaviour of one simulated platform; all of it lives on one event loop, so no locks."""

    def __init__(self, secret: bytes, config: SimConfig | None = None, seed: int | None = None) -> None:
        if not secret:
            raise ValueError("the shared secret must not be empty")
        self.secret = secret
        self.config = config or SimConfig()
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.tickets: dict[str, Ticket] = {}
        # The loop keeps only weak references to tasks; without this set a callback flow could vanish mid-way.
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            # trust_env=False: an HTTP(S)_PROXY in the environment must not swallow callbacks to 127.0.0.1.
            self._client = httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=200))

    async def close(self) -> None:
        pending = await self._cancel_tasks()
        if pending:
            log.warning("shutting down with %d callback flows unfinished", pending)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _cancel_tasks(self) -> int:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    async def reset(self) -> None:
        await self._cancel_tasks()
        self.tickets.clear()
        self.stats = Stats()
        log.info("state reset")

    # --- Minyi -> platform -------------------------------------------------------------------------

    async def receive_ticket(self, request: Request) -> Response:
        config = self.config
        if config.down:
            # A platform in maintenance is refused by its gateway before anything is read or checked.
            self.stats.failed_injected += 1
            log.info("ticket refused: platform is down (503)")
            return problem(503, "服务暂不可用", "平台系统维护中，请稍后重试")

        body = await request.body()
        reason = verify_signature(self.secret, request.headers, body)
        if reason is not None:
            self.stats.rejected_signature += 1
            log.warning("ticket refused: %s (401)", reason)
            return problem(401, "签名校验失败", "请求签名无效或已过期")

        try:
            payload = json.loads(body)
        except ValueError:
            return self._bad_request("body is not valid JSON", "请求体不是合法的JSON")
        if not isinstance(payload, dict):
            return self._bad_request("body is not a JSON object", "请求体必须是JSON对象")
        ticket_id = payload.get("ticket_id")
        if not isinstance(ticket_id, str) or not ticket_id.strip():
            return self._bad_request("ticket_id missing", "缺少必填字段：ticket_id")
        content = payload.get("content")
        # Only a missing content is refused: Minyi sends "" for a report that is all attachments.
        if not isinstance(content, str):
            return self._bad_request(f"content missing ticket_id={ticket_id}", "缺少必填字段：content")
        callback_url = payload.get("callback_url")
        if callback_url is not None and not (
            isinstance(callback_url, str) and callback_url.startswith(("http://", "https://"))
        ):
            return self._bad_request(f"bad callback_url ticket_id={ticket_id}", "callback_url 格式不正确")

        # Delayed after the checks on purpose: the ticket is decided only after the delay, even if the client has
        # timed out meanwhile, like a real slow platform; Minyi's retry then becomes a duplicate delivery.
        if config.ack_delay_ms:
            await asyncio.sleep(config.ack_delay_ms / 1000)
        config = self.config

        if config.failure_rate and self.rng.random() < config.failure_rate:
            self.stats.failed_injected += 1
            log.info("ticket refused: injected failure ticket_id=%s (503)", ticket_id)
            return problem(503, "服务暂不可用", "系统繁忙，请稍后重试")

        answer = {"ticket_id": ticket_id, "status": "received"}
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        existing = self.tickets.get(ticket_id)
        if existing is not None:
            existing.deliveries += 1
            self.stats.duplicates += 1
            if existing.body_digest != digest:
                # Minyi must resend the very same ticket; a different body under the same id is a bug worth seeing.
                self.stats.duplicate_mismatches += 1
                log.warning("duplicate delivery with a DIFFERENT body ticket_id=%s", ticket_id)
            log.info("ticket duplicate ticket_id=%s deliveries=%d (200)", ticket_id, existing.deliveries)
            return JSONResponse(answer)

        if config.reject_marker and config.reject_marker in content:
            self.stats.rejected_content += 1
            log.info("ticket rejected by content ticket_id=%s (422)", ticket_id)
            return problem(422, "工单不予受理", "工单内容不符合受理范围")

        outcome = "returned" if config.return_rate and self.rng.random() < config.return_rate else "resolved"
        ticket = Ticket(
            ticket_id=ticket_id,
            report_id=payload.get("report_id"),
            region_code=payload.get("region_code"),
            category=payload.get("category"),
            due_at=payload.get("due_at"),
            callback_url=callback_url,
            first_received_at=time.time(),
            outcome=outcome,
            body_digest=digest,
        )
        self.tickets[ticket_id] = ticket
        self.stats.received += 1
        log.info(
            "ticket received ticket_id=%s report_id=%s region=%s category=%s outcome=%s (200)",
            ticket_id, ticket.report_id, ticket.region_code, ticket.category, outcome,
        )
        if not config.callbacks:
            log.info("callbacks disabled, none will be sent ticket_id=%s", ticket_id)
        elif callback_url is None:
            log.warning("no callback_url, none will be sent ticket_id=%s", ticket_id)
        else:
            task = asyncio.create_task(self._run_flow(ticket, callback_url), name=f"gridsim-flow-{ticket_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return JSONResponse(answer)

    def _bad_request(self, reason: str, detail: str) -> JSONResponse:
        self.stats.bad_requests += 1
        log.warning("ticket refused: %s (400)", reason)
        return problem(400, "请求格式错误", detail)

    # --- platform -> Minyi -------------------------------------------------------------------------

    async def _run_flow(self, ticket: Ticket, callback_url: str) -> None:
        final_note = NOTE_RETURNED if ticket.outcome == "returned" else NOTE_RESOLVED
        steps = (("accepted", NOTE_ACCEPTED), ("in_progress", NOTE_IN_PROGRESS), (ticket.outcome, final_note))
        try:
            for status, note in steps:
                await asyncio.sleep(self.config.callback_delay_ms / 1000)
                record = CallbackRecord(status=status, note=note, at=self._next_at(ticket))
                ticket.callbacks.append(record)
                copies = 2 if self.config.repeat_callbacks else 1
                for _ in range(copies):
                    if not await self._deliver(ticket, callback_url, record):
                        # Later steps would meet the same refusal (e.g. an unknown ticket), so stop here.
                        log.warning("callback flow stopped ticket_id=%s at status=%s", ticket.ticket_id, status)
                        return
                ticket.status = status
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("callback flow crashed ticket_id=%s", ticket.ticket_id)

    @staticmethod
    def _next_at(ticket: Ticket) -> str:
        now = datetime.now(PLATFORM_TZ)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        # Millisecond stamps of quick successive steps can tie; Minyi orders by `at`, so keep them strictly apart.
        if ticket.last_at is not None and now <= ticket.last_at:
            now = ticket.last_at + timedelta(milliseconds=1)
        ticket.last_at = now
        return now.isoformat(timespec="milliseconds")

    async def _deliver(self, ticket: Ticket, url: str, record: CallbackRecord) -> bool:
        if self._client is None:
            await self.start()
        assert self._client is not None
        body = json.dumps(
            {"ticket_id": ticket.ticket_id, "status": record.status, "note": record.note, "at": record.at},
            ensure_ascii=False,
        ).encode()
        started = time.monotonic()
        backoff = self.config.callback_backoff_ms / 1000
        while True:
            config = self.config
            record.attempts += 1
            code: int | None = None
            error: str | None = None
            retryable = True
            try:
                # Pool waits must not count as failures when a benchmark floods the simulator.
                timeout = httpx.Timeout(config.callback_timeout_s, pool=None)
                response = await self._client.post(
                    url, content=body, headers=signed_headers(self.secret, body), timeout=timeout
                )
                code = response.status_code
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                error, retryable = f"{type(exc).__name__}: {exc}", False
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
            record.http_status, record.error = code, error
            outcome = f"http={code}" if code is not None else error
            if code is not None and 200 <= code < 300:
                record.delivered += 1
                record.result = "delivered"
                self.stats.callbacks_sent += 1
                log.info(
                    "callback delivered ticket_id=%s status=%s %s attempt=%d",
                    ticket.ticket_id, record.status, outcome, record.attempts,
                )
                return True
            if code is not None:
                retryable = code >= 500 or code in RETRYABLE_4XX
            if not retryable or time.monotonic() - started + backoff > config.callback_give_up_s:
                record.result = "failed"
                self.stats.callbacks_failed += 1
                log.error(
                    "callback given up ticket_id=%s status=%s %s attempts=%d",
                    ticket.ticket_id, record.status, outcome, record.attempts,
                )
                return False
            self.stats.callbacks_retried += 1
            log.warning(
                "callback failed ticket_id=%s status=%s %s attempt=%d, retrying in %.2fs",
                ticket.ticket_id, record.status, outcome, record.attempts, backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, config.callback_backoff_max_ms / 1000)

    # --- control API -------------------------------------------------------------------------------

    async def get_stats(self, request: Request) -> JSONResponse:
        return JSONResponse({**asdict(self.stats), "tickets": len(self.tickets)})

    async def list_tickets(self, request: Request) -> JSONResponse:
        return JSONResponse([t.view() for t in self.tickets.values()])

    async def get_ticket(self, request: Request) -> Response:
        ticket = self.tickets.get(request.path_params["ticket_id"])
        if ticket is None:
            return problem(404, "Not Found", "no such ticket")
        return JSONResponse(ticket.view())

    async def get_config(self, request: Request) -> JSONResponse:
        return JSONResponse(asdict(self.config))

    async def set_config(self, request: Request) -> Response:
        try:
            changes = json.loads(await request.body() or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("body must be a JSON object")
            self.config = self.config.updated(changes)
        except ValueError as exc:
            return problem(400, "Bad Request", str(exc))
        log.info("config changed: %s", json.dumps(changes, ensure_ascii=False))
        return JSONResponse(asdict(self.config))

    async def reset_state(self, request: Request) -> JSONResponse:
        await self.reset()
        return JSONResponse({**asdict(self.stats), "tickets": 0})

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})


def create_app(simulator: Simulator) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await simulator.start()
        try:
            yield
        finally:
            await simulator.close()

    routes = [
        Route("/tickets", simulator.receive_ticket, methods=["POST"]),
        Route("/healthz", simulator.healthz, methods=["GET"]),
        Route("/_sim/stats", simulator.get_stats, methods=["GET"]),
        Route("/_sim/tickets", simulator.list_tickets, methods=["GET"]),
        Route("/_sim/tickets/{ticket_id:path}", simulator.get_ticket, methods=["GET"]),
        Route("/_sim/config", simulator.get_config, methods=["GET"]),
        Route("/_sim/config", simulator.set_config, methods=["POST"]),
        Route("/_sim/reset", simulator.reset_state, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.simulator = simulator
    return app


# --- command line ----------------------------------------------------------------------------------


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="grid_platform_simulator.py",
        description="SIMULATOR of an outside grid-governance platform, for tests, benchmarks and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8199, help="0 picks a free port (default 8199)")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--secret", help="shared HMAC secret (visible in the process list; prefer --secret-file)")
    secret.add_argument("--secret-file", type=Path, help="file holding the shared HMAC secret")
    parser.add_argument("--ack-delay-ms", type=_non_negative, default=0)
    parser.add_argument("--failure-rate", type=_rate, default=0.0, help="probability of a 503 to POST /tickets")
    parser.add_argument("--down", action="store_true", help="answer 503 to every POST /tickets")
    parser.add_argument("--reject-marker", default=None, help="content containing this text gets 422")
    parser.add_argument("--no-callbacks", action="store_true")
    parser.add_argument("--callback-delay-ms", type=_non_negative, default=200)
    parser.add_argument("--return-rate", type=_rate, default=0.0, help="probability a ticket ends 'returned'")
    parser.add_argument("--repeat-callbacks", action="store_true", help="send every callback twice")
    parser.add_argument("--callback-backoff-ms", type=_non_negative, default=250, help="first retry delay")
    parser.add_argument("--callback-backoff-max-ms", type=_non_negative, default=5000, help="retry delay cap")
    parser.add_argument("--callback-give-up-s", type=_non_negative, default=600, help="retry window per callback")
    parser.add_argument("--callback-timeout-s", type=float, default=10, help="timeout of one callback attempt")
    parser.add_argument("--seed", type=int, default=None, help="seed for failure_rate/return_rate draws")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if args.callback_timeout_s <= 0:
        parser.error("--callback-timeout-s must be greater than 0")
    return args


def config_from_args(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        down=args.down,
        failure_rate=args.failure_rate,
        ack_delay_ms=args.ack_delay_ms,
        reject_marker=args.reject_marker or None,
        callbacks=not args.no_callbacks,
        callback_delay_ms=args.callback_delay_ms,
        return_rate=args.return_rate,
        repeat_callbacks=args.repeat_callbacks,
        callback_backoff_ms=args.callback_backoff_ms,
        callback_backoff_max_ms=args.callback_backoff_max_ms,
        callback_give_up_s=args.callback_give_up_s,
        callback_timeout_s=args.callback_timeout_s,
    )


def _read_secret(args: argparse.Namespace) -> bytes:
    if args.secret_file is not None:
        # Files written by editors or `echo` end with a newline that is not part of the secret.
        text = args.secret_file.read_text(encoding="utf-8").rstrip("\r\n")
    else:
        text = args.secret
    if not text:
        raise SystemExit("gridsim: the secret is empty")
    return text.encode("utf-8")


def _bind(host: str, port: int) -> tuple[socket.socket, str]:
    """Bind before serving so that port 0 is resolved to the real port we can announce."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    return sock, f"http://{shown}:{bound_port}"


async def _serve(app: Starlette, sock: socket.socket, url: str, log_level: str) -> None:
    config = uvicorn.Config(
        app, log_level=log_level.lower(), access_log=False, lifespan="on", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            await serving
            return
        await asyncio.sleep(0.01)
    # Announced only once connections are accepted, so a parent that reads this line can send at once.
    print(f"gridsim listening on {url}", flush=True)
    log.info("SIMULATOR of a grid platform listening on %s (not a production service)", url)
    await serving


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    simulator = Simulator(_read_secret(args), config_from_args(args), seed=args.seed)
    sock, url = _bind(args.host, args.port)
    # uvicorn re-raises a captured Ctrl-C after its graceful shutdown; by then there is nothing left to report.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(create_app(simulator), sock, url, args.log_level))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The grid-platform simulator (deploy/gridsim) speaks the ticket protocol over real HTTP.

The simulator runs as a real subprocess on a free port, exactly as benchmarks and demos start it. The callbacks
it sends go to a small Starlette receiver served by uvicorn in a background thread of this process; the
receiver checks every signature itself (its own HMAC code, not the simulator's) and can be told to answer
503 or 401, to see the simulator's retry and give-up behaviour. No HTTP is mocked.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR = ROOT / "deploy" / "gridsim" / "grid_platform_simulator.py"
SECRET = b"gridsim-test-secret"
REJECT_MARKER = "【测试拒收】"
CALLBACK_DELAY_MS = 20
DEFAULT_CONFIG: dict[str, Any] = {
    "down": False,
    "failure_rate": 0.0,
    "ack_delay_ms": 0,
    "reject_marker": REJECT_MARKER,
    "callbacks": True,
    "callback_delay_ms": CALLBACK_DELAY_MS,
    "return_rate": 0.0,
    "repeat_callbacks": False,
    "callback_backoff_ms": 100,
}


def hmac_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed(body: bytes, *, secret: bytes = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        "X-Minyi-Timestamp": ts,
        "X-Minyi-Signature": hmac_signature(secret, ts, body),
    }


def encode(payload: dict[str, Any]) -> bytes:
    # Non-ASCII on the wire on purpose: the HMAC covers the raw UTF-8 bytes, not a re-serialisation.
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


# --- callback receiver (stands in for Minyi) --------------------------------------------------------


@dataclass
class Call:
    ticket_id: str
    payload: dict[str, Any]
    signature_ok: bool
    answered: int


class Receiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._plans: dict[str, list[int]] = {}
        self.url = ""
        self.app = Starlette(routes=[Route("/minyi/grid/callbacks", self._callback, methods=["POST"])])

    @property
    def callback_url(self) -> str:
        return f"{self.url}/minyi/grid/callbacks"

    def plan(self, ticket_id: str, answers: list[int]) -> None:
        """Answer the next callbacks for ``ticket_id`` with these status codes, then 204 again."""
        with self._lock:
            self._plans[ticket_id] = list(answers)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._plans.clear()

    def calls(self, ticket_id: str) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if c.ticket_id == ticket_id]

    def delivered(self, ticket_id: str) -> list[Call]:
        return [c for c in self.calls(ticket_id) if 200 <= c.answered < 300]

    async def _callback(self, request: Request) -> Response:
        body = await request.body()
        ts = request.headers.get("X-Minyi-Timestamp", "")
        signature = request.headers.get("X-Minyi-Signature", "")
        signature_ok = (
            ts.isdigit()
            and abs(time.time() - int(ts)) <= 300
            and hmac.compare_digest(signature, hmac_signature(SECRET, ts, body))
        )
        payload = json.loads(body)
        ticket_id = str(payload.get("ticket_id"))
        with self._lock:
            plan = self._plans.get(ticket_id)
            answer = 401 if not signature_ok else (plan.pop(0) if plan else 204)
            self._calls.append(Call(ticket_id, payload, signature_ok, answer))
        if answer == 204:
            return Response(status_code=204)
        return JSONResponse({"detail": "planned answer"}, status_code=answer)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    rec.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(rec.app, log_level="warning", access_log=False, lifespan="off"))
    # A thread of its own: uvicorn skips signal handling there, and the receiver is independent of test loops.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="callback-receiver")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "callback receiver did not start"
        time.sleep(0.01)
    yield rec
    server.should_exit = True
    thread.join(timeout=10)


# --- the simulator subprocess -------------------------------------------------------------------------


@dataclass
class SimProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def _start_simulator(log_path: Path, *extra: str) -> SimProcess:
    log_file = log_path.open("wb")
    # stderr goes to a file: a pipe nobody drains would fill up and block the simulator's logging.
    process = subprocess.Popen(
        [sys.executable, str(SIMULATOR), "--port", "0", "--secret", SECRET.decode(), *extra],
        stdout=subprocess.PIPE,
        stderr=log_file,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log_file.close()
    assert process.stdout is not None
    deadline = time.monotonic() + 15
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            process.kill()
            raise AssertionError(f"simulator did not announce its URL: {log_path.read_text(errors='replace')}")
        ready, _, _ = select.select([process.stdout], [], [], remaining)
        if ready:
            chunk = os.read(process.stdout.fileno(), 1)
            if not chunk:
                continue
            line += chunk
    prefix = "gridsim listening on "
    text = line.decode().strip()
    assert text.startswith(prefix), text
    return SimProcess(text.removeprefix(prefix), process, log_path)


def _stop(sim: SimProcess) -> None:
    if sim.process.poll() is None:
        sim.process.terminate()
        try:
            sim.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.process.kill()
            sim.process.wait()
    if sim.process.stdout is not None:
        sim.process.stdout.close()


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> SimProcess:
    sim = _start_simulator(
        tmp_path_factory.mktemp("gridsim") / "gridsim.log",
        "--callback-delay-ms", str(CALLBACK_DELAY_MS), "--seed", "7",
    )
    request.addfinalizer(lambda: _stop(sim))
    return sim


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy from the environment must not intercept requests to 127.0.0.1.
    async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
        yield c


@pytest.fixture(autouse=True)
async def clean(simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{simulator.url}/_sim/reset")).status_code == 200
    response = await client.post(f"{simulator.url}/_sim/config", json=DEFAULT_CONFIG)
    assert response.status_code == 200, response.text
    receiver.clear()


def ticket(receiver: Receiver, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "ticket_id": f"TK-{uuid.uuid4()}",
        "report_id": f"RP-{uuid.uuid4()}",
        "region_code": "330106001",
        "category": "municipal_facilities",
        "content": "文三路与学院路路口的路灯已经坏了一周，晚上很黑",
        "location": "杭州市西湖区文三路与学院路交叉口",
        "due_at": "2026-12-01T18:00:00+08:00",
        "callback_url": receiver.callback_url,
    }
    payload.update(overrides)
    return payload


async def send(
    client: httpx.AsyncClient, sim: SimProcess, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(f"{sim.url}/tickets", content=body, headers=signed(body) if headers is None else headers)


async def stats(client: httpx.AsyncClient, sim: SimProcess) -> dict[str, int]:
    response = await client.get(f"{sim.url}/_sim/stats")
    assert response.status_code == 200
    return response.json()


async def sim_ticket(client: httpx.AsyncClient, sim: SimProcess, ticket_id: str) -> dict[str, Any]:
    response = await client.get(f"{sim.url}/_sim/tickets/{ticket_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def after_a_later_ticket(
    client: httpx.AsyncClient, sim: SimProcess, receiver: Receiver, callbacks: int = 3
) -> None:
    """Send a new ticket and wait for `callbacks` of its callbacks: any callback the simulator was going
    to send for what came before was due no later than these (same delays, started earlier), so a
    check made afterwards proves that none is coming."""
    marker = ticket(receiver)
    assert (await send(client, sim, encode(marker))).status_code == 200
    await eventually(lambda: len(receiver.delivered(marker["ticket_id"])) >= callbacks)


async def simulator_shows(read: Callable[[], Awaitable[Any]], wanted: Callable[[Any], bool],
                          timeout: float = 5.0) -> Any:
    """What the simulator reports, once it shows `wanted`: it counts a callback only when the answer
    is back, a moment after the receiver has recorded the call."""
    deadline = time.monotonic() + timeout
    while not wanted(value := await read()):
        assert time.monotonic() < deadline, f"the simulator never showed it: {value}"
        await asyncio.sleep(0.02)
    return value


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


# --- tests ----------------------------------------------------------------------------------------


async def test_signed_ticket_is_received_and_called_back_in_order(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    payload = ticket(receiver)
    before = time.time()
    response = await send(client, simulator, encode(payload))
    assert response.status_code == 200
    assert response.json() == {"ticket_id": payload["ticket_id"], "status": "received"}

    await eventually(lambda: len(receiver.delivered(payload["ticket_id"])) == 3)
    calls = receiver.calls(payload["ticket_id"])
    assert [c.payload["status"] for c in calls] == ["accepted", "in_progress", "resolved"]
    assert all(c.signature_ok for c in calls)
    stamps = [datetime.fromisoformat(c.payload["at"]) for c in calls]
    assert all(s.tzinfo is not None and s.utcoffset() is not None for s in stamps)
    assert stamps[0] < stamps[1] < stamps[2]
    assert all(c.payload["ticket_id"] == payload["ticket_id"] for c in calls)
    assert "处理完毕" in calls[2].payload["note"]

    view = await simulator_shows(lambda: sim_ticket(client, simulator, payload["ticket_id"]),
                                 lambda view: view["status"] == "resolved")
    assert view["report_id"] == payload["report_id"]
    assert view["region_code"] == "330106001" and view["category"] == "municipal_facilities"
    assert view["deliveries"] == 1 and view["status"] == "resolved"
    assert before - 1 <= view["first_received_at"] <= time.time()
    assert [cb["status"] for cb in view["callbacks"]] == ["accepted", "in_progress", "resolved"]
    assert all(cb["result"] == "delivered" and cb["attempts"] == 1 for cb in view["callbacks"])
    counts = await stats(client, simulator)
    assert counts["received"] == 1 and counts["tickets"] == 1
    assert counts["callbacks_sent"] == 3 and counts["callbacks_failed"] == 0 and counts["duplicates"] == 0


async def test_timestamp_four_minutes_old_is_still_accepted(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    body = encode(ticket(receiver))
    response = await send(client, simulator, body, signed(body, timestamp=int(time.time()) - 240))
    assert response.status_code == 200


async def test_repeated_ticket_id_is_one_ticket_with_one_set_of_callbacks(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    payload = ticket(receiver)
    body = encode(payload)
    first = await send(client, simulator, body)
    await eventually(lambda: len(receiver.delivered(payload["ticket_id"])) >= 1)
    second = await send(client, simulator, body)  # a retry: same body, fresh signature
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"ticket_id": payload["ticket_id"], "status": "received"}

    await eventually(lambda: len(receiver.delivered(payload["ticket_id"])) >= 3)
    await after_a_later_ticket(client, simulator, receiver)  # a second set would have come by now
    assert [c.payload["status"] for c in receiver.calls(payload["ticket_id"])] == [
        "accepted", "in_progress", "resolved",
    ]
    counts = await stats(client, simulator)
    # With the later ticket: two received, one duplicate, six callbacks.
    assert counts["received"] == 2 and counts["duplicates"] == 1 and counts["tickets"] == 2
    assert counts["duplicate_mismatches"] == 0 and counts["callbacks_sent"] == 3 + 3
    assert (await sim_ticket(client, simulator, payload["ticket_id"]))["deliveries"] == 2
    listed = (await client.get(f"{simulator.url}/_sim/tickets")).json()
    assert listed[0]["ticket_id"] == payload["ticket_id"] and len(listed) == 2  # and the later one


def _wrong_secret(body: bytes) -> dict[str, str]:
    return signed(body, secret=b"not-the-secret")


def _other_body(body: bytes) -> dict[str, str]:
    return signed(body + b" ")


def _stale(body: bytes) -> dict[str, str]:
    return signed(body, timestamp=int(time.time()) - 301)


def _future(body: bytes) -> dict[str, str]:
    return signed(body, timestamp=int(time.time()) + 302)


def _no_headers(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json"}


def _no_signature(body: bytes) -> dict[str, str]:
    headers = signed(body)
    del headers["X-Minyi-Signature"]
    return headers


def _no_prefix(body: bytes) -> dict[str, str]:
    headers = signed(body)
    headers["X-Minyi-Signature"] = headers["X-Minyi-Signature"].removeprefix("sha256=")
    return headers


def _bad_timestamp(body: bytes) -> dict[str, str]:
    headers = signed(body)
    headers["X-Minyi-Timestamp"] = datetime.now().isoformat()
    return headers


@pytest.mark.parametrize(
    "make_headers",
    [_wrong_secret, _other_body, _stale, _future, _no_headers, _no_signature, _no_prefix, _bad_timestamp],
    ids=lambda f: f.__name__.strip("_"),
)
async def test_unauthentic_ticket_is_401(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient,
    make_headers: Callable[[bytes], dict[str, str]],
) -> None:
    payload = ticket(receiver)
    body = encode(payload)
    assert_problem(await send(client, simulator, body, make_headers(body)), 401)
    counts = await stats(client, simulator)
    assert counts["rejected_signature"] == 1 and counts["received"] == 0 and counts["tickets"] == 0
    assert (await client.get(f"{simulator.url}/_sim/tickets/{payload['ticket_id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "detail_part"),
    [
        (b'{"ticket_id": "TK-1", ', "JSON"),
        (b"[1, 2]", "JSON"),
        (encode({"content": "井盖缺失", "callback_url": "http://127.0.0.1:9/cb"}), "ticket_id"),
        (encode({"ticket_id": "TK-2", "callback_url": "http://127.0.0.1:9/cb"}), "content"),
    ],
    ids=["truncated-json", "not-an-object", "no-ticket-id", "no-content"],
)
async def test_malformed_ticket_is_400(
    simulator: SimProcess, client: httpx.AsyncClient, body: bytes, detail_part: str
) -> None:
    problem = assert_problem(await send(client, simulator, body), 400)
    assert detail_part in problem["detail"]
    counts = await stats(client, simulator)
    assert counts["bad_requests"] == 1 and counts["tickets"] == 0


async def test_reject_marker_is_a_permanent_422(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    payload = ticket(receiver, content=f"小区门口有人占道经营{REJECT_MARKER}")
    problem = assert_problem(await send(client, simulator, encode(payload)), 422)
    assert problem["detail"] == "工单内容不符合受理范围"
    await after_a_later_ticket(client, simulator, receiver, callbacks=1)
    assert receiver.calls(payload["ticket_id"]) == []
    counts = await stats(client, simulator)
    assert counts["rejected_content"] == 1 and counts["received"] == 1 and counts["tickets"] == 1  # the later one
    assert (await client.get(f"{simulator.url}/_sim/tickets/{payload['ticket_id']}")).status_code == 404


async def test_down_answers_503_until_up_again(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    config = (await client.post(f"{simulator.url}/_sim/config", json={"down": True})).json()
    assert config["down"] is True
    payload = ticket(receiver)
    body = encode(payload)
    assert_problem(await send(client, simulator, body), 503)
    assert_problem(await send(client, simulator, body), 503)
    assert (await stats(client, simulator))["tickets"] == 0

    assert (await client.post(f"{simulator.url}/_sim/config", json={"down": False})).json()["down"] is False
    response = await send(client, simulator, body)
    assert response.status_code == 200 and response.json()["status"] == "received"
    counts = await stats(client, simulator)
    assert counts["failed_injected"] == 2 and counts["received"] == 1 and counts["duplicates"] == 0
    await eventually(lambda: len(receiver.delivered(payload["ticket_id"])) == 3)


async def test_failure_rate_one_fails_every_ticket(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    await client.post(f"{simulator.url}/_sim/config", json={"failure_rate": 1})
    for _ in range(3):
        assert_problem(await send(client, simulator, encode(ticket(receiver))), 503)
    counts = await stats(client, simulator)
    assert counts["failed_injected"] == 3 and counts["tickets"] == 0


async def test_return_rate_one_ends_returned_with_a_note(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    await client.post(f"{simulator.url}/_sim/config", json={"return_rate": 1})
    payload = ticket(receiver)
    assert (await send(client, simulator, encode(payload))).status_code == 200
    await eventually(lambda: len(receiver.delivered(payload["ticket_id"])) == 3)
    last = receiver.calls(payload["ticket_id"])[-1].payload
    assert last["status"] == "returned"
    assert "退回" in last["note"]
    await simulator_shows(lambda: sim_ticket(client, simulator, payload["ticket_id"]),
                          lambda view: view["status"] == "returned")


async def test_callbacks_are_retried_while_minyi_answers_503(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    payload = ticket(receiver)
    receiver.plan(payload["ticket_id"], [503, 503])
    assert (await send(client, simulator, encode(payload))).status_code == 200

    await eventually(lambda: len(receiver.delivered(payload["ticket_id"])) == 3)
    calls = receiver.calls(payload["ticket_id"])
    assert [(c.payload["status"], c.answered) for c in calls] == [
        ("accepted", 503), ("accepted", 503), ("accepted", 204), ("in_progress", 204), ("resolved", 204),
    ]
    assert all(c.signature_ok for c in calls)
    # A retry resends the same callback (same `at`), so Minyi can tell it apart from a new status.
    assert calls[0].payload == calls[1].payload == calls[2].payload
    view = await simulator_shows(lambda: sim_ticket(client, simulator, payload["ticket_id"]),
                                 lambda view: view["status"] == "resolved")
    assert view["callbacks"][0]["attempts"] == 3 and view["callbacks"][0]["result"] == "delivered"
    assert view["status"] == "resolved"
    counts = await stats(client, simulator)
    assert counts["callbacks_retried"] == 2 and counts["callbacks_sent"] == 3 and counts["callbacks_failed"] == 0


async def test_callback_refused_with_401_is_given_up(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    payload = ticket(receiver)
    receiver.plan(payload["ticket_id"], [401])
    assert (await send(client, simulator, encode(payload))).status_code == 200

    await eventually(lambda: len(receiver.calls(payload["ticket_id"])) == 1)
    # Its next step would have been due one callback delay after the refusal, before the later ticket's.
    await after_a_later_ticket(client, simulator, receiver)
    assert [(c.payload["status"], c.answered) for c in receiver.calls(payload["ticket_id"])] == [("accepted", 401)]
    view = await sim_ticket(client, simulator, payload["ticket_id"])
    assert view["status"] == "received"
    assert view["callbacks"] == [
        {**view["callbacks"][0], "status": "accepted", "result": "failed", "attempts": 1, "http_status": 401},
    ]
    counts = await stats(client, simulator)
    assert counts["callbacks_failed"] == 1 and counts["callbacks_sent"] == 3 and counts["callbacks_retried"] == 0


async def test_repeat_callbacks_sends_every_callback_twice(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    await client.post(f"{simulator.url}/_sim/config", json={"repeat_callbacks": True})
    payload = ticket(receiver)
    assert (await send(client, simulator, encode(payload))).status_code == 200
    await eventually(lambda: len(receiver.delivered(payload["ticket_id"])) == 6)
    sent = [c.payload for c in receiver.calls(payload["ticket_id"])]
    assert [p["status"] for p in sent] == ["accepted", "accepted", "in_progress", "in_progress", "resolved", "resolved"]
    assert sent[0] == sent[1] and sent[2] == sent[3] and sent[4] == sent[5]
    await simulator_shows(lambda: stats(client, simulator), lambda counts: counts["callbacks_sent"] == 6)


async def test_no_callbacks_and_ack_delay(
    simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    await client.post(f"{simulator.url}/_sim/config", json={"callbacks": False, "ack_delay_ms": 300})
    payload = ticket(receiver)
    started = time.monotonic()
    response = await send(client, simulator, encode(payload))
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    # Callbacks on again: the later ticket gets its three, and the first, taken while they were off, none.
    await client.post(f"{simulator.url}/_sim/config", json={"callbacks": True, "ack_delay_ms": 0})
    await after_a_later_ticket(client, simulator, receiver)
    assert receiver.calls(payload["ticket_id"]) == []
    assert (await sim_ticket(client, simulator, payload["ticket_id"]))["status"] == "received"


async def test_control_api(simulator: SimProcess, receiver: Receiver, client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{simulator.url}/healthz")).status_code == 200
    assert (await client.get(f"{simulator.url}/_sim/tickets/TK-unknown")).status_code == 404
    for bad in ({"no_such_key": 1}, {"failure_rate": 1.5}, {"down": "yes"}, {"ack_delay_ms": -1}):
        assert (await client.post(f"{simulator.url}/_sim/config", json=bad)).status_code == 400, bad
    config = (await client.post(f"{simulator.url}/_sim/config", json={"callback_delay_ms": 0})).json()
    assert config == {**config, **DEFAULT_CONFIG, "callback_delay_ms": 0}

    await client.post(f"{simulator.url}/_sim/config", json={"callbacks": False})
    assert (await send(client, simulator, encode(ticket(receiver)))).status_code == 200
    assert (await stats(client, simulator))["tickets"] == 1
    reset = await client.post(f"{simulator.url}/_sim/reset")
    assert reset.status_code == 200
    counts = await stats(client, simulator)
    assert counts["received"] == 0 and counts["tickets"] == 0
    assert (await client.get(f"{simulator.url}/_sim/tickets")).json() == []


def test_secret_is_required() -> None:
    result = subprocess.run(
        [sys.executable, str(SIMULATOR), "--port", "0"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "--secret" in result.stderr
    assert result.stdout == ""

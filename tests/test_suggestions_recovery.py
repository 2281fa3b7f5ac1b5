"""Suggestions survive what goes wrong: a lost projection is rebuilt from the stream, a worker
killed mid-handling and a Temporal server restarted mid-way lose nothing and do nothing twice."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from busutil import eventually
from conftest import Servers
from sqlalchemy import text
from suggestionsutil import STAFF, Suggestions, bearer, declare_consumed_streams, suggestions_service
from temporalio.client import Client

from minyi.servers import Temporal, free_port, tail
from services.suggestions.rebuild import rebuild
from services.suggestions.workflows import workflow_id
from shared.auth import ensure_dev_signing_key, sign_token
from shared.db import Database
from shared.ids import new_id

pytestmark = pytest.mark.slow

COUNTY = "340831"
YEAR = datetime.now(UTC).year
LEAD, ASSISTING = "jiaotong-340831", "zhujian-340831"


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("suggestions-recovery")) as service:
        for unit_id in (LEAD, ASSISTING):
            await service.unit(unit_id, COUNTY)
        yield service


def unit(unit_id: str) -> dict[str, str]:
    return bearer("unit", unit_id=unit_id)


async def new_suggestion(svc: Suggestions, topic: str) -> tuple[str, str]:
    deputy_id = f"d-{new_id()[-12:]}"
    await svc.deputy(deputy_id, COUNTY)
    created = await svc.submit(deputy_id, title=f"关于{topic}的建议", year=YEAR,
                               content=f"群众反映{topic}问题突出，建议有关部门研究解决，并向代表反馈办理情况。")
    return str(created["id"]), deputy_id


async def projection(servers: Servers) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both tables whole, without the columns that only say when a row was written."""
    db = Database.connect(servers.database_url, application_name="test-snapshot", pool_size=1)
    try:
        async with db.transaction() as session:
            rows = (await session.execute(text(
                "SELECT * FROM suggestions.suggestions ORDER BY id"))).mappings().all()
            steps = (await session.execute(text(
                "SELECT * FROM suggestions.timeline ORDER BY suggestion_id, seq"))).mappings().all()
    finally:
        await db.dispose()
    return ([{k: v for k, v in r.items() if k != "updated_at"} for r in rows],
            [{k: v for k, v in s.items() if k != "recorded_at"} for s in steps])


def differences(before: tuple[list[dict[str, Any]], list[dict[str, Any]]],
                after: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> str:
    """The rows that differ, column by column, instead of two whole tables."""
    out: list[str] = []
    for name, key, old, new in (("suggestions", ("id",), before[0], after[0]),
                                ("timeline", ("suggestion_id", "seq"), before[1], after[1])):
        was = {tuple(r[k] for k in key): r for r in old}
        now = {tuple(r[k] for k in key): r for r in new}
        out += [f"{name} {k}: lost" for k in was.keys() - now.keys()]
        out += [f"{name} {k}: new" for k in now.keys() - was.keys()]
        for k in was.keys() & now.keys():
            changed = {c: (was[k][c], now[k].get(c)) for c in was[k] if was[k][c] != now[k].get(c)}
            if changed:
                out.append(f"{name} {k}: {changed}")
    return "\n".join(out[:20])


async def outbox_drained(svc: Suggestions) -> bool:
    async with svc.runtime.sessions()() as session:
        return not await session.scalar(text("SELECT count(*) FROM suggestions.outbox WHERE published_at IS NULL"))


async def test_the_projection_is_rebuilt_from_the_stream_after_it_is_lost(
    svc: Suggestions, servers: Servers, server_env: dict[str, str]
) -> None:
    # Every kind of step a person can take, over three suggestions left at different points.
    full, lead_deputy = await new_suggestion(svc, "老旧小区加装电梯")
    await svc.act(full, "assignment", {"lead_unit_id": LEAD, "assisting_unit_ids": [ASSISTING]}, STAFF)
    await svc.act(full, "assisting-views", {"content": "同意主办单位意见，配合做好资金保障。"}, unit(ASSISTING))
    await svc.act(full, "meetings", {"stage": "before", "at": datetime.now(UTC).isoformat(),
                                     "note": "办前与代表当面沟通。"}, unit(LEAD))
    deputy = bearer("deputy", deputy_id=lead_deputy)
    for _ in range(2):
        await svc.act(full, "replies", {"unit_id": LEAD, "content": "已纳入明年计划。", "outcome": "B",
                                        "planned_year": YEAR + 1}, unit(LEAD))
        await svc.act(full, "evaluation", {"result": "dissatisfied", "comment": "进度太慢。"}, deputy)
    last = await svc.act(full, "director-decision", {"decision": "follow_up", "note": "主任会议决定跟踪督办。"}, STAFF)
    assert last["status"] == "following_up"
    extended, _ = await new_suggestion(svc, "农村道路硬化")
    await svc.act(extended, "assignment", {"lead_unit_id": LEAD}, STAFF)
    second = await svc.act(extended, "extension", {"reason": "需跨年度安排资金。"}, STAFF)
    fresh, _ = await new_suggestion(svc, "菜市场改造")
    for sid, seq in ((full, last["seq"]), (extended, second["seq"]), (fresh, 1)):
        await svc.recorded(sid, seq)
    await eventually(lambda: outbox_drained(svc), timeout=30, what="every step published to SUGGESTIONS")
    before = await projection(servers)
    ours = {full, extended, fresh}
    kinds = [s["kind"] for s in before[1] if s["suggestion_id"] == full]
    assert kinds == ["submitted", "assigned", "assisting_view", "meeting", "replied", "evaluated", "reassigned",
                     "replied", "evaluated", "director_decision"]

    async with svc.runtime.transaction() as session:
        await session.execute(text("TRUNCATE suggestions.suggestions, suggestions.timeline"))
    listed = await svc.client.get("/v1/suggestions", params={"year": YEAR}, headers=STAFF)
    assert not ours & {s["id"] for s in listed.json()}

    done = subprocess.run([sys.executable, "-m", "minyi.cli", "rebuild", "suggestions"], env=server_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rebuilt suggestions from" in done.stdout, done.stdout
    after = await projection(servers)
    assert after == before, differences(before, after)
    listed = await svc.client.get("/v1/suggestions", params={"year": YEAR}, headers=STAFF)
    assert ours <= {s["id"] for s in listed.json()}
    shown = await svc.get(full)
    assert [s["kind"] for s in shown["timeline"]] == kinds and shown["status"] == "following_up"

    # Again, in process and over a whole projection: nothing changes, nothing doubles.
    nc = await nats.connect(servers.nats_url)
    try:
        again = await rebuild(svc.runtime.database, nc.jetstream())
    finally:
        await nc.close()
    assert again.events >= len(before[1])
    assert await projection(servers) == before


# ---- a worker killed mid-handling ------------------------------------------------------------


class Process:
    """`minyi serve suggestions` as a container runs it."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "minyi.cli", "serve", "suggestions"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)

    async def ready(self) -> None:
        async def answers() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"exited; log:\n{tail(self.log, 30)}"
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(answers, timeout=90, what=f"suggestions ready on {self.port}", interval=0.2)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def service_process(env: dict[str, str], port: int, log: Path) -> Iterator[Process]:
    process = Process(env, port, log)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def own_temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Temporal]:
    """A Temporal server no other test's worker polls, so the process under test is the only worker."""
    root = tmp_path_factory.mktemp("own-temporal")
    temporal = Temporal(root / "temporal.db", free_port(), free_port(), root / "temporal.log")
    temporal.start()
    try:
        yield temporal
    finally:
        temporal.stop()


async def test_a_worker_killed_mid_handling_loses_nothing_and_does_nothing_twice(
    svc: Suggestions, servers: Servers, server_env: dict[str, str], own_temporal: Temporal, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = {**server_env, "MINYI_HOME": str(home), "MINYI_SUGGESTIONS_PORT": str(port),
           "MINYI_TEMPORAL_ADDRESS": own_temporal.address, "MINYI_OUTBOX_POLL_SECONDS": "0.1"}
    key = ensure_dev_signing_key(home / "keys" / "jwt-signing-key.pem")

    def token(**claims: Any) -> dict[str, str]:
        return {"Authorization": "Bearer " + sign_token(key, issuer="minyi", audience="minyi", **claims)}

    staff = token(sub="staff-crash", roles=["npc_staff"], region=COUNTY)
    deputy_id = f"d-{new_id()[-12:]}"
    lead = token(sub=deputy_id, roles=["deputy"], deputy_id=deputy_id, region=COUNTY)
    await svc.deputy(deputy_id, COUNTY)
    url = f"http://127.0.0.1:{port}/v1/suggestions"
    with service_process(env, port, tmp_path / "suggestions.log") as process:
        process.start()
        await process.ready()
        ids: list[str] = []
        async with httpx.AsyncClient(timeout=60) as http:
            for n in range(20):
                resp = await http.post(url, headers=lead,
                                       json={"title": f"关于积水点{n}号治理的建议", "lead_deputy_id": deputy_id,
                                             "content": f"第{n}号积水点每逢雨天积水严重，建议尽快改造排水管网。",
                                             "year": YEAR, "kind": "session"})
                assert resp.status_code == 201, resp.text
                ids.append(resp.json()["id"])
            for sid in ids:
                await svc.recorded(sid, 1)

            async def assign(sid: str) -> int:
                try:
                    resp = await http.post(f"{url}/{sid}/assignment", json={"lead_unit_id": LEAD},
                                           headers={**staff, "Idempotency-Key": f"crash-{sid}"})
                    return resp.status_code
                except httpx.HTTPError:
                    return 0  # the process died under the request

            pending = [asyncio.create_task(assign(sid)) for sid in ids]
            await eventually(lambda: assigned_steps(svc, ids, at_least=1), timeout=60, interval=0.01,
                             what="the first assignment recorded")
            process.kill()
            first = await asyncio.gather(*pending)
        assert 0 in first, f"the kill came after every answer ({first}); nothing was mid-way"
        process.start()
        await process.ready()
        async with httpx.AsyncClient(timeout=60) as http:
            again = [await http.post(f"{url}/{sid}/assignment", json={"lead_unit_id": LEAD},
                                     headers={**staff, "Idempotency-Key": f"crash-{sid}"}) for sid in ids]
    assert [r.status_code for r in again] == [200] * len(ids), [r.text for r in again if r.status_code != 200]
    assert {r.json()["status"] for r in again} == {"assigned"}
    for sid in ids:
        kinds = [s["kind"] for s in (await svc.recorded(sid, 2))["timeline"]]
        assert kinds == ["submitted", "assigned"], (sid, kinds)
    await eventually(lambda: outbox_drained(svc), timeout=30, what="the assignments published")
    assert await assigned_events(servers, set(ids)) == dict.fromkeys(ids, 1)


async def assigned_steps(svc: Suggestions, ids: list[str], *, at_least: int) -> bool:
    async with svc.runtime.sessions()() as session:
        found = await session.scalar(text(
            "SELECT count(*) FROM suggestions.timeline WHERE kind = 'assigned' AND suggestion_id = ANY(:ids)"),
            {"ids": ids})
    return int(found or 0) >= at_least


async def assigned_events(servers: Servers, ids: set[str]) -> dict[str, int]:
    """How many `assigned` events the stream holds for each of `ids`."""
    subject = "suggestions.suggestion.assigned"
    nc = await nats.connect(servers.nats_url)
    counts: dict[str, int] = {}
    try:
        js = nc.jetstream()
        info = await js.stream_info("SUGGESTIONS", subjects_filter=subject)
        total = (info.state.subjects or {}).get(subject, 0)
        sub = await js.subscribe(subject, ordered_consumer=True)
        for _ in range(total):
            event = json.loads((await sub.next_msg(timeout=5)).data)
            if event["data"]["id"] in ids:
                counts[event["data"]["id"]] = counts.get(event["data"]["id"], 0) + 1
        await sub.unsubscribe()
    finally:
        await nc.close()
    return counts


# ---- Temporal restarted mid-way --------------------------------------------------------------


async def test_a_restarted_temporal_server_keeps_every_suggestion_going(
    servers: Servers, own_temporal: Temporal, tmp_path: Path
) -> None:
    temporal = own_temporal
    try:
        async with suggestions_service(servers, tmp_path / "home", temporal_address=temporal.address) as own:
            await own.unit(LEAD, COUNTY)
            sid, deputy_id = await new_suggestion(own, "公交站台遮雨棚")
            assigned = await own.act(sid, "assignment", {"lead_unit_id": LEAD}, STAFF)
            await own.recorded(sid, assigned["seq"])

            temporal.stop()
            down = await own.client.post(f"/v1/suggestions/{sid}/replies", headers={**unit(LEAD),
                                         "Idempotency-Key": f"reply-{sid}"},
                                         json={"unit_id": LEAD, "content": "已安装遮雨棚。", "outcome": "A"})
            assert down.status_code == 503 and down.headers["content-type"].startswith("application/problem+json")
            assert (await own.get(sid))["seq"] == assigned["seq"], "a refused action left a step behind"

            temporal.start()
            body = {"unit_id": LEAD, "content": "已安装遮雨棚。", "outcome": "A"}

            async def replied() -> bool:
                resp = await own.client.post(f"/v1/suggestions/{sid}/replies", json=body,
                                             headers={**unit(LEAD), "Idempotency-Key": f"reply-{sid}"})
                return resp.status_code == 200

            await eventually(replied, timeout=60, what="the reply accepted once Temporal is back", interval=1)
            evaluated = await own.act(sid, "evaluation", {"result": "satisfied"}, bearer("deputy", deputy_id=deputy_id))
            assert evaluated["status"] == "closed"
            shown = await own.recorded(sid, evaluated["seq"])
            assert [s["kind"] for s in shown["timeline"]] == ["submitted", "assigned", "replied", "evaluated",
                                                              "closed"]
            client = await Client.connect(temporal.address)
            description = await client.get_workflow_handle(workflow_id(sid)).describe()
            assert description.status is not None and description.status.name == "COMPLETED"
    finally:
        if temporal.child is None or not temporal.child.alive():
            temporal.start()  # the module's fixture stops it


@pytest.fixture(autouse=True, scope="module")
async def _streams(servers: Servers) -> None:
    await declare_consumed_streams(servers.nats_url)


async def test_a_temporal_worker_that_cannot_run_makes_the_service_not_ready(
    servers: Servers, tmp_path: Path
) -> None:
    # The server is healthy but has no such namespace: the worker fails at every start while the
    # Temporal health check passes, so only the workers check can tell.
    async with suggestions_service(servers, tmp_path, temporal_namespace="no-such-namespace") as service:

        async def readiness() -> tuple[int, dict[str, str]]:
            answer = await service.client.get("/readyz")
            return answer.status_code, answer.json()["checks"]

        async def not_ready() -> bool:
            return (await readiness())[0] == 503

        await eventually(not_ready, timeout=30, what="/readyz to notice the failing worker")
        _, checks = await readiness()
        assert checks["temporal"] == "ok" and checks["database"] == "ok"
        assert checks["workers"].startswith("failing") and "suggestion_worker" in checks["workers"], checks
        assert "no-such-namespace" in checks["workers"], checks

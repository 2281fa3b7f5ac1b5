"""`minyi dead-letters` against real services whose consumers dead-letter real events.

The fault is one PostgreSQL itself raises: a trigger on the table a handler writes refuses one
deputy while a row in `dl_faults` says so, and otherwise counts each committed write in `dl_writes`,
which is how the tests see that a replayed event is applied exactly once. The tests run on a NATS
server and a database of their own, so `--all` meets no dead letters of other tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest
from busutil import event_body, eventually, fresh_database, publish, stream_messages, unique_name
from conftest import Servers
from intakeutil import Clock, declare_upstream_streams, intake_app
from scoringutil import bearer, report_event, scoring_service
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from minyi import dead_letters
from minyi.servers import Nats, free_port
from services.scoring.handlers import REPORTS
from shared import nats_permissions
from shared.bus.consumer import dead_letter_body
from shared.bus.streams import dead_letter_stream, declare
from shared.settings import Settings, nats_inbox_prefix, nats_password_variable, new_nats_password

ROOT = Path(__file__).resolve().parent.parent
DEAD = "DEADLETTER_INTAKE"
CONSUMER = "intake-deputies"

FAULT_SQL = (
    "CREATE TABLE IF NOT EXISTS public.dl_faults (deputy_id text PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS public.dl_writes (deputy_id text NOT NULL)",
    # The trigger's argument names the column that holds the deputy's id.
    """CREATE OR REPLACE FUNCTION public.dl_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    deputy text := to_jsonb(NEW) ->> TG_ARGV[0];
BEGIN
    IF EXISTS (SELECT 1 FROM public.dl_faults WHERE deputy_id = deputy) THEN
        RAISE EXCEPTION 'deputy % refused on purpose', deputy;
    END IF;
    -- BEFORE INSERT fires for an upsert too: one row per committed run of the handler.
    INSERT INTO public.dl_writes VALUES (deputy);
    RETURN NEW;
END $$""",
)


@dataclass
class Stack:
    servers: Servers
    engine: AsyncEngine
    env: dict[str, str]

    @property
    def nats_url(self) -> str:
        return self.servers.nats_url

    @property
    def settings(self) -> Settings:
        return Settings(database_url=self.servers.database_url, nats_url=self.nats_url)

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(text(sql), params)

    async def execute(self, sql: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text(sql))

    async def guard(self, table: str, column: str) -> None:
        """Refuse or count the handler's writes to `table` (see the module's docstring)."""
        for statement in FAULT_SQL:
            await self.execute(statement)
        await self.execute(f"CREATE TRIGGER dl_guard BEFORE INSERT ON {table} FOR EACH ROW "
                           f"EXECUTE FUNCTION public.dl_guard('{column}')")

    async def writes(self, deputy_id: str) -> int:
        return int(await self.scalar("SELECT count(*) FROM public.dl_writes WHERE deputy_id = :d", d=deputy_id))

    async def letters(self, stream: str = DEAD) -> list[dict[str, Any]]:
        return [json.loads(data) for _, _, data in await stream_messages(self.nats_url, stream)]


async def own_database(servers: Servers) -> Servers:
    """The session's PostgreSQL with a fresh database of the test's own."""
    name = unique_name("minyi_dead_letters_")
    await fresh_database(servers.database_url, name)
    return replace(servers, postgres=replace(servers.postgres, database=name))


@pytest.fixture
async def stack(servers: Servers, own_nats: Nats, tmp_path: Path) -> AsyncIterator[Stack]:
    mine = replace(await own_database(servers), nats=own_nats)
    await declare_upstream_streams(mine.nats_url)
    engine = create_async_engine(mine.database_url)
    env = {**os.environ, "MINYI_DATABASE_URL": mine.database_url, "MINYI_NATS_URL": mine.nats_url,
           "MINYI_HOME": str(tmp_path / "home")}
    try:
        yield Stack(mine, engine, env)
    finally:
        await engine.dispose()


@pytest.fixture
async def intake(stack: Stack, tmp_path: Path) -> AsyncIterator[None]:
    # Two deliveries, 50 ms apart: a failing event reaches the dead letters at once.
    async with intake_app(stack.servers, tmp_path / "intake", Clock(), max_deliver=2, retry_base_seconds=0.05):
        await stack.guard("intake.deputies", "id")
        yield


async def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it; in a thread, so the service in this loop keeps running."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "minyi.cli", "dead-letters", *args], env=stack.env, cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False)


def deputy_event(event_id: str, deputy_id: str, **data: Any) -> bytes:
    body = {"id": deputy_id, "name": f"代表{deputy_id}", "level": "county", "region_code": "320923",
            "station_ids": [], "version": 1, **data}
    return event_body(event_id, "identity.deputy.updated", body)


async def dead_letter_of(stack: Stack, event_id: str, stream: str = DEAD) -> None:
    async def parked() -> bool:
        return any(json.loads(letter["original"]["text"])["id"] == event_id
                   for letter in await stack.letters(stream))

    await eventually(parked, timeout=20, what=f"{event_id} on {DEAD}")


async def test_a_dead_letter_is_listed_shown_replayed_once_after_the_fix_and_never_again(
    stack: Stack, intake: None
) -> None:
    await stack.execute("INSERT INTO public.dl_faults VALUES ('D-BAD')")
    await publish(stack.nats_url, "identity.deputy.updated", deputy_event("ev-ok", "D-OK"), "ev-ok")
    await publish(stack.nats_url, "identity.deputy.updated", deputy_event("ev-bad", "D-BAD"), "ev-bad")
    await dead_letter_of(stack, "ev-bad")
    await eventually(lambda: _has_writes(stack, "D-OK", 1), timeout=10, what="the good event applied")
    assert await stack.writes("D-BAD") == 0

    listed, table = await asyncio.gather(cli(stack, "list", "intake", "--json"), cli(stack, "list"))
    assert listed.returncode == 0, listed.stderr
    (letter,) = json.loads(listed.stdout)
    assert (letter["consumer"], letter["subject"], letter["event_id"], letter["deliveries"]) == (
        CONSUMER, "identity.deputy.updated", "ev-bad", 2)
    assert "deputy D-BAD refused on purpose" in letter["error"]
    letter_id = str(letter["id"])
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith("intake "))
    assert row.split()[:2] == ["intake", letter_id] and CONSUMER in row
    assert row.endswith("  2  DBAPIError: deputy D-BAD refused on purpose")
    assert table.stdout.rstrip().endswith("1 dead letter (intake, routing, suggestions, scoring, identity)")

    shown, dry = await asyncio.gather(cli(stack, "show", "intake", letter_id),
                                      cli(stack, "replay", "intake", letter_id, "--dry-run"))
    assert shown.returncode == 0, shown.stderr
    assert "event id:    ev-bad" in shown.stdout and "deliveries:  2" in shown.stdout
    assert "refused on purpose" in shown.stdout and '"id": "D-BAD"' in shown.stdout

    assert dry.returncode == 0, dry.stderr
    assert f"intake {letter_id}: identity.deputy.updated ev-bad → {CONSUMER}: would be applied" in dry.stdout
    # The fault is still there: the replay fails, and the letter stays for another try.
    still = await cli(stack, "replay", "intake", letter_id)
    assert still.returncode == 1
    assert still.stdout.splitlines() == [
        f"intake {letter_id}: identity.deputy.updated ev-bad → {CONSUMER}: failed, kept: "
        "DBAPIError: deputy D-BAD refused on purpose", "1 failed"]
    assert len(await stack.letters()) == 1
    assert await stack.writes("D-BAD") == 0

    await stack.execute("DELETE FROM public.dl_faults")
    fixed = await cli(stack, "replay", "intake", letter_id)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"intake {letter_id}: identity.deputy.updated ev-bad → {CONSUMER}: applied; dead letter removed" \
        in fixed.stdout
    assert await stack.writes("D-BAD") == 1
    assert await stack.scalar("SELECT version FROM intake.deputies WHERE id = 'D-BAD'") == 1
    assert await stack.scalar("SELECT count(*) FROM intake.inbox WHERE consumer = :c AND event_id = 'ev-bad'",
                              c=CONSUMER) == 1
    assert await stack.letters() == []

    again = await cli(stack, "replay", "intake", letter_id)
    assert again.returncode == 1
    assert f"intake has no dead letter {letter_id}" in again.stderr
    assert await stack.writes("D-BAD") == 1


async def test_a_replay_cut_short_before_the_removal_does_not_apply_the_event_twice(
    stack: Stack, intake: None
) -> None:
    await stack.execute("INSERT INTO public.dl_faults VALUES ('D-TWICE')")
    await publish(stack.nats_url, "identity.deputy.updated", deputy_event("ev-twice", "D-TWICE"), "ev-twice")
    await dead_letter_of(stack, "ev-twice")
    (parked,) = await stack.letters()
    await stack.execute("DELETE FROM public.dl_faults")
    # The letter a replay would leave behind when it stops after the commit and before the removal.
    await _copy_letter(stack, parked)

    out: list[str] = []
    code = await dead_letters.run_replay(stack.settings, "intake", [], every=True, consumer_name=CONSUMER,
                                         dry_run=False, say=out.append)
    assert code == 0, out
    assert out[0].endswith(f"ev-twice → {CONSUMER}: applied; dead letter removed"), out
    assert out[1].endswith(f"ev-twice → {CONSUMER}: applied before, skipped; dead letter removed"), out
    assert out[2] == "1 applied, 1 already applied"
    assert await stack.writes("D-TWICE") == 1
    assert await stack.letters() == []


async def test_what_cannot_be_replayed_is_said_and_can_be_discarded(stack: Stack, intake: None) -> None:
    # No version: its model (shared/events.py) refuses it at once, naming the field; and bytes that are
    # no event at all.
    await publish(stack.nats_url, "identity.deputy.updated", deputy_event("ev-noversion", "D-X", version=None),
                  "ev-noversion")
    await publish(stack.nats_url, "identity.deputy.updated", b"{not json", "garbage")

    async def both() -> bool:
        return len(await stack.letters()) == 2

    await eventually(both, timeout=20, what="two dead letters")
    found: list[list[dict[str, Any]]] = []
    code = await dead_letters.run_list(stack.settings, ["intake"], consumer_name=CONSUMER, as_json=True,
                                       say=lambda line: found.append(json.loads(line)))
    assert code == 0
    bad, garbage = found[0]
    assert bad["deliveries"] == 1 and bad["error"].startswith("malformed: identity.deputy.updated ev-noversion")
    assert "DeputyUpdated: version:" in bad["error"]
    assert garbage["event_id"] is None and garbage["error"].startswith("malformed: ")

    out: list[str] = []
    code = await dead_letters.run_replay(stack.settings, "intake", [bad["id"], garbage["id"]], every=False,
                                         consumer_name=None, dry_run=False, say=out.append)
    assert code == 1
    assert "failed, kept: PayloadError: identity.deputy.updated ev-noversion: DeputyUpdated: version:" in out[0]
    assert "failed, kept: not an event (not JSON" in out[1] and out[1].endswith("discard it")
    assert len(await stack.letters()) == 2

    dry = await cli(stack, "discard", "intake", "--all", "--dry-run")
    assert dry.returncode == 0 and "dry run: 2 dead letters would be discarded" in dry.stdout
    assert len(await stack.letters()) == 2
    gone = await cli(stack, "discard", "intake", str(garbage["id"]))
    assert gone.returncode == 0, gone.stderr
    assert f"intake {garbage['id']}: identity.deputy.updated - ({CONSUMER}) discarded" in gone.stdout
    (left,) = await stack.letters()
    assert json.loads(left["original"]["text"])["id"] == "ev-noversion"


async def test_a_batch_consumer_gets_its_event_back_as_a_batch_of_one(stack: Stack, tmp_path: Path) -> None:
    async with scoring_service(stack.servers, tmp_path / "scoring") as scoring:
        await stack.guard("scoring.entries", "deputy_id")
        await scoring.deputy("D-S", "320923")
        await stack.execute("INSERT INTO public.dl_faults VALUES ('D-S')")
        event_id = await scoring.send("intake.report.acknowledged",
                                      report_event("D-S", "320923", datetime.now(UTC), on_time=True))
        await dead_letter_of(stack, event_id, "DEADLETTER_SCORING")
        (letter,) = await stack.letters("DEADLETTER_SCORING")
        assert letter["consumer"] == REPORTS and letter["deliveries"] == 5
        assert await stack.writes("D-S") == 0

        await stack.execute("DELETE FROM public.dl_faults")
        replayed = await cli(stack, "replay", "scoring", "--all", "--consumer", REPORTS)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert f"intake.report.acknowledged {event_id} → {REPORTS}: applied; dead letter removed" in replayed.stdout
        assert replayed.stdout.rstrip().endswith("1 applied")
        score = await scoring.score("D-S", datetime.now(UTC).year, entries=1, staff=bearer("npc_staff", "320923"))
        assert [e["source_id"] for e in score["entries"]] == [event_id]
        assert await stack.writes("D-S") == 1
        assert await stack.letters("DEADLETTER_SCORING") == []


async def test_mistakes_and_an_unreachable_nats_are_clear_errors(stack: Stack) -> None:
    port = free_port()
    unknown, both, missing, down = await asyncio.gather(
        cli(stack, "list", "billing"), cli(stack, "replay", "intake", "3", "--all"), cli(stack, "show", "intake", "99"),
        asyncio.to_thread(subprocess.run, [sys.executable, "-m", "minyi.cli", "dead-letters", "list"], cwd=ROOT,
                          env={**stack.env, "MINYI_NATS_URL": f"nats://127.0.0.1:{port}"}, timeout=60,
                          capture_output=True, text=True, check=False))
    assert unknown.returncode == 2 and "invalid choice: 'billing'" in unknown.stderr
    assert both.returncode == 2 and "name the dead letters by id, or pass --all (not both)" in both.stderr
    assert missing.returncode == 1 and "intake has no dead letter 99" in missing.stderr
    assert down.returncode == 1
    assert down.stderr.strip().splitlines() == [
        f"error: cannot reach NATS at nats://127.0.0.1:{port}: NoServersError: nats: no servers available for "
        "connection"]


async def test_the_ops_user_of_a_nats_with_users_may_list_show_and_discard(tmp_path: Path) -> None:
    """Where every service has a NATS user of its own, the commands connect as `ops`, which may read
    every dead letter and remove them (shared/nats_permissions.py)."""
    users = nats_permissions.users(nats_permissions.service_specs())
    passwords = {user: new_nats_password() for user in users}
    server = Nats(tmp_path / "js", free_port(), free_port(), tmp_path / "nats.log", tmp_path / "nats.conf",
                  authorization=nats_permissions.render(users),
                  environment={nats_password_variable(u): p for u, p in passwords.items()})
    server.start()
    try:
        # What intake's consumer does with an event it cannot handle, as the intake user.
        nc = await nats.connect(server.url, user="intake", password=passwords["intake"],
                                inbox_prefix=nats_inbox_prefix("intake"))
        try:
            js = nc.jetstream()
            await declare(js, dead_letter_stream("intake"), 1)
            body = dead_letter_body(consumer=CONSUMER, subject="identity.deputy.updated", stream="IDENTITY",
                                    stream_seq=7, deliveries=5, error="RuntimeError: down", headers={},
                                    raw=deputy_event("ev-ops", "D-OPS"))
            await js.publish("deadletter.intake.identity.deputy.updated", body, timeout=5)
        finally:
            await nc.close()
        env = {**os.environ, "MINYI_NATS_URL": server.url, "MINYI_NATS_USER": "ops",
               "MINYI_NATS_PASSWORD": passwords["ops"], "MINYI_HOME": str(tmp_path / "home")}

        async def run(*args: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "minyi.cli", "dead-letters", *args], env=env, cwd=ROOT,
                capture_output=True, text=True, timeout=120, check=False)

        listed, shown, anonymous = await asyncio.gather(
            run("list", "--json"), run("show", "intake", "1"),
            asyncio.to_thread(subprocess.run, [sys.executable, "-m", "minyi.cli", "dead-letters", "list"],
                              env={k: v for k, v in env.items() if k != "MINYI_NATS_USER"}, cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=False))
        assert anonymous.returncode == 1
        assert "refused the credentials" in anonymous.stderr and "MINYI_NATS_USER=ops" in anonymous.stderr
        assert listed.returncode == 0, listed.stderr
        assert [(d["service"], d["id"], d["event_id"]) for d in json.loads(listed.stdout)] == [("intake", 1, "ev-ops")]
        assert shown.returncode == 0 and "error:       RuntimeError: down" in shown.stdout, shown.stderr
        gone = await run("discard", "intake", "1")
        assert gone.returncode == 0, gone.stderr
        assert "intake 1: identity.deputy.updated ev-ops (intake-deputies) discarded" in gone.stdout
        left: list[str] = []
        ops = Settings(nats_url=server.url, nats_user="ops", nats_password=passwords["ops"])
        assert await dead_letters.run_list(ops, ["intake"], consumer_name=None, as_json=False, say=left.append) == 0
        assert left == ["0 dead letters (intake)"]
        assert not [line for line in (tmp_path / "nats.log").read_text().splitlines() if "Violation" in line]
    finally:
        server.stop()


async def _has_writes(stack: Stack, deputy_id: str, n: int) -> bool:
    return await stack.writes(deputy_id) == n


async def _copy_letter(stack: Stack, letter: dict[str, Any]) -> None:
    nc = await nats.connect(stack.nats_url)
    try:
        await nc.jetstream().publish(f"deadletter.intake.{letter['subject']}", json.dumps(letter).encode(),
                                     headers={"Nats-Msg-Id": "copy-of-a-letter"}, timeout=5)
    finally:
        await nc.close()

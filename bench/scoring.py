"""Deputies' points: a ranking over a large ledger, and how soon an event's points are visible.

    .venv/bin/python bench/scoring.py [--deputies 100000] [--entries 5000000] [--rate 1000] [--seconds 20]
                                      [--skip-rankings] [--skip-events]

Starts its own PostgreSQL and NATS (`identity_stack.stack()`), declares IDENTITY, INTAKE and
SUGGESTIONS empty (the streams the scoring service consumes: it says ready on /readyz only once
they exist), then the scoring service as `minyi serve scoring` runs it, which migrates its schema.
One service process serves both parts.

1. Rankings (target: ours ≤ 2 × the bare SQL aggregate on the same table, same run).
   --deputies deputies (level county, spread over 50 counties 350101 … 351005 of province 35) and
   --entries ledger entries are COPYed straight into `scoring.deputies` and `scoring.entries`, as
   the ledger would have written them: this year, points, part, dimension and label of the default
   rules (mostly reports acknowledged and answered, some suggestions, staff-recorded activities and
   awards), rule_region "" and rule_version 0, an event or activity as source, the entry id derived
   from source, rule and deputy (`domain.entry_id`); every deputy has at least one entry. The
   entries table's indexes are dropped for the COPY and built again afterwards from their own
   definitions (checked to be the same). `scoring.totals` is then computed from the entries with
   one INSERT … SELECT … GROUP BY (base_sum, bonus_sum, total = LEAST(100, GREATEST(0, base_sum)) +
   GREATEST(0, bonus_sum), dimensions), which is what the ledger keeps in step entry by entry; then
   VACUUM ANALYZE and a CHECKPOINT, so no load work runs during the measurements.
   * ours: `GET /v1/rankings?year=Y&region_code=35&level=county` over HTTP (keep-alive, httpx), no
     token (an anonymous caller; the service runs with a flood limit high enough not to count),
     timed from the request until the whole JSON body has arrived: the first page (500 rows).
     - cold: the call that ranks the province (the first one, and each one after the live
       ranking's TTL of `ranking_cache.LIVE_SECONDS` has run out: the benchmark waits it out
       between runs; `Minyi-Ranked-At` must change), 3 runs;
     - warm: the calls within the TTL, served from the ranking the cold one made (`Minyi-Ranked-At`
       must stay), 5 after each cold one.
     Every page is then read (1,000 rows at a time) and the whole must list every deputy, sorted by
     total descending, with ranks consistent (equal totals share a rank, and a rank is 1 + the
     number of strictly higher totals); otherwise the run fails.
     Also timed alone: the SQL that `rankings_store.live()` runs (compiled from `live_query()` with
     its binds inlined; a hand copy if that fails), fetched with asyncpg, so the split between
     SQL and Python/HTTP/JSON shows.
   * baseline: `SELECT deputy_id, SUM(points) AS total, RANK() OVER (ORDER BY SUM(points) DESC) FROM
     scoring.entries WHERE year = $1 GROUP BY deputy_id ORDER BY total DESC`, fetched with asyncpg,
     after each cold call. Medians. Ratio = ours / baseline (lower is better); the target is on the
     cold call.

2. Event to visible points (target: p99 < 1 s at 1,000 events/s).
   * ours: `intake.report.acknowledged` CloudEvents (on time, so rule report_ack_on_time gives each
     one entry of +0.5 base) published straight to JetStream (subject = the type, Nats-Msg-Id = the
     event id), open loop at --rate for --seconds, spread over 1,000 deputies (the first 1,000 of
     part 1, so their totals rows are there when part 1 ran). An event's send time is its scheduled
     time, before the publish call (the time to its PubAck is printed apart); it is visible when
     its entry is committed. Latency = the entry's `recorded_at` (PostgreSQL's now(), the start of
     the consumer's transaction) − the send time, both this machine's clock. Waits until every
     event's entry is there (found by the ids the ledger derives), checks that the deputies'
     base_sum grew by 0.5 per event, and waits until the service's outbox is published.
   * baseline, same run: the same number of rows INSERTed by this process, one row per statement
     (autocommit) on a pool of 8 connections, at the same rate and open loop, into a table of the
     same definition (`CREATE TABLE … (LIKE scoring.entries INCLUDING ALL)`, empty, whereas ours
     writes beside part 1's entries); recorded_at − scheduled time, the same way. The ratio shows
     what the bus, the consumer (inbox, rules), the totals upsert and the outbox cost.
   20 events and 20 rows are sent first to warm up and not counted. The CPU seconds the service
   (with children), PostgreSQL, NATS and this process used per event are printed.

Progress is printed every few seconds during every long wait. Exits 1 when something could not be
measured (not ready, a wrong ranking, events that never became points), with the last lines of
the logs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import psutil
import uvloop
from identity_stack import Service, Stack, stack, ticking, wait_growing
from intake_submit import declare_foreign_streams, outbox_drain, percentile, process
from sqlalchemy.dialects import postgresql

from minyi.servers import free_port, tail
from services.scoring import domain, rankings_store
from services.scoring.ranking_cache import LIVE_SECONDS
from shared.contracts import STREAMS
from shared.ids import uuid7

PROVINCE = "35"
COUNTIES = tuple(f"35{city:02d}{county:02d}" for city in range(1, 11) for county in range(1, 6))
LEVEL = "county"
CHUNK = 50_000
COLD_REPEATS = 3
WARM_REPEATS = 5
PAGE_ROWS = 1000
PROGRESS_EVERY = 5.0
POLL_EVERY = 0.5
# Nothing new visible for this long means something is stuck, however large the run.
STALL_SECONDS = 60.0
REQUEST_TIMEOUT = 600.0
RANKING_TARGET = 2.0
P99_TARGET = 1.0
BASELINE_CONNECTIONS = 8
EVENT_DEPUTIES = 1000
WARMUP_EVENTS = 20
EVENT_TYPE = "intake.report.acknowledged"
EVENT_RULE = "report_ack_on_time"
CONSUMER = "scoring-reports"  # handlers.REPORTS: the durable (and inbox consumer) of intake's events
# Sending this long after a scheduled time means the generator's own delay is in the latencies.
LATE_MS = 5.0
# The streams the service's subscriptions read (services/scoring/handlers.py).
CONSUMED = {"identity", "intake", "suggestions"}

ENTRY_COLUMNS = ("id", "deputy_id", "year", "at", "points", "part", "dimension", "rule_code", "rule_region",
                 "rule_version", "source", "source_id", "reason", "recorded_by", "evidence", "reverses",
                 "recorded_at")
DEPUTY_COLUMNS = ("id", "name", "level", "region_code", "version")
# How often each default rule gives an entry: mostly reports, then staff-recorded activities and suggestions.
MIX: tuple[tuple[str, float], ...] = (
    ("report_ack_on_time", 30), ("report_ack_late", 4), ("report_answer_on_time", 25), ("report_answer_late", 4),
    ("report_rated_5", 8), ("report_rated_1", 2), ("suggestion_cosigned", 8), ("suggestion_led", 3),
    ("suggestion_key", 0.5), ("hotspot_supervision", 0.5), ("reception_day", 6), ("inspection", 2), ("survey", 2),
    ("training", 3), ("session_attendance", 1), ("report_back", 0.5), ("award_county", 0.3), ("award_city", 0.2),
    ("award_province", 0.1), ("award_national", 0.05),
)
# The ledger's entries are recorded a moment after what gave them.
RECORD_DELAY = timedelta(seconds=2)

BARE_RANKING = ("SELECT deputy_id, SUM(points) AS total, RANK() OVER (ORDER BY SUM(points) DESC) FROM scoring.entries "
                "WHERE year = $1 GROUP BY deputy_id ORDER BY total DESC")
# rankings_store.live_query() written as SQL: the fallback when it cannot be compiled from the function itself.
OURS_RANKING_COPY = """
SELECT d.id, d.name, d.region_code, coalesce(t.total, 0) AS total,
       rank() OVER (ORDER BY coalesce(t.total, 0) DESC) AS rank
FROM scoring.deputies AS d LEFT OUTER JOIN scoring.totals AS t ON t.deputy_id = d.id AND t.year = {year}
WHERE d.region_code LIKE '{region}' || '%' AND d.level = '{level}'
ORDER BY coalesce(t.total, 0) DESC, d.id
"""
TOTALS_FROM_ENTRIES = """
INSERT INTO scoring.totals (deputy_id, year, base_sum, bonus_sum, total, dimensions)
SELECT deputy_id, year, base_sum, bonus_sum, LEAST(100, GREATEST(0, base_sum)) + GREATEST(0, bonus_sum), dimensions
FROM (SELECT deputy_id, year, COALESCE(SUM(base), 0) AS base_sum, COALESCE(SUM(bonus), 0) AS bonus_sum,
             jsonb_object_agg(dimension, points) AS dimensions
      FROM (SELECT deputy_id, year, dimension, SUM(points) FILTER (WHERE part = 'base') AS base,
                   SUM(points) FILTER (WHERE part = 'bonus') AS bonus, SUM(points) AS points
            FROM scoring.entries WHERE year = $1 GROUP BY deputy_id, year, dimension) AS per_dimension
      GROUP BY deputy_id, year) AS per_deputy
"""


class BenchFailed(RuntimeError):
    pass


@dataclass
class Servers:
    stack: Stack
    service: Service
    log: Path
    dsn: str

    @property
    def pids(self) -> dict[str, tuple[int, bool]]:
        """Processes whose CPU is counted: (pid, with its children)."""
        out = {"scoring": (self.service.process.pid, True), "load generator": (os.getpid(), False)}
        for label, child in (("postgres", self.stack.postgres.child), ("nats", self.stack.nats.child)):
            if child is not None and child.process is not None:
                out[label] = (child.process.pid, True)
        return out

    def failure(self, message: str) -> BenchFailed:
        parts = [message]
        for path, name in ((self.log, "scoring service"), (self.stack.postgres.log_path, "PostgreSQL"),
                           (self.stack.nats.log_path, "NATS")):
            parts.append(f"--- last lines of {path} ({name}) ---\n{tail(path, 30)}")
        return BenchFailed("\n".join(parts))


# ---------------------------------------------------------------------------------------- utilities


def ms(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def deputy_id(i: int) -> str:
    return f"bench-D{i:06d}"


def county_of(i: int) -> str:
    return COUNTIES[i % len(COUNTIES)]


def this_year() -> int:
    return domain.year_of(datetime.now(UTC))


def cpu_seconds(pids: dict[str, tuple[int, bool]]) -> dict[str, float]:
    """CPU seconds used so far by each process (with its children where asked); exited ones are not counted."""
    out: dict[str, float] = {}
    for label, (pid, with_children) in pids.items():
        total = 0.0
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in [root, *(root.children(recursive=True) if with_children else [])]:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
        out[label] = total
    return out


def still(label: str) -> Callable[[], Awaitable[str]]:
    async def note() -> str:
        return f"still {label}"

    return note


# ---------------------------------------------------------------------------------------- part 1: load


@dataclass(frozen=True)
class Template:
    """What every entry of one default rule has in common."""

    rule: domain.Rule
    points: Decimal
    recorded_by: str | None
    evidence: str | None  # JSON text: asyncpg's jsonb codec takes text


def templates() -> tuple[list[Template], list[float]]:
    by_code = {rule.code: rule for rule in domain.DEFAULT.rules}
    out: list[Template] = []
    for code, _weight in MIX:
        rule = by_code[code]
        activity = rule.on.startswith(domain.ACTIVITY_PREFIX)
        evidence = json.dumps({"sign_in_sheet": f"bench-{code}"}) if activity else None
        out.append(Template(rule, Decimal(str(rule.points)), "bench-staff" if activity else None, evidence))
    return out, list(itertools.accumulate(weight for _code, weight in MIX))


def entry_rows(start: int, stop: int, deputies: int, year: int, rng: random.Random, kinds: list[Template],
               cum_weights: list[float]) -> list[tuple[Any, ...]]:
    """Entries start … stop-1: the first `deputies` go one to each deputy, the rest to random ones."""
    year_start = datetime(year, 1, 1, tzinfo=domain.CHINA)
    span = max(60.0, (datetime.now(UTC) - year_start).total_seconds() - 60)
    rows: list[tuple[Any, ...]] = []
    picks = rng.choices(kinds, cum_weights=cum_weights, k=stop - start)
    for n, t in zip(range(start, stop), picks, strict=True):
        who = deputy_id(n if n < deputies else rng.randrange(deputies))
        at = year_start + timedelta(seconds=rng.random() * span)
        source_id = str(uuid7(int(at.timestamp() * 1000)))
        rows.append((domain.entry_id(source_id, t.rule.code, who), who, year, at, t.points, t.rule.part.value,
                     t.rule.dimension.value, t.rule.code, "", 0, t.rule.on, source_id, t.rule.label, t.recorded_by,
                     t.evidence, None, at + RECORD_DELAY))
    return rows


async def entries_indexes(conn: asyncpg.Connection) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The entries table's primary key and unique constraints, and its other indexes: (name, definition)."""
    constraints = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = 'scoring.entries'::regclass AND contype IN ('p', 'u') ORDER BY conname")
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'scoring' AND tablename = 'entries' "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'scoring.entries'::regclass) "
        "ORDER BY indexname")
    return [(r["conname"], r["def"]) for r in constraints], [(r["indexname"], r["indexdef"]) for r in indexes]


async def all_index_defs(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT indexdef FROM pg_indexes WHERE schemaname = 'scoring' AND tablename = 'entries' "
                            "ORDER BY indexname")
    return [r["indexdef"] for r in rows]


async def check_columns(servers: Servers, conn: asyncpg.Connection, table: str, wanted: tuple[str, ...]) -> None:
    rows = await conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_schema = 'scoring' "
                            "AND table_name = $1", table)
    have = {r["column_name"] for r in rows}
    if have != set(wanted):
        raise servers.failure(f"scoring.{table} has columns {sorted(have)}, this benchmark writes {sorted(wanted)}: "
                              "the schema changed; update ENTRY_COLUMNS / DEPUTY_COLUMNS in bench/scoring.py")


async def load(servers: Servers, conn: asyncpg.Connection, deputies: int, entries: int, year: int) -> float:
    """Deputies, entries and totals straight into the service's tables; returns the seconds it took."""
    t0 = time.perf_counter()
    await check_columns(servers, conn, "entries", ENTRY_COLUMNS)
    await check_columns(servers, conn, "deputies", DEPUTY_COLUMNS)
    present = int(await conn.fetchval("SELECT count(*) FROM scoring.entries"))
    if present:
        raise servers.failure(f"scoring.entries already holds {present} rows in a fresh database")
    await conn.execute("SET maintenance_work_mem = '512MB'")

    print(f"  {deputies:,} deputies (level {LEVEL}, {len(COUNTIES)} counties of {PROVINCE}) …", flush=True)
    for start in range(0, deputies, CHUNK):
        rows = [(deputy_id(i), f"代表{i}", LEVEL, county_of(i), 1) for i in range(start, min(deputies, start + CHUNK))]
        await conn.copy_records_to_table("deputies", schema_name="scoring", records=rows, columns=DEPUTY_COLUMNS)

    before = await all_index_defs(conn)
    constraints, indexes = await entries_indexes(conn)
    print(f"  dropping the entries table's indexes for the load ({', '.join(n for n, _ in constraints + indexes)}) "
          "…", flush=True)
    for name, _definition in constraints:
        await conn.execute(f'ALTER TABLE scoring.entries DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        await conn.execute(f'DROP INDEX scoring."{name}"')

    kinds, cum_weights = templates()
    rng = random.Random(7)
    print(f"  {entries:,} entries by COPY, {CHUNK:,} at a time …", flush=True)
    t_copy = time.perf_counter()
    next_note = t_copy + PROGRESS_EVERY
    for start in range(0, entries, CHUNK):
        stop = min(entries, start + CHUNK)
        rows = entry_rows(start, stop, deputies, year, rng, kinds, cum_weights)
        await conn.copy_records_to_table("entries", schema_name="scoring", records=rows, columns=ENTRY_COLUMNS)
        now = time.perf_counter()
        if now >= next_note or stop == entries:
            print(f"    … {stop:,}/{entries:,} entries after {now - t_copy:.0f} s "
                  f"({stop / (now - t_copy):,.0f} rows/s)", flush=True)
            next_note = now + PROGRESS_EVERY

    print("  building the indexes again …", flush=True)
    async with ticking(still("building the entries table's indexes")):
        for name, definition in constraints:
            await conn.execute(f'ALTER TABLE scoring.entries ADD CONSTRAINT "{name}" {definition}')
        for _name, definition in indexes:
            await conn.execute(definition)
    after = await all_index_defs(conn)
    if after != before:
        raise servers.failure(f"the entries table's indexes differ after the load:\nbefore {before}\nafter {after}")

    print("  totals from the entries (one INSERT … SELECT … GROUP BY) …", flush=True)
    async with ticking(still("computing scoring.totals")):
        await conn.execute(TOTALS_FROM_ENTRIES, year)
    print("  VACUUM ANALYZE and CHECKPOINT …", flush=True)
    async with ticking(still("vacuuming and analysing")):
        for table in ("deputies", "entries", "totals"):
            await conn.execute(f"VACUUM ANALYZE scoring.{table}")
        await conn.execute("CHECKPOINT")
    await conn.execute("RESET maintenance_work_mem")
    size = int(await conn.fetchval("SELECT pg_total_relation_size('scoring.entries')"))
    elapsed = time.perf_counter() - t0
    print(f"  loaded in {elapsed:.0f} s; scoring.entries with its indexes is {mib(size)}", flush=True)
    return elapsed


# ---------------------------------------------------------------------------------------- part 1: measure


async def ours_sql(year: int) -> tuple[str, str]:
    """The SQL `rankings_store.live()` runs for this year, province and level, and where it came from."""
    try:
        statement = rankings_store.live_query(year, PROVINCE, LEVEL)
        sql = str(statement.compile(dialect=postgresql.asyncpg.dialect(), compile_kwargs={"literal_binds": True}))
        return sql, "compiled from rankings_store.live_query()"
    except Exception as exc:  # the function changed shape: the hand copy still measures the same idea
        print(f"  could not compile rankings_store.live_query() ({type(exc).__name__}: {exc}); using the hand copy",
              flush=True)
        return OURS_RANKING_COPY.format(year=year, region=PROVINCE, level=LEVEL), "hand copy of live_query()"


def check_ranking(servers: Servers, ranked: list[dict[str, Any]], expected: int) -> None:
    """Every deputy, highest total first, ties sharing a rank of 1 + the number of strictly higher totals."""
    if len(ranked) != expected:
        raise servers.failure(f"GET /v1/rankings listed {len(ranked)} deputies in all its pages, not {expected}")
    previous_total, previous_rank = None, 0
    for i, row in enumerate(ranked):
        total, rank = row.get("total"), row.get("rank")
        if previous_total is not None and total > previous_total:
            raise servers.failure(f"GET /v1/rankings is not sorted by total: row {i} {row} after total "
                                  f"{previous_total}")
        wanted = previous_rank if total == previous_total else i + 1
        if rank != wanted:
            raise servers.failure(f"GET /v1/rankings: row {i} {row} has rank {rank}, should be {wanted} "
                                  f"(1 + the number of strictly higher totals)")
        previous_total, previous_rank = total, rank


@dataclass
class Rankings:
    deputies: int
    entries: int
    load_seconds: float
    cold: list[float]
    warm: list[float]
    ours_sql: list[float]
    bare: list[float]
    body_bytes: int
    bare_rows: int
    sql_source: str
    distinct_totals: int
    rss: int


async def get_json(servers: Servers, client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    t0 = time.perf_counter()
    resp = await client.get(path)
    elapsed = time.perf_counter() - t0
    if resp.status_code != 200:
        raise servers.failure(f"GET {path} answered {resp.status_code}: {resp.text[:500]}")
    try:
        resp.json()
    except ValueError as exc:
        raise servers.failure(f"GET {path} answered something that is not JSON ({exc}): {resp.content[:300]!r}") \
            from None
    return resp, elapsed


async def rankings_phase(servers: Servers, args: argparse.Namespace, year: int) -> Rankings:
    print(f"\n== part 1: rankings of {args.deputies:,} deputies from {args.entries:,} entries ==", flush=True)
    conn = await asyncpg.connect(servers.dsn)
    try:
        load_seconds = await load(servers, conn, args.deputies, args.entries, year)
        sql, sql_source = await ours_sql(year)
        print(f"  our ranking's SQL ({sql_source}):\n    {' '.join(sql.split())}", flush=True)
        path = f"/v1/rankings?year={year}&region_code={PROVINCE}&level={LEVEL}"
        times: dict[str, list[float]] = {"cold": [], "warm": [], "ours_sql": [], "bare": []}
        body = b""
        bare_rows = 0
        ours_rows: list[Any] = []
        made_at: set[str] = set()
        step = "starting"

        async def note() -> str:
            return f"{step}"

        async with httpx.AsyncClient(base_url=servers.service.url, timeout=REQUEST_TIMEOUT) as client, \
                ticking(note):
            for rep in range(1, COLD_REPEATS + 1):
                if rep > 1:
                    step = f"waiting out the live ranking's {LIVE_SECONDS:g} s before cold run {rep}"
                    await asyncio.sleep(LIVE_SECONDS + 1)
                step = f"cold run {rep}/{COLD_REPEATS}: GET {path}"
                resp, cold = await get_json(servers, client, path)
                ranked_at = resp.headers.get("minyi-ranked-at", "")
                if ranked_at in made_at:
                    raise servers.failure(f"cold run {rep} was answered from a ranking made before ({ranked_at})")
                made_at.add(ranked_at)
                body = resp.content
                warm: list[float] = []
                for n in range(WARM_REPEATS):
                    step = f"cold run {rep}: warm call {n + 1}/{WARM_REPEATS}"
                    again, elapsed = await get_json(servers, client, path)
                    if again.headers.get("minyi-ranked-at") != ranked_at:
                        raise servers.failure(f"warm call {n + 1} after cold run {rep} ranked again")
                    warm.append(elapsed)
                step = f"cold run {rep}: our ranking's SQL alone"
                t0 = time.perf_counter()
                ours_rows = await conn.fetch(sql)
                sql_time = time.perf_counter() - t0
                step = f"cold run {rep}: the bare aggregate"
                t0 = time.perf_counter()
                bare = await conn.fetch(BARE_RANKING, year)
                bare_time = time.perf_counter() - t0
                bare_rows = len(bare)
                print(f"  cold run {rep}: HTTP {ms(cold)} ({mib(len(body))}, first page); warm calls "
                      f"{', '.join(ms(t) for t in warm)}; our SQL alone {ms(sql_time)} ({len(ours_rows):,} rows), "
                      f"bare aggregate {ms(bare_time)} ({bare_rows:,} rows)", flush=True)
                times["cold"].append(cold)
                times["warm"] += warm
                times["ours_sql"].append(sql_time)
                times["bare"].append(bare_time)
            step = "reading every page"
            ranked: list[dict[str, Any]] = []
            while True:
                page, _ = await get_json(servers, client, f"{path}&limit={PAGE_ROWS}&offset={len(ranked)}")
                ranked += page.json()
                if len(page.json()) < PAGE_ROWS:
                    break
        check_ranking(servers, ranked, args.deputies)
        # The API's answer and its SQL must agree, row for row.
        if [(r["deputy_id"], r["rank"]) for r in ranked] != [(r["id"], r["rank"]) for r in ours_rows]:
            raise servers.failure("GET /v1/rankings and the SQL it is said to run list different deputies or ranks")
        if bare_rows != args.deputies:
            raise servers.failure(f"the bare aggregate found {bare_rows} deputies with entries, not {args.deputies}")
        print(f"  the pages list all {len(ranked):,} deputies, sorted, ranks consistent; "
              f"{len({r['total'] for r in ranked}):,} distinct totals", flush=True)
        return Rankings(args.deputies, args.entries, load_seconds, times["cold"], times["warm"], times["ours_sql"],
                        times["bare"], len(body), bare_rows, sql_source, len({r["total"] for r in ranked}),
                        servers.service.rss)
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------- part 2


@dataclass
class Sent:
    """An open-loop run: when each item was due to leave, when it was done (None: failed)."""

    scheduled: list[float]
    done: list[float | None]
    lateness: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return sum(1 for d in self.done if d is not None)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


async def open_loop(rate: float, count: int, send: Callable[[int, float], Awaitable[None]],
                    note: Callable[[], Awaitable[str]]) -> Sent:
    """Sends item n at t0 + n / rate whatever the earlier ones do; notes its wall time once done."""
    t0_perf, t0_wall = time.perf_counter() + 0.05, time.time() + 0.05
    sent = Sent([t0_wall + n / rate for n in range(count)], [None] * count)
    tasks: set[asyncio.Task[None]] = set()

    async def one(n: int) -> None:
        try:
            await send(n, sent.scheduled[n])
        except Exception as exc:  # counted, never fatal to the run
            kind = type(exc).__name__
            sent.errors[kind] += 1
            if len(sent.samples) < 5:
                sent.samples.append(f"{kind}: {str(exc)[:300]}")
            return
        sent.done[n] = time.time()

    async with ticking(note):
        for n in range(count):
            scheduled = t0_perf + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent.lateness.append(max(0.0, time.perf_counter() - scheduled))
            task = asyncio.create_task(one(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return sent


@dataclass
class Flow:
    label: str
    planned: int
    sent: Sent
    latencies: list[float]  # visible (recorded_at) − scheduled send
    last_visible_after: float  # the last recorded_at − the last scheduled send
    applied_rate: float  # rows made visible per second, from the first scheduled send to the last recorded_at
    cpu: dict[str, float]  # CPU seconds by process over the run, until everything was visible (and published)
    acks: list[float] = field(default_factory=list)  # scheduled send → PubAck (ours only)

    def q(self, q: float) -> float | None:
        return percentile(self.latencies, q) if self.latencies else None

    @property
    def publish_rate(self) -> float:
        done = [d for d in self.sent.done if d is not None]
        return len(done) / (max(done) - self.sent.scheduled[0]) if done else float("nan")


def event(event_id: str, n: int) -> tuple[bytes, str]:
    """An on-time acknowledgement of a report to deputy n % 1000, and that deputy's id."""
    i = n % EVENT_DEPUTIES
    who = deputy_id(i)
    body = {
        "specversion": "1.0", "id": event_id, "source": "/bench", "type": EVENT_TYPE,
        "time": datetime.now(UTC).isoformat(), "datacontenttype": "application/json",
        "data": {"report_id": str(uuid7()), "status": "acknowledged", "round": 1, "region_code": county_of(i),
                 "target": {"kind": "deputy", "id": who}, "deputy_id": who, "station_id": None,
                 "at": datetime.now(UTC).isoformat(), "on_time": True},
    }
    return json.dumps(body, ensure_ascii=False).encode(), who


def entry_of(event_id: str, who: str) -> str:
    """The id of the entry the ledger derives from an event, its rule and its deputy."""
    return domain.entry_id(event_id, EVENT_RULE, who)


async def visible(conn: asyncpg.Connection, prefix: str) -> int:
    """Events of this prefix the service has applied: its inbox row commits with the entry."""
    return int(await conn.fetchval("SELECT count(*) FROM scoring.inbox WHERE consumer = $1 AND event_id LIKE $2",
                                   CONSUMER, prefix + "%"))


async def dead_letters(nats_url: str) -> str:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info("DEADLETTER_SCORING")
        return f"{info.state.messages} messages in DEADLETTER_SCORING"
    except Exception as exc:
        return f"DEADLETTER_SCORING not readable ({type(exc).__name__}: {exc})"
    finally:
        await nc.close()


async def wait_visible(servers: Servers, conn: asyncpg.Connection, label: str, prefix: str, total: int) -> None:
    """Waits until `total` events of the prefix are applied; fails when that stops growing for STALL_SECONDS."""

    async def stalled(done: int, waited: float) -> Exception:
        return servers.failure(f"{label}: stuck at {done:,}/{total:,} events applied for {STALL_SECONDS:.0f} s "
                               f"({await dead_letters(servers.stack.nats.url)})")

    waited = await wait_growing(f"{label}, visible after the last send", total, lambda: visible(conn, prefix),
                                stall_seconds=STALL_SECONDS, stalled=stalled, poll=POLL_EVERY, every=PROGRESS_EVERY)
    if waited > 1:
        print(f"    {label}: all {total:,} visible after {waited:.1f} s more", flush=True)


async def base_sum(conn: asyncpg.Connection, year: int) -> Decimal:
    ids = [deputy_id(i) for i in range(EVENT_DEPUTIES)]
    value = await conn.fetchval("SELECT COALESCE(SUM(base_sum), 0) FROM scoring.totals "
                                "WHERE year = $1 AND deputy_id = ANY($2::varchar[])", year, ids)
    return Decimal(value)


async def ours_events(servers: Servers, conn: asyncpg.Connection, args: argparse.Namespace, year: int,
                      count: int, prefix: str, measured: bool) -> Flow:
    """`count` events to JetStream at the rate; waits until every one is an entry."""
    nc = await nats.connect(servers.stack.nats.url)
    js = nc.jetstream()
    deputies: list[str] = [""] * count
    acked: list[float] = []

    async def send(n: int, scheduled: float) -> None:
        event_id = f"{prefix}{n:08d}"
        body, deputies[n] = event(event_id, n)
        await js.publish(EVENT_TYPE, body, timeout=30.0, headers={"Nats-Msg-Id": event_id})
        acked.append(time.time() - scheduled)

    async def note() -> str:
        return f"{len(acked):,}/{count:,} published, {await visible(progress, prefix):,} visible"

    progress = await asyncpg.connect(servers.dsn)
    cpu0 = cpu_seconds(servers.pids)
    before = await base_sum(conn, year)
    try:
        label = "ours" if measured else "ours, warm-up"
        print(f"  {label}: {count:,} × {EVENT_TYPE} to JetStream at {args.rate:g}/s …", flush=True)
        sent = await open_loop(args.rate, count, send, note)
    finally:
        await progress.close()
        await nc.close()
    if sent.failed:
        print(f"    {sent.failed} publishes failed: {', '.join(sent.samples)}", flush=True)
    await wait_visible(servers, conn, label, prefix, sent.ok)
    ids = {entry_of(f"{prefix}{n:08d}", deputies[n]): n for n in range(count) if sent.done[n] is not None}
    rows = await conn.fetch("SELECT id, source_id, rule_code, points, recorded_at FROM scoring.entries "
                            "WHERE id = ANY($1::varchar[])", list(ids))
    if len(rows) != len(ids):
        raise servers.failure(f"{label}: {len(ids) - len(rows)} of {len(ids)} applied events have no entry")
    wrong = [dict(r) for r in rows if r["rule_code"] != EVENT_RULE or r["points"] != Decimal("0.5")]
    if wrong:
        raise servers.failure(f"{label}: entries not of rule {EVENT_RULE} (+0.5): {wrong[:3]}")
    gained = await base_sum(conn, year) - before
    if gained != Decimal("0.5") * len(ids):
        raise servers.failure(f"{label}: the deputies' base_sum grew by {gained}, not 0.5 × {len(ids)}")
    if measured:
        await outbox_drain(servers.dsn, "scoring")()
    cpu1 = cpu_seconds(servers.pids)
    latencies = [r["recorded_at"].timestamp() - sent.scheduled[ids[r["id"]]] for r in rows]
    last = max(r["recorded_at"].timestamp() for r in rows)
    flow = Flow("ours", count, sent, latencies, last - sent.scheduled[-1], len(rows) / (last - sent.scheduled[0]),
                {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}, acked)
    if measured:
        print(f"    PubAck after p50 {ms(percentile(acked, 0.5))}, p99 {ms(percentile(acked, 0.99))} from the "
              f"scheduled send; visible p50 {ms(flow.q(0.5))}, p99 {ms(flow.q(0.99))}", flush=True)
    return flow


async def bare_inserts(servers: Servers, pool: asyncpg.Pool, args: argparse.Namespace, year: int, count: int,
                       prefix: str, measured: bool) -> Flow:
    """The same number of entry rows INSERTed one by one on 8 connections, same rate, open loop."""
    rule = next(r for r in domain.DEFAULT.rules if r.code == EVENT_RULE)
    statement = (f"INSERT INTO bench_baseline.entries ({', '.join(ENTRY_COLUMNS[:13])}) "
                 f"VALUES ({', '.join(f'${i}' for i in range(1, 14))})")
    points = Decimal(str(rule.points))

    async def send(n: int, scheduled: float) -> None:
        event_id = f"{prefix}{n:08d}"
        who = deputy_id(n % EVENT_DEPUTIES)
        at = datetime.now(UTC)
        async with pool.acquire() as conn:
            await conn.execute(statement, entry_of(event_id, who), who, year, at, points, rule.part.value,
                               rule.dimension.value, rule.code, "", 0, EVENT_TYPE, event_id, rule.label)

    async def note() -> str:
        async with pool.acquire() as conn:
            done = await conn.fetchval("SELECT count(*) FROM bench_baseline.entries WHERE source_id LIKE $1",
                                       prefix + "%")
        return f"{done:,}/{count:,} inserted"

    label = "baseline" if measured else "baseline, warm-up"
    print(f"  {label}: {count:,} single-row INSERTs on {BASELINE_CONNECTIONS} connections at {args.rate:g}/s …",
          flush=True)
    cpu0 = cpu_seconds(servers.pids)
    sent = await open_loop(args.rate, count, send, note)
    cpu1 = cpu_seconds(servers.pids)
    if sent.failed:
        print(f"    {sent.failed} inserts failed: {', '.join(sent.samples)}", flush=True)
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT source_id, recorded_at FROM bench_baseline.entries WHERE source_id LIKE $1",
                                prefix + "%")
    if not rows:
        raise servers.failure(f"{label}: no row was inserted ({', '.join(sent.samples)})")
    index = {f"{prefix}{n:08d}": n for n in range(count)}
    latencies = [r["recorded_at"].timestamp() - sent.scheduled[index[r["source_id"]]] for r in rows]
    last = max(r["recorded_at"].timestamp() for r in rows)
    flow = Flow("baseline", count, sent, latencies, last - sent.scheduled[-1],
                len(rows) / (last - sent.scheduled[0]), {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1})
    if measured:
        print(f"    visible p50 {ms(flow.q(0.5))}, p99 {ms(flow.q(0.99))}", flush=True)
    return flow


async def events_phase(servers: Servers, args: argparse.Namespace, year: int) -> tuple[Flow, Flow]:
    count = int(args.rate * args.seconds)
    run_id = uuid.uuid4().hex[:8]
    print(f"\n== part 2: event to visible points, {count:,} events at {args.rate:g}/s over {EVENT_DEPUTIES:,} "
          "deputies ==", flush=True)
    conn = await asyncpg.connect(servers.dsn)
    try:
        await conn.execute("CREATE SCHEMA IF NOT EXISTS bench_baseline")
        await conn.execute("CREATE TABLE bench_baseline.entries (LIKE scoring.entries INCLUDING ALL)")
        pool = await asyncpg.create_pool(servers.dsn, min_size=BASELINE_CONNECTIONS, max_size=BASELINE_CONNECTIONS)
        try:
            await bare_inserts(servers, pool, args, year, WARMUP_EVENTS, f"bench-bw-{run_id}-", measured=False)
            bare = await bare_inserts(servers, pool, args, year, count, f"bench-b-{run_id}-", measured=True)
        finally:
            await pool.close()
        await ours_events(servers, conn, args, year, WARMUP_EVENTS, f"bench-ew-{run_id}-", measured=False)
        ours = await ours_events(servers, conn, args, year, count, f"bench-e-{run_id}-", measured=True)
        await conn.execute("DROP SCHEMA bench_baseline CASCADE")
        return ours, bare
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------- report


def verdict(met: bool) -> str:
    return "met" if met else "not met"


def ratio(ours: float | None, base: float | None) -> str:
    if ours is None or not base:
        return "-"
    return f"{ours / base:.2f}" if ours / base < 100 else f"{ours / base:,.0f}"


def report(rankings: Rankings | None, flows: tuple[Flow, Flow] | None, args: argparse.Namespace) -> None:
    print()
    print("| measure | ours | baseline | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    if rankings:
        cold, warm, sql, bare = (statistics.median(v) for v in (rankings.cold, rankings.warm, rankings.ours_sql,
                                                                rankings.bare))
        r = cold / bare
        print(f"| anonymous ranking of {rankings.deputies:,} deputies from {rankings.entries:,} entries, cold (ranks "
              f"the province), median of {len(rankings.cold)} | {ms(cold)}: GET /v1/rankings, first page "
              f"{rankings.body_bytes / 1024:.0f} KiB (its SQL alone {ms(sql)}) | {ms(bare)}: bare SUM … RANK() "
              f"over the entries | {r:.2f} | ≤ {RANKING_TARGET:g} ({verdict(r <= RANKING_TARGET)}) |")
        print(f"| the same, warm (within {LIVE_SECONDS:g} s of the cold one), median of {len(rankings.warm)} | "
              f"{ms(warm)} | {ms(bare)} | {warm / bare:.3f} | - |")
    if flows:
        ours, bare = flows
        lost = ours.sent.failed + (ours.planned - ours.sent.ok - ours.sent.failed)
        rate = f"{args.rate:g}/s"
        for q, name in ((0.5, "p50"), (0.99, "p99"), (1.0, "max")):
            target = "-"
            if q == 0.99:
                p99 = ours.q(0.99)
                target = f"< {P99_TARGET:g} s ({verdict(p99 is not None and p99 < P99_TARGET and not lost)})"
            print(f"| event → visible points at {rate}, {name} ({ours.sent.ok:,} events) | {ms(ours.q(q))} | "
                  f"{ms(bare.q(q))} (bare INSERT, {BASELINE_CONNECTIONS} connections) | "
                  f"{ratio(ours.q(q), bare.q(q))} | {target} |")
        print(f"| last visible after the last send | {ms(ours.last_visible_after)} | {ms(bare.last_visible_after)} "
              f"| - | - |")
    print()
    if rankings:
        print(f"rankings: load {rankings.load_seconds:.0f} s; {rankings.distinct_totals:,} distinct totals; our SQL "
              f"{rankings.sql_source}; cold HTTP runs {', '.join(ms(t) for t in rankings.cold)}; warm "
              f"{', '.join(ms(t) for t in rankings.warm)}; our SQL "
              f"{', '.join(ms(t) for t in rankings.ours_sql)}; bare {', '.join(ms(t) for t in rankings.bare)}; "
              f"scoring service RSS {mib(rankings.rss)} after")
    if flows:
        ours, bare = flows
        print(f"events: published {ours.sent.ok:,} of {ours.planned:,} at {ours.publish_rate:,.0f}/s achieved "
              f"(PubAck p50 {ms(percentile(ours.acks, 0.5) if ours.acks else None)}, p99 "
              f"{ms(percentile(ours.acks, 0.99) if ours.acks else None)} after the scheduled send); "
              f"applied (visible) at {ours.applied_rate:,.0f}/s from the first send to the last entry; baseline "
              f"inserted {bare.sent.ok:,} at {bare.applied_rate:,.0f}/s")
        for flow in flows:
            per = ", ".join(f"{k} {v / max(1, flow.sent.ok) * 1000:.2f} ms" for k, v in
                            sorted(flow.cpu.items(), key=lambda kv: -kv[1]) if v > 0)
            print(f"CPU per event, {flow.label}: {per}")
            late = percentile(flow.sent.lateness, 0.99) * 1000 if flow.sent.lateness else 0.0
            if late > LATE_MS:
                print(f"note: the generator sent 1 % of {flow.label}'s items ≥ {late:.1f} ms late (its event loop "
                      "was held up); those delays are in the latencies")
            if flow.sent.failed:
                kinds = ", ".join(f"{k} × {n}" for k, n in flow.sent.errors.most_common())
                print(f"errors of {flow.label}: {kinds}; e.g. {flow.sent.samples[0]}")


# ---------------------------------------------------------------------------------------- main


def service_env(s: Stack, port: int) -> dict[str, str]:
    # Stack.env is identity's; the scoring service needs its own port.
    env = {k: v for k, v in s.env(port).items() if k != "MINYI_IDENTITY_PORT"}
    # The benchmark is one anonymous caller asking again and again: it measures cost, not flood control.
    return {**env, "MINYI_SCORING_PORT": str(port), "MINYI_LOOKUP_LIMIT": "1000000/minute"}


async def measure(servers: Servers, args: argparse.Namespace) -> tuple[Rankings | None, tuple[Flow, Flow] | None]:
    year = this_year()
    rankings = None if args.skip_rankings else await rankings_phase(servers, args, year)
    flows = None if args.skip_events else await events_phase(servers, args, year)
    return rankings, flows


def run(args: argparse.Namespace) -> int:
    with stack() as s, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(declare_foreign_streams(s.nats.url, set(STREAMS) - CONSUMED))
        port = free_port()
        argv = [sys.executable, "-m", "minyi.cli", "serve", "scoring"]
        with process("scoring", argv, service_env(s, port), port, s.root) as svc:
            servers = Servers(s, svc, s.root / f"scoring-{port}.log",
                              s.postgres.url.replace("postgresql+asyncpg", "postgresql"))
            try:
                rankings, flows = runner.run(measure(servers, args))
            except BenchFailed as exc:
                print(f"\nFAILED: {exc}", flush=True)
                print(f"(logs are in {s.root}, removed when this run ends)", flush=True)
                return 1
    report(rankings, flows, args)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deputies", type=int, default=100_000, help="deputies ranked (default 100000)")
    parser.add_argument("--entries", type=int, default=5_000_000, help="ledger entries loaded (default 5000000)")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="events (and baseline rows) per second (default 1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long events are sent (default 20)")
    parser.add_argument("--skip-rankings", action="store_true", help="leave out part 1")
    parser.add_argument("--skip-events", action="store_true", help="leave out part 2")
    args = parser.parse_args()
    if args.deputies <= 0 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--deputies, --rate and --seconds must be positive")
    if args.entries < args.deputies:
        parser.error("--entries must be at least --deputies (every deputy gets an entry)")
    if args.skip_rankings and args.skip_events:
        parser.error("nothing to measure with both --skip-rankings and --skip-events")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

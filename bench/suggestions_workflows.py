"""Suggestion workflows on one Temporal dev server: how fast they start, and what 10,000 open ones cost.

    .venv/bin/python bench/suggestions_workflows.py [--starts 2000] [--concurrency 32] [--open 10000]

Starts its own PostgreSQL and NATS (`identity_stack.stack()`), a Temporal dev server (`temporal
server start-dev` on SQLite, as `minyi.servers.Temporal` runs it for the embedded stack) and the
suggestions service as `minyi serve suggestions` runs it; the service is the only worker of the
`suggestions` task queue. IDENTITY and ROUTING, whose events the service consumes, are declared
empty first, since it says ready only once the streams it reads exist.

Every suggestion is started straight on Temporal by this process, the way the service's
`POST /v1/suggestions` starts it (`Suggestion` workflow, `Start(suggestion)`, id
`suggestion-<id>`), for a deputy of county 340811 in this year's list, with the default outcome
scheme. Its first step (the workflow's first task, then the record activity committing the
projection row, the timeline entry and the outbox row) is what counts: a suggestion is "recorded"
once its row is in `suggestions.suggestions`.

1. Starts per second. Baseline, same run, same Temporal server: a trivial workflow (`BenchTrivial`,
   returns at once), served by a worker inside this process on its own task queue, which runs only
   during this phase, in the sandbox like the service's (the workflow is alone in
   bench/trivial_workflow.py, so the sandbox imports nothing else). --starts of them are started,
   --concurrency start calls at a time, and waited for until all completed. Ours: --starts
   suggestions, started the same way, waited for until all are recorded. Rate = count / (last
   completed or recorded − first start call); per workflow, latency from its start call to its
   completion (Temporal's close time) or to its projection row (the row's `updated_at`, i.e. the
   start of the recording transaction). All clocks are this machine's. A few of each are run first
   to warm up (sandbox, imports, connections) and are not counted.
2. Open suggestions. --open more suggestions, started the same way and waited for until all are
   recorded; then the RSS (with children) of the service and of the Temporal server before and
   after, the size of Temporal's SQLite database, the number of running `Suggestion` workflows
   according to Temporal, and the `state` query on 20 random ones of them, which must all answer
   `submitted` (most are no longer in the worker's cache, so the query replays their history).

Target: starts/s of suggestions ≥ 0.5 × those of the trivial workflow. The open suggestions have
no baseline: they must all be recorded and alive, and the memory is reported. Exits 1 when
something could not be measured (a stall, a wrong state), with the last lines of the logs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil
from identity_stack import Stack, stack, ticking, wait_growing
from intake_submit import declare_foreign_streams, percentile, process
from temporalio.client import Client
from temporalio.worker import Worker
from trivial_workflow import TrivialWorkflow

from minyi.servers import Temporal, free_port, tail
from services.suggestions import domain, lifecycle
from services.suggestions.lifecycle import Start
from services.suggestions.workflows import TASK_QUEUE, SuggestionWorkflow, workflow_id
from shared.contracts import STREAMS
from shared.settings import get_settings
from shared.temporal_data import DATA_CONVERTER

TRIVIAL_QUEUE = "bench-trivial"
COUNTY = "340811"
DEPUTY = "bench-D1"
CONTENT = "建议加快实施老旧小区改造，加装电梯并完善无障碍设施，方便老年人出行。"
WARMUP = 10
QUERIED = 20
PROGRESS_EVERY = 5.0
POLL_EVERY = 0.5
# Nothing new recorded (or completed) for this long means something is stuck, however large the run.
STALL_SECONDS = 120.0
RATIO_TARGET = 0.5
# The streams the service's subscriptions read (services/suggestions/handlers.py).
CONSUMED = {"identity", "routing"}


class BenchFailed(RuntimeError):
    pass


@dataclass
class Servers:
    stack: Stack
    temporal: Temporal
    service: psutil.Process
    service_log: Path
    dsn: str

    def failure(self, message: str) -> BenchFailed:
        logs = [(self.service_log, "suggestions service"), (self.temporal.log_path, "Temporal dev server")]
        parts = [message]
        for path, name in logs:
            parts.append(f"--- last lines of {path} ({name}) ---\n{tail(path, 30)}")
        return BenchFailed("\n".join(parts))


@dataclass
class Phase:
    label: str
    count: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")

    def latency(self, q: float) -> float | None:
        return percentile(self.latencies, q) if self.latencies else None


@dataclass
class Memory:
    service: int
    temporal: int
    db_bytes: int


# ---------------------------------------------------------------------------------------- helpers


def rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its children, in bytes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def db_size(db_file: Path) -> int:
    """Temporal's SQLite database with its write-ahead log."""
    return sum(p.stat().st_size for p in (db_file, db_file.with_name(db_file.name + "-wal")) if p.exists())


def memory(servers: Servers) -> Memory:
    child = servers.temporal.child
    temporal = rss(psutil.Process(child.process.pid)) if child and child.process else 0
    return Memory(rss(servers.service), temporal, db_size(servers.temporal.db_file))


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def suggestion(sid: str, year: int) -> lifecycle.Suggestion:
    """A suggestion as `api.create` builds it for a deputy of the county, default outcome scheme, no repeat."""
    settings = get_settings()
    return lifecycle.Suggestion(
        id=sid, title=f"关于老旧小区加装电梯的建议 {sid}", content=CONTENT, lead_deputy_id=DEPUTY, co_signer_ids=[],
        region_code=COUNTY, year=year, kind="session", micro=False, outcomes=list(domain.DEFAULT_OUTCOMES),
        term_first_year=settings.term_first_year, term_number=settings.term_number,
        submitted_at=datetime.now(UTC), submitted_by="bench-staff")


async def start_all(ids: list[str], concurrency: int, start_one: Callable[[str], Awaitable[None]],
                    sent: dict[str, float]) -> None:
    """Starts one workflow per id, `concurrency` start calls at a time; notes in `sent` when each call left."""
    pending: Iterator[str] = iter(ids)

    async def worker() -> None:
        for wid in pending:
            sent[wid] = time.time()
            await start_one(wid)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def wait_for(servers: Servers, label: str, total: int, count: Callable[[], Awaitable[int]]) -> None:
    """Waits until `count()` reaches `total`; fails when it stops growing for STALL_SECONDS."""

    async def stalled(done: int, waited: float) -> Exception:
        return servers.failure(f"{label}: stuck at {done}/{total} for {STALL_SECONDS:.0f} s "
                               f"({waited:.0f} s after the last start call)")

    await wait_growing(label, total, count, stall_seconds=STALL_SECONDS, stalled=stalled, poll=POLL_EVERY,
                       every=PROGRESS_EVERY)


# ---------------------------------------------------------------------------------------- phases


async def recorded_count(conn: asyncpg.Connection, prefix: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM suggestions.suggestions WHERE id LIKE $1", prefix + "%"))


async def suggestions_phase(servers: Servers, client: Client, conn: asyncpg.Connection, label: str, prefix: str,
                            n: int, concurrency: int) -> Phase:
    """Starts n suggestion workflows and waits until each has recorded its first step."""
    year = domain.china_date(datetime.now(UTC)).year
    ids = [f"{prefix}{i:06d}" for i in range(n)]

    async def start_one(sid: str) -> None:
        await client.start_workflow(SuggestionWorkflow.run, Start(suggestion(sid, year)), id=workflow_id(sid),
                                    task_queue=TASK_QUEUE)

    async def note() -> str:
        return f"{label}: {len(sent)}/{n} started, {await recorded_count(conn, prefix)} recorded"

    sent: dict[str, float] = {}
    async with ticking(note):
        await start_all(ids, concurrency, start_one, sent)
    await wait_for(servers, f"{label}, recorded", n, lambda: recorded_count(conn, prefix))
    rows = await conn.fetch("SELECT id, updated_at FROM suggestions.suggestions WHERE id LIKE $1", prefix + "%")
    done = {r["id"]: r["updated_at"].timestamp() for r in rows}
    latencies = [done[sid] - sent[sid] for sid in ids]
    return Phase(label, n, max(done.values()) - min(sent.values()), latencies)


async def trivial_phase(servers: Servers, client: Client, label: str, prefix: str, n: int,
                        concurrency: int) -> Phase:
    """Starts n trivial workflows, served by a worker in this process, and waits until all completed."""
    ids = [f"{prefix}{i:06d}" for i in range(n)]
    query = f'WorkflowType="BenchTrivial" AND ExecutionStatus="Completed" AND WorkflowId STARTS_WITH "{prefix}"'

    async def start_one(wid: str) -> None:
        await client.start_workflow(TrivialWorkflow.run, id=wid, task_queue=TRIVIAL_QUEUE)

    async def completed() -> int:
        return (await client.count_workflows(query)).count

    async def note() -> str:
        return f"{label}: {len(sent)}/{n} started, {await completed()} completed"

    sent: dict[str, float] = {}
    async with Worker(client, task_queue=TRIVIAL_QUEUE, workflows=[TrivialWorkflow]):
        async with ticking(note):
            await start_all(ids, concurrency, start_one, sent)
        await wait_for(servers, f"{label}, completed", n, completed)
    done: dict[str, float] = {}
    async for execution in client.list_workflows(query):
        if execution.close_time is not None:
            done[execution.id] = execution.close_time.timestamp()
    missing = set(ids) - set(done)
    if missing:
        raise servers.failure(f"{label}: Temporal lists no close time for {len(missing)} of {n}, "
                              f"e.g. {sorted(missing)[:3]}")
    latencies = [done[wid] - sent[wid] for wid in ids]
    return Phase(label, n, max(done.values()) - min(sent.values()), latencies)


async def running_suggestions(client: Client) -> tuple[int, str]:
    """How many Suggestion workflows Temporal holds as running, and how it was found out."""
    query = 'WorkflowType="Suggestion" AND ExecutionStatus="Running"'
    try:
        return (await client.count_workflows(query)).count, "count_workflows"
    except Exception as exc:  # older visibility stores cannot count; listing always works
        print(f"  count_workflows failed ({type(exc).__name__}: {exc}); listing instead …", flush=True)
        n = 0
        async for _execution in client.list_workflows(query):
            n += 1
        return n, "list_workflows"


async def query_states(servers: Servers, client: Client, ids: list[str]) -> list[float]:
    """The `state` query on each id; every one must answer `submitted`. Returns the query times."""
    times: list[float] = []
    for sid in ids:
        t0 = time.perf_counter()
        state = await client.get_workflow_handle(workflow_id(sid)).query("state")
        times.append(time.perf_counter() - t0)
        status = state.get("status") if isinstance(state, dict) else None
        if status != "submitted":
            raise servers.failure(f"suggestion {sid}: the state query answered status {status!r}, not 'submitted' "
                                  f"({str(state)[:300]})")
    return times


# ---------------------------------------------------------------------------------------- report


@dataclass
class Results:
    trivial: Phase
    ours: Phase
    opened: Phase
    at_ready: Memory
    before: Memory
    after: Memory
    running: int
    expected_running: int
    counted_by: str
    queries: list[float]


def report(r: Results, args: argparse.Namespace) -> None:
    ratio = r.ours.rate / r.trivial.rate if r.trivial.rate else float("nan")
    verdict = "met" if ratio >= RATIO_TARGET else "not met"
    per_open = (r.after.service - r.before.service) / max(1, r.opened.count)
    p50_q = percentile(r.queries, 0.5) if r.queries else None
    print()
    print("| measure | ours (suggestions) | baseline (trivial workflow) | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| starts/s, {args.starts} workflows, {args.concurrency} start calls at a time | "
          f"{r.ours.rate:.1f}/s (start → first step recorded) | {r.trivial.rate:.1f}/s (start → completed) | "
          f"{ratio:.2f} | ≥ {RATIO_TARGET} ({verdict}) |")
    for q in (0.5, 0.99):
        mine, base = r.ours.latency(q), r.trivial.latency(q)
        rel = f"{mine / base:.1f}×" if mine is not None and base else "-"
        print(f"| p{q * 100:.0f} per workflow | {ms(mine)} | {ms(base)} | {rel} | - |")
    print(f"| {r.opened.count} more suggestions started and recorded | {r.opened.seconds:.1f} s "
          f"({r.opened.rate:.1f}/s) | - | - | all recorded (met) |")
    print(f"| running `Suggestion` workflows ({r.counted_by}) | {r.running} | {r.expected_running} started | - | "
          f"{'met' if r.running == r.expected_running else 'not met'} |")
    print(f"| suggestions service RSS (with children) | {mib(r.before.service)} → {mib(r.after.service)} "
          f"({per_open / 1024:+.1f} KiB per open suggestion; {mib(r.at_ready.service)} when ready) | - | - | - |")
    print(f"| Temporal dev server RSS | {mib(r.before.temporal)} → {mib(r.after.temporal)} "
          f"({mib(r.at_ready.temporal)} when ready) | - | - | - |")
    print(f"| Temporal SQLite database (with WAL) | {mib(r.before.db_bytes)} → {mib(r.after.db_bytes)} | - | - | - |")
    print(f"| `state` query, {len(r.queries)} random open suggestions | p50 {ms(p50_q)}, max "
          f"{ms(max(r.queries) if r.queries else None)}, all `submitted` | - | - | all alive (met) |")
    print()
    print(f"ours/trivial starts per second: {ratio:.2f} (target ≥ {RATIO_TARGET}): {verdict}")


# ---------------------------------------------------------------------------------------- main


def service_env(s: Stack, port: int, temporal: Temporal) -> dict[str, str]:
    # Stack.env is identity's; the suggestions service needs its own port and Temporal.
    env = {k: v for k, v in s.env(port).items() if k != "MINYI_IDENTITY_PORT"}
    return {**env, "MINYI_SUGGESTIONS_PORT": str(port), "MINYI_TEMPORAL_ADDRESS": temporal.address}


async def measure(servers: Servers, args: argparse.Namespace, at_ready: Memory) -> Results:
    client = await Client.connect(servers.temporal.address, data_converter=DATA_CONVERTER)
    conn = await asyncpg.connect(servers.dsn)
    try:
        warm = min(WARMUP, args.starts)
        print(f"\nwarm-up: {warm} trivial workflows and {warm} suggestions (not counted) …", flush=True)
        await trivial_phase(servers, client, "warm-up trivial", "bench-tw-", warm, args.concurrency)
        await suggestions_phase(servers, client, conn, "warm-up suggestions", "bench-w-", warm, args.concurrency)

        print(f"\n== baseline: {args.starts} trivial workflows, worker in this process ==", flush=True)
        trivial = await trivial_phase(servers, client, "trivial", "bench-t-", args.starts, args.concurrency)
        print(f"  {trivial.rate:.1f} workflows/s; p50 {ms(trivial.latency(0.5))}, "
              f"p99 {ms(trivial.latency(0.99))} from start call to completed", flush=True)

        print(f"\n== ours: {args.starts} suggestion workflows, worker in the suggestions service ==", flush=True)
        ours = await suggestions_phase(servers, client, conn, "suggestions", "bench-s-", args.starts,
                                       args.concurrency)
        print(f"  {ours.rate:.1f} suggestions/s; p50 {ms(ours.latency(0.5))}, p99 {ms(ours.latency(0.99))} "
              "from start call to recorded", flush=True)

        print(f"\n== {args.open} open suggestions ==", flush=True)
        before = memory(servers)
        print(f"  before: service {mib(before.service)}, Temporal {mib(before.temporal)}, "
              f"database {mib(before.db_bytes)}", flush=True)
        opened = await suggestions_phase(servers, client, conn, "open", "bench-o-", args.open, args.concurrency)
        after = memory(servers)
        print(f"  {args.open} recorded in {opened.seconds:.1f} s; after: service {mib(after.service)}, "
              f"Temporal {mib(after.temporal)}, database {mib(after.db_bytes)}", flush=True)
        running, counted_by = await running_suggestions(client)
        print(f"  Temporal holds {running} running Suggestion workflows", flush=True)
        sample = random.sample([f"bench-o-{i:06d}" for i in range(args.open)], min(QUERIED, args.open))
        print(f"  querying the state of {len(sample)} random open suggestions …", flush=True)
        queries = await query_states(servers, client, sample)
        return Results(trivial, ours, opened, at_ready, before, after, running, warm + args.starts + args.open,
                       counted_by, queries)
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> int:
    with stack() as s:
        temporal = Temporal(db_file=s.root / "temporal.db", port=free_port(), ui_port=free_port(),
                            log_path=s.root / "temporal.log")
        print("starting the Temporal dev server …", flush=True)
        try:
            temporal.start(progress=print)
            asyncio.run(declare_foreign_streams(s.nats.url, set(STREAMS) - CONSUMED))
            port = free_port()
            argv = [sys.executable, "-m", "minyi.cli", "serve", "suggestions"]
            with process("suggestions", argv, service_env(s, port, temporal), port, s.root) as svc:
                servers = Servers(s, temporal, psutil.Process(svc.process.pid), s.root / f"suggestions-{port}.log",
                                  s.postgres.url.replace("postgresql+asyncpg", "postgresql"))
                at_ready = memory(servers)
                try:
                    results = asyncio.run(measure(servers, args, at_ready))
                except BenchFailed as exc:
                    print(f"\nFAILED: {exc}", flush=True)
                    print(f"(logs are in {s.root}, removed when this run ends)", flush=True)
                    return 1
        except BaseException:
            print(f"\nthe run broke off; last lines of {temporal.log_path}:\n{tail(temporal.log_path, 20)}",
                  flush=True)
            raise
        finally:
            print("stopping the Temporal dev server …", flush=True)
            temporal.stop()
    report(results, args)
    return 0 if results.running == results.expected_running else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=2000,
                        help="workflows started for the rate, of each kind (default 2000)")
    parser.add_argument("--concurrency", type=int, default=32, help="start calls in flight at a time (default 32)")
    parser.add_argument("--open", type=int, default=10_000,
                        help="suggestions left open on the server for the memory figures (default 10000)")
    args = parser.parse_args()
    if args.starts <= 0 or args.concurrency <= 0 or args.open <= 0:
        parser.error("--starts, --concurrency and --open must be positive")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

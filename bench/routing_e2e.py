"""Reports end to end: submitted to intake → ticket received by the grid platform simulator.

    .venv/bin/python bench/routing_e2e.py [--seconds 60] [--rate 100] [--outage-seconds 600] [--outage-rate 5]
                                          [--callbacks] [--no-meaning]

Starts its own PostgreSQL and NATS, then identity, intake and routing as `minyi serve` runs them,
and the grid platform simulator (deploy/gridsim) registered as the platform of region 320923.
Every report is `{"channel": "miniprogram", "code": <D1's code>, "content": "小区门口路灯坏了三天…#n"}`,
which routing classifies as municipal facilities and sends to the simulator.

1. Baseline, same run: signed tickets POSTed straight to the simulator at --rate for --seconds,
   open loop; latency from the scheduled send to the 2xx. The floor of one HTTP hop to it.
2. Ours: reports POSTed to intake at --rate for --seconds, open loop; latency from the scheduled
   send to the simulator's first receipt of the report's ticket (both clocks are this machine's).
   Then every accepted report must reach the simulator exactly once: lost and duplicated tickets
   are counted (a repeated delivery of the same ticket_id counts as a duplicate).
3. Outage: the simulator answers 503 for --outage-seconds while reports keep coming at
   --outage-rate; then it is back, and the time until it holds the whole backlog is measured,
   against the time the baseline client needs to POST the same number of tickets directly.

The simulator makes no callbacks during 2 unless --callbacks: a real platform calls back hours
later, not within the second, and three callbacks per ticket would triple the load measured here.
The CPU each kind of process used per report (from /proc, only the processes this benchmark
started: the machine may be shared) is printed with the table.

Targets: p99 < 300 ms at 100 reports/s; 0 lost, 0 duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from identity_stack import stack
from intake_submit import declare_foreign_streams, issue_code, percentile, service

from minyi.servers import free_port
from services.routing import domain

SIMULATOR = Path(__file__).resolve().parent.parent / "deploy" / "gridsim" / "grid_platform_simulator.py"
SECRET = "bench-grid-secret-0123456789abcdef"
REGION = "320923"
CONTENT = "小区门口路灯坏了三天，晚上一片漆黑，老人出门不方便 #{n}"


def cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def process_cpu() -> dict[str, float]:
    """CPU seconds used so far by each kind of process this benchmark started (exited ones are not
    counted). Only this process's descendants: the machine is shared, and another job's servers
    are not ours to count."""
    ticks = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, str, str, float]] = {}  # pid → (parent, name, command line, CPU seconds)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        procs[int(entry.name)] = (int(fields[1]), name, cmd, (float(fields[11]) + float(fields[12])) / ticks)
    me = os.getpid()

    def ours(pid: int) -> bool:
        seen = 0
        while pid > 1 and seen < 64:
            if pid == me:
                return True
            pid, seen = procs[pid][0] if pid in procs else 0, seen + 1
        return False

    used: dict[str, float] = {}
    for pid, (_parent, name, cmd, seconds) in procs.items():
        if not ours(pid):
            continue
        if "minyi.cli serve" in cmd:
            kind = cmd.split("serve", 1)[1].split()[0]
        elif "postgres" in name or "postgres" in cmd:
            kind = "postgres"
        elif "nats-server" in cmd:
            kind = "nats"
        elif "grid_platform_simulator" in cmd:
            kind = "simulator"
        elif pid == me:
            kind = "load generator"
        else:
            kind = "other"
        used[kind] = used.get(kind, 0.0) + seconds
    return used


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


async def open_loop(rate: float, seconds: float, send: object, label: str) -> list[tuple[int, float, float | None]]:
    """Sends at fixed times whatever earlier requests do; returns (n, scheduled wall time, latency or None)."""
    results: list[tuple[int, float, float | None]] = []
    planned = int(rate * seconds)
    t0_perf, t0_wall = time.perf_counter() + 0.05, time.time() + 0.05
    tasks: set[asyncio.Task[None]] = set()
    next_note = time.monotonic() + 5

    async def one(n: int, scheduled_perf: float, scheduled_wall: float) -> None:
        try:
            ok = await send(n)  # type: ignore[operator]
        except httpx.HTTPError as exc:  # counted as not accepted, never fatal to the run
            print(f"  {label}: request {n} failed: {type(exc).__name__} {exc}", flush=True)
            ok = False
        results.append((n, scheduled_wall, time.perf_counter() - scheduled_perf if ok else None))

    for n in range(planned):
        scheduled = t0_perf + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(n, scheduled, t0_wall + n / rate))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if time.monotonic() >= next_note:
            print(f"  {label}: {n}/{planned} sent, {sum(1 for r in results if r[2] is not None)} answered", flush=True)
            next_note += 5
    await asyncio.gather(*tasks)
    return results


def start_simulator(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (root / "gridsim.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(SIMULATOR), "--port", str(port), "--secret", SECRET,
                             "--callback-delay-ms", "200", "--log-level", "WARNING"],
                            stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "http://" not in line:
        raise RuntimeError(f"the simulator did not start: {line!r}; see {log.name}")
    return proc, line[line.index("http://"):].strip()


async def sim_tickets(sim: httpx.AsyncClient) -> list[dict[str, object]]:
    return list((await sim.get("/_sim/tickets")).json())


async def wait_for_tickets(sim: httpx.AsyncClient, report_ids: set[str], timeout: float, label: str) -> float:
    """Seconds until the simulator holds a ticket for every one of `report_ids` (it was reset before them).

    Polls the simulator's ticket count, which is cheap, and lists the tickets only once the count is
    there: listing thousands of tickets twice a second would load the machine being measured."""
    t0 = time.monotonic()
    next_note = t0 + 5
    while True:
        count = int((await sim.get("/_sim/stats")).json()["tickets"])
        if count >= len(report_ids):
            have = {t["report_id"] for t in await sim_tickets(sim)} & report_ids
            if len(have) == len(report_ids):
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            print(f"  {label}: gave up after {timeout:.0f} s with {count}/{len(report_ids)} tickets", flush=True)
            return float("nan")
        if time.monotonic() >= next_note:
            print(f"  {label}: {count}/{len(report_ids)} tickets at the simulator", flush=True)
            next_note += 5
        await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> int:
    with stack() as s:
        # ROUTING too: intake waits for it, and routing starts after intake.
        await declare_foreign_streams(s.nats.url, {"intake", "identity"})
        identity_port, intake_port, routing_port = free_port(), free_port(), free_port()
        flood = {"MINYI_FLOOD_LIMIT": "1000000/minute"}
        routing_env = {"MINYI_ROUTING_CALLBACK_URL": f"http://127.0.0.1:{routing_port}/v1/grid/callbacks",
                       "MINYI_GRID_RETRY_MAX_SECONDS": str(args.retry_cap),
                       "MINYI_HOTSPOT_MEANING": "false" if args.no_meaning else "true"}
        sim_proc, sim_url = start_simulator(s.root)
        try:
            with service(s, "identity", identity_port, identity_port), \
                    service(s, "intake", intake_port, identity_port, flood), \
                    service(s, "routing", routing_port, identity_port, routing_env):
                code = issue_code(f"http://127.0.0.1:{identity_port}", s.token("admin"))
                admin = {"Authorization": f"Bearer {s.token('admin')}"}
                async with httpx.AsyncClient(timeout=30) as setup:
                    resp = await setup.put(
                        f"http://127.0.0.1:{routing_port}/v1/grid-platforms/bench-grid", headers=admin,
                        json={"name": "基准测试平台", "region_prefixes": [REGION], "transport": "http",
                              "url": sim_url, "secret": SECRET})
                resp.raise_for_status()
                async with httpx.AsyncClient(base_url=sim_url, timeout=30) as sim:
                    return await measure(args, code, sim, f"http://127.0.0.1:{intake_port}")
        finally:
            sim_proc.terminate()
            sim_proc.wait(10)


async def measure(args: argparse.Namespace, code: str, sim: httpx.AsyncClient, intake_url: str) -> int:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        # 1. baseline: straight to the simulator (no callbacks: there is nobody to call back)
        await sim.post("/_sim/config", json={"callbacks": False})
        print(f"baseline: signed tickets straight to the simulator, {args.rate:g}/s for {args.seconds:g} s …",
              flush=True)

        async def direct(n: int) -> bool:
            body = json.dumps({"ticket_id": f"direct-{n}", "report_id": f"direct-{n}", "region_code": REGION,
                               "category": "municipal_facilities", "content": CONTENT.format(n=n),
                               "due_at": None, "callback_url": "http://127.0.0.1:9/none"},
                              ensure_ascii=False).encode()
            r = await client.post(f"{str(sim.base_url).rstrip('/')}/tickets", content=body,
                                  headers=domain.signed_headers(SECRET.encode(), body, time.time()))
            return r.status_code == 200

        base = await open_loop(args.rate, args.seconds, direct, "baseline")
        await sim.post("/_sim/config", json={"callbacks": args.callbacks})
        await sim.post("/_sim/reset")

        # 2. ours
        print(f"ours: reports to intake, {args.rate:g}/s for {args.seconds:g} s …", flush=True)
        accepted: dict[int, str] = {}

        async def report(n: int) -> bool:
            r = await client.post(f"{intake_url}/v1/reports", json={"channel": "miniprogram", "code": code,
                                                                   "content": CONTENT.format(n=n),
                                                                   "anonymous": True})
            if r.status_code == 201:
                accepted[n] = r.json()["id"]
                return True
            return False

        busy0, total0 = cpu_seconds()
        own0 = time.process_time()
        kinds0 = process_cpu()
        ours = await open_loop(args.rate, args.seconds, report, "ours")
        ids = set(accepted.values())
        await wait_for_tickets(sim, ids, 900, "ours")
        busy1, total1 = cpu_seconds()
        servers_cpu = (busy1 - busy0) - (time.process_time() - own0)
        kinds1 = process_cpu()
        by_kind = {k: kinds1[k] - kinds0.get(k, 0.0) for k in kinds1}
        tickets = [t for t in await sim_tickets(sim) if t["report_id"] in ids]
        received = {t["report_id"]: float(t["first_received_at"]) for t in tickets}  # type: ignore[arg-type]
        per_report: dict[str, int] = {}
        for t in tickets:
            per_report[str(t["report_id"])] = per_report.get(str(t["report_id"]), 0) + 1
        duplicates = sum(n - 1 for n in per_report.values()) + sum(int(t["deliveries"]) - 1 for t in tickets)  # type: ignore[call-overload]
        lost = len(ids - set(received))
        e2e = [received[accepted[n]] - wall for n, wall, _lat in ours if n in accepted and accepted[n] in received]

        # 3. outage
        await sim.post("/_sim/reset")
        await sim.post("/_sim/config", json={"down": True})
        print(f"outage: the simulator answers 503 for {args.outage_seconds:g} s while reports come at "
              f"{args.outage_rate:g}/s …", flush=True)
        accepted.clear()
        await open_loop(args.outage_rate, args.outage_seconds, report, "outage")
        backlog = set(accepted.values())
        await sim.post("/_sim/config", json={"down": False})
        print(f"  the simulator is back; waiting for the {len(backlog)} tickets of the backlog …", flush=True)
        recovery = await wait_for_tickets(sim, backlog, max(600.0, args.retry_cap * 4), "backlog")
        after = [t for t in await sim_tickets(sim) if t["report_id"] in backlog]
        backlog_dups = sum(int(t["deliveries"]) - 1 for t in after)  # type: ignore[call-overload]
        await sim.post("/_sim/reset")
        await sim.post("/_sim/config", json={"callbacks": False})
        t0 = time.monotonic()
        gate = asyncio.Semaphore(16)

        async def gated(n: int) -> bool:
            async with gate:
                return await direct(n)

        await asyncio.gather(*(gated(n) for n in range(len(backlog))))
        floor = time.monotonic() - t0

    base_lat = [lat for _n, _w, lat in base if lat is not None]
    answered = [lat for _n, _w, lat in ours if lat is not None]
    print()
    print("| measure | Minyi (intake → routing → simulator) | baseline (straight to the simulator) | ratio |")
    print("| --- | --- | --- | --- |")
    p50, p99 = percentile(e2e, 0.5), percentile(e2e, 0.99)
    b50, b99 = percentile(base_lat, 0.5), percentile(base_lat, 0.99)
    print(f"| p50 at {args.rate:g}/s | {ms(p50)} | {ms(b50)} | {p50 / b50:.1f}× |")
    print(f"| p99 at {args.rate:g}/s | {ms(p99)} | {ms(b99)} | {p99 / b99:.1f}× |")
    print(f"| backlog of {len(backlog)} after {args.outage_seconds:g} s down | {recovery:.1f} s to deliver | "
          f"{floor:.1f} s to POST directly | {recovery / floor if floor else float('nan'):.1f}× |")
    print()
    print(f"intake answered the reports in p50 {ms(percentile(answered, 0.5))}, p99 {ms(percentile(answered, 0.99))}; "
          f"the servers used {servers_cpu:.1f} CPU-seconds ({servers_cpu / max(1, len(ids)) * 1000:.1f} ms per report, "
          f"all processes but this one) of {total1 - total0:.0f} "
          f"available ({os.cpu_count()} cores)")
    ranked = sorted(by_kind.items(), key=lambda kv: -kv[1])
    own = sum(v for k, v in by_kind.items() if k != "load generator")
    print(f"this benchmark's servers used {own / max(1, len(ids)) * 1000:.1f} ms of CPU per report")
    print("CPU per report by process: " + ", ".join(
        f"{k} {v / max(1, len(ids)) * 1000:.1f} ms" for k, v in ranked if v > 0))
    print(f"reports accepted {len(ids)} of {len(ours)}; tickets lost {lost}, duplicated {duplicates}; "
          f"backlog duplicates {backlog_dups}; target p99 < 300 ms")
    return 0 if lost == 0 and duplicates == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--outage-seconds", type=float, default=600)
    parser.add_argument("--outage-rate", type=float, default=5)
    parser.add_argument("--retry-cap", type=float, default=60, help="MINYI_GRID_RETRY_MAX_SECONDS for routing")
    parser.add_argument("--no-meaning", action="store_true",
                        help="routing without the meaning model (MINYI_HOTSPOT_MEANING=false): words and kinds only")
    parser.add_argument("--callbacks", action="store_true",
                        help="the simulator calls back accepted → in_progress → resolved 200 ms after each ticket")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

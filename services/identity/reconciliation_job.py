"""Running reconciliation jobs in the background, one at a time per process, any replica.

A job is a row: `pending` until a runner claims it, `running` while the runner's heartbeat is
fresh, then `done` or `failed`. All SQL steps run in one transaction, so a crash leaves no partial
results (the job's findings are a table of its own, attached to `reconciliation_items` only at the
end: migration 0011); a stale heartbeat (the replica died) lets another runner take the job over
from scratch. Progress is written on a second connection so staff can watch it while the work is uncommitted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from sqlalchemy import text

from services.identity.reconciliation import KINDS, adult_cutoff
from services.identity.reconciliation_sql import (
    ATTACH_FINDINGS,
    BEGIN_FINDINGS,
    COUNTS,
    FINDINGS_TABLE,
    STEPS,
    region_end,
)
from shared.service import Runtime

log = logging.getLogger("minyi.identity.reconciliation")

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 60
MAX_ATTEMPTS = 3
POLL_SECONDS = 1.0



def _wakeup(runtime: Runtime) -> asyncio.Event:
    event: asyncio.Event = runtime.state.setdefault("reconciliation.wakeup", asyncio.Event())
    return event


def wake(runtime: Runtime) -> None:
    """Start a job just queued in this process without waiting for the next poll."""
    _wakeup(runtime).set()


_CLAIM = text(f"""
UPDATE identity.reconciliation_jobs SET status = 'running', heartbeat_at = now(), attempts = attempts + 1,
       progress = 0, step = NULL
WHERE id = (
    SELECT id FROM identity.reconciliation_jobs
    WHERE status = 'pending'
       OR (status = 'running' AND heartbeat_at < now() - interval '{STALE_AFTER_SECONDS} seconds')
    ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING id, election_id, attempts
""")


async def run_jobs(runtime: Runtime) -> None:
    event = _wakeup(runtime)
    while True:
        claimed = await _claim(runtime)
        if claimed is None:
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), POLL_SECONDS)
            except TimeoutError:
                pass
            continue
        job_id, election_id, attempts = claimed
        if attempts > MAX_ATTEMPTS:
            await _fail(runtime, job_id, f"gave up after {MAX_ATTEMPTS} attempts")
            continue
        await run_job(runtime, job_id, election_id)


async def _claim(runtime: Runtime) -> tuple[str, str, int] | None:
    async with runtime.transaction() as session:
        row = (await session.execute(_CLAIM)).first()
    return (row.id, row.election_id, row.attempts) if row else None


async def _update(runtime: Runtime, job_id: str, **values: Any) -> None:
    sets = "".join(f"{k} = :{k}, " for k in values)
    async with runtime.transaction() as session:
        await session.execute(text(
            f"UPDATE identity.reconciliation_jobs SET {sets}heartbeat_at = now() "
            "WHERE id = :id AND status = 'running'"), {"id": job_id, **values})


async def _fail(runtime: Runtime, job_id: str, error: str) -> None:
    async with runtime.transaction() as session:
        await session.execute(text(
            "UPDATE identity.reconciliation_jobs SET status = 'failed', error = :error, finished_at = now() "
            "WHERE id = :id"), {"id": job_id, "error": error[:500]})


async def _heartbeat(runtime: Runtime, job_id: str) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        try:
            await _update(runtime, job_id)
        except Exception as exc:
            log.warning("reconciliation %s: heartbeat failed: %s", job_id, exc)


async def run_job(runtime: Runtime, job_id: str, election_id: str) -> None:
    heartbeat = asyncio.create_task(_heartbeat(runtime, job_id))
    try:
        await _run(runtime, job_id, election_id)
    except Exception as exc:
        log.exception("reconciliation %s of election %s failed", job_id, election_id)
        await _fail(runtime, job_id, f"{type(exc).__name__}: {exc}")
    finally:
        heartbeat.cancel()


async def _run(runtime: Runtime, job_id: str, election_id: str) -> None:
    begun = asyncio.get_running_loop().time()
    async with runtime.transaction() as session:
        election = (await session.execute(text("SELECT election_date, region_code FROM identity.elections "
                                                "WHERE id = :id"), {"id": election_id})).first()
        if election is None:
            raise LookupError(f"election {election_id} no longer exists")
        params = {"election_id": election_id, "job_id": job_id, "cutoff": adult_cutoff(election.election_date),
                  "region": election.region_code, "region_end": region_end(election.region_code)}
        # The joins and sorts of a whole roll fit in memory rather than spilling to disk.
        await session.execute(text("SET LOCAL work_mem = '256MB'"))
        findings = str(await session.scalar(text(BEGIN_FINDINGS), params))
        if not FINDINGS_TABLE.fullmatch(findings):
            raise ValueError(f"unexpected findings table name {findings!r}")
        for name, progress, statement in STEPS:
            await _update(runtime, job_id, step=name)
            started = asyncio.get_running_loop().time()
            await session.execute(text(statement.replace("{findings}", findings)), params)
            log.info("reconciliation %s: %s took %.2fs", job_id, name, asyncio.get_running_loop().time() - started)
            await _update(runtime, job_id, progress=progress)
        started = asyncio.get_running_loop().time()
        await session.execute(text(ATTACH_FINDINGS), params)
        log.info("reconciliation %s: indexing and attaching the findings took %.2fs", job_id,
                 asyncio.get_running_loop().time() - started)
        counts = dict.fromkeys(KINDS, 0)
        counts.update({kind: int(n) for kind, n in (await session.execute(text(COUNTS), params)).all()})
        await session.execute(text(
            "UPDATE identity.reconciliation_jobs SET status = 'done', progress = 1, step = NULL, "
            "counts = CAST(:counts AS jsonb), finished_at = now() WHERE id = :job_id"),
            {"job_id": job_id, "counts": json.dumps(counts)})
        # Earlier runs of this election are superseded; their findings would only mislead.
        await session.execute(text(
            "DELETE FROM identity.reconciliation_jobs WHERE election_id = :election_id AND id <> :job_id "
            "AND status IN ('done', 'failed')"), params)
        await runtime.emit(session, "identity.reconciliation.completed",
                           {"election_id": election_id, "job_id": job_id, "counts": counts}, subject=election_id)
    log.info("reconciliation %s of election %s done in %.2fs: %s", job_id, election_id,
             asyncio.get_running_loop().time() - begun, counts)

"""What the station staff's pages ask of the services, as the signed-in clerk (their Bearer token).

Intake: the region's reports, registering a report with its scans, 催办. Identity: the names of
the deputies and stations reports wait on, and the region's list of them to register a report for.
Every call carries the clerk's own token, so the pages see and do exactly what the services allow
a station clerk of that region.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from services.web.upstreams import Attachment, Model, ReportCreated, UpstreamError, Upstreams
from services.web.work_session import WorkSession

# A page of the list; the export reads this many pages at most (5,000 reports).
PAGE_SIZE = 20
EXPORT_PAGE_SIZE = 100
EXPORT_MAX_PAGES = 50
# The picker of the register form: identity's largest page, and how many of each it lists.
PICKER_PAGE = 100
PICKER_MAX = 500


class TargetRef(Model):
    kind: str
    id: str | None = None
    region_code: str


class MaskedReporter(Model):
    name: str = ""
    phone: str = ""


class ReportRow(Model):
    id: str
    channel: str
    status: str
    target: TargetRef
    region_code: str
    category: str | None = None
    excerpt: str = ""
    anonymous: bool
    reporter: MaskedReporter | None = None
    received_at: str
    ack_due: str
    reply_due: str
    due_at: str
    acknowledged_at: str | None = None
    ack_overdue: bool = False
    reply_overdue: bool = False
    overdue: bool = False


class ReportPage(Model):
    items: list[ReportRow]
    total: int
    page: int
    page_size: int


class PickedStation(Model):
    id: str
    name: str
    code: str | None = None


class PickedDeputy(Model):
    id: str
    name: str
    level: str
    code: str | None = None
    stations: list[PickedStation] = Field(default_factory=list)


class Picker(Model):
    """The region's stations and deputies, by name, each with its live QR code (None: none issued)."""

    stations: list[PickedStation]
    deputies: list[PickedDeputy]
    # More than PICKER_MAX of either: the list is cut, and pasting a code is the way to the rest.
    cut: bool = False


class Reminded(Model):
    report_id: str
    at: str
    next_allowed_at: str


async def open_reports(up: Upstreams, session: WorkSession, filters: Mapping[str, Any], *, page: int,
                       page_size: int = PAGE_SIZE) -> ReportPage:
    params = {**filters, "open": "true", "page": page, "page_size": page_size}
    body = await up.intake.json("GET", "/v1/reports", params=params, headers=session.bearer)
    return ReportPage.model_validate(body)


async def all_open_reports(up: Upstreams, session: WorkSession, filters: Mapping[str, Any]) -> list[ReportRow]:
    """Every report the filters keep, for an export (at most EXPORT_MAX_PAGES pages)."""
    rows: list[ReportRow] = []
    for page in range(1, EXPORT_MAX_PAGES + 1):
        got = await open_reports(up, session, filters, page=page, page_size=EXPORT_PAGE_SIZE)
        rows += got.items
        if page * EXPORT_PAGE_SIZE >= got.total or not got.items:
            break
    return rows


async def names_of(up: Upstreams, session: WorkSession, rows: list[ReportRow]) -> dict[tuple[str, str], str]:
    """(kind, id) → name of the deputies and stations the rows are aimed at. One that cannot be read
    (outside the clerk's region, identity slow) is left out: the page shows its id instead."""
    wanted = {(r.target.kind, r.target.id) for r in rows if r.target.kind in ("deputy", "station") and r.target.id}

    async def one(kind: str, ident: str) -> tuple[tuple[str, str], str | None]:
        path = f"/v1/{'deputies' if kind == 'deputy' else 'stations'}/{ident}"
        try:
            body = await up.identity.json("GET", path, headers=session.bearer, not_found_ok=True)
        except UpstreamError:
            return (kind, ident), None
        return (kind, ident), (body or {}).get("name")

    found = await asyncio.gather(*(one(kind, ident) for kind, ident in sorted(wanted)))  # type: ignore[arg-type]
    return {key: name for key, name in found if name}


async def upload_scan(up: Upstreams, session: WorkSession, filename: str, data: bytes, media_type: str, *,
                      idempotency_key: str) -> Attachment:
    body = await up.intake.json("POST", "/v1/attachments", files={"file": (filename, data, media_type)},
                                headers={**session.bearer, "Idempotency-Key": idempotency_key})
    return Attachment.model_validate(body)


async def register(up: Upstreams, session: WorkSession, report: Mapping[str, Any], *,
                   idempotency_key: str) -> ReportCreated:
    body = await up.intake.json("POST", "/v1/reports", json=report,
                                headers={**session.bearer, "Idempotency-Key": idempotency_key})
    return ReportCreated.model_validate(body)


async def remind(up: Upstreams, session: WorkSession, report_id: str, note: str | None, *,
                 idempotency_key: str) -> Reminded:
    body = await up.intake.json("POST", f"/v1/reports/{report_id}/reminders", json={"note": note},
                                headers={**session.bearer, "Idempotency-Key": idempotency_key})
    return Reminded.model_validate(body)


async def _listing(up: Upstreams, session: WorkSession, path: str) -> tuple[list[dict[str, Any]], bool]:
    """Every row of one of identity's listings for the clerk's token, up to PICKER_MAX; whether it was cut."""
    rows: list[dict[str, Any]] = []
    after: str | None = None
    while len(rows) < PICKER_MAX:
        params: dict[str, Any] = {"limit": PICKER_PAGE, **({"after": after} if after else {})}
        body = await up.identity.json("GET", path, params=params, headers=session.bearer)
        rows += body["items"]
        after = body.get("next")
        if after is None:
            return rows, False
    return rows[:PICKER_MAX], True


async def picker(up: Upstreams, session: WorkSession) -> Picker:
    (stations, cut_s), (deputies, cut_d) = await asyncio.gather(_listing(up, session, "/v1/stations"),
                                                                _listing(up, session, "/v1/deputies"))
    return Picker(stations=[PickedStation.model_validate(s) for s in stations],
                  deputies=[PickedDeputy.model_validate(d) for d in deputies], cut=cut_s or cut_d)

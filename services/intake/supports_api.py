"""我也遇到 / 附议: a citizen who meets a problem someone already reported adds their voice to it.

`POST /v1/reports/{id}/supports` needs no account, like filing a report. The support row, the
report's `supporters` count and the `intake.report.supported` outbox row are written in one
transaction under the report's row lock, so the count always equals the rows and concurrent
supports of one report cannot both pass the "once per person" check.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.intake import clock, domain, lifecycle, supports
from services.intake.api import (
    IdempotencyKey,
    ReporterIn,
    ReportId,
    RuntimeDep,
    Strict,
    limit_flood,
)
from services.intake.models import IDEMPOTENCY, ReportSupport
from shared import idempotency
from shared.auth import OptionalPrincipal
from shared.errors import FieldError, Problem, forbidden, not_found
from shared.ids import new_id
from shared.pii import blind_index, encrypt
from shared.problems import COMMON, problems

router = APIRouter(prefix="/v1", tags=["intake"], responses=COMMON)

PII_CONTEXT = {"name": "intake.support.supporter_name", "phone": "intake.support.supporter_phone"}


class SupportIn(Strict):
    anonymous: bool
    reporter: ReporterIn | None = Field(default=None, description="name and phone, when not anonymous; no ID number")
    channel: domain.Channel


class SupportOut(BaseModel):
    report_id: str
    supporters: int = Field(description="citizens who have supported the report, this one included")


def _detail(errors: list[FieldError]) -> str:
    return "提交的附议有误：" + "；".join(e.message for e in errors[:3]) + ("……" if len(errors) > 3 else "。")


@router.post("/reports/{report_id}/supports", status_code=201, response_model=SupportOut,
             summary="我也遇到 (附议): add one's voice to a report someone already filed, anonymously or by name",
             responses=problems((403, "station staff registering for a report outside their region"),
                                (404, "unknown report"),
                                (409, "the report is closed, this phone supported it already, it is the caller's "
                                      "own report, or the Idempotency-Key was used for another body"),
                                (422, "invalid input, with the field at fault"),
                                (429, "too many supports from one source")))
async def support_report(report_id: ReportId, body: SupportIn, request: Request, who: OptionalPrincipal,
                         runtime: RuntimeDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    await limit_flood(request, runtime, who, "supports")
    roles = who.roles if who is not None else frozenset()
    reporter = None if body.reporter is None else domain.Reporter(body.reporter.name, body.reporter.phone,
                                                                    body.reporter.id_number)
    errors = supports.check_support(channel=body.channel, anonymous=body.anonymous, reporter=reporter, roles=roles)
    if errors:
        raise Problem(422, _detail(errors), title="Validation Failed", errors=errors)
    keyring = runtime.keyring
    phone_index = None if body.anonymous or reporter is None else blind_index(keyring, reporter.phone, kind="phone")
    now = clock.now(runtime)
    # An anonymous support must not be linkable to the account that sent it, not even through the key.
    scope = f"supports:{report_id}" if body.anonymous or who is None else f"supports:{report_id}:{who.sub}"
    retry = idempotency.for_body(IDEMPOTENCY, scope, idempotency_key, body.model_dump(mode="json"))
    async with runtime.transaction() as session:
        if (replay := await retry.replayed(session)) is not None:
            return replay
        report = await lifecycle.lock(session, report_id)
        if report is None:
            raise not_found("没有找到这条反映。")
        if who is not None and "station_staff" in who.roles and not who.can_see(report.region_code):
            raise forbidden("该反映不在您的管辖范围内，不能代为登记附议。")
        if (why := supports.refusal(report.status)) is not None:
            raise Problem(409, why)
        row = ReportSupport(id=new_id(), report_id=report.id, anonymous=body.anonymous, channel=body.channel,
                            created_at=now)
        if phone_index is not None and reporter is not None:
            own = report.reporter_phone_index
            if own is not None and hmac.compare_digest(own, phone_index):
                raise Problem(409, supports.OWN_REPORT)
            digest = supports.person_digest(phone_index, report.id)
            if await session.scalar(select(ReportSupport.id).where(ReportSupport.report_id == report.id,
                                                                  ReportSupport.person_digest == digest)):
                raise Problem(409, supports.REPEATED)
            row.person_digest = digest
            row.supporter_name = encrypt(keyring, reporter.name, context=PII_CONTEXT["name"])
            row.supporter_phone = encrypt(keyring, reporter.phone, context=PII_CONTEXT["phone"])
        session.add(row)
        report.supporters += 1
        await runtime.emit(session, "intake.report.supported", {
            "report_id": report.id, "support_id": row.id, "anonymous": body.anonymous,
            "supporters": report.supporters, "region_code": report.region_code, "at": now.isoformat(),
        }, subject=report.id)
        out = SupportOut(report_id=report.id, supporters=report.supporters).model_dump(mode="json")
        return await retry.answer(session, out, 201)

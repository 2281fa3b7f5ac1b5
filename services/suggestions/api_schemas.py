"""What the suggestions API answers, for its OpenAPI document: a suggestion as its workflow sees it
(`projection.view`), with its colour and timeline where read, the micro-suggestion funds, the
supervision topics. The routes build these answers as dicts; the models type them without changing them
(see shared/answer_types.py), and keep whatever else a recorded state holds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.suggestions.domain import Color, Status
from shared.answer_types import OPEN, IsoDateTime, Number

Yuan = Field(pattern=r"^-?\d+\.\d{2}$", description="yuan, two decimals")


class OutcomeClassOut(BaseModel):
    model_config = OPEN

    code: str = Field(description="A, B, C …")
    label: str
    solved: bool = Field(description="a satisfied evaluation closes the suggestion")
    needs_planned_year: bool = Field(description="the reply names the year it will be solved by")
    reference: bool = Field(description="kept for reference (shown grey)")


class ExtensionRequestOut(BaseModel):
    model_config = OPEN

    unit_id: str
    reason: str
    months: int
    at: IsoDateTime


class ReplyOut(BaseModel):
    model_config = OPEN

    unit_id: str
    content: str
    outcome: str
    planned_year: int | None
    public: bool
    at: IsoDateTime


class RepeatOf(BaseModel):
    """反复提: the closest earlier suggestion of the same county and term."""

    model_config = OPEN

    id: str
    title: str
    outcome: str | None
    status: str
    similarity: Number


# A suggestion of a county's 2026 session, assigned to a lead unit and one assisting unit.
EXAMPLE: dict[str, Any] = {
    "id": "9f7ad65f-e333-4878-ba58-5cb4a857291c", "title": "关于老旧小区加装电梯的建议",
    "content": "建议加快老旧小区加装电梯，简化审批流程，方便老年人出行。", "lead_deputy_id": "D001",
    "co_signer_ids": ["D002"], "region_code": "330106", "year": 2026, "years": [2026], "term": 1,
    "kind": "session", "micro": False, "status": "assigned", "outcome": None, "outcome_label": None,
    "reference": False, "key": False, "key_requested": False, "supervisor": None, "lead_unit_id": "U-ZJJ",
    "assisting_unit_ids": ["U-CZJ"], "assigned_at": "2026-03-20T09:30:00+08:00",
    "due_at": "2026-06-20T09:30:00+08:00", "extended": False, "extension_request": None,
    "assisting_due_at": "2026-05-20T09:30:00+08:00", "assisting_views": [], "meetings": [], "dissatisfied": 0,
    "outcome_classes": [
        {"code": "A", "label": "已解决或基本解决", "solved": True, "needs_planned_year": False, "reference": False},
        {"code": "B", "label": "列入计划逐步解决", "solved": False, "needs_planned_year": True, "reference": False},
        {"code": "C", "label": "留作参考", "solved": False, "needs_planned_year": False, "reference": True}],
    "reply": None, "next_review_at": None, "review_year": None, "repeat_of": None, "topic_id": None,
    "submitted_at": "2026-03-08T10:02:11+08:00", "closed_at": None, "seq": 2,
}


class Suggestion(BaseModel):
    """A suggestion as its workflow holds it after the last step."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EXAMPLE]})

    id: str
    title: str
    content: str
    lead_deputy_id: str
    co_signer_ids: list[str]
    region_code: str
    year: int = Field(description="the year it was submitted in")
    years: list[int] = Field(description="the yearly lists it is on: its own year, then each year it was carried into")
    term: int = Field(description="the congress term (届) of the latest of `years`")
    kind: Literal["session", "interim"]
    micro: bool = Field(description="急难小: paid from the region's micro-suggestion fund")
    status: Status
    outcome: str | None = Field(description="the outcome class of the reply")
    outcome_label: str | None
    reference: bool
    key: bool = Field(description="重点建议")
    key_requested: bool
    supervisor: str | None
    lead_unit_id: str | None
    assisting_unit_ids: list[str]
    assigned_at: IsoDateTime | None
    due_at: IsoDateTime | None = Field(description="when the reply is due")
    extended: bool
    extension_request: ExtensionRequestOut | None = Field(description="the lead unit's pending request")
    assisting_due_at: IsoDateTime | None
    assisting_views: list[str] = Field(description="the assisting units that gave their view")
    meetings: list[str] = Field(description="the stages (before, during, after) of the meetings held")
    dissatisfied: int = Field(description="dissatisfied evaluations so far")
    outcome_classes: list[OutcomeClassOut] = Field(description="the classes its reply is given in")
    reply: ReplyOut | None
    next_review_at: IsoDateTime | None = Field(description="the next yearly look-back (回头看)")
    review_year: int | None
    repeat_of: RepeatOf | None
    topic_id: str | None = Field(description="the supervision topic it was made from")
    submitted_at: IsoDateTime
    closed_at: IsoDateTime | None
    seq: int = Field(description="steps recorded so far")


class SuggestionListed(Suggestion):
    model_config = ConfigDict(json_schema_extra={"examples": [{**EXAMPLE, "color": "green"}]})

    color: Color = Field(description="green on time, yellow due soon, red late, blue replied, grey kept for reference")
    # Left out of suggestions recorded before these existed.
    extension_request: ExtensionRequestOut | None = Field(
        default=None, description="the lead unit's pending request; absent on suggestions recorded before requests")
    outcome_classes: list[OutcomeClassOut] | None = Field(
        default=None, description="the classes its reply is given in; absent on suggestions recorded before them")


class TimelineStep(BaseModel):
    """One step of a suggestion's history, with what the step recorded."""

    model_config = OPEN

    seq: int
    at: IsoDateTime
    kind: str = Field(description="submitted, assigned, extended, replied, evaluated …")
    actor: str
    note: str | None


class FundBalance(BaseModel):
    model_config = OPEN

    region_code: str = Field(description="the region whose fund the suggestion draws on")
    year: int
    amount: str = Yuan
    spent: str = Yuan
    balance: str = Yuan


class SuggestionDetail(Suggestion):
    model_config = ConfigDict(json_schema_extra={"examples": [{**EXAMPLE, "color": "green", "fund": None, "timeline": [
        {"seq": 1, "at": "2026-03-08T10:02:11+08:00", "kind": "submitted", "actor": "deputy-d001", "note": None},
        {"seq": 2, "at": "2026-03-20T09:30:00+08:00", "kind": "assigned", "actor": "staff-330106", "note": None,
         "due_at": "2026-06-20T09:30:00+08:00", "key": False},
    ]}]})

    color: Color
    fund: FundBalance | None = Field(description="for a micro suggestion, to its lead unit and staff; else null")
    timeline: list[TimelineStep]


class Spending(BaseModel):
    model_config = OPEN

    id: str
    suggestion_id: str
    amount: str = Yuan
    note: str
    recorded_by: str
    recorded_at: IsoDateTime


class FundReport(FundBalance):
    items: list[Spending] = Field(description="what was spent, oldest first")


class SchemeOut(BaseModel):
    model_config = OPEN

    region_code: str
    classes: list[OutcomeClassOut]


class TopicOut(BaseModel):
    model_config = OPEN

    id: str
    region_code: str
    category: str
    count: int = Field(description="reports in the hotspot")
    keywords: list[str]
    report_ids: list[str]
    first_at: IsoDateTime
    last_at: IsoDateTime
    status: Literal["open", "converted", "closed"]
    note: str | None = Field(description="why it was closed")
    suggestion_id: str | None = Field(description="the suggestion it was converted into")


class Conversion(BaseModel):
    model_config = OPEN

    topic: TopicOut
    suggestion: Suggestion

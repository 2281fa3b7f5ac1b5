"""What the scoring API answers, for its OpenAPI document: rules, a deputy's score and its ledger
entries, recorded activities, rankings, publications, talk lists and the units' board. The routes build
these answers as dicts; the models type them without changing them (see shared/answer_types.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.scoring.domain import Board, Dimension, Grade, Part, Role
from shared.answer_types import OPEN, IsoDate, IsoDateTime, Number

LevelName = Literal["national", "provincial", "municipal", "county", "township"]


class RuleOut(BaseModel):
    model_config = OPEN

    code: str
    on: str = Field(description="an event type, or `activity:<kind>`")
    points: Number
    part: Part
    dimension: Dimension
    role: Role
    match: dict[str, Any] = Field(description="fields the event's data must hold for the rule to apply")
    label: str


class GradingOut(BaseModel):
    model_config = OPEN

    points_per_star: Number
    excellent: Number = Field(description="the least total graded excellent (优秀)")
    good: Number
    competent: Number
    basically_competent: Number
    talk_share: Number = Field(description="the bottom share of a ranking listed for a talk (约谈)")
    dimension_full: dict[str, Number] = Field(description="points in a dimension that make its index 100")


class BoardThresholdsOut(BaseModel):
    model_config = OPEN

    red_on_time: Number
    red_satisfaction: Number
    yellow_on_time: Number
    yellow_satisfaction: Number
    black_on_time: Number
    black_satisfaction: Number
    min_replies: int


class RuleSetOut(BaseModel):
    model_config = OPEN

    region_code: str = Field(description='the region the rules are of; "" for the default everywhere')
    effective_from: IsoDate
    version: int = Field(description="0 for the rules built in")
    rules: list[RuleOut]
    grading: GradingOut
    board: BoardThresholdsOut


class EntryOut(BaseModel):
    """A line of the points ledger (履职积分台账)."""

    model_config = OPEN

    id: str
    at: IsoDateTime
    points: Number = Field(description="negative for a reversal or a penalty")
    part: Part
    dimension: Dimension
    rule_code: str
    rule_region: str
    rule_version: int
    source: str = Field(description="the event type, `activity:<kind>` or `reversal` that gave it")
    source_id: str
    reason: str
    recorded_by: str | None
    evidence: dict[str, Any] | None
    reverses: str | None = Field(description="the entry this one reverses")


class ScoredEntry(EntryOut):
    deputy_id: str
    year: int


class DeputyScore(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "deputy_id": "D001", "name": "王代表", "year": 2026, "base": 9.0, "bonus": 0.0, "total": 9.0, "stars": 0,
        "grade": "not_competent",
        "dimensions": {"exemplary": 0.0, "conduct": 16.7, "supervision": 0.0, "advisory": 13.3, "relief": 0.0},
        "entries": [
            {"id": "0b7f3a52-9d14-5f0e-8c61-2a5d7e3c9f41", "at": "2026-03-08T10:02:11+08:00", "points": 4,
             "part": "base", "dimension": "advisory", "rule_code": "suggestion_led", "rule_region": "default",
             "rule_version": 0, "source": "suggestions.suggestion.submitted",
             "source_id": "9f7ad65f-e333-4878-ba58-5cb4a857291c", "reason": "领衔提出代表建议", "recorded_by": None,
             "evidence": None, "reverses": None},
            {"id": "4c1e0d2a-7b3f-5a61-9e8d-0f2b6c4a8e13", "at": "2026-04-10T12:00:00+08:00", "points": 5,
             "part": "base", "dimension": "conduct", "rule_code": "session_attendance", "rule_region": "default",
             "rule_version": 0, "source": "activity:session_attendance",
             "source_id": "6d2f8a14-3c5b-5e7a-b9d0-1e4f7a2c8b35", "reason": "出席人代会", "recorded_by": "staff-330106",
             "evidence": {"sheet": "2026-1"}, "reverses": None},
        ],
    }]})

    deputy_id: str
    name: str
    year: int
    base: Number = Field(description="0 to 100")
    bonus: Number
    total: Number
    stars: int
    grade: Grade
    dimensions: dict[str, Number] = Field(description="each of the five dimensions as an index of 0 to 100")
    entries: list[EntryOut]


class ActivityRecorded(BaseModel):
    model_config = OPEN

    activity_id: str
    deputy_id: str
    kind: str
    label: str
    on: IsoDate
    recorded_by: str
    entries: list[ScoredEntry] = Field(description="the points it gave under the rules in force that day")


class UnitOnBoard(BaseModel):
    model_config = OPEN

    unit_id: str
    on_time_rate: Number | None = Field(description="replies on time / replies; null without replies")
    satisfaction_rate: Number | None = Field(description="satisfied evaluations / evaluations; null without any")
    board: Board | None = Field(description="红榜, 黄榜, 黑榜, or null for none")
    replies: int
    evaluations: int


class RankedDeputy(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"deputy_id": "D007", "name": "李代表", "total": 36.5, "rank": 1, "stars": 3},
        {"deputy_id": "D001", "name": "王代表", "total": 10.0, "rank": 2, "stars": 1},
    ]})

    deputy_id: str
    name: str
    total: Number
    rank: int = Field(description="equal totals share a rank, and the next rank skips (1, 1, 3)")
    stars: int


class TalkListed(RankedDeputy):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"deputy_id": "D001", "name": "王代表", "total": 10.0, "rank": 2, "stars": 1, "consecutive": False}]})

    consecutive: bool = Field(description="also at the bottom the year before")


class PublicationOut(BaseModel):
    model_config = OPEN

    id: str
    year: int
    region_code: str
    level: LevelName | None
    published_by: str
    published_at: IsoDateTime
    deputies: int
    pages: int = Field(description="`scoring.ranking.published` events it went out as")
    digest: str = Field(description="sha256 (hex) of one line `rank|deputy_id|total` per row, the total with two "
                                    "decimals")

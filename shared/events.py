"""The events Minyi exchanges, one pydantic model per event type: the contract of the bus.

Every producer's `data` is checked against its type's model before it is staged (`new_event`), so an
event that does not say what the catalogue says never leaves the service; every consumer reads
`data` through the same model (`payload`), so a malformed event is refused with the field that is
wrong and goes to dead letters. The AsyncAPI document and docs/events.md are generated from here.

Upgrades: a model only ever gains optional fields, and consumers keep fields they do not know
(`extra="allow"`), so a consumer of the old release reads the new payloads and a consumer of the new
release reads old ones. Removing or retyping a field takes two releases: first every consumer stops
reading it, then the producer stops sending it (docs/integrators.md, "Versioning").
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.bus.streams import subject_matches


class EventData(BaseModel):
    """What every event's `data` has in common: fields not in the model are kept, not refused."""

    model_config = ConfigDict(extra="allow", frozen=True)


def _example(**values: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [values]})


REPORT_ID = "01a24791-2834-73b4-af9f-76adf45a0073"
AT = "2026-12-05T10:57:05.282842+08:00"

# ---- intake: citizens' reports (群众意见) --------------------------------------------------------


class Target(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["deputy", "station", "region"] = Field(
        description="a deputy (代表), a liaison station (联络站), or a region (filed without a code)")
    id: str | None = Field(description="the deputy's or station's id in identity; null for a region")


class Location(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    lat: float = Field(ge=-90, le=90, description="latitude, WGS-84")
    lon: float = Field(ge=-180, le=180, description="longitude, WGS-84")
    address: str | None = Field(default=None, description="what the citizen wrote about where")


class Attachment(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    kind: Literal["photo", "voice"] = Field(description="a photo or a voice recording")


REPORT_EXAMPLE = {"report_id": REPORT_ID, "status": "acknowledged", "round": 1, "region_code": "330110",
                  "target": {"kind": "deputy", "id": "demo-dep-county"}, "deputy_id": "demo-dep-county",
                  "station_id": None}


class ReportEvent(EventData):
    """What every `intake.report.*` event says about its report; never anything about the reporter."""

    report_id: str = Field(description="the report's id; also the event's `subject`")
    status: Literal["submitted", "acknowledged", "dispatched", "answered", "closed"] = Field(
        description="the report's status after this event")
    round: int = Field(ge=1, description="1, then one more each time the citizen's rating reopens the report")
    region_code: str = Field(description="the administrative code of where the report is about (GB/T 2260 and "
                                         "below)")
    target: Target = Field(description="whom the citizen wrote to")
    deputy_id: str | None = Field(description="the deputy handling it, or null when it went to a station")
    station_id: str | None = Field(description="the station handling it, or null when it went to a deputy")


class ReportSubmitted(ReportEvent):
    model_config = _example(**{**REPORT_EXAMPLE, "status": "submitted"}, channel="h5", content="小区门口路灯坏了一周了",
                            category=None, anonymous=True, attachments=[], location=None,
                            received_at=AT, ack_due="2026-12-08T23:59:59+08:00", reply_due="2026-12-15T23:59:59+08:00")

    channel: str = Field(description="how it came in: miniprogram, h5 (a phone's browser), kiosk, hotline, paper "
                                     "(registered by station staff), api …")
    content: str = Field(description="the citizen's words; never their name, phone or id number")
    category: str | None = Field(default=None, description="the category the citizen chose, if any; routing "
                                                           "decides (routing.report.classified)")
    anonymous: bool
    attachments: list[Attachment] = Field(default_factory=list)
    location: Location | None = None
    received_at: AwareDatetime
    ack_due: AwareDatetime = Field(description="the deputy must take it up by then (2 working days)")
    reply_due: AwareDatetime = Field(description="the citizen must have an answer by then (7 days)")


class ReportAcknowledged(ReportEvent):
    model_config = _example(**REPORT_EXAMPLE, by="deputy", at=AT, on_time=True, ack_due="2026-12-08T23:59:59+08:00")

    by: str = Field(description="who took it up: deputy, station_staff, grid …")
    at: AwareDatetime
    on_time: bool = Field(description="taken up by `ack_due`")
    ack_due: AwareDatetime


class ReportDispatched(ReportEvent):
    model_config = _example(**{**REPORT_EXAMPLE, "status": "dispatched"}, ticket_id="01a24791-28d3-782f",
                            platform_id="demo-grid", at=AT)

    ticket_id: str = Field(description="routing's ticket at the grid platform")
    platform_id: str | None = Field(description="the grid platform (基层治理四平台, 12345)")
    at: AwareDatetime


class ReportAnswered(ReportEvent):
    model_config = _example(**{**REPORT_EXAMPLE, "status": "answered"}, by="deputy", at=AT, on_time=True,
                            reply_due="2026-12-15T23:59:59+08:00", content="已安排维修人员处理完毕")

    by: str = Field(description="who answered: deputy, station_staff, grid (a platform resolved its ticket)")
    at: AwareDatetime
    on_time: bool = Field(description="answered by `reply_due`")
    reply_due: AwareDatetime
    content: str = Field(description="the answer the citizen reads")


class ReportRated(ReportEvent):
    model_config = _example(**{**REPORT_EXAMPLE, "status": "answered"}, stars=5, reopened=False, at=AT,
                            answered_by="deputy")

    stars: int = Field(ge=1, le=5, description="the citizen's rating of the answer")
    reopened: bool = Field(description="a low rating sent the report back for another round")
    at: AwareDatetime
    answered_by: str | None = Field(default=None, description="who had answered the rated reply")


class ReportClosed(ReportEvent):
    model_config = _example(**{**REPORT_EXAMPLE, "status": "closed"}, reason="rated", at=AT, stars=5)

    reason: str = Field(description="why: rated, auto (no rating within the time allowed), withdrawn …")
    at: AwareDatetime
    stars: int | None = Field(default=None, description="the rating, when there was one")


class ReportReminder(ReportEvent):
    model_config = _example(**REPORT_EXAMPLE, kind="reply", due_at="2026-12-15T23:59:59+08:00", at=AT)

    kind: Literal["ack", "reply"] = Field(description="which deadline is due today")
    due_at: AwareDatetime
    at: AwareDatetime


class ReportOverdue(ReportEvent):
    model_config = _example(**REPORT_EXAMPLE, kind="reply", due_at="2026-12-15T23:59:59+08:00", at=AT,
                            escalate_to=["station_staff", "npc_staff"])

    kind: Literal["ack", "reply"] = Field(description="which deadline passed")
    due_at: AwareDatetime
    at: AwareDatetime
    escalate_to: list[str] = Field(description="the roles the report is escalated to")


class ReportReminded(ReportEvent):
    model_config = _example(**REPORT_EXAMPLE, by="station_staff", note="请尽快受理", at=AT)

    by: str = Field(description="the role that urged the deputy (催办)")
    note: str | None = None
    at: AwareDatetime


class ReportSupported(EventData):
    """A citizen said "me too" (我也遇到) on a report; never who."""

    model_config = _example(report_id=REPORT_ID, support_id="01a24791-4258-7d0a", anonymous=True, supporters=3,
                            region_code="330110", at=AT)

    report_id: str
    support_id: str
    anonymous: bool
    supporters: int = Field(ge=0, description="the report's count of supporters after this one")
    region_code: str
    at: AwareDatetime


# ---- routing: categories, tickets and hotspots -----------------------------------------------------


class ReportClassified(EventData):
    model_config = _example(report_id=REPORT_ID, category="municipal_facilities", category_label="市政设施",
                            source="text", handler="grid", platform_id="demo-grid", reason="longest_prefix")

    report_id: str
    category: str = Field(description="one of routing's categories (GET /v1/categories)")
    category_label: str = Field(description="the category's Chinese name")
    source: str = Field(description="how it was decided: text (the words), hint (the citizen's choice) …")
    handler: Literal["grid", "deputy"] = Field(description="a grid platform handles it, or the deputy")
    platform_id: str | None = Field(description="the platform, when `handler` is grid")
    reason: str = Field(description="why that platform: longest_prefix (of its regions) …, or why none")


TicketStatus = Literal["queued", "sent", "accepted", "in_progress", "resolved", "returned", "failed"]


class TicketEvent(EventData):
    """A ticket's news, newest-wins: a consumer applies it only if its `version` is above the last it
    applied for the ticket, whatever order the events arrive in. `routing.ticket.created` (the
    platform has the ticket) and `routing.ticket.updated` (its status changed) share this model."""

    ticket_id: str
    report_id: str
    platform_id: str
    at: AwareDatetime
    # Optional only for events from a routing of a release before ticket versions: applied as they come.
    version: int | None = Field(default=None, ge=1,
                                description="the ticket's version after this change; higher is newer")


class TicketCreated(TicketEvent):
    model_config = _example(ticket_id="01a24791-28d3-782f", report_id=REPORT_ID, platform_id="demo-grid",
                            region_code="330110", category="municipal_facilities", at=AT, status="sent", version=2)

    region_code: str
    category: str
    status: TicketStatus | None = Field(default=None, description="the ticket's status once the platform has it "
                                                                  "(sent, or later when its news came first)")


class TicketUpdated(TicketEvent):
    model_config = _example(ticket_id="01a24791-28d3-782f", report_id=REPORT_ID, platform_id="demo-grid",
                            status="accepted", at=AT, version=3, note="已受理，已派发至属地网格员")

    status: TicketStatus = Field(
        description="resolved answers the report unless the deputy already did; returned (退回) and failed hand it "
                    "back to the deputy")
    note: str | None = Field(default=None, description="the platform's words, shown to the citizen when public")


class HotspotDetected(EventData):
    model_config = _example(id="01a24791-2d15-7ec0", region_code="330110002", category="order_safety", count=5,
                            keywords=["占道经营", "菜市场"], report_ids=[REPORT_ID], first_at=AT, last_at=AT,
                            state="open", supporters=0, places=["西溪街道菜市场"],
                            category_counts={"order_safety": 5}, topic_title=None, suggestion_id=None,
                            detected_at=AT, window_days=30)

    id: str = Field(description="the hotspot's id; also its supervision topic's id in suggestions")
    region_code: str = Field(description="the most specific region all its reports share")
    category: str = Field(description="the majority category of its reports")
    count: int = Field(ge=1, description="how many reports it holds")
    keywords: list[str]
    report_ids: list[str]
    first_at: AwareDatetime
    last_at: AwareDatetime
    state: Literal["open", "converted", "closed", "merged"] = "open"
    supporters: int = Field(default=0, ge=0, description="citizens who said \"me too\" on its reports")
    places: list[str] = Field(default_factory=list, description="places its reports name")
    category_counts: dict[str, int] = Field(default_factory=dict)
    topic_title: str | None = None
    suggestion_id: str | None = None
    detected_at: AwareDatetime | None = None
    window_days: int | None = Field(default=None, description="the window its reports were gathered over")


class HotspotProgressed(EventData):
    """A step in a hotspot's life, for the citizens of `report_ids`; names no reporter."""

    model_config = _example(hotspot_id="01a24791-2d15-7ec0", step="joined", report_ids=[REPORT_ID], count=5,
                            supporters=0, places=["西溪街道菜市场"], keywords=["占道经营"], category="order_safety",
                            topic_title=None, suggestion_id=None, suggestion_title=None, outcome=None, note=None,
                            at=AT)

    hotspot_id: str
    step: Literal["joined", "converted", "assigned", "replied", "followed_up", "solved", "closed"]
    report_ids: list[str] = Field(description="the reports this step is news for")
    count: int
    supporters: int = 0
    places: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list, description="terms at least two of its reports use")
    category: str
    topic_title: str | None = None
    suggestion_id: str | None = None
    suggestion_title: str | None = None
    outcome: str | None = Field(default=None, description="the suggestion's outcome class: A, B, C or the region's "
                                                          "own")
    note: str | None = None
    at: AwareDatetime


# ---- suggestions: deputies' suggestions (代表建议) --------------------------------------------------


class SuggestionStep(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    seq: int = Field(ge=1, description="the step's place in the suggestion's timeline")
    kind: str = Field(description="the step: submitted, assigned, replied, evaluated … (the event type's last "
                                  "word)")
    actor: str | None = None
    note: str | None = None
    at: AwareDatetime
    data: dict[str, Any] = Field(default_factory=dict, description="what the step adds: assigned {due_at, key}, "
                                 "replied {outcome, on_time, due_at, planned_year}, evaluated {result, referred}, "
                                 "reviewed {outcome, review_year}, carried_over {year, term, new_term} …")


class SuggestionReply(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    unit_id: str
    content: str
    outcome: str = Field(description="A solved, B planned within 3 years, C kept for reference (or the region's "
                                     "own classes)")
    planned_year: int | None = None
    public: bool
    at: AwareDatetime


class ExtensionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    unit_id: str
    reason: str
    months: int
    at: AwareDatetime


class OutcomeClass(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    code: str
    label: str
    solved: bool
    needs_planned_year: bool = False
    reference: bool = False


class SuggestionEvent(EventData):
    """Every `suggestions.suggestion.*` event: the suggestion after the step, and the step."""

    model_config = _example(id="ca0150f2-6a71-5fee", title="关于整治菜市场周边占道经营的建议",
                            content="建议统筹规划疏导点。", lead_deputy_id="demo-dep-county", co_signer_ids=[],
                            region_code="330110", year=2026, years=[2026], term=14, kind="interim", micro=False,
                            status="assigned", outcome=None, outcome_label=None, reference=False, key=True,
                            key_requested=True, supervisor=None, lead_unit_id="demo-unit-transport",
                            assisting_unit_ids=[], assigned_at=AT, due_at="2027-03-06T23:59:59+08:00",
                            extended=False, extension_request=None, assisting_due_at=None, assisting_views=[],
                            meetings=[], dissatisfied=0, outcome_classes=[], reply=None, next_review_at=None,
                            review_year=None, repeat_of=None, topic_id=None, submitted_at=AT, closed_at=None, seq=2,
                            step={"seq": 2, "kind": "assigned", "actor": "npc_staff", "note": None, "at": AT,
                                  "data": {"due_at": "2027-03-06T23:59:59+08:00", "key": True}})

    id: str
    title: str
    content: str
    lead_deputy_id: str
    co_signer_ids: list[str] = Field(default_factory=list)
    region_code: str
    year: int = Field(description="the year it was submitted for")
    years: list[int] = Field(default_factory=list, description="the yearly lists it is on (滚动办理)")
    term: int = Field(description="the congress's term (届) it belongs to")
    kind: Literal["session", "interim"]
    micro: bool = False
    status: Literal["submitted", "assigned", "replied", "evaluated", "reassigned", "referred", "following_up",
                    "closed"] = Field(description="referred: after a second dissatisfaction, waiting for the "
                                                  "director's meeting (主任会议)")
    outcome: str | None = None
    outcome_label: str | None = None
    reference: bool = False
    key: bool = Field(default=False, description="a key suggestion (重点建议)")
    key_requested: bool = False
    supervisor: str | None = None
    lead_unit_id: str | None = None
    assisting_unit_ids: list[str] = Field(default_factory=list)
    assigned_at: AwareDatetime | None = None
    due_at: AwareDatetime | None = None
    extended: bool = False
    extension_request: ExtensionRequest | None = None
    assisting_due_at: AwareDatetime | None = None
    assisting_views: list[str] = Field(default_factory=list)
    meetings: list[str] = Field(default_factory=list)
    dissatisfied: int = 0
    outcome_classes: list[OutcomeClass] = Field(default_factory=list)
    reply: SuggestionReply | None = None
    next_review_at: AwareDatetime | None = None
    review_year: int | None = None
    repeat_of: dict[str, Any] | None = Field(default=None, description="an earlier suggestion it repeats: "
                                             "{id, title, outcome, status, similarity}")
    topic_id: str | None = Field(default=None, description="the supervision topic (hotspot) it was born of")
    submitted_at: AwareDatetime
    closed_at: AwareDatetime | None = None
    seq: int = Field(ge=1, description="the suggestion's last step; higher is newer")
    step: SuggestionStep


class TopicClosed(EventData):
    model_config = _example(id="01a24791-2d15-7ec0", note="已由街道统一整治", region_code="330110", at=AT)

    id: str = Field(description="the topic's id, which is its hotspot's")
    note: str
    region_code: str
    at: AwareDatetime


# ---- scoring: deputies' points (履职积分) ---------------------------------------------------------


class PointsRecorded(EventData):
    model_config = _example(id="496ba65e-b4fa-5687", deputy_id="demo-dep-county", year=2026, at=AT, points=0.5,
                            part="base", dimension="relief", rule_code="report_ack_on_time", rule_region="",
                            rule_version=0, source="intake.report.acknowledged", source_id="01a24791-2911-73e8",
                            reason="按时受理群众意见", recorded_by=None, evidence=None, reverses=None)

    id: str = Field(description="the ledger entry's id, the same for the same source and rule")
    deputy_id: str
    year: int
    at: AwareDatetime
    points: float
    part: Literal["base", "bonus"]
    dimension: str = Field(description="exemplary, conduct, supervision, advisory or relief")
    rule_code: str
    rule_region: str
    rule_version: int
    source: str = Field(description="the event type or activity that earned it")
    source_id: str
    reason: str
    recorded_by: str | None = Field(default=None, description="staff who recorded an activity by hand")
    evidence: dict[str, Any] | None = None
    reverses: str | None = Field(default=None, description="the entry this one cancels")


class RankingRow(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    deputy_id: str
    name: str
    total: float
    rank: int
    stars: int


class RankingPublished(EventData):
    """One page of a published ranking; all pages of one publication share `id` and `digest`."""

    model_config = _example(id="01a24791-7143-7e3d", year=2026, region_code="330110", level="county",
                            published_by="npc-staff-1", published_at=AT, deputies=1, digest="2b7e47d8…",
                            pages=1, page=1, offset=0,
                            rows=[{"deputy_id": "demo-dep-county", "name": "陈明", "total": 6.0, "rank": 1,
                                   "stars": 0}])

    id: str
    year: int
    region_code: str
    level: str | None = None
    published_by: str
    published_at: AwareDatetime
    deputies: int
    digest: str = Field(description="sha256 of one `rank|deputy_id|total` line per row, totals with two decimals")
    pages: int = Field(ge=1)
    page: int = Field(ge=1)
    offset: int = Field(ge=0)
    rows: list[RankingRow]


class RulesChanged(EventData):
    model_config = _example(region_code="330110", effective_from="2027-01-01", version=2, rules=[], grading={},
                            board={}, recorded_by="npc-staff-1")

    region_code: str
    effective_from: date
    version: int
    rules: list[dict[str, Any]]
    grading: dict[str, Any]
    board: dict[str, Any]
    recorded_by: str | None = None


# ---- identity: the directory and reconciliation -----------------------------------------------------


class DeputyUpdated(EventData):
    model_config = _example(id="demo-dep-county", name="陈明", level="county", region_code="330110",
                            station_ids=["demo-center"], district_id=None, groups=[], version=1)

    id: str
    name: str
    level: str = Field(description="national, provincial, municipal, county or township")
    region_code: str
    station_ids: list[str] = Field(default_factory=list)
    district_id: str | None = None
    groups: list[str] = Field(default_factory=list)
    version: int = Field(ge=1, description="higher is newer")


class StationUpdated(EventData):
    model_config = _example(id="demo-center", name="演示区人大代表联络服务中心", kind="service_center",
                            region_code="330110", version=1)

    id: str
    name: str
    kind: str = Field(description="service_center, home (代表之家), station (联络站), studio, cloud_point")
    region_code: str
    version: int = Field(ge=1)


class ReconciliationCompleted(EventData):
    model_config = _example(election_id="demo-330110-2026", job_id="01a24791-281c",
                            counts={"deceased": 1, "deprived": 0, "underage": 0, "duplicate": 1,
                                    "wrong_district": 2, "missing": 3})

    election_id: str
    job_id: str
    counts: dict[str, int] = Field(description="findings by kind")


# ---- from outside Minyi ---------------------------------------------------------------------------


class GridTicket(EventData):
    """What routing sends a grid platform on `grid.<platform_id>.tickets` (and POSTs over http)."""

    model_config = _example(ticket_id="01a24791-28d3-782f", report_id=REPORT_ID, region_code="330110",
                            category="municipal_facilities", content="小区门口路灯坏了一周了",
                            due_at="2026-12-15T23:59:59+08:00", callback_url="https://minyi.example/v1/grid/callbacks")

    ticket_id: str = Field(description="a platform must treat a repeated ticket_id as the same ticket")
    report_id: str
    region_code: str
    category: str
    content: str
    location: Location | None = None
    due_at: AwareDatetime | None = None
    callback_url: str


class GridStatus(EventData):
    """A grid platform's status for a ticket, on `grid.<platform_id>.events`; signed like an HTTP callback."""

    model_config = _example(ticket_id="01a24791-28d3-782f", status="resolved", note="已修复", at=AT)

    ticket_id: str = Field(min_length=1, max_length=64)
    status: Literal["accepted", "in_progress", "resolved", "returned"]
    note: str | None = Field(default=None, max_length=2000)
    at: AwareDatetime


class RegistryRecord(EventData):
    """One registry record on `registry.<source>.records` (a bare JSON object, a CloudEvent with it as
    `data`, or a JSON array of up to 1,000 of them). Identity checks each record itself, so that one
    bad record is refused alone with its reason; this model documents the same fields."""

    model_config = _example(record_id="P-000123", id_number="330102199001011234", name="张三",
                            hukou_region_code="330110", residence_region_code="330110", status="active",
                            political_rights=True, residence_certificate=None, updated_at=AT)

    record_id: str = Field(description="the registry's own key; a later record with the same key replaces it")
    id_number: str = Field(description="18-character resident id number; stored encrypted")
    name: str = Field(description="stored encrypted")
    hukou_region_code: str = Field(description="6, 9 or 12 digits")
    residence_region_code: str = Field(description="6, 9 or 12 digits")
    status: Literal["active", "deceased", "emigrated"]
    political_rights: bool = Field(description="false when deprived of political rights")
    residence_certificate: bool | None = Field(default=None, description="migrant registry: holds a residence "
                                                                         "permit")
    updated_at: str = Field(description="RFC 3339; without an offset it is read as China time")
    source: str | None = Field(default=None, description="if given, must be the source it was sent as")


# ---- the catalogue -------------------------------------------------------------------------------

MODELS: dict[str, type[EventData]] = {
    "intake.report.submitted": ReportSubmitted,
    "intake.report.acknowledged": ReportAcknowledged,
    "intake.report.dispatched": ReportDispatched,
    "intake.report.answered": ReportAnswered,
    "intake.report.rated": ReportRated,
    "intake.report.overdue": ReportOverdue,
    "intake.report.reminder": ReportReminder,
    "intake.report.reminded": ReportReminded,
    "intake.report.closed": ReportClosed,
    "intake.report.supported": ReportSupported,
    "routing.report.classified": ReportClassified,
    "routing.ticket.created": TicketCreated,
    "routing.ticket.updated": TicketUpdated,
    "routing.hotspot.detected": HotspotDetected,
    "routing.hotspot.progressed": HotspotProgressed,
    **{f"suggestions.suggestion.{step}": SuggestionEvent
       for step in ("submitted", "assigned", "extended", "replied", "evaluated", "reassigned", "overdue", "reviewed",
                    "closed", "meeting", "assisting_view", "director_decision", "carried_over",
                    "extension_requested")},
    "suggestions.topic.closed": TopicClosed,
    "scoring.points.recorded": PointsRecorded,
    "scoring.ranking.published": RankingPublished,
    "scoring.rules.changed": RulesChanged,
    "identity.deputy.updated": DeputyUpdated,
    "identity.station.updated": StationUpdated,
    "identity.reconciliation.completed": ReconciliationCompleted,
}

# Subjects outside systems publish on (or receive): the model goes by the subject, whatever `type`
# the producer chose.
INBOUND: dict[str, type[EventData]] = {
    "grid.*.events": GridStatus,
    "grid.*.tickets": GridTicket,
    "registry.*.records": RegistryRecord,
}


class PayloadError(ValueError):
    """`data` does not match its event type's model; says which field and why."""


def model_for(event_type: str, subject: str | None = None) -> type[EventData] | None:
    if subject is not None:
        for pattern, model in INBOUND.items():
            if subject_matches(pattern, subject):
                return model
    return MODELS.get(event_type)


def describe_error(exc: ValidationError) -> str:
    """The first few problems as `field: message`, for logs and dead letters."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "data"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def read(model: type[EventData], data: dict[str, Any]) -> EventData:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PayloadError(f"{model.__name__}: {describe_error(exc)}") from exc


def example(model: type[BaseModel]) -> dict[str, Any]:
    """The model's documented example (a fresh copy); every model in the catalogue has one."""
    extra = model.model_config.get("json_schema_extra")
    found = extra.get("examples") if isinstance(extra, dict) else None
    if not isinstance(found, list) or not found:
        raise LookupError(f"{model.__name__} has no example")
    return copy.deepcopy(found[0])


def check_outgoing(event_type: str, data: dict[str, Any]) -> None:
    """Refuse what a producer is about to send unless its type is in the catalogue and `data` matches
    the model, with no field the model does not describe: the catalogue is then the whole truth."""
    model = MODELS.get(event_type)
    if model is None:
        raise PayloadError(f"{event_type} is not in the event catalogue (shared/events.py)")
    read(model, data)
    undocumented = sorted(set(data) - set(model.model_fields))
    if undocumented:
        raise PayloadError(f"{event_type} carries fields its model does not describe: {', '.join(undocumented)}")

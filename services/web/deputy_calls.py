"""The services as a signed-in deputy uses them: intake's reports, suggestions, scoring's year,
identity's list of the region's deputies.

Every call carries the deputy's own token, so the deputy sees and does exactly what the services
allow that token; the pages add no access of their own. Answers are read into small models that
keep only what the deputy's pages show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, TypeAdapter

from services.web.signed_calls import SignedInCalls
from services.web.upstreams import Model

REPORT_STATUSES = ("submitted", "acknowledged", "dispatched", "answered", "closed")
# Statuses in which the deputy still owes the citizen something.
OPEN_STATUSES = ("submitted", "acknowledged", "dispatched")
# Intake's filter for each count of the inbox.
COUNT_PARAMS: dict[str, dict[str, str]] = {**{s: {"status": s} for s in REPORT_STATUSES}, "open": {"open": "true"},
                                           "overdue": {"overdue": "true"}}
# Intake's largest page.
_PAGE = 100
# Identity's largest page of deputies, and how many a region's names are read up to.
DIRECTORY_PAGE = 100
DIRECTORY_MAX = 1000


class Reporter(Model):
    name: str = ""
    phone: str = ""
    id_number: str | None = None


class Target(Model):
    kind: str
    id: str | None = None
    region_code: str = ""


class InboxItem(Model):
    id: str
    channel: str
    status: str
    round: int = 1
    target: Target
    region_code: str
    category: str | None = None
    excerpt: str = ""
    anonymous: bool = True
    reporter: Reporter | None = None
    reporter_unreadable: bool = False
    received_at: str
    ack_due: str
    reply_due: str
    due_at: str
    acknowledged_at: str | None = None
    answered_at: str | None = None
    ack_overdue: bool = False
    reply_overdue: bool = False
    overdue: bool = False
    # Citizens who said they have the same problem (附议), and the common matter the report joined.
    supporters: int = 0
    hotspot_id: str | None = None


class InboxPage(Model):
    items: list[InboxItem]
    total: int


class ReportStep(Model):
    at: str
    status: str
    note: str
    public: bool = True
    actor: str | None = None


class ReportFile(Model):
    id: str
    kind: str
    media_type: str
    size: int


class ReportDetail(InboxItem):
    content: str = ""
    ticket_id: str | None = None
    reply: str | None = None
    answered_by: str | None = None
    rating_stars: int | None = None
    rating_comment: str | None = None
    closed_at: str | None = None
    attachments: list[ReportFile] = Field(default_factory=list)
    timeline: list[ReportStep] = Field(default_factory=list)


class SuggestionReply(Model):
    unit_id: str
    content: str
    outcome: str
    planned_year: int | None = None
    at: str


class SuggestionStep(Model):
    seq: int = 0
    at: str
    kind: str
    actor: str | None = None
    note: str | None = None
    # What some steps carry besides the note.
    result: str | None = None
    stage: str | None = None
    decision: str | None = None
    due_at: str | None = None
    outcome: str | None = None
    unit_id: str | None = None


class Suggestion(Model):
    id: str
    title: str
    content: str = ""
    lead_deputy_id: str
    co_signer_ids: list[str] = Field(default_factory=list)
    region_code: str = ""
    year: int
    kind: str = "interim"
    micro: bool = False
    status: str
    color: str | None = None
    outcome: str | None = None
    outcome_label: str | None = None
    key: bool = False
    lead_unit_id: str | None = None
    assisting_unit_ids: list[str] = Field(default_factory=list)
    assigned_at: str | None = None
    due_at: str | None = None
    extended: bool = False
    reply: SuggestionReply | None = None
    next_review_at: str | None = None
    submitted_at: str | None = None
    closed_at: str | None = None
    timeline: list[SuggestionStep] = Field(default_factory=list)


class ScoreEntry(Model):
    id: str
    at: str
    points: float
    part: str
    dimension: str
    rule_code: str
    rule_region: str = "default"
    rule_version: int = 0
    source: str
    source_id: str = ""
    reason: str = ""
    recorded_by: str | None = None
    evidence: dict[str, Any] | None = None
    reverses: str | None = None


class Score(Model):
    deputy_id: str
    name: str = ""
    year: int
    base: float = 0
    bonus: float = 0
    total: float = 0
    stars: int = 0
    grade: str = ""
    dimensions: dict[str, float] = Field(default_factory=dict)
    entries: list[ScoreEntry] = Field(default_factory=list)


class DeputyName(Model):
    deputy_id: str
    name: str = ""


class ListedDeputy(Model):
    id: str
    name: str


class DeputyListing(Model):
    items: list[ListedDeputy]
    next: str | None = None

    def names(self) -> list[DeputyName]:
        return [DeputyName(deputy_id=d.id, name=d.name) for d in self.items]


_SUGGESTIONS = TypeAdapter(list[Suggestion])
_LISTED = TypeAdapter(DeputyListing)


class DeputyCalls(SignedInCalls):
    """What the deputy's pages ask the services, on the deputy's behalf."""

    # ---- reports (intake) ------------------------------------------------------------------------

    async def _page(self, params: Mapping[str, str], page: int, page_size: int) -> InboxPage:
        body = await self.up.intake.json("GET", "/v1/reports", params={**params, "page": page, "page_size": page_size},
                                         headers=self.headers())
        return InboxPage.model_validate(body)

    async def inbox(self, params: Mapping[str, str], offset: int, size: int) -> InboxPage:
        """Rows `offset … offset+size` of intake's list for `params` (by next deadline), and how many in all:
        one call for a page of the inbox, several of intake's largest pages for an export."""
        if size <= _PAGE and offset % size == 0:
            return await self._page(params, offset // size + 1, size)
        assert offset % _PAGE == 0, "an export starts on a page boundary"
        first = await self._page(params, offset // _PAGE + 1, _PAGE)
        items, page = list(first.items), offset // _PAGE + 2
        while len(items) < size and offset + len(items) < first.total:
            more = await self._page(params, page, _PAGE)
            if not more.items:
                break
            items += more.items
            page += 1
        return InboxPage(items=items[:size], total=first.total)

    async def counts(self, keys: Sequence[str]) -> dict[str, int]:
        """How many reports each count of `keys` (a status, or "overdue") holds: one smallest page each."""
        pages = await asyncio.gather(*(self._page(COUNT_PARAMS[key], 1, 1) for key in keys))
        return {key: page.total for key, page in zip(keys, pages, strict=True)}

    async def report(self, report_id: str) -> ReportDetail:
        body = await self.up.intake.json("GET", f"/v1/reports/{report_id}", headers=self.headers())
        return ReportDetail.model_validate(body)

    async def acknowledge(self, report_id: str) -> ReportDetail:
        body = await self.up.intake.json("POST", f"/v1/reports/{report_id}/acknowledge", headers=self.headers())
        return ReportDetail.model_validate(body)

    async def reply(self, report_id: str, content: str, *, idempotency_key: str) -> ReportDetail:
        body = await self.up.intake.json("POST", f"/v1/reports/{report_id}/reply", json={"content": content},
                                         headers=self.headers(idempotency_key))
        return ReportDetail.model_validate(body)

    async def unmask(self, report_id: str, reason: str) -> Reporter:
        body = await self.up.intake.json("POST", f"/v1/reports/{report_id}/reporter/unmask",
                                         json={"reason": reason}, headers=self.headers())
        return Reporter.model_validate(body)

    async def attachment(self, report_id: str, attachment_id: str) -> tuple[bytes, str]:
        response = await self.up.intake.call("GET", f"/v1/reports/{report_id}/attachments/{attachment_id}",
                                             headers=self.headers())
        assert response is not None
        return response.content, response.headers.get("content-type", "application/octet-stream")

    # ---- suggestions -----------------------------------------------------------------------------

    async def suggestions(self, *, status: str | None, color: str | None, limit: int,
                          offset: int) -> list[Suggestion]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        if color:
            params["color"] = color
        return _SUGGESTIONS.validate_python(await self.up.suggestions.json("GET", "/v1/suggestions", params=params,
                                                                           headers=self.headers()))

    async def suggestion(self, suggestion_id: str) -> Suggestion:
        body = await self.up.suggestions.json("GET", f"/v1/suggestions/{suggestion_id}", headers=self.headers())
        return Suggestion.model_validate(body)

    async def submit_suggestion(self, body: dict[str, Any], *, idempotency_key: str) -> Suggestion:
        answer = await self.up.suggestions.json("POST", "/v1/suggestions", json=body,
                                                headers=self.headers(idempotency_key))
        return Suggestion.model_validate(answer)

    async def evaluate(self, suggestion_id: str, result: str, comment: str | None, *,
                       idempotency_key: str) -> None:
        await self.up.suggestions.call("POST", f"/v1/suggestions/{suggestion_id}/evaluation",
                                       json={"result": result, "comment": comment},
                                       headers=self.headers(idempotency_key))

    async def region_unit_names(self) -> dict[str, str]:
        """The deputy's own region's units; none for a deputy without a region."""
        return await self.unit_names(self.session.region) if self.session.region else {}

    async def find_deputies(self, q: str, limit: int) -> list[DeputyName]:
        """Deputies of the deputy's region whose name holds `q` (the first ones by name when empty), from
        identity's listing for the deputy's own token: names only, never a phone."""
        params: dict[str, Any] = {"limit": max(1, min(limit, DIRECTORY_PAGE))}
        if q.strip():
            params["q"] = q.strip()
        body = await self.up.identity.json("GET", "/v1/deputies", params=params, headers=self.headers())
        return _LISTED.validate_python(body).names()

    async def region_deputies(self) -> list[DeputyName]:
        """Every deputy of the deputy's region (up to DIRECTORY_MAX), to name the co-signers of a suggestion."""
        found: list[DeputyName] = []
        after: str | None = None
        while len(found) < DIRECTORY_MAX:
            params: dict[str, Any] = {"limit": DIRECTORY_PAGE, **({"after": after} if after else {})}
            page = _LISTED.validate_python(await self.up.identity.json("GET", "/v1/deputies", params=params,
                                                                       headers=self.headers()))
            found += page.names()
            after = page.next
            if after is None:
                break
        return found

    # ---- scoring ---------------------------------------------------------------------------------

    async def score(self, year: int) -> Score:
        body = await self.up.scoring.json("GET", f"/v1/deputies/{self.session.deputy_id}/score",
                                          params={"year": year}, headers=self.headers())
        return Score.model_validate(body)

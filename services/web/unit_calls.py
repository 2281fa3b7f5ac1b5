"""The suggestions service's API as a handling unit's pages use it, with the unit's own token.

Every call carries the signed-in person's Bearer token, so the service alone decides what the unit
may see and do: a unit lists only its own suggestions (as lead or assisting unit), and an action
it may not take comes back as the service's refusal, never as something the pages allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter

from services.web.signed_calls import SignedInCalls
from services.web.upstreams import Model


class Entry(Model):
    """One step of a suggestion's timeline; `data` holds what the step's kind adds (stage, unit, due time …)."""

    seq: int
    at: str
    kind: str
    actor: str = ""
    note: str | None = None
    stage: str | None = None
    unit_id: str | None = None
    due_at: str | None = None
    outcome: str | None = None
    result: str | None = None
    review_year: int | None = None
    planned_year: int | None = None
    year: int | None = None
    deadline: str | None = None
    decision: str | None = None
    months: int | None = None


class SuggestionReply(Model):
    unit_id: str
    content: str
    outcome: str
    planned_year: int | None = None
    public: bool = True
    at: str


class ExtensionRequest(Model):
    """The lead unit's pending request for the one extension; staff grant it by extending."""

    unit_id: str
    reason: str
    months: int
    at: str


class OutcomeClass(Model):
    code: str
    label: str
    solved: bool = False
    needs_planned_year: bool = False
    reference: bool = False


class FundBalance(Model):
    """The micro-suggestion fund a micro suggestion draws on, as its lead unit may read it (yuan)."""

    region_code: str
    year: int
    amount: str
    spent: str
    balance: str


class Suggestion(Model):
    id: str
    title: str
    content: str = ""
    region_code: str = ""
    year: int
    years: tuple[int, ...] = ()
    kind: str = "session"
    micro: bool = False
    status: str
    color: str = "green"
    outcome: str | None = None
    outcome_label: str | None = None
    key: bool = False
    supervisor: str | None = None
    lead_unit_id: str | None = None
    assisting_unit_ids: tuple[str, ...] = ()
    assigned_at: str | None = None
    due_at: str | None = None
    extended: bool = False
    extension_request: ExtensionRequest | None = None
    assisting_due_at: str | None = None
    assisting_views: tuple[str, ...] = ()
    meetings: tuple[str, ...] = ()
    reply: SuggestionReply | None = None
    # the classes the reply is given in (the region's own scheme), and for its lead unit the fund it spends from
    outcome_classes: tuple[OutcomeClass, ...] = ()
    fund: FundBalance | None = None
    next_review_at: str | None = None
    review_year: int | None = None
    submitted_at: str
    closed_at: str | None = None
    timeline: tuple[Entry, ...] = ()


class FundItem(Model):
    id: str
    suggestion_id: str
    amount: str
    note: str
    recorded_at: str


class Fund(Model):
    region_code: str
    year: int
    amount: str
    spent: str
    balance: str
    items: tuple[FundItem, ...] = ()


_SUGGESTIONS = TypeAdapter(list[Suggestion])


class UnitCalls(SignedInCalls):
    """The calls of one signed-in unit, each with its token."""

    async def list(self, *, status: str | None, color: str | None, year: int | None, limit: int,
                   offset: int) -> list[Suggestion]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if self.session.unit_id:
            # The service lists a unit's own anyway; naming it keeps a person holding other roles to this unit.
            params["unit_id"] = self.session.unit_id
        for name, value in (("status", status), ("color", color), ("year", year)):
            if value is not None:
                params[name] = value
        body = await self.up.suggestions.json("GET", "/v1/suggestions", params=params, headers=self.headers())
        return _SUGGESTIONS.validate_python(body)

    async def get(self, suggestion_id: str) -> Suggestion:
        body = await self.up.suggestions.json("GET", f"/v1/suggestions/{suggestion_id}", headers=self.headers())
        return Suggestion.model_validate(body)

    async def act(self, suggestion_id: str, action: str, body: Mapping[str, Any], idempotency_key: str) -> None:
        """One action on the suggestion (meetings, assisting-views, replies, extension-request, progress)."""
        await self.up.suggestions.call("POST", f"/v1/suggestions/{suggestion_id}/{action}", json=dict(body),
                                       headers=self.headers(idempotency_key))

    async def spend(self, suggestion_id: str, amount: str, note: str, idempotency_key: str) -> Fund:
        body = await self.up.suggestions.json("POST", f"/v1/suggestions/{suggestion_id}/spending",
                                              json={"amount": amount, "note": note},
                                              headers=self.headers(idempotency_key))
        return Fund.model_validate(body)

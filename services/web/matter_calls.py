"""The services as the pages about common matters (共性事项) use them, anonymously: routing's public
hotspots (a matter, and the matters an unsent report probably repeats) and intake's supports (附议).

Routing's public answers name no one and hold no report's text; the pages show no more than that.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, TypeAdapter

from services.web.upstreams import Citizen, Model, Upstreams


class MatterShown(Model):
    """What routing publishes of a matter, in a list of likely repeats or on its own page."""

    report_id: str | None = None
    category: str = "other"
    category_label: str = ""
    region_code: str = ""
    places: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    count: int = 0
    supporters: int = 0
    state: str = "open"
    first_at: str | None = None
    last_at: str | None = None


class MatterMatch(MatterShown):
    """A matter an unsent report probably repeats, as routing ranks it."""

    hotspot_id: str
    score: float = 0.0


class Matter(MatterShown):
    """A matter as anyone may see it: what and where, how many, and what became of it."""

    id: str
    topic_title: str | None = None
    suggestion_id: str | None = None
    merged_into: str | None = None


class Supported(Model):
    report_id: str
    supporters: int


_MATCHES = TypeAdapter(list[MatterMatch])


async def similar(upstreams: Upstreams, *, region_code: str, content: str, point: tuple[float, float] | None,
                  citizen: Citizen) -> list[MatterMatch]:
    body: dict[str, Any] = {"region_code": region_code, "content": content}
    if point is not None:
        body["lat"], body["lon"] = point
    # The citizen's address: routing counts lookups per person, as intake counts reports.
    found = await upstreams.routing.json("POST", "/v1/public/hotspots/similar", json=body, citizen=citizen)
    return _MATCHES.validate_python((found or {}).get("matches", []))


async def matter(upstreams: Upstreams, hotspot_id: str, *, citizen: Citizen) -> Matter | None:
    body = await upstreams.routing.json("GET", f"/v1/public/hotspots/{hotspot_id}", not_found_ok=True,
                                        citizen=citizen)
    return None if body is None else Matter.model_validate(body)


async def support(upstreams: Upstreams, report_id: str, body: dict[str, Any], *, idempotency_key: str,
                  citizen: Citizen) -> Supported:
    answer = await upstreams.intake.json("POST", f"/v1/reports/{report_id}/supports", json=body,
                                         headers={"Idempotency-Key": idempotency_key}, citizen=citizen)
    return Supported.model_validate(answer)

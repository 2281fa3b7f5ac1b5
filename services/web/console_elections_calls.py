"""What the console's election pages ask of identity, as the signed-in staff member (their token).

The region's elections (latest first), one election with its districts, starting a reconciliation,
and its progress and findings a page at a time. Identity records every page of findings it shows
(`reconciliation.items_shown`), so reading findings here is a disclosure on record: the progress
poll reads past the last page, which holds no names and records nothing.
"""

from __future__ import annotations

from pydantic import Field

from services.web.signed_calls import SignedInCalls
from services.web.upstreams import Model

# identity's largest page number: a page this far out holds no findings, whatever the election.
BEYOND_LAST_PAGE = 100_000


class ReconciliationSummary(Model):
    job_id: str
    status: str
    progress: float = 0.0
    started_at: str
    finished_at: str | None = None


class ElectionListed(Model):
    id: str
    region_code: str
    election_date: str
    reconciliation: ReconciliationSummary | None = None


class ElectionPage(Model):
    items: list[ElectionListed]
    next: str | None = None


class District(Model):
    id: str
    region_codes: list[str] = Field(default_factory=list)


class Election(Model):
    id: str
    region_code: str
    election_date: str
    districts: list[District] = Field(default_factory=list)
    voters: int = 0


class Finding(Model):
    kind: str
    id_number_masked: str
    name: str
    district_id: str | None = None
    expected_district_id: str | None = None


class Reconciliation(Model):
    job_id: str
    status: str
    progress: float = 0.0
    step: str | None = None
    error: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    page: int = 1
    page_size: int = 50
    total_items: int = 0
    items: list[Finding] = Field(default_factory=list)


class ElectionCalls(SignedInCalls):
    async def elections(self, after: str | None, limit: int) -> ElectionPage:
        params: dict[str, str | int] = {"limit": limit}
        if after:
            params["after"] = after
        body = await self.up.identity.json("GET", "/v1/elections", params=params, headers=self.headers())
        return ElectionPage.model_validate(body)

    async def election(self, election_id: str) -> Election | None:
        body = await self.up.identity.json("GET", f"/v1/elections/{election_id}", headers=self.headers(),
                                           not_found_ok=True)
        return None if body is None else Election.model_validate(body)

    async def start(self, election_id: str) -> str:
        body = await self.up.identity.json("POST", f"/v1/elections/{election_id}/reconciliation",
                                           headers=self.headers())
        return str(body["job_id"])

    async def findings(self, election_id: str, kind: str | None, page: int) -> Reconciliation | None:
        """The latest reconciliation with one page of its findings; None when there has been none."""
        params: dict[str, str | int] = {"page": page}
        if kind:
            params["kind"] = kind
        body = await self.up.identity.json("GET", f"/v1/elections/{election_id}/reconciliation", params=params,
                                           headers=self.headers(), not_found_ok=True)
        return None if body is None else Reconciliation.model_validate(body)

    async def progress(self, election_id: str) -> Reconciliation | None:
        """Status and progress without a single name: nothing shown, nothing recorded."""
        return await self.findings(election_id, None, BEYOND_LAST_PAGE)

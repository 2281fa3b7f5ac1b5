"""One colour rule for a suggestion, on every status: what `GET /v1/suggestions/{id}` shows is the
list it is found in with `?color=`, and what `minyi_overdue` counts.

The rows are the projection as the record activity writes it (`activities.write_row`), with due
times a few days either side of the wall clock the API reads, so each expected colour is known
by hand: overdue red, due within 15 days yellow, later green, closed blue, a reference (C) item
followed up grey; a suggestion being followed up is late when its yearly look-back is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Servers
from sqlalchemy import text
from suggestionsutil import Suggestions, bearer, suggestions_service

from services.suggestions import domain, lifecycle, queries
from services.suggestions.activities import write_row
from services.suggestions.domain import Status
from services.suggestions.projection import view
from shared.ids import new_id

# A county no other test uses: the lists below hold exactly these rows.
REGION = "369901"
STAFF = bearer("npc_staff", REGION)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Case:
    name: str
    status: Status
    due: timedelta | None
    review: timedelta | None
    outcome: str | None
    expected: str


CASES = [
    Case("submitted, nothing due", Status.SUBMITTED, None, None, None, "green"),
    Case("assigned, reply due in 60 days", Status.ASSIGNED, 60 * DAY, None, None, "green"),
    Case("assigned, reply due in 5 days", Status.ASSIGNED, 5 * DAY, None, None, "yellow"),
    Case("assigned, reply 2 days late", Status.ASSIGNED, -2 * DAY, None, None, "red"),
    # A look-back date left on a row that is not being followed up does not colour it.
    Case("assigned, reply due in 60 days, stray look-back past", Status.ASSIGNED, 60 * DAY, -2 * DAY, None, "green"),
    Case("replied, waiting for the evaluation", Status.REPLIED, None, None, "A", "green"),
    Case("reassigned, reply due in 5 days", Status.REASSIGNED, 5 * DAY, None, None, "yellow"),
    Case("reassigned, reply 2 days late", Status.REASSIGNED, -2 * DAY, None, None, "red"),
    Case("referred to the director's meeting", Status.REFERRED, None, None, "A", "green"),
    Case("following up B, look-back 2 days late", Status.FOLLOWING_UP, None, -2 * DAY, "B", "red"),
    Case("following up B, look-back in 5 days", Status.FOLLOWING_UP, None, 5 * DAY, "B", "yellow"),
    Case("following up B, look-back in 200 days", Status.FOLLOWING_UP, None, 200 * DAY, "B", "green"),
    # The reply due time a row may still hold does not count once the look-backs have begun.
    Case("following up B, look-back in 200 days, old reply due past", Status.FOLLOWING_UP, -30 * DAY, 200 * DAY, "B",
         "green"),
    Case("following up C (reference), look-back late", Status.FOLLOWING_UP, None, -2 * DAY, "C", "grey"),
    Case("closed", Status.CLOSED, None, None, "A", "blue"),
    Case("closed reference item", Status.CLOSED, None, None, "C", "blue"),
]


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("suggestions-colours")) as service:
        yield service


def _state(case: Case, n: int, now: datetime) -> dict[str, object]:
    s = lifecycle.Suggestion(
        id=new_id(), title=f"颜色用例{n}：{case.name}", content="用于核对颜色规则的建议正文。",
        lead_deputy_id="d-colour", co_signer_ids=[], region_code=REGION, year=now.year, kind="session", micro=False,
        outcomes=list(domain.DEFAULT_OUTCOMES), term_first_year=2022, term_number=14,
        submitted_at=now - (100 - n) * DAY, submitted_by="t-colour", status=case.status,
        due_at=now + case.due if case.due is not None else None,
        next_review_at=now + case.review if case.review is not None else None, outcome=case.outcome,
        years=[now.year], seq=1)
    return view(s)


async def test_detail_list_and_overdue_count_follow_one_colour_rule(svc: Suggestions) -> None:
    before = await queries.overdue(svc.runtime)
    now = datetime.now(UTC)
    ids: dict[str, Case] = {}
    async with svc.runtime.transaction() as session:
        for n, case in enumerate(CASES):
            state = _state(case, n, now)
            await write_row(session, state)
            ids[str(state["id"])] = case
    # Rows no event stands for: taken out again, since the projection is rebuilt from the stream in
    # tests/test_suggestions_recovery.py and would not have them.
    try:
        for suggestion_id, case in ids.items():
            shown = await svc.client.get(f"/v1/suggestions/{suggestion_id}", headers=STAFF)
            assert shown.status_code == 200, shown.text
            assert shown.json()["color"] == case.expected, case.name

        for colour in ("green", "yellow", "red", "blue", "grey"):
            resp = await svc.client.get("/v1/suggestions", params={"color": colour}, headers=STAFF)
            assert resp.status_code == 200, resp.text
            listed = {item["id"]: item for item in resp.json()}
            wanted = {i for i, case in ids.items() if case.expected == colour}
            assert set(listed) == wanted, (colour, sorted(ids[i].name for i in set(listed) ^ wanted))
            assert all(item["color"] == colour for item in listed.values())

        after = await queries.overdue(svc.runtime)
        # Late replies: "assigned, reply 2 days late" and "reassigned, reply 2 days late"; late look-backs:
        # "following up B, look-back 2 days late" (the reference item is grey, not late).
        assert after["suggestion_reply"] - before["suggestion_reply"] == 2
        assert after["suggestion_review"] - before.get("suggestion_review", 0) == 1
    finally:
        async with svc.runtime.transaction() as session:
            await session.execute(text("DELETE FROM suggestions.timeline WHERE suggestion_id = ANY(:ids)"),
                                  {"ids": list(ids)})
            await session.execute(text("DELETE FROM suggestions.suggestions WHERE id = ANY(:ids)"), {"ids": list(ids)})

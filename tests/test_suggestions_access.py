"""Who may see which suggestions, below the HTTP layer: a caller's scope comes from the claims its
token carries, and a missing claim (a unit without `unit_id`, a deputy without `deputy_id`, staff
without a region) grants nothing, even to a caller the token check would let through. The list
filter in SQL is checked on PostgreSQL against rows the record activity's writer stores."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import Servers
from sqlalchemy import select

from services.suggestions import domain, lifecycle
from services.suggestions.access import may_read, own_deputy, own_unit, require_region, staff_prefix
from services.suggestions.activities import write_row
from services.suggestions.models import SuggestionRow
from services.suggestions.projection import view
from services.suggestions.queries import readable_by
from shared.auth import Principal
from shared.db import Database, upgrade_async
from shared.errors import Problem
from shared.ids import new_id

A, A_TOWN, B = "380101", "380101002", "380102"


def who(roles: set[str], region: str = "", *, deputy_id: str | None = None, unit_id: str | None = None) -> Principal:
    return Principal(sub="t", roles=frozenset(roles), region=region, deputy_id=deputy_id, unit_id=unit_id)


def test_missing_claims_grant_no_scope() -> None:
    assert own_unit(who({"unit"})) is None
    assert own_unit(who({"unit"}, unit_id="u1")) == "u1"
    assert own_unit(who({"deputy"}, unit_id="u1")) is None, "a unit_id without the unit role"
    assert own_deputy(who({"deputy"})) is None
    assert own_deputy(who({"deputy"}, deputy_id="d1")) == "d1"
    assert own_deputy(who({"unit"}, deputy_id="d1")) is None, "a deputy_id without the deputy role"
    assert staff_prefix(who({"npc_staff"})) is None, "staff without a region"
    assert staff_prefix(who({"npc_staff"}, "!")) is None, "a scope that is no region code"
    assert staff_prefix(who({"npc_staff"}, A)) == A
    assert staff_prefix(who({"admin"})) == "", "an admin's empty region is everywhere"
    assert staff_prefix(who({"admin", "npc_staff"}, A)) == A
    assert staff_prefix(who({"unit"}, A, unit_id="u1")) is None, "a unit is no staff"
    assert staff_prefix(who({"deputy"}, A, deputy_id="d1")) is None, "a deputy is no staff"


def test_who_may_read_one_suggestion() -> None:
    unassigned = SuggestionRow(region_code=A_TOWN, lead_deputy_id="d1", co_signer_ids=["d2"], lead_unit_id=None,
                               assisting_unit_ids=[])
    assert may_read(who({"npc_staff"}, A), unassigned)
    assert not may_read(who({"npc_staff"}, B), unassigned)
    assert not may_read(who({"npc_staff"}), unassigned)
    assert may_read(who({"admin"}), unassigned)
    assert may_read(who({"deputy"}, deputy_id="d2"), unassigned)
    assert not may_read(who({"deputy"}, deputy_id="d3"), unassigned)
    assert not may_read(who({"deputy"}), unassigned)
    # No lead unit yet: a unit token without its id must not match the missing unit.
    assert not may_read(who({"unit"}), unassigned)
    assigned = SuggestionRow(region_code=A, lead_deputy_id="d1", co_signer_ids=[], lead_unit_id="u1",
                             assisting_unit_ids=["u2"])
    assert may_read(who({"unit"}, unit_id="u1"), assigned)
    assert may_read(who({"unit"}, unit_id="u2"), assigned)
    assert not may_read(who({"unit"}, unit_id="u3"), assigned)


def test_region_checks_of_writes_refuse_callers_without_a_region() -> None:
    require_region(who({"npc_staff"}, A), A_TOWN)
    require_region(who({"admin"}), B)
    require_region(who({"deputy"}, A, deputy_id="d1"), A_TOWN)  # a deputy files within their region
    for caller, region in ((who({"npc_staff"}), A), (who({"npc_staff"}, A), B), (who({"npc_staff"}, "!"), A),
                           (who({"unit"}, unit_id="u1"), A), (who({"npc_staff"}, A), None),
                           (who({"deputy"}, deputy_id="d1"), A)):
        with pytest.raises(Problem) as refused:
            require_region(caller, region)
        assert refused.value.status == 403


def _row(region: str, *, lead_deputy: str, unit: str | None = None) -> dict[str, object]:
    now = datetime.now(UTC)
    s = lifecycle.Suggestion(
        id=new_id(), title="关于小区加装电梯的建议", content="建议加快老旧小区加装电梯。", lead_deputy_id=lead_deputy,
        co_signer_ids=[], region_code=region, year=now.year, kind="session", micro=False,
        outcomes=list(domain.DEFAULT_OUTCOMES), term_first_year=2022, submitted_at=now, submitted_by="t",
        status=domain.Status.ASSIGNED if unit else domain.Status.SUBMITTED, lead_unit_id=unit, years=[now.year],
        seq=1)
    return view(s)


async def test_the_list_filter_grants_what_the_claims_say_and_nothing_more(servers: Servers) -> None:
    await upgrade_async("suggestions", servers.database_url)
    tag = new_id()[-8:]
    rows = {"a_open": _row(A, lead_deputy=f"da-{tag}"), "a_town": _row(A_TOWN, lead_deputy=f"dt-{tag}"),
            "a_unit": _row(A, lead_deputy=f"da-{tag}", unit=f"ua-{tag}"),
            "b_open": _row(B, lead_deputy=f"db-{tag}"), "b_unit": _row(B, lead_deputy=f"db-{tag}", unit=f"ub-{tag}")}
    ids = {name: str(state["id"]) for name, state in rows.items()}
    db = Database.connect(servers.database_url, application_name="test-access", pool_size=1)
    # The rows live in a transaction that is rolled back: the projection is rebuilt from the stream in
    # tests/test_suggestions_recovery.py, and rows no event stands for would not come back.
    try:
        session = db.sessions()
        await session.begin()
        for state in rows.values():
            await write_row(session, state)

        async def chosen(caller: Principal) -> set[str]:
            found = set((await session.scalars(select(SuggestionRow.id).where(readable_by(caller)))).all())
            return {name for name, i in ids.items() if i in found}

        assert await chosen(who({"unit"})) == set()
        assert await chosen(who({"deputy"})) == set()
        assert await chosen(who({"npc_staff"})) == set()
        assert await chosen(who({"npc_staff"}, "!")) == set()
        assert await chosen(who({"unit", "deputy", "npc_staff"})) == set()
        assert await chosen(who({"npc_staff"}, A)) == {"a_open", "a_town", "a_unit"}
        assert await chosen(who({"npc_staff"}, A_TOWN)) == {"a_town"}
        assert await chosen(who({"unit"}, unit_id=f"ub-{tag}")) == {"b_unit"}
        assert await chosen(who({"deputy"}, deputy_id=f"db-{tag}")) == {"b_open", "b_unit"}
        assert await chosen(who({"deputy", "unit"}, deputy_id=f"dt-{tag}", unit_id=f"ub-{tag}")) == {"a_town",
                                                                                                     "b_unit"}
        assert await chosen(who({"admin"})) == set(ids)
        await session.rollback()
        await session.close()
    finally:
        await db.dispose()

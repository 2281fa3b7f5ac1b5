"""Suggestions (代表建议) over years, in seconds: the service's API and worker on the time-skipping
Temporal test server, with the real PostgreSQL and NATS behind them.

Each test first moves the server's clock to a chosen moment, so that every due time it expects is
worked out by hand (deadlines fall at 23:59:59 in China, 15:59:59 UTC). The tests share the clock
and run in file order, each starting later than the one before ended."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from busutil import stream_messages
from conftest import Servers
from suggestionsutil import STAFF, Suggestions, bearer, suggestions_service, timeline_kinds
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from minyi.servers import binary
from services.suggestions import domain
from services.suggestions.workflows import SANDBOX, SuggestionWorkflow, workflow_id
from shared.ids import new_id
from shared.temporal_data import DATA_CONVERTER

HISTORIES = Path(__file__).parent / "data" / "suggestions" / "histories"
COUNTY = "340811"
CONTENT = "建议加快实施老旧小区改造，加装电梯并完善无障碍设施，方便老年人出行。"


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    path = binary("temporal-test-server")
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=path,
                                                             data_converter=DATA_CONVERTER) as environment:
        yield environment


@pytest.fixture(scope="module")
async def svc(servers: Servers, env: WorkflowEnvironment,
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("suggestions"), env.client) as service:
        await service.unit("jianshe", COUNTY)
        await service.unit("minzheng", COUNTY)
        await service.unit("caizheng", COUNTY)
        yield service


def unit(unit_id: str) -> dict[str, str]:
    return bearer("unit", unit_id=unit_id)


async def new_suggestion(svc: Suggestions, env: WorkflowEnvironment, **extra: Any) -> tuple[str, str]:
    """A suggestion on the list of the test server's present year (the tests share its clock)."""
    deputy = f"d-{new_id()[-12:]}"
    await svc.deputy(deputy, COUNTY)
    year = domain.china_date(await now_of(env)).year
    created = await svc.submit(deputy, title=f"关于老旧小区改造的建议 {new_id()[-6:]}", content=CONTENT,
                               year=year, **extra)
    assert created["status"] == "submitted"
    return created["id"], deputy


async def now_of(env: WorkflowEnvironment) -> datetime:
    return (await env.get_current_time()).astimezone(UTC)


async def sleep_until(env: WorkflowEnvironment, when: datetime) -> None:
    gap = when - await now_of(env)
    if gap > timedelta(0):
        await env.sleep(gap)


async def start_at(env: WorkflowEnvironment, when: str) -> None:
    """Moves the shared clock forward to `when` (UTC) for a test whose deadlines are worked out from it."""
    target = utc(when)
    assert await now_of(env) < target, f"the clock is past {when}: run this module's tests in file order"
    await sleep_until(env, target)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def test_b_item_looked_back_three_years_until_solved(svc: Suggestions, env: WorkflowEnvironment) -> None:
    await start_at(env, "2030-03-10T02:00:00")  # 10 March 2030, 10:00 in China
    sid, deputy = await new_suggestion(svc, env)
    state = await svc.act(sid, "assignment", {"lead_unit_id": "jianshe", "assisting_unit_ids": ["minzheng"]}, STAFF)
    assert state["status"] == "assigned" and state["lead_unit_id"] == "jianshe"
    # Three months on, at the end of that day in China; the assisting view a month on.
    assert datetime.fromisoformat(state["due_at"]) == utc("2030-06-10T15:59:59")
    assert datetime.fromisoformat(state["assisting_due_at"]) == utc("2030-04-10T15:59:59")
    state = await svc.act(sid, "replies", {"unit_id": "jianshe", "content": "已列入明年城建计划。", "outcome": "B",
                                           "planned_year": 2032}, unit("jianshe"))
    assert state["status"] == "replied" and state["outcome"] == "B"
    state = await svc.act(sid, "evaluation", {"result": "satisfied"}, bearer("deputy", deputy_id=deputy))
    assert state["status"] == "following_up"
    # The first look-back is the next year's, due 30 November.
    assert datetime.fromisoformat(state["next_review_at"]) == utc("2031-11-30T15:59:59")

    handle = env.client.get_workflow_handle(workflow_id(sid))
    first_run = (await handle.describe()).run_id
    for review_year in (2031, 2032, 2033):
        # Into the look-back year, past the year-end carry-over(s): the suggestion is on that year's list.
        await sleep_until(env, utc(f"{review_year}-11-10T16:00:00"))
        state = await handle.query(SuggestionWorkflow.state)
        assert review_year in state["years"], state["years"]
        body: dict[str, Any] = {"unit_id": "jianshe", "note": f"{review_year}年度：工程推进中。"}
        if review_year == 2033:
            body = {"unit_id": "jianshe", "note": "电梯已全部加装完成。", "outcome": "A"}
        state = await svc.act(sid, "progress", body, unit("jianshe"))
        if review_year < 2033:
            assert state["status"] == "following_up"
            assert datetime.fromisoformat(state["next_review_at"]) == utc(f"{review_year + 1}-11-30T15:59:59")
    assert state["status"] == "closed" and state["outcome"] == "A"
    final = await svc.recorded(sid, state["seq"])
    assert final["color"] == "blue"
    kinds = [e["kind"] for e in final["timeline"]]
    assert kinds.count("reviewed") == 3 and kinds[-1] == "closed"
    assert [e["year"] for e in final["timeline"] if e["kind"] == "carried_over"] == [2031, 2032, 2033]
    # Each year-end started a fresh run: the history of one run stays small however long it lasts.
    described = await handle.describe()
    assert described.run_id != first_run
    history = await handle.fetch_history()
    assert len(history.events) < 200, len(history.events)


async def test_c_item_carried_across_a_change_of_term(svc: Suggestions, env: WorkflowEnvironment) -> None:
    settings = svc.runtime.settings
    assert (settings.term_first_year, settings.term_number) == (2022, 14), "the terms below assume the defaults"
    # 2034 is in the 16th term (2032–2036); the 17th begins in 2037.
    await start_at(env, "2034-02-01T02:00:00")
    sid, deputy = await new_suggestion(svc, env)
    await svc.act(sid, "assignment", {"lead_unit_id": "minzheng"}, STAFF)
    await svc.act(sid, "replies", {"unit_id": "minzheng", "content": "留作今后工作参考。", "outcome": "C"},
                  unit("minzheng"))
    state = await svc.act(sid, "evaluation", {"result": "basically_satisfied"}, bearer("deputy", deputy_id=deputy))
    assert state["status"] == "following_up" and state["reference"] is True
    assert state["years"] == [2034] and state["term"] == 16
    recorded = await svc.recorded(sid, state["seq"])
    assert recorded["color"] == "grey"
    # Past the end of 2036 in China (15:59:59 UTC on 31 December).
    await sleep_until(env, utc("2037-01-02T00:00:00"))
    state = await env.client.get_workflow_handle(workflow_id(sid)).query(SuggestionWorkflow.state)
    assert state["status"] == "following_up"
    assert state["years"] == [2034, 2035, 2036, 2037]
    assert state["term"] == 17
    final = await svc.recorded(sid, state["seq"])
    carried = [e for e in final["timeline"] if e["kind"] == "carried_over"]
    assert [(e["year"], e["new_term"], e["note"]) for e in carried] == [
        (2035, False, "未办结，转入2035年度继续办理"), (2036, False, "未办结，转入2036年度继续办理"),
        (2037, True, "未办结，转入2037年度继续办理（第17届）")]


async def test_extension_once_and_overdue_at_the_end_of_the_day_in_china(svc: Suggestions,
                                                                        env: WorkflowEnvironment) -> None:
    # 16:30 UTC on 30 November is 00:30 on 1 December in China: the dates below count from 1 December.
    await start_at(env, "2037-11-30T16:30:00")
    sid, _deputy = await new_suggestion(svc, env)
    state = await svc.act(sid, "assignment", {"lead_unit_id": "caizheng"}, STAFF)
    # 1 March 2038, not 28 February as the UTC date would give.
    assert datetime.fromisoformat(state["due_at"]) == utc("2038-03-01T15:59:59")
    state = await svc.act(sid, "extension", {"reason": "涉及跨部门协调，需延期答复。"}, STAFF)
    # Three months more: 1 June 2038, which is also six months after assignment.
    assert datetime.fromisoformat(state["due_at"]) == utc("2038-06-01T15:59:59")
    again = await svc.act(sid, "extension", {"reason": "再次延期"}, STAFF, status=409)
    assert "只能延期一次" in again["detail"]
    handle = env.client.get_workflow_handle(workflow_id(sid))

    async def overdue_steps() -> list[dict[str, Any]]:
        state = await handle.query(SuggestionWorkflow.state)
        final = await svc.recorded(sid, state["seq"])
        return [e for e in final["timeline"] if e["kind"] == "overdue"]

    # 23:00 on 1 June in China: not late yet.
    await sleep_until(env, utc("2038-06-01T15:00:00"))
    assert await overdue_steps() == []
    # 01:00 on 2 June in China (still 1 June in UTC): late, announced once.
    await sleep_until(env, utc("2038-06-01T17:00:00"))
    overdue = await overdue_steps()
    assert [(e["deadline"], e["due_at"]) for e in overdue] == [("reply", "2038-06-01T15:59:59+00:00")]
    assert utc("2038-06-01T15:59:59") <= datetime.fromisoformat(overdue[0]["at"]) <= utc("2038-06-01T17:00:00")
    events = [json.loads(body) for subject, _h, body in await stream_messages(svc.nats_url, "SUGGESTIONS")
              if subject == "suggestions.suggestion.overdue"]
    assert [e["data"]["step"]["data"] for e in events if e["data"]["id"] == sid] == [
        {"deadline": "reply", "due_at": "2038-06-01T15:59:59+00:00"}]


async def test_double_dissatisfaction_goes_to_the_directors_meeting(svc: Suggestions,
                                                                     env: WorkflowEnvironment) -> None:
    await start_at(env, "2039-01-31T02:00:00")  # 31 January 2039, 10:00 in China
    sid, deputy = await new_suggestion(svc, env)
    me = bearer("deputy", deputy_id=deputy)
    await svc.act(sid, "assignment", {"lead_unit_id": "jianshe"}, STAFF)
    await svc.act(sid, "replies", {"unit_id": "jianshe", "content": "已解决。", "outcome": "A"}, unit("jianshe"))
    missing = await svc.act(sid, "evaluation", {"result": "dissatisfied"}, me, status=422)
    assert missing["errors"][0]["field"] == "comment"
    state = await svc.act(sid, "evaluation", {"result": "dissatisfied", "comment": "电梯仍未开工。"}, me)
    assert state["status"] == "reassigned"
    # A new reply within a month: 31 January + 1 month is the end of 28 February.
    assert datetime.fromisoformat(state["due_at"]) == utc("2039-02-28T15:59:59")
    await env.sleep(timedelta(days=10))
    await svc.act(sid, "replies", {"unit_id": "jianshe", "content": "已开工。", "outcome": "A"}, unit("jianshe"))
    state = await svc.act(sid, "evaluation", {"result": "dissatisfied", "comment": "仍不满意。"}, me)
    assert state["status"] == "referred"
    state = await svc.act(sid, "director-decision", {"decision": "close", "note": "主任会议决定：办结。"}, STAFF)
    assert state["status"] == "closed"
    final = await svc.recorded(sid, state["seq"])
    kinds = [e["kind"] for e in final["timeline"]]
    assert kinds == ["submitted", "assigned", "replied", "evaluated", "reassigned", "replied", "evaluated",
                     "director_decision", "closed"]


async def test_key_suggestion_needs_three_meetings_before_its_reply(svc: Suggestions,
                                                                     env: WorkflowEnvironment) -> None:
    sid, _deputy = await new_suggestion(svc, env)
    no_leader = await svc.act(sid, "assignment", {"lead_unit_id": "jianshe", "key": True}, STAFF, status=422)
    assert no_leader["errors"][0]["field"] == "supervisor"
    await svc.act(sid, "assignment", {"lead_unit_id": "jianshe", "key": True, "supervisor": "王副主任"}, STAFF)
    body = {"unit_id": "jianshe", "content": "已解决。", "outcome": "A"}
    refused = await svc.act(sid, "replies", body, unit("jianshe"), status=422)
    assert refused["errors"][0]["field"] == "meetings"
    at = (await now_of(env)).isoformat()
    for stage in ("before", "during", "after"):
        await svc.act(sid, "meetings", {"stage": stage, "at": at, "note": f"{stage} 见面"}, unit("jianshe"))
    other = await svc.act(sid, "replies", {**body, "unit_id": "minzheng"}, unit("minzheng"), status=422)
    assert other["errors"][0]["field"] == "unit_id"
    state = await svc.act(sid, "replies", body, unit("jianshe"))
    assert state["status"] == "replied" and state["meetings"] == ["before", "during", "after"]


async def test_an_action_retried_with_its_key_happens_once(svc: Suggestions, env: WorkflowEnvironment) -> None:
    sid, _deputy = await new_suggestion(svc, env)
    headers = {**STAFF, "Idempotency-Key": f"assign-{sid}"}
    first = await svc.act(sid, "assignment", {"lead_unit_id": "jianshe"}, headers)
    second = await svc.act(sid, "assignment", {"lead_unit_id": "jianshe"}, headers)
    assert first == second
    clash = await svc.act(sid, "assignment", {"lead_unit_id": "minzheng"}, headers, status=409)
    assert clash["status"] == 409
    await svc.recorded(sid, first["seq"])
    assert await timeline_kinds(svc.runtime, sid) == ["submitted", "assigned"]


async def test_histories_of_earlier_code_still_replay(svc: Suggestions, env: WorkflowEnvironment) -> None:
    """Every history kept under tests/data/suggestions/histories must replay on today's workflow code."""
    HISTORIES.mkdir(parents=True, exist_ok=True)
    kept = sorted(HISTORIES.glob("*.json"))
    if not kept:
        # The first run of this test keeps a history of a full life (assign, reply B, evaluate,
        # look-back, A) for every later change of the workflow to replay.
        sid, deputy = await new_suggestion(svc, env)
        await svc.act(sid, "assignment", {"lead_unit_id": "jianshe"}, STAFF)
        year = domain.china_date(await now_of(env)).year
        await svc.act(sid, "replies", {"unit_id": "jianshe", "content": "计划明年实施。", "outcome": "B",
                                       "planned_year": year + 1}, unit("jianshe"))
        await svc.act(sid, "evaluation", {"result": "satisfied"}, bearer("deputy", deputy_id=deputy))
        await svc.act(sid, "progress", {"unit_id": "jianshe", "note": "已完成。", "outcome": "A"}, unit("jianshe"))
        history = await env.client.get_workflow_handle(workflow_id(sid)).fetch_history()
        (HISTORIES / "b_to_a_v1.json").write_text(history.to_json(), encoding="utf-8")
        kept = sorted(HISTORIES.glob("*.json"))
    replayer = Replayer(workflows=[SuggestionWorkflow], data_converter=DATA_CONVERTER,
                        workflow_runner=SANDBOX)
    for path in kept:
        history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"

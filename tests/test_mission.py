"""The whole mission on the five services at once, on the demo county as `minyi up --demo` loads it.

A citizen scans a deputy's code and reports with a photo; the deputy takes it up, the grid
platform resolves it, the citizen rates it and the deputy's points move. Five similar reports
make a hotspot, staff turn it into a key suggestion that goes round once more after a
dissatisfied evaluation, and the unit's board and the deputy's score show it. A registry feed over
NATS and a reconciliation find one person of each problem kind. Each citizen or staff action is
one trace across the services, and nothing personal leaks into logs, events, traces or error bodies.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import nats
import pytest
from busutil import eventually
from conftest import Servers
from missionutil import Mission, bearer, messages_since, mission_stack, token
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan
from test_intake_attachments_domain import jpeg_bytes

from minyi import demo
from minyi.demo_county import CHINA, FEATURED_DEPUTY, UNITS
from shared import idnumber

# A county of its own, so that nothing another test files joins this test's hotspot or roll.
COUNTY = "330110"
DEPUTY = FEATURED_DEPUTY
CITIZEN = {"name": "欧阳明轩", "phone": "13912345678", "id_number": ""}
CITIZEN["id_number"] = (lambda first17: first17 + idnumber.check_character(first17))("33011019880314273")
SIMILAR = [
    "西溪街道菜市场门口占道经营严重，摊贩把人行道都占了，行人只能走机动车道。",
    "菜市场门口摊贩占道经营，人行道被占，行人走路很危险。",
    "西溪街道菜市场门口的人行道被摊贩占了，占道经营一直没人管。",
    "菜市场门口占道经营的摊贩越来越多，人行道走不了人。",
    "反映西溪街道菜市场门口摊贩占道经营问题，人行道被占满。",
]
tracer = trace.get_tracer("tests.mission")


@pytest.fixture(scope="module")
async def mission(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mission]:
    async with mission_stack(servers, tmp_path_factory.mktemp("mission"), COUNTY) as m:
        yield m


def year() -> int:
    return datetime.now(CHINA).year


def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
    return resp.json()


async def traced(m: Mission, name: str, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    """The request as a client app would send it: inside its own span, the trace in `traceparent`."""
    with tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT) as root:
        headers = dict(kwargs.pop("headers", {}))
        propagate.inject(headers)
        resp = await m.client.request(method, url, headers=headers, **kwargs)
    return root.get_span_context().trace_id, resp


async def receipt(m: Mission, code: str) -> dict[str, Any]:
    return ok(await m.client.get(m.url("intake", f"/v1/receipts/{code}")))


async def score(m: Mission, deputy: str) -> dict[str, Any]:
    return ok(await m.client.get(m.url("scoring", f"/v1/deputies/{deputy}/score"), params={"year": year()},
                                       headers=bearer("npc_staff", COUNTY)))


def consumers_in(spans: list[ReadableSpan]) -> set[str]:
    """Durable consumer names (one service each) that processed a message of the trace."""
    out: set[str] = set()
    for s in spans:
        if s.kind == trace.SpanKind.CONSUMER:
            attrs = dict(s.attributes or {})
            out.add(str(attrs.get("messaging.consumer.group.name") or s.name))
    return out


async def test_a_citizens_report_from_code_to_points(mission: Mission) -> None:
    m = mission
    code = m.loaded.codes[DEPUTY]
    scanned = ok(await m.client.get(m.url("identity", f"/v1/codes/{code}")))
    assert (scanned["kind"], scanned["id"], scanned["region_code"]) == ("deputy", DEPUTY, COUNTY)

    photo = ok(await m.client.post(m.url("intake", "/v1/attachments"),
                                         files={"file": ("road.jpg", jpeg_bytes(), "image/jpeg")}), 201)
    assert photo["kind"] == "photo"
    trace_id, resp = await traced(m, "citizen files a report", "POST", m.url("intake", "/v1/reports"), json={
        "channel": "miniprogram", "code": code, "anonymous": False, "reporter": CITIZEN,
        "attachment_ids": [photo["id"]],
        "content": "宝石社区门口的人行道地砖大面积松动，下雨天一踩就溅水，老人已经摔倒过。"},
        headers={"Idempotency-Key": "mission-report-1"})
    report = ok(resp, 201)
    assert report["target"] == {"kind": "deputy", "id": DEPUTY, "region_code": COUNTY}

    deputy = bearer("deputy", COUNTY, deputy_id=DEPUTY)
    taken = ok(await m.client.post(m.url("intake", f"/v1/reports/{report['id']}/acknowledge"), headers=deputy))
    assert taken["status"] in ("acknowledged", "dispatched")

    async def answered() -> bool:
        return (await receipt(m, report["receipt_code"]))["status"] == "answered"

    await eventually(answered, timeout=30, what="the grid platform's resolution answering the report")
    tickets = [t for t in await m.sim.tickets() if t["report_id"] == report["id"]]
    assert len(tickets) == 1 and tickets[0]["deliveries"] == 1, tickets
    rated = ok(await m.client.post(m.url("intake", f"/v1/receipts/{report['receipt_code']}/rating"),
                                         json={"stars": 5, "comment": "处理得很快"}), 201)
    assert rated["stars"] == 5
    again = await m.client.post(m.url("intake", f"/v1/receipts/{report['receipt_code']}/rating"), json={"stars": 1})
    assert again.status_code == 409

    # The deputy's two reports so far (the demo's sample and this one): each taken up and answered in
    # time, this one rated five stars. Entries are per event, so a repeat would show as a third.
    wanted = {"report_ack_on_time": 2, "report_answer_on_time": 2, "report_rated_5": 1}

    async def points_for_the_reports() -> bool:
        rules = Counter(e["rule_code"] for e in (await score(m, DEPUTY))["entries"])
        return all(rules[rule] >= n for rule, n in wanted.items())

    await eventually(points_for_the_reports, timeout=30, what="the deputy's points for both reports")
    after = await score(m, DEPUTY)
    assert {rule: n for rule, n in Counter(e["rule_code"] for e in after["entries"]).items()} == wanted, after
    assert (after["base"], after["bonus"], after["total"]) == (3.0, 1.0, 4.0), after

    # One trace: intake's HTTP request → its outbox → NATS → routing, scoring and back into intake.
    async def spread() -> bool:
        return len(consumers_in(m.trace_spans(trace_id))) >= 3

    await eventually(spread, timeout=15, what="consumer spans of three services in the report's trace")
    spans = m.trace_spans(trace_id)
    names = {s.name for s in spans}
    assert any(s.kind == trace.SpanKind.SERVER and "/v1/reports" in s.name for s in spans), names
    assert "intake.report.submitted relay" in names, names
    groups = consumers_in(spans)
    # A batch consumer's span names its durable: routing's of the report, scoring's, and intake's of
    # routing's events about it (each message keeps its producer's trace, batched or not).
    assert "routing-submitted" in groups, groups
    assert any(g.startswith("scoring") for g in groups), groups
    assert groups & {"intake-classified", "intake-ticket-created", "intake-hotspot-progressed"}, groups


async def test_a_hotspot_becomes_a_key_suggestion_that_goes_round_until_satisfied(mission: Mission) -> None:
    m = mission
    town_b = f"{COUNTY}002"
    ids = []
    for i, content in enumerate(SIMILAR):
        created = ok(await m.client.post(m.url("intake", "/v1/reports"), json={
            "channel": "h5", "region_code": town_b, "anonymous": True, "content": content},
            headers={"Idempotency-Key": f"mission-similar-{i}"}), 201)
        ids.append(created["id"])
    staff = bearer("npc_staff", COUNTY)

    async def hotspot() -> dict[str, Any] | None:
        found = ok(await m.client.get(m.url("routing", "/v1/hotspots"),
                                            params={"region_code": COUNTY, "days": 30}, headers=staff))
        return next((h for h in found if set(ids) <= set(h["report_ids"])), None)

    await eventually(lambda: _some(hotspot()), timeout=30, what="five similar reports becoming one hotspot")
    spot = await hotspot()
    assert spot is not None and spot["count"] == 5

    async def topic() -> dict[str, Any] | None:
        found = ok(await m.client.get(m.url("suggestions", "/v1/supervision-topics"), headers=staff))
        return next((t for t in found if t["id"] == spot["id"]), None)

    await eventually(lambda: _some(topic()), timeout=30, what="the hotspot as a supervision topic")
    conversion = {"lead_deputy_id": DEPUTY, "title": "关于整治菜市场周边占道经营的建议", "year": year(),
                  "content": "西溪街道菜市场周边占道经营问题突出，群众反映集中，建议统筹规划疏导点。"}
    converted = ok(await m.client.post(m.url("suggestions", f"/v1/supervision-topics/{spot['id']}/conversion"),
                                             json=conversion, headers=staff), 201)
    sid = converted["suggestion"]["id"]
    unit_id = UNITS[0]
    unit = bearer("unit", COUNTY, unit_id=unit_id)
    act = m.url("suggestions", f"/v1/suggestions/{sid}")
    trace_id, resp = await traced(m, "staff assign a key suggestion", "POST", f"{act}/assignment", headers=staff,
                                  json={"lead_unit_id": unit_id, "key": True, "supervisor": "王副主任"})
    assert (ok(resp))["status"] == "assigned"
    now = datetime.now(CHINA).isoformat()
    for stage in ("before", "during", "after"):
        meeting = {"stage": stage, "at": now, "note": "三见面"}
        ok(await m.client.post(f"{act}/meetings", json=meeting, headers=unit))
    first = ok(await m.client.post(f"{act}/replies", headers=unit, json={
        "unit_id": unit_id, "content": "已纳入明年市场改造计划。", "outcome": "B", "planned_year": year() + 1}))
    assert first["status"] == "replied"
    lead = bearer("deputy", COUNTY, deputy_id=DEPUTY)
    unhappy = ok(await m.client.post(f"{act}/evaluation", headers=lead,
                                           json={"result": "dissatisfied", "comment": "群众等不到明年。"}))
    assert unhappy["status"] == "reassigned"
    for stage in ("before", "during", "after"):  # a key suggestion's new round meets the deputy again
        ok(await m.client.post(f"{act}/meetings", json={"stage": stage, "at": now, "note": "再次见面"}, headers=unit))
    second = ok(await m.client.post(f"{act}/replies", headers=unit, json={
        "unit_id": unit_id, "content": "已设置临时疏导点并清理占道摊位。", "outcome": "A"}))
    assert second["status"] == "replied"
    happy = ok(await m.client.post(f"{act}/evaluation", headers=lead, json={"result": "satisfied"}))
    assert happy["status"] == "closed", happy
    shown = ok(await m.client.get(act, headers=staff))
    kinds = [e["kind"] for e in shown["timeline"]]
    assert kinds.count("replied") == 2 and "reassigned" in kinds and kinds[-1] == "closed", kinds

    async def board() -> dict[str, Any] | None:
        rows = ok(await m.client.get(m.url("scoring", "/v1/units/board"), params={"year": year()}))
        row = next((r for r in rows if r["unit_id"] == unit_id), None)
        return row if row and row["evaluations"] == 2 else None

    await eventually(lambda: _some(board()), timeout=30, what="the unit's two replies and evaluations on the board")
    row = await board()
    assert row is not None and (row["replies"], row["on_time_rate"], row["satisfaction_rate"]) == (2, 1.0, 0.5)

    # Leading it, its birth in a hotspot and its being made key: each once, whatever went round twice.
    wanted = {"suggestion_led": 1, "hotspot_supervision": 1, "suggestion_key": 1}

    async def lead_points() -> bool:
        rules = Counter(e["rule_code"] for e in (await score(m, DEPUTY))["entries"])
        return all(rules[rule] >= n for rule, n in wanted.items())

    await eventually(lead_points, timeout=30, what="the lead deputy's points for the suggestion")
    rules = Counter(e["rule_code"] for e in (await score(m, DEPUTY))["entries"])
    assert {rule: rules[rule] for rule in wanted} == wanted, rules

    # The assignment's trace: HTTP → Temporal update → the recording activity → outbox → NATS → scoring.
    async def reached_scoring() -> bool:
        return any(g.startswith("scoring") for g in consumers_in(m.trace_spans(trace_id)))

    await eventually(reached_scoring, timeout=15, what="scoring's consumer span in the assignment's trace")
    names = {s.name for s in m.trace_spans(trace_id)}
    assert "record_suggestion activity" in names, names
    assert "suggestions.suggestion.assigned relay" in names, names


async def test_a_registry_feed_and_a_reconciliation_find_one_of_each(mission: Mission) -> None:
    m = mission
    staff = bearer("npc_staff", COUNTY)
    url = m.url("identity", f"/v1/elections/{m.county.election_id}/reconciliation")

    async def done() -> dict[str, Any] | None:
        seen = ok(await m.client.get(url, headers=staff))
        return seen if seen["status"] == "done" else None

    await eventually(lambda: _some(done()), timeout=60, what="the demo county's reconciliation")
    first = await done()
    assert first is not None
    expected = m.county.expected_problems()
    assert first["counts"] == {kind: 1 for kind in expected}, first["counts"]
    by_kind = {i["kind"]: i for i in first["items"]}
    for kind, number in expected.items():
        masked = by_kind[kind]["id_number_masked"]
        assert masked[:4] == number[:4] and masked[-4:] == number[-4:] and "*" in masked, (kind, masked)
        assert number not in json.dumps(first, ensure_ascii=False)

    # The social-security registry reports a registered voter dead, over NATS as a provincial system would.
    ok_person = next(p for p in m.county.people if p.key == "ok")
    record = {"record_id": "ss-mission-1", "id_number": ok_person.id_number, "name": ok_person.name,
              "hukou_region_code": ok_person.hukou, "residence_region_code": ok_person.hukou, "status": "deceased",
              "political_rights": True, "updated_at": datetime.now(CHINA).isoformat()}
    nc = await nats.connect(m.nats_url)
    try:
        await nc.jetstream().publish("registry.social_security.records", json.dumps(record).encode(),
                                     headers={"Nats-Msg-Id": "ss-mission-1"})
    finally:
        await nc.close()

    async def rerun_sees_the_feed() -> bool:
        started = await m.client.post(url, headers=staff)
        if started.status_code != 202:
            return False
        await eventually(lambda: _some(done()), timeout=60, what="the second reconciliation")
        seen = await done()
        return seen is not None and seen["counts"]["deceased"] == 2

    await eventually(rerun_sees_the_feed, timeout=60, interval=1.0, what="the fed death in a new reconciliation")
    final = await done()
    assert final is not None
    assert {i["name"] for i in final["items"] if i["kind"] == "deceased"} == {ok_person.name, "吴刚"}


async def test_decisions_and_disclosures_are_on_each_services_audit_log(mission: Mission) -> None:
    m = mission
    staff, elsewhere = bearer("npc_staff", COUNTY), bearer("npc_staff", "320923")

    async def audit(service: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
        return list(ok(await m.client.get(m.url(service, "/v1/audit"), params=params, headers=headers))["items"])

    mine = [r for r in ok(await m.client.get(m.url("intake", "/v1/reports"), params={"deputy_id": DEPUTY},
                                              headers=staff))["items"] if not r["anonymous"]]
    assert len(mine) == 1, mine
    report_id = mine[0]["id"]
    deputy = bearer("deputy", COUNTY, deputy_id=DEPUTY)
    shown = ok(await m.client.post(m.url("intake", f"/v1/reports/{report_id}/reporter/unmask"), headers=deputy,
                                   json={"reason": "回访核实处理结果"}))
    assert shown["phone"] == CITIZEN["phone"]
    again = await m.client.post(m.url("intake", f"/v1/reports/{report_id}/acknowledge"), headers=deputy)
    assert again.status_code in (200, 409)

    entries = await audit("intake", staff, subject_id=report_id)
    actions = [e["action"] for e in entries]
    assert actions.count("report.reporter_unmasked") == 1 and actions.count("report.acknowledged") >= 1, actions
    unmasked = next(e for e in entries if e["action"] == "report.reporter_unmasked")
    assert unmasked["actor"] == DEPUTY and unmasked["actor_roles"] == ["deputy"]
    assert unmasked["detail"] == {"reason": "回访核实处理结果", "fields": ["name", "phone", "id_number"]}
    assert unmasked["trace_id"] and unmasked["region_code"] == COUNTY
    text = json.dumps(entries, ensure_ascii=False)
    assert CITIZEN["phone"] not in text and CITIZEN["name"] not in text and CITIZEN["id_number"] not in text

    decided = [e["action"] for e in await audit("suggestions", staff, subject_type="suggestion")
               if e["region_code"].startswith(COUNTY)]
    for action in ("suggestion.assigned", "suggestion.replied", "suggestion.evaluated", "suggestion.reassigned",
                   "suggestion.closed"):
        assert action in decided, (action, decided)
    assert decided.count("suggestion.replied") == 2
    assert [e["action"] for e in await audit("suggestions", staff, action="topic.converted")]
    identity = {e["action"] for e in await audit("identity", staff, subject_id=m.county.election_id)}
    assert {"election.changed", "voters.registered", "reconciliation.started",
            "reconciliation.items_shown"} <= identity, identity
    assert await audit("routing", bearer("admin"), action="grid_platform.changed", subject_id="demo-grid")

    # Staff of another county see none of it; deputies and citizens may not read the log at all.
    for service in ("intake", "suggestions", "identity"):
        assert not [e for e in await audit(service, elsewhere) if e["region_code"].startswith(COUNTY)], service
    assert (await m.client.get(m.url("intake", "/v1/audit"), headers=deputy)).status_code == 403
    assert (await m.client.get(m.url("intake", "/v1/audit"))).status_code == 401
    # Paging walks back through older entries without repeating any.
    first = ok(await m.client.get(m.url("identity", "/v1/audit"), params={"limit": 2}, headers=staff))
    assert len(first["items"]) == 2 and first["next_before"] == first["items"][-1]["seq"]
    second = ok(await m.client.get(m.url("identity", "/v1/audit"),
                                   params={"limit": 2, "before": first["next_before"]}, headers=staff))
    assert {e["seq"] for e in first["items"]}.isdisjoint(e["seq"] for e in second["items"])
    assert all(e["seq"] < first["next_before"] for e in second["items"])


async def test_nothing_personal_in_logs_events_traces_or_error_bodies(mission: Mission) -> None:
    m = mission
    # Wrong input that carries personal data: the answer names the field, never echoes the value.
    bad = await m.client.post(m.url("intake", "/v1/reports"), json={
        "channel": "h5", "code": m.loaded.codes[DEPUTY], "anonymous": False, "content": "测试身份证号校验",
        "reporter": {**CITIZEN, "id_number": CITIZEN["id_number"][:-1] + ("0" if CITIZEN["id_number"][-1] != "0"
                                                                          else "1")}})
    assert bad.status_code == 422, bad.text
    secrets = {CITIZEN["name"], CITIZEN["phone"], CITIZEN["id_number"], CITIZEN["id_number"][:-1], "13800000001"}
    secrets |= {p.id_number for p in m.county.people}
    events = await messages_since(m.nats_url, m.stream_start, skip=("REGISTRY",))
    assert events, "the mission published no events at all"
    places: dict[str, list[str]] = {
        "log line": m.log.lines,
        "event": [f"{stream} {subject}: {body.decode(errors='replace')}" for stream, subject, body in events],
        "span": [f"{s.name} {dict(s.attributes or {})} {[(e.name, dict(e.attributes or {})) for e in s.events]}"
                 for s in m.spans.get_finished_spans()],
        "error body": m.error_bodies,
    }
    assert m.error_bodies and m.log.lines and places["span"]
    leaks = [f"{where}: {secret!r} in {text[:300]}" for where, texts in places.items() for text in texts
             for secret in secrets if secret in text]
    assert not leaks, "\n".join(leaks[:20])


async def _some(awaitable: Any) -> bool:
    return bool(await awaitable)


async def test_loading_the_demo_again_keeps_its_codes_and_changes_nothing(mission: Mission) -> None:
    m = mission
    endpoints = demo.Endpoints(**{name: s.base_url for name, s in m.services.items()})
    again = await demo.load(m.county, endpoints, lambda roles, region: token(roles, region), known_codes=m.loaded.codes,
                            say=lambda line: None)
    assert again.codes == m.loaded.codes
    assert again.sample_receipt == m.loaded.sample_receipt
    assert again.voters == len(m.county.voters()) and again.registry == m.loaded.registry
    # A code that no longer resolves to its owner is issued afresh, and the old one stops working.
    stale = {**m.loaded.codes, "demo-station": m.loaded.codes["demo-cloud"]}
    renewed = await demo.load(m.county, endpoints, lambda roles, region: token(roles, region), known_codes=stale,
                              say=lambda line: None)
    assert renewed.codes["demo-station"] not in (m.loaded.codes["demo-station"], m.loaded.codes["demo-cloud"])
    assert renewed.codes["demo-cloud"] == m.loaded.codes["demo-cloud"]
    gone = await m.client.get(m.url("identity", f"/v1/codes/{m.loaded.codes['demo-station']}"))
    assert gone.status_code == 404

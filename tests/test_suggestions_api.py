"""The suggestions service on the real dev Temporal server: supervision topics from hotspots,
the micro-suggestion fund, public replies, repeated suggestions, region outcome classes and
what bad input gets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from busutil import event_body, eventually, publish
from conftest import Servers
from suggestionsutil import STAFF, Suggestions, bearer, suggestions_service

from shared.ids import new_id

COUNTY = "340821"
YEAR = datetime.now(UTC).year


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("suggestions-api")) as service:
        await service.unit("gongan", COUNTY)
        await service.unit("weijian", COUNTY)
        yield service


async def deputy(svc: Suggestions) -> str:
    deputy_id = f"d-{new_id()[-12:]}"
    await svc.deputy(deputy_id, COUNTY)
    return deputy_id


def unit(unit_id: str) -> dict[str, str]:
    return bearer("unit", unit_id=unit_id)


async def replied(svc: Suggestions, content: str, *, public: bool = True, micro: bool = False) -> str:
    d = await deputy(svc)
    created = await svc.submit(d, title=f"关于{new_id()[-6:]}路口信号灯的建议", year=YEAR, micro=micro,
                               content="建议在学校门口路口增设信号灯和减速带，保障学生上下学安全。")
    await svc.act(created["id"], "assignment", {"lead_unit_id": "gongan"}, STAFF)
    await svc.act(created["id"], "replies", {"unit_id": "gongan", "content": content, "outcome": "A",
                                             "public": public}, unit("gongan"))
    return str(created["id"])


async def test_a_hotspot_becomes_a_topic_staff_convert_or_close(svc: Suggestions) -> None:
    ids = [new_id(), new_id()]
    for hotspot_id in ids:
        data = {"id": hotspot_id, "region_code": COUNTY, "category": "roads_traffic", "count": 6,
                "keywords": ["信号灯", "路口"], "report_ids": [new_id() for _ in range(6)],
                "first_at": "2026-10-01T08:00:00+08:00", "last_at": "2026-10-20T08:00:00+08:00", "window_days": 30}
        await publish(svc.nats_url, "routing.hotspot.detected", event_body(new_id(), "routing.hotspot.detected", data))

    async def listed() -> bool:
        resp = await svc.client.get("/v1/supervision-topics", params={"status": "open"}, headers=STAFF)
        return {t["id"] for t in resp.json()} >= set(ids)

    await eventually(listed, timeout=20, what="both hotspots listed as open supervision topics")
    lead = await deputy(svc)
    body = {"lead_deputy_id": lead, "title": "关于学校周边交通安全的监督建议", "year": YEAR,
            "content": "群众多次反映学校门口路口没有信号灯，建议作为重点建议督办。"}
    resp = await svc.client.post(f"/v1/supervision-topics/{ids[0]}/conversion", json=body, headers=STAFF)
    assert resp.status_code == 201, resp.text
    converted = resp.json()
    assert converted["topic"]["status"] == "converted"
    suggestion = converted["suggestion"]
    assert suggestion["topic_id"] == ids[0] and suggestion["key_requested"] is True
    again = await svc.client.post(f"/v1/supervision-topics/{ids[0]}/conversion", json=body, headers=STAFF)
    assert again.status_code == 409
    recorded = await svc.recorded(suggestion["id"], 1)
    assert recorded["status"] == "submitted" and recorded["topic_id"] == ids[0]
    closed = await svc.client.post(f"/v1/supervision-topics/{ids[1]}/closure", json={"note": "已由交警部门整改。"},
                                   headers=STAFF)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    outsider = await svc.client.post(f"/v1/supervision-topics/{ids[1]}/closure", json={"note": "越权关闭"},
                                     headers=bearer("npc_staff", "110101"))
    assert outsider.status_code == 403


async def test_the_micro_fund_never_goes_negative(svc: Suggestions) -> None:
    region = COUNTY
    year = YEAR + 1  # a year of its own, so other tests' spending cannot meet this one
    resp = await svc.client.put(f"/v1/micro-funds/{region}/{year}", json={"amount": "1000.00"}, headers=STAFF)
    assert resp.status_code == 200 and resp.json()["balance"] == "1000.00"
    d = await deputy(svc)
    micro = await svc.submit(d, title="关于修缮村口小桥的微建议", year=year, micro=True,
                             content="村口小桥栏杆松动，建议尽快修缮，防止村民跌落。")
    await svc.act(micro["id"], "assignment", {"lead_unit_id": "gongan"}, STAFF)
    spent = await svc.client.post(f"/v1/suggestions/{micro['id']}/spending", json={"amount": "600", "note": "栏杆"},
                                  headers=unit("gongan"))
    assert spent.status_code == 201, spent.text
    assert spent.json()["balance"] == "400.00"
    too_much = await svc.client.post(f"/v1/suggestions/{micro['id']}/spending",
                                     json={"amount": "400.01", "note": "超支"}, headers=STAFF)
    assert too_much.status_code == 409 and "余额不足" in too_much.json()["detail"]
    # Two spendings at once against a balance that holds only one of them.
    racing = await asyncio.gather(*(svc.client.post(f"/v1/suggestions/{micro['id']}/spending",
                                                    json={"amount": "300", "note": f"第{i}笔"}, headers=STAFF)
                                    for i in range(2)))
    assert sorted(r.status_code for r in racing) == [201, 409]
    report = (await svc.client.get(f"/v1/micro-funds/{region}/{year}", headers=STAFF)).json()
    assert report["spent"] == "900.00" and report["balance"] == "100.00" and len(report["items"]) == 2
    lower = await svc.client.put(f"/v1/micro-funds/{region}/{year}", json={"amount": "800"}, headers=STAFF)
    assert lower.status_code == 409
    plain = await svc.submit(d, title="关于普通事项的建议", year=year, content="这是一件普通建议，不使用微建议资金。")
    refused = await svc.client.post(f"/v1/suggestions/{plain['id']}/spending", json={"amount": "1", "note": "不应"},
                                    headers=STAFF)
    assert refused.status_code == 409
    # Staff of another county, or a unit that is not the lead, are refused before the suggestion is
    # looked at: the answer does not tell them it is no micro-suggestion.
    for stranger in (bearer("npc_staff", "110101"), bearer("unit", unit_id="not-the-lead-unit")):
        answer = await svc.client.post(f"/v1/suggestions/{plain['id']}/spending", json={"amount": "1", "note": "不应"},
                                       headers=stranger)
        assert answer.status_code == 403, answer.text


async def test_public_replies_carry_no_personal_data(svc: Suggestions) -> None:
    shown = await replied(svc, "已安装信号灯。联系人电话13812345678，身份证号340821199001011234。")
    hidden = await replied(svc, "内部答复，不公开。", public=False)
    await svc.recorded(shown, 3)
    await svc.recorded(hidden, 3)
    resp = await svc.client.get("/v1/public/replies", params={"year": YEAR, "region_code": COUNTY})
    assert resp.status_code == 200
    listed = {item["id"]: item for item in resp.json()["items"]}
    assert shown in listed and hidden not in listed
    item = listed[shown]
    assert "13812345678" not in item["reply"] and "138****5678" in item["reply"]
    assert "340821199001011234" not in item["reply"]
    assert not {"lead_deputy_id", "co_signer_ids"} & set(item)


async def replied_titled(svc: Suggestions, title: str, content: str) -> str:
    d = await deputy(svc)
    created = await svc.submit(d, title=title, year=YEAR, content="建议完善社区公共设施，方便群众生活。")
    await svc.act(created["id"], "assignment", {"lead_unit_id": "weijian"}, STAFF)
    await svc.act(created["id"], "replies", {"unit_id": "weijian", "content": content, "outcome": "A",
                                             "public": True}, unit("weijian"))
    await svc.recorded(created["id"], 3)
    return str(created["id"])


async def test_public_replies_are_searched_in_their_title_and_reply_as_published(svc: Suggestions) -> None:
    tag = new_id()[-8:]
    lamps = await replied_titled(svc, f"关于更换LED路灯{tag}的建议", "已更换全部路灯。")
    bench = await replied_titled(svc, f"关于增设座椅{tag}的建议",
                                 f"公园已增设座椅50%{tag}，联系电话13812345678，身份证号340821199001011234。")

    async def found(q: str) -> list[str]:
        resp = await svc.client.get("/v1/public/replies", params={"year": YEAR, "region_code": COUNTY, "q": q})
        assert resp.status_code == 200, resp.text
        return [item["id"] for item in resp.json()["items"]]

    assert await found(f"led路灯{tag}") == [lamps], "the title, any case"
    assert await found(f"座椅50%{tag}") == [bench], "the reply"
    assert set(await found(tag)) == {lamps, bench}
    assert set(await found(f"  {tag}  ")) == {lamps, bench}, "spaces around do not count"
    # LIKE wildcards are plain characters: "%" and "_" match only themselves.
    assert await found(f"50%{tag}") == [bench]
    assert await found(f"5_%{tag}") == []
    percent = await found("%")
    assert bench in percent and lamps not in percent
    # The masked digits of a phone or ID number cannot be probed: only the published text is searched.
    assert await found("13812345678") == []
    assert await found("2345") == []
    assert await found("19900101") == []
    assert bench in await found("138****5678")
    assert bench in await found("3408**********1234")
    everything = await svc.client.get("/v1/public/replies", params={"year": YEAR, "region_code": COUNTY, "q": ""})
    assert {lamps, bench} <= {item["id"] for item in everything.json()["items"]}, "an empty q filters nothing"

    for bad in ("路" * 51, "路灯\x00"):
        resp = await svc.client.get("/v1/public/replies", params={"year": YEAR, "q": bad})
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in resp.json()["errors"]] == ["q"]


async def test_public_units_by_region_prefix(svc: Suggestions) -> None:
    for unit_id, region in (("pub-b-jiaotong", "340823"), ("pub-a-minzheng", "340823001"),
                            ("pub-c-elsewhere", "340831")):
        resp = await svc.client.put(f"/v1/units/{unit_id}", headers=STAFF,
                                    json={"name": f"{unit_id}局", "region_code": region})
        assert resp.status_code == 200, resp.text
    resp = await svc.client.get("/v1/public/units", params={"region_code": "340823"})  # no token
    assert resp.status_code == 200, resp.text
    assert resp.json() == [{"id": "pub-a-minzheng", "name": "pub-a-minzheng局", "region_code": "340823001"},
                           {"id": "pub-b-jiaotong", "name": "pub-b-jiaotong局", "region_code": "340823"}]
    listed = (await svc.client.get("/v1/public/units")).json()
    assert (await svc.client.get("/v1/public/units", params={"region_code": ""})).json() == listed
    ids = [u["id"] for u in listed]
    assert ids == sorted(ids) and {"gongan", "weijian", "pub-a-minzheng", "pub-c-elsewhere"} <= set(ids)
    assert set(listed[0]) == {"id", "name", "region_code"}
    bad = await svc.client.get("/v1/public/units", params={"region_code": "34%"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


async def test_a_repeated_suggestion_names_the_earlier_one(svc: Suggestions) -> None:
    first_id = await replied(svc, "已解决。")
    await svc.recorded(first_id, 3)
    first = await svc.get(first_id)
    d = await deputy(svc)
    again = await svc.submit(d, title=first["title"], year=YEAR, content=first["content"])
    assert again["repeat_of"]["id"] == first_id and again["repeat_of"]["outcome"] == "A"
    other = await svc.submit(d, title="关于增加社区养老服务站的建议", year=YEAR,
                             content="建议在各街道增设社区养老服务站，提供助餐和日间照料服务。")
    assert other["repeat_of"] is None


async def test_a_region_may_have_its_own_outcome_classes(svc: Suggestions) -> None:
    region = "340822"
    scheme = {"classes": [{"code": "A", "label": "已解决", "solved": True},
                          {"code": "B", "label": "正在解决", "needs_planned_year": True},
                          {"code": "C", "label": "计划解决", "needs_planned_year": True},
                          {"code": "D", "label": "留作参考", "reference": True}]}
    resp = await svc.client.put(f"/v1/outcome-schemes/{region}", json=scheme, headers=STAFF)
    assert resp.status_code == 200, resp.text
    bad = await svc.client.put(f"/v1/outcome-schemes/{region}", json={"classes": [{"code": "A", "label": "参考"}]},
                               headers=STAFF)
    assert bad.status_code == 422
    d = f"d-{new_id()[-12:]}"
    await svc.deputy(d, region)
    await svc.unit("jiaoyu", region)
    created = await svc.submit(d, title="关于增加学位供给的建议", year=YEAR, content="建议新建一所小学以缓解入学难。")
    await svc.act(created["id"], "assignment", {"lead_unit_id": "jiaoyu"}, STAFF)
    wrong = await svc.act(created["id"], "replies", {"unit_id": "jiaoyu", "content": "答复", "outcome": "E"},
                          unit("jiaoyu"), status=422)
    assert wrong["errors"][0]["field"] == "outcome" and "A、B、C、D" in wrong["errors"][0]["message"]
    state = await svc.act(created["id"], "replies", {"unit_id": "jiaoyu", "content": "留作参考", "outcome": "D"},
                          unit("jiaoyu"))
    assert state["outcome"] == "D" and state["reference"] is True


async def test_bad_input_gets_problem_details_and_changes_nothing(svc: Suggestions) -> None:
    d = await deputy(svc)
    body: dict[str, Any] = {"title": "关于某事的建议", "content": "这是一件建议的正文内容，足够长。",
                            "lead_deputy_id": "nobody", "year": YEAR, "kind": "session"}
    resp = await svc.client.post("/v1/suggestions", json=body, headers=STAFF)
    assert resp.status_code == 422 and resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["errors"][0]["field"] == "lead_deputy_id"
    for_other = await svc.client.post("/v1/suggestions", json={**body, "lead_deputy_id": d},
                                      headers=bearer("deputy", deputy_id="someone-else"))
    assert for_other.status_code == 403
    missing = await svc.client.post(f"/v1/suggestions/{new_id()}/assignment", json={"lead_unit_id": "gongan"},
                                    headers=STAFF)
    assert missing.status_code == 404
    key = {"Idempotency-Key": f"submit-{new_id()}"}
    first = await svc.client.post("/v1/suggestions", json={**body, "lead_deputy_id": d},
                                  headers={**bearer("deputy", COUNTY, deputy_id=d), **key})
    second = await svc.client.post("/v1/suggestions", json={**body, "lead_deputy_id": d},
                                   headers={**bearer("deputy", COUNTY, deputy_id=d), **key})
    assert first.status_code == second.status_code == 201 and first.json()["id"] == second.json()["id"]
    unknown_unit = await svc.client.post(f"/v1/suggestions/{first.json()['id']}/assignment",
                                         json={"lead_unit_id": "no-such-unit"}, headers=STAFF)
    assert unknown_unit.status_code == 422 and unknown_unit.json()["errors"][0]["field"] == "lead_unit_id"
    state = await svc.recorded(first.json()["id"], 1)
    assert state["status"] == "submitted" and [e["kind"] for e in state["timeline"]] == ["submitted"]

"""The event contract: one model per event type, held by producers and consumers; strict envelopes;
what the reference CloudEvents SDK makes of ours and we of its; the generated AsyncAPI's payloads."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml
from busutil import conforming, event_body, eventually, publish, stream_messages
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from conftest import Servers
from scoringutil import STAFF, Scoring, scoring_service

from minyi import event_docs
from shared import events
from shared.bus.envelope import MalformedEvent, new_event, parse_event
from shared.bus.streams import dead_letter_stream
from shared.contracts import EVENTS
from shared.ids import new_id

ROOT = Path(__file__).resolve().parent.parent
DECLARED = sorted(spec.type for group in EVENTS.values() for spec in group)


def envelope(**overrides: Any) -> bytes:
    doc = {"specversion": "1.0", "id": "e-1", "source": "/province/registry", "type": "registry.population.records",
           "time": "2026-12-05T10:00:00+08:00", "data": {"record_id": "P1"}, **overrides}
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


# ---- the catalogue ------------------------------------------------------------------------------


def test_every_declared_event_type_has_a_model_and_every_model_a_declared_type() -> None:
    assert sorted(events.MODELS) == DECLARED


@pytest.mark.parametrize("event_type", DECLARED)
def test_each_model_example_is_an_event_its_producer_may_send(event_type: str) -> None:
    model = events.MODELS[event_type]
    example = events.example(model)
    events.check_outgoing(event_type, example)
    assert model.model_validate(example).model_dump(mode="json", exclude_unset=True).keys() == example.keys()


def test_a_producer_may_not_send_a_field_its_model_does_not_describe_nor_a_wrong_type() -> None:
    good = events.example(events.ReportAcknowledged)
    with pytest.raises(events.PayloadError, match="does not describe: reporter_phone"):
        events.check_outgoing("intake.report.acknowledged", {**good, "reporter_phone": "13800000000"})
    with pytest.raises(events.PayloadError, match="on_time"):
        events.check_outgoing("intake.report.acknowledged", {**good, "on_time": "yes please"})
    with pytest.raises(events.PayloadError, match=r"at:.*timezone"):
        events.check_outgoing("intake.report.acknowledged", {**good, "at": "2026-12-05T10:00:00"})
    with pytest.raises(events.PayloadError, match="not in the event catalogue"):
        events.check_outgoing("intake.report.teleported", good)


def test_a_consumer_of_the_old_release_reads_a_new_field_and_the_new_reads_an_old_payload() -> None:
    newer = {**events.example(events.TicketUpdated), "eta": "2026-12-09T12:00:00+08:00"}
    assert events.TicketUpdated.model_validate(newer).model_extra == {"eta": "2026-12-09T12:00:00+08:00"}
    older = {k: v for k, v in events.example(events.HotspotDetected).items()
             if k not in ("supporters", "places", "category_counts", "detected_at", "window_days")}
    hotspot = events.HotspotDetected.model_validate(older)
    assert (hotspot.supporters, hotspot.places, hotspot.window_days) == (0, [], None)


def test_the_model_of_an_outside_subject_goes_by_the_subject_not_by_the_type_it_claims() -> None:
    assert events.model_for("routing.ticket.updated", "grid.p1.events") is events.GridStatus
    assert events.model_for("anything", "registry.migrant.records") is events.RegistryRecord
    assert events.model_for("intake.report.rated", "intake.report.rated") is events.ReportRated
    assert events.model_for("grid.p1.events.extra", "grid.p1.events.extra") is None


# ---- strict envelopes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "reason"), [
    (envelope(specversion="2.0"), "specversion '2.0'"),
    (envelope(id=None), "id is missing"),
    (envelope(id=""), "id is missing"),
    (envelope(source=None), "source is missing"),
    (envelope(Partner_Ref="x"), "attribute name 'Partner_Ref'"),
    (envelope(**{"partner-ref": "x"}), "attribute name 'partner-ref'"),
    (envelope(time="2026-12-05T10:00:00"), "not RFC 3339 with an offset"),
    (envelope(time="2026-12-05"), "not RFC 3339 with an offset"),
    (envelope(data_base64=base64.b64encode(b"{}").decode()), "data and data_base64 together"),
    (envelope(data=[1, 2]), "data is a JSON list"),
    (envelope(data=None, data_base64="not base64!", datacontenttype="application/octet-stream"), "not base64"),
    (envelope(traceref={"nested": True}), "extension traceref is not a string"),
    (b"[1, 2]", "not a JSON object"),
    (b"\xff", "not JSON"),
])
def test_an_envelope_the_cloudevents_specification_refuses_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        parse_event(body, subject="registry.population.records")


def test_an_outside_producers_id_is_kept_and_a_bare_record_gets_the_same_id_each_time() -> None:
    assert parse_event(envelope(id="prov-42"), subject="registry.population.records").id == "prov-42"
    bare = json.dumps({"record_id": "P1"}).encode()
    first = parse_event(bare, subject="registry.population.records")
    again = parse_event(bare, subject="registry.population.records")
    assert first.id == again.id and len(first.id) == 32
    assert parse_event(bare, subject="registry.population.records", headers={"Nats-Msg-Id": "m-9"}).id == "m-9"


def test_binary_data_is_kept_as_it_came_and_json_in_base64_is_read() -> None:
    raw = bytes(range(8))
    event = parse_event(envelope(data=None, data_base64=base64.b64encode(raw).decode(),
                                 datacontenttype="application/octet-stream"), subject="s.t")
    assert base64.b64decode(event.data_base64 or "") == raw and event.data == {}
    out = json.loads(event.to_bytes())
    assert "data" not in out and base64.b64decode(out["data_base64"]) == raw
    wrapped = parse_event(envelope(data=None, data_base64=base64.b64encode(b'{"record_id": "P2"}').decode()),
                          subject="s.t")
    assert wrapped.data == {"record_id": "P2"}


def test_the_nats_binary_mode_reads_attributes_from_ce_headers() -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "b-1", "ce-source": "/grid/p1", "ce-type": "grid.status",
               "ce-time": "2026-12-05T02:00:00Z", "ce-partnerref": "T-77", "content-type": "application/json"}
    event = parse_event(b'{"ticket_id": "t1"}', subject="grid.p1.events", headers=headers)
    assert (event.id, event.source, event.data, event.model_extra) == (
        "b-1", "/grid/p1", {"ticket_id": "t1"}, {"partnerref": "T-77"})
    with pytest.raises(MalformedEvent, match="specversion"):
        parse_event(b"{}", subject="grid.p1.events", headers={**headers, "ce-specversion": "0.3"})


# ---- the reference SDK -------------------------------------------------------------------------------


def test_the_cloudevents_sdk_reads_what_minyi_emits() -> None:
    data = events.example(events.ReportAnswered)
    ours = new_event("intake", "intake.report.answered", data, subject=data["report_id"])
    theirs = JSONFormat().read(None, ours.to_bytes())
    assert (theirs.get_id(), theirs.get_type(), theirs.get_source(), theirs.get_subject()) == (
        ours.id, "intake.report.answered", "/minyi/intake", data["report_id"])
    assert theirs.get_data() == data


def test_minyi_reads_what_the_cloudevents_sdk_writes_text_and_binary() -> None:
    status = {"ticket_id": "t-1", "status": "resolved", "note": "已修复", "at": "2026-12-05T10:00:00+08:00"}
    text = JSONFormat().write(SdkEvent({"id": "sdk-1", "source": "/grid/p1", "type": "grid.status",
                                        "datacontenttype": "application/json"}, status))
    event = parse_event(text, subject="grid.p1.events")
    assert (event.id, event.payload(events.GridStatus).status) == ("sdk-1", "resolved")
    binary = JSONFormat().write(SdkEvent({"id": "sdk-2", "source": "/grid/p1", "type": "grid.photo",
                                          "datacontenttype": "image/png"}, b"\x89PNG\r\n"))
    kept = parse_event(binary, subject="grid.p1.events")
    assert base64.b64decode(kept.data_base64 or "") == b"\x89PNG\r\n"


# ---- a consumer refuses a malformed event, naming the field ---------------------------------------------


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scoring]:
    async with scoring_service(servers, tmp_path_factory.mktemp("scoring-contracts")) as service:
        yield service


async def test_an_event_that_breaks_its_model_is_dead_lettered_with_the_field(svc: Scoring) -> None:
    bad_id, good_id = new_id(), new_id()
    data = conforming("intake.report.acknowledged", {"deputy_id": "d-contract", "region_code": "350102"})
    broken = {k: v for k, v in data.items() if k != "on_time"}
    await publish(svc.nats_url, "intake.report.acknowledged",
                  event_body(bad_id, "intake.report.acknowledged", broken, complete=False), msg_id=bad_id)
    await publish(svc.nats_url, "intake.report.acknowledged",
                  event_body(good_id, "intake.report.acknowledged", data), msg_id=good_id)

    async def letters_of(event_id: str) -> list[tuple[str, dict[str, str], bytes]]:
        letters = await stream_messages(svc.nats_url, dead_letter_stream("scoring").name)
        return [m for m in letters if event_id.encode() in m[2]]

    async def refused() -> bool:
        return bool(await letters_of(bad_id))

    async def applied() -> bool:
        score = await svc.client.get("/v1/deputies/d-contract/score", params={"year": 2026},
                                     headers={"Authorization": STAFF["Authorization"]})
        return score.status_code == 200 and any(e["source_id"] == good_id for e in score.json()["entries"])

    await eventually(refused, timeout=30, what="the malformed event in scoring's dead letters")
    [(subject, headers, _body)] = await letters_of(bad_id)
    assert subject.endswith("intake.report.acknowledged")
    assert "on_time" in headers["Minyi-Error"] and "Field required" in headers["Minyi-Error"]
    await svc.deputy("d-contract", "350102")
    await eventually(applied, timeout=30, what="the well-formed event after it scored")
    assert not await letters_of(good_id)


# ---- the generated AsyncAPI document ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())


def test_every_message_of_the_asyncapi_document_describes_its_fields(asyncapi: dict[str, Any]) -> None:
    schemas, messages = asyncapi["components"]["schemas"], asyncapi["components"]["messages"]
    untyped = [name for name, m in messages.items()
               if m["payload"] in ({"$ref": "#/components/schemas/CloudEvent"},
                                   {"$ref": "#/components/schemas/EmptyPayload"}, {"type": "null"})]
    assert not untyped
    for event_type, model in events.MODELS.items():
        schema = schemas[event_docs.schema_name(event_type)]
        data_ref = schema["allOf"][1]["properties"]["data"]["$ref"]
        fields = schemas[data_ref.rsplit("/", 1)[1]]["properties"]
        assert set(fields) == set(model.model_fields), event_type
    assert set(schemas["CloudEventEnvelope"]["required"]) == {"specversion", "id", "source", "type"}


def test_subscribers_show_what_they_accept_and_bindings_follow_the_nats_binding(asyncapi: dict[str, Any]) -> None:
    channels, messages = asyncapi["channels"], asyncapi["components"]["messages"]
    scoring = channels["scoring-reports:intake.report.>"]
    payload = messages[unquote(scoring["messages"]["SubscribeMessage"]["$ref"].rsplit("/", 1)[1])]["payload"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in payload["oneOf"]} == {
        event_docs.schema_name(t) for t in events.MODELS if t.startswith("intake.report.")}
    grid = messages[unquote(channels["routing-grid-events:grid.*.events"]["messages"]["SubscribeMessage"]["$ref"]
                            .rsplit("/", 1)[1])]["payload"]
    assert {"$ref": "#/components/schemas/GridStatus"} in grid["oneOf"]
    assert channels["registry-records"]["address"] == "registry.{source}.records"
    for channel in channels.values():
        assert "bindings" not in channel
    for operation in asyncapi["operations"].values():
        nats_binding = operation.get("bindings", {}).get("nats")
        if nats_binding is not None:
            assert nats_binding["bindingVersion"] == "0.1.0" and set(nats_binding) <= {"queue", "bindingVersion"}

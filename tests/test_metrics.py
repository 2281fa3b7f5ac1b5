"""`GET /metrics` of a service on the real servers: requests by route template and status,
messages by outcome, and what is read at each scrape (consumer lag, outbox backlog, dead letters)."""

from __future__ import annotations

import httpx
from busutil import event_body, eventually, publish, unique_name
from conftest import Servers
from fastapi import APIRouter
from probe import create_schema, make_probe, probe_settings
from prometheus_client.parser import text_string_to_metric_families

from shared.service import build_app


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape by (name, labels)."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return scrape.get((name, frozenset(labels.items())))


async def test_metrics_count_requests_by_route_template_and_messages_by_outcome(servers: Servers) -> None:
    probe = make_probe(unique_name())
    router = APIRouter()

    @router.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    probe.spec.routers = (router,)
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url, max_deliver=2))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        await app.state.runtime.bus_started.wait()
        for n in range(3):
            assert (await client.get(f"/v1/things/secret-{n}")).status_code == 200
        assert (await client.get("/no/such/page")).status_code == 404
        await publish(servers.nats_url, probe.subject, event_body("m-good", probe.subject, {"value": "ok"}), "m-good")
        await publish(servers.nats_url, probe.subject, event_body("m-good", probe.subject, {"value": "ok"}), "m-again")
        await publish(servers.nats_url, probe.subject,
                      event_body("m-fail", probe.subject, {"value": "no", "fail": True}), "m-fail")
        await publish(servers.nats_url, probe.subject, b"{not json", "m-garbage")

        scrape: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

        async def settled() -> bool:
            nonlocal scrape
            resp = await client.get("/metrics")
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
            scrape = samples(resp.text)
            return value(scrape, "minyi_dead_letters") == 2 and value(
                scrape, "minyi_consumer_lag_messages", consumer=probe.durable, stream=probe.stream) == 0

        await eventually(settled, timeout=20, what="two dead letters and no lag on /metrics")

    route = "/v1/things/{thing_id}"
    assert value(scrape, "minyi_http_requests_total", method="GET", route=route, status="200") == 3
    assert value(scrape, "minyi_http_request_duration_seconds_count", method="GET", route=route) == 3
    assert value(scrape, "minyi_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert not any("secret-" in dict(labels).get("route", "") for _, labels in scrape), "raw paths leak into labels"
    consumed = {outcome: value(scrape, "minyi_consumer_messages_total", consumer=probe.durable, outcome=outcome)
                for outcome in ("applied", "skipped", "retried", "dead_lettered")}
    assert consumed == {"applied": 1, "skipped": 1, "retried": 1, "dead_lettered": 2}
    assert value(scrape, "minyi_outbox_backlog") == 0
    for name in ("consumer_lag", "outbox", "dead_letters"):
        assert value(scrape, "minyi_metrics_probe_ok", probe=name) == 1, name


async def test_a_probe_that_cannot_answer_is_marked_and_the_scrape_still_answers(servers: Servers) -> None:
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url))

    async def broken(runtime: object) -> dict[str, int]:
        raise ConnectionError("the database went away")

    probe.spec.overdue = broken
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        await app.state.runtime.bus_started.wait()
        resp = await client.get("/metrics")
    assert resp.status_code == 200
    scrape = samples(resp.text)
    assert value(scrape, "minyi_metrics_probe_ok", probe="overdue") == 0
    assert value(scrape, "minyi_metrics_probe_ok", probe="outbox") == 1


def test_the_alerting_rules_name_only_metrics_the_services_export() -> None:
    import re
    from pathlib import Path

    import yaml

    from shared.metrics import Metrics

    rules = yaml.safe_load((Path(__file__).parent.parent / "deploy" / "prometheus" / "minyi-alerts.yml").read_text())
    exported = {m.name for m in Metrics().registry.collect()}
    named = {name for group in rules["groups"] for rule in group["rules"]
             for name in re.findall(r"\bminyi_[a-z_]+", rule["expr"])}
    assert named and named <= exported, named - exported
    assert {"minyi_outbox_set_aside", "minyi_outbox_oldest_seconds"} <= named

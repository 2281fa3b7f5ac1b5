"""Who may call what: one row per HTTP operation of the five services, and the cases made from it.

A row names the roles allowed, whether the caller's `region` claim must cover the resource's
region (and for which of the allowed roles), and what identity a deputy or unit must hold.
`cases` turns each row into calls: every role alone with a region inside the resource's region
and one outside it, no token at all, and for a needed identity a stranger's.

Request templates are filled from the resources the matrix test sets up: `{name}` in a path,
query or body string is replaced by that resource; a body may also be a function of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.auth import ROLES

INSIDE = "330106"
OUTSIDE = "320923"
ANYONE: Literal["anyone"] = "anyone"
SIGNED: Literal["signed"] = "signed"
# What a plain (non-/v1) route of every service answers: anyone, no resource.
COMMON = ("/healthz", "/readyz", "/openapi.json", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc")

Body = Any | Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Call:
    """How to call the operation: templates over the resources, and what must exist first."""

    path: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    json: Body = None
    # A form-encoded body (Open311's POST), templates like `json`.
    form: Mapping[str, str] | None = None
    upload: bool = False
    # A resource made afresh before each call expected to succeed (a reply can be given once).
    fresh: str | None = None


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    path: str
    allow: tuple[str, ...] | Literal["anyone", "signed"]
    # What the region check is made against; None: the caller's region does not matter.
    region: str | None = None
    # The allowed roles whose region claim is checked; None: all of them.
    scoped: tuple[str, ...] | None = None
    # role → resource naming the identity (deputy_id / unit_id) that role must hold.
    needs: Mapping[str, str] = field(default_factory=dict)
    ok: int | None = 200  # the exact status of an allowed call; None: anything but 401/403
    outside: int = 403  # a caller outside the region (404 where the service hides what exists)
    stranger: int = 403  # an allowed role holding another identity than the one needed
    call: Call = field(default_factory=Call)
    note: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return self.service, self.method, self.path


@dataclass(frozen=True)
class Case:
    row: Row
    role: str | None  # None: no token
    region: str
    stranger: bool = False
    signed: bool = False
    expect: int | None = None  # None: neither 401 nor 403 (nor a server error)

    @property
    def name(self) -> str:
        r = self.row
        if self.signed:
            who = "signed by the platform"
        elif self.role is None:
            who = "no token"
        else:
            who = f"{self.role} {'inside' if self.region == INSIDE else 'outside'}" + (
                " as a stranger" if self.stranger else "")
        return f"{r.service} {r.method} {r.path} {who}"


def cases(row: Row) -> list[Case]:
    if row.allow == SIGNED:
        # No bearer token stands in for the platform's signature.
        unsigned = [Case(row, role, region, expect=401) for role in ROLES for region in (INSIDE, OUTSIDE)]
        return [Case(row, None, INSIDE, expect=401), *unsigned, Case(row, None, INSIDE, signed=True, expect=row.ok)]
    allowed = set(ROLES) if row.allow == ANYONE else set(row.allow)
    scoped = allowed if row.scoped is None else set(row.scoped)
    out = [Case(row, None, INSIDE, expect=row.ok if row.allow == ANYONE else 401)]
    for role in ROLES:
        for region in (INSIDE, OUTSIDE):
            if role not in allowed:
                expect: int | None = 403
            elif row.region is not None and role in scoped and region == OUTSIDE:
                expect = row.outside
            else:
                expect = row.ok
            out.append(Case(row, role, region, expect=expect))
        if role in row.needs and role in allowed:
            out.append(Case(row, role, INSIDE, stranger=True, expect=row.stranger))
    return out


def _common(service: str) -> list[Row]:
    return [Row(service, "GET", path, ANYONE) for path in COMMON] + [
        # Every service's own audit log; the caller's region filters the entries rather than refusing.
        Row(service, "GET", "/v1/audit", ("admin", "npc_staff"), note="not a core call; see shared/audit.py"),
    ]


STAFF4 = ("admin", "npc_staff", "station_staff", "integration")
ADMIN_STAFF = ("admin", "npc_staff")
VIEWERS = ("deputy", "station_staff", "npc_staff")
# Who picks a region's deputies and stations by name at work.
COLLEAGUES = ("admin", "npc_staff", "station_staff", "deputy")
# A unit acting on a suggestion not assigned to it is stopped by the workflow's rule on `unit_id`
# (422, pinned by tests/test_suggestions_workflow.py), not by a 403 before it.
UNIT_RULE = 422
DRAWING = ("the core calls name the drawings in the admin row of codes without saying who may draw "
           "them; station staff print them for their walls")
DEPUTY_BODY = {"name": "矩阵代表甲", "level": "county", "region_code": INSIDE, "station_ids": ["{station}"]}
REPORT_BODY = {"channel": "h5", "code": "{deputy_code}", "anonymous": True,
               "content": "小区门口路灯坏了一个多月，晚上出行很不方便，希望尽快修好。"}
RULES_BODY = {"effective_from": "{tomorrow}", "rules": [
    {"code": "reception_day", "on": "activity:reception_day", "points": 2, "dimension": "relief"}]}
OUTCOMES_BODY = {"classes": [{"code": "A", "label": "已解决", "solved": True},
                             {"code": "B", "label": "列入计划", "needs_planned_year": True},
                             {"code": "C", "label": "留作参考", "reference": True}]}


def _suggestion(ctx: Mapping[str, Any]) -> dict[str, Any]:
    return {"title": "关于完善社区养老服务的建议", "lead_deputy_id": ctx["deputy"], "year": int(ctx["year"]),
            "kind": "session", "content": "建议在各街道增设日间照料中心，为高龄独居老人提供助餐服务。"}


def _conversion(ctx: Mapping[str, Any]) -> dict[str, Any]:
    return {"lead_deputy_id": ctx["deputy"], "title": "关于整治菜市场周边环境卫生的建议", "year": int(ctx["year"]),
            "content": "群众多次反映菜市场门口垃圾清运不及时，建议作为重点建议督办。"}


def _publication(ctx: Mapping[str, Any]) -> dict[str, Any]:
    # A township of its own per call: a ranking is published once.
    return {"year": int(ctx["year"]), "region_code": f"{INSIDE}{int(ctx['n']):03d}"}


IDENTITY = [
    *_common("identity"),
    Row("identity", "GET", "/v1/codes/{code}", ANYONE, call=Call(path={"code": "{deputy_code}"})),
    Row("identity", "GET", "/v1/public/regions", ANYONE, call=Call(query={"parent_code": "330100"}),
        note="not a core call; the region tree of the citizens' pages"),
    Row("identity", "GET", "/v1/public/regions/{code}", ANYONE, call=Call(path={"code": INSIDE}),
        note="not a core call; the region tree of the citizens' pages"),
    Row("identity", "PUT", "/v1/regions/{code}", ("admin",), region="the region itself",
        call=Call(path={"code": INSIDE}, json={"name": "西湖区", "parent_code": "330100"})),
    Row("identity", "GET", "/v1/regions/{code}", STAFF4, region="the region itself", call=Call(path={"code": INSIDE}),
        note="not a core call"),
    Row("identity", "PUT", "/v1/stations/{station_id}", ("admin",), region="body region_code",
        call=Call(path={"station_id": "{station}"},
                  json={"name": "矩阵联络站", "kind": "station", "region_code": INSIDE})),
    Row("identity", "GET", "/v1/stations/{station_id}", STAFF4, region="the station's", outside=404,
        call=Call(path={"station_id": "{station}"}), note="not a core call; outside the region it does not exist"),
    Row("identity", "PUT", "/v1/deputies/{deputy_id}", ("admin",), region="body region_code",
        call=Call(path={"deputy_id": "{deputy}"}, json=DEPUTY_BODY)),
    Row("identity", "GET", "/v1/deputies/{deputy_id}", STAFF4, region="the deputy's", outside=404,
        call=Call(path={"deputy_id": "{deputy}"}), note="not a core call; outside the region it does not exist"),
    Row("identity", "GET", "/v1/deputies", COLLEAGUES, region="query region_code",
        call=Call(query={"region_code": INSIDE}), note="not a core call; names for picking co-signers"),
    Row("identity", "GET", "/v1/stations", COLLEAGUES, region="query region_code",
        call=Call(query={"region_code": INSIDE}), note="not a core call; names for the clerk's picker"),
    Row("identity", "POST", "/v1/deputies/{deputy_id}/code", ("admin",), region="the deputy's", ok=201,
        call=Call(path={"deputy_id": "{code_deputy}"})),
    Row("identity", "GET", "/v1/deputies/{deputy_id}/code.svg", STAFF4, region="the deputy's", outside=404,
        call=Call(path={"deputy_id": "{code_deputy}"}), note=DRAWING),
    Row("identity", "GET", "/v1/deputies/{deputy_id}/code.png", STAFF4, region="the deputy's", outside=404,
        call=Call(path={"deputy_id": "{code_deputy}"}), note=DRAWING),
    Row("identity", "POST", "/v1/stations/{station_id}/code", ("admin",), region="the station's", ok=201,
        call=Call(path={"station_id": "{code_station}"})),
    Row("identity", "GET", "/v1/stations/{station_id}/code.svg", STAFF4, region="the station's", outside=404,
        call=Call(path={"station_id": "{code_station}"}), note=DRAWING),
    Row("identity", "GET", "/v1/stations/{station_id}/code.png", STAFF4, region="the station's", outside=404,
        call=Call(path={"station_id": "{code_station}"}), note=DRAWING),
    # After the drawings: a revoked code has nothing left to draw.
    Row("identity", "DELETE", "/v1/deputies/{deputy_id}/code", ("admin",), region="the deputy's", ok=204,
        call=Call(path={"deputy_id": "{code_deputy}"}, fresh="deputy_code"), note="not a core call"),
    Row("identity", "DELETE", "/v1/stations/{station_id}/code", ("admin",), region="the station's", ok=204,
        call=Call(path={"station_id": "{code_station}"}, fresh="station_code"), note="not a core call"),
    Row("identity", "POST", "/v1/registry/{source}/records", ("integration",),
        call=Call(path={"source": "population"}, json=[])),
    Row("identity", "POST", "/v1/registry/{source}/loads", ("integration",), ok=415,
        call=Call(path={"source": "population"}, json=[]),
        note="a load is NDJSON or CSV; the JSON call is refused after the role"),
    Row("identity", "GET", "/v1/registry/{source}/loads/{load_id}", ("integration",), ok=404,
        call=Call(path={"source": "population", "load_id": "authz-none"}),
        note="no such load; looked up after the role"),
    Row("identity", "PUT", "/v1/elections/{election_id}", ("npc_staff",), region="body region_code", ok=201,
        call=Call(path={"election_id": "{election}-{n}"},
                  json={"region_code": INSIDE, "election_date": "2026-12-15",
                        "districts": [{"id": "d1", "region_codes": [INSIDE]}]})),
    Row("identity", "GET", "/v1/elections", ("npc_staff",), region="query region_code",
        call=Call(query={"region_code": INSIDE}), note="not a core call; the console's election picker"),
    Row("identity", "GET", "/v1/elections/{election_id}", ("npc_staff",), region="the election's", outside=404,
        call=Call(path={"election_id": "{election}"}), note="not a core call; follows the other election calls"),
    Row("identity", "POST", "/v1/elections/{election_id}/voters", ("npc_staff",), region="the election's",
        outside=404, call=Call(path={"election_id": "{election}"}, json=[])),
    Row("identity", "POST", "/v1/elections/{election_id}/reconciliation", ("npc_staff",), region="the election's",
        ok=202, outside=404, call=Call(path={"election_id": "{election}"})),
    Row("identity", "GET", "/v1/elections/{election_id}/reconciliation", ("npc_staff",), region="the election's",
        outside=404, call=Call(path={"election_id": "{election}"})),
]

# Open311 (GeoReport v2), each operation as .json and .xml: reads are public; filing takes an integration
# credential whose region covers `jurisdiction_id`.
OPEN311_QUERY = {"jurisdiction_id": INSIDE}
OPEN311_FORM = {"jurisdiction_id": INSIDE, "service_code": "roads_traffic",
                "description": "路口的红绿灯坏了好几天，车辆通行很危险。"}
OPEN311_ROWS = [row for fmt in ("json", "xml") for row in (
    Row("intake", "GET", f"/open311/v2/services.{fmt}", ANYONE, call=Call(query=OPEN311_QUERY)),
    Row("intake", "GET", f"/open311/v2/services/{{service_code}}.{fmt}", ANYONE,
        call=Call(path={"service_code": "roads_traffic"}, query=OPEN311_QUERY)),
    Row("intake", "POST", f"/open311/v2/requests.{fmt}", ("integration",), region="form jurisdiction_id", ok=201,
        call=Call(form=OPEN311_FORM), note="the credential as a bearer token here; the api_key field works alike"),
    Row("intake", "GET", f"/open311/v2/requests.{fmt}", ANYONE, call=Call(query=OPEN311_QUERY)),
    Row("intake", "GET", f"/open311/v2/requests/{{service_request_id}}.{fmt}", ANYONE,
        call=Call(path={"service_request_id": "{report}"}, query=OPEN311_QUERY),
        note="public data only: status, deadlines, the answer; nothing about the reporter"),
    Row("intake", "GET", f"/open311/v2/tokens/{{token}}.{fmt}", ANYONE,
        call=Call(path={"token": "{open311_token}"}, query=OPEN311_QUERY)),
)]

INTAKE = [
    *_common("intake"),
    Row("intake", "POST", "/v1/attachments", ANYONE, ok=201, call=Call(upload=True)),
    Row("intake", "POST", "/v1/reports", ANYONE, region="the code's target", scoped=("station_staff",), ok=201,
        call=Call(json=REPORT_BODY), note="station staff register only within their region"),
    Row("intake", "GET", "/v1/receipts/{receipt_code}", ANYONE, call=Call(path={"receipt_code": "{receipt}"})),
    Row("intake", "GET", "/v1/public/stats", ANYONE, call=Call(query={"region_code": INSIDE}),
        note="not a core call; the public board's monthly figures"),
    Row("intake", "GET", "/v1/stats/targets", ("npc_staff",), region="query region_code",
        call=Call(query={"region_code": INSIDE, "year": "{year}"}),
        note="not a core call; congress staff's overview by deputy and station"),
    Row("intake", "GET", "/q/{code}", ANYONE, ok=308, call=Call(path={"code": "{deputy_code}"}),
        note="not a core call; codes printed with intake's address lead on to the web tier"),
    Row("intake", "POST", "/v1/receipts/{receipt_code}/rating", ANYONE, ok=201,
        call=Call(path={"receipt_code": "{receipt}"}, json={"stars": 5}, fresh="answered_report")),
    Row("intake", "GET", "/v1/reports", VIEWERS, region="query region_code",
        call=Call(query={"region_code": INSIDE})),
    Row("intake", "GET", "/v1/reports/{report_id}", VIEWERS, region="the report's",
        scoped=("station_staff", "npc_staff"), needs={"deputy": "deputy"},
        call=Call(path={"report_id": "{report}"}), note="a deputy sees the reports aimed at them"),
    Row("intake", "GET", "/v1/reports/{report_id}/attachments/{attachment_id}", VIEWERS, region="the report's",
        scoped=("station_staff", "npc_staff"), needs={"deputy": "deputy"},
        call=Call(path={"report_id": "{report}", "attachment_id": "{attachment}"}), note="not a core call"),
    Row("intake", "POST", "/v1/reports/{report_id}/acknowledge", ("deputy", "station_staff"), region="the report's",
        scoped=("station_staff",), needs={"deputy": "deputy"}, call=Call(path={"report_id": "{report}"})),
    Row("intake", "POST", "/v1/reports/{report_id}/reply", ("deputy", "station_staff"), region="the report's",
        scoped=("station_staff",), needs={"deputy": "deputy"},
        call=Call(path={"report_id": "{report}"}, json={"content": "已联系物业，本周修复。"}, fresh="report")),
    Row("intake", "POST", "/v1/reports/{report_id}/reporter/unmask", ("deputy", "station_staff"),
        region="the report's", scoped=("station_staff",), needs={"deputy": "deputy"},
        call=Call(path={"report_id": "{report}"}, json={"reason": "需要电话回访核实情况"}), note="not a core call"),
    Row("intake", "POST", "/v1/reports/{report_id}/reminders", ("station_staff", "npc_staff"),
        region="the report's", ok=201,
        call=Call(path={"report_id": "{report}"}, json={"note": "请尽快联系反映人"}, fresh="report"),
        note="not a core call; once an hour per report, so each allowed call gets a fresh one"),
    Row("intake", "POST", "/v1/reports/{report_id}/supports", ANYONE, region="the report's", scoped=("station_staff",),
        ok=201, call=Call(path={"report_id": "{report}"}, json={"anonymous": True, "channel": "h5"}),
        note="not a core call; 我也遇到: station staff register only within their region"),
    Row("intake", "GET", "/v1/calendar/{year}", ADMIN_STAFF, call=Call(path={"year": "2025"}),
        note="not a core call"),
    Row("intake", "PUT", "/v1/calendar/{year}", ("admin",),
        call=Call(path={"year": "2097"}, json={"holidays": ["2097-01-01"]}), note="not a core call"),
    Row("intake", "GET", "/v1/clock-rules", ADMIN_STAFF, note="not a core call; lists what applies to the caller"),
    Row("intake", "PUT", "/v1/clock-rules/{region_prefix}", ADMIN_STAFF, region="the path's",
        call=Call(path={"region_prefix": f"{INSIDE}001"}, json={"ack_days": 2, "reply_days": 7}),
        note="not a core call"),
    *OPEN311_ROWS,
]

ROUTING = [
    *_common("routing"),
    Row("routing", "PUT", "/v1/grid-platforms/{platform_id}", ("admin",), region="body region_prefixes",
        call=Call(path={"platform_id": "{platform}"},
                  json={"name": "矩阵网格平台", "region_prefixes": [INSIDE], "transport": "nats",
                        "secret": "{grid_secret}"})),
    Row("routing", "GET", "/v1/grid-platforms", ADMIN_STAFF, note="not a core call; lists what concerns them"),
    Row("routing", "GET", "/v1/grid-platforms/{platform_id}", ADMIN_STAFF, region="the platform's", outside=404,
        call=Call(path={"platform_id": "{platform}"}), note="not a core call"),
    Row("routing", "POST", "/v1/grid/callbacks", SIGNED,
        call=Call(json={"ticket_id": "{ticket}", "status": "accepted", "at": "{now}"})),
    Row("routing", "GET", "/v1/tickets/{ticket_id}", ("npc_staff", "station_staff"), region="the ticket's",
        outside=404, call=Call(path={"ticket_id": "{ticket}"}), note="outside the region a ticket does not exist"),
    Row("routing", "GET", "/v1/tickets", ("npc_staff", "station_staff"),
        note="not a core call; the readers of one ticket; lists the caller's region"),
    Row("routing", "GET", "/v1/decisions/{report_id}", ("npc_staff", "station_staff"), region="the report's",
        outside=404, call=Call(path={"report_id": "{report}"}), note="not a core call; the readers of tickets"),
    Row("routing", "GET", "/v1/hotspots", ("npc_staff", "deputy"), region="query region_code",
        call=Call(query={"region_code": INSIDE})),
    Row("routing", "GET", "/v1/hotspots/{hotspot_id}", ("npc_staff", "deputy"), region="the hotspot's", outside=404,
        call=Call(path={"hotspot_id": "{hotspot}"}), note="not a core call; outside the region it does not exist"),
    Row("routing", "POST", "/v1/hotspots/{hotspot_id}/split", ("npc_staff",), region="the hotspot's", outside=404,
        ok=201, call=Call(path={"hotspot_id": "{hotspot}"}, json={"report_ids": ["{hotspot_report}"]},
                          fresh="hotspot"), note="not a core call; staff correct the clustering"),
    Row("routing", "POST", "/v1/hotspots/{hotspot_id}/merge", ("npc_staff",), region="the hotspot's", outside=404,
        call=Call(path={"hotspot_id": "{hotspot}"}, json={"hotspot_id": "{other_hotspot}"}, fresh="hotspot"),
        note="not a core call"),
    Row("routing", "POST", "/v1/hotspots/{hotspot_id}/closure", ("npc_staff",), region="the hotspot's", outside=404,
        call=Call(path={"hotspot_id": "{hotspot}"}, json={"note": "聚类有误，不列为监督议题"}, fresh="hotspot"),
        note="not a core call"),
    Row("routing", "POST", "/v1/public/hotspots/similar", ANYONE,
        call=Call(json={"region_code": INSIDE, "content": "菜市场门口垃圾桶满了没人清运"}),
        note="not a core call; \"reported already?\" before a citizen reports"),
    Row("routing", "GET", "/v1/public/hotspots/{hotspot_id}", ANYONE, call=Call(path={"hotspot_id": "{hotspot}"}),
        note="not a core call; a hotspot as a matter, without its reports"),
    Row("routing", "GET", "/v1/categories", ANYONE, note="not a core call; the citizens' report form"),
]

SUGGESTIONS = [
    *_common("suggestions"),
    Row("suggestions", "PUT", "/v1/units/{unit_id}", ADMIN_STAFF, region="body region_code",
        call=Call(path={"unit_id": "{unit}"}, json={"name": "矩阵主办局", "region_code": INSIDE})),
    Row("suggestions", "GET", "/v1/units/{unit_id}", ADMIN_STAFF, region="the unit's", outside=404,
        call=Call(path={"unit_id": "{unit}"}), note="not a core call; the console's form to change a unit"),
    Row("suggestions", "PUT", "/v1/outcome-schemes/{region_code}", ADMIN_STAFF, region="the path's",
        call=Call(path={"region_code": f"{INSIDE}999"}, json=OUTCOMES_BODY), note="not a core call"),
    Row("suggestions", "POST", "/v1/suggestions", ("deputy", "npc_staff"), region="the lead deputy's",
        needs={"deputy": "deputy"}, ok=201, call=Call(json=_suggestion),
        note="a deputy submits as the lead deputy only"),
    Row("suggestions", "GET", "/v1/suggestions", ("deputy", "unit", "npc_staff"),
        note="lists what the caller may read"),
    Row("suggestions", "GET", "/v1/suggestion-counts", ("deputy", "unit", "npc_staff"),
        call=Call(query={"year": "2026"}),
        note="not a core call; counts what the list shows the caller (the console's overview)"),
    Row("suggestions", "GET", "/v1/suggestions/{suggestion_id}", ("deputy", "unit", "npc_staff"),
        region="the suggestion's", scoped=("npc_staff",), needs={"deputy": "deputy", "unit": "unit"},
        call=Call(path={"suggestion_id": "{suggestion}"}),
        note="deputies (lead, co-signers) and units (lead, assisting) read their own"),
    Row("suggestions", "POST", "/v1/suggestions/{suggestion_id}/assignment", ("npc_staff",),
        region="the suggestion's", call=Call(path={"suggestion_id": "{suggestion}"}, json={"lead_unit_id": "{unit}"},
                                             fresh="submitted_suggestion")),
    Row("suggestions", "POST", "/v1/suggestions/{suggestion_id}/extension", ("npc_staff",), region="the suggestion's",
        call=Call(path={"suggestion_id": "{suggestion}"}, json={"reason": "涉及多个部门，需要协调答复。"},
                  fresh="assigned_suggestion")),
    Row("suggestions", "POST", "/v1/suggestions/{suggestion_id}/extension-request", ("unit",),
        needs={"unit": "unit"}, call=Call(path={"suggestion_id": "{suggestion}"}, fresh="assigned_suggestion",
                                          json={"reason": "涉及多个部门，需要协调答复。", "months": 2}),
        note="not a core call; the lead unit asks, congress staff grant it through /extension"),
    Row("suggestions", "POST", "/v1/suggestions/{suggestion_id}/meetings", ("unit",), needs={"unit": "unit"},
        stranger=UNIT_RULE, call=Call(path={"suggestion_id": "{suggestion}"},
                  json={"stage": "before", "at": "{now}", "note": "与领衔代表当面沟通办理方案。"}),
        note="the lead unit"),
    Row("suggestions", "POST", "/v1/suggestions/{suggestion_id}/assisting-views", ("unit",),
        needs={"unit": "assisting_unit"}, stranger=UNIT_RULE,
        call=Call(path={"suggestion_id": "{suggestion}"}, json={"content": "建议由民政部门牵头，我局配合。"}),
        note="not a core call; an assisting unit"),
    Row("suggestions", "POST", "/v1/suggestions/{suggestion_id}/replies", ("unit",), needs={"unit": "unit"},
        stranger=UNIT_RULE, call=Call(path={"suggestion_id": "{suggestion}"}, fresh="assigned_suggestion",
                  json={"unit_id": "{caller_unit}", "content": "已在三个街道试点日间照料中心。", "outcome": "A"}),
        note="the lead unit"),
    Row("suggestions", "POST", "/v1/suggestions/{suggestion_id}/evaluation", ("deputy",), needs={"deputy": "deputy"},
        call=Call(path={"suggestion_id": "{suggestion}"}, json={"result": "satisfied"}, fresh="replied_suggestion"),
        note="the lead deputy"),
    Row("suggestions", "POST", "/v1/suggestions/{suggestion_id}/progress", ("unit",), needs={"unit": "unit"},
        stranger=UNIT_RULE, call=Call(path={"suggestion_id": "{following}"},
                  json={"unit_id": "{caller_unit}", "note": "已完成选址，明年建成。"}), note="the lead unit"),
    Row("suggestions", "POST", "/v1/suggestions/{suggestion_id}/director-decision", ADMIN_STAFF,
        region="the suggestion's", call=Call(path={"suggestion_id": "{suggestion}"}, fresh="referred_suggestion",
                                             json={"decision": "close", "note": "主任会议决定：办结。"}),
        note="not a core call"),
    Row("suggestions", "POST", "/v1/suggestions/{suggestion_id}/spending", ("npc_staff", "unit"),
        region="the suggestion's", scoped=("npc_staff",), needs={"unit": "unit"}, ok=201,
        call=Call(path={"suggestion_id": "{micro}"}, json={"amount": "1.00", "note": "购置助餐设备"}),
        note="not a core call; congress staff of the region or the lead unit"),
    Row("suggestions", "PUT", "/v1/micro-funds/{region_code}/{year}", ADMIN_STAFF, region="the path's",
        call=Call(path={"region_code": INSIDE, "year": "2099"}, json={"amount": "100.00"}), note="not a core call"),
    Row("suggestions", "GET", "/v1/micro-funds/{region_code}/{year}", ADMIN_STAFF, region="the path's",
        call=Call(path={"region_code": INSIDE, "year": "{year}"}), note="not a core call"),
    Row("suggestions", "GET", "/v1/supervision-topics", ADMIN_STAFF, note="not a core call; lists the region's"),
    Row("suggestions", "POST", "/v1/supervision-topics/{topic_id}/conversion", ADMIN_STAFF, region="the topic's",
        ok=201, call=Call(path={"topic_id": "{topic}"}, json=_conversion, fresh="topic"), note="not a core call"),
    Row("suggestions", "POST", "/v1/supervision-topics/{topic_id}/closure", ADMIN_STAFF, region="the topic's",
        call=Call(path={"topic_id": "{topic}"}, json={"note": "已由城管部门整改。"}, fresh="topic"),
        note="not a core call"),
    Row("suggestions", "GET", "/v1/public/replies", ANYONE, call=Call(query={"year": "{year}"}),
        note="not a core call; public disclosure"),
    Row("suggestions", "GET", "/v1/public/units", ANYONE, call=Call(query={"region_code": INSIDE}),
        note="not a core call; unit names for the public board"),
]

SCORING = [
    *_common("scoring"),
    Row("scoring", "GET", "/v1/deputies/{deputy_id}/score", ("deputy", "npc_staff"), region="the deputy's",
        scoped=("npc_staff",), needs={"deputy": "deputy"},
        call=Call(path={"deputy_id": "{deputy}"}, query={"year": "{year}"}), note="a deputy sees their own"),
    Row("scoring", "GET", "/v1/rankings", ANYONE, call=Call(query={"year": "{year}", "region_code": INSIDE})),
    Row("scoring", "POST", "/v1/rankings/publications", ADMIN_STAFF, region="body region_code", ok=201,
        call=Call(json=_publication), note="not a core call"),
    Row("scoring", "GET", "/v1/talks", ADMIN_STAFF, region="query region_code",
        call=Call(query={"year": "{year}", "region_code": INSIDE}), note="not a core call"),
    Row("scoring", "GET", "/v1/units/board", ANYONE, call=Call(query={"year": "{year}"})),
    Row("scoring", "PUT", "/v1/rules/{region_code}", ("npc_staff",), region="the path's",
        call=Call(path={"region_code": f"{INSIDE}001"}, json=RULES_BODY)),
    Row("scoring", "GET", "/v1/rules/{region_code}", ANYONE, call=Call(path={"region_code": INSIDE}),
        note="not a core call; the rules are public like the rankings"),
    Row("scoring", "POST", "/v1/activities", ("admin", "npc_staff", "station_staff"), region="the deputy's", ok=201,
        call=Call(json={"deputy_id": "{deputy}", "kind": "reception_day", "on": "{today}",
                        "evidence": {"sign_in_sheet": "矩阵-001"}}), note="not a core call"),
    Row("scoring", "POST", "/v1/entries/{entry_id}/reversal", ADMIN_STAFF, region="the deputy's", ok=201,
        call=Call(path={"entry_id": "{entry}"}, json={"reason": "登记有误"}, fresh="entry"),
        note="not a core call"),
]

ROWS: tuple[Row, ...] = (*IDENTITY, *INTAKE, *ROUTING, *SUGGESTIONS, *SCORING)
SERVICES = ("identity", "intake", "routing", "suggestions", "scoring")

"""GeoReport v2 (Open311) as intake speaks it: plain functions, no I/O.

The categories a city system may file under (intake's own copy of the codes routing classifies
into; routing keeps the rules that place a report, intake only needs the names), how a report looks
to the public in Open311 terms, the error bodies, the search window, and the XML shapes.

What a GET shows is what intake already shows the public about a report: its status, its deadlines
and the answer given (a public timeline entry on the citizen's receipt). The citizen's own words, the
place they named and anything about them are never shown, whoever filed the report and however.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from shared.calendar import SHANGHAI

Format = Literal["json", "xml"]
Open311Status = Literal["open", "closed"]

# The spec's defaults for GET requests: the most recent 90 days, at most 1000 requests.
WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
MAX_IDS = 100
MAX_DESCRIPTION = 4000

GRID_GROUP = "城乡治理"


@dataclass(frozen=True)
class Service:
    code: str
    name: str
    group: str
    keywords: tuple[str, ...]
    description: str


# The codes and names are routing's (services/routing/taxonomy.py), in its order; a test keeps the two
# in step. Grid-platform matters come first, as there.
SERVICES: tuple[Service, ...] = (
    Service("municipal_facilities", "市政设施", GRID_GROUP, ("路灯", "井盖", "供水", "排水", "燃气"),
            "路灯、井盖、供水排水、燃气等市政设施损坏或故障"),
    Service("roads_traffic", "道路交通", GRID_GROUP, ("道路", "坑洼", "信号灯", "停车", "公交"),
            "道路破损、交通信号、停车秩序、公共交通等问题"),
    Service("sanitation_environment", "环境卫生", GRID_GROUP, ("垃圾", "清运", "污水", "噪声", "异味"),
            "垃圾清运、污水、噪声、异味等环境卫生问题"),
    Service("greenery", "园林绿化", GRID_GROUP, ("绿地", "树木", "公园", "草坪"),
            "绿地养护、树木修剪、公园设施等问题"),
    Service("order_safety", "社会治安与安全", GRID_GROUP, ("治安", "消防", "安全隐患", "违章搭建"),
            "治安秩序、消防通道、安全隐患等问题"),
    Service("social_security", "社会保障", "民生服务", ("社保", "低保", "就业", "救助"),
            "社会保险、最低生活保障、就业和社会救助等问题"),
    Service("education", "教育", "民生服务", ("学校", "入学", "幼儿园", "校车"),
            "入学、学校管理、幼儿园、校园周边等问题"),
    Service("health", "医疗卫生", "民生服务", ("医院", "诊所", "疫苗", "药品"),
            "看病就医、基层医疗、公共卫生等问题"),
    Service("elderly_care", "养老服务", "民生服务", ("养老", "助餐", "老年人", "日间照料"),
            "养老机构、居家养老、老年助餐等问题"),
    Service("policy_law", "政策法规", "民生服务", ("政策", "法规", "咨询"),
            "对政策法规的意见和咨询"),
    Service("other", "其他", "其他", ("其他",), "无法归入以上类别的问题"),
)

BY_CODE: dict[str, Service] = {s.code: s for s in SERVICES}


class Invalid(Exception):
    """Input the spec calls a bad request (400); `message` is shown to the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---- services -----------------------------------------------------------------------------------


# The one attribute every service takes: the code on a deputy's or station's QR code (亮码), so a city
# system can file a report to them as a citizen who scans it does. Sent as `attribute[code]`.
CODE_ATTRIBUTE = "code"
CODE_FIELD = f"attribute[{CODE_ATTRIBUTE}]"
MAX_CODE = 64
ATTRIBUTES: tuple[dict[str, Any], ...] = (
    {"variable": True, "code": CODE_ATTRIBUTE, "datatype": "string", "required": False,
     "datatype_description": "21 位字母数字，即扫码打开的地址 …/q/{编码} 的最后一段",
     "order": 1, "description": "亮码：代表或联络站二维码上的编码；填写后反映直接交给该代表或联络站"},
)


def service_dict(service: Service) -> dict[str, Any]:
    """A service as services.json lists it: `metadata` true, as every service takes the code attribute."""
    return {"service_code": service.code, "service_name": service.name, "description": service.description,
            "metadata": True, "type": "realtime", "keywords": ",".join(service.keywords), "group": service.group}


def definition_dict(service: Service) -> dict[str, Any]:
    return {"service_code": service.code, "attributes": [dict(a) for a in ATTRIBUTES]}


# ---- filing -------------------------------------------------------------------------------------


def service_of(code: str) -> Service:
    found = BY_CODE.get(code.strip())
    if found is None:
        raise Invalid(f"未知的 service_code：{code}。可用的类别见 services.json。")
    return found


def content_of(description: str, address: str | None, media_url: str | None, *,
               has_coordinates: bool) -> str:
    """The report's text. Intake keeps a place only with coordinates, so a typed address without them
    goes into the text (as the web form does); a media URL does too: intake fetches nothing from
    outside, the deputy opens the link."""
    parts = [description.strip()]
    if address and not has_coordinates:
        parts.append(f"地点：{address.strip()}")
    if media_url:
        parts.append(f"图片链接：{media_url.strip()}")
    return "\n".join(p for p in parts if p)


def reporter_name(first_name: str | None, last_name: str | None) -> str:
    """Chinese order, family name first: 张 + 三 → 张三."""
    return f"{(last_name or '').strip()}{(first_name or '').strip()}"


def coordinates(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    if lat is None and lon is None:
        return None
    if lat is None or lon is None:
        raise Invalid("lat 和 long 需同时提供。")
    return lat, lon


def code_of(value: str | None) -> str | None:
    """The code attribute as sent; None when absent or blank (then the report is filed by region)."""
    if value is None or not value.strip():
        return None
    return value.strip()


def unknown_code() -> Invalid:
    return Invalid(f"{CODE_FIELD} 无效：该二维码编码不存在或已失效，请核对代表或联络站二维码上的编码。")


def code_region(jurisdiction_id: str, target_region: str) -> str:
    """The region a report filed by code lands in: the deputy's or station's own, which must lie within
    `jurisdiction_id`; or `jurisdiction_id` itself when it names a place within theirs, as a citizen who
    scans a code may name the street (the credential covers `jurisdiction_id`, and reads find the report
    under it either way)."""
    if target_region.startswith(jurisdiction_id):
        return target_region
    if jurisdiction_id.startswith(target_region):
        return jurisdiction_id
    raise Invalid(f"{CODE_FIELD} 所属的代表或联络站不在 jurisdiction_id（{jurisdiction_id}）地区内，"
                  "属于其他地区，请在其所在地区提交。")


def service_notice(ack_due: datetime, reply_due: datetime) -> str:
    def day(at: datetime) -> str:
        local = at.astimezone(SHANGHAI)
        return f"{local.year}年{local.month}月{local.day}日"

    return f"已收到反映。代表或联络站将于{day(ack_due)}前受理，{day(reply_due)}前答复。"


# ---- a report as the public sees it ---------------------------------------------------------------


@dataclass(frozen=True)
class ReportFacts:
    """What the mapping reads of a report: nothing about the reporter, not the report's text."""

    id: str
    status: str
    round: int
    category: str | None
    target_kind: str
    ticket_id: str | None
    answered_by: str | None
    reply_content: str | None
    received_at: datetime
    updated_at: datetime | None
    acknowledged_at: datetime | None
    answered_at: datetime | None
    rated_at: datetime | None
    closed_at: datetime | None
    reply_due: datetime


# Answered is the outcome an Open311 request waits for: the deputy's (or the platform's) answer. A
# citizen's poor rating with a comment reopens the report, and it is open again.
_STATUS: dict[str, Open311Status] = {"submitted": "open", "acknowledged": "open", "dispatched": "open",
                                     "answered": "closed", "closed": "closed"}
OPEN_STATUSES = tuple(s for s, o in _STATUS.items() if o == "open")
CLOSED_STATUSES = tuple(s for s, o in _STATUS.items() if o == "closed")

_NOTES = {
    "submitted": "已收到，等待代表受理。",
    "acknowledged": "代表已受理，正在办理。",
    "reopened": "群众对答复不满意，已重新交办，正在办理。",
    "dispatched": "已转交基层治理平台办理。",
    "closed": "已办结。",
}

# Intake keeps no names of deputies, stations or platforms (identity and routing do), so the agency is
# named by its kind.
AGENCY = {"grid": "基层治理平台", "deputy": "人大代表", "station": "人大代表联络站"}


def status_of(status: str) -> Open311Status:
    return _STATUS[status]


def status_notes(report: ReportFacts) -> str:
    """The answer once there is one (it is on the citizen's public timeline); else where the report stands."""
    if report.reply_content and report.status in CLOSED_STATUSES:
        return report.reply_content
    if report.status == "acknowledged" and report.round > 1:
        return _NOTES["reopened"]
    return _NOTES.get(report.status, _NOTES["closed"])


def agency_responsible(report: ReportFacts) -> str:
    if report.answered_by == "grid" or (report.ticket_id is not None and report.status == "dispatched"):
        return AGENCY["grid"]
    if report.answered_by == "deputy" or (report.answered_by is None and report.target_kind == "deputy"):
        return AGENCY["deputy"]
    # A station's report, one answered by station staff, and one filed by region (station staff of the
    # region take it up).
    return AGENCY["station"]


def updated_at(report: ReportFacts) -> datetime:
    """The last change: the row's own stamp, or a later one of the report's clock (tests move that clock)."""
    stamps = [report.received_at, report.updated_at, report.acknowledged_at, report.answered_at, report.rated_at,
              report.closed_at]
    return max(s for s in stamps if s is not None)


def _local(at: datetime) -> datetime:
    return at.astimezone(SHANGHAI)


def request_dict(report: ReportFacts) -> dict[str, Any]:
    """One service request as GET requests answers it. `description`, the place and the media stay
    empty: a report's own text is never public in Minyi (the receipt does not show it either)."""
    service = BY_CODE.get(report.category or "")
    return {
        "service_request_id": report.id,
        "status": status_of(report.status),
        "status_notes": status_notes(report),
        "service_name": service.name if service else None,
        "service_code": service.code if service else None,
        "description": None,
        "agency_responsible": agency_responsible(report),
        "service_notice": None,
        "requested_datetime": _local(report.received_at),
        "updated_datetime": _local(updated_at(report)),
        "expected_datetime": _local(report.reply_due),
        "address": None,
        "address_id": None,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


# ---- searching ----------------------------------------------------------------------------------


def comma_list(text: str | None) -> list[str]:
    if text is None:
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def request_ids(text: str | None) -> list[str]:
    ids = list(dict.fromkeys(comma_list(text)))
    if len(ids) > MAX_IDS:
        raise Invalid(f"service_request_id 一次最多 {MAX_IDS} 个。")
    bad = [i for i in ids if len(i) != 36 or any(ch not in "0123456789abcdef-" for ch in i)]
    if bad:
        raise Invalid(f"service_request_id 格式不正确：{bad[0][:40]}")
    return ids


def service_codes(text: str | None) -> list[str]:
    return [service_of(code).code for code in comma_list(text)]


def statuses(text: str | None) -> list[str]:
    """Intake's statuses behind the Open311 ones asked for; [] for all."""
    wanted = comma_list(text)
    unknown = [s for s in wanted if s not in ("open", "closed")]
    if unknown:
        raise Invalid(f"status 只能是 open 或 closed：{unknown[0][:20]}")
    if not wanted or set(wanted) == {"open", "closed"}:
        return []
    return list(OPEN_STATUSES if wanted[0] == "open" else CLOSED_STATUSES)


def search_window(now: datetime, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """The received-time range to search, in UTC: at most 90 days; the last 90 by default."""
    try:
        if start is not None:
            start = start.astimezone(UTC)
        if end is not None:
            end = end.astimezone(UTC)
        if start is None and end is None:
            end = now.astimezone(UTC)
            start = end - WINDOW
        elif start is None:
            assert end is not None
            start = end - WINDOW
        elif end is None:
            end = start + WINDOW
    except OverflowError as exc:
        raise Invalid("start_date 或 end_date 超出可查询的时间范围。") from exc
    if start > end:
        raise Invalid("start_date 不能晚于 end_date。")
    if end - start > WINDOW:
        raise Invalid("start_date 与 end_date 相隔不能超过 90 天。")
    return start, end


# ---- errors -------------------------------------------------------------------------------------


def error_list(status: int, description: str) -> list[dict[str, Any]]:
    return [{"code": status, "description": description}]


def prefers_problem(accept: str | None) -> bool:
    """A client of Minyi's other APIs may ask for their error format instead of the spec's."""
    return accept is not None and "application/problem+json" in accept.lower()


# ---- XML ----------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# Lists inside an element, and what each of their items is called.
_ITEMS = {"attributes": "attribute", "values": "value"}


def _fill(element: ET.Element, fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        child = ET.SubElement(element, name)
        if isinstance(value, list):
            for item in value:
                _fill(ET.SubElement(child, _ITEMS.get(name, "item")), item)
        else:
            child.text = _text(value)


def xml_document(root: str, item: str | None, content: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> bytes:
    """`<root><item>…</item>…</root>` for a list, `<root>…</root>` for one mapping (a service definition)."""
    element = ET.Element(root)
    if isinstance(content, Mapping):
        _fill(element, content)
    else:
        assert item is not None
        for row in content:
            _fill(ET.SubElement(element, item), row)
    return bytes(ET.tostring(element, encoding="utf-8", xml_declaration=True))


def errors_xml(errors: Iterable[Mapping[str, Any]]) -> bytes:
    return xml_document("errors", "error", list(errors))


# The spec's element names: the list's and each item's.
XML_NAMES: dict[str, tuple[str, str | None]] = {
    "services": ("services", "service"),
    "definition": ("service_definition", None),
    "requests": ("service_requests", "request"),
}

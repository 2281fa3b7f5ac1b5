"""The forms an administrator keeps the directory with: a liaison station, a deputy, a region under
the one shown, a grid platform. Pure: each form is read from what was posted, checked in Chinese
before anything is sent, and turned into the service's body; the pages fetch and send.

The checks here only spare a round trip and say things in the form's words; the services judge
(identity: `PUT /v1/stations|deputies|regions/{id}`, routing: `PUT /v1/grid-platforms/{id}`), and
what they refuse comes back next to the field they name.

Three values are write-only. A deputy's phone: identity encrypts it and gives back only a mask, and
its PUT replaces the phone with whatever the body holds (none removes it), so a change to a deputy
who has one must carry it again or say to remove it. A platform's shared secret (http, nats) and
its GeoReport API key (open311): routing seals them, never shows them, and needs the one its
transport uses with every save. None is kept in a form dataclass, echoed into a page or put in a URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from services.web import words
from services.web.console_admin_calls import DeputyDetail, Platform, StationDetail, StationRow
from services.web.console_admin_directory import within

# Identity's ids and region codes, routing's ids and prefixes, identity's phone pattern.
ENTITY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PLATFORM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
REGION_CODE = re.compile(r"^[0-9A-Za-z-]{6,40}$")
PREFIX = re.compile(r"^\d{2,12}$")
PHONE = re.compile(r"^\+?[0-9 -]{7,20}$")
_ADMIN_CODE = re.compile(r"^\d{6}(\d{3}(\d{3})?)?$")
_GRID_CODE = re.compile(r"^\d{6}(\d{3}(\d{3})?)?-[A-Za-z0-9]{1,16}$")
_SPLIT = re.compile(r"[\s,，、;；]+")
IDENTITY_SIGNS = "短横线、下划线、点"

STATION_KINDS = tuple(words.STATION_KIND)
DEPUTY_LEVELS = tuple(words.LEVEL)
TRANSPORTS = ("http", "nats", "open311")
# Identity takes at most 50 stations a deputy; the form offers at most this many to tick.
MAX_DEPUTY_STATIONS = 50
STATION_CHOICES = 200
MIN_SECRET, MAX_SECRET = 16, 200
MAX_PREFIXES = 200
# Routing's bounds of an open311 platform's API key, jurisdiction_id and each service_code.
MAX_API_KEY, MAX_JURISDICTION, MAX_SERVICE_CODE = 200, 200, 100

PHONE_AGAIN = ("这位代表已登记手机号。身份服务每次保存都需要手机号、且不会把号码发回页面："
               "请重新填写现在的或新的手机号；要删除手机号，请勾选“删除手机号”。")
SECRET_NEEDED = "请填写密钥。每次保存都要填写：系统只保存加密后的密钥，不会显示，也无法“保留原来的”。"
API_KEY_NEEDED = ("请填写平台分配的 API 密钥。每次保存都要填写：系统只保存加密后的密钥，不会显示，"
                  "也无法“保留原来的”。")
REGION_OUTSIDE = "这个地区不在您的管辖范围内。"


def one_line(text: str) -> str:
    return " ".join(text.split())


def form_field(service_field: str, known: Sequence[str], aliases: Mapping[str, str] | None = None) -> str:
    """The form's field for one a service named (`body.name`, `station_ids[2]`, `url` …); "form" (the
    top of the form) for anything else."""
    name = service_field.split("[", 1)[0].rsplit(".", 1)[-1]
    name = (aliases or {}).get(name, name)
    return name if name in known else "form"


def service_errors(errors: Mapping[str, str], known: Sequence[str],
                   aliases: Mapping[str, str] | None = None) -> dict[str, str]:
    """A service's field errors by the form's fields, the first for each field kept."""
    return errors_by_field(errors, lambda name: form_field(name, known, aliases))


def errors_by_field(errors: Mapping[str, str], field_of: Callable[[str], str]) -> dict[str, str]:
    """A service's field errors under the form's field `field_of` names for each, the first for each kept."""
    mapped: dict[str, str] = {}
    for name, message in errors.items():
        mapped.setdefault(field_of(name), message)
    return mapped


def _check_id(errors: dict[str, str], value: str, pattern: re.Pattern[str], what: str, signs: str) -> None:
    if not value:
        errors["id"] = f"请填写{what}编号。"
    elif not pattern.match(value):
        errors["id"] = f"{what}编号只能用字母、数字和{signs}，最多 64 个字符。"


def _check_name(errors: dict[str, str], value: str, most: int, what: str) -> None:
    if not value:
        errors["name"] = f"请填写{what}。"
    elif len(value) > most:
        errors["name"] = f"{what}最多 {most} 个字，现在有 {len(value)} 个字。"


def _check_region(errors: dict[str, str], value: str, session_region: str) -> None:
    if not REGION_CODE.match(value):
        errors["region_code"] = "请填写所在地区的编码，例如 330106001（6 到 40 位数字或网格编号）。"
    elif not within(session_region, value):
        errors["region_code"] = REGION_OUTSIDE


def default_region(region: str) -> str:
    """The region a new entry most likely belongs to: the one being looked at, when it is a code."""
    return region if REGION_CODE.match(region) else ""


# ---- stations ------------------------------------------------------------------------------------


@dataclass
class StationForm:
    """The station form as typed: kept whole when it comes back with a problem."""

    id: str = ""
    name: str = ""
    kind: str = "station"
    region_code: str = ""
    editing: bool = False


STATION_FIELDS = ("form", "id", "name", "kind", "region_code")


def read_station_form(form: Mapping[str, str]) -> StationForm:
    return StationForm(id=form.get("id", "").strip(), name=one_line(form.get("name", "")),
                       kind=form.get("kind", "").strip(), region_code=form.get("region_code", "").strip(),
                       editing=form.get("editing") == "1")


def station_form_of(station: StationDetail | None, region: str) -> StationForm:
    if station is None:
        return StationForm(region_code=default_region(region))
    return StationForm(id=station.id, name=station.name, kind=station.kind, region_code=station.region_code,
                       editing=True)


def check_station(form: StationForm, session_region: str) -> dict[str, str]:
    """Chinese messages by field; empty when the form may be sent to identity."""
    errors: dict[str, str] = {}
    _check_id(errors, form.id, ENTITY_ID, "联络站", IDENTITY_SIGNS)
    _check_name(errors, form.name, 200, "联络站名称")
    if form.kind not in STATION_KINDS:
        errors["kind"] = "请选择联络站的类型。"
    _check_region(errors, form.region_code, session_region)
    return errors


def station_body(form: StationForm) -> dict[str, str]:
    return {"name": form.name, "kind": form.kind, "region_code": form.region_code}


# ---- deputies ------------------------------------------------------------------------------------


@dataclass
class DeputyForm:
    """The deputy form as typed. `phone` is what was typed in this very form, nothing identity holds."""

    id: str = ""
    name: str = ""
    level: str = "county"
    region_code: str = ""
    station_ids: list[str] = field(default_factory=list)
    phone: str = ""
    remove_phone: bool = False
    editing: bool = False


DEPUTY_FIELDS = ("form", "id", "name", "level", "region_code", "station_ids", "phone")


def read_deputy_form(first: Mapping[str, str], every: Mapping[str, Sequence[str]]) -> DeputyForm:
    ticked = [s.strip() for s in every.get("station_ids", ()) if s.strip()]
    return DeputyForm(id=first.get("id", "").strip(), name=one_line(first.get("name", "")),
                      level=first.get("level", "").strip(), region_code=first.get("region_code", "").strip(),
                      station_ids=list(dict.fromkeys(ticked)), phone=first.get("phone", "").strip(),
                      remove_phone=first.get("remove_phone") == "1", editing=first.get("editing") == "1")


def deputy_form_of(deputy: DeputyDetail | None, region: str) -> DeputyForm:
    if deputy is None:
        return DeputyForm(region_code=default_region(region))
    return DeputyForm(id=deputy.id, name=deputy.name, level=deputy.level, region_code=deputy.region_code,
                      station_ids=list(deputy.station_ids), editing=True)


def check_deputy(form: DeputyForm, session_region: str, *, phone_on_file: bool) -> dict[str, str]:
    """Chinese messages by field. `phone_on_file`: identity holds a phone for this deputy now, which a
    save without one would erase."""
    errors: dict[str, str] = {}
    _check_id(errors, form.id, ENTITY_ID, "代表", IDENTITY_SIGNS)
    _check_name(errors, form.name, 100, "代表姓名")
    if form.level not in DEPUTY_LEVELS:
        errors["level"] = "请选择代表的级别。"
    _check_region(errors, form.region_code, session_region)
    if len(form.station_ids) > MAX_DEPUTY_STATIONS:
        count = len(form.station_ids)
        errors["station_ids"] = f"一位代表最多可以进 {MAX_DEPUTY_STATIONS} 个联络站，现在选了 {count} 个。"
    elif any(not ENTITY_ID.match(s) for s in form.station_ids):
        errors["station_ids"] = "请从列表中勾选联络站。"
    if form.phone and form.remove_phone:
        errors["phone"] = "要删除手机号，就不要再填写号码；要更换号码，请取消勾选“删除手机号”。"
    elif form.phone and not PHONE.match(form.phone):
        errors["phone"] = "手机号只能包含数字、空格和短横线（可以用 + 开头），7 到 20 位，例如 13800000000。"
    elif phone_on_file and not form.phone and not form.remove_phone:
        errors["phone"] = PHONE_AGAIN
    return errors


def deputy_body(form: DeputyForm, current: DeputyDetail | None, kept: Iterable[str]) -> dict[str, object]:
    """Identity's body. What the form does not show is carried over from identity's record as it is now:
    the electoral district, the groups, and `kept`, stations of the deputy the administrator may not see
    (identity lets links it is not asked to change stand)."""
    return {
        "name": form.name, "level": form.level, "region_code": form.region_code,
        "station_ids": sorted({*form.station_ids, *kept}),
        "district_id": current.district_id if current is not None else None,
        "groups": list(current.groups) if current is not None else [],
        "phone": None if form.remove_phone else form.phone or None,
    }


@dataclass(frozen=True)
class StationChoice:
    id: str
    name: str
    region_code: str


def station_choices(listed: Sequence[StationRow], current: Mapping[str, StationDetail | None]
                    ) -> tuple[list[StationChoice], list[str]]:
    """The stations to tick: the region's, and every station the deputy is at now that the administrator
    may see (so unticking one means leaving it); and the ids of those they may not see, which a save
    keeps as they are."""
    choices = {s.id: StationChoice(s.id, s.name, s.region_code) for s in listed[:STATION_CHOICES]}
    hidden: list[str] = []
    for sid, found in current.items():
        if found is None:
            hidden.append(sid)
        elif sid not in choices:
            choices[sid] = StationChoice(found.id, found.name, found.region_code)
    return sorted(choices.values(), key=lambda c: (c.region_code, c.name, c.id)), sorted(hidden)


# ---- regions -------------------------------------------------------------------------------------


@dataclass
class RegionForm:
    code: str = ""
    name: str = ""


REGION_FIELDS = ("form", "code", "name")


def read_region_form(form: Mapping[str, str]) -> RegionForm:
    return RegionForm(code=form.get("code", "").strip(), name=one_line(form.get("name", "")))


def region_level(code: str) -> str | None:
    """The level a code is written for, as identity reads it (GB/T 2260 and grid ids); None if none."""
    if _GRID_CODE.match(code):
        return "grid"
    if not _ADMIN_CODE.match(code):
        return None
    if len(code) == 12:
        return "village"
    if len(code) == 9:
        return "township"
    if code.endswith("0000"):
        return "province"
    return "city" if code.endswith("00") else "county"


@dataclass(frozen=True)
class ChildRule:
    """What a region directly under a parent looks like: the prefix its code starts with, in words."""

    prefix: str
    what: str
    hint: str
    example: str


def child_rule(parent_code: str) -> ChildRule | None:
    """None when nothing may be added under the parent (a grid, or a code identity does not read)."""
    if not parent_code:
        return ChildRule("", "省级地区", "6 位数字，后四位是 0。", "330000")
    level = region_level(parent_code)
    if level == "province":
        head = parent_code[:2]
        return ChildRule(head, "市级地区", f"6 位数字，以 {head} 开头、后两位是 0。", f"{head}0100")
    if level == "city":
        head = parent_code[:4]
        return ChildRule(head, "县级地区", f"6 位数字，以 {head} 开头。", f"{head}06")
    if level == "county":
        return ChildRule(parent_code, "乡镇、街道", f"9 位数字，以 {parent_code} 开头。", f"{parent_code}001")
    if level == "township":
        return ChildRule(parent_code, "村、社区", f"12 位数字，以 {parent_code} 开头。", f"{parent_code}001")
    if level == "village":
        return ChildRule(parent_code, "网格", f"“{parent_code}-编号”，编号用字母或数字。", f"{parent_code}-G01")
    return None


def check_region(form: RegionForm, parent_code: str, session_region: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    rule = child_rule(parent_code)
    if not form.code:
        errors["code"] = "请填写地区编码。"
    elif rule is None:
        errors["form"] = "这一级地区下面不能再添加地区。"
    elif region_level(form.code) is None or not form.code.startswith(rule.prefix) or form.code == parent_code:
        errors["code"] = f"{rule.what}的编码是 {rule.hint}例如 {rule.example}。"
    elif not within(session_region, form.code):
        errors["code"] = REGION_OUTSIDE
    _check_name(errors, form.name, 100, "地区名称")
    return errors


# ---- grid platforms ------------------------------------------------------------------------------


@dataclass
class PlatformForm:
    """The platform form as typed, without its secret and API key: those are read apart and never shown
    again. `service_codes` is the mapping as typed, one "category=service_code" a line; `updates_feed`
    says whether an open311 platform's mySociety updates are read (routing finds out if it has them)."""

    id: str = ""
    name: str = ""
    region_prefixes: str = ""
    transport: str = "http"
    url: str = ""
    categories: list[str] = field(default_factory=list)
    jurisdiction_id: str = ""
    service_codes: str = ""
    updates_feed: bool = True
    editing: bool = False


@dataclass(frozen=True)
class PlatformKeys:
    """The write-only values typed into the platform form: the shared secret and the API key."""

    secret: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)


PLATFORM_FIELDS = ("form", "id", "name", "region_prefixes", "transport", "url", "api_key", "jurisdiction_id",
                   "service_codes", "service_request_updates", "secret", "categories")
# Routing's check that an http platform has a URL (and a NATS one none) is about the body as a whole.
PLATFORM_ALIASES = {"body": "url"}


def platform_field(service_field: str) -> str:
    """The form's field for one routing named: `service_codes.roads_traffic` is the mapping's, not the form's top."""
    head = service_field.split("[", 1)[0].split(".", 1)[0]
    if head != "form" and head in PLATFORM_FIELDS:
        return head
    return form_field(service_field, PLATFORM_FIELDS, PLATFORM_ALIASES)


def split_prefixes(text: str) -> list[str]:
    return list(dict.fromkeys(p for p in _SPLIT.split(text) if p))


def read_platform_form(first: Mapping[str, str], every: Mapping[str, Sequence[str]]
                       ) -> tuple[PlatformForm, PlatformKeys]:
    """The form, and the secret and API key typed into it (kept apart so that no page can show them)."""
    form = PlatformForm(id=first.get("id", "").strip(), name=one_line(first.get("name", "")),
                        region_prefixes=" ".join(split_prefixes(first.get("region_prefixes", ""))),
                        transport=first.get("transport", "").strip(), url=first.get("url", "").strip(),
                        categories=list(dict.fromkeys(c.strip() for c in every.get("categories", ()) if c.strip())),
                        jurisdiction_id=first.get("jurisdiction_id", "").strip(),
                        service_codes=first.get("service_codes", "").strip(),
                        updates_feed=first.get("service_request_updates") == "1",
                        editing=first.get("editing") == "1")
    return form, PlatformKeys(secret=first.get("secret", ""), api_key=first.get("api_key", "").strip())


def service_codes_text(codes: Mapping[str, str] | None) -> str:
    return "\n".join(f"{category}={code}" for category, code in sorted((codes or {}).items()))


def parse_service_codes(text: str, grid: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """The mapping routing takes (grid category → the platform's service_code) from one
    "category=service_code" a line, the category by its code or its name (`grid`: code → name);
    or the first line that cannot be read, said in Chinese."""
    by_name = {name: code for code, name in grid.items()}
    codes: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        category, sign, code = line.replace("＝", "=").partition("=")
        category, code = category.strip(), code.strip()
        if not sign or not category or not code:
            return {}, f"第 {number} 行“{line[:30]}”看不懂：每行写成“类别=服务代码”，例如 roads_traffic=DL-02。"
        known = category if category in grid else by_name.get(category)
        if known is None:
            return {}, (f"第 {number} 行的“{category[:20]}”不是网格平台受理的事项类别："
                        "请写类别的代码或名称，例如 roads_traffic 或 道路交通。")
        if len(code) > MAX_SERVICE_CODE:
            return {}, f"第 {number} 行的服务代码太长：最多 {MAX_SERVICE_CODE} 个字符。"
        if codes.get(known, code) != code:
            return {}, f"第 {number} 行又给“{grid[known]}”写了一个服务代码：每类事项只能对应一个服务代码。"
        codes[known] = code
    return codes, None


def platform_form_of(platform: Platform | None, region: str, grid_codes: Sequence[str]) -> PlatformForm:
    if platform is None:
        # Most platforms serve the region being looked at and take every grid matter.
        return PlatformForm(region_prefixes=region if PREFIX.match(region) else "", categories=list(grid_codes))
    return PlatformForm(id=platform.id, name=platform.name, region_prefixes=" ".join(platform.region_prefixes),
                        transport=platform.transport, url=platform.url or "", categories=list(platform.categories),
                        jurisdiction_id=platform.jurisdiction_id or "",
                        service_codes=service_codes_text(platform.service_codes),
                        updates_feed=platform.service_request_updates is not False, editing=True)


def editable(platform: Platform, session_region: str) -> bool:
    """Whether the administrator may change it: routing asks for every region it serves to be theirs."""
    return all(within(session_region, p) for p in platform.region_prefixes)


_URL_NEEDED = {"http": "HTTP 方式请填写平台的接口地址，例如 https://grid.example.gov.cn/minyi。",
               "open311": "Open311 方式请填写平台 GeoReport v2 接口的地址，例如 https://12345.example.gov.cn/open311/v2。"}


def check_platform(form: PlatformForm, keys: PlatformKeys, session_region: str,
                   grid: Mapping[str, str]) -> dict[str, str]:
    """Chinese messages by field; empty when the form may be sent to routing. `grid`: the grid
    categories, code → name."""
    errors: dict[str, str] = {}
    _check_id(errors, form.id, PLATFORM_ID, "平台", "短横线、下划线")
    _check_name(errors, form.name, 200, "平台名称")
    prefixes = split_prefixes(form.region_prefixes)
    bad = next((p for p in prefixes if not PREFIX.match(p)), None)
    outside = next((p for p in prefixes if not within(session_region, p)), None)
    if not prefixes:
        errors["region_prefixes"] = "请填写平台服务的地区编码（前缀），例如 330106。"
    elif bad is not None:
        errors["region_prefixes"] = f"“{bad[:20]}”不是地区编码前缀：应为 2 到 12 位数字。"
    elif outside is not None:
        errors["region_prefixes"] = f"地区 {outside} 不在您的管辖范围内。"
    elif len(prefixes) > MAX_PREFIXES:
        errors["region_prefixes"] = f"最多填写 {MAX_PREFIXES} 个地区编码。"
    if form.transport not in TRANSPORTS:
        errors["transport"] = "请选择对接方式。"
    elif form.transport in _URL_NEEDED:
        if not form.url:
            errors["url"] = _URL_NEEDED[form.transport]
        elif not form.url.startswith(("http://", "https://")) or len(form.url) > 500:
            errors["url"] = "接口地址以 http:// 或 https:// 开头，最多 500 个字符。"
    if form.transport == "open311":
        _check_open311(errors, form, keys, grid)
    elif not keys.secret:
        errors["secret"] = SECRET_NEEDED
    elif not MIN_SECRET <= len(keys.secret) <= MAX_SECRET:
        errors["secret"] = f"密钥应为 {MIN_SECRET} 到 {MAX_SECRET} 个字符，现在是 {len(keys.secret)} 个。"
    if not form.categories:
        errors["categories"] = "请至少勾选一类事项。"
    elif any(c not in grid for c in form.categories):
        errors["categories"] = "请从列表中勾选事项类别。"
    return errors


def _check_open311(errors: dict[str, str], form: PlatformForm, keys: PlatformKeys, grid: Mapping[str, str]) -> None:
    # No secret: a platform on Open311 signs nothing, and routing keeps one of its own.
    if not keys.api_key:
        errors["api_key"] = API_KEY_NEEDED
    elif len(keys.api_key) > MAX_API_KEY:
        errors["api_key"] = f"API 密钥最多 {MAX_API_KEY} 个字符，现在是 {len(keys.api_key)} 个。"
    if len(form.jurisdiction_id) > MAX_JURISDICTION:
        errors["jurisdiction_id"] = f"jurisdiction_id 最多 {MAX_JURISDICTION} 个字符。"
    _, problem = parse_service_codes(form.service_codes, grid)
    if problem is not None:
        errors["service_codes"] = problem


def platform_body(form: PlatformForm, keys: PlatformKeys, grid: Mapping[str, str]) -> dict[str, object]:
    """Routing's body: each transport's own fields only (routing refuses the others').
    An address typed before switching to NATS is not sent, nor a secret typed before switching to Open311."""
    body: dict[str, object] = {"name": form.name, "region_prefixes": split_prefixes(form.region_prefixes),
                               "transport": form.transport}
    if form.transport == "open311":
        codes, _ = parse_service_codes(form.service_codes, grid)
        body |= {"url": form.url, "api_key": keys.api_key, "jurisdiction_id": form.jurisdiction_id or None,
                 "service_codes": codes or None,
                 # Ticked: read them where offered, routing finds out (a 404 says no); unticked: never.
                 "service_request_updates": None if form.updates_feed else False}
    else:
        body |= {"url": form.url if form.transport == "http" else None, "secret": keys.secret}
    return body | {"categories": sorted(form.categories)}


def taken(what: str, entity_id: str, name: str) -> str:
    """An id typed for a new entry that already names another: said, never overwritten."""
    return f"编号 {entity_id} 已经是{what}“{name}”的编号，请换一个；要修改它，请在列表中点“修改”。"

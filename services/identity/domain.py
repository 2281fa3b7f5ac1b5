"""Domain rules of the identity service: plain functions, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

StationKind = Literal["service_center", "home", "station", "studio", "cloud_point"]
DeputyLevel = Literal["national", "provincial", "municipal", "county", "township"]

STATION_KINDS: dict[str, str] = {
    "service_center": "代表联络服务中心",
    "home": "代表之家",
    "station": "代表联络站",
    "studio": "选区工作室",
    "cloud_point": "云上联络点",
}
DEPUTY_LEVELS: dict[str, str] = {
    "national": "全国人大代表",
    "provincial": "省人大代表",
    "municipal": "市人大代表",
    "county": "县（区）人大代表",
    "township": "乡镇人大代表",
}

# Highest first: the order in which a station's deputies are shown to citizens.
DEPUTY_LEVEL_ORDER: tuple[DeputyLevel, ...] = ("national", "provincial", "municipal", "county", "township")
_LEVEL_RANK: dict[str, int] = {level: rank for rank, level in enumerate(DEPUTY_LEVEL_ORDER)}


def deputy_sort_key(level: str, name: str, deputy_id: str) -> tuple[int, str, str]:
    """By level (national first), then name, then id; a level not known sorts last."""
    return _LEVEL_RANK.get(level, len(_LEVEL_RANK)), name, deputy_id


_ADMIN = re.compile(r"^\d{6}(\d{3}(\d{3})?)?$")
_GRID = re.compile(r"^(\d{6}(?:\d{3}(?:\d{3})?)?)-([A-Za-z0-9]{1,16})$")


@dataclass(frozen=True)
class RegionCode:
    code: str
    level: Literal["province", "city", "county", "township", "village", "grid"]
    # The prefix every code inside this region starts with; what a token's `region` claim holds.
    prefix: str


class InvalidRegion(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_region_code(code: str) -> RegionCode:
    """GB/T 2260 six digits (province 320000, city 320900, county 320923), nine (township),
    twelve (village), or a grid id beneath one of them: `<code>-<letters/digits>`."""
    grid = _GRID.match(code)
    if grid:
        return RegionCode(code, "grid", code)
    if not _ADMIN.match(code):
        raise InvalidRegion("地区代码应为6位、9位或12位数字，网格编号为“上级代码-编号”")
    if len(code) == 12:
        return RegionCode(code, "village", code)
    if len(code) == 9:
        return RegionCode(code, "township", code)
    if code[2:] == "0000":
        if code[:2] == "00":
            raise InvalidRegion("省级代码不能为00")
        return RegionCode(code, "province", code[:2])
    if code[4:] == "00":
        return RegionCode(code, "city", code[:4])
    return RegionCode(code, "county", code)


def check_parent(child: RegionCode, parent: RegionCode | None) -> None:
    """A region lies inside its parent: its code starts with the parent's prefix."""
    if parent is None:
        if child.level not in ("province",):
            raise InvalidRegion("除省级外，地区必须指定上级地区")
        return
    if child.code == parent.code:
        raise InvalidRegion("上级地区不能是自己")
    order = ["province", "city", "county", "township", "village", "grid"]
    if order.index(parent.level) >= order.index(child.level):
        raise InvalidRegion("上级地区的层级应高于本地区")
    if not child.code.startswith(parent.prefix):
        raise InvalidRegion("地区代码与上级地区代码不一致")


def deputy_event(deputy_id: str, name: str, level: str, region_code: str, station_ids: list[str],
                 district_id: str | None, groups: list[str], version: int) -> dict[str, object]:
    """What other services project from `identity.deputy.updated`; no personal contact data."""
    return {
        "id": deputy_id,
        "name": name,
        "level": level,
        "region_code": region_code,
        "station_ids": sorted(station_ids),
        "district_id": district_id,
        "groups": sorted(groups),
        "version": version,
    }


def station_event(station_id: str, name: str, kind: str, region_code: str, version: int) -> dict[str, object]:
    return {"id": station_id, "name": name, "kind": kind, "region_code": region_code, "version": version}


# What the audit log records of a directory entry before and after a change: its public fields.
# A deputy's phone never goes in (only whether it changed).


def region_state(name: str, parent_code: str | None) -> dict[str, object]:
    return {"name": name, "parent_code": parent_code}


def station_state(name: str, kind: str, region_code: str) -> dict[str, object]:
    return {"name": name, "kind": kind, "region_code": region_code}


def deputy_state(name: str, level: str, region_code: str, station_ids: list[str], district_id: str | None,
                 groups: list[str]) -> dict[str, object]:
    return {"name": name, "level": level, "region_code": region_code, "station_ids": sorted(station_ids),
            "district_id": district_id, "groups": sorted(groups)}


def mask_phone(phone: str) -> str:
    """`13800138000` → `138****8000`: enough for the owner to recognise, nothing to dial."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) > 11 and digits.startswith("86"):
        digits = digits[2:]
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"

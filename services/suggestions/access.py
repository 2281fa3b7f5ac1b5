"""Whose suggestions, topics and funds a caller may see, from the claims its token carries.

A scope comes only from a claim that is there: a unit's `unit_id`, a deputy's `deputy_id`, a staff
member's region. A claim that is missing grants nothing, so a token that forgot it can never be
read as "all" (the token check drops such roles too; this holds even if it did not). An empty
region means everywhere only on an admin or integration token.
"""

from __future__ import annotations

from typing import Protocol

from shared.auth import Principal
from shared.errors import forbidden

STAFF_ROLES = ("npc_staff", "admin")
EVERYWHERE_ROLES = ("admin", "integration")


class Readable(Protocol):
    region_code: str
    lead_deputy_id: str
    co_signer_ids: list[str]
    lead_unit_id: str | None
    assisting_unit_ids: list[str]


def region_prefix(who: Principal) -> str | None:
    """The region the caller's token names, as a code prefix ("" everywhere); None when it names none."""
    if who.region:
        # A scope that is no code (one standing for "nowhere") covers nothing.
        return who.region if who.region.isalnum() else None
    return "" if who.has_any(EVERYWHERE_ROLES) else None


def staff_prefix(who: Principal) -> str | None:
    """The region prefix the caller's staff role covers ("" everywhere); None when it covers none."""
    return region_prefix(who) if who.has_any(STAFF_ROLES) else None


def own_unit(who: Principal) -> str | None:
    return who.unit_id if "unit" in who.roles and who.unit_id else None


def own_deputy(who: Principal) -> str | None:
    return who.deputy_id if "deputy" in who.roles and who.deputy_id else None


def _covers(prefix: str | None, region_code: str | None) -> bool:
    return prefix is not None and region_code is not None and region_code.startswith(prefix)


def require_region(who: Principal, region_code: str | None) -> None:
    """A caller acts only within the region its token names (staff their county, a deputy theirs)."""
    if not _covers(region_prefix(who), region_code):
        raise forbidden("该地区不在您的管辖范围内。")


def covers_as_staff(who: Principal, region_code: str | None) -> bool:
    """Whether the caller is staff (congress staff or admin) of a region covering `region_code`."""
    return _covers(staff_prefix(who), region_code)


def may_read(who: Principal, row: Readable) -> bool:
    """Staff of its region, its lead and co-signing deputies, its lead and assisting units."""
    if covers_as_staff(who, row.region_code):
        return True
    deputy, unit = own_deputy(who), own_unit(who)
    return (deputy is not None and deputy in (row.lead_deputy_id, *row.co_signer_ids)) or (
        unit is not None and unit in (row.lead_unit_id, *row.assisting_unit_ids))


def has_scope(who: Principal) -> bool:
    """Whether any of the caller's roles comes with the claim that says what it covers."""
    return staff_prefix(who) is not None or own_deputy(who) is not None or own_unit(who) is not None

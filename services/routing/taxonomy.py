"""The categories of citizens' reports (反映类别).

The first five follow the grid-management categories that a grid-governance platform (基层治理四平台,
12345) handles; the people's-livelihood (民生) matters after them are outside any grid platform's
scope and stay with the deputy and congress staff, as does anything the text cannot place (`other`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str
    label: str
    grid: bool


CATEGORIES: tuple[Category, ...] = (
    Category("municipal_facilities", "市政设施", grid=True),
    Category("roads_traffic", "道路交通", grid=True),
    Category("sanitation_environment", "环境卫生", grid=True),
    Category("greenery", "园林绿化", grid=True),
    Category("order_safety", "社会治安与安全", grid=True),
    Category("social_security", "社会保障", grid=False),
    Category("education", "教育", grid=False),
    Category("health", "医疗卫生", grid=False),
    Category("elderly_care", "养老服务", grid=False),
    Category("policy_law", "政策法规", grid=False),
    Category("other", "其他", grid=False),
)

BY_CODE: dict[str, Category] = {c.code: c for c in CATEGORIES}
# A citizen may pick the Chinese label in a form; either spelling is a valid hint.
BY_LABEL: dict[str, Category] = {c.label: c for c in CATEGORIES}
GRID_CATEGORIES: frozenset[str] = frozenset(c.code for c in CATEGORIES if c.grid)
UNKNOWN = "other"


def category_of_hint(hint: str | None) -> str | None:
    """The category a citizen's hint names, or None when it names none we know."""
    if not hint:
        return None
    text = hint.strip()
    found = BY_CODE.get(text) or BY_LABEL.get(text)
    return found.code if found is not None and found.code != UNKNOWN else None

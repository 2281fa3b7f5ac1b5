"""What the console's election pages show, worked out from identity's answers. Pure.

The kinds of finding in words and what the election committee does about each, the state of a
reconciliation (a share for the progress bar, the step in words), the filters kept in the URL,
and the rows of the export for the committee.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from services.web.console_elections_calls import Finding, Reconciliation, ReconciliationSummary

ELECTION_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# identity shows this many findings a page.
PAGE_SIZE = 50
# An export reads at most this many pages (20,000 findings); each page read is recorded by identity.
EXPORT_MAX_PAGES = 400
LIST_SIZE = 20
# In identity's order: each registered person is reported once, with the first kind that applies.
KIND = {
    "deceased": "已死亡",
    "deprived": "被剥夺政治权利",
    "underage": "未满十八周岁",
    "duplicate": "重复登记",
    "wrong_district": "错登选区",
    "missing": "漏登",
}
# What the committee does about each finding, for the list it works from.
ACTION = {
    "deceased": "核实后从选民名单中除名",
    "deprived": "核实后从选民名单中除名",
    "underage": "选举日未满十八周岁，从选民名单中除名",
    "duplicate": "只保留应登记选区的一处登记",
    "wrong_district": "核实后转到应登记的选区",
    "missing": "核实后在应登记的选区补登",
}
STATUS = {"running": "正在核对", "done": "核对完成", "failed": "核对失败"}
STEP = {"map regions to districts": "对照选区划分",
        "classify persons and registrations": "比对户籍、社保和流动人口信息"}
# How often a page of a running reconciliation reloads itself without JavaScript, and polls with it.
REFRESH_SECONDS = 3


@dataclass(frozen=True)
class Filters:
    kind: str | None = None
    page: int = 1

    def query(self, **changes: object) -> str:
        values: dict[str, object] = {"kind": self.kind, "page": self.page, **changes}
        return urlencode({k: v for k, v in values.items() if v not in (None, "") and not (k == "page" and v == 1)})


def parse_filters(query: Mapping[str, str]) -> Filters:
    """A kind that is not one of identity's is dropped (all kinds), a page out of range is the first."""
    kind = query.get("kind") or None
    page_text = (query.get("page") or "").strip()
    page = int(page_text) if page_text.isascii() and page_text.isdigit() and 1 <= int(page_text) <= 100_000 else 1
    return Filters(kind=kind if kind in KIND else None, page=page)


def valid_id(election_id: str) -> bool:
    return bool(ELECTION_ID.match(election_id))


def percent(progress: float) -> int:
    """The progress bar's value, 0–100; a running job never shows 100 until it is done."""
    value = int(max(0.0, min(1.0, progress)) * 100)
    return value


@dataclass(frozen=True)
class State:
    status: str  # running | done | failed
    label: str
    percent: int
    step: str


def state_of(r: Reconciliation | ReconciliationSummary) -> State:
    status = r.status if r.status in STATUS else "running"
    shown = 100 if status == "done" else min(99, percent(r.progress))
    step = getattr(r, "step", None) or ""
    return State(status, STATUS[status], shown, STEP.get(step, step))


@dataclass(frozen=True)
class KindTab:
    kind: str | None
    label: str
    count: int
    current: bool


def kind_tabs(counts: Mapping[str, int], chosen: str | None) -> list[KindTab]:
    """All findings, then each kind with its count, the chosen one marked."""
    tabs = [KindTab(None, "全部", sum(counts.get(k, 0) for k in KIND), chosen is None)]
    return tabs + [KindTab(k, label, counts.get(k, 0), chosen == k) for k, label in KIND.items()]


def pages(total: int, size: int = PAGE_SIZE) -> int:
    """Pages of `size` findings (identity's page size, as it answers it)."""
    return max(1, -(-total // max(1, size)))


def notice(done: str, state: State | None) -> str | None:
    """The words after starting a reconciliation, which may already have finished by the time it is shown."""
    if done != "started" or state is None:
        return None
    if state.status == "running":
        return "已发起核对。核对在后台进行，本页会自动更新进度。"
    return "核对已完成，结果见下方。" if state.status == "done" else None


def progress_answer(r: Reconciliation | None) -> dict[str, object]:
    """What the page's script reads while it polls: the state, never a name."""
    if r is None:
        return {"status": "none", "percent": 0, "label": "尚未核对", "step": ""}
    s = state_of(r)
    return {"status": s.status, "percent": s.percent, "label": s.label, "step": s.step}


# ---- the export for the election committee -----------------------------------------------------

EXPORT_HEADERS = ("序号", "问题类别", "姓名", "身份证号（已脱敏）", "登记选区", "应登记选区", "处理建议")


def export_rows(found: Sequence[Finding]) -> list[list[str | int]]:
    return [[n, KIND.get(f.kind, f.kind), f.name, f.id_number_masked, f.district_id or "（未登记）",
             f.expected_district_id or "（不在本次选举的选区内）", ACTION.get(f.kind, "")]
            for n, f in enumerate(found, start=1)]


def export_name(election_id: str, kind: str | None) -> str:
    return "-".join(["选民登记核对结果", election_id, *([KIND[kind]] if kind else [])])

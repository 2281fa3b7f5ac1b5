"""The figures of congress staff's overview and the console's list of reports behind them. Pure.

Every figure links to the list it counts, with the filter in the URL: reports to `/console/reports`,
suggestions to `/console/suggestions`, hotspots and topics to `/console/hotspots`. Rates are shown
with the counts behind them, however few: staff judge a sample themselves, unlike the public
board, which hides rates over fewer than ten reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from services.web.console_staff_calls import Counts, TargetCounts
from services.web.stats import Rate
from services.web.unit_view import COLOR, STATUS
from services.web.upstreams import MonthStats

# Intake's monthly figures reach this many months back (services/intake/stats.py).
MAX_MONTHS = 36
REPORTS_PAGE = 20
# Deputy and station ids as identity and intake take them: the overview links to each one's list.
ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CHOICE = ("yes", "no")
REPORT_STATUS = {"submitted": "待受理", "acknowledged": "已受理", "dispatched": "已转办", "answered": "已答复",
                 "closed": "已办结"}


def months_for(year: int, now: datetime) -> int | None:
    """How many months of intake's figures reach back to January of `year`; None when they do not."""
    back = (now.year - year) * 12 + now.month
    return back if 1 <= back <= MAX_MONTHS and year <= now.year else None


@dataclass(frozen=True)
class ReportFigures:
    received: int
    ack: Rate
    reply: Rate
    satisfaction: Rate
    closed: int


def report_figures(months: Sequence[MonthStats], year: int) -> ReportFigures:
    """The year's reports: received, taken up and answered on time (among those whose outcome is
    known, late open ones included), satisfied among the rated (4 or 5 stars)."""
    mine = [m for m in months if m.month.startswith(f"{year}-")]

    def total(name: str) -> int:
        return sum(int(getattr(m, name)) for m in mine)

    return ReportFigures(received=total("received"), ack=Rate(total("ack_on_time"), total("ack_decided"), 1),
                         reply=Rate(total("reply_on_time"), total("reply_decided"), 1),
                         satisfaction=Rate(total("satisfied"), total("rated"), 1), closed=total("closed"))


def rate_text(rate: Rate) -> str:
    """The rate, or "—" when nothing was decided yet: staff see every sample, so none is "too small"."""
    return rate.text if rate.denominator else "—"


def reports_href(**filters: object) -> str:
    kept = {k: v for k, v in filters.items() if v not in (None, "")}
    return "/console/reports" + (f"?{urlencode(kept)}" if kept else "")


def suggestions_href(year: int, **filters: object) -> str:
    kept = {"year": year, **{k: v for k, v in filters.items() if v not in (None, "")}}
    return f"/console/suggestions?{urlencode(kept)}"


@dataclass(frozen=True)
class TargetRow:
    """A deputy's or station's year: the reports aimed at them, their rates, and those overdue now."""

    kind: str
    id: str
    name: str
    received: int
    ack: Rate
    reply: Rate
    satisfaction: Rate
    overdue: int
    href: str
    overdue_href: str


def _share(rate: Rate) -> float:
    # Nothing decided yet is nothing to answer for: such a row goes after every rate, however low.
    return rate.value if rate.value is not None else 2.0


def _worst_first(row: TargetRow) -> tuple[int, float, float, float, int, str, str]:
    """Overdue now first (what staff can still chase), then the on-time answer, take-up and satisfaction
    rates, lowest first; more reports before fewer; then by name."""
    return (-row.overdue, _share(row.reply), _share(row.ack), _share(row.satisfaction), -row.received, row.name,
            row.id)


def target_rows(targets: Sequence[TargetCounts], names: Mapping[tuple[str, str], str], year: int
                ) -> tuple[list[TargetRow], list[TargetRow]]:
    """(deputies, stations) with reports received in `year`, the worst first; a name identity did not give
    is shown as the id. Each links to its reports of the year, the overdue count to those overdue now."""
    out: dict[str, list[TargetRow]] = {"deputy": [], "station": []}
    for t in targets:
        if t.kind not in out:
            continue
        mine = {t.kind: t.id, "year": year}
        out[t.kind].append(TargetRow(
            t.kind, t.id, names.get((t.kind, t.id), t.id), t.received, Rate(t.ack_on_time, t.ack_decided, 1),
            Rate(t.reply_on_time, t.reply_decided, 1), Rate(t.satisfied, t.rated, 1), t.overdue,
            reports_href(**mine), reports_href(**mine, open="yes", overdue="yes")))
    return sorted(out["deputy"], key=_worst_first), sorted(out["station"], key=_worst_first)


@dataclass(frozen=True)
class Figure:
    code: str
    label: str
    count: int
    href: str


def color_figures(counts: Counts) -> list[Figure]:
    return [Figure(code, label, counts.colors.get(code, 0), suggestions_href(counts.year, color=code))
            for code, label in COLOR.items()]


def status_figures(counts: Counts) -> list[Figure]:
    return [Figure(code, label, counts.statuses.get(code, 0), suggestions_href(counts.year, status=code))
            for code, label in STATUS.items()]


@dataclass(frozen=True)
class UnitFigure:
    id: str
    name: str
    total: int
    red: int
    yellow: int
    closed: int
    href: str
    red_href: str


def unit_figures(counts: Counts, names: Mapping[str, str]) -> list[UnitFigure]:
    return [UnitFigure(u.unit_id, names.get(u.unit_id, u.unit_id), u.total, u.colors.get("red", 0),
                       u.colors.get("yellow", 0), u.colors.get("blue", 0),
                       suggestions_href(counts.year, unit=u.unit_id),
                       suggestions_href(counts.year, unit=u.unit_id, color="red")) for u in counts.units]


# ---- /console/reports ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFilters:
    year: int | None = None
    deputy: str | None = None
    station: str | None = None
    status: str | None = None
    overdue: str | None = None
    open: str | None = None
    page: int = 1

    def intake_params(self) -> dict[str, str]:
        """Intake's query: received within the year (Beijing time), aimed at the deputy or station."""
        params: dict[str, str] = {"sort": "due"}
        if self.year is not None:
            params["received_from"] = f"{self.year}-01-01T00:00:00+08:00"
            params["received_to"] = f"{self.year + 1}-01-01T00:00:00+08:00"
        for name, value in (("deputy_id", self.deputy), ("station_id", self.station), ("status", self.status)):
            if value:
                params[name] = value
        for name, choice in (("overdue", self.overdue), ("open", self.open)):
            if choice:
                params[name] = "true" if choice == "yes" else "false"
        return params

    def query(self, **changes: object) -> str:
        values: dict[str, object] = {"year": self.year, "deputy": self.deputy, "station": self.station,
                                     "status": self.status, "overdue": self.overdue, "open": self.open,
                                     "page": self.page, **changes}
        return urlencode({k: v for k, v in values.items() if v not in (None, "") and not (k == "page" and v == 1)})

    @property
    def any(self) -> bool:
        return any(v for v in (self.year, self.deputy, self.station, self.status, self.overdue, self.open))


def parse_report_filters(query: Mapping[str, str]) -> ReportFilters:
    year_text = (query.get("year") or "").strip()
    page_text = (query.get("page") or "").strip()
    status = query.get("status") or None

    def ident(name: str) -> str | None:
        value = query.get(name) or ""
        return value if ID.match(value) else None

    def choice(name: str) -> str | None:
        value = query.get(name) or ""
        return value if value in CHOICE else None

    return ReportFilters(
        year=int(year_text) if year_text.isdigit() and 2000 <= int(year_text) <= 2100 else None,
        deputy=ident("deputy"), station=ident("station"),
        status=status if status in REPORT_STATUS else None, overdue=choice("overdue"), open=choice("open"),
        page=int(page_text) if page_text.isdigit() and 1 <= int(page_text) <= 10_000 else 1)


_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{10}(\d{3}[\dXx])(?![0-9A-Za-z])")


def masked(text: str) -> str:
    """A report's words with any mobile or ID number a citizen typed into them masked, as intake masks
    the reporter's own: staff lists show what was reported, not who can be called."""
    return _PHONE.sub(r"\1****\2", _ID_NUMBER.sub(r"\1**********\2", text))

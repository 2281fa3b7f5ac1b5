"""Rules of deputies' performance points (履职积分) and of the handling units' board: plain functions.

Points come from rules, and rules are data: a rule says which happening (an event type, or an
activity kind recorded by staff) gives how many points, to whom, in which part (base, capped at
100 a year, or bonus, uncapped) and in which of the five dimensions. A region's rules are
versioned by the date they take effect; an entry is scored by the version in force when its
happening happened, so a change never rewrites the past.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

CHINA = timezone(timedelta(hours=8))
BASE_CAP = 100
MAX_STARS = 10
ENTRY_NAMESPACE = uuid.UUID("6f1c7d2e-2b7a-4d59-9a35-3c1f0f7e5a11")


class Part(StrEnum):
    BASE = "base"
    BONUS = "bonus"


class Dimension(StrEnum):
    EXEMPLARY = "exemplary"  # 表率
    CONDUCT = "conduct"  # 规范
    SUPERVISION = "supervision"  # 监督
    ADVISORY = "advisory"  # 参谋
    RELIEF = "relief"  # 解忧


class Role(StrEnum):
    """Who of an event's deputies a rule scores."""

    DEPUTY = "deputy"  # the report's deputy, or the deputy an activity is about
    LEAD = "lead"  # a suggestion's lead deputy
    CO_SIGNER = "co_signer"  # each co-signer (附议代表)


class Grade(StrEnum):
    EXCELLENT = "excellent"  # 优秀
    GOOD = "good"  # 良好
    COMPETENT = "competent"  # 称职
    BASICALLY_COMPETENT = "basically_competent"  # 基本称职
    NOT_COMPETENT = "not_competent"  # 不称职


class Board(StrEnum):
    RED = "red"  # 红榜: praise
    YELLOW = "yellow"  # 黄榜: warning
    BLACK = "black"  # 黑榜: worst


ACTIVITY_PREFIX = "activity:"
ACTIVITY_KINDS = {
    "session_attendance": "出席人代会",
    "session_absence_with_leave": "请假缺席人代会",
    "session_absence_without_leave": "无故缺席人代会",
    "reception_day": "逢十接待日进站接待",
    "inspection": "视察",
    "survey": "专题调研",
    "report_back": "向选民述职",
    "training": "参加履职学习培训",
    "award_county": "获县级表彰",
    "award_city": "获市级表彰",
    "award_province": "获省级表彰",
    "award_national": "获国家级表彰",
}


class RuleError(ValueError):
    def __init__(self, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.message, self.field = message, field_name


@dataclass(frozen=True)
class Rule:
    code: str
    on: str  # an event type, or "activity:<kind>"
    points: float
    part: Part
    dimension: Dimension
    role: Role = Role.DEPUTY
    # every listed field of the event's data must equal the value (e.g. {"on_time": false})
    match: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def applies(self, on: str, data: Mapping[str, Any]) -> bool:
        return self.on == on and all(_same(data.get(k), v) for k, v in self.match.items())


def _same(value: Any, wanted: Any) -> bool:
    # True == 1 in Python; a rule on {"on_time": false} must not match a count of 0.
    if isinstance(value, bool) or isinstance(wanted, bool):
        return value is wanted
    return bool(value == wanted)


@dataclass(frozen=True)
class Grading:
    """Year-end judgement: stars per total point, grade thresholds, talk list, dimension scales."""

    points_per_star: float = 10.0
    excellent: float = 90
    good: float = 75
    competent: float = 60
    basically_competent: float = 45
    # the bottom share of a ranking listed for a talk (约谈), at least one deputy
    talk_share: float = 0.05
    # points in a dimension that make its index 100
    dimension_full: Mapping[str, float] = field(default_factory=lambda: {d.value: 30.0 for d in Dimension})


@dataclass(frozen=True)
class BoardThresholds:
    red_on_time: float = 0.95
    red_satisfaction: float = 0.90
    yellow_on_time: float = 0.80
    yellow_satisfaction: float = 0.70
    black_on_time: float = 0.60
    black_satisfaction: float = 0.50
    min_replies: int = 1


@dataclass(frozen=True)
class RuleSet:
    region_code: str  # "" is the default everywhere
    effective_from: date
    version: int
    rules: tuple[Rule, ...]
    grading: Grading = Grading()
    board: BoardThresholds = BoardThresholds()


def _r(code: str, on: str, points: float, part: Part, dim: Dimension, label: str, role: Role = Role.DEPUTY,
       **match: Any) -> Rule:
    return Rule(code, on, points, part, dim, role, match, label)


B, X = Part.BASE, Part.BONUS
D = Dimension
DEFAULT_RULES: tuple[Rule, ...] = (
    _r("suggestion_led", "suggestions.suggestion.submitted", 4, B, D.ADVISORY, "领衔提出代表建议", Role.LEAD),
    _r("suggestion_cosigned", "suggestions.suggestion.submitted", 1, B, D.ADVISORY, "附议代表建议", Role.CO_SIGNER),
    _r("suggestion_key", "suggestions.suggestion.assigned", 3, X, D.ADVISORY, "建议被确定为重点建议", Role.LEAD,
       key=True),
    _r("hotspot_supervision", "suggestions.suggestion.submitted", 3, X, D.SUPERVISION, "参与共性问题监督",
       Role.LEAD, from_topic=True),
    _r("report_ack_on_time", "intake.report.acknowledged", 0.5, B, D.RELIEF, "按时受理群众意见", on_time=True),
    _r("report_ack_late", "intake.report.acknowledged", -0.5, B, D.RELIEF, "逾期受理群众意见", on_time=False),
    _r("report_answer_on_time", "intake.report.answered", 1, B, D.RELIEF, "按时答复群众意见", on_time=True),
    _r("report_answer_late", "intake.report.answered", -1, B, D.RELIEF, "逾期答复群众意见", on_time=False),
    _r("report_rated_5", "intake.report.rated", 1, X, D.RELIEF, "群众评价五星", stars=5),
    _r("report_rated_1", "intake.report.rated", -1, B, D.RELIEF, "群众评价一星", stars=1),
    _r("session_attendance", "activity:session_attendance", 10, B, D.CONDUCT, "出席人代会"),
    _r("session_absence_with_leave", "activity:session_absence_with_leave", 0, B, D.CONDUCT, "请假缺席人代会"),
    _r("session_absence_without_leave", "activity:session_absence_without_leave", 0, B, D.CONDUCT,
       "无故缺席人代会，不计分"),
    _r("reception_day", "activity:reception_day", 2, B, D.RELIEF, "逢十接待日进站接待"),
    _r("inspection", "activity:inspection", 3, B, D.SUPERVISION, "参加视察"),
    _r("survey", "activity:survey", 3, B, D.ADVISORY, "参加专题调研"),
    _r("report_back", "activity:report_back", 5, B, D.EXEMPLARY, "向选民述职"),
    _r("training", "activity:training", 2, B, D.CONDUCT, "参加履职学习培训"),
    _r("award_county", "activity:award_county", 2, X, D.EXEMPLARY, "获县级表彰"),
    _r("award_city", "activity:award_city", 4, X, D.EXEMPLARY, "获市级表彰"),
    _r("award_province", "activity:award_province", 6, X, D.EXEMPLARY, "获省级表彰"),
    _r("award_national", "activity:award_national", 10, X, D.EXEMPLARY, "获国家级表彰"),
)
DEFAULT = RuleSet("", date(2000, 1, 1), 0, DEFAULT_RULES)


# ---- reading rule sets from their JSON form ---------------------------------------------------


def rule_set_of(region_code: str, effective_from: date, version: int, doc: Mapping[str, Any]) -> RuleSet:
    """A rule set from its stored (or PUT) form; RuleError names the field that is wrong."""
    raw = doc.get("rules")
    if not isinstance(raw, list) or not raw:
        raise RuleError("规则不能为空。", "rules")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, r in enumerate(raw):
        where = f"rules[{i}]"
        if not isinstance(r, Mapping):
            raise RuleError("每条规则应为对象。", where)
        code, on = r.get("code"), r.get("on")
        if not isinstance(code, str) or not code or code in seen:
            raise RuleError("规则编码缺失或重复。", f"{where}.code")
        seen.add(code)
        if not isinstance(on, str) or not _valid_trigger(on):
            raise RuleError("触发条件应为事件类型或 activity:<履职活动>。", f"{where}.on")
        points = r.get("points")
        if isinstance(points, bool) or not isinstance(points, int | float) or not math.isfinite(points):
            raise RuleError("分值应为数字。", f"{where}.points")
        try:
            part, dim, role = Part(r.get("part", "base")), Dimension(r.get("dimension")), Role(r.get("role", "deputy"))
        except ValueError as exc:
            raise RuleError(f"取值无效：{exc}", where) from None
        match = r.get("match") or {}
        if not isinstance(match, Mapping):
            raise RuleError("匹配条件应为对象。", f"{where}.match")
        rules.append(Rule(code, on, float(points), part, dim, role, dict(match), str(r.get("label") or "")))
    grading = _grading_of(doc.get("grading") or {})
    board = _board_of(doc.get("board") or {})
    return RuleSet(region_code, effective_from, version, tuple(rules), grading, board)


def _number(value: Any, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RuleError("应为有限的数字。", where)
    if positive and value <= 0:
        raise RuleError("应为正数。", where)
    return float(value)


def _grading_of(raw: Any) -> Grading:
    if not isinstance(raw, Mapping) or set(raw) - set(Grading.__dataclass_fields__):
        raise RuleError(f"评定参数只能包含 {', '.join(Grading.__dataclass_fields__)}。", "grading")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "dimension_full":
            if not isinstance(value, Mapping) or set(value) - {d.value for d in Dimension}:
                raise RuleError("应为五个维度各自的满分。", "grading.dimension_full")
            full = {d.value: 30.0 for d in Dimension}
            full.update({d: _number(v, f"grading.dimension_full.{d}", positive=True) for d, v in value.items()})
            values[name] = full
        else:
            values[name] = _number(value, f"grading.{name}", positive=name == "points_per_star")
    grading = Grading(**values)
    thresholds = (grading.excellent, grading.good, grading.competent, grading.basically_competent)
    if list(thresholds) != sorted(thresholds, reverse=True):
        raise RuleError("等次分数线应从优秀到基本称职递减。", "grading")
    if not 0 < grading.talk_share < 1:
        raise RuleError("约谈比例应在 0 与 1 之间。", "grading.talk_share")
    return grading


def _board_of(raw: Any) -> BoardThresholds:
    if not isinstance(raw, Mapping) or set(raw) - set(BoardThresholds.__dataclass_fields__):
        raise RuleError(f"榜单参数只能包含 {', '.join(BoardThresholds.__dataclass_fields__)}。", "board")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        number = _number(value, f"board.{name}")
        if name == "min_replies":
            if number < 1 or number != int(number):
                raise RuleError("至少应为 1 件答复。", "board.min_replies")
            values[name] = int(number)
        elif not 0 <= number <= 1:
            raise RuleError("比率应在 0 与 1 之间。", f"board.{name}")
        else:
            values[name] = number
    return BoardThresholds(**values)


def _valid_trigger(on: str) -> bool:
    if on.startswith(ACTIVITY_PREFIX):
        return on.removeprefix(ACTIVITY_PREFIX) in ACTIVITY_KINDS
    return on.count(".") == 2 and all(on.split("."))


def rule_set_doc(rs: RuleSet) -> dict[str, Any]:
    return {
        "region_code": rs.region_code, "effective_from": rs.effective_from.isoformat(), "version": rs.version,
        "rules": [{"code": r.code, "on": r.on, "points": r.points, "part": r.part.value,
                   "dimension": r.dimension.value, "role": r.role.value, "match": dict(r.match), "label": r.label}
                  for r in rs.rules],
        "grading": {**{k: getattr(rs.grading, k) for k in ("points_per_star", "excellent", "good", "competent",
                                                          "basically_competent", "talk_share")},
                    "dimension_full": dict(rs.grading.dimension_full)},
        "board": {k: getattr(rs.board, k) for k in BoardThresholds.__dataclass_fields__},
    }


# ---- which rules, for whom -------------------------------------------------------------------


def prefix_of(region_code: str) -> str:
    """The prefix of the codes a region covers: 340000 → 34, 340800 → 3408, 340811 → 340811.
    Only the six-digit codes of provinces, cities and counties pad with zeros; a township's or a
    village's code is its own prefix (340811100 is one township, not 3408111…)."""
    if len(region_code) != 6:
        return region_code
    trimmed = region_code
    while len(trimmed) > 2 and trimmed.endswith("00"):
        trimmed = trimmed[:-2]
    return trimmed


def in_force(sets: Iterable[RuleSet], region_code: str, day: date) -> RuleSet:
    """The most specific region's latest version effective on `day`; the default if none."""
    best: RuleSet = DEFAULT
    best_key = (-1, date.min, -1)
    for rs in sets:
        if rs.effective_from > day:
            continue
        prefix = prefix_of(rs.region_code) if rs.region_code else ""
        if not region_code.startswith(prefix):
            continue
        key = (len(prefix), rs.effective_from, rs.version)
        if key > best_key:
            best, best_key = rs, key
    return best


@dataclass(frozen=True)
class Award:
    """One ledger entry a happening earns."""

    entry_id: str
    deputy_id: str
    rule: Rule


def entry_id(source_id: str, rule_code: str, deputy_id: str) -> str:
    """The same happening, rule and deputy always make the same entry: replays write nothing twice."""
    return str(uuid.uuid5(ENTRY_NAMESPACE, f"{source_id}|{rule_code}|{deputy_id}"))


def awards(rules: RuleSet, on: str, data: Mapping[str, Any], people: Mapping[Role, Sequence[str]],
           source_id: str) -> list[Award]:
    out: list[Award] = []
    for rule in rules.rules:
        if not rule.applies(on, data):
            continue
        for deputy_id in people.get(rule.role, ()):
            if deputy_id:
                out.append(Award(entry_id(source_id, rule.code, deputy_id), deputy_id, rule))
    return out


def year_of(at: datetime) -> int:
    """The scoring year of a moment: the calendar year in China."""
    return at.astimezone(CHINA).year


# ---- a deputy's year ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    base: float
    bonus: float
    total: float
    stars: int
    grade: Grade
    dimensions: dict[str, float]


def totals(base_sum: float, bonus_sum: float) -> tuple[float, float, float]:
    """Base is 0–100 whatever the entries add up to; bonus is not capped, but never below zero."""
    base = min(float(BASE_CAP), max(0.0, base_sum))
    bonus = max(0.0, bonus_sum)
    return round(base, 2), round(bonus, 2), round(base + bonus, 2)


def stars(total: float, grading: Grading) -> int:
    return max(0, min(MAX_STARS, int(total // grading.points_per_star)))


def grade(total: float, grading: Grading) -> Grade:
    for threshold, g in ((grading.excellent, Grade.EXCELLENT), (grading.good, Grade.GOOD),
                         (grading.competent, Grade.COMPETENT),
                         (grading.basically_competent, Grade.BASICALLY_COMPETENT)):
        if total >= threshold:
            return g
    return Grade.NOT_COMPETENT


def score(entries: Iterable[tuple[Part, Dimension, float]], grading: Grading) -> Score:
    base_sum = bonus_sum = 0.0
    by_dim = dict.fromkeys((d.value for d in Dimension), 0.0)
    for part, dim, points in entries:
        if part == Part.BASE:
            base_sum += points
        else:
            bonus_sum += points
        by_dim[dim.value] += points
    base, bonus, total = totals(base_sum, bonus_sum)
    dims = {d: round(min(100.0, max(0.0, v / grading.dimension_full.get(d, 30.0) * 100)), 1)
            for d, v in by_dim.items()}
    return Score(base, bonus, total, stars(total, grading), grade(total, grading), dims)


def rank(totals_by_id: Sequence[tuple[str, float]]) -> list[tuple[str, float, int]]:
    """Highest first; equal totals share a rank, and the next rank skips (1, 1, 3)."""
    ordered = sorted(totals_by_id, key=lambda t: (-t[1], t[0]))
    out: list[tuple[str, float, int]] = []
    for i, (deputy_id, total) in enumerate(ordered):
        r = out[-1][2] if out and out[-1][1] == total else i + 1
        out.append((deputy_id, total, r))
    return out


def talk_list(ranked: Sequence[tuple[str, float, int]], share: float) -> list[str]:
    """The bottom `share` of a ranking (at least one deputy), ties with the last one included."""
    if not ranked:
        return []
    # rounded first: 100 × 0.07 is 7.000000000000001 in floating point
    count = max(1, math.ceil(round(len(ranked) * share, 9)))
    cutoff = ranked[len(ranked) - count][1]
    return [deputy_id for deputy_id, total, _ in ranked if total <= cutoff]


# ---- the handling units' board -----------------------------------------------------------------


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def board(replies: int, on_time: int, evaluations: int, satisfied: int, t: BoardThresholds) -> Board | None:
    """红黄黑榜: red when both rates are high, black when either is very low, yellow when either is
    low; None for a unit on no board (in between, or with too few replies to judge)."""
    if replies < t.min_replies:
        return None
    on_time_rate = on_time / replies
    satisfaction = satisfied / evaluations if evaluations else None
    if on_time_rate < t.black_on_time or (satisfaction is not None and satisfaction < t.black_satisfaction):
        return Board.BLACK
    if on_time_rate < t.yellow_on_time or (satisfaction is not None and satisfaction < t.yellow_satisfaction):
        return Board.YELLOW
    if on_time_rate >= t.red_on_time and (satisfaction is None or satisfaction >= t.red_satisfaction):
        return Board.RED
    return None

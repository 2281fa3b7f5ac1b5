"""The points rules as a form, and what a new version changes against the one in force. Pure.

Scoring's rules are a fixed structure (a list of rules, the grading, the board's thresholds), so
staff edit them as a form rather than as JSON: one row per rule (blank rows to add one, a box to
remove one), numbers as numbers and rates in per cent. What was typed is kept as typed, so a
refused form comes back as it was sent. Before a version is saved the page shows its difference
from the version in force; the digest of what was shown travels with the confirmation, so what is
saved is exactly what was looked at.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from services.web.deputy_view import DIMENSION, PART

# New rows offered under the rules: without JavaScript a page cannot add one on its own.
BLANK_ROWS = 3
MAX_RULES = 200
MAX_MATCH = 10
RULE_FIELDS = ("code", "label", "on", "points", "part", "dimension", "role", "match")
ROLE = {"deputy": "代表本人", "lead": "领衔代表", "co_signer": "附议代表"}
# The happenings scoring scores, for the trigger's suggestions and the difference's words. Others
# may be typed: scoring takes any event type of three parts.
TRIGGER = {
    "suggestions.suggestion.submitted": "提出代表建议",
    "suggestions.suggestion.assigned": "建议交办",
    "suggestions.suggestion.replied": "承办单位答复建议",
    "suggestions.suggestion.evaluated": "代表评价办理结果",
    "intake.report.acknowledged": "受理群众意见",
    "intake.report.answered": "答复群众意见",
    "intake.report.rated": "群众评价",
    "activity:session_attendance": "出席人代会",
    "activity:session_absence_with_leave": "请假缺席人代会",
    "activity:session_absence_without_leave": "无故缺席人代会",
    "activity:reception_day": "逢十接待日进站接待",
    "activity:inspection": "视察",
    "activity:survey": "专题调研",
    "activity:report_back": "向选民述职",
    "activity:training": "参加履职学习培训",
    "activity:award_county": "获县级表彰",
    "activity:award_city": "获市级表彰",
    "activity:award_province": "获省级表彰",
    "activity:award_national": "获国家级表彰",
}
GRADING = {
    "points_per_star": "每颗星所需积分",
    "excellent": "“优秀”分数线",
    "good": "“良好”分数线",
    "competent": "“称职”分数线",
    "basically_competent": "“基本称职”分数线",
    "talk_share": "约谈比例（%）",
}
BOARD = {
    "red_on_time": "红榜：按时答复率不低于（%）",
    "red_satisfaction": "红榜：满意率不低于（%）",
    "yellow_on_time": "黄榜：按时答复率低于（%）",
    "yellow_satisfaction": "黄榜：满意率低于（%）",
    "black_on_time": "黑榜：按时答复率低于（%）",
    "black_satisfaction": "黑榜：满意率低于（%）",
    "min_replies": "参评最少答复件数",
}
# Fields shown in per cent and sent as shares of one.
PERCENT = frozenset({"talk_share", *(k for k in BOARD if k != "min_replies")})
_CODE = re.compile(r"^[a-z0-9_]{1,64}$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
_SPLIT = re.compile(r"[;；,，\n]+")


# ---- numbers and conditions as typed ---------------------------------------------------------


def num_text(value: Any) -> str:
    """10, 0.5, -1.25: no trailing zeros, no exponent."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    text = f"{round(float(value), 4):.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _number(text: str) -> float | None:
    cleaned = unicodedata.normalize("NFKC", text).strip().removesuffix("%").removesuffix("分").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def match_text(match: Mapping[str, Any]) -> str:
    """{"on_time": false, "stars": 5} as `on_time=false; stars=5`; a text that reads as a number or
    true/false is quoted, so it stays text when read back."""
    parts = []
    for key, value in match.items():
        if isinstance(value, str) and not isinstance(_literal(value), str):
            shown = json.dumps(value, ensure_ascii=False)
        elif isinstance(value, str):
            shown = value
        else:
            shown = json.dumps(value)
        parts.append(f"{key}={shown}")
    return "; ".join(parts)


def parse_match(text: str) -> dict[str, Any] | str:
    """The conditions typed (`on_time=false; stars=5`), or why they cannot be read."""
    found: dict[str, Any] = {}
    for part in _SPLIT.split(unicodedata.normalize("NFKC", text)):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key):
            return "匹配条件应写成“字段=取值”，多个用分号隔开，例如 on_time=false; stars=5。"
        parsed = _literal(value)
        if isinstance(parsed, dict | list):
            return f"条件 {key} 的取值只能是文字、数字、true、false 或 null。"
        found[key] = parsed
    if len(found) > MAX_MATCH:
        return f"匹配条件最多 {MAX_MATCH} 个。"
    return found


# ---- the form ----------------------------------------------------------------------------------


@dataclass
class RuleRow:
    index: int
    code: str = ""
    label: str = ""
    on: str = ""
    points: str = ""
    part: str = "base"
    dimension: str = ""
    role: str = "deputy"
    match: str = ""
    delete: bool = False

    @property
    def blank(self) -> bool:
        return not any(v.strip() for v in (self.code, self.label, self.on, self.points, self.match))


@dataclass
class RulesForm:
    effective_from: str
    rows: list[RuleRow]
    grading: dict[str, str]
    dims: dict[str, str]
    board: dict[str, str]


def _shown(name: str, value: Any) -> str:
    if value is None:
        return ""
    return num_text(float(value) * 100) if name in PERCENT else num_text(value)


def form_of(doc: Mapping[str, Any], effective_from: str) -> RulesForm:
    """The form filled from a rules document as scoring answers it, with blank rows to add rules."""
    rows = [RuleRow(i, code=str(r.get("code", "")), label=str(r.get("label") or ""), on=str(r.get("on", "")),
                    points=num_text(r.get("points", "")), part=str(r.get("part") or "base"),
                    dimension=str(r.get("dimension") or ""), role=str(r.get("role") or "deputy"),
                    match=match_text(r.get("match") or {}))
            for i, r in enumerate(doc.get("rules") or [])]
    rows += [RuleRow(len(rows) + i) for i in range(BLANK_ROWS)]
    grading = doc.get("grading") or {}
    board = doc.get("board") or {}
    full = grading.get("dimension_full") or {}
    return RulesForm(effective_from=effective_from, rows=rows,
                     grading={k: _shown(k, grading.get(k)) for k in GRADING},
                     dims={d: _shown(d, full.get(d)) for d in DIMENSION},
                     board={k: _shown(k, board.get(k)) for k in BOARD})


def typed_form(data: Mapping[str, str]) -> RulesForm:
    """The form as sent, every value kept as typed; the number of rows is the form's own `rows`."""
    count_text = data.get("rows", "")
    count = min(int(count_text), MAX_RULES + BLANK_ROWS) if count_text.isdigit() else 0
    rows = [RuleRow(i, **{f: data.get(f"rule-{i}-{f}", "") for f in RULE_FIELDS},
                    delete=data.get(f"rule-{i}-delete") == "yes") for i in range(count)]
    # A form sent back keeps room to add another rule.
    if not any(r.blank and not r.delete for r in rows):
        rows += [RuleRow(count + i) for i in range(BLANK_ROWS)]
    return RulesForm(effective_from=data.get("effective_from", "").strip(), rows=rows,
                     grading={k: data.get(f"grading-{k}", "") for k in GRADING},
                     dims={d: data.get(f"dim-{d}", "") for d in DIMENSION},
                     board={k: data.get(f"board-{k}", "") for k in BOARD})


@dataclass
class Parsed:
    doc: dict[str, Any] | None
    errors: dict[str, str]
    # Where each rule of `doc` came from: its row on the form (for the service's field names).
    rows_of: list[int] = field(default_factory=list)


def _rule(row: RuleRow, errors: dict[str, str], seen: set[str]) -> dict[str, Any]:
    key = f"rule-{row.index}"
    code = row.code.strip()
    if not _CODE.match(code):
        errors[f"{key}-code"] = "规则编码只能用小写字母、数字和下划线，最多 64 个字符。"
    elif code in seen:
        errors[f"{key}-code"] = f"规则编码 {code} 重复了，每条规则的编码要不同。"
    seen.add(code)
    on = row.on.strip()
    if not 3 <= len(on) <= 80:
        errors[f"{key}-on"] = "请填写触发条件：事件类型（如 intake.report.answered）或 activity:履职活动。"
    points = _number(row.points)
    if points is None or not -100 <= points <= 100:
        errors[f"{key}-points"] = "分值应为 -100 到 100 之间的数字。"
    if row.part not in PART:
        errors[f"{key}-part"] = "请选择计入基础分还是加分。"
    if row.dimension not in DIMENSION:
        errors[f"{key}-dimension"] = "请选择计入哪个方面。"
    if row.role not in ROLE:
        errors[f"{key}-role"] = "请选择给谁计分。"
    label = row.label.strip()
    if len(label) > 100:
        errors[f"{key}-label"] = "规则说明最多 100 个字。"
    match = parse_match(row.match)
    if isinstance(match, str):
        errors[f"{key}-match"] = match
        match = {}
    return {"code": code, "on": on, "points": points if points is not None else 0, "part": row.part,
            "dimension": row.dimension, "role": row.role, "match": match, "label": label}


def _numbers(values: Mapping[str, str], prefix: str, labels: Mapping[str, str], errors: dict[str, str]
             ) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, label in labels.items():
        value = _number(values.get(name, ""))
        if value is None:
            errors[f"{prefix}-{name}"] = f"请填写{label.split('（')[0]}（数字）。"
            continue
        if name in PERCENT:
            if not 0 <= value <= 100:
                errors[f"{prefix}-{name}"] = "应为 0 到 100 之间的百分数。"
                continue
            value = round(value / 100, 6)
        out[name] = value
    return out


def parse(form: RulesForm, today: date) -> Parsed:
    """The rules document to PUT, or the errors by field id (`rule-3-points`, `grading-good` …)."""
    errors: dict[str, str] = {}
    try:
        day = date.fromisoformat(form.effective_from)
    except ValueError:
        day = None
        errors["effective_from"] = "请选择新规则开始施行的日期。"
    if day is not None and day <= today:
        errors["effective_from"] = "新规则最早从明天起施行，不改变已计的积分。"
    kept = [r for r in form.rows if not r.delete and not r.blank]
    if not kept:
        errors["rules"] = "至少要保留一条规则。"
    elif len(kept) > MAX_RULES:
        errors["rules"] = f"规则最多 {MAX_RULES} 条。"
    seen: set[str] = set()
    rules = [_rule(r, errors, seen) for r in kept]
    grading: dict[str, Any] = _numbers(form.grading, "grading", GRADING, errors)
    if grading.get("points_per_star", 1) <= 0:
        errors["grading-points_per_star"] = "每颗星所需积分应大于 0。"
    share = grading.get("talk_share")
    if share is not None and not 0 < share < 1:
        errors["grading-talk_share"] = "约谈比例应大于 0% 且小于 100%。"
    dims = _numbers(form.dims, "dim", {d: f"{label}满分" for d, label in DIMENSION.items()}, errors)
    for d, value in dims.items():
        if value <= 0:
            errors[f"dim-{d}"] = "满分应大于 0。"
    grading["dimension_full"] = dims
    board: dict[str, Any] = _numbers(form.board, "board", BOARD, errors)
    replies = board.get("min_replies")
    if replies is not None:
        if replies < 1 or replies != int(replies):
            errors["board-min_replies"] = "至少 1 件，应为整数。"
        board["min_replies"] = int(replies)
    if errors or day is None:
        return Parsed(None, errors)
    doc = {"effective_from": day.isoformat(), "rules": rules, "grading": grading, "board": board}
    return Parsed(doc, {}, [r.index for r in kept])


def field_of(service_field: str, rows_of: Sequence[int]) -> str:
    """Scoring's name of a field at fault (`rules[2].points`, `grading.dimension_full.relief`) as the
    form's field id, so its words show next to what was typed."""
    found = re.match(r"^rules\[(\d+)\](?:\.(\w+))?", service_field)
    if found:
        index = int(found.group(1))
        name = found.group(2) if found.group(2) in RULE_FIELDS else "code"
        return f"rule-{rows_of[index]}-{name}" if index < len(rows_of) else "rules"
    parts = service_field.split(".")
    if parts[0] == "grading" and len(parts) == 3 and parts[1] == "dimension_full" and parts[2] in DIMENSION:
        return f"dim-{parts[2]}"
    if parts[0] == "grading" and len(parts) == 2 and parts[1] in GRADING:
        return f"grading-{parts[1]}"
    if parts[0] == "board" and len(parts) == 2 and parts[1] in BOARD:
        return f"board-{parts[1]}"
    if parts[0] in ("effective_from", "rules", "grading", "board"):
        return parts[0]
    return "form"


def digest(region_code: str, doc: Mapping[str, Any]) -> str:
    """What a preview showed, in 32 hex characters: the same region and document, the same digest."""
    text = json.dumps({"region_code": region_code, **doc}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# ---- the difference against the version in force -------------------------------------------


@dataclass(frozen=True)
class Change:
    kind: Literal["added", "removed", "changed"]
    what: str
    before: str
    after: str


CHANGE_WORDS = {"added": "新增", "removed": "删除", "changed": "修改"}
_RULE_FIELD_WORDS = {"on": "触发条件", "points": "分值", "part": "计入", "dimension": "方面", "role": "计分对象",
                     "match": "匹配条件", "label": "说明"}


def trigger_words(on: str) -> str:
    label = TRIGGER.get(on)
    return f"{label}（{on}）" if label else on


def _field_words(name: str, value: Any) -> str:
    if name == "on":
        return trigger_words(str(value))
    if name == "points":
        return f"{num_text(value)} 分"
    if name == "part":
        return PART.get(str(value), str(value))
    if name == "dimension":
        return DIMENSION.get(str(value), str(value))
    if name == "role":
        return ROLE.get(str(value), str(value))
    if name == "match":
        return match_text(value or {}) or "（无）"
    return str(value) or "（无）"


def rule_words(rule: Mapping[str, Any]) -> str:
    """One rule in a line: 答复群众意见（intake.report.answered），on_time=true，1 分，基础分，解忧，代表本人。"""
    parts = [trigger_words(str(rule.get("on", "")))]
    if rule.get("match"):
        parts.append(match_text(rule["match"]))
    parts += [_field_words("points", rule.get("points", 0)), _field_words("part", rule.get("part", "base")),
              _field_words("dimension", rule.get("dimension", "")), _field_words("role", rule.get("role", "deputy"))]
    return "，".join(parts)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return round(float(a), 6) == round(float(b), 6)
    return bool(a == b)


def _rule_name(rule: Mapping[str, Any]) -> str:
    label = str(rule.get("label") or "")
    return f"规则 {rule.get('code')}" + (f"（{label}）" if label else "")


def _settings(before: Mapping[str, Any], after: Mapping[str, Any], labels: Mapping[str, str], heading: str
              ) -> list[Change]:
    out = []
    for name, label in labels.items():
        old, new = before.get(name), after.get(name)
        if new is not None and (old is None or not _same(old, new)):
            words = label.split("（")[0]
            out.append(Change("changed", f"{heading}：{words}", _shown(name, old) + ("%" if name in PERCENT else "")
                              if old is not None else "（无）", _shown(name, new) + ("%" if name in PERCENT else "")))
    return out


def diff(current: Mapping[str, Any], proposed: Mapping[str, Any]) -> list[Change]:
    """What `proposed` changes against `current` (both as scoring writes rules): rules added, removed
    and changed field by field, then the grading's and the board's settings."""
    old_rules = {str(r.get("code")): r for r in current.get("rules") or []}
    new_rules = {str(r.get("code")): r for r in proposed.get("rules") or []}
    changes: list[Change] = []
    for code, rule in new_rules.items():
        before = old_rules.get(code)
        if before is None:
            changes.append(Change("added", _rule_name(rule), "", rule_words(rule)))
            continue
        for name in ("on", "points", "part", "dimension", "role", "match", "label"):
            old, new = before.get(name), rule.get(name)
            if name == "match":
                old, new = old or {}, new or {}
            if name == "label":
                old, new = old or "", new or ""
            if not _same(old, new):
                changes.append(Change("changed", f"{_rule_name(rule)}：{_RULE_FIELD_WORDS[name]}",
                                      _field_words(name, old), _field_words(name, new)))
    changes += [Change("removed", _rule_name(rule), rule_words(rule), "")
                for code, rule in old_rules.items() if code not in new_rules]
    old_grading, new_grading = current.get("grading") or {}, proposed.get("grading") or {}
    changes += _settings(old_grading, new_grading, GRADING, "评定")
    changes += _settings(old_grading.get("dimension_full") or {}, new_grading.get("dimension_full") or {},
                         {d: f"{label}满分" for d, label in DIMENSION.items()}, "评定")
    changes += _settings(current.get("board") or {}, proposed.get("board") or {}, BOARD, "红黄黑榜")
    return changes


def in_force_words(region_code: str, doc_region: str, version: int, effective_from: str) -> str:
    """Which version is in force here, in words: the region's own, a wider region's, or the default."""
    if version == 0:
        return "系统默认规则（未设置过本地区规则）"
    if doc_region == "":
        return f"全域默认规则第 {version} 版，自 {effective_from} 起施行"
    if doc_region == region_code:
        return f"本地区规则第 {version} 版，自 {effective_from} 起施行"
    return f"上级地区（{doc_region}）规则第 {version} 版，自 {effective_from} 起施行，本地区沿用"

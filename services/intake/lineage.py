"""What becomes of a citizen's report after it joins a hotspot (共性事项), told on their receipt.

Routing announces each step of a hotspot's life in one event, `routing.hotspot.progressed`;
this module reads its data and words the public timeline entry each member report gets. Plain
functions, no I/O: the handler (`hotspot_news`) stores what they return.

The entries speak of the matter, never of the other people who raised it: a count, where, and
the words most of them used, but no name, no content, no receipt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

Step = Literal["joined", "converted", "assigned", "replied", "followed_up", "solved", "closed"]
STEPS: frozenset[str] = frozenset(get_args(Step))
# Steps that happen once in a hotspot's life: told once per report even if announced again under
# another event id (a replay of routing's stream). The others may repeat (a second reply after a
# dissatisfied evaluation, a follow-up each year), so each announcement counts.
ONCE_PER_HOTSPOT: frozenset[str] = frozenset({"joined", "converted", "solved", "closed"})

OUTCOMES: dict[str, str] = {"A": "已解决或当年解决", "B": "列入计划三年内解决", "C": "留作参考"}
TITLE_CHARS = 40
NOTE_CHARS = 200
MATTER_PARTS = 4
PART_CHARS = 20
DEFAULT_FOLLOW_UP = "该代表建议仍在跟踪办理中。"
_ENDS = frozenset("。！？!?…")


class Malformed(ValueError):
    """The event's data cannot be read as a hotspot's step."""


@dataclass(frozen=True)
class Progress:
    hotspot_id: str
    step: Step
    report_ids: tuple[str, ...]
    count: int
    supporters: int
    places: tuple[str, ...]
    keywords: tuple[str, ...]
    topic_title: str | None
    suggestion_title: str | None
    outcome: str | None
    note: str | None
    at: datetime | None


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{name} is not a string")
    return value.strip() or None


def _count(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Malformed(f"{name} is not a count")
    return value


def _words(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name) or []
    if not isinstance(value, list):
        raise Malformed(f"{name} is not a list")
    return tuple(w.strip() for w in value if isinstance(w, str) and w.strip())


def parse(data: Mapping[str, Any]) -> Progress:
    """The step an event's data announces; Malformed when a field it needs is missing or wrong."""
    hotspot_id = _text(data, "hotspot_id")
    if hotspot_id is None:
        raise Malformed("no hotspot_id")
    step = data.get("step")
    if step not in STEPS:
        raise Malformed(f"unknown step {step!r}")
    report_ids = data.get("report_ids")
    if not isinstance(report_ids, list) or not all(isinstance(r, str) and r for r in report_ids):
        raise Malformed("report_ids is not a list of ids")
    outcome = _text(data, "outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise Malformed(f"unknown outcome {outcome!r}")
    raw_at = _text(data, "at")
    try:
        at = datetime.fromisoformat(raw_at) if raw_at else None
    except ValueError as exc:
        raise Malformed("at is not a time") from exc
    if at is not None and at.tzinfo is None:
        raise Malformed("at has no offset")
    return Progress(
        hotspot_id=hotspot_id, step=step, report_ids=tuple(dict.fromkeys(report_ids)),
        count=_count(data, "count"), supporters=_count(data, "supporters"),
        places=_words(data, "places"), keywords=_words(data, "keywords"),
        topic_title=_text(data, "topic_title"), suggestion_title=_text(data, "suggestion_title"),
        outcome=outcome, note=_text(data, "note"), at=at,
    )


def shortened(text: str, limit: int) -> str:
    """One line of at most `limit` characters, an ellipsis marking a cut."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def _sentence(text: str) -> str:
    return text if text[-1:] in _ENDS else text + "。"


def _quoted(title: str | None) -> str:
    return f"「{shortened(title, TITLE_CHARS)}」" if title else ""


def matter(places: Sequence[str], keywords: Sequence[str]) -> str:
    """Where and what, in a few words: the places first, then the words most reports used."""
    parts = [shortened(p, PART_CHARS) for p in (*places[:2], *keywords)]
    return "、".join(list(dict.fromkeys(parts))[:MATTER_PARTS])


def note(p: Progress) -> str:
    """The citizen's timeline entry for this step, in Chinese."""
    suggestion = _quoted(p.suggestion_title)
    if p.step == "joined":
        what = matter(p.places, p.keywords)
        text = f"您反映的问题与其他群众反映的同一问题{f'（{what}）' if what else ''}已归为共性事项，" \
               f"目前共 {p.count} 人反映"
        if p.supporters:
            text += f"、{p.supporters} 人附议"
        if p.topic_title:
            text += f"，该事项已列为人大监督议题{_quoted(p.topic_title)}"
        return text + "。"
    if p.step == "converted":
        return f"该共性事项已列为人大监督议题，并转为重点督办的代表建议{suggestion}。"
    if p.step == "assigned":
        return f"代表建议{suggestion}已交办承办单位办理。" if suggestion else "该代表建议已交办承办单位办理。"
    if p.step == "replied":
        result = f"，办理结果：{OUTCOMES[p.outcome]}" if p.outcome else ""
        return f"承办单位已答复代表建议{suggestion}{result}。"
    if p.step == "followed_up":
        return "年度跟踪：" + (_sentence(shortened(p.note, NOTE_CHARS)) if p.note else DEFAULT_FOLLOW_UP)
    if p.step == "solved":
        return f"代表建议{suggestion}已办结，问题已解决。" if suggestion else "该代表建议已办结，问题已解决。"
    # closed
    if p.note:
        return "经人大常委会研究，该共性事项不列为监督议题：" + _sentence(shortened(p.note, NOTE_CHARS))
    return "经人大常委会研究，该共性事项不列为监督议题。"


def dedupe_key(p: Progress, event_id: str) -> str:
    """What makes an entry the same entry again: a once-in-a-life step of the hotspot, or the event."""
    if p.step in ONCE_PER_HOTSPOT:
        return f"hotspot:{p.hotspot_id}:{p.step}"[:120]
    return f"event:{event_id}"[:120]

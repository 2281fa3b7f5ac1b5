"""The life of a hotspot (共性事项) once found: what each decision and event does to it. Pure: the
callers (`hotspot_news`, `hotspot_corrections`) read the hotspot, apply these rules and store and
announce what they return.

States:

- `open`: gathering reports; its supervision topic (监督议题) waits for congress staff.
- `converted`: staff turned the topic into a key suggestion (`suggestions.suggestion.submitted`
  carrying its `topic_id`). It still gathers reports: they join the suggestion's matter.
- `closed`: the topic was closed without a suggestion (`suggestions.topic.closed`), staff closed a
  cluster in routing that was wrong or not worth a topic, or the suggestion was closed.
- `merged`: staff merged it into another hotspot, which it then points at (`merged_into`).

Nothing goes back to `open`, and a merged hotspot stays merged. A suggestion's steps are applied
in the order of their `seq`: one older than the last applied (a redelivery after a newer one)
changes nothing. Only a conversion may follow a closure, and only a closure made in routing: a
suggestion exists, which outweighs a cluster staff thought not worth a topic.

Each change a citizen should hear of is one step of `routing.hotspot.progressed`: joined,
converted, assigned, replied, followed_up (the suggestion's yearly look-back), solved (the
suggestion closed with an outcome that counts as solved) and closed (the topic or the cluster
closed). A suggestion closed without being solved closes the hotspot and tells nothing: `closed`
says the topic was not taken up, which would be untrue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

OPEN, CONVERTED, CLOSED, MERGED = "open", "converted", "closed", "merged"
STATES = (OPEN, CONVERTED, CLOSED, MERGED)
# States whose clusters staff may still split and merge (and reports may join).
LIVING = (OPEN, CONVERTED)
Step = Literal["joined", "converted", "assigned", "replied", "followed_up", "solved", "closed"]
STEPS: tuple[Step, ...] = ("joined", "converted", "assigned", "replied", "followed_up", "solved", "closed")
# The step of a suggestion (`suggestions.suggestion.<kind>`) each kind is for the hotspot's citizens.
# An evaluation changes nothing they are told of; it is read only to keep the order of steps.
SUGGESTION_STEPS: Mapping[str, Step | None] = {
    "submitted": "converted", "assigned": "assigned", "replied": "replied", "evaluated": None,
    "reviewed": "followed_up", "closed": "solved",  # when its outcome counts as solved; else nothing
}
# The outcome classes the contract of `routing.hotspot.progressed` names; a region's own further
# classes are announced as null rather than as a code no reader knows.
OUTCOMES = ("A", "B", "C")
SOLVED_BY_DEFAULT = "A"
TITLE_CHARS = 200
NOTE_CHARS = 2000
# How many merges a topic id is followed through to the hotspot that now holds its reports.
MERGE_HOPS = 20


class Malformed(ValueError):
    """An event's data cannot be read as what it claims to be."""


@dataclass(frozen=True)
class Life:
    """The part of a hotspot its life changes."""

    state: str = OPEN
    suggestion_id: str | None = None
    suggestion_seq: int = 0
    topic_title: str | None = None
    converted_at: datetime | None = None
    closed_at: datetime | None = None
    close_note: str | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class Change:
    life: Life
    step: Step | None  # what to announce; None: nothing citizens are told of
    note: str | None = None


@dataclass(frozen=True)
class Refusal:
    """Why staff cannot make a correction: an HTTP status, the field at fault (or None), Chinese text."""

    status: int
    message: str
    field: str | None = None


# ---- suggestions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuggestionNews:
    """What one `suggestions.suggestion.<kind>` event says about the hotspot its topic came from."""

    kind: str
    topic_id: str
    suggestion_id: str
    title: str
    seq: int
    at: datetime
    submitted_at: datetime
    outcome: str | None
    solved: bool
    note: str | None
    actor: str | None


def parse_time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise Malformed(f"{name} is not a time")
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Malformed(f"{name} is not a time") from exc
    if at.tzinfo is None:
        raise Malformed(f"{name} has no offset")
    return at


def _string(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise Malformed(f"no {name}")
    return value


def _optional(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value.strip() else None


def is_solved(outcome: str | None, classes: object) -> bool:
    """Whether the outcome counts as solved in the suggestion's own classes; without them, A does."""
    if not outcome:
        return False
    if isinstance(classes, list):
        for cls in classes:
            if isinstance(cls, Mapping) and cls.get("code") == outcome:
                return bool(cls.get("solved"))
    return outcome == SOLVED_BY_DEFAULT


def suggestion_news(kind: str, data: Mapping[str, Any]) -> SuggestionNews | None:
    """The news in a suggestion's event, or None when the suggestion was not born of a topic or the
    step is none a hotspot follows; Malformed when a topic's suggestion lacks what is needed."""
    topic_id = data.get("topic_id")
    if kind not in SUGGESTION_STEPS or not isinstance(topic_id, str) or not topic_id:
        return None
    step = data.get("step")
    if not isinstance(step, Mapping):
        raise Malformed("no step")
    seq = step.get("seq", data.get("seq"))
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise Malformed("step.seq is not a positive number")
    at = parse_time(step.get("at"), "step.at")
    submitted = data.get("submitted_at")
    outcome = _optional(data, "outcome")
    return SuggestionNews(
        kind=kind, topic_id=topic_id, suggestion_id=_string(data, "id"), title=_string(data, "title")[:TITLE_CHARS],
        seq=seq, at=at, submitted_at=parse_time(submitted, "submitted_at") if submitted is not None else at,
        outcome=outcome, solved=is_solved(outcome, data.get("outcome_classes")),
        note=_optional(step, "note"), actor=_optional(step, "actor"),
    )


def _converted(life: Life, news: SuggestionNews) -> Life:
    return replace(life, state=CONVERTED, suggestion_id=news.suggestion_id, suggestion_seq=0,
                   topic_title=news.title, converted_at=news.submitted_at, closed_at=None, close_note=None)


def on_suggestion(life: Life, news: SuggestionNews) -> Change | None:
    """The hotspot after a step of the suggestion born of its topic; None when it changes nothing.

    A suggestion's later step met before its `submitted` (a redelivery after a failure can pass the
    order) converts the hotspot as well: it carries the suggestion's whole state. The conversion is
    then told as that later step."""
    if life.state == MERGED:
        return None
    if life.suggestion_id is None:
        life = _converted(life, news)
        if news.kind == "submitted":
            return Change(replace(life, suggestion_seq=news.seq), "converted")
    if life.suggestion_id != news.suggestion_id or news.seq <= life.suggestion_seq:
        return None
    after = replace(life, suggestion_seq=news.seq, outcome=news.outcome or life.outcome)
    if news.kind == "closed":
        after = replace(after, state=CLOSED, closed_at=news.at, close_note=None)
        return Change(after, "solved" if news.solved else None)
    step = SUGGESTION_STEPS[news.kind]
    if news.kind == "submitted":
        step = None  # the conversion was told already
    return Change(after, step, news.note if step == "followed_up" else None)


# ---- closing -----------------------------------------------------------------------------------


def on_topic_closed(life: Life, note: str | None, at: datetime) -> Change | None:
    """The topic was closed in suggestions: an open hotspot closes; anything else stays as it is (a
    merged one lives on in the hotspot it was merged into, whose own topic is what counts)."""
    if life.state != OPEN:
        return None
    note = (note or "").strip()[:NOTE_CHARS] or None
    return Change(replace(life, state=CLOSED, closed_at=at, close_note=note), "closed", note)


def closure_refusal(life: Life) -> Refusal | None:
    if life.state == CONVERTED:
        return Refusal(409, "该共性事项已转为代表建议办理，不能在此关闭。")
    if life.state == CLOSED:
        return Refusal(409, "该共性事项已经关闭。")
    if life.state == MERGED:
        return Refusal(409, "该共性事项已并入其他共性事项。")
    return None


def staff_closure(life: Life, note: str, at: datetime) -> Change:
    """Staff close a cluster in routing; check `closure_refusal` first."""
    return Change(replace(life, state=CLOSED, closed_at=at, close_note=note), "closed", note)


# ---- staff corrections -------------------------------------------------------------------------


def split_refusal(state: str, members: Iterable[str], moving: Sequence[str]) -> Refusal | None:
    if state not in LIVING:
        return Refusal(409, "已关闭或已合并的共性事项不能拆分。")
    present = set(members)
    for i, report_id in enumerate(moving):
        if report_id not in present:
            return Refusal(422, "该反映不在这个共性事项中", f"report_ids[{i}]")
    if present <= set(moving):
        return Refusal(422, "不能把全部反映都拆出去：至少留下一件", "report_ids")
    return None


def merge_refusal(this_id: str, this: Life, this_county: str, other_id: str, other: Life,
                  other_county: str) -> Refusal | None:
    if this_id == other_id:
        return Refusal(409, "不能把共性事项并入它自己。")
    for life in (this, other):
        if life.state not in LIVING:
            return Refusal(409, "已关闭或已合并的共性事项不能合并。")
    if this.suggestion_id and other.suggestion_id and this.suggestion_id != other.suggestion_id:
        return Refusal(409, "两个共性事项都已转为代表建议，不能合并。")
    if this_county != other_county:
        return Refusal(422, "只能合并同一县（区）的共性事项", "hotspot_id")
    return None


def merged_life(this: Life, other: Life) -> Life:
    """The hotspot that takes another's reports takes its suggestion too, when it has none."""
    if this.suggestion_id is None and other.suggestion_id is not None:
        return replace(this, state=other.state, suggestion_id=other.suggestion_id,
                       suggestion_seq=other.suggestion_seq, topic_title=other.topic_title,
                       converted_at=other.converted_at, outcome=other.outcome)
    return this


def detected(times: Sequence[datetime], window: timedelta, threshold: int) -> bool:
    """Whether reports at these times make a hotspot: `threshold` of them within the window up to
    the latest (the rule `hotspots.place` applies as reports arrive)."""
    if not times:
        return False
    latest = max(times)
    return sum(1 for t in times if latest - window <= t <= latest) >= threshold


def earliest(members: Iterable[tuple[str, datetime]]) -> str | None:
    """The report a citizen supports for a hotspot: its first (ties: the smaller id)."""
    found = min(members, key=lambda m: (m[1], m[0]), default=None)
    return found[0] if found is not None else None


def shared_terms(terms: Sequence[str], counts: Mapping[str, int], at_least: int = 2) -> list[str]:
    """Of a hotspot's keywords or places, those at least two of its reports use: what anyone may
    see. A word only one citizen wrote may be a name or a detail of that one report."""
    return [t for t in terms if int(counts.get(t, 0)) >= at_least]


# ---- the event ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matter:
    """What every step says of the hotspot besides the step itself."""

    hotspot_id: str
    count: int
    supporters: int
    places: Sequence[str]
    keywords: Sequence[str]
    category: str


def progressed(matter: Matter, life: Life, step: Step, report_ids: Sequence[str], at: datetime,
               note: str | None = None) -> dict[str, Any]:
    """The data of `routing.hotspot.progressed`."""
    converted = life.suggestion_id is not None
    return {
        "hotspot_id": matter.hotspot_id, "step": step, "report_ids": list(dict.fromkeys(report_ids)),
        "count": matter.count, "supporters": matter.supporters, "places": list(matter.places),
        "keywords": list(matter.keywords), "category": matter.category,
        "topic_title": life.topic_title if converted else None,
        "suggestion_id": life.suggestion_id,
        "suggestion_title": life.topic_title if converted else None,
        "outcome": life.outcome if converted and life.outcome in OUTCOMES else None,
        "note": note, "at": at.isoformat(),
    }

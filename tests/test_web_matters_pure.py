"""What the pages about common matters (services/web/matters.py) decide without asking anyone: where a
report being written is searched for repeats, how a matter is named and listed, the me-too form, and
the sealed thank-you count."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from services.web import matters, report_form
from services.web.matter_calls import MatterMatch
from services.web.matters import SupportDraft


def match(hotspot_id: str = "h1", **over: object) -> MatterMatch:
    values: dict[str, object] = {
        "hotspot_id": hotspot_id, "report_id": "r1", "category": "municipal_facilities",
        "category_label": "市政设施", "region_code": "330151109", "places": ["淮海路与长山路交叉口"],
        "keywords": ["下水道", "堵塞", "污水"], "count": 6, "supporters": 0, "state": "open",
        "first_at": "2026-03-01T08:00:00+08:00", "last_at": "2026-03-05T09:30:00+08:00", "score": 0.8,
    }
    values.update(over)
    return MatterMatch.model_validate(values)


# ---- where and what is searched -------------------------------------------------------------------


@pytest.mark.parametrize(("code", "searched"), [
    ("330151", "330151"),
    ("330151109", "330151109"),
    ("330151001001", "330151001001"),
    # A grid is searched as its village: routing takes digits only.
    ("330151001001-G01", "330151001001"),
    # A city or province is wider than any matter (they are kept per county).
    ("3301", None), ("330100"[:4], None), ("", None), (None, None), ("abc", None),
    ("3301511090011", None),
])
def test_a_form_is_searched_in_its_own_region_down_to_the_village(code: str | None, searched: str | None) -> None:
    assert matters.search_region(code) == searched


def test_the_typed_place_is_searched_with_the_words_as_it_would_be_filed() -> None:
    assert matters.search_text("  下水道堵了 ", " 淮海路口 ") == "下水道堵了\n地点：淮海路口"
    assert matters.search_text("下水道堵了") == "下水道堵了"
    assert matters.search_text("", "淮海路口") == "地点：淮海路口"
    # The same words report_form files for a report without coordinates.
    draft = report_form.Draft(content="下水道堵了", address="淮海路口")
    filed = report_form.report_body(draft, channel="h5", code=None, region_code="330151", attachment_ids=[])
    assert filed["content"] == matters.search_text(draft.content, draft.address)
    assert len(matters.search_text("堵" * 6000)) == matters.MAX_SEARCH_CHARS


def test_a_few_characters_are_not_searched() -> None:
    assert matters.MIN_SEARCH_CHARS == 6
    assert not matters.worth_searching("下水道堵了")
    assert not matters.worth_searching("   下水道堵了   ")
    assert matters.worth_searching("下水道堵了！")


@pytest.mark.parametrize(("lat", "lon", "point"), [
    ("30.1", "120.2", (30.1, 120.2)), ("", "", None), ("30.1", "", None), ("x", "120", None),
    ("91", "120", None), ("30", "181", None),
])
def test_a_position_is_sent_only_when_both_halves_make_sense(lat: str, lon: str,
                                                              point: tuple[float, float] | None) -> None:
    assert matters.coordinates(lat, lon) == point


# ---- how a matter is named and listed ---------------------------------------------------------------


def test_a_matter_is_named_by_its_places_else_by_its_words() -> None:
    assert matters.title(["淮海路口", "长山路口", "东门", "西门"], ["下水道"]) == "淮海路口、长山路口、东门"
    assert matters.title([], ["下水道", "堵塞", "污水", "臭味", "夜间"]) == "下水道、堵塞、污水、臭味"
    assert matters.title([], []) == "共性事项"


def test_counts_name_supporters_only_when_there_are_some() -> None:
    assert matters.counts_text(6, 0) == "已有 6 人反映"
    assert matters.counts_text(6, 2) == "已有 6 人反映 · 2 人附议"


def test_states_in_plain_words() -> None:
    assert matters.state_label("open") == "处理中"
    assert matters.state_label("converted") == "已列为监督议题"
    assert matters.state_label("closed") == "已办结"


def test_matches_are_listed_with_where_what_how_many_and_the_way_to_support() -> None:
    views = matters.match_views([match(supporters=2), match("h2", state="converted", places=[]),
                                 match("h3", state="closed")])
    assert [v.hotspot_id for v in views] == ["h1", "h2"]  # a closed matter takes no more support
    first, second = views
    assert first.title == "淮海路与长山路交叉口"
    assert first.category == "市政设施"
    assert first.counts == "已有 6 人反映 · 2 人附议"
    assert (first.state, first.state_key) == ("处理中", "open")
    assert first.last_at == "2026-03-05T09:30:00+08:00"
    assert first.href == "/matters/h1"
    assert second.title == "下水道、堵塞、污水"
    assert second.state == "已列为监督议题"
    # From a kiosk the matter's page stays a kiosk page (its idle reset, its way home).
    assert matters.match_views([match()], kiosk="K1234")[0].href == "/matters/h1?kiosk=K1234"


def test_a_kiosk_code_is_kept_only_when_it_looks_like_one() -> None:
    assert matters.kiosk_code("Abc123") == "Abc123"
    assert matters.kiosk_code("a/b") is None
    assert matters.kiosk_code("") is None
    assert matters.kiosk_code(None) is None


@dataclass
class Place:
    code: str
    name: str


def test_a_matter_is_placed_from_its_county_down() -> None:
    path = [Place("330000", "演示省"), Place("330100", "演示市"), Place("330151", "演示区"),
            Place("330151109", "三墩镇")]
    assert matters.place_name(path) == "演示区三墩镇"
    assert matters.place_name([]) == ""


# ---- the me-too form --------------------------------------------------------------------------------


def test_the_me_too_form_is_read_trimmed_and_anonymous_unless_real_is_chosen() -> None:
    draft = matters.read_support({"identity": "real", "name": " 张三 ", "phone": " 139 0000 1111 ",
                                  "consent": "yes", "idem": "a" * 32, "kiosk": "K1234"})
    assert (draft.anonymous, draft.name, draft.phone, draft.consent) == (False, "张三", "139 0000 1111", True)
    assert draft.idempotency_key == "a" * 32 and draft.kiosk == "K1234"
    assert matters.read_support({}).anonymous is True
    assert matters.read_support({"identity": "anything"}).anonymous is True
    assert matters.read_support({"kiosk": "../x"}).kiosk is None


def test_an_anonymous_me_too_needs_nothing_more() -> None:
    assert matters.check_support(SupportDraft(anonymous=True, name="<x>", phone="1")) == {}


def test_a_real_name_me_too_is_checked_in_the_report_forms_words() -> None:
    bad = SupportDraft(anonymous=False, name="", phone="12345", consent=False)
    errors = matters.check_support(bad)
    assert set(errors) == {"name", "phone", "consent"}
    report = report_form.check(report_form.Draft(content="路灯不亮", anonymous=False, name="", phone="12345"))
    assert errors == {k: report[k] for k in ("name", "phone", "consent")}
    assert "11 位手机号" in errors["phone"]
    assert matters.check_support(SupportDraft(anonymous=False, name="李<四>", phone="13900001111",
                                              consent=True)) == {"name": "姓名最多 50 个字，不能含有尖括号。"}
    assert matters.check_support(SupportDraft(anonymous=False, name="李四", phone="0571-88886666",
                                              consent=True)) == {}


def test_the_me_too_body_is_what_intake_takes() -> None:
    assert matters.support_body(SupportDraft()) == {"anonymous": True, "channel": "h5"}
    real = SupportDraft(anonymous=False, name="李四", phone="139 0000 1111", consent=True, kiosk="K1234")
    assert matters.support_body(real) == {"anonymous": False, "channel": "kiosk",
                                          "reporter": {"name": "李四", "phone": "13900001111"}}


@pytest.mark.parametrize(("intake_field", "form_field"), [
    ("reporter.name", "name"), ("reporter.phone", "phone"), ("reporter", "name"), ("anonymous", "identity"),
    ("channel", "form"), ("reporter.id_number", "form"), ("", "form"),
])
def test_intakes_field_errors_land_on_the_me_too_forms_fields(intake_field: str, form_field: str) -> None:
    assert matters.support_error_field(intake_field) == form_field


# ---- the thank-you ------------------------------------------------------------------------------


def test_the_thank_you_count_opens_only_for_its_matter_and_unaltered() -> None:
    thanks = matters.Thanks(b"s" * 32)
    sealed = thanks.seal("h1", 3)
    assert thanks.open(sealed, "h1") == 3
    assert thanks.open(sealed, "h2") is None
    assert thanks.open(sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1], "h1") is None
    assert thanks.open("3", "h1") is None
    assert thanks.open(None, "h1") is None
    assert matters.Thanks(b"t" * 32).open(sealed, "h1") is None
    assert matters.thanks_text(3) == "感谢您的附议，已有 3 人附议。"

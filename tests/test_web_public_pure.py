"""The public statistics' figures (services/web/stats.py) and the server-drawn charts (charts.py)."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from services.web import charts, stats
from services.web.upstreams import MonthStats

SVG = "{http://www.w3.org/2000/svg}"


def month(name: str, **counts: int) -> MonthStats:
    return MonthStats(month=name, **counts)


# ---- rates and the minimum sample ----------------------------------------------------------------


def test_a_rate_is_shown_from_the_minimum_sample() -> None:
    assert stats.MIN_SAMPLE == 10
    shown = stats.Rate(9, 10)
    assert shown.enough
    assert shown.value == pytest.approx(0.9)
    assert shown.text == "90.0%"
    assert shown.counts == "9/10"
    hidden = stats.Rate(9, 9)
    assert not hidden.enough
    assert hidden.value is None
    assert hidden.text == "样本不足"


def test_no_sample_at_all_is_not_a_division_by_zero() -> None:
    empty = stats.Rate(0, 0)
    assert empty.value is None and empty.text == "样本不足"
    assert stats.Rate(0, 0, minimum=0).value is None


def test_whole_rates_read_without_decimals() -> None:
    assert stats.Rate(12, 12).text == "100%"
    assert stats.Rate(0, 12).text == "0%"
    assert stats.Rate(2, 3, minimum=1).text == "66.7%"


def test_open_overdue_reports_count_against_the_on_time_rate() -> None:
    # 20 answered in time, 5 answered late, 5 still open past their deadline: intake counts 30 decided.
    row = stats.month_row(month("2026-11", received=40, reply_decided=30, reply_on_time=20, open_overdue=5))
    assert row.reply.denominator == 30
    assert row.reply.text == "66.7%"
    # Counting the closed ones only (25) would have said 80.0%: the page must not.
    assert row.reply.text != stats.Rate(20, 25).text
    assert row.open_overdue == 5


def test_each_rate_has_its_own_denominator() -> None:
    row = stats.month_row(month("2026-11", received=50, ack_decided=48, ack_on_time=45, reply_decided=40,
                                reply_on_time=30, rated=9, satisfied=9, closed=35))
    assert row.ack.text == "93.8%"
    assert row.reply.text == "75.0%"
    assert row.satisfaction.text == "样本不足"  # 9 ratings are too few
    assert row.solved.text == "70.0%"  # closed / received


# ---- months --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "label", "short"), [
    ("2026-11", "2026年11月", "11月"),
    ("2026-01", "2026年1月", "1月"),
    ("2026-03-01", "2026年3月", "3月"),
    ("2026-3", "2026年3月", "3月"),
    ("somewhen", "somewhen", "somewhen"),
    ("2026-13", "2026-13", "2026-13"),
])
def test_month_labels_in_chinese(raw: str, label: str, short: str) -> None:
    assert stats.month_label(raw) == label
    assert stats.short_month_label(raw) == short


def test_the_table_runs_oldest_first_with_chinese_months() -> None:
    rows = stats.monthly_table([month("2026-12", received=3), month("2026-10", received=1),
                                month("2026-11", received=2)])
    assert [r.label for r in rows] == ["2026年10月", "2026年11月", "2026年12月"]
    assert [r.received for r in rows] == [1, 2, 3]
    assert rows[0].year_label == "2026年"
    assert stats.period_label(rows) == "2026年10月至2026年12月"
    assert stats.period_label(rows[:1]) == "2026年10月"
    assert stats.period_label([]) == ""


def test_the_total_adds_counts_and_takes_rates_over_the_sums() -> None:
    months = [month("2026-10", received=8, reply_decided=8, reply_on_time=8, open_overdue=1),
              month("2026-11", received=12, reply_decided=12, reply_on_time=3, open_overdue=2)]
    total = stats.total_row(months)
    assert total.label == "合计"
    assert total.received == 20
    assert total.open_overdue == 3
    # 11 of 20, not the mean of 100% and 25%.
    assert total.reply.text == "55.0%"
    # A month below the minimum on its own still counts in the total.
    assert stats.monthly_table(months)[0].reply.text == "样本不足"


def test_summaries_say_in_words_what_the_charts_show() -> None:
    rows = stats.monthly_table([month("2026-10", received=30, ack_decided=28, ack_on_time=26),
                                month("2026-11", received=8, ack_decided=12, ack_on_time=12)])
    received = stats.received_summary(rows)
    assert "共收到反映 38 件" in received and "2026年10月（30 件）" in received and "2026年11月收到 8 件" in received
    rates = stats.rates_summary(rows)
    assert "2026年11月" in rates and "100%" in rates and "样本不足" in rates
    assert stats.received_summary([]) == stats.rates_summary([]) == "这段时间没有数据。"


# ---- stars and points ----------------------------------------------------------------------------


def test_stars_as_text() -> None:
    assert stats.stars_text(3, most=5) == "★★★☆☆"
    assert stats.stars_text(3) == "★★★" + "☆" * 7
    assert stats.stars_text(12) == "★" * 10
    assert stats.stars_text(-1, most=5) == "☆" * 5


def test_stars_in_fives() -> None:
    assert stats.star_groups(3) == ["★★★☆☆", "☆☆☆☆☆"]
    assert stats.star_groups(7) == ["★★★★★", "★★☆☆☆"]
    assert stats.star_groups(4, most=5) == ["★★★★☆"]


@pytest.mark.parametrize(("points", "text"), [(90.0, "90"), (86.5, "86.5"), (101.25, "101.25"), (0.0, "0"),
                                              (-0.001, "0"), (1234567.0, "1234567")])
def test_points_as_text(points: float, text: str) -> None:
    assert stats.points_text(points) == text


# ---- charts --------------------------------------------------------------------------------------


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def bars(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}rect[@class='pub-bar']")


def child(element: ET.Element, tag: str) -> ET.Element:
    found = element.find(f"{SVG}{tag}")
    assert found is not None, tag
    return found


def assert_named(root: ET.Element, chart_id: str, title: str) -> None:
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == f"{chart_id}-title {chart_id}-desc"
    assert child(root, "title").text == title
    assert child(root, "title").get("id") == f"{chart_id}-title"
    assert child(root, "desc").get("id") == f"{chart_id}-desc"
    assert child(root, "desc").text


def numbers(svg: str) -> list[str]:
    """Every numeric attribute value in the markup."""
    return re.findall(r'(?<![\w-])(?:x|y|x1|y1|x2|y2|cx|cy|width|height|r)="([^"]*)"', svg)


@pytest.mark.parametrize("count", [1, 2, 12, 36])
def test_one_bar_for_each_month(count: int) -> None:
    values = [(i * 7) % 23 for i in range(count)]
    svg = charts.bar_chart("c", [f"{i + 1}月" for i in range(count)], values, title="每月收到", description="说明")
    root = parse(svg)
    assert len(bars(root)) == count
    assert_named(root, "c", "每月收到")


def test_bar_heights_are_in_proportion_to_the_values() -> None:
    values = [10, 20, 5, 0, 40]
    root = parse(charts.bar_chart("c", list("abcde"), values, title="t", description="d"))
    heights = [float(b.get("height", "nan")) for b in bars(root)]
    assert heights[3] == 0
    for value, height in zip(values, heights, strict=True):
        assert height == pytest.approx(heights[4] * value / 40, abs=0.11)
    # Every bar stands on the same axis.
    bottoms = {round(float(b.get("y", "0")) + float(b.get("height", "0")), 1) for b in bars(root)}
    assert len(bottoms) == 1


def test_bars_carry_their_month_and_count_for_pointing_at() -> None:
    root = parse(charts.bar_chart("c", ["10月", "11月"], [30, 8], groups=["2026年", "2026年"], title="t",
                                  description="d"))
    tips = [child(b, "title").text for b in bars(root)]
    assert tips == ["2026年10月：30 件", "2026年11月：8 件"]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "30" in texts and "8" in texts
    # The year is said once under the axis, not under every month.
    assert texts.count("2026年") == 1


def test_all_zero_and_empty_data_draw_without_nan() -> None:
    for values in ([0, 0, 0], []):
        svg = charts.bar_chart("z", ["1月", "2月", "3月"][: len(values)], values, title="t", description="d")
        root = parse(svg)
        assert len(bars(root)) == len(values)
        assert all(math.isfinite(float(n)) for n in numbers(svg))
        assert "nan" not in svg.lower() and "inf" not in svg.lower()
    line = charts.rate_chart("r", ["1月", "2月"], [charts.Series("受理", [None, None])], title="t", description="d")
    assert "nan" not in line.lower()
    assert not parse(line).findall(f".//{SVG}polyline")


def test_titles_and_labels_are_escaped() -> None:
    svg = charts.bar_chart('a"b', ["<1月>"], [1], title="A & B <c>", description='"d"')
    root = parse(svg)
    assert child(root, "title").text == "A & B <c>"
    assert "<1月>" in [t.text for t in root.iter(f"{SVG}text")]


def test_the_axis_top_is_round_and_above_the_largest_bar() -> None:
    assert charts.nice_top(0) == 2
    assert charts.nice_top(1) == 2
    assert charts.nice_top(3) == 4
    assert charts.nice_top(30) == 40
    assert charts.nice_top(123) == 200
    assert charts.nice_top(1000) == 1000
    for largest in (3, 7, 11, 45, 99, 101, 999, 5001):
        top = charts.nice_top(largest)
        assert top >= largest and top % 2 == 0


def test_many_months_name_only_some_on_the_axis() -> None:
    labels = [f"{i % 12 + 1}月" for i in range(36)]
    root = parse(charts.bar_chart("c", labels, list(range(36)), title="t", description="d"))
    named = [t.text for t in root.iter(f"{SVG}text") if t.text and t.text.endswith("月")]
    assert 1 < len(named) <= charts.MAX_AXIS_LABELS


def test_rate_lines_break_where_a_month_has_too_few_reports() -> None:
    values: list[float | None] = [0.9, 0.95, None, 0.5, 1.0]
    svg = charts.rate_chart("r", list("abcde"), [charts.Series("2个工作日内受理", values),
                                                 charts.Series("7个工作日内答复", [0.8] * 5)],
                            title="按时的比例", description="说明")
    root = parse(svg)
    assert_named(root, "r", "按时的比例")
    lines = root.findall(f".//{SVG}polyline")
    # The first series in two pieces around the gap, the second unbroken.
    assert [len(p.get("points", "").split()) for p in lines] == [2, 2, 5]
    # The two lines differ by dash and by marker shape, not by colour alone.
    assert lines[0].get("stroke-dasharray") is None and lines[2].get("stroke-dasharray")
    legend = [t.text for t in root.iter(f"{SVG}text")]
    assert "2个工作日内受理" in legend and "7个工作日内答复" in legend
    assert root.findall(f".//{SVG}circle") and root.findall(f".//{SVG}rect[@class='pub-point']")


def test_rate_points_sit_at_their_height() -> None:
    root = parse(charts.rate_chart("r", ["a", "b", "c"], [charts.Series("受理", [0.0, 0.5, 1.0])], title="t",
                                   description="d"))
    ys = [float(c.get("cy", "nan")) for c in root.findall(f".//{SVG}circle[@class='pub-point']")]
    assert len(ys) == 3
    assert ys[0] > ys[1] > ys[2]
    assert ys[0] - ys[1] == pytest.approx(ys[1] - ys[2], abs=0.11)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        charts.bar_chart("c", ["a"], [1, 2], title="t", description="d")
    with pytest.raises(ValueError):
        charts.rate_chart("r", ["a"], [charts.Series("s", [0.1, 0.2])], title="t", description="d")

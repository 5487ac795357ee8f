"""The Studio's SVG charts: the numbers drawn are the numbers given, labels are escaped."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from stich.studio.charts import bar_chart, daily_chart

DAYS = [date(2026, 11, 1) + timedelta(days=i) for i in range(5)]


def _values(html: str, attribute: str = "data-value") -> list[int]:
    return [int(v) for v in re.findall(rf'<circle[^>]* {attribute}="(\d+)"', html)]


def test_daily_chart_plots_every_value_of_every_series() -> None:
    html = str(daily_chart("Activity", DAYS, {"Views": [0, 3, 7, 2, 10], "Stars": [1, 0, 0, 4, 0]}))
    assert _values(html) == [0, 3, 7, 2, 10, 1, 0, 0, 4, 0]
    assert 'data-day="2026-11-03" data-value="7"' in html
    assert "<title>Views, 2026-11-05: 10</title>" in html
    # The table repeats the numbers, one row per day, one column per series.
    table = html.split("<table", 1)[1]
    assert "<th>Day</th><th>Views</th><th>Stars</th>" in table
    assert '<td>2026-11-04</td><td class="text-end" data-value="2">2</td>' in table
    assert "(22)" in html and "(5)" in html  # legend totals
    assert 'data-chart="Activity"' in html


def test_point_heights_follow_the_values() -> None:
    html = str(daily_chart("One", DAYS, {"Views": [0, 5, 10, 5, 0]}))
    ys = [float(y) for y in re.findall(r'<circle[^>]* cy="([\d.]+)"', html)]
    assert ys[0] == ys[4] > ys[1] == ys[3] > ys[2]


def test_labels_and_titles_are_escaped() -> None:
    html = str(
        daily_chart("<b>t</b>", DAYS[:1], {'<script>"x"</script>': [1]}, key="k&<")
        + bar_chart("<i>bars</i>", [("<img src=x onerror=alert(1)>", 3)])
    )
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "<i>" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html
    assert 'data-chart="k&amp;&lt;"' in html


def test_empty_inputs_render_without_error() -> None:
    empty_days = str(daily_chart("Nothing", [], {"Views": []}))
    assert "No data" in empty_days and "<circle" not in empty_days
    no_series = str(daily_chart("No series", DAYS, {}))
    assert "<circle" not in no_series and "<table" in no_series
    zeros = str(daily_chart("Zeros", DAYS, {"Views": [0] * 5}))
    assert _values(zeros) == [0] * 5
    no_bars = str(bar_chart("No bars", []))
    assert "No data" in no_bars and "<rect" not in no_bars


def test_a_series_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="3 values for 5 days"):
        daily_chart("Bad", DAYS, {"Views": [1, 2, 3]})


def test_bar_chart_draws_one_bar_per_item_in_order() -> None:
    html = str(bar_chart("Referrers", [("google.com", 40), ("direct", 10), ("x.com", 0)]))
    bars = re.findall(r'<rect[^>]* data-label="([^"]*)" data-value="(\d+)"', html)
    assert bars == [("google.com", "40"), ("direct", "10"), ("x.com", "0")]
    widths = [float(w) for w in re.findall(r'<rect[^>]* width="([\d.]+)"', html)]
    assert widths[0] == 4 * widths[1] and widths[2] == 0
    assert '<td>direct</td><td class="text-end" data-value="10">10</td>' in html


def test_bar_kind_draws_one_column_per_day_and_series_side_by_side() -> None:
    html = str(
        daily_chart(
            "Apps", DAYS, {"Created": [0, 2, 1, 4, 0], "Published": [0, 1, 1, 2, 0]}, kind="bar"
        )
    )
    columns = re.findall(r'<rect x="([\d.]+)"[^>]* height="([\d.]+)"[^>]* data-value="(\d+)"', html)
    assert [int(v) for _, _, v in columns] == [0, 2, 1, 4, 0, 0, 1, 1, 2, 0]
    heights = [float(h) for _, h, _ in columns]
    assert heights[3] == 2 * heights[1] == 4 * heights[2] and heights[0] == 0
    # The second series' column of a day stands just right of the first's, inside the day.
    xs = [float(x) for x, _, _ in columns]
    assert all(xs[i] < xs[i + 5] < xs[i + 1] for i in range(4))
    assert "<circle" not in html and 'data-day="2026-11-04" data-value="4"' in html

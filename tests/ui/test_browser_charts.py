"""The endpoint charts in real headless Chromium: a missing window breaks the line instead of
bridging it, a reader hides and shows a series from its legend, and the champion's line is
drawn apart from a challenger's. Screenshots go to test-artifacts/ui/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui import scenario
from tests.ui.test_browser import CHROMIUM, browser, live, session  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium is not at {CHROMIUM}"),
]

HOUR = 3600


def test_a_missing_window_breaks_the_line(browser, live):  # noqa: F811
    """Guards against two runs 30 minutes apart drawn as one slow trend."""
    with session(browser, live, "viewer") as s:
        s.go(f"/endpoints/{scenario.ENDPOINT}")
        moves = s.page.evaluate(
            """([h]) => {
              const box = document.createElement("div");
              document.body.appendChild(box);
              const spec = {series: [
                {name: "live · champion", x: [0, h, 2 * h, 10 * h, 11 * h], y: [.8, .8, .7, .9, .9],
                 step: h},
                {name: "live · canary", x: [0, h, 2 * h], y: [.7, .75, .7]}]};
              window.loopmlCharts.lineChart(box, spec, null);
              return Array.from(box.querySelectorAll("path.series")).map(
                p => [p.getAttribute("data-series"), (p.getAttribute("d").match(/M/g) || []).length,
                      p.getAttribute("stroke-width"), p.getAttribute("stroke-dasharray")]);
            }""",
            [HOUR],
        )
        assert moves == [
            ["live · champion", 2, "2.4", None],  # two runs of windows: two segments, solid
            ["live · canary", 1, "1.6", "7 4"],  # contiguous: one segment, dashed
        ]
        assert s.errors == [], s.errors


def test_a_reader_hides_and_shows_a_series_from_the_legend(browser, live):  # noqa: F811
    with session(browser, live, "viewer") as s:
        s.go(f"/endpoints/{scenario.ENDPOINT}")
        fig = s.page.locator("figure[data-chart='accuracy']")
        toggles = fig.locator(".legend button.legend-item")
        assert toggles.count() >= 2  # live and estimated, at least for the champion
        name = toggles.first.inner_text().strip()
        line = fig.locator(f"path.series[data-series='{name}']")
        assert line.is_visible()
        toggles.first.click()
        assert not line.is_visible() and toggles.first.get_attribute("aria-pressed") == "false"
        assert fig.locator("path.series:visible").count() >= 1  # the others stay
        s.shot("endpoint-series-hidden")
        toggles.first.click()
        assert line.is_visible()
        assert s.errors == [], s.errors

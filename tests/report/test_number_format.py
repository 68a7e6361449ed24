"""How the reports print numbers: percentages, intervals, gaps, mean ± SD, durations."""

from __future__ import annotations

from leukoreport.report.number_format import (
    accuracy_text,
    estimate,
    gap_estimate,
    hms,
    lr,
    mean_sd,
    num,
    pct,
    pct1,
    seconds,
)


def test_plain_numbers():
    assert pct(0.99467) == "99.47%" and pct1(0.99467) == "99.5%"
    assert pct(None) == "—" and num(None) == "—" and num(float("nan")) == "—"
    assert accuracy_text(373 / 375, 373, 375) == "99.47% (373/375)"
    assert hms(812.4) == "0:13:32" and seconds(812.43) == "812.4 s"
    assert lr(1e-4) == "0.0001"
    assert str(mean_sd([0.9, 1.0], "pct")) == "95.00% ± 7.07"
    assert str(mean_sd([0.9], "pct")) == "—"


def test_interval_text_matches_the_issue_examples():
    # Wilson 373/375 = [0.98077, 0.99854], 9/9 = [0.70085, 1.0]
    assert str(estimate(373 / 375, 0.98077, 0.99854)) == "99.5% [98.1–99.9]"
    assert str(estimate(1.0, 0.700855, 1.0)) == "100.0% [70.1–100.0]"
    assert str(estimate(1.0, None, None)) == "100.0% [n/a]"
    assert str(estimate(None, 0.1, 0.2)) == "—"
    assert str(estimate(0.5, 0.25, 0.75, kind="num")) == "0.500 [0.250–0.750]"


def test_gap_text_is_signed_percentage_points():
    assert str(gap_estimate(-0.0861, -0.352, 0.013)) == "\u22128.6 pp [\u221235.2 to +1.3]"
    assert str(gap_estimate(0.0, -0.1, 0.1)) == "+0.0 pp [\u221210.0 to +10.0]"
    assert str(gap_estimate(0.02, None, 0.1)) == "+2.0 pp [n/a]"

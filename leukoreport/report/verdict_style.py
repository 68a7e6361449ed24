"""How a verdict looks in the reports (a variant against the reference, a claim of the paper): its CSS class (HTML
and PDF) and its colour (figures)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VERDICT_STYLES", "VerdictStyle", "verdict_style"]


@dataclass(frozen=True)
class VerdictStyle:
    """CSS class, figure colour and text colour of one verdict."""

    css: str
    colour: str  # marks and bars in figures
    text: str  # verdict text in the HTML and PDF (style.css)


VERDICT_STYLES: dict[str | None, VerdictStyle] = {
    "better": VerdictStyle("better", "#1a7f37", "#1a7f37"),
    "worse": VerdictStyle("worse", "#b42318", "#b42318"),
    "no difference detected": VerdictStyle("none", "#333333", "#555555"),
    None: VerdictStyle("reference", "#777777", "#555555"),
    # verdicts on a paper's claims (stats.claims.VERDICTS): only the two decided ones are coloured
    "reproduced": VerdictStyle("reproduced", "#1a7f37", "#1a7f37"),
    "not reproduced": VerdictStyle("not-reproduced", "#b42318", "#b42318"),
    "inconclusive": VerdictStyle("inconclusive", "#777777", "#555555"),
    "not comparable": VerdictStyle("not-comparable", "#777777", "#555555"),
    "not testable": VerdictStyle("not-testable", "#777777", "#555555"),
}


def verdict_style(verdict: str | None) -> VerdictStyle:
    """The style of `verdict`; the reference run (no verdict) and unknown verdicts get the reference style."""
    return VERDICT_STYLES.get(verdict, VERDICT_STYLES[None])

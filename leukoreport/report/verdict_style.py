"""How a verdict looks in the reports: its CSS class (HTML and PDF) and its colour (figures)."""

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
}


def verdict_style(verdict: str | None) -> VerdictStyle:
    """The style of `verdict`; the reference run (no verdict) and unknown verdicts get the reference style."""
    return VERDICT_STYLES.get(verdict, VERDICT_STYLES[None])

"""Tests for leukoreport.report.sections.claims: the Claims section, the deviations table and the checklist appendix
show the numbers of the claims files; the report's sections are renumbered around it; the summary stays two pages."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.report import render
from leukoreport.report.sections.claims import checklist_section, claims_section, rerun_text, summary_claims
from leukoreport.report.verdict_style import VERDICT_STYLES, verdict_style

SEEDS = (3, 11)
DATASETS = ("test", "ext")


def _headings(html: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", html)


@pytest.fixture(scope="module")
def with_claims(tmp_path_factory, make_fake_results, render_fake):
    """A fake results folder with the claims files, its report context and HTML."""
    results = make_fake_results(tmp_path_factory.mktemp("claims"), seeds=SEEDS, datasets=DATASETS)
    return results, *render_fake(results, SEEDS, DATASETS)


def test_rows_show_the_numbers_of_claims_json(with_claims):
    results, ctx, _ = with_claims
    data = json.loads((results / "summary" / "claims.json").read_text())
    rows = ctx["claims"]["rows"]
    assert [r["id"] for r in rows] == [c["id"] for c in data["claims"]]
    for r, c in zip(rows, data["claims"]):
        assert r["claimed"] == c["claimed"] and r["evidence"] == c["evidence"] and r["reason"] == c["reason"]
        assert r["label"] == (f"{c['verdict']} ({c['direction']})" if c["direction"] else c["verdict"])
        assert r["css"] == c["verdict"].replace(" ", "-")
        assert r["needs"] == (c["needs"] if c["verdict"] == "inconclusive" else "")
    by_id = {r["id"]: r for r in rows}
    for c in data["claims"]:  # the judge's own text where it wrote one
        assert not c["rerun"] or (by_id[c["id"]]["rerun"], by_id[c["id"]]["seeds"]) == (c["rerun"], "")
    errors = next(c for c in data["claims"] if c["id"] == "test_errors")  # no text: from the numbers, by hand
    assert by_id["test_errors"]["rerun"] == f"{errors['rerun_value']:g} [{errors['low']:g}–{errors['high']:g}]"
    assert by_id["test_errors"]["seeds"] == f"seeds {errors['seed_min']:g}–{errors['seed_max']:g} ({len(SEEDS)} runs)"
    assert by_id["no_confusion"]["rerun"] == "no pair above 5%" and by_id["no_confusion"]["seeds"] == ""
    assert by_id["clinical_grade"]["rerun"] == "—"
    counts = {c["verdict"]: c["n"] for c in ctx["claims"]["counts"]}
    assert counts == {v: n for v, n in data["counts"].items() if n} and ctx["claims"]["n_claims"] == len(data["claims"])
    assert ctx["claims"]["level"] == "95%"


def test_deviations_and_checklist_come_from_their_csv(with_claims):
    results, ctx, html = with_claims
    dev = pd.read_csv(results / "summary" / "deviations.csv", dtype=str, keep_default_na=False)
    rows = ctx["claims"]["deviations"]
    assert [(r["item"], r["declared"], r["rerun"], r["status"]) for r in rows] == \
        list(zip(dev["item"], dev["declared"], dev["rerun"], dev["status"]))
    assert [r["how"] for r in rows] == [h if s == "different" else "" for h, s in zip(dev["how"], dev["status"])]
    assert ctx["claims"]["n_different"] == int((dev["status"] == "different").sum())
    check = pd.read_csv(results / "summary" / "checklist.csv", dtype=str)
    assert ctx["checklist"]["n"] == len(check) == 44
    assert ctx["checklist"]["n_run"] == int((check["answered_by"] == "this run").sum())
    assert [r["item"] for r in ctx["checklist"]["rows"]] == list(check["item"])
    for r in check.itertuples():
        assert f'<td class="num">{r.item}</td><td>{r.topic}</td>' in html
    for r in dev.itertuples():
        assert r.rerun in html


def test_claims_is_section_one_and_the_rest_is_renumbered(with_claims, fake_split_seed):
    results, ctx, html = with_claims
    heads = _headings(html)
    assert heads[:4] == ["1. Claims", "2. Run summary", "3. Data", "4. Leakage audit"]
    assert "9. Model card" in heads and f"10. {ctx['seeds'][0]['title']}" in heads
    assert [s["number"] for s in ctx["seeds"]] == [10, 11]
    assert heads[-1] == "Appendix. Reviewer checklist (CLAIM 2024)"
    # the validity subsections (HTML only in the PDF) and the model card's pointer to the data section
    assert '<h3 class="html-only">8.1 Test split (reference)</h3>' in html and "(section 3)" in html
    assert "results/summary/claims.csv" in html and "results/summary/deviations.csv" in html
    for c in ctx["claims"]["rows"]:
        assert f'<span class="verdict {c["css"]}">{c["label"]}</span>' in html
        assert c["rerun"] in html and (not c["seeds"] or c["seeds"] in html)
    assert html.index('id="claims"') < html.index('id="run"') < html.index('id="checklist"')


def test_without_claims_json_the_section_is_absent(tmp_path, make_fake_results, render_fake):
    results = make_fake_results(tmp_path, seeds=(1,), datasets=("test",), claims=False)
    assert not (results / "summary" / "claims.json").exists()
    ctx, html = render_fake(results, (1,), ("test",), config={})
    heads = _headings(html)
    assert ctx["claims"] is None and heads[:3] == ["1. Run summary", "2. Data", "3. Leakage audit"]
    assert "8. Model card" in heads and [s["number"] for s in ctx["seeds"]] == [9]
    assert 'id="claims"' not in html and heads[-1] == "Appendix. Reviewer checklist (CLAIM 2024)"
    assert '<h3 class="html-only">7.1 Test split (reference)</h3>' in html and "(section 2)" in html
    summary, html = render_fake(results, (1,), ("test",), "summary", config={})
    assert summary["claims"] is None and _headings(html)[0] == "1. Model and training"
    (results / "summary" / "checklist.csv").unlink()
    assert checklist_section(results / "summary") is None
    assert 'id="checklist"' not in render_fake(results, (1,), ("test",), config={})[1]


def test_summary_opens_with_the_claims_and_stays_two_pages(with_claims, tmp_path, render_fake):
    from pypdf import PdfReader

    results, ctx, _ = with_claims
    summary, html = render_fake(results, SEEDS, DATASETS, "summary")
    assert summary["claims"] == summary_claims(ctx["claims"])
    heads = _headings(html)
    assert heads[0] == "1. Claims of the paper against this rerun" and heads[1] == "2. Model and training"
    assert heads[-1] == "9. Limitations"
    for r in summary["claims"]["rows"]:
        assert r["text"] in html and r["rerun"] in html and f'<span class="verdict {r["css"]}">' in html
    render.write_html(html, tmp_path / "summary.html")
    render.write_pdf(tmp_path / "summary.html", tmp_path / "summary.pdf")
    assert len(PdfReader(tmp_path / "summary.pdf").pages) <= 2


def test_bad_claims_files_stop_with_one_line(tmp_path, write_claims):
    folder = tmp_path
    write_claims(folder, 2)
    path = folder / "claims.json"
    data = json.loads(path.read_text())
    data["claims"][1]["verdict"] = "plausible"
    path.write_text(json.dumps(data))
    with pytest.raises(LeukoError, match=r"claims\.json: claim 'test_errors': verdict 'plausible' is not one of"):
        claims_section(folder)
    del data["claims"][1]["reason"]
    path.write_text(json.dumps(data))
    with pytest.raises(LeukoError, match=r"claims\.json: claim 'test_errors': missing key\(s\) \['reason'\]"):
        claims_section(folder)
    write_claims(folder, 2)
    dev = pd.read_csv(folder / "deviations.csv")
    dev.loc[0, "status"] = "similar"
    dev.to_csv(folder / "deviations.csv", index=False)
    with pytest.raises(LeukoError, match=r"deviations\.csv: column 'status': \['similar'\]"):
        claims_section(folder)
    (folder / "deviations.csv").unlink()
    with pytest.raises(LeukoError, match=r"deviations\.csv: file not found"):
        claims_section(folder)
    pd.DataFrame({"item": [1], "topic": ["x"]}).to_csv(folder / "checklist.csv", index=False)
    with pytest.raises(LeukoError, match=r"checklist\.csv: missing column"):
        checklist_section(folder)


def test_rerun_text_units():
    base = {"claimed": "0.98", "rerun": "", "rerun_value": 0.9512, "low": None, "high": None, "seed_min": 0.94,
            "seed_max": 0.96, "n_seeds": 3}
    assert rerun_text(base) == ("0.951", "seeds 0.94–0.96 (3 runs)")
    assert rerun_text({**base, "claimed": "98%", "n_seeds": 1}) == ("95.1%", "one run")
    assert rerun_text({**base, "low": 0.9, "high": 0.97, "n_seeds": 0}) == ("0.951 [0.9–0.97]", "")
    assert rerun_text({**base, "rerun_value": None, "rerun": "identical"}) == ("identical", "")
    assert rerun_text({**base, "rerun": "95.1%, seeds 94.0–96.0"}) == ("95.1%, seeds 94.0–96.0", "")
    assert rerun_text({**base, "rerun_value": None}) == ("—", "")


def test_claim_verdict_styles_keep_the_variant_ones():
    assert verdict_style("reproduced").text == "#1a7f37" and verdict_style("not reproduced").text == "#b42318"
    greys = {verdict_style(v).text for v in ("inconclusive", "not comparable", "not testable")}
    assert greys == {VERDICT_STYLES[None].text}
    assert (VERDICT_STYLES["better"].colour, VERDICT_STYLES["worse"].colour) == ("#1a7f37", "#b42318")
    assert VERDICT_STYLES["no difference detected"].css == "none" and VERDICT_STYLES[None].css == "reference"
    assert len({s.css for s in VERDICT_STYLES.values()}) == len(VERDICT_STYLES)

"""The interventions table and sentences in the reports (leukoreport.report.sections.interventions and
templates/partials/interventions.html.j2), from an interventions.json written by leukoreport.stats.interventions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoreport.base.atomic_io import write_json
from leukoreport.base.errors import LeukoError
from leukoreport.report.render import make_environment
from leukoreport.report.sections.interventions import interventions_section, summary_sentences
from leukoreport.stats.interventions import Settings, interventions_summary, read_run


def _entry(applicable=True, note="", spi=0.01) -> dict:
    return {"applicable": applicable, "note": note, "n_images": 40, "seconds": 0.4, "seconds_per_image": spi,
            "domain_auc": 0.95, "domain_auc_low": 0.9, "domain_auc_high": 1.0, "median_ood_percentile": 97.0}


def _summary(results: Path, seeds=(1, 2), dataset: str = "ext") -> tuple[pd.DataFrame, dict]:
    """Fake runs' interventions files and the summary the rule writes (results/summary/interventions.*)."""
    rng = np.random.default_rng(5)
    labels = list(rng.choice(["a", "b", "c"], size=40))
    runs = []
    for seed in seeds:
        folder = results / "splits" / "42" / "seeds" / str(seed) / dataset
        folder.mkdir(parents=True, exist_ok=True)
        preds = {"plain": ["c"] * 40, "reinhard": list(labels), "scale": ["c"] * 39 + [labels[-1]]}
        rows = [{"intervention": k, "path": f"im{i}.png", "label": t, "prediction": p, "correct": int(t == p),
                 "p_prediction": 0.5} for k, ps in preds.items() for i, (t, p) in enumerate(zip(labels, ps))]
        pd.DataFrame(rows).to_csv(folder / "interventions.csv", index=False)
        entries = {"plain": _entry(spi=0.010), "reinhard": _entry(spi=0.012), "scale": _entry(spi=0.0105),
                   "adabn": _entry(False, "the model has no BatchNorm layer")}
        (folder / "interventions.json").write_text(json.dumps({"dataset": dataset, "interventions": entries}))
        runs.append(read_run(folder / "interventions.csv", folder / "interventions.json"))
    table, summary = interventions_summary(runs, Settings(n_resamples=999))
    write_json(summary, results / "summary" / "interventions.json")
    return table, summary


def test_partial_shows_every_row_with_numbers_from_the_summary(tmp_path, templates):
    table, summary = _summary(tmp_path)
    ctx = interventions_section(tmp_path)
    html = make_environment(templates).get_template("partials/interventions.html.j2").render(interventions=ctx)
    by = table.set_index("intervention")
    reinhard = by.loc["reinhard"]
    # independent formatting of the numbers the table must show
    assert f"{100 * reinhard['accuracy']:.1f}%" == "100.0%" and "100.0%" in html
    change = (f"{100 * reinhard['accuracy_change']:+.1f} pp [{100 * reinhard['accuracy_change_low']:+.1f} to "
              f"{100 * reinhard['accuracy_change_high']:+.1f}]").replace("-", "\u2212")
    assert change in html
    assert "raises" in html and 'class="verdict better"' in html
    assert "AdaBN: not informative (not applicable: the model has no BatchNorm layer)" in html  # the sentence
    assert "<td class=\"verdict none\">not informative</td>" in html
    assert "<td class=\"num\">12.0 ms</td><td class=\"num\">+2.0 ms</td>" in html
    assert "<td class=\"num\">10.0 ms</td><td class=\"num\">—</td>" in html
    assert summary["sentences"]["ext"].replace("'", "&#39;") in html
    assert "; 2 comparisons, α = 0.05." in " ".join(html.split())
    assert html.count("<tr>") == 2 * (1 + 4)  # two tables: header and plain, reinhard, scale, adabn
    assert make_environment(templates).get_template("partials/interventions.html.j2").render(
        interventions=None).strip() == ""


def test_missing_summary_is_none_and_bad_summary_names_the_file(tmp_path):
    assert interventions_section(tmp_path) is None
    write_json({"datasets": ["x"], "rows": [{"dataset": "x"}], "sentences": {}, "verdict_rule": "", "alpha": 0.05,
                "confidence_level": 0.95, "n_comparisons": 0, "interval_method": ""},
               tmp_path / "summary" / "interventions.json")
    with pytest.raises(LeukoError, match=r"summary/interventions\.json: rows\[0\]: missing key\(s\)"):
        interventions_section(tmp_path)


def test_report_and_summary_show_the_section_and_the_sentences(tmp_path, make_fake_results, render_fake):
    results = make_fake_results(tmp_path, seeds=(1, 2), datasets=("test", "ext"))
    _, summary = _summary(results)
    _, html = render_fake(results, (1, 2), ("test", "ext"))
    sentence = summary["sentences"]["ext"].replace("'", "&#39;")
    assert 'id="validity-interventions"' in html and sentence in html
    assert html.index('id="validity"') < html.index('id="validity-interventions"')
    _, short = render_fake(results, (1, 2), ("test", "ext"), "summary")
    limitations = short[short.index("Limitations"):]
    lines = summary_sentences(summary)
    assert lines and all("<li>" + line.replace("'", "&#39;") + "</li>" in limitations for line in lines)


def test_summary_names_the_sets_where_no_intervention_is_informative_in_one_line(tmp_path):
    """A set whose every intervention is not informative (9 images) gets no sentence of its own in the summary:
    one line names all such sets; an informative set keeps its sentence."""
    _, big = _summary(tmp_path / "a")
    _summary(tmp_path / "b", dataset="tiny")
    small = json.loads((tmp_path / "b" / "summary" / "interventions.json").read_text())
    for row in small["rows"]:  # as the rule makes it for a set of fewer than 20 images
        if row["intervention"] != "plain":
            row["verdict"] = "not informative"
    data = {**big, "datasets": ["ext", "tiny", "tiny2"], "rows": big["rows"] + small["rows"]
            + [{**r, "dataset": "tiny2"} for r in small["rows"]],
            "sentences": {**big["sentences"], "tiny": "On 'tiny': no intervention is informative.",
                          "tiny2": "On 'tiny2': no intervention is informative."}}
    row = next(r for r in big["rows"] if r["intervention"] == "reinhard")
    assert row["verdict"] == "raises"
    change = (f"colour normalisation (Reinhard) raises accuracy by {100 * row['accuracy_change']:.1f} pp "
              f"[{100 * row['accuracy_change_low']:.1f} to {100 * row['accuracy_change_high']:.1f}]")
    lines = summary_sentences(data)
    assert lines[0].startswith(f"On 'ext': {change}")
    assert lines[-1] == "Interventions at evaluation: not informative on 'tiny', 'tiny2' (reasons in the report)."
    assert len(lines) == 2


def test_summary_names_at_most_three_changed_sets_one_by_one():
    """Five sets where colour normalisation raises accuracy: the three largest changes get a line each, the other
    two one line; a set with no change detected is named in one line."""
    def rows(name, change):
        return [{"dataset": name, "intervention": "plain", "verdict": "reference"},
                {"dataset": name, "intervention": "reinhard", "label": "colour normalisation (Reinhard)",
                 "verdict": "raises", "accuracy_change": change, "accuracy_change_low": change - 0.05,
                 "accuracy_change_high": change + 0.05},
                {"dataset": name, "intervention": "adabn", "label": "AdaBN", "verdict": "no change detected",
                 "accuracy_change": 0.01, "accuracy_change_low": -0.02, "accuracy_change_high": 0.04}]
    changes = {"a": 0.10, "b": 0.30, "c": 0.20, "d": 0.15, "e": 0.12}
    data = {"datasets": [*changes, "flat"],
            "rows": [r for n, c in changes.items() for r in rows(n, c)]
            + [{**r, "verdict": "no change detected"} if r["intervention"] != "plain" else r
               for r in rows("flat", 0.0)]}
    lines = summary_sentences(data)
    assert [line.split("'")[1] for line in lines[:3]] == ["b", "c", "d"]
    assert lines[0] == "On 'b': colour normalisation (Reinhard) raises accuracy by 30.0 pp [25.0 to 35.0]."
    assert lines[3] == "Interventions change the accuracy on 2 more set(s): 'e', 'a' (report)."
    assert lines[4] == "No intervention changed the accuracy detectably on 'flat'."
    assert len(lines) == 5

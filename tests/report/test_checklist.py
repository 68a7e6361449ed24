"""The CLAIM 2024 checklist: 44 items in order, answered by this run only where the config gives the run something to
answer with."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from leukoreport.config.settings import schema_defaults, with_defaults
from leukoreport.report.checklist import ANSWERED_BY, CHECKLIST_COLUMNS, checklist_rows

ROOT = Path(__file__).resolve().parents[2]
# Items a rerun can never answer: the reference standard, annotators, ethics and registration, patients, funding.
ALWAYS_FOR_AUTHORS = {1, 2, 3, 4, 5, 6, 8, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21, 34, 35, 36, 40, 41, 44}


def _config(name: str = "smoke.yaml", **changes) -> dict:
    config, errors = with_defaults({**yaml.safe_load((ROOT / "config" / name).read_text()), **changes})
    assert not errors
    return config


def _by_item(config: dict) -> dict[int, dict]:
    return {row["item"]: row for row in checklist_rows(config)}


@pytest.mark.parametrize("name", ["smoke.yaml", "config.yaml"])
def test_every_item_once_in_order_with_the_four_columns(name):
    rows = checklist_rows(_config(name))
    assert [r["item"] for r in rows] == list(range(1, 45))
    for row in rows:
        assert list(row) == CHECKLIST_COLUMNS and row["answered_by"] in ANSWERED_BY
        assert row["topic"] and row["where"] and len(row["topic"]) <= 60
    assert len({r["topic"] for r in rows}) == 44


def test_what_a_rerun_cannot_answer_is_for_the_authors_whatever_the_config():
    for config in (_config(), schema_defaults()):
        rows = _by_item(config)
        assert {i for i, r in rows.items() if r["answered_by"] == "for the authors"} >= ALWAYS_FOR_AUTHORS
    rows = _by_item(_config())
    assert "reference standard" in rows[14]["where"] and "annotators" in rows[16]["where"]
    assert "registration" in rows[34]["where"] and "funding" in rows[44]["where"]


def test_answers_that_follow_the_config():
    on = _by_item(_config(reproducibility_check=True))
    off = _by_item(_config(external={}, reproducibility_check=False, data_provenance={}, claims=None,
                           validity={**_config()["validity"], "gradcam": {"enabled": False, "images": 6}}))
    for item, file in ((7, "data_provenance"), (31, "saliency.csv"), (33, "summary/external.csv"),
                       (43, "reproducibility.json")):
        assert on[item]["answered_by"] == "this run" and file in on[item]["where"], item
        assert off[item]["answered_by"] == "for the authors", item
    assert "external_monocyte" in on[33]["where"]
    assert "summary/claims.csv" in on[37]["where"] and "claims.csv" not in off[37]["where"]
    assert on[37]["answered_by"] == off[37]["answered_by"] == "this run"


def test_this_run_names_a_report_section_and_a_file():
    for row in checklist_rows(_config()):
        if row["answered_by"] == "this run":
            assert "section" in row["where"] or "docs/" in row["where"], row
            assert any(ext in row["where"] for ext in (".csv", ".json", ".pkl", ".md", "config")), row

"""Claims files: the shipped one loads; bad files stop with one line naming the claim and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from leukoreport.base.errors import LeukoError
from leukoreport.config.claims import CLAIMS_SCHEMA, KINDS, flatten, load_claims

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, claims: list[dict], **top) -> Path:
    data = {"paper": {"title": "T", "citation": "C"}, "recipe": {"pretrained": True}, "software": {"fastai": "2.8.5"},
            "claims": claims, **top}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def metric_claim(**changes) -> dict:
    return {"id": "foo", "kind": "metric", "text": "t", "where": "S1", "dataset": "test", "metric": "accuracy",
            "value": 0.9, **changes}


def test_shipped_claims_file_loads_with_every_paper_claim():
    claims = load_claims(ROOT / "config" / "claims.yaml")
    assert len(claims.claims) >= 9
    by_id = {c.id: c for c in claims.claims}
    assert by_id["test_accuracy"].fields["value"] == 0.9947 and by_id["test_accuracy"].fields["n"] == 375
    assert by_id["two_errors"].fields["count"] == 2
    assert by_id["external_perfect"].fields["correct"] == 9 and by_id["external_perfect"].fields["total"] == 9
    assert {c.kind for c in claims.claims} == set(KINDS)
    assert all(c.text and c.where for c in claims.claims)
    assert claims.software == {"fastai": "2.8.5", "torch": "2.9.1", "device": "mps"}
    recipe = flatten(claims.recipe)
    assert recipe["pretrained"] is True and recipe["phases.unfrozen.lr"] == pytest.approx(1e-4)
    assert "size" not in recipe  # the paper does not state the image size


def test_claims_loaded_from_the_config_key_path_relative_to_the_project(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert len(load_claims("config/claims.yaml").claims) >= 9


def test_schema_kinds_match_the_code():
    schema = yaml.safe_load(CLAIMS_SCHEMA.read_text())
    assert tuple(schema["$defs"]["claim"]["properties"]["kind"]["enum"]) == KINDS


def test_unknown_kind_names_claim_and_key(tmp_path):
    path = write(tmp_path, [metric_claim(kind="bar")])
    with pytest.raises(LeukoError) as err:
        load_claims(path)
    assert str(err.value) == (f"claims file {path}: claim 'foo': key kind: 'bar' is not one of metric, per_class, "
                              "errors, confusion, overfitting, balance, external, reproducibility, untestable")


def test_missing_field_names_claim_key_and_kind(tmp_path):
    claim = metric_claim()
    del claim["value"]
    path = write(tmp_path, [claim])
    with pytest.raises(LeukoError, match=r"^claims file .*x\.yaml: claim 'foo': key value: missing "
                                         r"\(required for kind metric\)$") as err:
        load_claims(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("claim", "expected"), [
    ({"id": "e", "kind": "external", "text": "t", "where": "S6", "dataset": "ext", "correct": 9},
     "claim 'e': key total: missing (required for kind external)"),
    ({"id": "u", "kind": "untestable", "text": "t", "where": "S6"},
     "claim 'u': key reason: missing (required for kind untestable)"),
    ({"id": "m", "kind": "metric", "where": "S1", "dataset": "test", "metric": "accuracy", "value": 0.9},
     "claim 'm': key text: missing (required)"),
    (metric_claim(n="many"), "claim 'foo': key n: 'many' is not of type 'integer'"),
    (metric_claim(generalises_to="everywhere"), "claim 'foo': key generalises_to: 'everywhere' is not one of"),
    (metric_claim(colour="red"), "claim 'foo': key (top level): Additional properties are not allowed"),
])
def test_bad_claims_give_one_line(tmp_path, claim, expected):
    with pytest.raises(LeukoError) as err:
        load_claims(write(tmp_path, [claim]))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_duplicate_ids_refused(tmp_path):
    with pytest.raises(LeukoError, match="claim 'foo': key id: used by more than one claim"):
        load_claims(write(tmp_path, [metric_claim(), metric_claim()]))


def test_recipe_keys_must_be_config_keys(tmp_path):
    with pytest.raises(LeukoError, match=r"key recipe\.phases\.frozen\.lrr: not a key of the workflow config"):
        load_claims(write(tmp_path, [metric_claim()], recipe={"phases": {"frozen": {"lrr": 1}}}))


def test_depends_on_must_name_an_item(tmp_path):
    with pytest.raises(LeukoError, match="claim 'foo': key depends_on: 'colour' is neither"):
        load_claims(write(tmp_path, [metric_claim(depends_on=["colour"])]))
    loaded = load_claims(write(tmp_path, [metric_claim(depends_on=["phases", "fastai"])]))
    assert loaded.claims[0].fields["depends_on"] == ["phases", "fastai"]


def test_missing_paper_and_unreadable_file(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump({"claims": [metric_claim()]}))
    with pytest.raises(LeukoError, match="key paper: missing"):
        load_claims(path)
    with pytest.raises(LeukoError, match="not found"):
        load_claims(tmp_path / "none.yaml")
    path.write_text("claims: [")
    with pytest.raises(LeukoError, match="cannot be read"):
        load_claims(path)

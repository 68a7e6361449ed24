"""The evidence the claim rules read, collected from result files on disk: each equals what the files say."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leukoreport.base.errors import LeukoError
from leukoreport.config.claims import ClaimsFile, Paper, load_claims
from leukoreport.config.settings import with_defaults
from leukoreport.stats.claim_evidence import (
    DEVIATION_COLUMNS,
    claims_document,
    collect_evidence,
    deviation_rows,
    median_domain_auc,
    package_versions,
    reproducibility_path,
)
from leukoreport.stats.claims import VERDICTS, judge_claims
from leukoreport.stats.run_tables import run_keys

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]
SEEDS = [1, 2, 3]
AUCS = {1: 0.61, 2: 0.93, 3: 0.72}  # domain AUC of the external set per seed: the median run is seed 3


def _config(**changes) -> dict:
    raw = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    raw["external"] = {"ext_same": {"path": "a", "source": raw["data_provenance"]["source"]},
                       "ext_other": {"path": "b", "source": "another lab"}, "ext_plain": "c"}
    config, errors = with_defaults({**raw, **changes})
    assert not errors
    return config


def _metrics(seed: int, dataset: str, n_correct: int, n: int) -> dict:
    """metrics.json of `n` images, evenly over the classes (all monocytes when `n` is not a multiple of the class
    count), `n - n_correct` of them taken for the next class."""
    k = len(CLASSES)
    matrix = np.diag([n // k] * k) if n % k == 0 else np.diag([0, 0, 0, n, 0])
    rows = [i % k for i in range(n - n_correct)] if n % k == 0 else [3] * (n - n_correct)
    for i in rows:
        matrix[i, i] -= 1
        matrix[i, (i + 1) % k] += 1
    per_class = {}
    for i, c in enumerate(CLASSES):
        support, predicted, tp = int(matrix[i].sum()), int(matrix[:, i].sum()), int(matrix[i, i])
        per_class[c] = {"present": support > 0, "support": support, "predicted": predicted, "correct": tp,
                        "precision": tp / predicted if predicted else 0.0, "recall": tp / support if support else None,
                        "f1": 2 * tp / (support + predicted) if support + predicted else 0.0}
    accuracy = n_correct / n
    return {"seed": seed, "split_seed": 42, "dataset": dataset, "n": n, "n_correct": n_correct, "accuracy": accuracy,
            "balanced_accuracy": accuracy, "macro_f1": accuracy, "intervals": {}, "calibration": {"ece": 0.01},
            "classes": CLASSES, "classes_present": [c for c in CLASSES if per_class[c]["present"]],
            "confidence_level": 0.95, "per_class": per_class,
            "confusion_matrix": {"labels": CLASSES, "matrix": matrix.tolist()}}


def _write_run(results: Path, seed: int, datasets: list[str]) -> None:
    folder = results / "splits" / "42" / "seeds" / str(seed)
    folder.mkdir(parents=True)
    train = {"seed": seed, "split_seed": 42, "pretrained": False, "size": 64, "batch_size": 16,
             "schedule": "one_cycle", "device": "cpu (x86_64)",
             "phases": [{"phase": 1, "frozen": True, "lr": 1e-3, "max_epochs": 2, "patience": 3, "best_epoch": 2},
                        {"phase": 2, "frozen": False, "lr": 1e-4, "max_epochs": 2, "patience": 5, "best_epoch": 4}]}
    (folder / "train.json").write_text(json.dumps(train))
    pd.DataFrame({"phase": [1, 1, 2, 2], "epoch": [1, 2, 3, 4], "phase_epoch": [1, 2, 1, 2],
                  "train_loss": [1.0, 0.8, 0.6, 0.5 + seed / 100], "valid_loss": [1.1, 0.9, 0.7, 0.6],
                  "accuracy": [0.5, 0.6, 0.7, 0.8]}).to_csv(folder / "history.csv", index=False)
    for i, dataset in enumerate(datasets):
        (folder / dataset).mkdir()
        n = 75 if dataset == "test" else 10
        (folder / dataset / "metrics.json").write_text(json.dumps(_metrics(seed, dataset, n - seed - i, n)))


@pytest.fixture
def results(tmp_path) -> Path:
    """A results folder of three runs on the test split and three external sets, with validity.csv and
    reproducibility.json."""
    results = tmp_path / "results"
    datasets = ["test", "ext_same", "ext_other", "ext_plain"]
    for seed in SEEDS:
        _write_run(results, seed, datasets)
    rows = []
    for seed in SEEDS:
        for dataset in datasets:
            auc = AUCS[seed] if dataset == "ext_other" else (np.nan if dataset == "ext_plain" else 0.5)
            rows.append({"split_seed": 42, "seed": seed, "dataset": dataset, "domain_auc": auc,
                         "domain_auc_low": auc - 0.1, "domain_auc_high": auc + 0.05})
    (results / "summary").mkdir()
    pd.DataFrame(rows).to_csv(results / "summary" / "validity.csv", index=False)
    reproducibility_path(results, 42).parent.mkdir(parents=True)
    reproducibility_path(results, 42).write_text(json.dumps({"split_seed": 42, "seed": 1, "identical_predictions": True,
                                                             "identical_weights": True, "n_tensors": 122,
                                                             "n_tensors_different": 0}))
    return results


DATASETS = ["test", "ext_same", "ext_other", "ext_plain"]


def _claims(**recipe) -> ClaimsFile:
    return ClaimsFile(path="claims.yaml", paper=Paper("A paper", "Someone 2024"), recipe=recipe,
                      software={"fastai": "0.0.1", "torch": metadata.version("torch"), "device": "mps"}, claims=())


def test_runs_are_the_files_in_key_order(results):
    keys = run_keys([42], SEEDS)
    ev = collect_evidence(results, _config(), keys, DATASETS, _claims())
    assert [(r.split_seed, r.seed) for r in ev.runs] == [(42, s) for s in SEEDS]
    for run in ev.runs:
        folder = results / "splits/42/seeds" / str(run.seed)
        assert run.train == json.loads((folder / "train.json").read_text())
        pd.testing.assert_frame_equal(run.history, pd.read_csv(folder / "history.csv"))
        assert set(run.metrics) == set(DATASETS)
        for dataset in DATASETS:
            assert run.metrics[dataset] == json.loads((folder / dataset / "metrics.json").read_text())
    assert ev.confidence == 0.95


def test_domain_auc_is_the_median_run_and_none_when_off_or_missing(results):
    keys = run_keys([42], SEEDS)
    ev = collect_evidence(results, _config(), keys, DATASETS, _claims())
    median_seed = sorted(AUCS, key=AUCS.get)[1]
    assert ev.domain_auc["ext_other"] == pytest.approx((AUCS[median_seed], AUCS[median_seed] - 0.1,
                                                        AUCS[median_seed] + 0.05))
    assert ev.domain_auc["ext_same"] == pytest.approx((0.5, 0.4, 0.55))
    assert ev.domain_auc["ext_plain"] is None and "test" not in ev.domain_auc
    validity = _config()["validity"]
    off = _config(validity={**validity, "domain_classifier": {**validity["domain_classifier"], "enabled": False}})
    (results / "summary" / "validity.csv").unlink()  # not read when the domain classifier is off
    assert collect_evidence(results, off, keys, DATASETS, _claims()).domain_auc == dict.fromkeys(DATASETS[1:])


def test_median_of_an_even_count_is_the_lower_middle_run():
    table = pd.DataFrame({"split_seed": [42] * 4, "seed": [1, 2, 3, 4], "dataset": ["x"] * 4,
                          "domain_auc": [0.9, 0.6, 0.8, 0.7], "domain_auc_low": [0.8, 0.5, 0.7, 0.6],
                          "domain_auc_high": [1.0, 0.7, 0.9, 0.8]})
    assert median_domain_auc(table, "x") == (0.7, 0.6, 0.8)
    assert median_domain_auc(table, "y") is None


def test_relations_follow_the_declared_provenance(results):
    ev = collect_evidence(results, _config(), run_keys([42], SEEDS), DATASETS, _claims())
    assert ev.relations == {"ext_same": "same source as training", "ext_other": "other source",
                            "ext_plain": "provenance not declared"}


def test_reproducibility_read_when_the_check_is_on(results):
    keys = run_keys([42], SEEDS)
    on = collect_evidence(results, _config(reproducibility_check=True), keys, DATASETS, _claims())
    assert on.reproducibility == json.loads(reproducibility_path(results, 42).read_text())
    assert collect_evidence(results, _config(reproducibility_check=False), keys, DATASETS, _claims()).reproducibility \
        is None
    reproducibility_path(results, 42).unlink()
    with pytest.raises(LeukoError, match="reproducibility.json: file not found"):
        collect_evidence(results, _config(reproducibility_check=True), keys, DATASETS, _claims())


def test_deviations_use_train_json_installed_versions_and_the_runs_device(results):
    ev = collect_evidence(results, _config(), run_keys([42], SEEDS), DATASETS, _claims(pretrained=True, size=64))
    rows = {d.item: d for d in ev.deviations}
    assert rows["pretrained"].status == "different" and rows["pretrained"].rerun.startswith("false")
    assert rows["size"].status == "same"
    assert rows["batch_size"].status == "not declared"
    assert rows["fastai"].rerun == metadata.version("fastai") and rows["fastai"].status == "different"
    assert rows["torch"].rerun == metadata.version("torch") and rows["torch"].status == "same"
    assert rows["device"].rerun.startswith("cpu (x86_64)") and rows["device"].status == "different"
    assert package_versions(["python", "no-such-package-here"]) == {"python": platform.python_version()}
    table = deviation_rows(ev.deviations)
    assert [list(r) for r in table] == [list(DEVIATION_COLUMNS)] * len(ev.deviations)


def test_missing_or_broken_files_are_one_line_errors(results):
    keys = run_keys([42], SEEDS)
    (results / "splits/42/seeds/2/ext_other/metrics.json").unlink()
    with pytest.raises(LeukoError, match="seeds/2/ext_other/metrics.json"):
        collect_evidence(results, _config(), keys, DATASETS, _claims())
    _write_run(results / "other", 1, DATASETS)
    (results / "other/splits/42/seeds/1/history.csv").write_text("phase,epoch\n1,1\n")
    with pytest.raises(LeukoError, match="history.csv.*train_loss"):
        collect_evidence(results / "other", _config(), run_keys([42], [1]), DATASETS, _claims())
    with pytest.raises(LeukoError, match="no runs"):
        collect_evidence(results, _config(), [], DATASETS, _claims())


def test_the_paper_claims_on_collected_evidence_give_a_complete_document(results):
    claims = load_claims(ROOT / "config" / "claims.yaml")
    config = _config(reproducibility_check=True,
                     external={"external_monocyte": "data/external_monocyte", "ext_other": {"path": "b"}})
    for seed in SEEDS:  # the paper's external set, nine monocytes, all right
        folder = results / "splits/42/seeds" / str(seed) / "external_monocyte"
        folder.mkdir()
        metrics = _metrics(seed, "external_monocyte", 9, 9)
        (folder / "metrics.json").write_text(json.dumps(metrics))
    datasets = ["test", "external_monocyte"]
    ev = collect_evidence(results, config, run_keys([42], SEEDS), datasets, claims)
    assert ev.relations == {"external_monocyte": "provenance not declared"}
    verdicts = judge_claims(claims, ev)
    doc = claims_document(claims, ev, verdicts)
    assert doc["paper"] == {"title": claims.paper.title, "citation": claims.paper.citation}
    assert doc["claims_file"] == str(claims.path) and doc["confidence"] == 0.95
    assert [c["id"] for c in doc["claims"]] == [c.id for c in claims.claims]
    assert list(doc["counts"]) == list(VERDICTS) and sum(doc["counts"].values()) == len(claims.claims)
    for verdict in VERDICTS:
        assert doc["counts"][verdict] == sum(c["verdict"] == verdict for c in doc["claims"])
    by_id = {c["id"]: c for c in doc["claims"]}
    assert by_id["test_accuracy"]["verdict"] == "not comparable"  # random initialisation: pretrained differs
    assert any(d.startswith("pretrained") for d in by_id["test_accuracy"]["deviations"])
    assert by_id["seed_reproducibility"]["verdict"] == "reproduced"
    json.dumps(doc, allow_nan=False)  # strict JSON as written

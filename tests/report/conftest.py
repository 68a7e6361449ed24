"""Fixtures for the report tests: a small, internally consistent fabricated `results/` folder (docs/results.md)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from leukoreport.config.settings import ShiftSettings, Uncertainty
from leukoreport.data.embeddings import Embeddings
from leukoreport.data.image_stats import shift_table, statistics_table
from leukoreport.data.leakage import summarize
from leukoreport.report import build, render
from leukoreport.report.run_facts import RunInfo
from leukoreport.stats.baselines import add_baselines
from leukoreport.stats.metrics import compute_metrics, read_predictions
from leukoreport.stats.robustness import ensemble, robustness_files
from leukoreport.stats.run_tables import external_gaps, metrics_table
from leukoreport.stats.validity import image_shift_summary, label_audit_summary, run_shift, validity_table

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"  # the repository's templates folder
RUN_INFO = RunInfo(date="2025-01-02 03:04 UTC", git_commit="abc1234", packages={"pandas": "2.3.3"}, device="CPU",
                   python="3.11.7")
UNCERTAINTY = Uncertainty.defaults(n_resamples=999)  # fast; the numbers only need to be consistent

PER_CLASS = 10  # images per class in the training data: 7 train / 1-2 valid / 1-2 test
EXTERNAL = 4  # images in each external set, all of the first class (the other classes are absent)

PHASES = [{"phase": 1, "frozen": True, "lr": 1e-3, "max_epochs": 6, "patience": 2},
          {"phase": 2, "frozen": False, "lr": 1e-4, "max_epochs": 6, "patience": 3}]


def _fake_config(seeds=(1, 2), datasets=("test", "ext")) -> dict:
    """A config like the workflow's, for the report's YAML dump."""
    return {
        "data": "data/leukocytes",
        "data_provenance": {"source": "PBC dataset", "scanner": "CellaVision DM96",
                            "citation": "PBC dataset, Acevedo et al. (2020), Data in Brief 30:105474"},
        "external": {d: {"path": f"data/{d}", "source": f"lab of {d}"} for d in datasets if d != "test"},
        "seeds": list(seeds),
        "split_seed": 42,
        "split_fractions": [0.7, 0.15, 0.15],
        "pretrained": True,
        "size": 224,
        "batch_size": 32,
        "phases": [{k: p[k] for k in ("frozen", "lr", "max_epochs", "patience")} for p in PHASES],
    }


def _png(path: Path, size: tuple[int, int], text: str, color: tuple[int, int, int]) -> None:
    """A placeholder PNG figure: coloured frame, a few lines and a caption."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.rectangle([2, 2, w - 3, h - 3], outline=color, width=4)
    for k in range(1, 6):
        draw.line([(0, h * k // 6), (w, h * (6 - k) // 6)], fill=color, width=2)
    draw.text((12, 12), text, fill=(0, 0, 0))
    img.save(path, optimize=True)


def _image(path: Path, color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)


def _stable(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def _predictions(df: pd.DataFrame, classes: list[str], seed: int, dataset: str) -> pd.DataFrame:
    """Fake predictions: mostly right, the first row always wrong; probabilities sum to 1."""
    rng = np.random.default_rng(_stable(seed, dataset))
    k = len(classes)
    rows = []
    for i, (path, label) in enumerate(zip(df["path"], df["label"])):
        t = classes.index(label)
        wrong = i == 0 or rng.random() < 0.2
        p = t if not wrong else (t + 1 + int(rng.integers(0, k - 1))) % k
        probs = rng.random(k) * 0.2
        probs[p] = 1.0 + rng.random()
        probs = probs / probs.sum()
        row = {"path": path, "label": label, "prediction": classes[p]}
        row.update({f"prob_{c}": float(probs[j]) for j, c in enumerate(classes)})
        row["loss"] = float(-np.log(probs[t]))
        rows.append(row)
    return pd.DataFrame(rows)


def _training(seed: int, classes: list[str], n_train: int, n_valid: int) -> tuple[pd.DataFrame, dict]:
    """history.csv rows and train.json for one seed, consistent with each other."""
    rng = np.random.default_rng(seed)
    history, phases, epoch = [], [], 0
    for ph in PHASES:
        run = int(rng.integers(3, ph["max_epochs"] + 1))
        first = epoch + 1
        losses = []
        for pe in range(1, run + 1):
            epoch += 1
            valid_loss = float(0.5 / (epoch + 1) + rng.random() * 0.05)
            losses.append(valid_loss)
            history.append({"phase": ph["phase"], "epoch": epoch, "phase_epoch": pe,
                            "train_loss": float(0.6 / epoch), "valid_loss": valid_loss,
                            "accuracy": float(min(1.0, 0.7 + 0.05 * epoch)),
                            "train_accuracy": float(min(1.0, 0.6 + 0.06 * epoch)), "seconds": float(10 + rng.random())})
        best = int(np.argmin(losses))
        phases.append({**ph, "epochs_run": run, "best_epoch": first + best, "best_valid_loss": losses[best],
                       "stopped_early": run < ph["max_epochs"]})
    hist = pd.DataFrame(history)
    train = {"seed": seed, "split_seed": 42, "pretrained": True, "init": "ImageNet (torchvision IMAGENET1K_V1)",
             "device": "cpu (x86_64)", "threads": 2, "size": 224, "batch_size": 32, "classes": classes,
             "n_train": n_train, "n_valid": n_valid, "seconds": round(float(hist["seconds"].sum()) + 5.0, 1),
             "phases": phases}
    return hist, train


def _csv(df: pd.DataFrame, path: Path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, **kwargs)


def _json(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


SPLIT = 42  # the split seed of every fake run


def _make_fake_results(root: Path, seeds=(1, 2), datasets=("test", "ext"), classes=("a", "b", "c"),
                       file_prefix: str = "img", claims: bool = True) -> Path:
    """Write images under root/data and a complete results folder root/results (with the claims files unless
    `claims` is false: config `claims: null` writes only checklist.csv); return root/results."""
    root = Path(root)
    classes = list(classes)
    results = root / "results"
    colors = [(200, 60, 60), (60, 160, 60), (60, 60, 200), (160, 160, 40), (120, 40, 160)]

    # training data and split: per class PER_CLASS images -> 7 train, rest alternating valid/test
    rows = []
    for ci, c in enumerate(classes):
        for i in range(PER_CLASS):
            rel = f"data/leukocytes/{c}/{file_prefix}_{ci}_{i:03d}.png"
            _image(root / rel, colors[ci % len(colors)])
            split = "train" if i < 7 else ("valid" if i % 2 else "test")
            rows.append({"path": rel, "label": c, "split": split})
    split = pd.DataFrame(rows)
    split_dir = results / "splits" / str(SPLIT)
    _csv(split, split_dir / "split.csv")

    sets = {"test": split[split["split"] == "test"][["path", "label"]].reset_index(drop=True)}
    for name in datasets:
        if name == "test":
            continue
        ext = []
        for i in range(EXTERNAL):
            rel = f"data/{name}/{classes[0]}/{file_prefix}_ext_{i:03d}.png"
            _image(root / rel, colors[0])
            ext.append({"path": rel, "label": classes[0]})
        sets[name] = pd.DataFrame(ext)
        _csv(sets[name], results / "data" / "external" / f"{name}.csv")

    _json({"pretrained": True, "init": "ImageNet (torchvision IMAGENET1K_V1)",
           "path": "/cache/torch/hub/checkpoints/resnet18-f37072fd.pth",
           "sha256": "f37072fd" + "0" * 56}, results / "weights" / "resnet18.json")

    # leakage audit: one exact pair across splits and one near pair between training data and an external set
    pair_rows = [{"path_a": rows[0]["path"], "label_a": rows[0]["label"], "group_a": "train",
                  "path_b": rows[-1]["path"], "label_b": rows[-1]["label"], "group_b": rows[-1]["split"],
                  "distance": 0, "kind": "exact", "scope": "across splits",
                  "same_label": rows[0]["label"] == rows[-1]["label"]}]
    externals = [d for d in datasets if d != "test"]
    if externals:
        ext_path = sets[externals[0]]["path"].iloc[0]
        pair_rows.append({"path_a": rows[1]["path"], "label_a": rows[1]["label"], "group_a": "train",
                          "path_b": ext_path, "label_b": classes[0], "group_b": f"external:{externals[0]}",
                          "distance": 3, "kind": "near", "scope": "training vs external", "same_label": True})
    pairs = pd.DataFrame(pair_rows)
    _csv(pairs, split_dir / "audit" / "leakage.csv")
    n_images = len(split) + sum(len(sets[d]) for d in externals)
    _json(summarize(pd.DataFrame({"path": range(n_images)}), pairs, 4, 8).to_dict(),
          split_dir / "audit" / "leakage.json")
    _png(split_dir / "audit" / "pairs" / "page-01.png", (1200, 500), "duplicate pairs", (90, 90, 90))

    all_metrics, prediction_paths = [], []
    n_train = int((split["split"] == "train").sum())
    n_valid = int((split["split"] == "valid").sum())
    for seed in seeds:
        folder = split_dir / "seeds" / str(seed)
        hist, train = _training(seed, classes, n_train, n_valid)
        _csv(hist, folder / "history.csv")
        _json(train, folder / "train.json")
        _png(folder / "loss_curves.png", (1200, 675), f"loss curves seed {seed}", (40, 90, 200))
        for name in datasets:
            out = folder / name
            pred = _predictions(sets[name], classes, seed, name)
            _csv(pred, out / "predictions.csv")
            metrics = compute_metrics(pred, classes, name, seed, UNCERTAINTY, split_seed=SPLIT)
            add_baselines(metrics, pred, split.loc[split["split"] == "train", "label"], UNCERTAINTY)
            all_metrics.append(metrics)
            prediction_paths.append((out / "predictions.csv").relative_to(results).as_posix())
            _json(metrics, out / "metrics.json")
            _png(out / "confusion.png", (1650, 675), f"confusion {seed} {name}", (200, 90, 40))
            _png(out / "per_class.png", (1200, 600), f"per class {seed} {name}", (40, 160, 90))
            _png(out / "reliability.png", (1000, 800), f"reliability {seed} {name}", (90, 40, 200))
            _png(out / "top_losses.png", (1200, 1000), f"top losses {seed} {name}", (200, 40, 90))
            n_err = int((pred["label"] != pred["prediction"]).sum())
            _png(out / "errors" / "page-01.png", (1200, 260 * ((n_err + 4) // 5)), f"errors {seed} {name}",
                 (150, 40, 150))

    table = metrics_table(all_metrics, prediction_paths)
    ensembles = []
    for name in datasets:
        runs = {f"seed {seed}": read_predictions(split_dir / "seeds" / str(seed) / name / "predictions.csv", classes)
                for seed in seeds}
        ens = ensemble(runs, classes)
        ensembles.append(compute_metrics(ens, classes, name, None, UNCERTAINTY, split_seed=SPLIT))
        add_baselines(ensembles[-1], ens, split.loc[split["split"] == "train", "label"], UNCERTAINTY)
        _csv(ens, split_dir / "ensemble" / name / "predictions.csv")
        _json(ensembles[-1], split_dir / "ensemble" / name / "metrics.json")
    seed_rows, robustness, agreement, disagreement = robustness_files(
        all_metrics, [results / p for p in prediction_paths], ensembles, 0.95)
    _csv(seed_rows, results / "summary" / "seeds.csv")
    _json(robustness, results / "summary" / "robustness.json")
    _csv(agreement, results / "summary" / "agreement.csv")
    _csv(disagreement, results / "summary" / "disagreement.csv")
    for name in datasets:
        _png(results / "summary" / "robustness" / f"seeds_{name}.png", (1400, 600), f"seeds {name}", (40, 40, 40))
        for kind in ("always_wrong", "unstable", "most_wrong"):
            _png(results / "summary" / "robustness" / f"split{SPLIT}_{name}_{kind}.png", (1200, 500), kind,
                 (120, 60, 20))
    _validity(root, results, split, sets, seeds, datasets, classes, all_metrics)
    _csv(table, results / "summary" / "metrics.csv")
    _csv(external_gaps(table), results / "summary" / "external.csv")
    _png(results / "summary" / "curves.png", (1500, 540), "curves of every seed", (40, 90, 200))
    _png(results / "summary" / "confusion_test.png", (1650, 675), "summed test confusion", (200, 90, 40))

    bench = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (results / "benchmarks").mkdir(parents=True, exist_ok=True)
    (results / "benchmarks" / "split.tsv").write_text(
        bench + "2.5000\t0:00:02\t150.2\t900.1\t140.0\t141.0\t1.0\t0.2\t50.0\t1.3\n")
    (results / "benchmarks" / f"train_seed{seeds[0]}.tsv").write_text(
        bench + "812.4000\t0:13:32\t2048.7\t5000.0\t2000.0\t2010.0\t100.0\t50.0\t190.0\t1500.0\n")
    write_fake_claims(results / "summary", n_seeds=len(seeds), claims=claims)
    return results


def _verdict(id_: str, kind: str, text: str, where: str, claimed: str, verdict: str, reason: str, evidence: str,
             rerun: str = "", value: float | None = None, low: float | None = None, high: float | None = None,
             seeds: tuple[float, float] | None = None, n_seeds: int = 0, claimed_value: float | None = None,
             direction: str | None = None, needs: str | None = None, deviations: tuple[str, ...] = ()) -> dict:
    """One asdict(ClaimVerdict) of the data contract (leukoreport.stats.claims)."""
    return {"id": id_, "kind": kind, "text": text, "where": where, "claimed": claimed, "claimed_value": claimed_value,
            "rerun": rerun, "rerun_value": value, "low": low, "high": high,
            "seed_min": seeds[0] if seeds else None, "seed_max": seeds[1] if seeds else None, "n_seeds": n_seeds,
            "verdict": verdict, "direction": direction, "reason": reason, "needs": needs, "evidence": evidence,
            "deviations": list(deviations)}


def fake_verdicts(n_seeds: int) -> list[dict]:
    """The paper's claims with one of each verdict, numbers as the judging step would write them."""
    return [
        _verdict("test_accuracy", "metric", "Test accuracy 99.47% on 375 images", "Section 3.1", "99.47% (373/375)",
                 "not reproduced", "The rerun's mean 91.2% [87.9–93.7] lies below the claimed 99.47%; the claimed "
                 "test set of 375 images allows 98.1% at the least.", "section 6, summary/seeds.csv",
                 rerun="91.2% [87.9–93.7], seeds 90.1–92.3", value=0.912, low=0.879, high=0.937,
                 seeds=(0.9012, 0.9231), n_seeds=n_seeds,
                 claimed_value=0.9947, direction="overstated"),
        _verdict("test_errors", "errors", "Two errors, basophil and lymphocyte taken for neutrophils", "Section 3.1",
                 "2", "inconclusive", "Two runs give 27 and 35 errors; the spread between runs is too wide to decide.",
                 "section 5, summary/metrics.csv", value=31.0, low=12.5, high=49.5, seeds=(27.0, 35.0),
                 n_seeds=n_seeds, claimed_value=2.0, needs="about 6 more seeds"),
        _verdict("no_confusion", "confusion", "No systematic confusion between classes", "Section 3.2", "none",
                 "reproduced", "No class pair takes more than 5% of a class in every run.",
                 "section 10, confusion matrices", rerun="no pair above 5%", n_seeds=n_seeds),
        _verdict("balanced_accuracy", "metric", "Balanced accuracy as high as accuracy", "Table 1", "99.47%",
                 "not comparable", "The run starts from random weights, the paper from ImageNet.",
                 "section 2, results/weights/resnet18.json", rerun="90.4% [87.0–93.0], seeds 89.0–91.8",
                 value=0.904, low=0.87, high=0.93,
                 seeds=(0.89, 0.918), n_seeds=n_seeds, claimed_value=0.9947, deviations=("pretrained",)),
        _verdict("clinical_grade", "untestable", "Clinical-grade performance fit for deployment", "Conclusion",
                 "clinical grade", "not testable", "A rerun on curated images cannot test clinical use.",
                 "section 9, model card"),
    ]


def fake_deviations() -> list[dict]:
    """deviations.csv rows: one of each status."""
    return [{"item": "pretrained", "declared": "True", "rerun": "False in 2 of 2 runs", "status": "different",
             "how": "random initialisation instead of ImageNet weights"},
            {"item": "phases.frozen.lr", "declared": "0.001", "rerun": "1.0e-3 in 2 of 2 runs", "status": "same",
             "how": ""},
            {"item": "batch_size", "declared": "not declared", "rerun": "32", "status": "not declared",
             "how": "not stated in the paper"}]


def fake_checklist() -> list[dict]:
    """checklist.csv rows: the 44 CLAIM 2024 items, answered by this run or for the authors."""
    return [{"item": str(i), "topic": f"checklist topic {i}",
             "answered_by": "this run" if i % 3 else "for the authors",
             "where": f"section {i % 9 + 1}, summary/metrics.csv" if i % 3 else "the authors must state it"}
            for i in range(1, 45)]


CLAIMS_CSV_COLUMNS = ["id", "kind", "text", "where", "claimed", "rerun", "low", "high", "seed_min", "seed_max",
                      "n_seeds", "verdict", "direction", "reason", "needs", "evidence"]


def write_fake_claims(summary: Path, n_seeds: int = 2, claims: bool = True) -> None:
    """claims.json, claims.csv, deviations.csv and checklist.csv as the workflow writes them (docs/results.md);
    only checklist.csv when `claims` is false."""
    _csv(pd.DataFrame(fake_checklist()), summary / "checklist.csv")
    if not claims:
        return
    verdicts = fake_verdicts(n_seeds)
    counts = {v: sum(c["verdict"] == v for c in verdicts)  # every verdict, zero included
              for v in ("reproduced", "not reproduced", "inconclusive", "not comparable", "not testable")}
    _json({"paper": {"title": "Leukocyte classification with ResNet18", "citation": "Course paper (2024)"},
           "claims_file": "config/claims.yaml", "confidence": 0.95, "claims": verdicts,
           "deviations": fake_deviations(), "counts": counts}, summary / "claims.json")
    _csv(pd.DataFrame([{k: c[k] for k in CLAIMS_CSV_COLUMNS} for c in verdicts]), summary / "claims.csv")
    _csv(pd.DataFrame(fake_deviations()), summary / "deviations.csv")


def _features(paths: list[str], labels: list[str], shift: float, seed: int) -> Embeddings:
    """Fake embeddings: one cluster per class, moved by `shift` for external sets."""
    rng = np.random.default_rng(seed)
    codes = pd.factorize(pd.Series(labels))[0]
    feats = rng.normal(size=(len(paths), 16)) + codes[:, None] * 0.5 + shift
    return Embeddings(list(paths), list(labels), feats.astype(np.float32))


def _validity(root: Path, results: Path, split: pd.DataFrame, sets: dict, seeds, datasets, classes,
              all_metrics: list[dict]) -> None:
    """The external-validity files of docs/results.md, computed by the real functions on fake inputs."""
    from leukoreport.stats.label_audit import audit_summary, find_suspects

    split_dir = results / "splits" / str(SPLIT)
    train_rows = split[split["split"] == "train"]
    shifts, shift_tables, audits = [], {}, []
    settings = ShiftSettings.defaults(k=3, folds=2, permutations=3)
    train_stats = statistics_table(list(train_rows["path"]), root=root)
    for name in datasets:
        folder = split_dir / "validity" / name
        table = shift_table(train_stats, statistics_table(list(sets[name]["path"]), root=root))
        _csv(table, folder / "image_shift.csv")
        shift_tables[(SPLIT, name)] = table
        _png(folder / "image_shift.png", (1500, 1000), f"image statistics {name}", (30, 120, 120))
        ens = read_predictions(split_dir / "ensemble" / name / "predictions.csv", classes)
        suspects = find_suspects(ens, classes)
        _csv(suspects, folder / "label_issues.csv")
        audit = {**audit_summary(suspects), "dataset": name, "split_seed": SPLIT, "seeds": list(seeds),
                 "filter_by": "prune_by_noise_rate"}
        audits.append(audit)
        _json(audit, folder / "label_audit.json")
        _png(folder / "label_issues" / "page-01.png", (1200, 500), f"label issues {name}", (150, 90, 20))
    for seed in seeds:
        folder = split_dir / "seeds" / str(seed)
        train = _features(list(train_rows["path"]), list(train_rows["label"]), 0.0, seed)
        embs = {name: _features(list(sets[name]["path"]), list(sets[name]["label"]), 0.0 if name == "test" else 3.0,
                                _stable(seed, name)) for name in datasets}
        for name in datasets:
            pred = read_predictions(folder / name / "predictions.csv", classes)
            ood, summary, curve = run_shift(train, embs["test"], embs[name], pred, name, settings)
            _csv(ood, folder / name / "ood.csv")
            _csv(curve, folder / name / "risk_coverage.csv")
            _json(summary, folder / name / "shift.json")
            _png(folder / name / "saliency.png", (1500, 900), f"grad-cam {seed} {name}", (200, 30, 30))
            _csv(pd.DataFrame({"path": pred["path"].head(2), "cam_centre_share": [0.4, 0.6][:min(2, len(pred))]}),
                 folder / name / "saliency.csv")
        _png(folder / "validity" / "risk_coverage.png", (1200, 700), f"risk coverage {seed}", (30, 30, 160))
        _png(folder / "validity" / "ood_bands.png", (1200, 600), f"ood bands {seed}", (30, 160, 30))
    order = {(m["seed"], m["dataset"]): i for i, m in enumerate(all_metrics)}
    for m in all_metrics:
        shifts.append(json.loads((split_dir / "seeds" / str(m["seed"]) / m["dataset"] / "shift.json").read_text()))
    assert len(order) == len(shifts)
    _csv(validity_table(all_metrics, shifts), results / "summary" / "validity.csv")
    _csv(image_shift_summary(shift_tables), results / "summary" / "image_shift.csv")
    _csv(label_audit_summary(audits), results / "summary" / "label_audit.csv")


@pytest.fixture(scope="session")
def make_fake_results():
    """``make_fake_results(root, seeds=(1, 2), datasets=("test", "ext"), classes=("a", "b", "c"), ...)``: write a
    fake results folder under `root` and return it."""
    return _make_fake_results


@pytest.fixture(scope="session")
def fake_config():
    """``fake_config(seeds=(1, 2), datasets=("test", "ext"))``: a config like the workflow's, for the YAML dump."""
    return _fake_config


@pytest.fixture(scope="session")
def fake_split_seed() -> int:
    """The split seed of every fake run."""
    return SPLIT


@pytest.fixture(scope="session")
def write_claims():
    """``write_claims(summary_dir, n_seeds=2, claims=True)``: the fake claims files of the data contract."""
    return write_fake_claims


def _render_fake(results: Path, seeds, datasets, document: str = "report", run_info: RunInfo = RUN_INFO,
                 config: dict | None = None) -> tuple[dict, str]:
    """Build the context of `document` ("report" or "summary") for a fake results folder and render it."""
    make = build.summary_context if document == "summary" else build.build_context
    config = _fake_config(seeds, datasets) if config is None else config
    ctx = make(results, config, [SPLIT], list(seeds), list(datasets), run_info)
    return ctx, render.render_html(ctx, TEMPLATES, document)


@pytest.fixture(scope="session")
def templates() -> Path:
    """The repository's templates folder."""
    return TEMPLATES


@pytest.fixture(scope="session")
def run_info() -> RunInfo:
    """The RunInfo of the fake runs."""
    return RUN_INFO


@pytest.fixture(scope="session")
def render_fake():
    """``render_fake(results, seeds, datasets, document="report", run_info=RUN_INFO, config=None)``: build the
    context (fake config unless `config` is given) and render it; returns ``(context, html)``."""
    return _render_fake

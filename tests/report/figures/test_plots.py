"""Each figure function writes a valid PNG from synthetic inputs."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.text
import pandas as pd
import pytest
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.report.figures.dataset import plot_confusion, plot_per_class, plot_reliability
from leukoreport.report.figures.galleries import plot_agreement_gallery, plot_error_gallery, plot_top_losses
from leukoreport.report.figures.leakage import plot_pair_gallery
from leukoreport.report.figures.seeds import plot_seed_values
from leukoreport.report.figures.training import plot_loss_curves, plot_seed_curves
from leukoreport.report.gallery_rows import agreement_rows
from leukoreport.stats.error_rows import top_loss_rows
from leukoreport.stats.metrics import compute_metrics

FIVE = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def assert_png(path: Path) -> tuple[int, int]:
    """The file exists, is non-empty and opens as a PNG; returns its size."""
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()
        return img.size


def make_pred(labels: list[str], preds: list[str], classes: list[str]) -> pd.DataFrame:
    """Predictions with 0.8 on the predicted class and tiny image paths."""
    rest = 0.2 / (len(classes) - 1)
    rows = []
    for i, (y, p) in enumerate(zip(labels, preds)):
        row = {"path": f"imgs/{y}/cell_{i:03d}.png", "label": y, "prediction": p}
        row.update({f"prob_{c}": (0.8 if c == p else rest) for c in classes})
        row["loss"] = 0.2 if y == p else 3.0
        rows.append(row)
    return pd.DataFrame(rows)


def write_images(pred: pd.DataFrame, root: Path) -> None:
    """A small coloured image (palette mode, so RGB conversion matters) for every row."""
    for i, rel in enumerate(pred["path"]):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (20 * i % 255, 120, 200)).convert("P").save(target)


def history(epochs_1: int, epochs_2: int) -> pd.DataFrame:
    rows = []
    for phase, n, start in ((1, epochs_1, 1), (2, epochs_2, epochs_1 + 1)):
        for k in range(n):
            e = start + k
            rows.append({"phase": phase, "epoch": e, "phase_epoch": k + 1,
                         "train_loss": 1.0 / e, "valid_loss": 1.2 / e + 0.01 * k,
                         "accuracy": min(0.99, 0.6 + 0.04 * e), "seconds": 10.0})
    return pd.DataFrame(rows)


def train_info(best_1: int, best_2: int) -> dict:
    return {"seed": 42, "phases": [
        {"phase": 1, "frozen": True, "epochs_run": 1, "best_epoch": best_1},
        {"phase": 2, "frozen": False, "epochs_run": 1, "best_epoch": best_2}]}


def test_plot_confusion(tmp_path: Path):
    labels = FIVE * 4
    preds = labels[:-3] + ["monocyte", "lymphocyte", "basophil"]
    m = compute_metrics(make_pred(labels, preds, FIVE), FIVE, "test", 42)
    out = tmp_path / "sub" / "confusion.png"
    plot_confusion(m, out)
    width, height = assert_png(out)
    assert width > height


def test_plot_confusion_absent_class(tmp_path: Path):
    labels = ["monocyte"] * 9
    preds = ["monocyte"] * 7 + ["eosinophil", "lymphocyte"]
    m = compute_metrics(make_pred(labels, preds, FIVE), FIVE, "external_monocyte", 1)
    out = tmp_path / "confusion.png"
    plot_confusion(m, out)
    assert_png(out)


def test_plot_per_class(tmp_path: Path):
    labels = ["monocyte"] * 5 + ["lymphocyte"] * 4
    preds = ["monocyte"] * 4 + ["lymphocyte"] * 5
    m = compute_metrics(make_pred(labels, preds, FIVE), FIVE, "ext", 1)
    out = tmp_path / "per_class.png"
    plot_per_class(m, out)
    assert_png(out)


def test_plot_loss_curves(tmp_path: Path):
    out = tmp_path / "loss_curves.png"
    plot_loss_curves(history(9, 12), train_info(6, 16), out)
    assert_png(out)


def test_plot_loss_curves_one_epoch_per_phase(tmp_path: Path):
    out = tmp_path / "loss_curves.png"
    plot_loss_curves(history(1, 1), train_info(1, 2), out)
    assert_png(out)


def test_plot_loss_curves_missing_column(tmp_path: Path):
    with pytest.raises(LeukoError, match="valid_loss"):
        plot_loss_curves(history(2, 2).drop(columns=["valid_loss"]), train_info(1, 3),
                         tmp_path / "x.png")


def test_error_gallery_counts_errors(tmp_path: Path):
    labels = FIVE * 3
    preds = list(labels)
    preds[0], preds[4], preds[7], preds[13] = "eosinophil", "monocyte", "basophil", "lymphocyte"
    pred = make_pred(labels, preds, FIVE)
    write_images(pred, tmp_path)
    expected = sum(1 for y, p in zip(labels, preds) if y != p)
    assert expected == 4
    out = tmp_path / "errors"
    assert plot_error_gallery(pred, FIVE, out, root=tmp_path, columns=3) == expected
    assert [p.name for p in sorted(out.iterdir())] == ["gallery.json", "page-01.png"]
    assert_png(out / "page-01.png")


def test_error_gallery_pages(tmp_path: Path):
    """Many errors are spread over pages of columns x rows thumbnails; a rerun replaces old pages."""
    labels = ["monocyte"] * 8
    preds = ["lymphocyte"] * 7 + ["monocyte"]
    pred = make_pred(labels, preds, FIVE)
    write_images(pred, tmp_path)
    out = tmp_path / "errors"
    assert plot_error_gallery(pred, FIVE, out, root=str(tmp_path), columns=2, rows=2) == 7
    pages = sorted(out.glob("page-*.png"))
    assert [p.name for p in pages] == ["page-01.png", "page-02.png"]
    for page in pages:
        assert_png(page)
    assert plot_error_gallery(pred, FIVE, out, root=str(tmp_path), columns=6, rows=5) == 7
    assert [p.name for p in sorted(out.glob("page-*.png"))] == ["page-01.png"]


def test_error_gallery_no_errors(tmp_path: Path):
    pred = make_pred(FIVE, FIVE, FIVE)
    out = tmp_path / "errors"
    # no images written: nothing should be opened when there are no errors
    assert plot_error_gallery(pred, FIVE, out, root=tmp_path) == 0
    assert_png(out / "page-01.png")


def test_error_gallery_missing_image(tmp_path: Path):
    pred = make_pred(["monocyte"], ["lymphocyte"], FIVE)
    with pytest.raises(LeukoError, match="cell_000.png"):
        plot_error_gallery(pred, FIVE, tmp_path / "errors", root=tmp_path)


def test_plot_confusion_title(tmp_path: Path):
    m = compute_metrics(make_pred(FIVE * 2, FIVE * 2, FIVE), FIVE, "test", 1)
    out = tmp_path / "confusion.png"
    plot_confusion(m, out, title="Test set, summed over 3 seeds")
    assert_png(out)


def test_plot_loss_curves_train_accuracy(tmp_path: Path):
    h = history(3, 4)
    h["train_accuracy"] = h["accuracy"] - 0.05
    out = tmp_path / "loss_curves.png"
    plot_loss_curves(h, train_info(2, 6), out)
    assert_png(out)


def calibration_bins(counts: list[int]) -> list[dict]:
    """Reliability-table bins over [0, 1] with the given counts; empty bins hold None."""
    n = len(counts)
    bins = []
    for i, count in enumerate(counts):
        mid = (i + 0.5) / n
        bins.append({"bin": i, "lower": i / n, "upper": (i + 1) / n, "count": count,
                     "confidence": mid if count else None,
                     "accuracy": min(1.0, mid + 0.05) if count else None,
                     "gap": 0.05 if count else None})
    return bins


def reliability_metrics(counts: list[int]) -> dict:
    return {"dataset": "test", "seed": 3, "calibration": {
        "ece": 0.031, "brier": 0.05, "log_loss": 0.12, "n_bins": len(counts),
        "bins": calibration_bins(counts)}}


def test_plot_reliability(tmp_path: Path):
    out = tmp_path / "reliability.png"
    plot_reliability(reliability_metrics([0] * 5 + [1, 3, 0, 4, 9, 12, 20, 45, 90, 400]), out)
    width, height = assert_png(out)
    assert width > 800 and height > 600


def test_plot_reliability_log_ticks_are_plain_numbers(tmp_path: Path, monkeypatch):
    """The log-scale count axis reads 1, 10, 100 (mathtext is off, so no literal '$\\mathdefault{10^{0}}$')."""
    seen: list[str] = []
    original = matplotlib.text.Text.draw

    def spy(self, renderer):
        seen.append(self.get_text())
        return original(self, renderer)

    monkeypatch.setattr(matplotlib.text.Text, "draw", spy)
    plot_reliability(reliability_metrics([0] * 5 + [1, 3, 0, 4, 9, 12, 20, 45, 90, 400]), tmp_path / "r.png")
    assert not [t for t in seen if "mathdefault" in t or "^{" in t]
    assert {"1", "10", "100"} <= set(seen)


def test_plot_reliability_one_bin(tmp_path: Path):
    """Every image in the last bin, the other bins empty (None values) are skipped."""
    out = tmp_path / "reliability.png"
    plot_reliability(reliability_metrics([0] * 14 + [250]), out)
    assert_png(out)


def test_plot_reliability_bad_input(tmp_path: Path):
    with pytest.raises(LeukoError, match="calibration"):
        plot_reliability({"dataset": "test", "seed": 1}, tmp_path / "x.png")
    m = reliability_metrics([0, 5, 10])
    del m["calibration"]["bins"][1]["upper"]
    with pytest.raises(LeukoError, match=r"bins\[1\].*upper"):
        plot_reliability(m, tmp_path / "x.png")
    with pytest.raises(LeukoError, match="empty"):
        plot_reliability(reliability_metrics([0, 0, 0]), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def loss_pred(n: int) -> pd.DataFrame:
    """`n` predictions with repeated losses (ties) and a mix of right and wrong."""
    labels = [FIVE[i % 5] for i in range(n)]
    preds = [FIVE[(i // 3) % 5] for i in range(n)]
    pred = make_pred(labels, preds, FIVE)
    pred["loss"] = [round((i * 7) % 11 / 3, 2) for i in range(n)]
    return pred.sample(frac=1.0, random_state=0).reset_index(drop=True)


def test_top_loss_rows_matches_independent_sort():
    pred = loss_pred(40)
    expected = sorted(zip(pred["loss"], pred["path"]), key=lambda t: (-t[0], t[1]))[:12]
    top = top_loss_rows(pred, 12)
    assert list(zip(top["loss"], top["path"])) == expected
    assert len(top_loss_rows(pred, 100)) == 40


def test_top_loss_rows_bad_input():
    with pytest.raises(LeukoError, match="loss"):
        top_loss_rows(loss_pred(5).drop(columns=["loss"]), 3)
    with pytest.raises(LeukoError, match="k must be"):
        top_loss_rows(loss_pred(5), 0)


def test_plot_top_losses(tmp_path: Path):
    pred = loss_pred(14)
    write_images(pred, tmp_path)
    out = tmp_path / "top" / "top_losses.png"
    plot_top_losses(pred, FIVE, out, root=tmp_path, k=8, columns=4)
    width, height = assert_png(out)
    assert width > 500 and height > 500


def test_plot_top_losses_fewer_images_than_k(tmp_path: Path):
    pred = loss_pred(3)
    write_images(pred, tmp_path)
    out = tmp_path / "top_losses.png"
    plot_top_losses(pred, FIVE, out, root=tmp_path, k=30)
    width, height = assert_png(out)
    assert width > height


def test_plot_top_losses_bad_input(tmp_path: Path):
    with pytest.raises(LeukoError, match="prediction"):
        plot_top_losses(loss_pred(3).drop(columns=["prediction"]), FIVE, tmp_path / "x.png")
    with pytest.raises(LeukoError, match="no rows"):
        plot_top_losses(loss_pred(3).head(0), FIVE, tmp_path / "x.png")
    with pytest.raises(LeukoError, match="cell_"):
        plot_top_losses(loss_pred(3), FIVE, tmp_path / "x.png", root=tmp_path)


PAIR_COLUMNS = ["path_a", "label_a", "group_a", "path_b", "label_b", "group_b", "distance",
                "kind", "scope", "same_label"]


def make_pairs(n: int) -> pd.DataFrame:
    """`n` duplicate pairs over tiny images, exact and near, one with different labels."""
    rows = []
    for i in range(n):
        rows.append({"path_a": f"imgs/a_{i:02d}.png", "label_a": "monocyte", "group_a": "train",
                     "path_b": f"imgs/b_{i:02d}.png",
                     "label_b": "monocyte" if i % 3 else "lymphocyte",
                     "group_b": "external:external_monocyte" if i % 2 else "test",
                     "distance": 0 if i % 2 else 3, "kind": "exact" if i % 2 else "near",
                     "scope": "training vs external" if i % 2 else "across splits",
                     "same_label": bool(i % 3)})
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def write_pair_images(pairs: pd.DataFrame, root: Path) -> None:
    write_images(pd.DataFrame({"path": list(pairs["path_a"]) + list(pairs["path_b"])}), root)


@pytest.mark.parametrize("n, per_page", [(3, 8), (5, 2)])
def test_pair_gallery_pages(tmp_path: Path, n: int, per_page: int):
    pairs = make_pairs(n)
    write_pair_images(pairs, tmp_path)
    out = tmp_path / "pairs"
    out.mkdir()
    (out / "page-07.png").write_bytes(b"old")
    assert plot_pair_gallery(pairs, out, root=tmp_path, per_page=per_page) == n
    pages = sorted(out.glob("page-*.png"))
    expected = [f"page-{i:02d}.png" for i in range(1, math.ceil(n / per_page) + 1)]
    assert [p.name for p in pages] == expected
    for page in pages:
        width, height = assert_png(page)
        assert width > 600 and height > 300


def test_pair_gallery_no_pairs(tmp_path: Path):
    out = tmp_path / "pairs"
    # no images written: nothing should be opened when there are no pairs
    assert plot_pair_gallery(make_pairs(0), out, root=tmp_path, n_images=120) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gallery.json", "page-01.png"]
    assert_png(out / "page-01.png")


def test_pair_gallery_bad_input(tmp_path: Path):
    with pytest.raises(LeukoError, match="group_b"):
        plot_pair_gallery(make_pairs(2).drop(columns=["group_b"]), tmp_path / "pairs")
    with pytest.raises(LeukoError, match="per_page"):
        plot_pair_gallery(make_pairs(2), tmp_path / "pairs", per_page=0)
    with pytest.raises(LeukoError, match="a_01.png"):  # the exact pair comes first
        plot_pair_gallery(make_pairs(2), tmp_path / "pairs", root=tmp_path)


def test_plot_seed_curves(tmp_path: Path):
    with_train = history(4, 6)
    with_train["train_accuracy"] = with_train["accuracy"] - 0.1
    out = tmp_path / "seeds.png"
    plot_seed_curves({1: history(3, 5), 2: with_train, 3: history(1, 1)}, out)
    width, height = assert_png(out)
    assert 1.8 < width / height < 3.5


def test_plot_seed_curves_bad_input(tmp_path: Path):
    with pytest.raises(LeukoError, match="no seeds"):
        plot_seed_curves({}, tmp_path / "x.png")
    with pytest.raises(LeukoError, match="seed 2.*valid_loss"):
        plot_seed_curves({1: history(2, 2), 2: history(2, 2).drop(columns=["valid_loss"])},
                         tmp_path / "x.png")
    with pytest.raises(LeukoError, match="history of split 7 · seed 1: no rows"):
        plot_seed_curves({"split 7 · seed 1": history(2, 2).iloc[:0]}, tmp_path / "x.png")


def test_plot_seed_curves_with_run_labels(tmp_path: Path):
    out = tmp_path / "runs.png"
    plot_seed_curves({"split 7 · seed 1": history(2, 2), "split 8 · seed 1": history(3, 2)}, out)
    assert_png(out)


def seed_table(split_seeds: list[int], seeds: list[int], dataset: str = "test",
               present: list[str] = FIVE) -> pd.DataFrame:
    """One row per (split seed, seed) run with scores near 97% and recall NaN for absent
    classes."""
    rows = []
    for i, (split, seed) in enumerate((a, b) for a in split_seeds for b in seeds):
        acc = 0.95 + 0.01 * (i % 5)
        row = {"split_seed": split, "seed": seed, "dataset": dataset, "n": 375, "accuracy": acc,
               "balanced_accuracy": acc - 0.004, "macro_f1": acc - 0.006, "ece": 0.01 + 0.002 * i,
               "brier": 0.05, "log_loss": 0.12}
        for j, c in enumerate(FIVE):
            row[f"recall_{c}"] = min(1.0, acc + 0.01 * j) if c in present else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


ENSEMBLE = {"accuracy": 0.985, "balanced_accuracy": 0.98, "macro_f1": 0.981, "ece": 0.008}


def test_plot_seed_values_split_seeds(tmp_path: Path):
    """Several split seeds (coloured, legend) and another dataset in the table."""
    table = pd.concat([seed_table([1, 2, 3], [1, 2, 3]),
                       seed_table([1], [1, 2], "external_monocyte", ["monocyte"])])
    out = tmp_path / "seed_values.png"
    plot_seed_values(table, "test", out)
    width, height = assert_png(out)
    assert width > height > 600


def test_plot_seed_values_one_run(tmp_path: Path):
    """One run: no spread to draw; the recall columns of absent classes are all NaN."""
    out = tmp_path / "one.png"
    plot_seed_values(seed_table([7], [42], "external_monocyte", ["monocyte"]),
                     "external_monocyte", out)
    assert_png(out)


@pytest.mark.parametrize("present", [FIVE, ["lymphocyte", "monocyte"]])
def test_plot_seed_values_ensemble(tmp_path: Path, present: list[str]):
    """Labelled runs (<= 5), tied values and the ensemble diamond, with five or two classes."""
    table = seed_table([1], [1, 2, 3, 42], present=present)
    table["recall_monocyte"] = 1.0
    ensemble = {**ENSEMBLE, "recall_monocyte": 1.0, "recall_lymphocyte": None}
    out = tmp_path / "ensemble.png"
    plot_seed_values(table, "test", out, ensemble=ensemble)
    assert_png(out)


def test_plot_seed_values_bad_input(tmp_path: Path):
    table = seed_table([1], [1, 2])
    with pytest.raises(LeukoError, match="no rows for dataset 'valid'"):
        plot_seed_values(table, "valid", tmp_path / "x.png")
    with pytest.raises(LeukoError, match="macro_f1"):
        plot_seed_values(table.drop(columns=["macro_f1"]), "test", tmp_path / "x.png")
    with pytest.raises(LeukoError, match="ensemble.*'ece'"):
        plot_seed_values(table, "test", tmp_path / "x.png",
                         ensemble={k: v for k, v in ENSEMBLE.items() if k != "ece"})
    assert not (tmp_path / "x.png").exists()


def make_agreement(n: int) -> pd.DataFrame:
    """`n` images over five runs: every fifth wrong in every run, every third unstable, in
    shuffled order with repeated n_correct values."""
    rows = []
    for i in range(n):
        label = FIVE[i % 5]
        wrong = i % 5 == 0
        unstable = not wrong and i % 3 == 0
        n_correct = 0 if wrong else (1 + i % 4 if unstable else 5)
        majority = FIVE[(i + 1) % 5] if wrong or n_correct < 3 else label
        rows.append({"path": f"imgs/{label}/cell_{i:03d}.png", "label": label, "n_runs": 5,
                     "n_correct": n_correct, "n_predicted_classes": 2 if unstable else 1,
                     "majority": majority, "predictions": f"seed 1={majority}; seed 2={label}",
                     "status": "always wrong" if wrong else ("unstable" if unstable else "stable"),
                     "always_wrong": wrong, "unstable": unstable})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


def test_agreement_rows_matches_independent_selection():
    agreement = make_agreement(40)
    records = agreement.to_dict("records")
    wrong = sorted(r["path"] for r in records if r["always_wrong"])
    unstable = [r["path"] for r in sorted((r for r in records if r["unstable"]),
                                          key=lambda r: (r["n_correct"], r["path"]))]
    assert len(wrong) == 8 and len(unstable) == 11
    assert list(agreement_rows(agreement, "always_wrong", 5)["path"]) == wrong[:5]
    assert list(agreement_rows(agreement, "always_wrong", 30)["path"]) == wrong
    assert list(agreement_rows(agreement, "unstable", 30)["path"]) == unstable
    assert list(agreement_rows(agreement, "unstable", 4)["path"]) == unstable[:4]
    # flags read back from a CSV as text select the same rows
    as_text = agreement.astype({"always_wrong": str, "unstable": str})
    assert list(agreement_rows(as_text, "unstable", 30)["path"]) == unstable


def test_agreement_rows_bad_input():
    with pytest.raises(LeukoError, match="kind must be one of"):
        agreement_rows(make_agreement(5), "sometimes_wrong", 10)
    with pytest.raises(LeukoError, match="limit must be"):
        agreement_rows(make_agreement(5), "unstable", 0)
    with pytest.raises(LeukoError, match="n_correct"):
        agreement_rows(make_agreement(5).drop(columns=["n_correct"]), "unstable", 10)


@pytest.mark.parametrize("kind, limit, expected", [("always_wrong", 30, 8), ("unstable", 4, 11)])
def test_plot_agreement_gallery(tmp_path: Path, kind: str, limit: int, expected: int):
    agreement = make_agreement(40)
    write_images(agreement, tmp_path)
    out = tmp_path / "gallery" / f"{kind}.png"
    assert plot_agreement_gallery(agreement, kind, out, root=tmp_path, limit=limit) == expected
    width, height = assert_png(out)
    assert width > 500 and height > 300


def test_plot_agreement_gallery_none_flagged(tmp_path: Path):
    agreement = make_agreement(10).assign(always_wrong=False)
    out = tmp_path / "none.png"
    # no images written: nothing should be opened when no image is flagged
    assert plot_agreement_gallery(agreement, "always_wrong", out, root=tmp_path) == 0
    assert_png(out)


def test_plot_agreement_gallery_bad_input(tmp_path: Path):
    with pytest.raises(LeukoError, match="kind must be one of"):
        plot_agreement_gallery(make_agreement(5), "wrong", tmp_path / "x.png")
    with pytest.raises(LeukoError, match="cell_000.png"):
        plot_agreement_gallery(make_agreement(5), "always_wrong", tmp_path / "x.png",
                               root=tmp_path)
    assert not (tmp_path / "x.png").exists()

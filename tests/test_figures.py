"""Each figure function writes a valid PNG from synthetic inputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from leukoreport.errors import LeukoError
from leukoreport.figures import (plot_confusion, plot_error_gallery, plot_loss_curves,
                                 plot_per_class)
from leukoreport.metrics import compute_metrics

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
    assert [p.name for p in sorted(out.iterdir())] == ["page-01.png"]
    assert_png(out / "page-01.png")


def test_error_gallery_pages(tmp_path: Path):
    """Many errors are spread over pages of columns x rows thumbnails; a rerun replaces old pages."""
    labels = ["monocyte"] * 8
    preds = ["lymphocyte"] * 7 + ["monocyte"]
    pred = make_pred(labels, preds, FIVE)
    write_images(pred, tmp_path)
    out = tmp_path / "errors"
    assert plot_error_gallery(pred, FIVE, out, root=str(tmp_path), columns=2, rows=2) == 7
    pages = sorted(out.iterdir())
    assert [p.name for p in pages] == ["page-01.png", "page-02.png"]
    for page in pages:
        assert_png(page)
    assert plot_error_gallery(pred, FIVE, out, root=str(tmp_path), columns=6, rows=5) == 7
    assert [p.name for p in sorted(out.iterdir())] == ["page-01.png"]


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

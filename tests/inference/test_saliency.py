"""Grad-CAM maps (inference.saliency), overlays and the gallery (report.figures.saliency) on one tiny trained model."""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from leukoreport.base.atomic_io import write_csv
from leukoreport.base.checksums import sha256_file
from leukoreport.base.errors import LeukoError
from leukoreport.data.embeddings import load_embeddings, train_sample
from leukoreport.inference.evaluate import predict_with_features
from leukoreport.inference.model_files import load_model_file
from leukoreport.inference.saliency import (
    cam_batch,
    centre_share,
    class_indices,
    crop_box,
    gradcam_maps,
    gradcam_table,
    saliency_rows,
)
from leukoreport.report.figures.saliency import overlay, plot_saliency_gallery
from leukoreport.stats.metrics import prediction_classes, read_predictions
from leukoreport.training.two_phase import PhaseConfig, TrainConfig

EVALUATE = Path(__file__).resolve().parents[2] / "workflow" / "scripts" / "evaluate.py"
UNCERTAINTY = {"confidence_level": 0.95, "bootstrap_resamples": 99, "bootstrap_seed": 0, "calibration_bins": 5}
CFG = TrainConfig.defaults(size=64, batch_size=8, pretrained=False,  # 64 px: a 2x2 last block
                           phases=[PhaseConfig(False, 3e-3, 3, 3)], device="cpu", num_workers=0, precision="fp32",
                           channels_last=False)


@pytest.fixture(scope="module")
def model(tiny_split, tmp_path_factory, exported_model) -> Path:
    return exported_model(tiny_split, CFG, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def learn(model):
    return load_model_file(model)


@pytest.fixture(scope="module")
def images(tiny_split, tmp_path_factory) -> list[Path]:
    """Two square test images, a wide 60x40 and a tall 37x53 crop of colour noise, and a `$\\frac$` name."""
    root = tmp_path_factory.mktemp("saliency")
    tests = [Path(p) for p in tiny_split[tiny_split["split"] == "test"]["path"]]
    rng = np.random.default_rng(1)
    wide = np.clip(np.array([200, 40, 40]) + rng.normal(0, 30, (40, 60, 3)), 0, 255).astype(np.uint8)
    wide[:, :20] = (40, 40, 200)  # left third another colour
    Image.fromarray(wide).save(root / "wide.png")
    tall = np.clip(np.array([40, 200, 40]) + rng.normal(0, 30, (53, 37, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(tall).save(root / "tall.png")
    shutil.copy(tests[1], root / "MO_$\\frac$_1.png")
    return [tests[0], root / "wide.png", root / "tall.png", root / "MO_$\\frac$_1.png"]


def _predicted(learn, paths: list[Path]) -> list[int]:
    dl = learn.dls.test_dl(paths, bs=len(paths))
    with learn.no_bar():
        probs, _ = learn.get_preds(dl=dl)
    return probs.argmax(dim=1).tolist()


@pytest.fixture(scope="module")
def maps(learn, images):
    targets = _predicted(learn, images)
    return targets, gradcam_maps(learn, images, targets, batch_size=3)  # two batches


@pytest.mark.parametrize("size", [(60, 40), (61, 40), (37, 53), (45, 77), (360, 363), (40, 40)])
def test_crop_box_is_what_fastai_resize_takes(size):
    from fastai.vision.all import PILImage, Resize

    width, height = size
    rng = np.random.default_rng(width * height)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    img = PILImage.create(pixels)
    resized = Resize(32)(img, split_idx=1)  # the valid/test-time path
    box = crop_box(width, height, 64)
    assert box[2] - box[0] == box[3] - box[1] == min(width, height)
    expected = Image.fromarray(pixels).crop(box).resize((32, 32), Image.BILINEAR)
    assert np.array_equal(np.asarray(resized), np.asarray(expected))


def test_maps_have_image_shape_and_zero_outside_the_crop(images, maps):
    _, result = maps
    assert len(result) == len(images)
    for path, cam in zip(images, result):
        width, height = Image.open(path).size
        assert cam.shape == (height, width) and cam.dtype == np.float32
        assert cam.min() >= 0.0 and cam.max() <= 1.0
        left, top, right, bottom = crop_box(width, height, 64)
        inside = np.zeros(cam.shape, dtype=bool)
        inside[top:bottom, left:right] = True
        assert (cam[~inside] == 0).all()
        assert cam[inside].max() > 0.1
    assert crop_box(60, 40, 64) == (10, 0, 50, 40) and (result[1][:, :10] == 0).all()
    assert crop_box(37, 53, 64) == (0, 8, 37, 45)


def test_maps_depend_on_the_target(learn, images, maps):
    targets, result = maps
    other = gradcam_maps(learn, images, [(t + 1) % len(learn.dls.vocab) for t in targets])
    assert max(float(np.abs(a - b).max()) for a, b in zip(result, other)) > 1e-3


def test_equals_pytorch_grad_cam_on_the_same_batch(learn, images, maps):
    import cv2
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets, result = maps
    # a plain tensor: grad-cam's release cannot detach_() the views of a fastai TensorImage
    x = learn.dls.test_dl(images, bs=len(images)).one_batch()[0].as_subclass(torch.Tensor)
    got = cam_batch(learn, x, targets)
    with GradCAM(model=learn.model, target_layers=[learn.model[0][-1]]) as cam:
        expected = cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
    learn.model.zero_grad()
    assert got.shape == (len(images), 64, 64)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for path, full, small in zip(images, result, expected):  # resized onto the crop square, bilinear
        width, height = Image.open(path).size
        left, top, right, bottom = crop_box(width, height, 64)
        square = cv2.resize(small, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(full[top:bottom, left:right], np.clip(square, 0, 1), atol=1e-4)


def test_learner_left_unchanged(model, images):
    import torch

    learn = load_model_file(model)
    learn.freeze()  # a mix of frozen and trainable parameters
    learn.model.train()
    params = list(learn.model.parameters())
    params[-1].grad = torch.ones_like(params[-1])
    flags = [p.requires_grad for p in params]
    state = {k: v.detach().clone() for k, v in learn.model.state_dict().items()}
    modes = [m.training for m in learn.model.modules()]
    before = _predicted(learn, images), learn.get_preds(dl=learn.dls.test_dl(images), with_input=False)[0]
    learn.model.train()
    gradcam_maps(learn, images, [0] * len(images))
    assert [m.training for m in learn.model.modules()] == modes
    assert [p.requires_grad for p in params] == flags and any(flags) and not all(flags)
    assert all(p.grad is None for p in params[:-1]) and torch.equal(params[-1].grad, torch.ones_like(params[-1]))
    after = learn.model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert not learn.model[0][-1]._forward_hooks and not learn.model[0][-1]._backward_hooks
    assert _predicted(learn, images) == before[0]
    assert torch.equal(learn.get_preds(dl=learn.dls.test_dl(images))[0], before[1])


def test_bad_input_names_the_file(learn, images, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(LeukoError, match="broken.png: cannot open image"):
        gradcam_maps(learn, [images[0], bad], [0, 0])
    with pytest.raises(LeukoError, match="wide.png: target 7 is not a class index"):
        gradcam_maps(learn, images[:2], [0, 7])
    with pytest.raises(LeukoError, match="2 images but 1 targets"):
        gradcam_maps(learn, images[:2], [0])
    assert gradcam_maps(learn, [], []) == []


def test_a_1x1_last_block_is_refused(tiny_split, images):
    from leukoreport.training.two_phase import build_learner, make_dataloaders

    small_cfg = TrainConfig.defaults(size=32, device="cpu", num_workers=0, precision="fp32", channels_last=False)
    small = build_learner(make_dataloaders(tiny_split, small_cfg, "cpu"), False)
    with pytest.raises(LeukoError, match="Grad-CAM needs more than 32 px"):
        gradcam_maps(small, images[:1], [0])


def test_overlay_and_gallery(learn, images, maps, tmp_path):
    targets, result = maps
    shown = overlay(images[1], result[1])
    assert shown.size == (60, 40) and shown.mode == "RGB"
    assert not np.array_equal(np.asarray(shown), np.asarray(Image.open(images[1]).convert("RGB")))
    vocab = [str(c) for c in learn.dls.vocab]
    rows = pd.DataFrame({"path": [str(p) for p in images], "label": ["a$b$", vocab[0], vocab[1], "a$b$"],
                         "prediction": [vocab[t] for t in targets]})
    for c in vocab:
        rows[f"prob_{c}"] = 1.0 / len(vocab)
    rows["why"] = ["error", "top loss", "top loss", "error"]
    out = tmp_path / "saliency.png"
    plot_saliency_gallery(rows, result, out, title="Grad-CAM of $x$ images", columns=3)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 1000
    with pytest.raises(LeukoError, match="4 rows but 3 maps"):
        plot_saliency_gallery(rows, result[:3], tmp_path / "x.png")


def test_saliency_rows_errors_first_then_top_losses():
    pred = pd.DataFrame({"path": ["a.png", "b.png", "c.png", "d.png", "e.png"],
                         "label": ["x", "x", "y", "y", "x"],
                         "prediction": ["y", "y", "y", "x", "x"],
                         "prob_x": [0.3, 0.1, 0.2, 0.6, 0.55],
                         "prob_y": [0.7, 0.9, 0.8, 0.4, 0.45]})
    pred["loss"] = -np.log([pred.loc[i, f"prob_{pred.loc[i, 'label']}"] for i in pred.index])
    rows = saliency_rows(pred, errors_limit=2, top_losses=3)
    assert rows["path"].tolist() == ["b.png", "a.png", "d.png"]  # b, a also the top losses: kept once
    assert rows["why"].tolist() == ["error", "error", "top loss"]
    assert rows["target"].tolist() == rows["prediction"].tolist() == ["y", "y", "x"]
    assert saliency_rows(pred, 0, 1)["path"].tolist() == ["b.png"]
    assert saliency_rows(pred, 5, 0)["why"].tolist() == ["error"] * 3
    with pytest.raises(LeukoError, match="errors_limit must be a non-negative integer"):
        saliency_rows(pred, -1, 3)


def test_class_indices(learn):
    vocab = [str(c) for c in learn.dls.vocab]
    assert class_indices(learn, vocab[::-1]) == list(range(len(vocab)))[::-1]
    with pytest.raises(LeukoError, match="class 'nope': not a class"):
        class_indices(learn, ["nope"])


def test_centre_share_of_simple_maps():
    from leukoreport.inference.saliency import centre_share

    cam = np.zeros((40, 60), dtype=np.float32)
    assert np.isnan(centre_share(cam))
    cam[10:30, 15:45] = 1.0
    assert centre_share(cam) == 1.0
    assert centre_share(np.ones((40, 60))) == pytest.approx(20 * 30 / (40 * 60))
    cam[:] = 0
    cam[0:5, 0:5] = 1.0
    assert centre_share(cam) == 0.0


def _old_gradcam_csv(learn, predictions: Path, n: int, top_losses: int, out: Path) -> tuple[str, list[np.ndarray]]:
    """What the removed gradcam job wrote as saliency.csv, by the saliency functions called one by one."""
    classes = prediction_classes(predictions)
    rows = saliency_rows(read_predictions(predictions, classes), n, min(n, top_losses)).head(n)
    maps = gradcam_maps(learn, [Path(p) for p in rows["path"]], class_indices(learn, list(rows["target"])))
    write_csv(rows.assign(cam_centre_share=[centre_share(m) for m in maps]), out)
    return out.read_text(), maps


@pytest.fixture(scope="module")
def evaluate_job(model, tiny_split, tmp_path_factory) -> SimpleNamespace:
    """workflow/scripts/evaluate.py run on the test split with Grad-CAM and the training embeddings asked for."""
    root = tmp_path_factory.mktemp("evaluate_job")
    split_csv = root / "split.csv"
    tiny_split.to_csv(split_csv, index=False)
    info = root / "train.json"
    info.write_text(json.dumps({"model_sha256": sha256_file(model)}))
    names = {"predictions": "predictions.csv", "embeddings": "embeddings.npz", "metrics": "metrics.json",
             "timing": "timing.json", "saliency_table": "saliency.csv", "saliency_figure": "saliency.png",
             "train_embeddings": "train_embeddings.npz"}
    output = SimpleNamespace(**{key: str(root / "out" / name) for key, name in names.items()})
    job = SimpleNamespace(
        input=SimpleNamespace(model=str(model), info=str(info), images=str(split_csv), split=str(split_csv),
                              reference=[]),
        output=output, log=[str(root / "evaluate.log")], threads=0, wildcards=SimpleNamespace(split="42", seed="3"),
        params=SimpleNamespace(dataset="test", batch_size=4, device="cpu", uncertainty=UNCERTAINTY, tta=False,
                               evaluation={"adabn": False, "stain_normalisation": "none"},
                               gradcam={"images": 5, "top_losses": 3}, train_sample=7))
    (root / "out").mkdir()
    runpy.run_path(str(EVALUATE), init_globals={"snakemake": job})
    return job


def test_evaluate_job_writes_what_the_gradcam_job_wrote(evaluate_job, learn, tmp_path):
    out = evaluate_job.output
    expected, maps = _old_gradcam_csv(learn, Path(out.predictions), 5, 3, tmp_path / "saliency.csv")
    assert Path(out.saliency_table).read_text() == expected
    table = pd.read_csv(out.saliency_table)
    assert 0 < len(table) <= 5 and len(maps) == len(table)
    assert Image.open(out.saliency_figure).size[0] > 100
    rows, got = gradcam_table(learn, out.predictions, 5, 3)
    assert all(np.array_equal(a, b) for a, b in zip(got, maps))


def test_evaluate_job_embeds_the_training_sample_and_times_its_diagnostics(evaluate_job, learn, tiny_split):
    out = evaluate_job.output
    rows = train_sample(tiny_split, 7, 3)
    _, direct = predict_with_features(learn, rows, 4, 0)
    saved = load_embeddings(out.train_embeddings)
    assert saved.paths == list(rows["path"]) and 0 < len(rows) < (tiny_split["split"] == "train").sum()
    np.testing.assert_allclose(saved.features, direct.features, rtol=1e-5, atol=1e-6)
    timing = json.loads(Path(out.timing).read_text())
    assert timing["rule"] == "evaluate" and set(timing["diagnostics"]) == {"gradcam", "embed_train"}
    for spent in timing["diagnostics"].values():
        assert spent["s"] > 0 and spent["cpu_time"] > 0

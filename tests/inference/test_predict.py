"""`leukoreport predict`: a tiny trained model on good, bad and real images (leukoreport.inference.predict, cli)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from leukoreport.cli import main
from leukoreport.inference import predict as predict_module
from tests.conftest import tiny_train_config

ROOT = Path(__file__).resolve().parents[2]
CFG = tiny_train_config()
BAD = {"corrupt.png": "not an image file (PIL cannot identify it)", "damaged.png": "corrupt or truncated image",
       "truncated.jpg": "corrupt or truncated image", "notes.txt": "not an image file (suffix '.txt'",
       "empty.png": "not an image file (empty file)"}


@pytest.fixture(scope="module")
def model(tiny_split, tmp_path_factory, exported_model) -> Path:
    """model.pkl, with model.safetensors and model.json beside it."""
    return exported_model(tiny_split, CFG, tmp_path_factory.mktemp("model"), safe=True)


@pytest.fixture(scope="module")
def reference(model):
    """The exported learner, loaded with fastai alone (not through leukoreport)."""
    import warnings

    from fastai.vision.all import load_learner

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*insecure pickle")
        return load_learner(model)


@pytest.fixture(scope="module")
def folder(tiny_split, tmp_path_factory) -> Path:
    """Good PNGs (one in a subfolder), a good JPEG, a hidden image, and four files that are not images."""
    root = tmp_path_factory.mktemp("mixed") / "cells"
    (root / "sub").mkdir(parents=True)
    tests = tiny_split[tiny_split["split"] == "test"]["path"].tolist()
    shutil.copy(tests[0], root / "b_good.png")
    shutil.copy(tests[1], root / "sub" / "a_good.png")
    shutil.copy(tests[2], root / ".hidden.png")
    with Image.open(tests[3]) as img:
        img.convert("RGB").save(root / "c_good.jpg", quality=95)
    rng = np.random.default_rng(0)
    (root / "corrupt.png").write_bytes(rng.bytes(2000))  # random bytes
    png = bytearray(Path(tests[4]).read_bytes())  # a real PNG with its pixel data overwritten
    png[len(png) // 2: len(png) // 2 + 64] = rng.bytes(64)
    (root / "damaged.png").write_bytes(bytes(png))
    pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "full.jpeg")
    data = (root / "full.jpeg").read_bytes()
    (root / "full.jpeg").unlink()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "notes.txt").write_text("not an image\n")
    (root / "empty.png").write_bytes(b"")
    return root


def _expected_files(root: Path) -> list[str]:
    """Every non-hidden file below root, sorted by path (computed with os.walk)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f).as_posix() for f in filenames if not f.startswith(".")]
    return sorted(found)


def _probs(table: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return table[["prob_" + c for c in classes]].to_numpy(dtype=float)


@pytest.fixture(scope="module")
def mixed_run(model, folder, tmp_path_factory):
    """`predict` on the mixed folder with PIL's truncated-image setting relaxed (as WeasyPrint does)."""
    out = tmp_path_factory.mktemp("pred") / "predictions.csv"
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        err, std = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
            code = main(["predict", str(model), str(folder), "--out", str(out), "--device", "cpu"])
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    return code, pd.read_csv(out, keep_default_na=False, na_values=[""]), err.getvalue(), std.getvalue(), out


def test_bad_files_get_rows_and_one_stderr_line_each(mixed_run, folder, reference):
    code, table, err, out, path = mixed_run
    classes = [str(c) for c in reference.dls.vocab]
    assert code == 1
    assert list(table.columns) == ["path", "prediction", *("prob_" + c for c in classes), "status"]
    assert table["path"].tolist() == _expected_files(folder)  # hidden file skipped, subfolder included
    lines = err.splitlines()
    assert len(lines) == len(BAD)
    for name, reason in BAD.items():
        where = (folder / name).as_posix()
        line = [text for text in lines if where in text]
        assert len(line) == 1 and line[0].startswith(f"error: {where}: ") and reason in line[0], (name, lines)
        row = table[table["path"] == where].iloc[0]
        assert reason in row["status"] and where not in row["status"]
        assert pd.isna(row["prediction"]) and np.isnan(_probs(table[table["path"] == where], classes)).all()
    assert out.strip() == f"wrote {path.as_posix()}: 8 files, 3 classified, 5 failed"


def test_good_rows_equal_fastai_predict(mixed_run, reference):
    _, table, _, _, _ = mixed_run
    classes = [str(c) for c in reference.dls.vocab]
    good = table[table["status"] == "ok"]
    assert len(good) == 3
    probs = _probs(good, classes)
    assert probs.sum(axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    for (_, row), p in zip(good.iterrows(), probs):
        label, _, expected = reference.predict(row["path"])
        assert p == pytest.approx(expected.numpy().astype(float), abs=1e-5)
        assert row["prediction"] == label == classes[int(np.argmax(p))]


@pytest.mark.parametrize("batch_size", [64, 4])
def test_fast_inference_equals_fastai_get_preds(model, reference, tiny_split, batch_size):
    """predict_probabilities (channels-last model, no workers for a single batch) against fastai's own
    get_preds on the contiguous model: probabilities within 1e-6, the same argmax, the model left contiguous."""
    learn = predict_module.load_learner_on(model, "cpu")
    paths = [Path(p) for p in tiny_split["path"][:10]]
    got = predict_module.predict_probabilities(learn, paths, batch_size)
    with reference.no_bar():
        expected, _ = reference.get_preds(dl=reference.dls.test_dl(paths, bs=batch_size))
    expected = expected.numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert all(p.is_contiguous() for p in learn.model.parameters())


def test_external_monocytes_all_ok(model, tmp_path, capsys):
    out = tmp_path / "external.csv"
    assert main(["predict", str(model), str(ROOT / "data" / "external_monocyte"), "--out", str(out),
                 "--device", "cpu", "--batch-size", "4"]) == 0
    table = pd.read_csv(out)
    expected = sorted(p.as_posix() for p in (ROOT / "data" / "external_monocyte").rglob("*")
                      if p.is_file() and not p.name.startswith("."))
    assert len(expected) == 9 and table["path"].tolist() == expected
    assert (table["status"] == "ok").all()
    assert capsys.readouterr().err == ""


def test_tta_changes_probabilities_not_rows(model, reference, folder, mixed_run, tmp_path, capsys):
    from fastai.torch_core import set_seed

    _, plain, _, _, _ = mixed_run
    out = tmp_path / "tta.csv"
    assert main(["predict", str(model), str(folder), "--out", str(out), "--tta", "--device", "cpu"]) == 1
    tta = pd.read_csv(out, keep_default_na=False, na_values=[""])
    classes = [str(c) for c in reference.dls.vocab]
    assert tta["path"].tolist() == plain["path"].tolist()
    assert tta["status"].tolist() == plain["status"].tolist()
    ok = tta["status"] == "ok"
    got = _probs(tta[ok], classes)
    assert got.sum(axis=1) == pytest.approx(np.ones(ok.sum()), abs=1e-5)
    assert np.abs(got - _probs(plain[ok], classes)).max() > 1e-4
    # the same computation with fastai alone: seed 0, Learner.tta's defaults on a test dataloader
    dl = reference.dls.test_dl(tta.loc[ok, "path"].tolist(), bs=64)
    set_seed(0, reproducible=True)
    with reference.no_bar():
        expected, _ = reference.tta(dl=dl)
    assert got == pytest.approx(expected.numpy().astype(float), abs=1e-5)


def test_files_and_folders_in_argument_order_without_duplicates(model, folder, tmp_path):
    out = tmp_path / "p.csv"
    jpeg, png = folder / "c_good.jpg", folder / "sub" / "a_good.png"
    assert main(["predict", str(model), str(jpeg), str(folder / "sub"), str(png), "--out", str(out),
                 "--device", "cpu"]) == 0
    assert pd.read_csv(out)["path"].tolist() == [jpeg.as_posix(), png.as_posix()]


def test_a_batch_failure_is_narrowed_to_the_file(model, folder, monkeypatch):
    """An image that validates but fails inside fastai gets its own reason; the others are still classified."""
    from leukoreport.inference.predict import load_learner_on, predict_images

    learn = load_learner_on(model)
    images = [folder / "b_good.png", folder / "c_good.jpg", folder / "sub" / "a_good.png"]
    expected = predict_images(learn, images).table
    original = predict_module.predict_probabilities

    def flaky(learn, paths, *args, **kwargs):
        if images[1] in paths:
            raise RuntimeError("boom")
        return original(learn, paths, *args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_probabilities", flaky)
    result = predict_images(learn, images)
    assert result.table["status"].tolist() == ["ok", "cannot classify (RuntimeError: boom)", "ok"]
    assert result.failures == [(images[1].as_posix(), "cannot classify (RuntimeError: boom)")]
    cols = [c for c in expected.columns if c.startswith("prob_")]
    keep = [0, 2]
    assert np.allclose(result.table.loc[keep, cols].to_numpy(float), expected.loc[keep, cols].to_numpy(float),
                       atol=1e-5)


def test_progress_lines_while_images_are_left_and_probabilities_unchanged(model, tmp_path, monkeypatch, capsys):
    """9 images in batches of 2 with a line every 2 batches: lines after 4 and 8 images, none at the end; the
    probabilities equal a run without progress. The CLI writes them to stderr."""
    import leukoreport.inference.evaluate as evaluate
    from leukoreport.inference.predict import load_learner_on, predict_images

    learn = load_learner_on(model)
    images = sorted((ROOT / "data" / "external_monocyte" / "monocyte").glob("*.*"))
    assert len(images) == 9
    lines: list[str] = []
    with_lines = predict_images(learn, images, batch_size=2, progress=lines.append, progress_every=2).table
    assert [line.split(" images")[0] for line in lines] == ["classified 4/9", "classified 8/9"]
    plain = predict_images(learn, images, batch_size=2).table
    pd.testing.assert_frame_equal(with_lines, plain)
    assert not learn.cbs.filter(lambda cb: type(cb).__name__ == "BatchProgress")  # the learner is left as it came
    monkeypatch.setattr(evaluate, "PROGRESS_EVERY", 4)
    assert main(["predict", str(model), str(ROOT / "data" / "external_monocyte"), "--out", str(tmp_path / "p.csv"),
                 "--device", "cpu", "--batch-size", "1"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" images")[0] for line in err] == ["classified 4/9", "classified 8/9"], err


def test_missing_model_exits_2_with_one_line(folder, tmp_path, capsys):
    missing = tmp_path / "nope" / "model.pkl"
    out = tmp_path / "p.csv"
    assert main(["predict", str(missing), str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {missing.as_posix()}: model file not found\n"
    assert not out.exists()


def test_missing_image_path_exits_2(model, tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    assert main(["predict", str(model), str(missing), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {missing.as_posix()}: ")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("argv", [["--batch-size", "0"], ["--device", "gpu"], []])
def test_bad_options_exit_2(model, folder, tmp_path, argv, capsys):
    extra = argv or []
    out = [] if not argv else ["--out", str(tmp_path / "p.csv")]  # [] : --out is required
    assert main(["predict", str(model), str(folder), *out, *extra]) == 2
    assert "usage: leukoreport predict" in capsys.readouterr().err


def test_cuda_requested_without_cuda(model, folder, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["predict", str(model), str(folder), "--out", str(tmp_path / "p.csv"), "--device", "cuda"]) == 2
    assert capsys.readouterr().err == ("error: --device: 'cuda' requested but CUDA is not available on this machine "
                                       "(use cpu)\n")


# --------------------------------------------------------------------------- model.safetensors and model.pkl

@pytest.mark.parametrize("tta", [False, True], ids=["plain", "tta"])
def test_safetensors_and_pkl_write_the_same_csv(model, tmp_path, tta):
    """`leukoreport predict` on the nine external monocytes: byte-identical CSVs from model.pkl, model.safetensors
    and model.json, with and without --tta."""
    extra = ["--tta", "--seed", "5"] if tta else []
    written = {}
    for name in ("model.pkl", "model.safetensors", "model.json"):
        out = tmp_path / f"{name}.csv"
        assert main(["predict", str(model.parent / name), str(ROOT / "data" / "external_monocyte"), "--out", str(out),
                     "--device", "cpu", "--batch-size", "4", *extra]) == 0
        written[name] = out.read_bytes()
    assert len(pd.read_csv(tmp_path / "model.pkl.csv")) == 9
    assert written["model.pkl"] == written["model.safetensors"] == written["model.json"]


def test_a_crafted_pickle_with_another_hash_in_train_json_is_refused(model, folder, tmp_path, capsys,
                                                                     write_crafted_pickle):
    """Exit 2 with one line naming both hashes; the pickle's code never runs, no CSV is written; the genuine
    model.safetensors beside it predicts without running it either."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.safetensors", "model.json"):
        shutil.copy(model.parent / name, run / name)
    marker = tmp_path / "marker"
    crafted = write_crafted_pickle(run / "model.pkl", marker)
    genuine = hashlib.sha256(model.read_bytes()).hexdigest()
    (run / "train.json").write_text(json.dumps({"model_sha256": genuine}))
    out = tmp_path / "p.csv"
    assert main(["predict", str(crafted), str(folder / "b_good.png"), "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    actual = hashlib.sha256(crafted.read_bytes()).hexdigest()
    assert err.count("\n") == 1 and err.startswith(f"error: {crafted.as_posix()}: SHA-256 {actual} differs from "
                                                    f"{genuine} recorded in {(run / 'train.json').as_posix()}")
    assert not marker.exists() and not out.exists()
    assert main(["predict", str(run / "model.safetensors"), str(folder / "b_good.png"), "--out", str(out),
                 "--device", "cpu", "--tta"]) == 0
    assert not marker.exists() and out.is_file()


def test_the_cli_shows_fastais_pickle_warning_for_model_pkl_only(model, folder, tmp_path):
    """As a user runs it (a fresh Python): the insecure-pickle warning reaches stderr for model.pkl, not for
    model.safetensors."""
    code = ("import sys\nfrom leukoreport.cli import main\n"
            "for name in ('model.pkl', 'model.safetensors'):\n"
            "    print(f'=== {name}', file=sys.stderr, flush=True)\n"
            f"    main(['predict', {str(model.parent)!r} + '/' + name, {str(folder / 'b_good.png')!r}, '--out', "
            f"{str(tmp_path / 'p.csv')!r}, '--device', 'cpu'])\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    pkl, safe = done.stderr.split("=== model.safetensors")
    assert "insecure pickle module" in pkl and "Only load files you trust" in pkl
    assert "pickle" not in safe

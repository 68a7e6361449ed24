"""Tests for leukoreport.data.images and data.split: discovery, validation, subsampling, splitting, CSV writing."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from leukoreport.base.errors import LeukoError
from leukoreport.config.class_names import match_classes
from leukoreport.data.images import (
    IMAGE_SUFFIXES,
    UnsupportedImage,
    discover,
    to_rgb,
    validate_image,
)
from leukoreport.data.split import split_counts, stratified_split, subsample

DATA = Path(__file__).parents[2] / "data"
CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def jpeg_bytes(size: tuple[int, int] = (32, 32), seed: int = 0) -> bytes:
    """A small noisy RGB JPEG (noise so that cutting it in half really truncates scan data)."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_tree(root: Path, counts: dict[str, int]) -> Path:
    """An ImageFolder tree with `counts[cls]` tiny JPEGs per class."""
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / cls / f"{cls[:2]}_{i:03d}.jpg").write_bytes(jpeg_bytes((8, 8), seed=i))
    return root


def frame(counts: dict[str, int]) -> pd.DataFrame:
    """A discover()-like frame without files on disk (for split/subsample tests)."""
    rows = [(f"root/{c}/{c[:2]}_{i:04d}.jpg", c) for c in sorted(counts) for i in range(counts[c])]
    return pd.DataFrame(rows, columns=["path", "label"])


def bad_input(fn, *args) -> str:
    """Call fn, expect a LeukoError, check it is one line, return its message."""
    with pytest.raises(LeukoError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg and msg == msg.strip()
    return msg


# ---------------------------------------------------------------- discover


def test_image_suffixes():
    assert {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"} == IMAGE_SUFFIXES
    assert isinstance(IMAGE_SUFFIXES, frozenset)


def test_discover_classes_and_paths(tmp_path):
    root = make_tree(tmp_path / "ds", {"b": 2, "a": 3})
    df = discover(root)
    assert list(df.columns) == ["path", "label"]
    assert df["label"].tolist() == ["a", "a", "a", "b", "b"]
    assert df["path"].tolist() == sorted(df["path"]) and df.index.tolist() == list(range(5))
    assert df["path"].iloc[0] == (root / "a" / "a_000.jpg").as_posix()


def test_discover_keeps_relative_root(tmp_path, monkeypatch):
    make_tree(tmp_path / "data" / "ds", {"x": 1})
    monkeypatch.chdir(tmp_path)
    df = discover("data/ds")
    assert df["path"].tolist() == ["data/ds/x/x_000.jpg"]


def test_discover_skips_hidden(tmp_path):
    root = make_tree(tmp_path / "ds", {"a": 2})
    (root / ".DS_Store").write_bytes(b"junk")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.txt").write_text("junk")
    (root / "a" / ".hidden.jpg").write_bytes(b"not a jpeg")
    (root / "a" / ".ipynb_checkpoints").mkdir()
    df = discover(root)
    assert df["label"].unique().tolist() == ["a"] and len(df) == 2


def test_discover_accepts_other_formats(tmp_path):
    cls = tmp_path / "ds" / "c"
    cls.mkdir(parents=True)
    Image.new("RGB", (6, 5), (10, 20, 30)).save(cls / "rgb.png")
    Image.new("RGB", (6, 5)).save(cls / "rgb.bmp")
    Image.new("RGB", (6, 5)).save(cls / "rgb.tiff")
    Image.new("L", (6, 5), 128).save(cls / "gray.jpg")
    Image.new("RGBA", (6, 5), (1, 2, 3, 100)).save(cls / "rgba.png")
    Image.new("P", (6, 5)).save(cls / "pal.gif")
    (cls / "upper.JPEG").write_bytes(jpeg_bytes((8, 8)))
    df = discover(tmp_path / "ds")
    assert sorted(Path(p).name for p in df["path"]) == sorted(
        ["rgb.png", "rgb.bmp", "rgb.tiff", "gray.jpg", "rgba.png", "pal.gif", "upper.JPEG"])


def test_corrupt_image(tmp_path):
    root = make_tree(tmp_path / "ds", {"a": 1})
    bad = root / "a" / "noise.jpg"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    msg = bad_input(discover, root)
    assert msg.startswith(f"{bad.as_posix()}: not an image file")


def test_corrupt_png_data(tmp_path):
    root = make_tree(tmp_path / "ds", {"a": 1})
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[data.index(b"IDAT") + 20] ^= 0xFF  # PIL identifies it, but decoding fails
    bad = root / "a" / "flipped.png"
    bad.write_bytes(bytes(data))
    assert bad_input(discover, root).startswith(f"{bad.as_posix()}: corrupt or truncated image (")


def test_truncated_jpeg(tmp_path):
    root = make_tree(tmp_path / "ds", {"a": 1})
    data = jpeg_bytes((64, 64))
    bad = root / "a" / "half.jpg"
    bad.write_bytes(data[: len(data) // 2])
    msg = bad_input(discover, root)
    assert msg.startswith(f"{bad.as_posix()}: corrupt or truncated image (")
    assert "truncated" in msg
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_empty_image_file(tmp_path):
    root = make_tree(tmp_path / "ds", {"a": 1})
    (root / "a" / "zero.png").write_bytes(b"")
    assert bad_input(discover, root).startswith(f"{(root / 'a' / 'zero.png').as_posix()}: not an image file")


def test_non_image_file(tmp_path):
    root = make_tree(tmp_path / "ds", {"a": 1})
    (root / "a" / "notes.txt").write_text("hello")
    assert bad_input(discover, root).startswith(f"{(root / 'a' / 'notes.txt').as_posix()}: not an image file")


def test_real_image_with_wrong_suffix(tmp_path):
    root = make_tree(tmp_path / "ds", {"a": 1})
    (root / "a" / "img.dat").write_bytes(jpeg_bytes())
    assert bad_input(discover, root).startswith(f"{(root / 'a' / 'img.dat').as_posix()}: not an image file")


def test_empty_class_folder(tmp_path):
    root = make_tree(tmp_path / "ds", {"a": 1})
    (root / "b").mkdir()
    (root / "b" / ".keep").write_text("")
    assert bad_input(discover, root) == f"{(root / 'b').as_posix()}: empty class folder"


def test_missing_folder(tmp_path):
    assert bad_input(discover, tmp_path / "nope") == f"{(tmp_path / 'nope').as_posix()}: folder not found"


def test_root_is_a_file(tmp_path):
    f = tmp_path / "ds.zip"
    f.write_bytes(b"PK")
    assert bad_input(discover, f).startswith(f"{f.as_posix()}: not a folder")


def test_no_class_folders(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / ".hidden").mkdir()
    assert bad_input(discover, tmp_path / "ds").startswith(f"{(tmp_path / 'ds').as_posix()}: no class folders")


def test_file_in_root(tmp_path):
    root = make_tree(tmp_path / "ds", {"a": 1})
    (root / "stray.jpg").write_bytes(jpeg_bytes())
    assert bad_input(discover, root).startswith(f"{(root / 'stray.jpg').as_posix()}: ")


def test_nested_folder(tmp_path):
    root = make_tree(tmp_path / "ds", {"a": 1})
    (root / "a" / "more").mkdir()
    assert bad_input(discover, root).startswith(f"{(root / 'a' / 'more').as_posix()}: nested folder")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_broken_link(tmp_path):
    root = make_tree(tmp_path / "ds", {"a": 1})
    os.symlink(tmp_path / "missing.jpg", root / "a" / "link.jpg")
    assert bad_input(discover, root).startswith(f"{(root / 'a' / 'link.jpg').as_posix()}: broken link (its target ")


def test_discover_skips_os_junk(tmp_path):
    """Windows thumbnails and folder settings, NAS and zip-archive folders are skipped like hidden files."""
    root = make_tree(tmp_path / "ds", {"a": 2})
    for folder in (root, root / "a"):
        (folder / "Thumbs.db").write_bytes(b"junk")
        (folder / "desktop.ini").write_text("[.ShellClassInfo]")
        (folder / "._a_000.jpg").write_bytes(b"\x00\x05\x16\x07")
    (root / "__MACOSX" / "a").mkdir(parents=True)
    (root / "__MACOSX" / "a" / "._a_000.jpg").write_bytes(b"\x00\x05\x16\x07")
    (root / "a" / "@eaDir").mkdir()
    df = discover(root)
    assert df["label"].unique().tolist() == ["a"] and len(df) == 2


# ---------------------------------------------------------------- pixel formats


def test_to_rgb_refuses_16_bit_grayscale(tmp_path):
    """fastai's loader (evaluation, prediction, the exported model) clips 16-bit grayscale above 255 to white, so
    no conversion here could match it: refused, in to_rgb and in discover, in one line naming the file."""
    values = np.array([[0, 128, 129, 257, 32767, 65534, 65535]], dtype=np.uint16)
    little = Image.fromarray(values)
    big_endian = Image.frombytes("I;16B", (7, 1), values.astype(">u2").tobytes())
    assert (little.mode, big_endian.mode) == ("I;16", "I;16B")
    for img in (little, big_endian):
        with pytest.raises(UnsupportedImage, match=rf"^mode {img.mode}: 16-bit grayscale .*save it as 8-bit$"):
            to_rgb(img)
    folder = tmp_path / "ds" / "a"
    folder.mkdir(parents=True)
    Image.new("RGB", (4, 4), (1, 2, 3)).save(folder / "ok.png")
    little.save(folder / "g16.tif")
    with Image.open(folder / "g16.tif") as img:
        assert img.mode == "I;16"
    msg = bad_input(discover, tmp_path / "ds")
    assert msg.startswith(f"{(folder / 'g16.tif').as_posix()}: unsupported image (mode I;16: 16-bit grayscale"), msg


def test_to_rgb_keeps_pil_conversion_for_8_bit_modes():
    for mode, colour, expected in [("L", 7, (7, 7, 7)), ("RGBA", (1, 2, 3, 0), (1, 2, 3)),
                                   ("CMYK", (0, 255, 0, 0), (255, 0, 255)), ("1", 1, (255, 255, 255))]:
        img = Image.new(mode, (2, 2), colour)
        assert to_rgb(img).getpixel((0, 0)) == expected, mode
    rgb = Image.new("RGB", (2, 2), (4, 5, 6))
    assert to_rgb(rgb) is not rgb  # a new image, like convert("RGB")


@pytest.mark.parametrize("array", [np.full((4, 4), 70000, dtype=np.int32), np.full((4, 4), 0.5, dtype=np.float32)])
def test_32_bit_and_float_images_are_refused_in_one_line(tmp_path, array):
    path = tmp_path / "deep.tif"
    Image.fromarray(array).save(path)
    msg = bad_input(validate_image, path)
    assert msg.startswith(f"{path.as_posix()}: unsupported image (mode ") and msg.endswith("save it as 8-bit)")


def test_images_over_pils_pixel_limit_are_refused(tmp_path, monkeypatch):
    """Above Image.MAX_IMAGE_PIXELS PIL only warns (it refuses at twice that): refused from the limit on."""
    path = tmp_path / "big.png"
    Image.new("RGB", (60, 50)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 3000 pixels: PIL's warning, not its error
    assert bad_input(validate_image, path).startswith(f"{path.as_posix()}: image too large (")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    validate_image(path)


# ---------------------------------------------------------------- external class folders


def test_external_class_folders_match_or_stop_with_one_line(tmp_path):
    """classnames.match_classes, as the workflow's external step calls it on discovered folders."""
    assert match_classes(["monocyte"], CLASSES, None, "ext") == {"monocyte": "monocyte"}
    msg = bad_input(match_classes, ["monocyte", "platelet"], CLASSES, None, Path("ext"))
    assert msg == ("ext/platelet: class 'platelet' is not a training class "
                   "(basophil, eosinophil, lymphocyte, monocyte, neutrophil); rename the folder or map it with "
                   "config key class_aliases")


# ---------------------------------------------------------------- subsample


def test_subsample_cap_and_determinism():
    df = frame({"a": 10, "b": 3, "c": 7})
    assert subsample(df, None, 0) is df
    s1 = subsample(df, 5, seed=1)
    assert s1.groupby("label").size().to_dict() == {"a": 5, "b": 3, "c": 5}
    assert s1.equals(subsample(df, 5, seed=1))
    assert not s1.equals(subsample(df, 5, seed=2))
    assert s1.equals(s1.sort_values(["label", "path"], ignore_index=True))
    assert set(s1["path"]) <= set(df["path"])
    assert bad_input(subsample, df, 0, 1).startswith("max_per_class:")


# ---------------------------------------------------------------- stratified_split


def test_split_stratified_exact():
    df = frame({"a": 100, "b": 40, "c": 20})
    s = stratified_split(df, seed=3)
    assert list(s.columns) == ["path", "label", "split"]
    counts = s.groupby(["label", "split"]).size().unstack()[["train", "valid", "test"]]
    assert counts.loc["a"].tolist() == [70, 15, 15]
    assert counts.loc["b"].tolist() == [28, 6, 6]
    assert counts.loc["c"].tolist() == [14, 3, 3]


def test_split_every_image_once():
    df = frame({"a": 33, "b": 17, "c": 5})
    s = stratified_split(df, (0.6, 0.2, 0.2), seed=0)
    assert sorted(s["path"]) == sorted(df["path"]) and not s["path"].duplicated().any()
    assert set(s["split"]) == {"train", "valid", "test"}
    for _, g in s.groupby("label"):
        assert set(g["split"]) == {"train", "valid", "test"}
    # sorted by split order, then label, then path, with a fresh index
    order = s["split"].map({"train": 0, "valid": 1, "test": 2})
    key = list(zip(order, s["label"], s["path"]))
    assert key == sorted(key) and s.index.tolist() == list(range(len(s)))


def test_split_determinism():
    df = frame({"a": 50, "b": 50})
    s1 = stratified_split(df, seed=7)
    assert s1.equals(stratified_split(df, seed=7))
    # the input row order does not matter
    assert s1.equals(stratified_split(df.sample(frac=1, random_state=0), seed=7))
    assert not s1.equals(stratified_split(df, seed=8))


def test_split_small_classes():
    s = stratified_split(frame({"a": 3, "b": 50}), seed=0)
    assert s[s.label == "a"]["split"].value_counts().to_dict() == {"train": 1, "valid": 1, "test": 1}
    msg = bad_input(stratified_split, frame({"a": 2, "b": 50}))
    assert msg.startswith("root/a: ") and "'a'" in msg and " 2 " in msg


@pytest.mark.parametrize("fractions", [(0.7, 0.2, 0.2), (0.8, 0.2, 0.0), (1.0, 0.5, -0.5), (0.5, 0.5)])
def test_split_bad_fractions(fractions):
    assert bad_input(stratified_split, frame({"a": 20}), fractions).startswith("split_fractions:")


# ---------------------------------------------------------------- split_counts


def test_split_counts():
    s = stratified_split(frame({"a": 20, "b": 10}), seed=0)
    c = split_counts(s)
    assert list(c.columns) == ["label", "train", "valid", "test", "total"]
    assert c["label"].tolist() == ["a", "b", "total"]
    assert c.set_index("label").loc["a"].tolist() == [14, 3, 3, 20]
    assert c.set_index("label").loc["b"].tolist() == [6, 2, 2, 10]  # 1.5 rounds half up
    total = c.iloc[-1]
    assert total[["train", "valid", "test", "total"]].tolist() == [
        c.iloc[:-1][k].sum() for k in ["train", "valid", "test", "total"]]
    assert total["total"] == 30


# ---------------------------------------------------------------- the real data


@pytest.mark.skipif(not (DATA / "leukocytes").is_dir(), reason="real data not present")
def test_real_data():
    df = discover(DATA / "leukocytes")
    assert len(df) == 2500
    assert df.groupby("label").size().to_dict() == dict.fromkeys(CLASSES, 500)
    s = stratified_split(df, seed=42)
    c = split_counts(s).set_index("label")
    for cls in CLASSES:
        assert c.loc[cls].tolist() == [350, 75, 75, 500]
    assert c.loc["total"].tolist() == [1750, 375, 375, 2500]
    ext = discover(DATA / "external_monocyte")
    assert len(ext) == 9
    assert match_classes(list(ext["label"].unique()), CLASSES, None, DATA / "external_monocyte") == \
        {"monocyte": "monocyte"}


def test_truncated_jpeg_rejected_even_when_pil_is_relaxed(tmp_path, monkeypatch):
    """WeasyPrint sets PIL's LOAD_TRUNCATED_IMAGES on import; validation must not depend on it."""
    root = make_tree(tmp_path / "ds", {"a": 1})
    data = jpeg_bytes((64, 64))
    bad = root / "a" / "half.jpg"
    bad.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert "corrupt or truncated image" in bad_input(discover, root)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for whoever relaxed it

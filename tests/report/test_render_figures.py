"""How figures are inlined (render.encode_figure): photographs as JPEG within a stated error, plots as PNG that are
lossless or within PLOT_TOLERANCE, palette galleries and transparent figures byte for byte, never larger."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from leukoreport.base.errors import LeukoError  # noqa: E402
from leukoreport.report.figures import style  # noqa: E402
from leukoreport.report.render import PHOTO_COLOURS, PLOT_TOLERANCE, encode_figure, png_data_uri  # noqa: E402

# JPEG at quality 85 on a photograph: the mean absolute change per channel at most 2.5 levels (of 255), and 99% of
# channel values within 20 levels (the larger changes sit on the edges of the drawn text).
PHOTO_MEAN_BOUND = 2.5
PHOTO_P99_BOUND = 20


def _pixels(data: bytes) -> np.ndarray:
    """The image in `data` as an int16 RGB array."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def _colours(data: bytes) -> int:
    """Number of distinct RGB colours in the image `data`, counted with numpy."""
    rgb = _pixels(data).reshape(-1, 3).astype(np.int64)
    return len(np.unique(rgb[:, 0] * 65536 + rgb[:, 1] * 256 + rgb[:, 2]))


def _photo_figure(out: Path) -> None:
    """A Grad-CAM-like page: two smooth, textured 'cell' images with titles, saved like every figure (RGBA PNG)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:200, 0:200] / 200.0
    fig, axes = plt.subplots(1, 2, figsize=(5, 3))
    for k, ax in enumerate(axes):
        blob = np.exp(-((x - 0.5 - 0.1 * k) ** 2 + (y - 0.5) ** 2) / 0.05)
        img = np.stack([0.8 - 0.4 * blob, 0.5 + 0.2 * np.sin(8 * x + k), 0.6 + 0.3 * blob * y], axis=-1)
        img = np.clip(img + rng.normal(0, 0.015, img.shape), 0, 1)
        ax.imshow(img)
        ax.set_title(f"cell {k}: true monocyte")
        ax.axis("off")
    style.save_figure(fig, out)


def _plot_figure(out: Path) -> None:
    """A line plot with a legend, saved like every plot (RGBA PNG, anti-aliased)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    t = np.linspace(0, 10, 200)
    ax.plot(t, np.exp(-t / 4), label="train loss")
    ax.plot(t, np.exp(-t / 5) + 0.1, label="valid loss")
    ax.set_xlabel("epoch")
    ax.legend()
    style.save_figure(fig, out)


def test_photograph_is_jpeg_of_same_size_within_bound(tmp_path):
    out = tmp_path / "saliency.png"
    _photo_figure(out)
    source = out.read_bytes()
    assert _colours(source) > PHOTO_COLOURS
    encoded = encode_figure(source, "saliency.png")
    assert encoded.mime == "image/jpeg"
    assert encoded.data[:3] == b"\xff\xd8\xff"
    assert len(encoded.data) < len(source) / 2
    before, after = _pixels(source), _pixels(encoded.data)
    assert after.shape == before.shape
    diff = np.abs(after - before)
    assert diff.mean() <= PHOTO_MEAN_BOUND
    assert np.percentile(diff, 99) <= PHOTO_P99_BOUND


def test_plot_stays_png_within_tolerance_and_smaller(tmp_path):
    out = tmp_path / "loss.png"
    _plot_figure(out)
    source = out.read_bytes()
    assert _colours(source) <= PHOTO_COLOURS
    encoded = encode_figure(source)
    assert encoded.mime == "image/png"
    assert len(encoded.data) <= len(source)
    assert np.abs(_pixels(encoded.data) - _pixels(source)).max() <= PLOT_TOLERANCE


def test_plot_of_few_colours_is_lossless():
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, size=(200, 3))
    img = palette[rng.integers(0, 200, size=(120, 160))].astype(np.uint8)
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    encoded = encode_figure(buffer.getvalue())
    assert encoded.mime == "image/png"
    assert np.array_equal(_pixels(encoded.data), img.astype(np.int16))


def test_plot_that_palette_would_change_stays_lossless():
    """600 far-apart colours: a 256-colour palette moves some pixels by more than PLOT_TOLERANCE, so the RGB PNG."""
    rng = np.random.default_rng(2)
    palette = rng.integers(0, 256, size=(600, 3))
    img = np.repeat(np.repeat(palette.reshape(20, 30, 3), 6, axis=0), 6, axis=1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(img, "RGB").save(buffer, format="PNG", compress_level=0)
    encoded = encode_figure(buffer.getvalue())
    assert encoded.mime == "image/png"
    assert encoded.data != buffer.getvalue() and len(encoded.data) < len(buffer.getvalue())  # re-encoded, smaller
    assert np.array_equal(_pixels(encoded.data), img.astype(np.int16))


def test_palette_gallery_and_transparent_figure_kept_as_written(tmp_path):
    out = tmp_path / "gallery.png"
    fig = plt.figure(figsize=(2, 2))
    fig.figimage(np.random.default_rng(3).random((100, 100, 3)))
    style.save_figure(fig, out, palette=True)
    source = out.read_bytes()
    assert encode_figure(source).data == source
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 1] = np.arange(40, dtype=np.uint8)[:, None] * 6
    rgba[..., 3] = 128
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    assert encode_figure(buffer.getvalue()).data == buffer.getvalue()


def test_data_uri_carries_the_encoded_bytes(tmp_path):
    out = tmp_path / "saliency.png"
    _photo_figure(out)
    uri = png_data_uri(out)
    head, payload = uri.split(",", 1)
    assert head == "data:image/jpeg;base64"
    assert base64.b64decode(payload) == encode_figure(out.read_bytes()).data


def test_bad_files_name_the_file(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(LeukoError, match=r"notes\.png: not a PNG file"):
        png_data_uri(text)
    out = tmp_path / "cut.png"
    _plot_figure(out)
    out.write_bytes(out.read_bytes()[:200])
    with pytest.raises(LeukoError, match=r"cut\.png: cannot read PNG"):
        png_data_uri(out)
    with pytest.raises(LeukoError, match=r"missing\.png"):
        png_data_uri(tmp_path / "missing.png")


def test_galleries_drawn_at_gallery_dpi(tmp_path):
    """The same figure saved as a palette gallery is GALLERY_DPI / DPI as wide and tall as saved as a plot."""
    sizes = {}
    for palette in (False, True):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.imshow(np.random.default_rng(4).random((50, 60, 3)))
        ax.set_title("a gallery cell")
        style.save_figure(fig, tmp_path / f"{palette}.png", palette=palette)
        with Image.open(tmp_path / f"{palette}.png") as img:
            sizes[palette] = (img.size, img.mode)
    (plain_w, plain_h), _ = sizes[False]
    (w, h), mode = sizes[True]
    assert mode == "P"
    ratio = style.GALLERY_DPI / style.DPI
    assert abs(w - plain_w * ratio) <= 2 and abs(h - plain_h * ratio) <= 2

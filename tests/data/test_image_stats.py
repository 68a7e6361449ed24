"""Image statistics against direct numpy computations, the shift table and the figure."""

from __future__ import annotations

import platform
import resource
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import rgb_to_hsv
from PIL import Image, ImageFilter
from scipy import stats
from skimage.color import rgb2hed

from leukoreport.base.errors import LeukoError
from leukoreport.data.image_stats import STATISTICS, image_statistics, reuse_freed_memory, shift_table, statistics_table
from leukoreport.report.figures.image_shift import plot_distributions


def expected(rgb: np.ndarray, width: int, height: int) -> dict:
    """The statistics written out directly from an RGB float64 array in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    lap = y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4 * y[1:-1, 1:-1]
    hed = rgb2hed(rgb)
    return {"mean_r": np.mean(r), "mean_g": np.mean(g), "mean_b": np.mean(b),
            "sd_r": np.std(r), "sd_g": np.std(g), "sd_b": np.std(b),
            "brightness": np.mean(y), "contrast": np.std(y),
            "saturation": np.mean(rgb_to_hsv(rgb)[..., 1]), "sharpness": np.var(lap),
            "width": width, "height": height, "aspect": width / height,
            "od_hematoxylin": np.mean(hed[..., 0]), "od_eosin": np.mean(hed[..., 1])}


def assert_stats(got: dict, want: dict) -> None:
    """Same keys in STATISTICS order and every value equal to 1e-9."""
    assert list(got) == STATISTICS
    for key in STATISTICS:
        assert got[key] == pytest.approx(want[key], abs=1e-9, rel=1e-9), key


def save_png(pixels: np.ndarray, path: Path) -> Path:
    """Write a uint8 array as PNG and return the path."""
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize("shape,seed", [((32, 32), 0), ((24, 57), 1), ((61, 40), 2)])
def test_statistics_match_direct_computation(tmp_path, shape, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)
    path = save_png(pixels, tmp_path / "img.png")
    got = image_statistics(path)
    assert_stats(got, expected(pixels / 255.0, shape[1], shape[0]))
    assert isinstance(got["width"], int) and got["width"] == shape[1]


def test_grey_has_zero_saturation_and_blur_lowers_sharpness(tmp_path):
    grey = np.random.default_rng(3).integers(0, 256, (40, 40), dtype=np.uint8)
    path = save_png(np.stack([grey] * 3, axis=-1), tmp_path / "grey.png")
    assert image_statistics(path)["saturation"] == 0.0
    pixels = np.random.default_rng(4).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    sharp = save_png(pixels, tmp_path / "sharp.png")
    blurred = tmp_path / "blurred.png"
    Image.open(sharp).filter(ImageFilter.GaussianBlur(2)).save(blurred)
    assert image_statistics(blurred)["sharpness"] < image_statistics(sharp)["sharpness"]


def test_black_pixels_count_as_zero_saturation(tmp_path):
    pixels = np.zeros((10, 10, 3), dtype=np.uint8)
    pixels[:5] = (255, 0, 0)
    stats_ = image_statistics(save_png(pixels, tmp_path / "half.png"))
    assert stats_["saturation"] == pytest.approx(0.5)


def test_large_image_uses_thumbnail_but_original_size(tmp_path):
    pixels = np.random.default_rng(5).integers(0, 256, (90, 150, 3), dtype=np.uint8)
    path = save_png(pixels, tmp_path / "big.png")
    thumb = Image.open(path).convert("RGB")
    thumb.thumbnail((64, 64), Image.BILINEAR)
    assert max(thumb.size) == 64
    small = np.asarray(thumb, dtype=np.float64) / 255.0
    got = image_statistics(path, max_side=64)
    assert_stats(got, expected(small, 150, 90))
    assert (got["width"], got["height"]) == (150, 90)
    assert got != image_statistics(path)  # the full-size statistics differ


def test_statistics_table_rows_and_columns(tmp_path):
    rng = np.random.default_rng(6)
    (tmp_path / "a").mkdir()
    paths = []
    for i in range(3):
        save_png(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), tmp_path / "a" / f"{i}.png")
        paths.append(f"a/{i}.png")
    table = statistics_table(paths, root=tmp_path)
    assert list(table.columns) == ["path", *STATISTICS]
    assert table["path"].tolist() == paths
    assert table.loc[1, "mean_r"] == pytest.approx(image_statistics(tmp_path / "a/1.png")["mean_r"])
    assert statistics_table([], root=tmp_path).columns.tolist() == ["path", *STATISTICS]


def test_unreadable_file_raises(tmp_path):
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    with pytest.raises(LeukoError) as info:
        image_statistics(bad)
    assert str(info.value).startswith(f"{bad}: cannot read image (")
    missing = tmp_path / "missing.png"
    with pytest.raises(LeukoError, match="cannot read image"):
        image_statistics(missing)
    with pytest.raises(LeukoError) as info:
        statistics_table(["missing.png"], root=tmp_path)
    assert str(info.value).startswith(str(missing))


def test_every_channel_value_matches_rgb2hed_and_float_planes(tmp_path):
    """All 256 values of each channel (0 and 255 included: the 1e-6 floor of rgb2hed's log and a zero density):
    the stain densities equal skimage's rgb2hed to 1e-13 and every other statistic is bit-identical to the
    float64 computation written out directly."""
    rng = np.random.default_rng(12)
    values = np.arange(256, dtype=np.uint8)
    pixels = np.stack([np.tile(values, (64, 1)), np.tile(values[::-1], (64, 1)),
                       rng.permuted(np.tile(values, (64, 1)), axis=1)], axis=-1)
    got = image_statistics(save_png(pixels, tmp_path / "all.png"))
    want = expected(pixels / 255.0, 256, 64)
    for key in ("od_hematoxylin", "od_eosin"):
        assert got[key] == pytest.approx(want[key], rel=1e-13, abs=0), key
    for key in ("mean_r", "mean_g", "mean_b", "sd_r", "sd_g", "sd_b", "brightness", "contrast", "sharpness"):
        assert got[key] == float(want[key]), key


def test_statistics_table_over_processes_equals_one_process(tmp_path):
    rng = np.random.default_rng(13)
    (tmp_path / "a").mkdir()
    paths = []
    for i in range(40):
        shape = (20 + i % 7, 30 + i % 5, 3)
        save_png(rng.integers(0, 256, shape, dtype=np.uint8), tmp_path / "a" / f"{i}.png")
        paths.append(f"a/{i}.png")
    one = statistics_table(paths, root=tmp_path)
    pooled = statistics_table(paths, root=tmp_path, workers=2)
    pd.testing.assert_frame_equal(pooled, one, check_exact=True)
    assert pooled["path"].tolist() == paths
    assert pooled.loc[17, "mean_g"] == np.mean(np.asarray(Image.open(tmp_path / "a/17.png"))[..., 1] / 255.0)
    # fewer images than a worker's share: one process, the same rows
    pd.testing.assert_frame_equal(statistics_table(paths[:5], root=tmp_path, workers=4), one.iloc[:5],
                                  check_exact=True)


def test_unreadable_file_raises_from_a_worker_process(tmp_path):
    rng = np.random.default_rng(14)
    paths = []
    for i in range(40):
        save_png(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), tmp_path / f"{i}.png")
        paths.append(f"{i}.png")
    (tmp_path / "bad.png").write_text("hello")
    with pytest.raises(LeukoError) as info:
        statistics_table([*paths[:30], "bad.png", *paths[30:]], root=tmp_path, workers=2)
    assert str(info.value).startswith(f"{tmp_path / 'bad.png'}: cannot read image (")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_memory_is_reused_for_the_next_image(tmp_path):
    """With glibc keeping freed blocks, an image's arrays reuse the previous image's pages: a few page faults
    per 360 px image instead of one per 4 KiB page of its ~12 MB of arrays (about 2,900)."""
    rng = np.random.default_rng(15)
    paths = [save_png(rng.integers(0, 256, (363, 360, 3), dtype=np.uint8), tmp_path / f"{i}.png") for i in range(6)]
    assert reuse_freed_memory() is True
    first = image_statistics(paths[0])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    rows = [image_statistics(p) for p in paths[1:]]
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / len(rows)
    assert faults < 300, faults
    assert image_statistics(paths[0]) == first


def random_frame(n: int, seed: int) -> pd.DataFrame:
    """A statistics_table-like frame of random values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.random((n, len(STATISTICS))), columns=STATISTICS)
    frame["sharpness"] = rng.lognormal(-5, 1, n)
    frame.insert(0, "path", [f"img_{i}.png" for i in range(n)])
    return frame


def test_shift_table_identical_and_shifted():
    train = random_frame(60, 7)
    same = shift_table(train, train.copy())
    assert same.columns.tolist() == ["statistic", "train_mean", "train_sd", "set_mean", "set_sd",
                                     "wasserstein", "wasserstein_sd", "ks", "ks_p", "auc", "separability",
                                     "std_difference"]
    assert np.allclose(same["auc"], 0.5) and (same["separability"] == 0).all()
    assert sorted(same["statistic"]) == sorted(STATISTICS)
    assert (same["wasserstein"] == 0).all() and (same["ks"] == 0).all()
    assert np.allclose(same["ks_p"], 1.0)

    shifted = train.copy()
    shifted["brightness"] += 0.2
    table = shift_table(train, shifted)
    top = table.iloc[0]
    assert top["statistic"] == "brightness"
    assert top["wasserstein"] == pytest.approx(0.2, abs=1e-12)
    assert top["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(train["brightness"], shifted["brightness"]))
    assert top["wasserstein_sd"] == pytest.approx(0.2 / np.std(train["brightness"]))
    assert top["ks"] == pytest.approx(stats.ks_2samp(train["brightness"],
                                                     shifted["brightness"]).statistic)
    assert top["set_mean"] - top["train_mean"] == pytest.approx(0.2)


def test_shift_table_ranks_by_separability_and_errors():
    train = random_frame(20, 8)
    train["width"] = 360
    other = random_frame(5, 9)
    table = shift_table(train, other)
    assert np.isnan(table.set_index("statistic").loc["width", "wasserstein_sd"])  # training SD 0
    assert table["separability"].is_monotonic_decreasing
    with pytest.raises(LeukoError, match="training frame"):
        shift_table(train.iloc[:0], other)
    with pytest.raises(LeukoError, match="other frame"):
        shift_table(train, other.iloc[:0])
    with pytest.raises(LeukoError, match="missing column"):
        shift_table(train.drop(columns="aspect"), other)


def test_near_constant_training_statistic_does_not_rank_first():
    """Every training image almost the same aspect (SD 1e-4) against a set spread on both sides of it, and a
    brightness shift with no overlap: by Wasserstein / training SD the aspect came first (about 500 SDs against 10),
    by separability the brightness does."""
    rng = np.random.default_rng(4)
    train, other = random_frame(200, 1), random_frame(40, 2)
    train["aspect"] = 360 / 363 + rng.normal(0, 1e-4, 200)
    other["aspect"] = 360 / 363 + np.linspace(-0.1, 0.1, 40)
    train["brightness"] = rng.uniform(0.4, 0.5, 200)
    other["brightness"] = rng.uniform(0.7, 0.8, 40)
    table = shift_table(train, other).set_index("statistic")
    assert table["wasserstein_sd"].idxmax() == "aspect"  # the old ranking
    assert table.index[0] == "brightness" and table.loc["brightness", "separability"] == 1.0
    assert table.loc["aspect", "separability"] < 0.1
    # independent: AUC as the share of (train, set) pairs with the set's value larger, ties counting one half
    a, b = train["aspect"].to_numpy(), other["aspect"].to_numpy()
    auc = np.mean([(y > x) + 0.5 * (y == x) for x in a for y in b])
    assert table.loc["aspect", "auc"] == pytest.approx(auc)
    assert table.loc["aspect", "separability"] == pytest.approx(abs(auc - 0.5) * 2)
    both = np.concatenate([a, b])
    assert table.loc["aspect", "std_difference"] == pytest.approx((b.mean() - a.mean()) / both.std())


def test_separability_ties_are_broken_by_the_standardised_difference():
    train, other = random_frame(30, 5), random_frame(30, 6)
    train["brightness"], other["brightness"] = np.linspace(0.1, 0.2, 30), np.linspace(0.3, 0.4, 30)
    train["contrast"], other["contrast"] = np.linspace(0.1, 0.2, 30), np.linspace(0.9, 1.0, 30)
    table = shift_table(train, other)
    assert list(table["statistic"][:2]) == ["contrast", "brightness"]
    assert (table["separability"][:2] == 1.0).all()


def assert_png(path: Path) -> None:
    """The file exists and opens as a PNG."""
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as img:
        assert img.format == "PNG"


def test_plot_distributions_literal_name_and_one_image(tmp_path):
    train = random_frame(40, 10)
    train["aspect"] = 1.0  # a constant column
    other = random_frame(25, 11)
    out = tmp_path / "dist.png"
    plot_distributions(train, other, r"$\frac{a}{b}$ and $5 and $6", out)
    assert_png(out)
    one = tmp_path / "one.png"
    plot_distributions(train, other.iloc[:1], r"$\frac$ one", one)
    assert_png(one)
    four = tmp_path / "four.png"
    plot_distributions(train, other, "subset", four, statistics=["brightness", "sharpness"])
    assert_png(four)
    with pytest.raises(LeukoError, match="other frame"):
        plot_distributions(train, other.iloc[:0], "empty", tmp_path / "x.png")

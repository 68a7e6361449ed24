"""Colour and stain normalisation: Reinhard against a direct numpy computation, Macenko's stain matrix moved to the
reference's, the reference file, and torchstain's numpy backend without torch."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from leukoreport.base.errors import LeukoError
from leukoreport.data.colour_normalisation import (
    BACKGROUND_SHARE,
    ReinhardReference,
    background,
    fit_macenko,
    fit_reference,
    fit_reinhard,
    macenko,
    read_image,
    read_reference,
    reinhard,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "leukocytes"


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Two embedded images of each class."""
    return [read_image(p) for c in sorted(DATA.iterdir()) for p in sorted(c.iterdir())[:2]]


def test_reinhard_equals_a_direct_numpy_computation(images):
    ref = ReinhardReference((70.0, 15.0, -5.0), (12.0, 8.0, 10.0))
    rgb = images[3]
    lab = rgb2lab(rgb.astype(np.float64) / 255.0)
    mu = lab.reshape(-1, 3).mean(axis=0)
    sd = lab.reshape(-1, 3).std(axis=0)
    direct = (lab - mu) / sd * np.array([12.0, 8.0, 10.0]) + np.array([70.0, 15.0, -5.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = (np.clip(lab2rgb(direct), 0, 1) * 255).round().astype(np.uint8)
    got = reinhard(rgb, ref)
    assert got.dtype == np.uint8 and got.shape == rgb.shape
    assert np.array_equal(got, expected)
    # and the result has (up to gamut clipping and rounding) the reference's LAB statistics
    out = rgb2lab(got / 255.0).reshape(-1, 3)
    assert np.allclose(out.mean(axis=0), [70.0, 15.0, -5.0], atol=1.5)
    assert np.allclose(out.std(axis=0), [12.0, 8.0, 10.0], atol=1.5)


def test_reinhard_reference_averages_each_images_lab_statistics(images):
    ref = fit_reinhard(images[:3])
    stats = [rgb2lab(x / 255.0).reshape(-1, 3) for x in images[:3]]
    assert np.allclose(ref.mean, np.mean([s.mean(axis=0) for s in stats], axis=0))
    assert np.allclose(ref.sd, np.mean([s.std(axis=0) for s in stats], axis=0))


def _stain_matrix(rgb: np.ndarray) -> np.ndarray:
    """The image's own stain matrix, estimated as the reference's is (its background scaled to grey first)."""
    return np.asarray(fit_macenko([rgb], pixels=rgb.shape[0] * rgb.shape[1]).stain_matrix)


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between the matching columns (stain vectors) of two stain matrices."""
    cos = (a * b).sum(axis=0) / np.linalg.norm(a, axis=0) / np.linalg.norm(b, axis=0)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_macenko_moves_the_stain_matrix_to_the_references(images, shifted_sets):
    ref = fit_macenko(images, seed=0)
    he_ref = np.asarray(ref.stain_matrix)
    shift = shifted_sets.stain
    before, after = [], []
    for rgb in images[:6]:
        shifted = np.asarray(shift(Image.fromarray(rgb)))
        normalised = macenko(shifted, ref)
        assert normalised is not None and normalised.shape == rgb.shape
        before.append(_angles(_stain_matrix(shifted), he_ref).max())
        after.append(_angles(_stain_matrix(normalised), he_ref).max())
    # degrees between stain vectors: the shifted images' stains are 7-13 degrees off, the normalised ones' within
    # 5 (re-estimated from the normalised image, so not exactly 0; 1.5-15 degrees separate unshifted training images)
    assert max(after) < 5.0, after
    assert all(a < b for a, b in zip(after, before)), (before, after)


def test_background_is_the_median_colour_of_the_brightest_pixels():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (50, 40, 3)).astype(np.uint8)
    flat = rgb.reshape(-1, 3).astype(float)
    luma = 0.299 * flat[:, 0] + 0.587 * flat[:, 1] + 0.114 * flat[:, 2]
    order = np.argsort(luma)[::-1][: int(round(BACKGROUND_SHARE * len(luma)))]
    assert np.allclose(background(rgb), np.median(flat[order], axis=0), atol=1.0)
    assert np.array_equal(background(np.zeros((4, 4, 3), np.uint8)), [1.0, 1.0, 1.0])  # never 0 (a divisor)


def test_macenko_keeps_an_unshifted_images_tinted_background(images):
    """The embedded images' background is peach (about 255, 229, 203), not grey: torchstain alone (one grey Io)
    turns it to 240 grey and raises the mean blue by about 49 levels; with each image's own background as its light
    the colour stays near the image's."""
    from torchstain.numpy.normalizers import NumpyMacenkoNormalizer

    ref = fit_macenko(images, seed=0)
    assert ref.background[0] > ref.background[1] + 15 > ref.background[2] + 30  # tinted: R > G > B
    ours, grey = [], []
    for rgb in images[:6]:
        norm = NumpyMacenkoNormalizer()
        norm.HERef, norm.maxCRef = np.asarray(ref.stain_matrix), np.asarray(ref.max_concentrations)
        plain_torchstain = norm.normalize(I=rgb, stains=False)[0]
        out = macenko(rgb, ref)
        mean_in = rgb.reshape(-1, 3).mean(axis=0)
        ours.append(np.abs(out.reshape(-1, 3).mean(axis=0) - mean_in).max())
        grey.append(np.abs(plain_torchstain.reshape(-1, 3).mean(axis=0) - mean_in).max())
        assert np.abs(background(out) - np.asarray(ref.background)).max() < 12
    assert max(ours) < 20 and min(grey) > 30, (ours, grey)


def test_macenko_gives_none_for_an_image_without_stain():
    blank = np.full((40, 40, 3), 250, dtype=np.uint8)
    ref = fit_macenko([np.random.default_rng(0).integers(60, 250, (40, 40, 3)).astype(np.uint8)])
    assert macenko(blank, ref) is None


def test_reference_file_round_trip_and_errors(tmp_path, images):
    paths = []
    for i, rgb in enumerate(images[:4]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rgb).save(paths[-1])
    ref = fit_reference(paths, seed=1)
    out = tmp_path / "ref.json"
    out.write_text(json.dumps(ref.to_dict()))
    back = read_reference(out)
    assert back == ref
    data = ref.to_dict()
    del data["reinhard"]["sd"]
    out.write_text(json.dumps(data))
    with pytest.raises(LeukoError, match=r"ref\.json: key 'sd' missing"):
        read_reference(out)
    with pytest.raises(LeukoError, match="no training images"):
        fit_reference([])


def test_macenko_runs_where_torch_cannot_be_imported(tmp_path):
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'tensorflow'): raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np\n"
        "from leukoreport.data.colour_normalisation import fit_macenko, macenko\n"
        "rgb = np.random.default_rng(0).integers(60, 250, (32, 32, 3)).astype(np.uint8)\n"
        "print('OK', macenko(rgb, fit_macenko([rgb])).shape, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OK (32, 32, 3) False" in proc.stdout


def test_reinhard_from_a_sets_statistics_keeps_the_differences_between_its_images(images):
    """With the set's statistics as the source, every image gets the same affine LAB map (a direct computation),
    so the images' colour differences stay (per-image Reinhard removes them)."""
    ref = fit_reinhard(images)
    source = fit_reinhard(images[:4])
    rgb = images[1]
    lab = rgb2lab(rgb / 255.0)
    direct = (lab - np.array(source.mean)) / np.array(source.sd) * np.array(ref.sd) + np.array(ref.mean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = (np.clip(lab2rgb(direct), 0, 1) * 255).round().astype(np.uint8)
    assert np.array_equal(reinhard(rgb, ref, source), expected)
    one_per_class = images[::2]
    a_before = [rgb2lab(x / 255.0)[..., 1].mean() for x in one_per_class]
    a_after = [rgb2lab(reinhard(x, ref, source) / 255.0)[..., 1].mean() for x in one_per_class]
    scale = ref.sd[1] / source.sd[1]  # the a* channel's spread is scaled by this, and nothing else changes it
    assert np.ptp(a_after) == pytest.approx(scale * np.ptp(a_before), rel=0.1)

"""Scale matching: the cell share of a drawn cell, a known synthetic rescale recovered, the rescale itself."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.data.colour_normalisation import read_image
from leukoreport.data.scale_matching import MAX_FACTOR, border_colour, cell_share, match_scale, rescale, scale_factor

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "leukocytes"


def _cell(size: int = 200, radius: float = 40.0, seed: int = 0) -> np.ndarray:
    """A purple disc (a stained nucleus) of ``radius`` on a pale, slightly noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius ** 2
    rgb = np.where(inside[..., None], [110, 60, 150], [235, 215, 205]).astype(np.float64)
    return np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)


def test_cell_share_is_the_discs_area():
    assert cell_share(_cell()) == pytest.approx(math.pi * 40 ** 2 / 200 ** 2, rel=0.03)
    assert cell_share(np.full((20, 20, 3), 200, np.uint8)) == 0.0


def test_scale_factor_recovers_a_synthetic_rescale_of_a_drawn_cell():
    train = [cell_share(_cell(radius=r, seed=i)) for i, r in enumerate([36, 40, 44])]
    shrunk = [cell_share(match_scale(_cell(radius=r, seed=i), 0.6)) for i, r in enumerate([36, 40, 44])]
    match = scale_factor(float(np.median(train)), shrunk)
    assert match.factor == pytest.approx(1 / 0.6, rel=0.04)
    restored = match_scale(match_scale(_cell(), 0.6), match.factor)
    assert cell_share(restored) == pytest.approx(cell_share(_cell()), rel=0.08)


def test_scale_factor_recovers_the_scale_shift_of_embedded_images(shifted_sets):
    shift = shifted_sets.scale
    files = [sorted(c.iterdir())[i] for c in sorted(DATA.iterdir()) for i in range(4)]
    plain = [read_image(f) for f in files]
    train = float(np.median([cell_share(x) for x in plain]))
    shrunk = [np.asarray(shift(Image.fromarray(x))) for x in plain]  # cell at 60%: factor 1 / 0.6 expected
    match = scale_factor(train, [cell_share(x) for x in shrunk])
    assert match.factor == pytest.approx(1 / 0.6, rel=0.12), match
    assert scale_factor(train, [cell_share(x) for x in plain]).factor == 1.0  # same images: not rescaled


def test_tolerance_clipping_and_errors():
    assert scale_factor(0.1, [0.1 * 1.08 ** 2]).factor == 1.0
    assert "within 0.1" in scale_factor(0.1, [0.1 * 1.08 ** 2], tolerance=0.1).note
    assert scale_factor(0.1, [0.001]).factor == MAX_FACTOR
    assert scale_factor(0.1, [10.0]).factor == pytest.approx(1 / MAX_FACTOR)
    assert scale_factor(0.1, [0.0]).factor == 1.0
    with pytest.raises(LeukoError, match="scale matching"):
        scale_factor(0.1, [])


def test_rescale_crops_up_or_pads_with_the_border_colour():
    rgb = _cell()
    up = np.asarray(rescale(Image.fromarray(rgb), 2.0))
    assert up.shape == rgb.shape
    assert cell_share(up) == pytest.approx(4 * cell_share(rgb), rel=0.05)
    down = np.asarray(rescale(Image.fromarray(rgb), 0.5))
    assert down.shape == rgb.shape
    assert np.abs(down[:5, :5].astype(int) - np.array(border_colour(rgb))).max() <= 10
    assert cell_share(down) == pytest.approx(cell_share(rgb) / 4, rel=0.08)
    assert rescale(Image.fromarray(rgb), 1.0).size == (200, 200)

"""Stain densities from the 256-entry table against skimage's rgb2hed."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2hed

from leukoreport.data.scale_matching import cell_share
from leukoreport.data.stain_density import hed_densities


def test_hed_densities_equal_rgb2hed():
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3)).astype(np.uint8)
    rgb[0, :3] = [[0, 0, 0], [255, 255, 255], [1, 2, 3]]  # the clipped ends of the table
    expected = rgb2hed(rgb)
    assert np.allclose(hed_densities(rgb), expected, rtol=0, atol=1e-12)
    assert np.allclose(hed_densities(rgb, 0), expected[..., 0], rtol=0, atol=1e-12)
    assert (hed_densities(rgb) >= 0).all()


def test_cell_share_equals_the_rgb2hed_computation():
    from skimage.filters import threshold_otsu

    rgb = np.full((40, 40, 3), 235, np.uint8)
    rgb[10:25, 12:30] = (90, 40, 140)  # a violet 'nucleus' on a light background
    density = rgb2hed(rgb)[..., 0]
    assert cell_share(rgb) == pytest.approx(float((density > threshold_otsu(density)).mean()))
    assert cell_share(rgb) == pytest.approx(15 * 18 / 1600)


def test_hed_densities_refuse_other_than_8_bit_rgb():
    with pytest.raises(ValueError, match="expected uint8 RGB"):
        hed_densities(np.zeros((4, 4, 3), np.float64))
    with pytest.raises(ValueError, match="expected uint8 RGB"):
        hed_densities(np.zeros((4, 4), np.uint8))

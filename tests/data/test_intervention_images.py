"""The interventions' images prepared once per split and set: downsampling keeps the aspect ratio and never
upsamples; every transform equals the per-image functions applied directly; the index and JSON read back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.data.colour_normalisation import fit_reference, fit_reinhard, read_image, reinhard
from leukoreport.data.intervention_images import (
    TRANSFORMS,
    downsample,
    prepare_images,
    read_prepared,
    transform_key,
)
from leukoreport.data.scale_matching import match_scale


def test_downsample_keeps_the_aspect_ratio_and_never_upsamples():
    rgb = np.random.default_rng(0).integers(0, 256, (300, 450, 3), dtype=np.uint8)
    assert downsample(rgb, 100).shape == (100, 150, 3)
    assert downsample(rgb, 300) is rgb and downsample(rgb, 400) is rgb and downsample(rgb, None) is rgb
    flat = np.full((90, 60, 3), 77, dtype=np.uint8)
    assert (downsample(flat, 30) == 77).all() and downsample(flat, 30).shape == (45, 30, 3)


def test_transform_key():
    assert transform_key("reinhard", True) == "scale_reinhard" and transform_key("none", True) == "scale"
    assert transform_key("none", False) is None and transform_key("macenko", True) is None


@pytest.fixture(scope="module")
def prepared(tiny_split, tmp_path_factory):
    paths = list(tiny_split["path"].astype(str))[:8]
    reference = fit_reference(paths, seed=0)
    reference = type(reference)(reference.reinhard, reference.macenko, reference.cell_share * 0.5,
                                reference.n_images, reference.seed, reference.macenko_note)  # forces a rescale
    folder = tmp_path_factory.mktemp("prepared")
    return paths, reference, folder, prepare_images(paths, reference, folder, 24, progress=lambda line: None)


def test_every_transform_equals_the_direct_computation(prepared):
    paths, reference, _, out = prepared
    assert out.match.factor != 1.0
    small = [downsample(read_image(p), 24) for p in paths]
    scaled = [match_scale(rgb, out.match.factor) for rgb in small]
    source = fit_reinhard(scaled)
    got = [read_image(p) for p in out.paths("scale_reinhard", paths)]
    assert all(np.array_equal(g, reinhard(s, reference.reinhard, source)) for g, s in zip(got, scaled))
    assert all(np.array_equal(read_image(g), s) for g, s in zip(out.paths("scale", paths), scaled))
    assert set(out.index["transform"]) <= set(TRANSFORMS) and "reinhard" in set(out.index["transform"])
    assert min(read_image(out.paths("reinhard", paths)[0]).shape[:2]) == 24


def test_the_index_and_summary_read_back(prepared, tmp_path):
    paths, _, folder, out = prepared
    index = out.index.assign(path=[str(Path(p).relative_to(folder)) for p in out.index["path"]])
    index.to_csv(folder / "index.csv", index=False)
    (tmp_path / "s.json").write_text(json.dumps(out.summary()))
    back = read_prepared(folder / "index.csv", tmp_path / "s.json")
    assert back.paths("scale", paths) == out.paths("scale", paths)
    assert back.match.to_dict() == out.match.to_dict()  # the scale match round-trips (a NaN estimate as null)
    assert back.paths("reinhard", paths) == out.paths("reinhard", paths)
    assert back.match.factor == out.match.factor and back.seconds == pytest.approx(out.seconds, abs=1e-4)
    assert out.summary()["seconds_per_image"]["reinhard"] == pytest.approx(out.seconds["reinhard"] / 8, abs=1e-5)
    with pytest.raises(LeukoError, match="has no image for nowhere.png"):
        back.paths("reinhard", ["nowhere.png"])
    pd.DataFrame({"transform": ["reinhard"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(LeukoError, match="bad.csv: column 'index' missing"):
        read_prepared(tmp_path / "bad.csv", tmp_path / "s.json")


def test_no_images_is_an_error(prepared, tmp_path):
    with pytest.raises(LeukoError, match="the set has no images"):
        prepare_images([], prepared[1], tmp_path, 24)

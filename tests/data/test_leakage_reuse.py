"""The two-step leakage audit: the full audit reuses the split-only audit's hashes and finds exactly what one
audit of everything finds, without reading the split images again."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.data.leakage import audit


def smooth(seed: int, size: int = 48) -> Image.Image:
    """A smooth random RGB image (6x6 noise upscaled bicubically)."""
    small = np.random.default_rng(seed).integers(0, 256, (6, 6, 3)).astype(np.uint8)
    return Image.fromarray(small).resize((size, size), Image.BICUBIC)


@pytest.fixture
def sets(tmp_path):
    """A split with a cross-split copy and an external set holding a copy of a training image and a near copy."""
    images = {f"cells/a/{i}.png": smooth(i) for i in range(4)} | {f"cells/b/{i}.png": smooth(10 + i) for i in range(4)}
    images["cells/b/copy.png"] = images["cells/a/0.png"]
    images["ext/a/e0.png"] = images["cells/a/1.png"]
    images["ext/b/e1.png"] = Image.fromarray(np.clip(np.asarray(images["cells/b/2.png"], int) + 2, 0, 255)
                                             .astype(np.uint8))
    images["ext/b/e2.png"] = smooth(99)
    for rel, img in images.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(tmp_path / rel)
    splits = ["train", "train", "valid", "test", "train", "valid", "train", "test", "test"]
    split_paths = [p for p in images if p.startswith("cells/")]
    split = pd.DataFrame({"path": split_paths, "label": [p.split("/")[1] for p in split_paths], "split": splits})
    ext = pd.DataFrame({"path": ["ext/a/e0.png", "ext/b/e1.png", "ext/b/e2.png"], "label": ["a", "b", "b"]})
    return tmp_path, split, {"lab": ext}


def test_reused_hashes_give_the_same_audit(sets):
    root, split, externals = sets
    whole = audit(split, externals, root, 4, 8)
    split_table, split_pairs, split_summary = audit(split, {}, root, 4, 8)
    assert set(split_pairs["scope"]) == {"across splits"} and split_summary.n_pairs == 1
    for path in split["path"]:  # the full audit must not read a split image again
        (root / path).unlink()
    reused = audit(split, externals, root, 4, 8, known=split_table.astype(str))
    pd.testing.assert_frame_equal(reused[0], whole[0])
    pd.testing.assert_frame_equal(reused[1], whole[1])
    assert reused[2] == whole[2]
    assert reused[2].by_scope["training vs external"] == {"exact": 1, "near": 1}
    assert reused[2].n_images == len(split) + 3


def test_known_hashes_of_another_size_are_refused(sets):
    root, split, externals = sets
    split_table = audit(split, {}, root, 4, 8)[0]
    with pytest.raises(LeukoError, match=r"known hashes: phash '[0-9a-f]{16}' is not a 256-bit hash"):
        audit(split, externals, root, 4, 16, known=split_table)


def test_known_hashes_need_the_hash_columns(sets):
    root, split, externals = sets
    with pytest.raises(LeukoError, match="known hashes: missing column 'pixels'"):
        audit(split, externals, root, 4, 8, known=pd.DataFrame({"path": [], "phash": []}))

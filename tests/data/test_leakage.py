"""Tests for the leakage audit: hashing, pair finding, scopes, summary and messages."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.data.leakage import (
    BLOCK_SIZE,
    PAIR_COLUMNS,
    SCOPES,
    _near_pairs,
    _near_pairs_blocked,
    audit,
    failure_message,
    find_pairs,
    format_pairs,
    group_table,
    hash_images,
    pack_hashes,
    summarize,
)

RANK = {"train": 0, "valid": 1, "test": 2}


def smooth_image(seed: int, size: int = 64) -> np.ndarray:
    """A smooth random RGB image (8x8 noise upscaled bicubically), as a uint8 array."""
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))


def save(root: Path, rel: str, pixels: np.ndarray) -> np.ndarray:
    """Save `pixels` at root/rel (format from the suffix); return the pixels as decoded back."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return np.asarray(Image.open(path).convert("RGB"))


def popcount(x: int) -> int:
    """Number of set bits, counted one bit at a time."""
    n = 0
    while x:
        n += x & 1
        x >>= 1
    return n


def orient_key(group: str, path: str) -> tuple:
    """Independent orientation key: train, valid, test, then externals by name; then path."""
    return (RANK.get(group, 3), group, path)


def scope_of(ga: str, gb: str) -> str:
    """Independent scope rule."""
    ea, eb = ga.startswith("external:"), gb.startswith("external:")
    if ea and eb:
        return "within external" if ga == gb else "across external sets"
    if ea or eb:
        return "training vs external"
    return "within split" if ga == gb else "across splits"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A project root with a split and one external set holding planted exact and near copies."""
    root = tmp_path_factory.mktemp("leak")
    d, e = "data/cells", "data/ext"
    a0 = save(root, f"{d}/alpha/a0.jpg", smooth_image(10))
    a1 = save(root, f"{d}/alpha/a1.jpg", smooth_image(0))
    b0 = save(root, f"{d}/beta/b0.jpg", smooth_image(12))
    save(root, f"{d}/beta/b1.jpg", smooth_image(13))
    save(root, f"{d}/beta/b2.png", a0)  # exact copy of a0 (decoded JPEG pixels), filed under beta
    save(root, f"{d}/beta/b3.png", np.clip(b0.astype(int) + 3, 0, 255).astype(np.uint8))  # brighter b0
    save(root, f"{e}/alpha/e0.png", np.roll(a1, 1, axis=1))  # a1 shifted by one pixel
    save(root, f"{e}/alpha/e1.png", smooth_image(14))  # unrelated
    split = pd.DataFrame(
        [(f"{d}/beta/b2.png", "beta", "test"), (f"{d}/beta/b3.png", "beta", "valid"),
         (f"{d}/alpha/a0.jpg", "alpha", "train"), (f"{d}/alpha/a1.jpg", "alpha", "train"),
         (f"{d}/beta/b0.jpg", "beta", "train"), (f"{d}/beta/b1.jpg", "beta", "valid")],
        columns=["path", "label", "split"])
    externals = {"ext": pd.DataFrame([(f"{e}/alpha/e1.png", "alpha"), (f"{e}/alpha/e0.png", "alpha")],
                                     columns=["path", "label"])}
    return root, split, externals


def independent_pairs(root: Path, rows: list[tuple[str, str, str]], max_distance: int) -> set[tuple]:
    """Pairs recomputed with imagehash's `-` operator and numpy pixel equality."""
    hashes = [imagehash.phash(Image.open(root / p)) for p, _, _ in rows]
    pixels = [np.asarray(Image.open(root / p).convert("RGB")) for p, _, _ in rows]
    found = set()
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            dist = int(hashes[i] - hashes[j])
            exact = pixels[i].shape == pixels[j].shape and np.array_equal(pixels[i], pixels[j])
            if exact or dist <= max_distance:
                (pa, la, ga), (pb, lb, gb) = sorted([rows[i], rows[j]], key=lambda r: orient_key(r[2], r[0]))
                found.add((pa, la, ga, pb, lb, gb, dist, "exact" if exact else "near", scope_of(ga, gb), la == lb))
    return found


def test_planted_copies_are_premises(planted):
    """The planted near copy is within 4 bits, the brightened copy 0, unrelated images far."""
    root, _, _ = planted
    h = {p.name: imagehash.phash(Image.open(p)) for p in root.rglob("*.*")}
    assert 0 < h["a1.jpg"] - h["e0.png"] <= 4
    assert h["b0.jpg"] - h["b3.png"] == 0
    assert min(h["e1.png"] - h[n] for n in h if n != "e1.png") > 8


def test_audit_finds_planted_pairs(planted):
    """Exact, near and unrelated images give the expected pairs, scopes, orientation and labels."""
    root, split, externals = planted
    table, pairs, summary = audit(split, externals, root, max_distance=4)
    assert list(pairs.columns) == PAIR_COLUMNS
    got = [tuple(r) for r in pairs.itertuples(index=False)]
    rows = [(r.path, r.label, r.split) for r in split.itertuples()] + \
        [(r.path, r.label, "external:ext") for r in externals["ext"].itertuples()]
    assert set(got) == independent_pairs(root, rows, 4)
    d = "data/cells"
    assert [(g[0], g[3], g[7], g[8], g[9]) for g in got] == [
        (f"{d}/alpha/a0.jpg", f"{d}/beta/b2.png", "exact", "across splits", False),
        (f"{d}/beta/b0.jpg", f"{d}/beta/b3.png", "near", "across splits", True),
        (f"{d}/alpha/a1.jpg", "data/ext/alpha/e0.png", "near", "training vs external", True),
    ]
    assert got[0][6] == 0 and got[1][6] == 0 and 0 < got[2][6] <= 4
    assert "data/ext/alpha/e1.png" not in set(pairs["path_a"]) | set(pairs["path_b"])
    assert pairs["distance"].dtype == np.int64 and pairs["same_label"].dtype == bool
    assert list(table.columns) == ["path", "label", "group", "phash", "pixels", "width", "height"]
    assert len(table) == 8 and (table["width"] == 64).all() and (table["height"] == 64).all()
    assert summary.n_images == 8 and summary.n_pairs == 3
    assert (summary.n_exact, summary.n_near, summary.label_conflicts) == (1, 2, 1)
    assert summary.by_scope["across splits"] == {"exact": 1, "near": 1}
    assert summary.by_scope["training vs external"] == {"exact": 0, "near": 1}
    assert list(summary.by_scope) == list(SCOPES)
    assert sum(v["exact"] + v["near"] for v in summary.by_scope.values()) == 3
    assert (summary.hash, summary.hash_bits, summary.max_distance) == ("phash", 64, 4)


def test_audit_threshold_zero_keeps_only_zero_distance(planted):
    """At max_distance 0 only the exact copy and the brightened (distance 0) copy remain."""
    root, split, externals = planted
    _, pairs, summary = audit(split, externals, root, max_distance=0)
    assert list(pairs["path_b"]) == ["data/cells/beta/b2.png", "data/cells/beta/b3.png"]
    assert summary.by_scope["training vs external"] == {"exact": 0, "near": 0}


def test_hash_images_values(tmp_path):
    """phash matches imagehash; re-saved pixels (PNG/BMP/TIFF) share the pixel digest; size counts."""
    jpg = save(tmp_path, "x/orig.jpg", smooth_image(1))
    for suffix in ("png", "bmp", "tif"):
        save(tmp_path, f"x/copy.{suffix}", jpg)
    flat = np.arange(2 * 8 * 3, dtype=np.uint8)
    save(tmp_path, "x/wide.png", flat.reshape(2, 8, 3))
    save(tmp_path, "x/tall.png", flat.reshape(8, 2, 3))
    save(tmp_path, "x/other.png", smooth_image(2))
    paths = ["x/orig.jpg", "x/copy.png", "x/copy.bmp", "x/copy.tif", "x/wide.png", "x/tall.png", "x/other.png"]
    df = hash_images(paths, tmp_path)
    assert list(df.columns) == ["path", "phash", "pixels", "width", "height"]
    assert list(df["path"]) == paths
    for path, ph in zip(df["path"], df["phash"]):
        assert ph == str(imagehash.phash(Image.open(tmp_path / path)))
        assert imagehash.hex_to_hash(ph) - imagehash.phash(Image.open(tmp_path / path)) == 0
    assert df["pixels"].iloc[:4].nunique() == 1
    assert df["pixels"].iloc[3:].nunique() == 4  # wide vs tall: same bytes, different size
    assert all(len(p) == 64 and int(p, 16) >= 0 for p in df["pixels"])
    assert list(df.loc[4:5, ["width", "height"]].itertuples(index=False, name=None)) == [(8, 2), (2, 8)]
    big = hash_images(["x/orig.jpg"], tmp_path, hash_size=16)
    assert len(big["phash"].iloc[0]) == 64
    assert big["phash"].iloc[0] == str(imagehash.phash(Image.open(tmp_path / "x/orig.jpg"), hash_size=16))


def test_same_path_in_two_groups_is_exact_pair():
    """One file listed in a split and an external set pairs with itself at distance 0."""
    split = pd.DataFrame([("a.png", "x", "valid")], columns=["path", "label", "split"])
    ext = {"e": pd.DataFrame([("a.png", "x")], columns=["path", "label"])}
    table = group_table(split, ext).assign(phash=["0f0f0f0f0f0f0f0f"] * 2, pixels=["p1", "p2"])
    pairs = find_pairs(table, 0)
    assert len(pairs) == 1
    row = pairs.iloc[0]
    assert (row.group_a, row.group_b, row.distance, row.kind, row.scope, bool(row.same_label)) == \
        ("valid", "external:e", 0, "exact", "training vs external", True)


def test_scopes_and_orientation():
    """Each of the five scopes, with rows given in reverse of the orientation order."""
    rows = [  # (path, label, group, phash, pixels)
        ("z.png", "x", "external:b", "ffffffff00000000", "p8"),
        ("y.png", "x", "external:a", "ffffffff00000000", "p7"),
        ("w.png", "x", "external:a", "ffffffff00000001", "p6"),
        ("v.png", "y", "test", "00000000ffffffff", "p5"),
        ("u.png", "y", "valid", "00000000ffffff00", "p4"),
        ("t.png", "x", "train", "0000ffff0000ffff", "p3"),
        ("s.png", "x", "train", "0000ffff0000fff0", "p2"),
        ("r.png", "y", "external:b", "ffff0000ffff0000", "p1"),
        ("q.png", "x", "valid", "ffff0000ffff0000", "p1"),
    ]
    table = pd.DataFrame(rows, columns=["path", "label", "group", "phash", "pixels"])
    pairs = find_pairs(table, 8)
    got = list(pairs[["scope", "kind", "distance", "group_a", "path_a", "group_b", "path_b", "same_label"]]
               .itertuples(index=False, name=None))
    assert got == [
        ("within split", "near", 4, "train", "s.png", "train", "t.png", True),
        ("across splits", "near", 8, "valid", "u.png", "test", "v.png", True),
        ("training vs external", "exact", 0, "valid", "q.png", "external:b", "r.png", False),
        ("within external", "near", 1, "external:a", "w.png", "external:a", "y.png", True),
        ("across external sets", "near", 0, "external:a", "y.png", "external:b", "z.png", True),
        ("across external sets", "near", 1, "external:a", "w.png", "external:b", "z.png", True),
    ]
    for _, r in pairs.iterrows():
        expected = popcount(int(table.set_index("path").phash[r.path_a], 16)
                            ^ int(table.set_index("path").phash[r.path_b], 16))
        assert r.distance == expected


def random_table(n: int, bits: int, seed: int) -> pd.DataFrame:
    """`n` random hashes of `bits` bits with planted near copies, shared pixel digests and a repeated path."""
    rng = np.random.default_rng(seed)
    values = [int.from_bytes(rng.bytes(bits // 8), "big") for _ in range(n)]
    for i in range(0, n // 3, 3):  # near copies: flip a few bits
        flips = rng.choice(bits, size=int(rng.integers(0, 4)), replace=False)
        values[i + 1] = values[i] ^ sum(1 << int(f) for f in flips)
    groups = rng.choice(["train", "valid", "test", "external:a", "external:b"], size=n)
    pixels = [f"p{i}" for i in range(n)]
    for i in rng.choice(n, size=10, replace=False):  # exact pixel copies regardless of phash
        pixels[int(i)] = pixels[int(i) - 7]
    paths = [f"img/{i:04d}.png" for i in range(n)]
    paths[5] = paths[200 % n]
    return pd.DataFrame({"path": paths, "label": rng.choice(["a", "b"], size=n), "group": groups,
                         "phash": [f"{v:0{bits // 4}x}" for v in values], "pixels": pixels})


def brute_force(table: pd.DataFrame, max_distance: int) -> list[tuple]:
    """All pairs by a plain double loop, oriented and sorted by the documented rules."""
    rows = list(table.itertuples(index=False))
    out = []
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            a, b = rows[i], rows[j]
            dist = popcount(int(a.phash, 16) ^ int(b.phash, 16))
            exact = a.pixels == b.pixels or a.path == b.path
            if exact or dist <= max_distance:
                if orient_key(b.group, b.path) < orient_key(a.group, a.path):
                    a, b = b, a
                out.append((a.path, a.label, a.group, b.path, b.label, b.group, dist,
                            "exact" if exact else "near", scope_of(a.group, b.group), a.label == b.label))
    out.sort(key=lambda r: (SCOPES.index(r[8]), r[7] != "exact", r[6], r[0], r[3],
                            orient_key(r[2], ""), orient_key(r[5], "")))
    return out


@pytest.mark.parametrize("n, bits, max_distance", [(300, 64, 20), (120, 256, 110)])
def test_chunked_matches_brute_force(n, bits, max_distance):
    """Blocked pair finding (tiny blocks) equals a double loop over every pair, order included."""
    table = random_table(n, bits, seed=n)
    expected = brute_force(table, max_distance)
    chunked = find_pairs(table, max_distance, block_size=7)
    assert [tuple(r) for r in chunked.itertuples(index=False)] == expected
    assert len(expected) > 30 and {"exact", "near"} <= {r[7] for r in expected}
    pd.testing.assert_frame_equal(chunked, find_pairs(table, max_distance))


def clustered_table(n: int, seed: int) -> pd.DataFrame:
    """`n` 64-bit hashes that share their high 40 bits in a few clusters, with near copies at distances 0-6."""
    rng = np.random.default_rng(seed)
    heads = [int(h) << 24 for h in rng.integers(0, 1 << 40, size=4, dtype=np.int64)]
    values = [heads[i % 4] | int(rng.integers(0, 1 << 24)) for i in range(n)]
    for i in range(0, n - 1, 5):
        flips = rng.choice(64, size=int(rng.integers(0, 7)), replace=False)
        values[i + 1] = values[i] ^ sum(1 << int(f) for f in flips)
    return pd.DataFrame({"path": [f"c/{i:05d}.png" for i in range(n)], "label": "a", "group": "train",
                         "phash": [f"{v:016x}" for v in values], "pixels": [f"p{i}" for i in range(n)]})


@pytest.mark.parametrize("n, bits, max_distance", [(3000, 64, 4), (1500, 64, 0), (1200, 256, 9)])
def test_multi_index_matches_every_pair(n, bits, max_distance):
    """The multi-index search (chunks of the hash, buckets of equal chunk values) finds exactly the pairs that
    comparing every pair finds."""
    table = random_table(n, bits, seed=n + max_distance)
    words = pack_hashes(list(table["phash"]))
    fast = _near_pairs(words, max_distance, BLOCK_SIZE)
    every = _near_pairs_blocked(words, max_distance, BLOCK_SIZE)
    assert sorted(zip(*fast)) == sorted(zip(*every))
    assert len(every[0]) > 20


def test_multi_index_large_buckets_fall_back_to_blocks():
    """Hashes that cluster (shared high bits) make buckets over block_size; those are compared pair by pair and
    the result still equals the full comparison."""
    table = clustered_table(2000, seed=3)
    words = pack_hashes(list(table["phash"]))
    fast = _near_pairs(words, 4, 64)
    every = _near_pairs_blocked(words, 4, 64)
    assert sorted(zip(*fast)) == sorted(zip(*every)) and len(every[0]) > 100
    pd.testing.assert_frame_equal(find_pairs(table, 4, block_size=64), find_pairs(table, 4, block_size=5000))


def test_find_pairs_empty_and_no_pairs():
    """No rows or no close hashes give an empty frame with the pair columns."""
    empty = pd.DataFrame(columns=["path", "label", "group", "phash", "pixels"])
    assert list(find_pairs(empty, 4).columns) == PAIR_COLUMNS and find_pairs(empty, 4).empty
    table = pd.DataFrame({"path": ["a", "b"], "label": ["x", "x"], "group": ["train", "test"],
                          "phash": ["0000000000000000", "ffffffffffffffff"], "pixels": ["1", "2"]})
    assert find_pairs(table, 63).empty


def test_summary_and_messages(planted):
    """to_dict is plain JSON; the failure message is one line with the counts; pairs format as a table."""
    root, split, externals = planted
    _, pairs, summary = audit(split, externals, root)
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["by_scope"]["within external"] == {"exact": 0, "near": 0}
    assert data["n_pairs"] == 3 and data["hash_bits"] == 64
    msg = failure_message(summary, "results/logs/leakage.log")
    assert "\n" not in msg
    assert msg.startswith("leakage audit: 3 duplicate pair(s) found (1 exact, 2 near at Hamming distance <= 4): "
                          "2 across splits, 1 training vs external")
    assert "results/logs/leakage.log" in msg and "set leakage: warn" in msg
    again = summarize(pd.DataFrame({"path": range(8)}), pairs, 4, 8)  # no groups: no per-group counts
    assert again.groups == {} and again == dataclasses.replace(summary, groups={})
    assert data["groups"]["external:ext"] == {"n": 2, "distinct": 2, "pairs_within": 0, "pairs_with_training": 1}
    assert sum(g["pairs_with_training"] for g in data["groups"].values()) == 2 * 2 + 1  # each across pair counts twice
    text = format_pairs(pairs)
    lines = text.splitlines()
    assert len(lines) == 1 + len(pairs)
    for line, (_, r) in zip(lines[1:], pairs.iterrows()):
        assert r.path_a in line and r.path_b in line and f" {r.distance} " in line
    assert format_pairs(pairs.iloc[:0]) == "no duplicate pairs"


@pytest.mark.parametrize("bad", [-1, 64, 2.5, True, "4", None])
def test_bad_max_distance(planted, bad):
    """max_distance must be an int in [0, hash bits)."""
    root, split, externals = planted
    with pytest.raises(LeukoError, match="max_distance"):
        audit(split, externals, root, max_distance=bad)


def test_bad_inputs(planted, tmp_path):
    """Missing columns, bad split names, bad hash sizes and unreadable files raise LeukoError."""
    root, split, externals = planted
    with pytest.raises(LeukoError, match="missing column 'split'"):
        group_table(split.drop(columns="split"), externals)
    with pytest.raises(LeukoError, match="external 'ext'.*missing column 'label'"):
        group_table(split, {"ext": externals["ext"].drop(columns="label")})
    with pytest.raises(LeukoError, match="'training'"):
        group_table(split.replace({"split": {"train": "training"}}), externals)
    table = group_table(split, externals).assign(phash="0" * 16, pixels="p")
    with pytest.raises(LeukoError, match="missing column 'pixels'"):
        find_pairs(table.drop(columns="pixels"), 4)
    with pytest.raises(LeukoError, match="'group'"):
        find_pairs(table.assign(group="holdout"), 4)
    with pytest.raises(LeukoError, match="max_distance"):
        find_pairs(table, 64)
    with pytest.raises(LeukoError, match="hash_size"):
        audit(split, externals, root, hash_size=1)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(LeukoError, match="broken.jpg: cannot decode image"):
        hash_images(["broken.jpg"], tmp_path)
    with pytest.raises(LeukoError, match="missing.png: cannot read image"):
        hash_images(["missing.png"], tmp_path)
    only_broken = pd.DataFrame([("broken.jpg", "beta", "test")], columns=["path", "label", "split"])
    with pytest.raises(LeukoError, match="broken.jpg"):
        audit(only_broken, {}, tmp_path)

"""Leakage audit: exact and near-duplicate images within and across splits and external sets.

Perceptual hashes (imagehash.phash) are searched with multi-index hashing: split into max_distance + 1 bit
chunks, two hashes within the distance agree exactly on at least one chunk (pigeonhole), so only rows that
share a chunk value are compared (sort-based, about n log n); no N x N matrix is built.
No fastai/torch here, and imagehash is imported only when hashing: this module must import fast.
"""

from __future__ import annotations

import hashlib
import numbers
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.data.split import SPLITS

__all__ = ["BLOCK_SIZE", "EXTERNAL_PREFIX", "HASH_COLUMNS", "KINDS", "LeakageSummary", "PAIR_COLUMNS", "SCOPES",
           "SPLITS", "audit", "failure_message", "find_pairs", "format_pairs", "group_counts", "group_table",
           "hash_images", "pack_hashes", "summarize"]

EXTERNAL_PREFIX = "external:"
SCOPES: tuple[str, ...] = (
    "within split", "across splits", "training vs external", "within external", "across external sets",
)
KINDS: tuple[str, str] = ("exact", "near")
PAIR_COLUMNS: list[str] = [
    "path_a", "label_a", "group_a", "path_b", "label_b", "group_b", "distance", "kind", "scope", "same_label",
]
HASH_COLUMNS: list[str] = ["path", "phash", "pixels", "width", "height"]
BLOCK_SIZE = 256


def _require(df: object, columns: list[str], what: str) -> None:
    """Raise LeukoError unless `df` is a DataFrame holding every one of `columns`."""
    if not isinstance(df, pd.DataFrame):
        raise LeukoError(f"{what}: must be a pandas DataFrame, got {type(df).__name__}")
    for col in columns:
        if col not in df.columns:
            raise LeukoError(f"{what}: missing column '{col}' (need {', '.join(columns)})")


def _check_hash_size(hash_size: object) -> int:
    """Return `hash_size` as int, or raise LeukoError unless it is an integer >= 2."""
    if isinstance(hash_size, bool) or not isinstance(hash_size, numbers.Integral) or hash_size < 2:
        raise LeukoError(f"hash_size: must be an integer >= 2, got {hash_size!r}")
    return int(hash_size)


def _check_distance(max_distance: object, bits: int) -> int:
    """Return `max_distance` as int, or raise LeukoError unless 0 <= it < `bits`."""
    if isinstance(max_distance, bool) or not isinstance(max_distance, numbers.Integral):
        raise LeukoError(f"max_distance: must be an integer, got {max_distance!r}")
    if not 0 <= max_distance < bits:
        raise LeukoError(f"max_distance: must be >= 0 and < {bits} (the hash bits), got {max_distance!r}")
    return int(max_distance)


def _why(exc: BaseException) -> str:
    """The exception text, or its type name when it has none."""
    return str(exc).strip() or type(exc).__name__


def hash_images(paths: list[str], root: str | Path, hash_size: int = 8) -> pd.DataFrame:
    """One row per path: `path`, `phash` (hex), `pixels` (SHA-256 of RGB bytes and size), `width`, `height`.

    Paths are relative to `root`; an unreadable image raises LeukoError naming it.
    """
    import imagehash  # deferred: pulls in scipy

    size = _check_hash_size(hash_size)
    root = Path(root)
    rows = []
    for path in paths:
        if not isinstance(path, str) or not path:
            raise LeukoError(f"paths: every path must be a non-empty string, got {path!r}")
        where = (root / path).as_posix()
        try:
            with Image.open(root / path) as img:
                rgb = img.convert("RGB")
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise LeukoError(f"{where}: cannot read image ({exc.strerror or exc})") from exc
        except Exception as exc:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError, ...)
            raise LeukoError(f"{where}: cannot decode image ({_why(exc)})") from exc
        width, height = rgb.size
        digest = hashlib.sha256(f"{width}x{height}:".encode())
        digest.update(rgb.tobytes())
        phash = str(imagehash.phash(rgb, hash_size=size))
        rows.append((path, phash, digest.hexdigest(), int(width), int(height)))
    return pd.DataFrame(rows, columns=HASH_COLUMNS).astype({"width": "int64", "height": "int64"})


def group_table(split: pd.DataFrame, externals: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows `path, label, group` for every split row (group = its split) then every external row (`external:<name>`)."""
    _require(split, ["path", "label", "split"], "split")
    bad = sorted({str(s) for s in split["split"] if s not in SPLITS})
    if bad:
        raise LeukoError(f"split: column 'split' has value {bad[0]!r}; expected one of {', '.join(SPLITS)}")
    if not isinstance(externals, dict):
        raise LeukoError(f"externals: must be a dict name -> DataFrame, got {type(externals).__name__}")
    parts = [pd.DataFrame({"path": split["path"].astype(str), "label": split["label"].astype(str),
                           "group": split["split"].astype(str)})]
    for name, df in externals.items():
        if not isinstance(name, str) or not name:
            raise LeukoError(f"externals: names must be non-empty strings, got {name!r}")
        _require(df, ["path", "label"], f"external '{name}'")
        parts.append(pd.DataFrame({"path": df["path"].astype(str), "label": df["label"].astype(str),
                                   "group": EXTERNAL_PREFIX + name}))
    return pd.concat(parts, ignore_index=True)


def _group_rank(group: str) -> int:
    """0/1/2 for train/valid/test, 3 for an external set; LeukoError otherwise."""
    if group in SPLITS:
        return SPLITS.index(group)
    if group.startswith(EXTERNAL_PREFIX) and len(group) > len(EXTERNAL_PREFIX):
        return len(SPLITS)
    raise LeukoError(f"table: column 'group' has value {group!r}; expected train, valid, test or external:<name>")


def _scope(group_a: str, group_b: str) -> str:
    """The scope name of a pair of groups."""
    ext_a, ext_b = group_a.startswith(EXTERNAL_PREFIX), group_b.startswith(EXTERNAL_PREFIX)
    if ext_a != ext_b:
        return "training vs external"
    if ext_a:
        return "within external" if group_a == group_b else "across external sets"
    return "within split" if group_a == group_b else "across splits"


def pack_hashes(phashes: list[str]) -> np.ndarray:
    """Hex perceptual hashes (all of one length) as an (N, words) uint64 array, most significant word first."""
    lengths = {len(h) for h in phashes}
    if len(lengths) > 1:
        raise LeukoError(f"table: column 'phash' mixes hash lengths "
                         f"({', '.join(map(str, sorted(lengths)))} hex digits)")
    width = lengths.pop() if lengths else 16
    padded = -(-width // 16) * 16
    words = np.zeros((len(phashes), padded // 16), dtype=np.uint64)
    for i, h in enumerate(phashes):
        text = h.rjust(padded, "0")
        try:
            words[i] = [int(text[k:k + 16], 16) for k in range(0, padded, 16)]
        except ValueError as exc:
            raise LeukoError(f"table: column 'phash' has non-hex value {h!r}") from exc
    return words


def _distances(words: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between rows `a` and rows `b` (elementwise)."""
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.bitwise_count(words[a] ^ words[b]).sum(axis=1, dtype=np.int64)


def _near_pairs_blocked(words: np.ndarray, max_distance: int, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row index pairs (i < j) with Hamming distance <= max_distance, every pair compared block by block."""
    n = len(words)
    found_a, found_b = [], []
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        # Compare this block against itself and every later row: (block, n - start) distances at most.
        dist = np.zeros((stop - start, n - start), dtype=np.int64)
        for w in range(words.shape[1]):
            dist += np.bitwise_count(words[start:stop, w, None] ^ words[None, start:, w])
        ii, jj = np.nonzero(dist <= max_distance)
        ii, jj = ii + start, jj + start
        keep = jj > ii
        found_a.append(ii[keep])
        found_b.append(jj[keep])
    if not found_a:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(found_a).astype(np.int64), np.concatenate(found_b).astype(np.int64)


def _chunk_codes(words: np.ndarray, chunks: int) -> list[np.ndarray]:
    """Per chunk of the hash bits (``chunks`` disjoint, near-equal runs), an integer code per row: equal codes
    mean equal bits in that chunk."""
    bits = np.unpackbits(words.astype(">u8").view(np.uint8), axis=1)  # (N, 64 * words), most significant first
    edges = np.linspace(0, bits.shape[1], chunks + 1).round().astype(int)
    codes = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        packed = np.packbits(bits[:, lo:hi], axis=1)
        codes.append(np.unique(packed, axis=0, return_inverse=True)[1].reshape(-1))
    return codes


def _near_pairs(words: np.ndarray, max_distance: int, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row index pairs (i < j) with Hamming distance <= max_distance.

    Multi-index hashing: candidates share the exact bits of one of max_distance + 1 chunks; a bucket larger than
    ``block_size`` (hashes that cluster) and chunks under 8 bits fall back to comparing every pair, in blocks.
    """
    n, chunks = len(words), max_distance + 1
    if n < 2 or 64 * words.shape[1] // chunks < 8 or n <= block_size:
        return _near_pairs_blocked(words, max_distance, block_size)
    found = []
    for codes in _chunk_codes(words, chunks):
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        small_a, small_b = [], []
        for rows in np.split(order, bounds):
            if len(rows) < 2:
                continue
            if len(rows) > block_size:
                a, b = _near_pairs_blocked(words[rows], max_distance, block_size)
                found.append(np.sort(np.stack([rows[a], rows[b]]), axis=0))
                continue
            ii, jj = np.triu_indices(len(rows), k=1)
            small_a.append(rows[ii])
            small_b.append(rows[jj])
        if small_a:
            a, b = np.concatenate(small_a), np.concatenate(small_b)
            keep = _distances(words, a, b) <= max_distance
            found.append(np.sort(np.stack([a[keep], b[keep]]), axis=0))
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs = np.unique(np.concatenate(found, axis=1).astype(np.int64), axis=1)
    return pairs[0], pairs[1]


def _same_value_pairs(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Row index pairs (i < j) whose `values` are equal."""
    codes = pd.factorize(values)[0]
    order = np.argsort(codes, kind="stable")
    a, b = [], []
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for rows in np.split(order, bounds):
        if len(rows) > 1:
            ii, jj = np.triu_indices(len(rows), k=1)
            a.append(rows[ii])
            b.append(rows[jj])
    if not a:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(a).astype(np.int64), np.concatenate(b).astype(np.int64)


def _empty_pairs() -> pd.DataFrame:
    """A pairs frame with no rows and the right dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in PAIR_COLUMNS}).astype(
        {"distance": "int64", "same_label": bool})


def find_pairs(table: pd.DataFrame, max_distance: int, *, block_size: int = BLOCK_SIZE) -> pd.DataFrame:
    """Every unordered pair of rows with phash Hamming distance <= `max_distance` or identical pixels (or path).

    Oriented training data first (train, valid, test, externals by name), then by path; sorted by scope,
    kind (exact first), distance and paths. A multi-index bucket over `block_size` rows is compared block by
    block, `block_size` rows at a time.
    """
    _require(table, ["path", "label", "group", "phash", "pixels"], "table")
    if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral) or block_size < 1:
        raise LeukoError(f"block_size: must be a positive integer, got {block_size!r}")
    paths = table["path"].astype(str).to_numpy()
    labels = table["label"].astype(str).to_numpy()
    groups = table["group"].astype(str).to_numpy()
    ranks = np.array([_group_rank(g) for g in groups], dtype=np.int64)
    words = pack_hashes([str(h).lower() for h in table["phash"]])
    hex_bits = 4 * len(str(table["phash"].iloc[0])) if len(table) else 64
    max_distance = _check_distance(max_distance, hex_bits)

    near_a, near_b = _near_pairs(words, max_distance, int(block_size))
    pix_a, pix_b = _same_value_pairs(table["pixels"].astype(str).reset_index(drop=True))
    path_a, path_b = _same_value_pairs(pd.Series(paths))
    exact = pd.DataFrame({"a": np.concatenate([pix_a, path_a]), "b": np.concatenate([pix_b, path_b])})
    found = pd.concat([exact.assign(exact=True), pd.DataFrame({"a": near_a, "b": near_b, "exact": False})],
                      ignore_index=True)
    found = found.sort_values("exact", ascending=False, kind="stable").drop_duplicates(["a", "b"])
    if found.empty:
        return _empty_pairs()
    a, b = found["a"].to_numpy(), found["b"].to_numpy()
    # Orient: lower (group rank, group name, path, row) first.
    key_a = list(zip(ranks[a], groups[a], paths[a], a))
    key_b = list(zip(ranks[b], groups[b], paths[b], b))
    swap = np.array([kb < ka for ka, kb in zip(key_a, key_b)], dtype=bool)
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    pairs = pd.DataFrame({
        "path_a": paths[a], "label_a": labels[a], "group_a": groups[a],
        "path_b": paths[b], "label_b": labels[b], "group_b": groups[b],
        "distance": _distances(words, a, b),
        "kind": np.where(found["exact"].to_numpy(), "exact", "near"),
        "scope": [_scope(ga, gb) for ga, gb in zip(groups[a], groups[b])],
        "same_label": labels[a] == labels[b],
    })
    pairs = pairs.assign(
        _scope=pairs["scope"].map(SCOPES.index), _kind=pairs["kind"].map(KINDS.index),
        _ra=ranks[a], _rb=ranks[b],
    ).sort_values(["_scope", "_kind", "distance", "path_a", "path_b", "_ra", "group_a", "_rb", "group_b"],
                  kind="stable", ignore_index=True)
    return pairs[PAIR_COLUMNS].astype({"distance": "int64", "same_label": bool})


@dataclass
class LeakageSummary:
    """Counts of duplicate pairs found by the leakage audit."""

    n_images: int
    hash: str
    hash_bits: int
    max_distance: int
    n_pairs: int
    n_exact: int
    n_near: int
    by_scope: dict[str, dict[str, int]] = field(default_factory=dict)
    label_conflicts: int = 0
    groups: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The summary as plain JSON types."""
        return asdict(self)


def group_counts(table: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per group (train, valid, test, external:NAME): images ``n``, ``distinct`` images (images joined by pairs
    within the group count once), ``pairs_within`` and ``pairs_with_training`` (pairs with train/valid/test)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    out = {}
    for group, rows in table.groupby("group", sort=False):
        paths = pd.Index(rows["path"].astype(str).unique())
        within = pairs[(pairs["group_a"] == group) & (pairs["group_b"] == group)]
        a = paths.get_indexer(within["path_a"].astype(str))
        b = paths.get_indexer(within["path_b"].astype(str))
        keep = (a >= 0) & (b >= 0)
        graph = coo_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(len(paths), len(paths)))
        distinct = connected_components(graph, directed=False)[0] if len(paths) else 0
        other = pairs["group_b"].where(pairs["group_a"] == group, pairs["group_a"])
        involved = (pairs["group_a"] == group) | (pairs["group_b"] == group)
        out[str(group)] = {"n": int(len(rows)), "distinct": int(distinct), "pairs_within": int(len(within)),
                           "pairs_with_training": int((involved & other.isin(SPLITS) & (other != group)).sum())}
    return out


def summarize(table: pd.DataFrame, pairs: pd.DataFrame, max_distance: int, hash_size: int) -> LeakageSummary:
    """Count images, pairs per kind and scope (every scope listed), pairs with different labels and, when the
    table has groups, images and distinct images per group (group_counts)."""
    _require(table, ["path"], "table")
    _require(pairs, ["kind", "scope", "same_label"], "pairs")
    bits = _check_hash_size(hash_size) ** 2
    max_distance = _check_distance(max_distance, bits)
    by_scope = {s: dict.fromkeys(KINDS, 0) for s in SCOPES}
    for (scope, kind), n in pairs.groupby(["scope", "kind"]).size().items():
        if scope not in by_scope or kind not in KINDS:
            raise LeukoError(f"pairs: unknown scope/kind {scope!r}/{kind!r}")
        by_scope[scope][kind] = int(n)
    n_exact = int((pairs["kind"] == "exact").sum())
    return LeakageSummary(
        n_images=int(len(table)), hash="phash", hash_bits=int(bits), max_distance=max_distance,
        n_pairs=int(len(pairs)), n_exact=n_exact, n_near=int(len(pairs)) - n_exact, by_scope=by_scope,
        label_conflicts=int((~pairs["same_label"].astype(bool)).sum()),
        groups=group_counts(table, pairs) if {"group"} <= set(table.columns) and
        {"group_a", "group_b", "path_a", "path_b"} <= set(pairs.columns) else {},
    )


def _reuse_hashes(known: pd.DataFrame, hash_size: int) -> pd.DataFrame:
    """The HASH_COLUMNS rows of an earlier hash table, one per path; LeukoError unless its hashes have
    `hash_size` ** 2 bits."""
    _require(known, HASH_COLUMNS, "known hashes")
    known = known[HASH_COLUMNS].drop_duplicates("path").astype({"path": str, "phash": str, "pixels": str})
    digits = hash_size ** 2 // 4
    wrong = known["phash"].str.len() != digits
    if wrong.any():
        raise LeukoError(f"known hashes: phash {known['phash'][wrong].iloc[0]!r} is not a {hash_size ** 2}-bit "
                         f"hash ({digits} hex digits, leakage_hash_size {hash_size})")
    return known.astype({"width": "int64", "height": "int64"})


def audit(
    split: pd.DataFrame,
    externals: dict[str, pd.DataFrame],
    root: str | Path,
    max_distance: int = 4,
    hash_size: int = 8,
    known: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, LeakageSummary]:
    """Hash every split and external image under `root`; return (hash table, pairs, summary).

    Paths in `known` (an earlier hash table, e.g. the split-only audit's) reuse its hashes and are not read again.
    """
    bits = _check_hash_size(hash_size) ** 2
    max_distance = _check_distance(max_distance, bits)
    table = group_table(split, externals)
    paths, parts = list(pd.unique(table["path"])), []
    if known is not None:
        reused = _reuse_hashes(known, hash_size)
        parts.append(reused[reused["path"].isin(paths)])
        done = set(parts[0]["path"])
        paths = [p for p in paths if p not in done]
    parts.append(hash_images(paths, root, hash_size))
    hashes = pd.concat([p for p in parts if len(p)] or parts[-1:], ignore_index=True)
    table = table.merge(hashes, on="path", how="left", validate="many_to_one")
    pairs = find_pairs(table, max_distance)
    return table, pairs, summarize(table, pairs, max_distance, hash_size)


def failure_message(summary: LeakageSummary, details: str) -> str:
    """One line saying how many duplicate pairs were found, per scope, and where they are listed."""
    scopes = [f"{counts['exact'] + counts['near']} {scope}" for scope, counts in summary.by_scope.items()
              if counts["exact"] + counts["near"]]
    text = (f"leakage audit: {summary.n_pairs} duplicate pair(s) found ({summary.n_exact} exact, {summary.n_near} "
            f"near at Hamming distance <= {summary.max_distance})")
    if scopes:
        text += ": " + ", ".join(scopes)
    if summary.label_conflicts:
        text += f" ({summary.label_conflicts} with different labels)"
    return " ".join(f"{text}; pairs listed in {details}; set leakage: warn to continue".split())


def format_pairs(pairs: pd.DataFrame) -> str:
    """A plain-text table of the pairs, one line each under a header (or a line saying there are none)."""
    _require(pairs, PAIR_COLUMNS, "pairs")
    if pairs.empty:
        return "no duplicate pairs"
    columns = ["scope", "kind", "distance", "same_label", "group_a", "path_a", "label_a",
               "group_b", "path_b", "label_b"]
    cells = [columns] + [[str(v) for v in row] for row in pairs[columns].itertuples(index=False)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)

"""Synthetic ImageFolders for the scaling benchmark: variants of the embedded images (seeded random crop,
dihedral flip and mild noise), each checked with the leakage audit's perceptual hash not to be a near duplicate of
its source or of another variant of it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from leukoreport.base.errors import LeukoError

__all__ = ["MAX_ATTEMPTS", "SUFFIXES", "SYNTHETIC_VERSION", "check_synthetic", "folder_bytes",
           "make_synthetic_folder"]

SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff")
SYNTHETIC_VERSION = 1
MAX_ATTEMPTS = 50


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _sources(source: Path) -> list[tuple[str, list[Path]]]:
    """(class, image files) per class folder of the ImageFolder ``source``, sorted."""
    source = Path(source)
    if not source.is_dir():
        raise LeukoError(f"{source.as_posix()}: folder not found (the images the synthetic data are made from)")
    classes = [(d.name, [f for f in _visible(d) if f.is_file() and f.suffix.lower() in SUFFIXES])
               for d in _visible(source) if d.is_dir()]
    classes = [(name, files) for name, files in classes if files]
    if not classes:
        raise LeukoError(f"{source.as_posix()}: no class folders with images")
    return classes


def _plan(classes: list[tuple[str, list[Path]]], n: int) -> list[tuple[int, str, int, str, int]]:
    """One job per source image: (class index, class, source index, source path, variants to make).

    n is spread over the classes as evenly as possible; within a class image j is variant j // k of source j % k.
    """
    k = len(classes)
    jobs = []
    for ci, (name, files) in enumerate(classes):
        count = n // k + (1 if ci < n % k else 0)
        for si, path in enumerate(files):
            variants = len(range(si, count, len(files)))
            if variants:
                jobs.append((ci, name, si, str(path), variants))
    return jobs


def _hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _draw(rgb: np.ndarray, rng: np.random.Generator):
    """One variant: random crop of 72-92% of each side, one of the 8 dihedral flips, resize back to the source
    size, uniform noise of -4..4 grey levels per pixel and channel."""
    from PIL import Image

    h, w = rgb.shape[:2]
    frac = rng.uniform(0.72, 0.92)
    ch, cw = max(1, round(h * frac)), max(1, round(w * frac))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = rgb[y:y + ch, x:x + cw]
    d = int(rng.integers(8))
    crop = np.rot90(crop, d % 4)
    if d >= 4:
        crop = crop[:, ::-1]
    img = Image.fromarray(np.ascontiguousarray(crop)).resize((w, h), Image.Resampling.BICUBIC)
    noisy = np.asarray(img).astype(np.int16) + rng.integers(-4, 5, (h, w, 3), dtype=np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _phash(data: bytes | Path, hash_size: int) -> str:
    """The leakage audit's perceptual hash (``leakage.hash_images``: RGB, ``imagehash.phash``) of a file or of
    encoded image bytes, without its table."""
    import io

    import imagehash
    from PIL import Image

    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
        return str(imagehash.phash(img.convert("RGB"), hash_size=hash_size))


def _make_variants(job: tuple, out: str, seed: int, max_distance: int, hash_size: int) -> list[dict]:
    """Write the variants of one source image; each is redrawn until its perceptual hash (the leakage audit's,
    of the encoded JPEG, as the audit will read it) is farther than ``max_distance`` from the source and from
    every earlier variant of the source."""
    import io

    from PIL import Image

    ci, name, si, path, count = job
    path, out = Path(path), Path(out)
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"))
    seen = [_phash(path, hash_size)]
    rows = []
    for v in range(count):
        rel = f"{name}/{path.stem}_v{v:03d}.jpg"
        for attempt in range(MAX_ATTEMPTS):
            rng = np.random.default_rng([seed, ci, si, v, attempt])
            buffer = io.BytesIO()
            _draw(rgb, rng).save(buffer, format="JPEG", quality=92)
            data = buffer.getvalue()
            phash = _phash(data, hash_size)
            if min(_hamming(phash, s) for s in seen) > max_distance:
                (out / rel).write_bytes(data)
                break
        else:
            raise LeukoError(f"{path.as_posix()}: no variant {v} farther than {max_distance} bits from the others "
                             f"after {MAX_ATTEMPTS} draws")
        seen.append(phash)
        rows.append({"path": rel, "source": path.as_posix(), "variant": v, "attempts": attempt + 1, "phash": phash})
    return rows


def _make_variants_star(args: tuple) -> list[dict]:
    return _make_variants(*args)


def _marker(out: Path) -> Path:
    return out.parent / f"{out.name}.json"


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file() and not f.is_symlink())


def check_synthetic(out: Path, rows: list[dict], sample: int = 1000, seed: int = 0, max_distance: int = 4,
                    hash_size: int = 8) -> dict:
    """Hash a sample of generated images and their sources with the leakage audit (``leakage.hash_images``,
    ``find_pairs``): whole sources are drawn at random (all their variants and the source itself) until
    ``sample`` images; returns the pairs found at ``max_distance`` and the smallest distance in the sample."""
    from leukoreport.data.leakage import find_pairs, hash_images, pack_hashes

    by_source: dict[str, list[str]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(Path(out, row["path"]).resolve().as_posix())
    order = np.random.default_rng(seed).permutation(sorted(by_source))
    paths: list[str] = []
    chosen = 0
    for source in order:
        if len(paths) >= sample:
            break
        paths += [Path(source).resolve().as_posix(), *by_source[source]]
        chosen += 1
    table = hash_images(paths, "/", hash_size).assign(label="x", group="train")
    pairs = find_pairs(table, max_distance)
    words = pack_hashes(list(table["phash"]))
    dist = sum(np.bitwise_count(words[:, w, None] ^ words[None, :, w]).astype(np.int64) for w in range(words.shape[1]))
    np.fill_diagonal(dist, np.iinfo(np.int64).max)
    return {"images": len(table), "sources": chosen, "max_distance": max_distance,
            "pairs_within_max_distance": int(len(pairs)),
            "min_distance": int(dist.min()) if len(table) > 1 else None, "ok": len(pairs) == 0}


def make_synthetic_folder(source: str | Path, out: str | Path, n: int, seed: int = 0, *, max_distance: int = 4,
                          hash_size: int = 8, processes: int = 1, check_sample: int = 1000) -> dict:
    """An ImageFolder of ``n`` JPEG images at ``out`` made from the ImageFolder ``source`` (same classes, n spread
    evenly; see ``_draw``), seeded per image: the same arguments give the same bytes. A folder made earlier with
    the same arguments (``out``.json beside it) is reused. Returns what was made and the sample check."""
    source, out = Path(source), Path(out)
    classes = _sources(source)
    wanted = {"version": SYNTHETIC_VERSION, "source": source.resolve().as_posix(), "n": int(n), "seed": int(seed),
              "max_distance": int(max_distance), "hash_size": int(hash_size)}
    marker = _marker(out)
    if marker.is_file() and out.is_dir():
        done = json.loads(marker.read_text())
        if {k: done.get(k) for k in wanted} == wanted:
            return {**done, "reused": True}
    if out.exists():
        shutil.rmtree(out)
    marker.unlink(missing_ok=True)
    for name, _ in classes:
        (out / name).mkdir(parents=True, exist_ok=True)
    jobs = [(job, str(out), seed, max_distance, hash_size) for job in _plan(classes, n)]
    start = time.perf_counter()
    if processes > 1:
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()  # fork where there is one: workers use PIL and numpy only
        with multiprocessing.get_context("fork" if "fork" in methods else "spawn").Pool(processes) as pool:
            parts = pool.map(_make_variants_star, jobs, chunksize=max(1, len(jobs) // (processes * 8)))
    else:
        parts = [_make_variants_star(job) for job in jobs]
    rows = [row for part in parts for row in part]
    seconds = time.perf_counter() - start
    check = check_synthetic(out, rows, check_sample, seed, max_distance, hash_size)
    result = {**wanted, "images": len(rows), "classes": [name for name, _ in classes],
              "sources_used": len(jobs), "max_variants_per_source": max((j[0][4] for j in jobs), default=0),
              "redrawn": sum(r["attempts"] - 1 for r in rows), "seconds": round(seconds, 2),
              "bytes": folder_bytes(out), "check": check}
    marker.write_text(json.dumps(result, indent=2) + "\n")
    return {**result, "reused": False}

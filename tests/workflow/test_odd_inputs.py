"""Bad and odd inputs a user brings, through the real Snakemake workflow: only the steps that read user images
without training (split, external, leakage, cache), in three workflow runs.

What is accepted (one run, ``accepted``), each image listed in split.csv / the external CSV with its folder's label,
hashed by the leakage audit and, in the train and valid rows, decoded into the image cache:

* file names with ``$``, backslashes, ``<b>``, quotes, spaces, braces, commas and non-ASCII letters;
* upper-case suffixes (``.JPG``, ``.PNG``, ``.TIFF``);
* every pixel format PIL opens as 8-bit, converted to RGB by ``leukoreport.data.images.to_rgb``: grayscale (L), CMYK,
  RGBA (alpha dropped), palette (P), 16-bit-per-channel RGB TIFF (PIL keeps the high byte, the same in every
  reader), 1x1 and 6000x6000 pixels (36 MP is under PIL's decompression-bomb limit of about 89 MP; the run's peak
  memory stays under the 1000 MB the data rules declare);
* a link to an image elsewhere (listed under the link's own path);
* OS junk is skipped silently, in the data folder and in class folders: ``.DS_Store``, AppleDouble ``._*``
  files, ``Thumbs.db``, ``desktop.ini`` and a ``__MACOSX`` folder.

What is refused: the step exits 1 with exactly one ``error: PATH: why`` line on stderr naming the offending file or
folder, and its output file does not exist afterwards:

* an empty external folder (``no class folders``), loose images with no class folders (``file outside a class
  folder``, for the training data and an external set), a broken link (``broken link``), and a folder nested in a
  class folder (``nested folder inside class folder``): refused rather than ignored or searched, because ImageFolder
  labels come from the parent folder, so its images would be lost silently or land in a class of their own;
* a 16-bit grayscale TIFF (mode I;16: ``unsupported image``): fastai's loader, used by evaluation, prediction and
  the exported model, clips it above 255 to white, so no conversion for training could match it.

External class folders that differ from the training classes only in case (``Basophil/``) are matched to them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from leukoreport.data.image_cache import load_cache
from leukoreport.data.split import stratified_split

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]
DATA_MEM_MB = 1000  # mem_mb of the split, external and cache rules (workflow/rules/data.smk)
BIG = 6000  # side of the large image: 36 MP


# --------------------------------------------------------------------------- running the workflow


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float  # peak resident memory of Snakemake and every job it ran (the largest single process)
    seconds: float

    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]


# Starts Snakemake and writes the peak resident memory of it and its reaped descendants (RUSAGE_CHILDREN) to
# argv[1]. Measured here, not by wait4 on a child of pytest: a child exec'd from pytest inherits pytest's own
# peak RSS (the old address space's high-water mark is recorded at exec), so e.g. torch loaded by earlier tests in
# the same session would count as the workflow's memory.
_MEASURE = """\
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc if rc >= 0 else 128 - rc)
"""


def run_snakemake(project: Path, *args: str, timeout: float = 300) -> Run:
    """``python -m snakemake ARGS`` in ``project`` with stdout and stderr apart, and the peak memory of the
    process tree (the largest maximum resident set size of Snakemake and its reaped descendants, measured by a
    small wrapper process so that pytest's own memory does not count)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH")] if p)}
    out, err, rss = project / "snakemake.stdout", project / "snakemake.stderr", project / "snakemake.maxrss"
    rss.unlink(missing_ok=True)
    start = time.perf_counter()
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-c", _MEASURE, str(rss), sys.executable, "-m", "snakemake", *args],
                                cwd=project, stdout=fo, stderr=fe, env=env, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the wrapper's own session: Snakemake and its jobs too
            proc.wait()
    max_rss_mb = int(rss.read_text()) / 1024 if rss.is_file() else float("nan")  # nan: killed, not measured
    return Run(proc.returncode, out.read_text(), err.read_text(), max_rss_mb, time.perf_counter() - start)


def data_config(project: Path, data_dir: str, external: dict[str, str]) -> dict:
    """The smoke config on ``data_dir`` and ``external``, written to ``project/odd.yaml``."""
    cfg = yaml.safe_load((project / "config" / "smoke.yaml").read_text())
    cfg.update(data_dir=data_dir, external=external, max_per_class=None, image_cache=True, leakage="warn")
    (project / "odd.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return cfg


def split_target(cfg: dict) -> str:
    return f"results/splits/{cfg['split_seeds'][0]}/split.csv"


def assert_refused(run: Run, needle: str, output: Path):
    """Exit status 1, exactly one ``error: `` line on stderr containing ``needle`` (the path), the output gone."""
    assert run.returncode == 1, run.stderr[-3000:]
    mine = [line for line in run.errors() if needle in line]
    assert len(mine) == 1, (needle, run.errors(), run.stderr[-3000:])
    assert mine[0].startswith(f"error: {needle}"), mine[0]
    assert not output.exists()
    if output.parent.exists():  # nor the temporary file of an atomic write
        assert not [p.name for p in output.parent.iterdir() if p.name.startswith(f".{output.name}.")]
    return mine[0]


# --------------------------------------------------------------------------- images


def noise(path: Path, seed: int, size: int = 16) -> Path:
    """A small noisy RGB image (format from the suffix)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=Image.registered_extensions()[path.suffix.lower()])
    return path


GRADIENT16 = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0..65520


def odd_formats(folder: Path, prefix: str) -> dict[str, np.ndarray]:
    """Images in odd pixel formats under ``folder``; their expected 8-bit RGB pixels at the cache size (64 px)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    expected = {}

    def uniform(rgb) -> np.ndarray:
        return np.broadcast_to(np.array(rgb, dtype=np.uint8), (64, 64, 3))

    Image.new("L", (64, 64), 128).save(folder / f"{prefix}_gray_L.png")
    expected[f"{prefix}_gray_L.png"] = uniform((128, 128, 128))
    Image.new("CMYK", (64, 64), (0, 255, 0, 0)).save(folder / f"{prefix}_cmyk.jpg", quality=95)
    expected[f"{prefix}_cmyk.jpg"] = uniform((255, 0, 255))  # PIL's profile-free CMYK -> RGB
    Image.new("RGBA", (64, 64), (10, 20, 30, 0)).save(folder / f"{prefix}_rgba.png")
    expected[f"{prefix}_rgba.png"] = uniform((10, 20, 30))  # alpha dropped, not composited
    palette = Image.new("P", (64, 64), 3)
    palette.putpalette([0, 0, 0] * 3 + [200, 150, 100] + [0, 0, 0] * 252)
    palette.save(folder / f"{prefix}_palette.gif")
    expected[f"{prefix}_palette.gif"] = uniform((200, 150, 100))
    Image.new("RGB", (1, 1), (90, 30, 160)).save(folder / f"{prefix}_1x1.png")
    expected[f"{prefix}_1x1.png"] = uniform((90, 30, 160))
    rgb16 = np.stack([GRADIENT16, GRADIENT16 // 2, GRADIENT16 // 4], axis=-1)
    assert cv2.imwrite(str(folder / f"{prefix}_rgb16.tiff"), rgb16[:, :, ::-1])  # 48-bit RGB TIFF (cv2: BGR)
    expected[f"{prefix}_rgb16.tiff"] = (rgb16 >> 8).astype(np.uint8)
    return expected


def junk(folder: Path) -> None:
    """What macOS, Windows and zip archives leave beside images."""
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + bytes(100))
    (folder / "Thumbs.db").write_bytes(bytes(range(256)))
    (folder / "desktop.ini").write_text("[.ShellClassInfo]\nIconResource=x.ico\n")


def apple_double(path: Path) -> None:
    """A macOS AppleDouble ``._name`` file (resource fork of ``name`` on a non-Mac disk)."""
    path.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00" + bytes(200))


ODD_NAMES = ["MO_$\\frac$_1.jpg", "MO_$5 and $6.jpg", "MO_<b>bold.png", "MO_it's \"quoted\".jpg",
             "zelle_ü_细胞.jpg", "MO_{1},x.png"]


@pytest.fixture(scope="module")
def accepted(tmp_path_factory, copy_project_light):
    """One workflow run over every accepted odd input, in the training data and an external set."""
    project = copy_project_light(tmp_path_factory.mktemp("odd") / "project")
    images, ext = project / "images", project / "odd_ext"
    rows: list[tuple[str, str]] = []  # (path, label) the split must list
    ext_rows: list[tuple[str, str]] = []  # ... and the external table
    must_cache: list[str] = []  # paths the cache must decode (kept out of the test split below)
    pixels: dict[str, np.ndarray] = {}  # path -> expected cached pixels

    def add(folder: Path, name: str, label: str, cache: bool = False):
        path = f"{folder.name}/{label}/{name}"
        (rows if folder == images else ext_rows).append((path, label))
        if cache:
            must_cache.append(path)

    for c in CLASSES:
        (images / c).mkdir(parents=True)
    for c in ("monocyte", "eosinophil", "lymphocyte"):
        (ext / c).mkdir(parents=True)
    for i, name in enumerate(ODD_NAMES):
        noise(images / "monocyte" / name, seed=i)
        add(images, name, "monocyte")
    for suffix in (".JPG", ".PNG", ".TIFF"):
        noise(images / "basophil" / f"BA_upper{suffix}", seed=10 + len(suffix))
        add(images, f"BA_upper{suffix}", "basophil", cache=True)
    for name, rgb in odd_formats(images / "eosinophil", "EO").items():
        pixels[f"images/eosinophil/{name}"] = rgb
        add(images, name, "eosinophil", cache=True)
    Image.new("RGB", (BIG, BIG), (200, 100, 50)).save(images / "lymphocyte" / "LY_6000x6000.jpg", quality=95)
    pixels["images/lymphocyte/LY_6000x6000.jpg"] = np.broadcast_to(np.array([200, 100, 50], np.uint8), (64, 64, 3))
    add(images, "LY_6000x6000.jpg", "lymphocyte", cache=True)
    noise(project / "elsewhere" / "NE_real.png", seed=20)
    os.symlink("../../elsewhere/NE_real.png", images / "neutrophil" / "NE_link.png")
    add(images, "NE_link.png", "neutrophil", cache=True)
    for folder in (images, *(images / c for c in CLASSES)):
        junk(folder)
    apple_double(images / "monocyte" / "._MO_$5 and $6.jpg")
    apple_double(images / "basophil" / "._BA_upper.JPG")
    (images / "__MACOSX" / "monocyte").mkdir(parents=True)
    apple_double(images / "__MACOSX" / "monocyte" / "._zelle_ü_细胞.jpg")

    # the external set: odd names, formats and suffixes, a link, junk everywhere; not every class
    for i, name in enumerate(ODD_NAMES[:3] + ["zelle_ü_细胞.jpg"]):
        noise(ext / "monocyte" / name, seed=30 + i)
        add(ext, name, "monocyte")
    for name in odd_formats(ext / "eosinophil", "ext"):
        add(ext, name, "eosinophil")
    noise(ext / "lymphocyte" / "LY_ext.TIFF", seed=40)
    add(ext, "LY_ext.TIFF", "lymphocyte")
    os.symlink("../../elsewhere/NE_real.png", ext / "lymphocyte" / "LY_link.png")
    add(ext, "LY_link.png", "lymphocyte")
    for folder in (ext, ext / "monocyte", ext / "eosinophil", ext / "lymphocyte"):
        junk(folder)
    apple_double(ext / "monocyte" / "._zelle_ü_细胞.jpg")

    cfg = data_config(project, "images", {"odd": "odd_ext"})
    seed = int(cfg["split_seeds"][0])
    # plain fillers (at least 3 a class) until no image the cache must decode lands in the test split, which
    # the cache skips; the split is computed here as the workflow will, from exactly the accepted files
    fill = dict.fromkeys(CLASSES, 0)

    def filler(c: str) -> None:
        name = f"{c[:2].upper()}_fill{fill[c]:02d}.png"
        noise(images / c / name, seed=100 + 10 * CLASSES.index(c) + fill[c])
        add(images, name, c)
        fill[c] += 1

    for c in CLASSES:
        for _ in range(3):
            filler(c)
    for _ in range(100):
        expected = stratified_split(pd.DataFrame(rows, columns=["path", "label"]),
                                    tuple(cfg["split_fractions"]), seed)
        clash = expected[(expected["split"] == "test") & expected["path"].isin(must_cache)]
        if clash.empty:
            break
        for c in clash["label"].unique():
            filler(c)
    else:
        raise AssertionError("no filler count keeps the odd images out of the test split")

    size = int(cfg["size"])
    targets = [split_target(cfg), "results/data/external/odd.csv", f"results/splits/{seed}/audit/leakage.json",
               f"results/splits/{seed}/cache{size}.bin"]
    run = run_snakemake(project, "--cores", "2", *targets, "--configfile", "odd.yaml")
    print(f"accepted odd inputs: {run.seconds:.1f} s, peak memory {run.max_rss_mb:.0f} MB")
    return project, cfg, run, expected, pd.DataFrame(ext_rows, columns=["path", "label"]), pixels


def test_odd_inputs_are_accepted_in_one_run(accepted):
    project, cfg, run, _, _, _ = accepted
    assert run.returncode == 0, run.stderr[-5000:]
    assert run.errors() == []


def test_split_lists_odd_names_formats_and_links_and_skips_junk(accepted):
    """Every accepted file once with its folder's label and the split computed from exactly those files; no
    .DS_Store, ._*, Thumbs.db, desktop.ini or __MACOSX entry anywhere."""
    project, cfg, _, expected, _, _ = accepted
    split = pd.read_csv(project / split_target(cfg), dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(split, expected[["path", "label", "split"]].astype(str))
    names = {Path(p).name for p in split["path"]}
    assert set(ODD_NAMES) <= names and {"BA_upper.JPG", "BA_upper.PNG", "BA_upper.TIFF", "NE_link.png"} <= names
    assert not [n for n in names if n.startswith(".") or n.lower() in ("thumbs.db", "desktop.ini")]
    assert not split["path"].str.contains("__MACOSX").any()


def test_external_set_lists_odd_inputs_and_skips_junk(accepted):
    project, _, _, _, ext_rows, _ = accepted
    table = pd.read_csv(project / "results/data/external/odd.csv", dtype=str, keep_default_na=False)
    assert sorted(map(tuple, table[["path", "label"]].to_numpy())) == sorted(map(tuple, ext_rows.to_numpy()))


def test_leakage_audit_hashes_every_odd_image(accepted):
    project, cfg, _, expected, ext_rows, _ = accepted
    hashes = pd.read_csv(project / f"results/splits/{cfg['split_seeds'][0]}/audit/hashes.csv", dtype=str,
                         keep_default_na=False)
    assert set(hashes["path"]) == set(expected["path"]) | set(ext_rows["path"])
    big = hashes.loc[hashes["path"] == "images/lymphocyte/LY_6000x6000.jpg"].iloc[0]
    assert (int(big["width"]), int(big["height"])) == (BIG, BIG)


def test_cache_decodes_odd_formats_to_8_bit_rgb(accepted):
    """The cache holds the train and valid rows; CMYK, gray, palette, RGBA, 16-bit-per-channel RGB (high byte),
    1x1 and 6000x6000 come out as the expected RGB."""
    project, cfg, _, expected, _, pixels = accepted
    seed, size = cfg["split_seeds"][0], int(cfg["size"])
    cache = load_cache(project / f"results/splits/{seed}/cache{size}.bin")
    assert cache.paths == list(expected.loc[expected["split"] != "test", "path"])
    for path, rgb in pixels.items():
        got = cache.image(cache.paths.index(path))
        assert got.shape == (size, size, 3), path
        off = int(np.abs(got.astype(int) - rgb.astype(int)).max())
        assert off <= (4 if path.endswith(".jpg") else 0), f"{path}: cached pixels off by up to {off}"


def test_a_36_megapixel_image_stays_within_the_declared_memory(accepted):
    _, _, run, _, _, _ = accepted
    assert run.returncode == 0
    assert run.max_rss_mb < DATA_MEM_MB, f"peak {run.max_rss_mb:.0f} MB, rules declare mem_mb={DATA_MEM_MB}"


# --------------------------------------------------------------------------- refused inputs

REFUSED = {  # external set -> (path the error names, what it says)
    "empty_ext": ("empty_ext", "no class folders"),
    "loose_ext": ("loose_ext/cell_00.jpg", "file outside a class folder"),
    "broken_ext": ("broken_ext/monocyte/gone.jpg", "broken link"),
    "nested_ext": ("nested_ext/monocyte/batch 2", "nested folder inside class folder"),
    "gray16_ext": ("gray16_ext/monocyte/MO_16bit.tif", "unsupported image (mode I;16: 16-bit grayscale"),
}


def small_training_set(images: Path) -> None:
    for k, c in enumerate(CLASSES):
        for i in range(3):
            noise(images / c / f"{c[:2]}_{i}.png", seed=10 * k + i, size=12)


@pytest.fixture(scope="module")
def refused(tmp_path_factory, copy_project_light):
    """One run with --keep-going over a good training set and one external set per refusal case (each external
    job fails on its own), plus external class folders in other letter case."""
    project = copy_project_light(tmp_path_factory.mktemp("refused") / "project")
    small_training_set(project / "images")
    (project / "empty_ext").mkdir()
    (project / "empty_ext" / ".DS_Store").write_bytes(b"junk")  # junk alone does not make it a data set
    for i in range(2):
        noise(project / "loose_ext" / f"cell_{i:02d}.jpg", seed=50 + i)
    noise(project / "broken_ext" / "monocyte" / "ok.png", seed=60)
    os.symlink("../../nowhere/gone.jpg", project / "broken_ext" / "monocyte" / "gone.jpg")
    noise(project / "nested_ext" / "monocyte" / "ok.png", seed=61)
    noise(project / "nested_ext" / "monocyte" / "batch 2" / "deeper.png", seed=62)
    noise(project / "gray16_ext" / "monocyte" / "MO_ok.png", seed=65)
    gray16 = Image.fromarray(GRADIENT16)
    assert gray16.mode == "I;16"
    gray16.save(project / "gray16_ext" / "monocyte" / "MO_16bit.tif")
    noise(project / "Capital_ext" / "Basophil" / "BA_x.png", seed=63)
    noise(project / "Capital_ext" / "Monocyte" / "MO_x.png", seed=64)
    external = {name: name for name in REFUSED} | {"capital": "Capital_ext"}
    cfg = data_config(project, "images", external)
    targets = [split_target(cfg), *[f"results/data/external/{name}.csv" for name in external]]
    run = run_snakemake(project, "--cores", "2", "--keep-going", *targets, "--configfile", "odd.yaml")
    print(f"refused external sets: {run.seconds:.1f} s")
    return project, cfg, run


@pytest.mark.parametrize("name", list(REFUSED))
def test_external_set_refused_in_one_line(refused, name):
    project, cfg, run = refused
    assert (project / split_target(cfg)).is_file(), run.stderr[-3000:]
    path, why = REFUSED[name]
    line = assert_refused(run, path, project / f"results/data/external/{name}.csv")
    assert line.startswith(f"error: {path}: {why}"), line


def test_no_other_errors_in_the_refusal_run(refused):
    _, _, run = refused
    named = [line for line in run.errors() if not any(line.startswith(f"error: {p}") for p, _ in REFUSED.values())]
    assert named == [], named


def test_external_classes_match_training_classes_ignoring_case(refused):
    project, _, run = refused
    assert not [line for line in run.errors() if "Capital_ext" in line], run.errors()
    table = pd.read_csv(project / "results/data/external/capital.csv", dtype=str, keep_default_na=False)
    assert sorted(table["label"]) == ["basophil", "monocyte"]
    assert sorted(table["path"]) == ["Capital_ext/Basophil/BA_x.png", "Capital_ext/Monocyte/MO_x.png"]


def test_loose_training_images_stop_the_split(tmp_path, copy_project_light):
    """A data folder of images without class folders: the split stops, naming the first image, and leaves no
    split.csv (nor its temporary file)."""
    project = copy_project_light(tmp_path / "project")
    for i in range(3):
        noise(project / "flat" / f"img {i}.png", seed=70 + i)
    junk(project / "flat")
    cfg = data_config(project, "flat", {})
    run = run_snakemake(project, "--cores", "1", split_target(cfg), "--configfile", "odd.yaml")
    line = assert_refused(run, "flat/img 0.png", project / split_target(cfg))
    assert line.startswith("error: flat/img 0.png: file outside a class folder"), line
    assert len(run.errors()) == 1

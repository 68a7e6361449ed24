"""Benchmark: the project's training path against a plain fastai script of the same recipe, on the same data.

Each variant runs in its own Python process (so that peak memory is its own); the parent writes one JSON with
the raw figures and the ratios project / plain (below 1 means the project is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from leukoreport.base.atomic_io import write_json
from leukoreport.base.errors import LeukoError
from leukoreport.training.device import describe_device

__all__ = ["BenchSettings", "VARIANTS", "bench_split", "best_of", "format_report", "main", "run_bench", "run_variant",
           "time_optimizer_step"]

VARIANTS = ("plain", "project")


@dataclass
class BenchSettings:
    """What both variants run: data, image size, batch size, epochs per phase and device."""

    data_dir: str = "data/leukocytes"
    images: int = 250
    epochs: int = 1
    size: int = 224
    batch_size: int = 32
    device: str = "auto"
    threads: int = 0  # 0: torch's default
    precision: str = "auto"
    channels_last: bool = True
    image_cache: bool = True
    lean_loop: bool = True
    deterministic: bool = True
    split_seed: int = 42
    seed: int = 0
    inference_repeats: int = 5  # inference is timed as the best of this many passes (a short, noisy figure)


def bench_split(settings: BenchSettings):
    """The stratified 70/15/15 split of ``images`` images (about the same number per class)."""
    from leukoreport.data.images import discover
    from leukoreport.data.split import stratified_split, subsample

    images = discover(settings.data_dir)
    per_class = max(3, settings.images // images["label"].nunique())
    return stratified_split(subsample(images, per_class, settings.split_seed), (0.7, 0.15, 0.15),
                            settings.split_seed)


def _peak_memory(device: str) -> dict:
    """Peak resident memory of this process and its children (MB), and peak CUDA memory when on a GPU."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024 / 1024
    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1),
           "peak_rss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale, 1)}
    if device.startswith("cuda"):
        import torch

        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def best_of(run, repeats: int):
    """``run()``'s first result, its fastest wall time in seconds over ``repeats`` calls, and every time."""
    result, times = None, []
    for i in range(max(1, repeats)):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
        result = out if i == 0 else result
    return result, min(times), times


def _plain(settings: BenchSettings, split) -> dict:
    """The paper's recipe as a straight fastai script: file-based DataBlock, fastai's default workers,
    EarlyStopping + SaveModelCallback, fp32, contiguous memory format."""
    import tempfile

    import torch
    from fastai.vision.all import (
        CategoryBlock,
        DataBlock,
        EarlyStoppingCallback,
        ImageBlock,
        IndexSplitter,
        Resize,
        SaveModelCallback,
        accuracy,
        aug_transforms,
        parent_label,
        resnet18,
        set_seed,
        vision_learner,
    )

    from leukoreport.training.device import resolve_device

    device = resolve_device(settings.device)
    set_seed(settings.seed, reproducible=True)
    rows = split[split["split"].isin(["train", "valid"])].reset_index(drop=True)
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=parent_label,
                      splitter=IndexSplitter(rows.index[rows["split"] == "valid"].tolist()),
                      item_tfms=Resize(settings.size),
                      batch_tfms=aug_transforms(size=settings.size, min_scale=0.75, max_rotate=180.0, do_flip=True,
                                                flip_vert=True, max_warp=0.2, max_lighting=0.5, p_affine=0.75,
                                                p_lighting=0.75))
    start = time.perf_counter()
    dls = block.dataloaders([Path(p) for p in rows["path"]], bs=settings.batch_size, device=device)
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    setup = time.perf_counter() - start
    phases = []
    with tempfile.TemporaryDirectory() as tmp, learn.no_bar():
        learn.path = Path(tmp)
        for frozen, lr, patience in ((True, 1e-3, 3), (False, 1e-4, 5)):
            learn.freeze() if frozen else learn.unfreeze()
            t = time.perf_counter()
            learn.fit_one_cycle(settings.epochs, lr, cbs=[EarlyStoppingCallback(patience=patience),
                                                          SaveModelCallback(fname="best")])
            phases.append(time.perf_counter() - t)
        test = [Path(p) for p in split.loc[split["split"] == "test", "path"]]
        probs, inference, runs = best_of(lambda: learn.get_preds(dl=dls.test_dl(test, bs=64))[0],
                                         settings.inference_repeats)
    vocab = [str(c) for c in dls.vocab]
    hits = [vocab[int(i)] == p.parent.name for i, p in zip(probs.argmax(dim=1), test)]
    return {"setup_seconds": setup, "phase_seconds": phases, "inference_seconds": inference,
            "inference_runs_seconds": runs, "test_accuracy": sum(hits) / len(hits),
            "n_train": len(dls.train_ds), "n_test": len(test), "device": device, "precision": "fp32",
            "threads": torch.get_num_threads(), "num_workers": dls.train.fake_l.num_workers,
            "inference_workers": dls.valid.fake_l.num_workers}


def _project(settings: BenchSettings, split) -> dict:
    """The project's path: leukoreport.training.two_phase with the image cache, channels-last and the precision setting,
    then leukoreport.inference.evaluate's inference."""
    import torch

    from leukoreport.data.image_cache import split_cache
    from leukoreport.inference.evaluate import inference_workers, predict
    from leukoreport.training.device import resolve_device
    from leukoreport.training.two_phase import PhaseConfig, TrainConfig, train

    device = resolve_device(settings.device)
    cfg = TrainConfig.defaults(size=settings.size, batch_size=settings.batch_size, pretrained=False,
                      phases=[PhaseConfig(True, 1e-3, settings.epochs, 3),
                              PhaseConfig(False, 1e-4, settings.epochs, 5)],
                      device=device, precision=settings.precision, channels_last=settings.channels_last,
                      deterministic=settings.deterministic, lean_loop=settings.lean_loop, num_workers=0)
    t = time.perf_counter()
    cache = split_cache(split, settings.size, os.cpu_count() or 1) if settings.image_cache else None
    cache_seconds = time.perf_counter() - t
    learn, history, info = train(split, cfg, settings.seed, settings.threads or None, "random", cache)
    test = split.loc[split["split"] == "test", ["path", "label"]]
    predictions, inference, runs = best_of(lambda: predict(learn, test, 64, os.cpu_count() or 0),
                                           settings.inference_repeats)
    return {"cache_seconds": cache_seconds, "phase_seconds": [p["seconds"] for p in info["phases"]],
            "inference_seconds": inference, "inference_runs_seconds": runs,
            "test_accuracy": float((predictions["prediction"] == predictions["label"]).mean()),
            "n_train": info["n_train"], "n_test": len(test), "device": device,
            "precision": info["precision"], "threads": torch.get_num_threads(), "num_workers": 0,
            "inference_workers": inference_workers(len(test), 64, os.cpu_count() or 0),
            "channels_last": settings.channels_last, "image_cache": settings.image_cache,
            "lean_loop": settings.lean_loop}


def time_optimizer_step(device: str, repeats: int = 20) -> dict:
    """Milliseconds per optimizer step plus zero-grad over ResNet18's parameters on ``device``: fastai's Adam
    and fastfit's ForeachAdam, alternated twice, best of the two rounds each."""
    import torch
    from fastai.optimizer import Adam
    from torchvision.models import resnet18

    from leukoreport.training.fast_step import ForeachAdam

    params = list(resnet18(num_classes=5).to(device).parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    best = {"fastai_adam": float("inf"), "foreach_adam": float("inf")}
    for _ in range(2):
        for name, opt_func in (("fastai_adam", Adam), ("foreach_adam", ForeachAdam)):
            opt = opt_func(params, lr=1e-3)
            opt.step()  # state allocated outside the timing
            sync()
            start = time.perf_counter()
            for _ in range(repeats):
                opt.step()
                opt.zero_grad()
            sync()
            best[name] = min(best[name], (time.perf_counter() - start) / repeats * 1e3)
    return best


def run_variant(variant: str, settings: BenchSettings) -> dict:
    """Time one variant in this process; figures in seconds and images per second."""
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    split = bench_split(settings)
    result = (_plain if variant == "plain" else _project)(settings, split)
    n = result["n_train"] * settings.epochs
    result["images_per_second"] = {"phase1": n / result["phase_seconds"][0], "phase2": n / result["phase_seconds"][1],
                                   "inference": result["n_test"] / result["inference_seconds"]}
    result.update(_peak_memory(result["device"]))
    if variant == "project":
        result["optimizer_step_ms"] = time_optimizer_step(result["device"])
    return result


def _child(variant: str, settings: BenchSettings) -> dict:
    """Run one variant in a fresh Python process and return its JSON."""
    cmd = [sys.executable, "-m", "leukoreport.bench.training_speed", variant, json.dumps(asdict(settings))]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise LeukoError(f"bench: the {variant} variant failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_bench(settings: BenchSettings, out: str | Path) -> dict:
    """Both variants, one after the other, and their ratios (project seconds / plain seconds); writes ``out``."""
    results = {v: _child(v, settings) for v in VARIANTS}
    plain, project = results["plain"], results["project"]
    ratios = {
        "ratio_phase1": project["phase_seconds"][0] / plain["phase_seconds"][0],
        "ratio_phase2": project["phase_seconds"][1] / plain["phase_seconds"][1],
        "ratio_inference": project["inference_seconds"] / plain["inference_seconds"],
    }
    step = project["optimizer_step_ms"]
    ratios["ratio_optimizer_step"] = step["foreach_adam"] / step["fastai_adam"]
    report = {**{k: round(v, 4) for k, v in ratios.items()}, "settings": asdict(settings),
              "device": describe_device(project["device"]).text, "precision": project["precision"],
              "plain": plain, "project": project,
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    write_json(report, out)
    return report


def format_report(report: dict) -> str:
    """A few lines for the terminal."""
    p, q = report["plain"], report["project"]
    lines = [f"device {report['device']}, precision {report['precision']}, {p['n_train']} training images, "
             f"{report['settings']['epochs']} epoch(s) per phase, {report['settings']['size']} px"]
    for key, label, i in (("phase1", "phase 1 (frozen)", 0), ("phase2", "phase 2 (unfrozen)", 1)):
        lines.append(f"{label:20s} plain {p['phase_seconds'][i]:8.1f} s ({p['images_per_second'][key]:7.1f} img/s)   "
                     f"project {q['phase_seconds'][i]:8.1f} s ({q['images_per_second'][key]:7.1f} img/s)   "
                     f"ratio {report['ratio_' + key]:.3f}")
    label = f"inference (best of {report['settings'].get('inference_repeats', 1)})"
    lines.append(f"{label:20s} plain {p['inference_seconds']:8.1f} s ({p['images_per_second']['inference']:7.1f} "
                 f"img/s)   project {q['inference_seconds']:8.1f} s ({q['images_per_second']['inference']:7.1f} img/s)"
                 f"   ratio {report['ratio_inference']:.3f}")
    step = q["optimizer_step_ms"]
    lines.append(f"{'optimizer step':20s} fastai Adam {step['fastai_adam']:.2f} ms, leukoreport ForeachAdam "
                 f"{step['foreach_adam']:.2f} ms (same arithmetic)   ratio {report['ratio_optimizer_step']:.3f}")
    lines.append(f"test accuracy after {report['settings']['epochs']} + {report['settings']['epochs']} epoch(s) "
                 f"(a sanity check, not a result): plain {p['test_accuracy']:.3f}, project {q['test_accuracy']:.3f}")
    lines.append(f"peak RSS: plain {p['peak_rss_mb']:.0f} MB (+ workers {p['peak_rss_children_mb']:.0f} MB), "
                 f"project {q['peak_rss_mb']:.0f} MB; image cache built in {q['cache_seconds']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``python -m leukoreport.bench.training_speed VARIANT SETTINGS_JSON`` prints the variant's
    JSON."""
    parser = argparse.ArgumentParser(prog="python -m leukoreport.bench.training_speed")
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("settings")
    args = parser.parse_args(argv)
    result = run_variant(args.variant, BenchSettings(**json.loads(args.settings)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

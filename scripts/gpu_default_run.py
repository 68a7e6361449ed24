"""Time the default run's compute on a GPU machine that has no Snakemake: split, image cache, the three seeds
trained at once on the one GPU (the default recipe, random initialisation), and every evaluation.

Usage: python scripts/gpu_default_run.py OUT_DIR   (writes OUT_DIR/default_run.json)
The Snakemake workflow runs the same functions; its per-job wall times are in results/benchmarks/*.tsv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

CHILD = r"""
import json, sys, time
import pandas as pd
from leukoreport.data.images import discover
from leukoreport.inference.evaluate import predict
from leukoreport.data.image_cache import load_cache
from leukoreport.stats.metrics import compute_metrics
from leukoreport.training.two_phase import TrainConfig, train
seed, out = int(sys.argv[1]), sys.argv[2]
config = {**json.loads(sys.argv[3]), "pretrained": False}
split = pd.read_csv(f"{out}/split.csv")
t = time.perf_counter()
learn, history, info = train(split, TrainConfig.from_config(config), seed, 4, "random", load_cache(f"{out}/cache.bin"))
result = {"seed": seed, "train_seconds": time.perf_counter() - t, "info": info}
sets = {"test": split[split["split"] == "test"][["path", "label"]],
        "external_monocyte": discover("data/external_monocyte")}
t = time.perf_counter()
for name, images in sets.items():
    pred = predict(learn, images, 64)
    m = compute_metrics(pred, [str(c) for c in learn.dls.vocab], name, seed)
    result[name] = {"accuracy": m["accuracy"], "n": m["n"], "n_correct": m["n_correct"]}
result["evaluate_seconds"] = time.perf_counter() - t
print(json.dumps(result))
"""


def main(out: str, quick: bool = False) -> int:
    from leukoreport.data.image_cache import save_cache, split_cache
    from leukoreport.data.images import discover
    from leukoreport.data.split import stratified_split

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(Path("config/config.yaml").read_text())
    if quick:  # a CPU check of this script: 20 images per class, 1 epoch per phase, 64 px
        config.update(size=64, device="cpu", phases={k: {**v, "max_epochs": 1} for k, v in config["phases"].items()})
    start = time.perf_counter()
    images = discover(config["data_dir"])
    if quick:
        images = images.groupby("label").head(20).reset_index(drop=True)
    split = stratified_split(images, tuple(config["split_fractions"]), config["split_seeds"][0])
    split.to_csv(out_dir / "split.csv", index=False)
    t_split = time.perf_counter() - start
    save_cache(split_cache(split, config["size"], 16), out_dir / "cache.bin")
    t_cache = time.perf_counter() - start - t_split
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(seed), str(out_dir), json.dumps(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in config["seeds"]]
    results = []
    for p in procs:
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            print(stderr[-3000:], file=sys.stderr)
            return 1
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    wall = time.perf_counter() - start
    summary = {"wall_seconds": wall, "split_seconds": t_split, "cache_seconds": t_cache, "seeds": results}
    (out_dir / "default_run.json").write_text(json.dumps(summary, indent=2))
    print(f"default run compute: {wall:.1f} s wall (split {t_split:.1f} s, cache {t_cache:.1f} s)")
    for r in results:
        epochs = " + ".join(str(p["epochs_run"]) for p in r["info"]["phases"])
        print(f"seed {r['seed']}: train {r['train_seconds']:.1f} s ({epochs} epochs, {r['info']['precision']}), "
              f"evaluate {r['evaluate_seconds']:.1f} s, test {r['test']['n_correct']}/{r['test']['n']}, "
              f"external {r['external_monocyte']['n_correct']}/{r['external_monocyte']['n']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "results/gpu_check", "--quick" in sys.argv))

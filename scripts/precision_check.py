"""Does bf16 autocast change what training reaches? Train the recipe twice per seed on the same split, fp32 and
bf16 (both through leukoreport.training.two_phase, image cache on), and print test accuracy and time for each.

    python scripts/precision_check.py --images 1000 --size 128 --epochs 5 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from leukoreport.bench.training_speed import BenchSettings, bench_split
from leukoreport.data.image_cache import split_cache
from leukoreport.inference.evaluate import predict
from leukoreport.training.two_phase import PhaseConfig, TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="JSON to write")
    args = parser.parse_args()
    split = bench_split(BenchSettings(images=args.images))
    cache = split_cache(split, args.size, 2)
    test = split.loc[split["split"] == "test", ["path", "label"]]
    cfg = TrainConfig.defaults(size=args.size, pretrained=False, device=args.device, channels_last=True,
                               phases=[PhaseConfig(True, 1e-3, args.epochs, 3),
                                       PhaseConfig(False, 1e-4, args.epochs, 5)],
                               num_workers=0, precision="fp32")
    rows = []
    for seed in args.seeds:
        for precision in ("fp32", "bf16"):
            start = time.perf_counter()
            learn, history, info = train(split, replace(cfg, precision=precision), seed, cache=cache)
            seconds = time.perf_counter() - start
            pred = predict(learn, test)
            acc = float((pred["prediction"] == pred["label"]).mean())
            rows.append({"seed": seed, "precision": info["precision"], "test_accuracy": acc, "n_test": len(pred),
                         "best_valid_loss": info["phases"][-1]["best_valid_loss"],
                         "epochs_run": [p["epochs_run"] for p in info["phases"]], "train_seconds": round(seconds, 1)})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"settings": vars(args), "runs": rows}, fh, indent=2)


if __name__ == "__main__":
    main()

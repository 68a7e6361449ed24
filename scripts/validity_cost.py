"""What the external-validity diagnostics add to a finished run: wall seconds from Snakemake's benchmark files.

Usage: python scripts/validity_cost.py [RESULTS_DIR]   (default results/). Prints seconds per rule and the ratio
of the diagnostics' time to the evaluation-and-report time of the same run (both summed over jobs, as on 1 core).
"""

import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

DIAGNOSTICS = ("embed_train", "image_stats", "image_shift", "shift", "plot_shift", "label_audit", "gradcam",
               "validity_summary")
EVALUATION_AND_REPORT = ("evaluate", "plot_dataset", "ensemble", "summarize", "robustness", "plot_robustness",
                         "plot_summary", "plot_training", "report_html", "summary_html", "report_pdf", "summary_pdf")


def rule_of(name: str) -> str:
    """The rule of a benchmark file name such as ``shift_split42_seed1_test.tsv``."""
    for rule in sorted(DIAGNOSTICS + EVALUATION_AND_REPORT, key=len, reverse=True):
        if name == rule or name.startswith(rule + "_"):
            return rule
    return ""


def main(results: Path) -> None:
    seconds = defaultdict(float)
    for path in sorted((results / "benchmarks").glob("*.tsv")):
        rule = rule_of(path.stem)
        if rule:
            seconds[rule] += float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
    diag = sum(seconds[r] for r in DIAGNOSTICS)
    base = sum(seconds[r] for r in EVALUATION_AND_REPORT)
    for rule in EVALUATION_AND_REPORT + DIAGNOSTICS:
        if seconds[rule]:
            print(f"{rule:18s} {seconds[rule]:8.1f} s")
    print(f"evaluation and report: {base:.1f} s; diagnostics: {diag:.1f} s; ratio {diag / base:.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))

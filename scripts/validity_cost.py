"""What the external-validity diagnostics add to a finished run: wall seconds from Snakemake's benchmark files.

Usage: python scripts/validity_cost.py [RESULTS_DIR ...]   (default results/). Prints, per results folder, the
wall and CPU seconds and jobs per rule and the ratio of the diagnostics' time to the evaluation-and-report time of
the same run (both summed over jobs, as on 1 core; the wall ratio is the one to quote, the CPU ratio shows how much
of it a loaded machine's waiting explains); with two folders (before, after) also the ratio of the wall ratios.
Benchmark files of other rules (training, data, leakage audits including leakage_external, claims) are not counted.
Diagnostics run inside another rule's job (Grad-CAM, the training embeddings and the shift diagnostics in evaluate, the
label audit in ensemble) are timed by that job into a timing.json next to its outputs; their seconds are moved from that
rule to the diagnostic's (both sums are printed). The interventions, also run in the evaluate jobs, are moved out of
evaluate and counted in neither sum.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

from leukoreport.base.job_timing import read_timing

# image_stats also covers the per-split job (image_stats_split{split}.tsv); image_shift, the rule that computed the
# shift tables in separate jobs before image_stats did, and shift, embed_train, gradcam and label_audit, rules before
# their work moved into other jobs, are kept so that older results folders are measured alike.
DIAGNOSTICS = ("embed_train", "image_stats", "image_shift", "shift", "plot_shift", "label_audit", "gradcam",
               "validity_summary")
# Work timed inside the evaluate jobs that is neither a diagnostic nor evaluation: the interventions at evaluation
# (issue 24, their own cost per image is in interventions.json); moved out of evaluate and counted in neither sum.
UNCOUNTED = ("interventions",)
# render_html renders both HTML documents; report_html and summary_html are its older names.
EVALUATION_AND_REPORT = ("evaluate", "plot_dataset", "ensemble", "summarize", "robustness", "plot_robustness",
                         "plot_summary", "plot_training", "render_html", "report_html", "summary_html", "report_pdf",
                         "summary_pdf")


def rule_of(name: str) -> str:
    """The rule of a benchmark file stem such as ``shift_split42_seed1_test``; '' for a rule counted in neither."""
    for rule in sorted(DIAGNOSTICS + EVALUATION_AND_REPORT, key=len, reverse=True):
        if name == rule or name.startswith(rule + "_"):
            return rule
    return ""


def rule_seconds(results: Path, column: str = "s") -> tuple[dict[str, float], dict[str, int]]:
    """Seconds (column ``s``, wall, or ``cpu_time``; last row; a missing value counts 0) summed per counted rule
    over its benchmark files, and the job counts."""
    seconds: dict[str, float] = defaultdict(float)
    jobs: dict[str, int] = defaultdict(int)
    for path in sorted((results / "benchmarks").glob("*.tsv")):
        rule = rule_of(path.stem)
        if rule:
            value = pd.to_numeric(pd.read_csv(path, sep="\t")[column], errors="coerce").iloc[-1]
            seconds[rule] += 0.0 if pd.isna(value) else float(value)
            jobs[rule] += 1
    return dict(seconds), dict(jobs)


def timing_files(results: Path) -> list[Path]:
    """The timing.json files of a results folder (diagnostics timed inside other rules' jobs), logs left out."""
    return sorted(p for p in results.rglob("timing.json") if not {"logs", "benchmarks"} & set(p.parts))


def moved_seconds(results: Path, column: str = "s") -> dict[tuple[str, str], float]:
    """Seconds (``s`` wall or ``cpu_time``) per (job's rule, diagnostic) summed over the timing.json files."""
    moved: dict[tuple[str, str], float] = defaultdict(float)
    for path in timing_files(results):
        timing = read_timing(path)
        for diagnostic, spent in timing.diagnostics.items():
            moved[(timing.rule, diagnostic)] += spent[column]
    return dict(moved)


def charge_diagnostics(seconds: dict[str, float], moved: dict[tuple[str, str], float]) -> dict[str, float]:
    """``seconds`` per rule with each in-job diagnostic's seconds moved from its job's rule to the diagnostic (an
    UNCOUNTED name keeps them apart from both sums)."""
    charged = dict(seconds)
    for (rule, diagnostic), s in moved.items():
        if diagnostic not in DIAGNOSTICS + UNCOUNTED or rule not in EVALUATION_AND_REPORT:
            raise ValueError(f"timing.json: diagnostic '{diagnostic}' in rule '{rule}' is not a counted pair")
        charged[rule] = charged.get(rule, 0.0) - s
        charged[diagnostic] = charged.get(diagnostic, 0.0) + s
    return charged


def cost_ratio(seconds: dict[str, float]) -> tuple[float, float, float]:
    """(diagnostics seconds, evaluation-and-report seconds, their ratio)."""
    diag = sum(seconds.get(r, 0.0) for r in DIAGNOSTICS)
    base = sum(seconds.get(r, 0.0) for r in EVALUATION_AND_REPORT)
    return diag, base, diag / base if base else float("nan")


def main(folders: list[Path]) -> None:
    ratios = []
    for results in folders:
        seconds, jobs = rule_seconds(results)
        cpu, _ = rule_seconds(results, "cpu_time")
        moved, moved_cpu = moved_seconds(results), moved_seconds(results, "cpu_time")
        print(f"{results.as_posix()}  (wall s, CPU s as Snakemake sampled it, jobs; as the benchmark files sum them)")
        for rule in EVALUATION_AND_REPORT + DIAGNOSTICS:
            if rule in seconds:
                print(f"  {rule:18s} {seconds[rule]:8.1f} s  {cpu.get(rule, 0.0):8.1f} s  {jobs[rule]:3d} jobs")
        for (rule, diagnostic), s in sorted(moved.items()):
            print(f"  moved from {rule} to {diagnostic} (timed inside the jobs, {len(timing_files(results))} "
                  f"timing.json): {s:.1f} s, CPU {moved_cpu[(rule, diagnostic)]:.1f} s")
        if moved:
            diag, base, ratio = cost_ratio(seconds)
            print(f"  before moving: evaluation and report {base:.1f} s; diagnostics {diag:.1f} s; ratio {ratio:.3f}")
        diag, base, ratio = cost_ratio(charge_diagnostics(seconds, moved))
        cpu_diag, cpu_base, cpu_ratio = cost_ratio(charge_diagnostics(cpu, moved_cpu))
        ratios.append(ratio)
        print(f"  CPU: evaluation and report {cpu_base:.1f} s; diagnostics {cpu_diag:.1f} s; ratio {cpu_ratio:.3f}")
        print(f"  evaluation and report: {base:.1f} s; diagnostics: {diag:.1f} s; ratio {ratio:.3f}")
    if len(ratios) == 2:
        print(f"ratio after / before: {ratios[1] / ratios[0]:.3f}")


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]] or [Path("results")])

"""The scaling benchmark's log-log figure: seconds and peak RSS per workflow step against the number of images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from leukoreport.bench.scaling_targets import MB, RSS_LIMIT_BYTES

__all__ = ["plot_scaling"]


def plot_scaling(report: dict, out: str | Path) -> Path:
    """Log-log PNG: seconds per step against n (with reference slopes 1 and n log n) and peak RSS per step
    against n (with the 8 GB line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = {int(n): r for n, r in report["results"].items()}
    sizes = sorted(results)
    steps = list(dict.fromkeys(s for n in sizes for s in results[n]["steps"]))
    key = report.get("targets", {}).get("time_basis", "seconds")  # the values the slopes are judged on
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(14, 6.5), sharex=True)
    cmap = plt.get_cmap("tab20")
    styles = ["-", "--", ":", "-."]
    for i, step in enumerate(steps):
        kw = {"color": cmap(i % 20), "linestyle": styles[(i // 20) % 4], "marker": "o", "markersize": 3, "linewidth": 1}
        t = [(n, results[n]["steps"][step][key]) for n in sizes
             if step in results[n]["steps"] and results[n]["steps"][step][key]]
        m = [(n, results[n]["steps"][step]["max_rss_mb"]) for n in sizes
             if step in results[n]["steps"] and results[n]["steps"][step]["max_rss_mb"]]
        if t:
            ax_t.plot(*zip(*t), label=step, **kw)
        if m:
            ax_m.plot(*zip(*m), label=step, **kw)
    total = [(n, sum(s[key] for s in results[n]["steps"].values())) for n in sizes]
    ax_t.plot(*zip(*total), color="black", linewidth=2.5, marker="s", label="sum of steps")
    if sizes:
        n0, t0 = total[0]
        grid = np.geomspace(sizes[0], max(sizes[-1], sizes[0] * 2), 50)
        ax_t.plot(grid, t0 * grid / n0, color="grey", linewidth=1, alpha=0.7, label="slope 1 (from the sum)")
        ax_t.plot(grid, t0 * grid * np.log(grid) / (n0 * math.log(n0)), color="grey", linewidth=1, alpha=0.7,
                  linestyle="--", label="n log n (from the sum)")
    ax_m.axhline(RSS_LIMIT_BYTES / MB, color="red", linewidth=1, linestyle="--")
    ax_m.annotate("8 GB", (0.01, RSS_LIMIT_BYTES / MB), xycoords=("axes fraction", "data"), color="red",
                  va="bottom", fontsize=8)
    what = "CPU seconds" if key == "cpu_seconds" else "seconds"
    for ax, label in ((ax_t, f"{what} (summed over the step's jobs)"), (ax_m, "peak RSS, MB (largest job)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("images (n)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    machine, settings = report.get("machine", {}), report["settings"]
    where = " + ".join(x for x in (f"{machine.get('Model name', 'CPU')} ({machine.get('cpus')} CPUs, --cores "
                                   f"{settings['cores']})", machine.get("gpu")) if x)
    fig.suptitle(f"leukoreport workflow scaling · {where} · {settings['size']} px, "
                 f"{settings['max_batches']} batches per epoch")
    handles, labels = ax_t.get_legend_handles_labels()
    for handle, label in zip(*ax_m.get_legend_handles_labels()):  # steps with no CPU time to plot
        if label not in labels:
            handles.append(handle)
            labels.append(label)
    fig.legend(handles, labels, loc="center right", fontsize=7, ncol=1, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.86, 0.95))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

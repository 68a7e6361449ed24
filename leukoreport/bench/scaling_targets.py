"""Growth and targets of the scaling benchmark: log-log slopes of time and peak RSS against the number of images,
and whether each workflow step meets its targets."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MAX_SLOPE", "MB", "MIN_SECONDS", "NLOGN_STEPS", "RSS_AT", "RSS_LIMIT_BYTES", "growth_exponents",
           "nlogn_slope", "targets"]

MAX_SLOPE = 1.1  # time may grow at most linearly (with some slack for noise)
MIN_SECONDS = 5.0  # a step under this at every size is too short for a slope (start-up and sampling noise)
NLOGN_STEPS = ("leakage",)  # steps allowed n log n (a pair search)
RSS_LIMIT_BYTES = 8e9  # 8 GB peak RSS ...
RSS_AT = 50_000  # ... at 50,000 images
MB = 2**20  # Snakemake's max_rss unit (psutil bytes / 1024 / 1024)


def growth_exponents(table: dict[int, dict[str, float | None]]) -> dict[str, float | None]:
    """Per step, the least-squares slope of log(value) against log(n) over the sizes with a positive value:
    ``{n: {step: value}}`` -> ``{step: slope}`` (None with fewer than two sizes)."""
    steps = list(dict.fromkeys(step for row in table.values() for step in row))
    out = {}
    for step in steps:
        points = [(int(n), float(row[step])) for n, row in table.items()
                  if row.get(step) is not None and math.isfinite(float(row[step])) and float(row[step]) > 0]
        if len({n for n, _ in points}) < 2:
            out[step] = None
            continue
        x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
        out[step] = round(float(np.polyfit(x, y, 1)[0]), 4)
    return out


def nlogn_slope(sizes: list[int]) -> float:
    """The log-log slope n log n shows over ``sizes`` (about 1 + 1/ln n)."""
    sizes = sorted({int(n) for n in sizes})
    if len(sizes) < 2:
        return 1.0 + 1.0 / math.log(max(sizes[0] if sizes else 3, 3))
    x = np.log(sizes)
    return float(np.polyfit(x, x + np.log(x), 1)[0])


def targets(results: dict[int, dict]) -> dict:
    """Per step: the time slope (of CPU seconds when every benchmark has them: jobs that overlap on few cores
    inflate each other's wall time) against its limit (``MAX_SLOPE``; n log n's slope + 0.1 for ``NLOGN_STEPS``;
    steps under ``MIN_SECONDS`` at every size pass unjudged) and the peak RSS at ``RSS_AT`` images (measured, else
    extrapolated with the RSS slope) against 8 GB."""
    sizes = sorted(results)
    cpu = all("cpu_seconds" in v for n in sizes for v in results[n]["steps"].values())
    basis = "cpu_seconds" if cpu else "seconds"
    seconds = {n: {s: v[basis] for s, v in results[n]["steps"].items()} for n in sizes}
    rss = {n: {s: v["max_rss_mb"] for s, v in results[n]["steps"].items()} for n in sizes}
    time_slopes, rss_slopes = growth_exponents(seconds), growth_exponents(rss)
    wall_slopes = growth_exponents({n: {s: v["seconds"] for s, v in results[n]["steps"].items()} for n in sizes})
    limit_mb = RSS_LIMIT_BYTES / MB
    steps = {}
    for step, slope in time_slopes.items():
        limit = round(nlogn_slope(sizes) + (MAX_SLOPE - 1.0), 3) if step in NLOGN_STEPS else MAX_SLOPE
        known = [n for n in sizes if rss[n].get(step) is not None]
        if RSS_AT in known:
            at, how = rss[RSS_AT][step], "measured"
        elif known and rss_slopes.get(step) is not None:
            n0 = max(known)
            at, how = rss[n0][step] * (RSS_AT / n0) ** max(rss_slopes[step], 0.0), f"extrapolated from n={n0}"
        else:
            at, how = None, "not enough sizes"
        largest = max((seconds[n].get(step) or 0.0) for n in sizes)
        short = largest < MIN_SECONDS and len(sizes) > 1
        steps[step] = {"time_slope": slope, "wall_time_slope": wall_slopes.get(step), "time_slope_limit": limit,
                       "time_ok": True if short else (None if slope is None else bool(slope <= limit)),
                       "time_note": f"under {MIN_SECONDS:g} s at every size: not judged" if short else None,
                       "rss_slope": rss_slopes.get(step),
                       f"rss_mb_at_{RSS_AT}": None if at is None else round(at, 1), "rss_at_source": how,
                       "rss_ok": None if at is None else bool(at <= limit_mb)}
    verdicts = [v for s in steps.values() for v in (s["time_ok"], s["rss_ok"])]
    return {"time_basis": basis, "time_slope_limit": MAX_SLOPE, "min_seconds": MIN_SECONDS,
            "nlogn_steps": list(NLOGN_STEPS), "rss_limit_bytes": RSS_LIMIT_BYTES,
            "rss_limit_mb": round(limit_mb, 1), "rss_at": RSS_AT,
            "all_ok": None if None in verdicts or not verdicts else all(verdicts),
            "failing": sorted(s for s, v in steps.items() if v["time_ok"] is False or v["rss_ok"] is False),
            "steps": steps}

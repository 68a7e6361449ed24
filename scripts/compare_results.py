"""Compare two `results/` folders file by file: every CSV cell and JSON value, ignoring timings, dates, absolute
paths and logs. Prints one line per difference and a closing count; exits 1 when anything differs.

    python scripts/compare_results.py BEFORE/results AFTER/results [--tolerance 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

# Words that mark a key or column as a timing, date or version-control fact: they differ between two runs of
# the same code ('phase_seconds', 'date', 'git_commit', 'wall_s', ...).
IGNORED_WORDS = {"seconds", "second", "s", "time", "times", "timestamp", "date", "duration", "elapsed", "minutes",
                 "git", "commit", "created"}
# Folders that hold logs and Snakemake's benchmark files (timings) rather than results.
IGNORED_PARTS = {"logs", "benchmarks", ".snakemake"}
COMPARED_SUFFIXES = {".csv", ".json", ".tsv"}


def result_files(root: Path) -> dict[str, Path]:
    """Files under `root` by relative POSIX path, logs and benchmarks left out."""
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and not IGNORED_PARTS & set(p.relative_to(root).parts)}


def ignored(key: object) -> bool:
    """Whether a JSON key or CSV column holds a timing, a date or a commit (by its words, split at '_')."""
    return bool(IGNORED_WORDS & set(re.split(r"[_\s]+", str(key).lower())))


def normalise_text(value: str, roots: tuple[str, ...]) -> str:
    """`value` with either run's absolute project folder replaced by a placeholder."""
    for root in roots:
        value = value.replace(root, "<ROOT>")
    return value


def equal_values(a: object, b: object, tolerance: float) -> bool:
    """Numbers equal within `tolerance` (NaN equals NaN); anything else equal as it is."""
    try:
        x, y = float(a), float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return a == b
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return abs(x - y) <= tolerance


def json_differences(a: object, b: object, where: str, tolerance: float, roots: tuple[str, ...]) -> Iterator[str]:
    """Every differing leaf of two JSON values, as 'path: a != b'."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if ignored(key):
                continue
            if key not in a or key not in b:
                yield f"{where}.{key}: only in {'after' if key not in a else 'before'}"
            else:
                yield from json_differences(a[key], b[key], f"{where}.{key}", tolerance, roots)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: {len(a)} items != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            yield from json_differences(x, y, f"{where}[{i}]", tolerance, roots)
    elif isinstance(a, str) and isinstance(b, str):
        if normalise_text(a, roots) != normalise_text(b, roots):
            yield f"{where}: {a!r} != {b!r}"
    elif not equal_values(a, b, tolerance) or isinstance(a, str) != isinstance(b, str):
        yield f"{where}: {a!r} != {b!r}"


def table_differences(a: Path, b: Path, name: str, tolerance: float, roots: tuple[str, ...]) -> Iterator[str]:
    """Every differing cell of two CSV/TSV files (columns matched by name; ignored columns skipped)."""
    delimiter = "\t" if a.suffix == ".tsv" else ","
    with a.open(newline="") as fa, b.open(newline="") as fb:
        rows_a, rows_b = list(csv.DictReader(fa, delimiter=delimiter)), list(csv.DictReader(fb, delimiter=delimiter))
    columns_a = list(rows_a[0]) if rows_a else []
    columns_b = list(rows_b[0]) if rows_b else []
    if columns_a != columns_b:
        yield f"{name}: columns {columns_a} != {columns_b}"
        return
    if len(rows_a) != len(rows_b):
        yield f"{name}: {len(rows_a)} rows != {len(rows_b)} rows"
    for i, (ra, rb) in enumerate(zip(rows_a, rows_b), start=2):
        for column in columns_a:
            if ignored(column):
                continue
            x, y = normalise_text(ra[column] or "", roots), normalise_text(rb[column] or "", roots)
            if x != y and not equal_values(x, y, tolerance):
                yield f"{name}:{i} {column}: {ra[column]!r} != {rb[column]!r}"


def compare_folders(before: Path, after: Path, tolerance: float = 0.0) -> tuple[list[str], int]:
    """(differences, number of files compared) between two results folders."""
    roots = tuple(str(p.resolve().parent) for p in (before, after))
    files_a, files_b = result_files(before), result_files(after)
    differences = [f"{name}: only in before" for name in files_a.keys() - files_b.keys()]
    differences += [f"{name}: only in after" for name in files_b.keys() - files_a.keys()]
    compared = 0
    for name in sorted(files_a.keys() & files_b.keys()):
        a, b = files_a[name], files_b[name]
        if a.suffix not in COMPARED_SUFFIXES:
            continue
        compared += 1
        if a.suffix == ".json":
            differences += json_differences(json.loads(a.read_text()), json.loads(b.read_text()), name, tolerance,
                                            roots)
        else:
            differences += table_differences(a, b, name, tolerance, roots)
    return sorted(differences), compared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.0, help="largest absolute difference of two numbers "
                        "that still counts as equal (default 0: exact)")
    args = parser.parse_args(argv)
    for folder in (args.before, args.after):
        if not folder.is_dir():
            print(f"error: {folder}: not a folder", file=sys.stderr)
            return 2
    differences, compared = compare_folders(args.before, args.after, args.tolerance)
    for line in differences:
        print(line)
    print(f"{compared} CSV/TSV/JSON files compared, {len(differences)} difference(s) "
          f"({len(result_files(args.before))} files before, {len(result_files(args.after))} after; "
          "timings, dates, absolute paths, logs and benchmarks ignored)")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())

"""The `leukoreport` command line: one subcommand per add_<name> function below."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from leukoreport.errors import LeukoError

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _confidence(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not strictly between 0 and 1 (e.g. 0.95)")
    return value


# --------------------------------------------------------------------------- compare

def run_compare(args: argparse.Namespace) -> int:
    """Compare two runs and write compare.json, compare.html and compare.pdf."""
    from leukoreport.compare import compare_runs, write_comparison  # lazy: keeps --help fast

    result = compare_runs(args.run_a, args.run_b, n_resamples=args.resamples, seed=args.seed,
                          confidence=args.confidence, dataset=args.dataset)
    paths = write_comparison(result, args.out, args.templates)
    print(result["verdict"])
    for path in paths.values():
        print(f"wrote {path.as_posix()}")
    return 0


def add_compare(commands: argparse._SubParsersAction) -> None:
    """Register `leukoreport compare`."""
    parser = commands.add_parser(
        "compare", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="compare two runs on the same test images (paired bootstrap, sign-flip, McNemar)",
        description="Compare two runs seed by seed on the same test images: a paired bootstrap interval of the\n"
                    "difference A - B in accuracy, balanced accuracy and macro F1, sign-flip and Wilcoxon tests\n"
                    "across seeds, and McNemar's test per seed. Writes compare.json, compare.html and compare.pdf.",
        epilog="example:\n  leukoreport compare runs/baseline runs/augmented --out results/compare\n\n"
               "A run is a project folder containing results/ or a results folder itself; runs are matched on\n"
               "(split_seed, seed) in results/summary/metrics.csv.")
    parser.add_argument("run_a", metavar="RUN_A", help="first run (A): project folder or results folder")
    parser.add_argument("run_b", metavar="RUN_B", help="second run (B), compared as A - B")
    parser.add_argument("--out", type=Path, default=Path("results/compare"), metavar="DIR",
                        help="folder for compare.json, compare.html and compare.pdf (default: results/compare)")
    parser.add_argument("--dataset", default="test",
                        help="dataset to compare: 'test' or the name of an external set (default: test)")
    parser.add_argument("--resamples", type=_positive_int, default=9999, metavar="N",
                        help="number of bootstrap resamples of the test images (default: 9999)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the bootstrap, for reproducible intervals (default: 0)")
    parser.add_argument("--confidence", type=_confidence, default=0.95, metavar="LEVEL",
                        help="confidence level of the intervals, between 0 and 1 (default: 0.95)")
    parser.add_argument("--templates", type=Path, default=TEMPLATES, metavar="DIR",
                        help="folder with compare.html.j2 and compare.css (default: the project's templates/)")
    parser.set_defaults(func=run_compare)


# --------------------------------------------------------------------------- the parser

COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (add_compare,)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand of COMMANDS."""
    parser = argparse.ArgumentParser(
        prog="leukoreport", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Rerun, audit and report leukocyte image classification experiments.",
        epilog="example:\n  leukoreport compare runs/baseline runs/augmented --out results/compare\n\n"
               "Run 'leukoreport COMMAND --help' for the options of one command.")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 for bad arguments or input (message on stderr)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return args.func(args)
    except LeukoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

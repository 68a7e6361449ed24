"""The `leukoreport` command line: one subcommand per add_<name> function below."""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from leukoreport.base.errors import LeukoError

__all__ = ["COMMANDS", "FINISHED_RUNS", "FORWARDED_SIGNALS", "REPORT_RULES", "REPORT_TARGETS", "TEMPLATES",
           "add_bench", "add_compare", "add_predict", "add_report", "add_run", "add_weights", "build_parser",
           "call_snakemake", "main", "report_args", "run_bench", "run_compare", "run_predict", "run_report",
           "run_run", "run_weights", "snakemake_args"]

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
    for part in result["datasets"].values():
        print(part["verdict"])
    for path in paths.values():
        print(f"wrote {path.as_posix()}")
    return 0


def add_compare(commands: argparse._SubParsersAction) -> None:
    """Register `leukoreport compare`."""
    parser = commands.add_parser(
        "compare", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="compare two runs on the same images (paired bootstrap, Holm verdicts, sign-flip, McNemar)",
        description="Compare two runs seed by seed on the same images of every dataset both evaluated: a paired\n"
                    "bootstrap interval and p-value of the difference A - B in accuracy, balanced accuracy, macro F1\n"
                    "and ECE, Holm-adjusted verdicts over all datasets and metrics, the probability of improvement,\n"
                    "sign-flip and Wilcoxon tests across seeds, and McNemar's test per seed.\n"
                    "Writes compare.json, compare.html and compare.pdf.",
        epilog="example:\n  leukoreport compare runs/baseline runs/augmented --out results/compare\n\n"
               "A run is a project folder containing results/ or a results folder itself; runs are matched on\n"
               "(split_seed, seed) in results/summary/metrics.csv.")
    parser.add_argument("run_a", metavar="RUN_A", help="first run (A): project folder or results folder")
    parser.add_argument("run_b", metavar="RUN_B", help="second run (B), compared as A - B")
    parser.add_argument("--out", type=Path, default=Path("results/compare"), metavar="DIR",
                        help="folder for compare.json, compare.html and compare.pdf (default: results/compare)")
    parser.add_argument("--dataset", default=None,
                        help="compare only this dataset: 'test' or the name of an external set "
                             "(default: every dataset both runs evaluated)")
    parser.add_argument("--resamples", type=_positive_int, default=9999, metavar="N",
                        help="number of bootstrap resamples of the test images (default: 9999)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the bootstrap, for reproducible intervals (default: 0)")
    parser.add_argument("--confidence", type=_confidence, default=0.95, metavar="LEVEL",
                        help="confidence level of the intervals, between 0 and 1 (default: 0.95)")
    parser.add_argument("--templates", type=Path, default=TEMPLATES, metavar="DIR",
                        help="folder with compare.html.j2 and style.css (default: the project's templates/)")
    parser.set_defaults(func=run_compare)


# --------------------------------------------------------------------------- predict

def _device(text: str) -> str:
    """argparse type: auto, cpu, cuda or cuda:N."""
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not one of auto, cpu, cuda, cuda:N")


def run_predict(args: argparse.Namespace) -> int:
    """Classify images; 1 when some file could not be classified (each named on stderr), else 0."""
    from leukoreport.inference.predict import predict_files  # lazy: keeps --help fast

    result = predict_files(args.model, args.paths, args.out, batch_size=args.batch_size, tta=args.tta,
                           device=args.device, seed=args.seed,
                           progress=lambda line: print(line, file=sys.stderr, flush=True))
    for path, reason in result.failures:
        print(f"error: {path}: {reason}", file=sys.stderr)
    print(f"wrote {Path(args.out).as_posix()}: {len(result.table)} files, {result.n_ok} classified, "
          f"{len(result.failures)} failed")
    return 1 if result.failures else 0


def add_predict(commands: argparse._SubParsersAction) -> None:
    """Register `leukoreport predict`."""
    parser = commands.add_parser(
        "predict", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="classify new images with a trained model (model.safetensors or model.pkl) and write a CSV of class "
             "probabilities",
        description="Classify image files and folders with a run's model: its model.safetensors (or model.json)\n"
                    "rebuilds the learner without unpickling anything; its model.pkl is an exported fastai learner.\n"
                    "Folders are searched recursively and every non-hidden file in them is listed, images or\n"
                    "not, sorted by path; files and folders keep the order of the arguments. Every file is fully\n"
                    "decoded before any prediction; a file that cannot be (corrupt, truncated, empty, not an\n"
                    "image: suffixes .bmp .gif .jpeg .jpg .png .tif .tiff .webp) gets a row with its reason and\n"
                    "one 'error:' line on stderr, and the other files are still classified. Every 10 batches\n"
                    "a progress line goes to stderr ('classified 640/7500 images (8.5%), 42 s, est. 7 min left').",
        epilog="examples:\n"
               "  leukoreport predict results/splits/42/seeds/42/model.safetensors data/external_monocyte "
               "--out predictions.csv\n"
               "  leukoreport predict model.pkl new_cells/ extra.jpg --out new.csv --tta --device cpu\n\n"
               "Columns: path, prediction, prob_<class> (one per class of the model, in its order), status\n"
               "('ok' or why the file could not be classified; prediction and probabilities are then empty).\n"
               "Exit status: 0 every file classified, 1 some file failed, 2 bad arguments (e.g. model not found).\n"
               "Both model files give the same probabilities. A model.pkl is unpickled when loaded (fastai\n"
               "load_learner, which warns so): it can run code, so only load one you trust, and it is refused\n"
               "when a train.json beside it records another SHA-256. model.safetensors + model.json run no code;\n"
               "their weights must match the SHA-256 recorded in model.json.")
    parser.add_argument("model", metavar="MODEL",
                        help="a run's model.safetensors (with model.json beside it), model.json, or model.pkl, "
                             "e.g. results/splits/42/seeds/42/model.safetensors")
    parser.add_argument("paths", metavar="PATH", nargs="+", help="image files and folders of images")
    parser.add_argument("--out", type=Path, required=True, metavar="CSV",
                        help="CSV file to write (written atomically; missing folders are created)")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation (fastai Learner.tta defaults): classify each image 4 more "
                             "times with the training augmentation (random crop, flips, rotation, warp, "
                             "lighting) and report 0.75 x the mean of those 4 passes + 0.25 x the plain pass "
                             "(beta=0.25); about 5x slower")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random --tta augmentations, for reproducible probabilities (default: 0)")
    parser.add_argument("--batch-size", type=_positive_int, default=64, metavar="N",
                        help="images per batch; lower it if memory runs out (default: 64)")
    parser.add_argument("--device", type=_device, default="auto", metavar="auto|cpu|cuda",
                        help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N (default: auto)")
    parser.set_defaults(func=run_predict)


# --------------------------------------------------------------------------- run and report (Snakemake)

REPORT_TARGETS = ("results/report/report.pdf", "results/report/summary.pdf")
REPORT_RULES = ("report_html", "summary_html")
# what a finished run leaves: the summary of a single recipe, or the comparison of a variants run
FINISHED_RUNS = (Path("results/summary/metrics.csv"), Path("results/summary/variants.json"))


def _cores(text: str) -> str:
    """argparse type: 'all' or an integer >= 1 (Snakemake's --cores)."""
    return text if text == "all" else str(_positive_int(text))


def snakemake_args(cores: str = "all", configfile: Path | None = None, dry_run: bool = False,
                   extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Snakemake's arguments: ``--cores N [--configfile FILE] [--dry-run] EXTRA...``."""
    args = ["--cores", str(cores)]
    if configfile is not None:
        args += ["--configfile", Path(configfile).as_posix()]
    if dry_run:
        args.append("--dry-run")
    return args + list(extra)


def report_args(cores: str = "all", configfile: Path | None = None, dry_run: bool = False) -> list[str]:
    """Snakemake's arguments that re-render the report and the summary PDFs."""
    return snakemake_args(cores, configfile, dry_run, [*REPORT_TARGETS, "--forcerun", *REPORT_RULES])


def _check_project(configfile: Path | None) -> None:
    """LeukoError unless the current folder holds a Snakefile and the config file exists."""
    if not Path("Snakefile").is_file():
        raise LeukoError(f"{Path.cwd().as_posix()}: no Snakefile here; run inside a leukoreport project folder")
    if configfile is not None and not Path(configfile).is_file():
        raise LeukoError(f"--configfile {Path(configfile).as_posix()}: file not found")


FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def call_snakemake(args: list[str]) -> int:
    """Run ``python -m snakemake ARGS`` here (command echoed on stderr) and return its exit status; SIGINT and
    SIGTERM sent to this process are passed on to Snakemake, which then stops its jobs, and are waited for.
    Snakemake runs in its own process group, so a Ctrl-C in the terminal reaches it once, through this process."""
    print("running: " + shlex.join(["snakemake", *args]), file=sys.stderr, flush=True)
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", *args], process_group=0)

    def forward(signum: int, _frame) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED_SIGNALS}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_run(args: argparse.Namespace) -> int:
    """Run the workflow through Snakemake; Snakemake's exit status."""
    _check_project(args.configfile)
    return call_snakemake(snakemake_args(args.cores, args.configfile, args.dry_run, args.snakemake_args))


def _add_snakemake_options(parser: argparse.ArgumentParser) -> None:
    """The Snakemake options shared by `run` and `report`, with Snakemake's names."""
    parser.add_argument("--configfile", type=Path, metavar="FILE",
                        help="config file replacing config/config.yaml as a whole, e.g. config/smoke.yaml "
                             "(Snakemake --configfile; default: config/config.yaml)")
    parser.add_argument("--cores", "-c", type=_cores, default="all", metavar="N",
                        help="use at most N CPU cores in parallel, or 'all' (Snakemake --cores; default: all)")
    parser.add_argument("--dry-run", "-n", action="store_true",
                        help="only show the jobs that would run and why; run nothing (Snakemake --dry-run)")


def add_run(commands: argparse._SubParsersAction) -> None:
    """Register `leukoreport run`."""
    parser = commands.add_parser(
        "run", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="run the workflow in this project folder (a thin wrapper over snakemake)",
        description="Run the workflow of the leukoreport project in the current folder: split, audit, train,\n"
                    "evaluate, summarize and report. A thin wrapper over Snakemake; it runs (with this Python)\n\n"
                    "  python -m snakemake --cores N [--configfile FILE] [--dry-run] [SNAKEMAKE_ARGS...]\n\n"
                    "and returns Snakemake's exit status. Arguments after '--' go to Snakemake unchanged:\n"
                    "targets, --forcerun RULE, --config KEY=VALUE, --keep-going, --rerun-incomplete, ...",
        epilog="examples (each followed by the equivalent snakemake command):\n"
               "  leukoreport run --cores 4\n"
               "      snakemake --cores 4\n"
               "  leukoreport run --cores 2 --configfile config/smoke.yaml\n"
               "      snakemake --cores 2 --configfile config/smoke.yaml\n"
               "  leukoreport run --dry-run\n"
               "      snakemake --cores all --dry-run\n"
               "  leukoreport run --cores 4 -- --config pretrained=False\n"
               "      snakemake --cores 4 --config pretrained=False\n"
               "  leukoreport run --cores 2 -- results/splits/42/split.csv\n"
               "      snakemake --cores 2 results/splits/42/split.csv")
    _add_snakemake_options(parser)
    parser.add_argument("snakemake_args", metavar="SNAKEMAKE_ARGS", nargs="*",
                        help="after '--': more arguments for snakemake (targets and options)")
    parser.set_defaults(func=run_run)


def run_report(args: argparse.Namespace) -> int:
    """Re-render report.pdf and summary.pdf from existing results; Snakemake's exit status."""
    _check_project(args.configfile)
    if not args.dry_run and not any(path.is_file() for path in FINISHED_RUNS):
        raise LeukoError(f"{FINISHED_RUNS[0].as_posix()}: not found, so there are no results to report; run "
                         "'leukoreport run' first (or 'leukoreport report --dry-run' to see what would run)")
    return call_snakemake(report_args(args.cores, args.configfile, args.dry_run))


def add_report(commands: argparse._SubParsersAction) -> None:
    """Register `leukoreport report`."""
    parser = commands.add_parser(
        "report", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="re-render results/report/report.pdf and summary.pdf from existing results",
        description="Re-render the full report (results/report/report.html, .pdf) and the two-page summary\n"
                    "(results/report/summary.pdf) of the project in the current folder from its existing\n"
                    "results, e.g. after editing templates/. A thin wrapper over Snakemake; it runs\n\n"
                    "  python -m snakemake --cores N [--configfile FILE] [--dry-run] \\\n"
                    "      results/report/report.pdf results/report/summary.pdf --forcerun report_html summary_html\n\n"
                    "and returns Snakemake's exit status. It refuses to start without a finished run\n"
                    "(results/summary/metrics.csv); results that Snakemake finds missing or out of date are\n"
                    "recomputed first, as with any snakemake call: check with --dry-run.",
        epilog="examples:\n"
               "  leukoreport report --dry-run\n"
               "  leukoreport report --cores 2\n"
               "  leukoreport report --cores 2 --configfile config/smoke.yaml")
    _add_snakemake_options(parser)
    parser.set_defaults(func=run_report)


# --------------------------------------------------------------------------- weights

def run_weights(args: argparse.Namespace) -> int:
    """Say where the ImageNet weights are expected and whether they are there; 0 present, 1 missing."""
    from leukoreport.training import weights

    path = weights.weights_path()
    print(f"ResNet18 ImageNet weights (torchvision {weights.WEIGHTS_NAME})")
    print(f"expected at: {path.as_posix()}")
    print(f"source:      {weights.weights_url()}")
    if args.download and not path.is_file():
        try:
            weights.check_weights(True, download=True)
        except LeukoError as exc:
            print(f"error: {exc}", file=sys.stderr)
        else:
            print("downloaded")
    if not path.is_file():
        print("status:      missing")
        print("Run 'leukoreport weights --download', copy the file there (or set TORCH_HOME), "
              "or train from random weights with pretrained: false in the config.")
        return 1
    size = path.stat().st_size
    digest = weights.sha256(path)
    print(f"status:      present, {size:,} bytes ({size / 1e6:.1f} MB), SHA-256 {digest[:16]}...")
    if args.check:
        problem = weights.weights_problem(path, digest)
        if problem:
            print(f"error: {path.as_posix()}: {problem}", file=sys.stderr)
            return 1
        print("check:       ok (SHA-256 matches the file name; loads as a ResNet18 state dict)")
    return 0


def add_weights(commands: argparse._SubParsersAction) -> None:
    """Register `leukoreport weights`."""
    parser = commands.add_parser(
        "weights", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="where the ResNet18 ImageNet weights are expected, whether they are there, download them",
        description="Say where torchvision expects the ResNet18 ImageNet weights (IMAGENET1K_V1) that a run\n"
                    "with 'pretrained: true' starts from ($TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth,\n"
                    "TORCH_HOME defaulting to ~/.cache/torch), and whether the file is there (size, SHA-256).\n"
                    "Exit status: 0 present (and, with --check, valid), 1 missing or invalid.",
        epilog="examples:\n"
               "  leukoreport weights\n"
               "  leukoreport weights --download --check\n"
               "  TORCH_HOME=/data/torch leukoreport weights --download")
    parser.add_argument("--download", action="store_true",
                        help="when missing, download the file from torchvision's URL (needs internet)")
    parser.add_argument("--check", action="store_true",
                        help="also check the file: its SHA-256 starts with the hash in its name (as torch.hub "
                             "checks) and it loads as a ResNet18 state dict")
    parser.set_defaults(func=run_weights)


# --------------------------------------------------------------------------- bench

def run_bench(args: argparse.Namespace) -> int:
    """Time the project's training path against a plain fastai script and write the JSON."""
    if args.scale:  # the scaling benchmark: the whole workflow at several data sizes
        from leukoreport.bench.scaling import run_from_args

        return run_from_args(args)
    from leukoreport.bench.training_speed import BenchSettings, format_report
    from leukoreport.bench.training_speed import run_bench as bench

    settings = BenchSettings(data_dir=args.data_dir, images=args.images, epochs=args.epochs, size=args.size,
                             batch_size=args.batch_size, device=args.device, threads=args.threads,
                             precision=args.precision, channels_last=not args.no_channels_last,
                             image_cache=not args.no_cache, lean_loop=not args.no_lean_loop)
    out = args.out or Path("results/bench") / f"bench-{args.device}-{args.images}img-{args.size}px.json"
    report = bench(settings, out)
    print(format_report(report))
    print(f"written: {Path(out).as_posix()}")
    return 0


def add_bench(commands: argparse._SubParsersAction) -> None:
    """Register `leukoreport bench`."""
    parser = commands.add_parser(
        "bench", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="benchmark the training path against a plain fastai script of the same recipe",
        description="Train the paper's recipe (random initialisation) twice on the same images, each in its own\n"
                    "process: (a) the project's path (image cache, channels-last, the precision setting) and (b) a\n"
                    "plain fastai script (file-based DataBlock, fastai's default workers, SaveModelCallback). Prints\n"
                    "images per second of phase 1 (frozen), phase 2 (unfrozen) and inference, peak memory, device\n"
                    "and precision, and the ratios project / plain (below 1: the project is faster). A benchmark,\n"
                    "not a test: run it on a quiet machine.",
        epilog="examples:\n"
               "  leukoreport bench --images 250 --epochs 1 --size 224          # a short CPU run\n"
               "  leukoreport bench --images 2500 --epochs 2 --device cuda       # the whole data set on a GPU")
    parser.add_argument("--images", type=_positive_int, default=250, metavar="N",
                        help="images to use, about N/5 per class, split 70/15/15 (default: 250)")
    parser.add_argument("--epochs", type=_positive_int, default=1, metavar="E", help="epochs per phase (default: 1)")
    parser.add_argument("--size", type=_positive_int, default=224, metavar="S", help="image size in px (default: 224)")
    parser.add_argument("--batch-size", type=_positive_int, default=32, metavar="B", help="batch size (default: 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--threads", type=int, default=0, metavar="T",
                        help="torch CPU threads for both variants; 0 keeps torch's default (default: 0)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="the project's precision: auto = bf16 autocast where the device has native bf16 "
                             "(CUDA, or a CPU with AMX or AVX512-BF16), else fp32 (default: auto)")
    parser.add_argument("--no-cache", action="store_true", help="project variant without the image cache")
    parser.add_argument("--no-lean-loop", action="store_true",
                        help="project variant with fastai's own optimizer step and per-batch recording")
    parser.add_argument("--no-channels-last", action="store_true",
                        help="project variant in the contiguous memory format")
    parser.add_argument("--data-dir", default="data/leukocytes", metavar="DIR",
                        help="ImageFolder to take the images from (default: data/leukocytes)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="JSON to write (default: results/bench/bench-DEVICE-Nimg-Spx.json)")
    parser.add_argument("--scale", default=None, metavar="N1,N2,...",
                        help="instead: the scaling benchmark. For each size a synthetic ImageFolder of N images made "
                             "from --data-dir (seeded crops, flips, noise) runs through the whole workflow (1 seed, "
                             "--epochs per phase, 10 batches per epoch, --size, --batch-size, --device); seconds and "
                             "peak RSS of every step from Snakemake's benchmark files go to "
                             "results/bench/scale-MACHINE.json (or --out) with a log-log PNG beside it")
    parser.add_argument("--scratch", type=Path, default=Path("results/bench/scale"), metavar="DIR",
                        help="with --scale: folder for the synthetic images and project copies "
                             "(default: results/bench/scale)")
    parser.add_argument("--keep", action="store_true", help="with --scale: keep each size's scratch folder")
    parser.add_argument("--cores", type=_cores, default="all", metavar="N",
                        help="with --scale: Snakemake --cores, also the processes making images (default: all)")
    parser.set_defaults(func=run_bench)


# --------------------------------------------------------------------------- the parser

COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_run, add_report, add_predict, add_compare, add_bench, add_weights)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand of COMMANDS."""
    parser = argparse.ArgumentParser(
        prog="leukoreport", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Rerun, audit and report leukocyte image classification experiments.",
        epilog="examples:\n"
               "  leukoreport run --cores 2 --configfile config/smoke.yaml\n"
               "  leukoreport predict results/splits/42/seeds/42/model.safetensors new_cells/ --out predictions.csv\n"
               "  leukoreport compare runs/baseline runs/augmented --out results/compare\n\n"
               "Run 'leukoreport COMMAND --help' for the options of one command.")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 for bad arguments or input (message on stderr)."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            hint = (" (Snakemake's own options go after '--', e.g. leukoreport run --cores 2 -- --forceall)"
                    if args.command == "run" else "")
            parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return args.func(args)
    except LeukoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

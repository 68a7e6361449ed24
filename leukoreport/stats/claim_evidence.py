"""What a rerun offers to judge a paper's claims (``stats.claims.Evidence``), read from the workflow's result files:
each run's train.json, history.csv and metrics.json, the domain AUC of summary/validity.csv, the declared provenance,
the reproducibility check and the recipe deviations; and the claims.json document."""

from __future__ import annotations

import platform
from collections import Counter
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import pandas as pd

from leukoreport.base.atomic_io import read_json
from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import require_columns
from leukoreport.config.claims import ClaimsFile
from leukoreport.config.provenance import declared_provenance
from leukoreport.stats.claims import VERDICTS, ClaimVerdict, Evidence, RunEvidence
from leukoreport.stats.deviations import Deviation, recipe_deviations
from leukoreport.stats.run_tables import RunKey, read_metrics, run_folder

__all__ = ["DEVIATION_COLUMNS", "PACKAGES", "claims_document", "collect_evidence", "deviation_rows",
           "median_domain_auc", "package_versions", "reproducibility_path", "run_devices"]

DEVIATION_COLUMNS = ("item", "declared", "rerun", "status", "how")
PACKAGES = ("fastai", "torch", "torchvision")  # versions always looked up, with any other the claims file names


def reproducibility_path(results_dir: str | Path, split_seed: int) -> Path:
    """``splits/{split}/reproducibility/reproducibility.json`` under `results_dir` (rule ``reproducibility``)."""
    return Path(results_dir) / "splits" / str(split_seed) / "reproducibility" / "reproducibility.json"


def package_versions(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Installed version of each name (``importlib.metadata``; ``python`` is the interpreter's); names that are
    not installed packages are left out."""
    out = {}
    for name in names:
        if name == "python":
            out[name] = platform.python_version()
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def run_devices(trains: list[dict]) -> str:
    """The distinct ``device`` strings of the runs' train.json, in run order, joined by '; '."""
    devices = list(dict.fromkeys(str(t["device"]) for t in trains if t.get("device")))
    return "; ".join(devices) or "not recorded"


def median_domain_auc(validity: pd.DataFrame, dataset: str) -> tuple[float, float, float] | None:
    """(auc, low, high) of the run with the median domain AUC on `dataset` (the lower of the two middle runs for an
    even count), or None when no run has one."""
    rows = validity[(validity["dataset"].astype(str) == dataset) & validity["domain_auc"].notna()]
    if rows.empty:
        return None
    row = rows.sort_values(["domain_auc", "split_seed", "seed"], kind="stable").iloc[(len(rows) - 1) // 2]
    return float(row["domain_auc"]), float(row["domain_auc_low"]), float(row["domain_auc_high"])


def _history(path: Path) -> pd.DataFrame:
    try:
        history = pd.read_csv(path)
    except FileNotFoundError:
        raise LeukoError(f"{path.as_posix()}: file not found (needed for the claims)") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeukoError(f"{path.as_posix()}: cannot read as CSV: {' '.join(str(exc).split())}") from None
    require_columns(path.as_posix(), history, ("phase", "epoch", "train_loss", "valid_loss"), allow_empty=False)
    return history


def _run(results_dir: Path, key: RunKey, datasets: list[str]) -> RunEvidence:
    folder = run_folder(results_dir, key)
    train = read_json(folder / "train.json", needed_for="the claims")
    metrics = {d: read_metrics(folder / d / "metrics.json") for d in datasets}
    return RunEvidence(split_seed=key.split_seed, seed=key.seed, train=train, history=_history(folder / "history.csv"),
                       metrics=metrics)


def _domain_auc(results_dir: Path, config: dict, external: list[str]) -> dict[str, tuple[float, float, float] | None]:
    if not config["validity"]["domain_classifier"]["enabled"]:
        return dict.fromkeys(external)
    path = results_dir / "summary" / "validity.csv"
    try:
        validity = pd.read_csv(path)
    except FileNotFoundError:
        raise LeukoError(f"{path.as_posix()}: file not found (needed for the domain AUC of the claims)") from None
    require_columns(path.as_posix(), validity, ("split_seed", "seed", "dataset", "domain_auc", "domain_auc_low",
                                                "domain_auc_high"))
    return {name: median_domain_auc(validity, name) for name in external}


def collect_evidence(results_dir: str | Path, config: dict, keys: list[RunKey], datasets: list[str],
                     claims: ClaimsFile) -> Evidence:
    """The evidence of the runs `keys` under `results_dir` (a results folder, or a variant's) on `datasets`
    ('test' and the external sets), with `config` the (variant's) full config."""
    results_dir = Path(results_dir)
    if not keys:
        raise LeukoError(f"{results_dir.as_posix()}: no runs to judge the claims with")
    runs = tuple(_run(results_dir, key, datasets) for key in keys)
    external = [d for d in datasets if d != "test"]
    relations = declared_provenance(config).relations
    reproducibility = None
    if config["reproducibility_check"]:
        reproducibility = read_json(reproducibility_path(results_dir, keys[0].split_seed),
                                    needed_for="the reproducibility claim")
    trains = [run.train for run in runs]
    names = list(dict.fromkeys([*PACKAGES, *(k for k in claims.software if k != "device")]))
    deviations = recipe_deviations(claims.recipe, claims.software, trains, config, package_versions(names),
                                   run_devices(trains))
    return Evidence(runs=runs, relations={name: relations[name] for name in external},
                    domain_auc=_domain_auc(results_dir, config, external), reproducibility=reproducibility,
                    deviations=tuple(deviations), confidence=float(config["confidence_level"]))


def claims_document(claims: ClaimsFile, evidence: Evidence, verdicts: list[ClaimVerdict]) -> dict:
    """summary/claims.json: the paper, the claims file, the confidence level, every verdict and deviation, and the
    number of claims per verdict (every verdict named, zero included)."""
    counts = Counter(v.verdict for v in verdicts)
    return {"paper": asdict(claims.paper), "claims_file": str(claims.path), "confidence": evidence.confidence,
            "claims": [asdict(v) for v in verdicts], "deviations": [asdict(d) for d in evidence.deviations],
            "counts": {verdict: counts.get(verdict, 0) for verdict in VERDICTS}}


def deviation_rows(deviations: tuple[Deviation, ...] | list[Deviation]) -> list[dict]:
    """summary/deviations.csv rows (DEVIATION_COLUMNS)."""
    return [{k: asdict(d)[k] for k in DEVIATION_COLUMNS} for d in deviations]

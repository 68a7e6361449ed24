"""Runs on disk for comparisons: a run's summary/metrics.csv index, its predictions, and pairs matched by seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import require_columns
from leukoreport.stats.metrics import prediction_classes, prob_columns, read_predictions

__all__ = ["INDEX_COLUMNS", "Pair", "Run", "dataset_keys", "frame_codes", "load_predictions", "load_run", "match",
           "unmatched"]

INDEX_COLUMNS = ("split_seed", "seed", "dataset", "n", "n_correct", "accuracy", "predictions")


@dataclass
class Run:
    """One run on disk: its name, results folder, summary/metrics.csv index and class order."""

    name: str
    results: Path
    index: pd.DataFrame
    classes: list[str]


@dataclass
class Pair:
    """One (split_seed, seed) evaluated by both runs: images sorted by path, labels and predictions as class codes.

    probs_a and probs_b are the class probabilities (n, n_classes) in A's class order; the ECE needs them.
    """

    split_seed: int
    seed: int
    paths: np.ndarray
    y_true: np.ndarray
    pred_a: np.ndarray
    pred_b: np.ndarray
    n_classes: int
    probs_a: np.ndarray | None = None
    probs_b: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of test images."""
        return int(self.y_true.size)


def _run_name(results: Path) -> str:
    """The results folder's name, or its project folder's name when it is called 'results'."""
    resolved = results.resolve()
    return resolved.parent.name if resolved.name == "results" and resolved.parent.name else resolved.name


def _int_column(df: pd.DataFrame, column: str, where: str) -> pd.Series:
    """Column as int64, else LeukoError naming the file and the column."""
    values = pd.to_numeric(df[column], errors="coerce")
    if values.isna().any() or not np.all(values == np.round(values)):
        raise LeukoError(f"{where}: column '{column}' has missing or non-integer values")
    return values.astype(np.int64)


def _read_index(path: Path) -> pd.DataFrame:
    """summary/metrics.csv with the columns of INDEX_COLUMNS checked and typed."""
    where = path.as_posix()
    try:
        df = pd.read_csv(path, dtype={"dataset": str, "predictions": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeukoError(f"{where}: cannot read as CSV: {exc}") from None
    require_columns(where, df, INDEX_COLUMNS, allow_empty=False)
    for column in ("split_seed", "seed", "n", "n_correct"):
        df[column] = _int_column(df, column, where)
    for column in ("dataset", "predictions"):
        if df[column].isna().any():
            raise LeukoError(f"{where}: column '{column}' has empty values")
    dup = df.duplicated(["split_seed", "seed", "dataset"])
    if dup.any():
        row = df[dup].iloc[0]
        raise LeukoError(f"{where}: more than one row for split_seed {row['split_seed']}, seed {row['seed']}, "
                         f"dataset '{row['dataset']}'")
    return df.sort_values(["dataset", "split_seed", "seed"], kind="stable").reset_index(drop=True)


def _header_classes(path: Path) -> list[str]:
    """Class order of one predictions.csv: its prob_ columns."""
    if not path.is_file():
        raise LeukoError(f"{path.as_posix()}: file not found (listed in summary/metrics.csv)")
    return prediction_classes(path)


def load_run(path: str | Path) -> Run:
    """A run from a project folder (uses `path/results`) or a results folder; LeukoError naming the path."""
    path = Path(path)
    if not path.exists():
        raise LeukoError(f"{path.as_posix()}: run folder not found")
    if not path.is_dir():
        raise LeukoError(f"{path.as_posix()}: not a folder (expected a project or results folder)")
    if (path / "results" / "summary" / "metrics.csv").is_file():
        results = path / "results"
    elif (path / "summary" / "metrics.csv").is_file():
        results = path
    else:
        raise LeukoError(f"{path.as_posix()}: no summary/metrics.csv (looked for "
                         f"{(path / 'results/summary/metrics.csv').as_posix()} and "
                         f"{(path / 'summary/metrics.csv').as_posix()})")
    index = _read_index(results / "summary" / "metrics.csv")
    classes = _header_classes(results / index["predictions"].iloc[0])
    return Run(name=_run_name(results), results=results, index=index, classes=classes)


def dataset_keys(run: Run, dataset: str) -> list[tuple[int, int]]:
    """(split_seed, seed) of the run's rows for `dataset`; LeukoError when there are none."""
    rows = run.index[run.index["dataset"] == dataset]
    if rows.empty:
        have = ", ".join(sorted(set(run.index["dataset"])))
        raise LeukoError(f"run {run.name} ({run.results.as_posix()}): no rows for dataset '{dataset}' "
                         f"in summary/metrics.csv (datasets: {have})")
    return [(int(s), int(e)) for s, e in zip(rows["split_seed"], rows["seed"])]


def unmatched(a: Run, b: Run, dataset: str = "test") -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(split_seed, seed) keys on `dataset` found only in A, and only in B."""
    ka, kb = set(dataset_keys(a, dataset)), set(dataset_keys(b, dataset))
    return sorted(ka - kb), sorted(kb - ka)


def _predictions(run: Run, split_seed: int, seed: int, dataset: str) -> pd.DataFrame:
    """One predictions.csv of the run, checked against the index row, sorted by path."""
    idx = run.index
    row = idx[(idx["split_seed"] == split_seed) & (idx["seed"] == seed) & (idx["dataset"] == dataset)].iloc[0]
    path = run.results / row["predictions"]
    found = _header_classes(path)
    if found != run.classes:
        raise LeukoError(f"{path.as_posix()}: classes {found} differ from the run's classes {run.classes}")
    pred = read_predictions(path, run.classes)
    where = path.as_posix()
    if pred["path"].isna().any():
        raise LeukoError(f"{where}: column 'path' has empty values")
    if pred["path"].duplicated().any():
        raise LeukoError(f"{where}: image path listed twice: {pred.loc[pred['path'].duplicated(), 'path'].iloc[0]}")
    n_correct = int((pred["label"] == pred["prediction"]).sum())
    if len(pred) != row["n"] or n_correct != row["n_correct"]:
        raise LeukoError(f"{where}: {n_correct}/{len(pred)} correct but summary/metrics.csv says "
                         f"{row['n_correct']}/{row['n']}")
    return pred.sort_values("path", kind="stable").reset_index(drop=True)


def load_predictions(run: Run, dataset: str) -> dict[tuple[int, int], pd.DataFrame]:
    """Every predictions.csv of the run on `dataset`, keyed by (split_seed, seed), each checked and sorted by path."""
    return {(s, e): _predictions(run, s, e, dataset) for s, e in dataset_keys(run, dataset)}


def frame_codes(run: Run, pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, predictions) as codes in the run's class order and the probabilities (n, K) in that order."""
    code = {c: i for i, c in enumerate(run.classes)}
    return (pred["label"].map(code).to_numpy(np.int64), pred["prediction"].map(code).to_numpy(np.int64),
            pred[prob_columns(run.classes)].to_numpy(float))


def match(a: Run, b: Run, dataset: str = "test", frames_a: dict | None = None,
          frames_b: dict | None = None) -> list[Pair]:
    """Pairs of A and B evaluated with the same (split_seed, seed) on `dataset`, on the same images.

    frames_a / frames_b: the runs' predictions already read by load_predictions (read here when None).
    """
    if set(a.classes) != set(b.classes):
        raise LeukoError(f"runs {a.name} and {b.name} have different classes: {a.name} {a.classes}, "
                         f"{b.name} {b.classes}")
    shared = sorted(set(dataset_keys(a, dataset)) & set(dataset_keys(b, dataset)))
    if not shared:
        raise LeukoError(f"runs {a.name} and {b.name} share no (split_seed, seed) on '{dataset}': "
                         f"{a.name} has {sorted(dataset_keys(a, dataset))}, "
                         f"{b.name} has {sorted(dataset_keys(b, dataset))}")
    what = "test split" if dataset == "test" else f"'{dataset}' images"
    code = {c: i for i, c in enumerate(a.classes)}
    columns = prob_columns(a.classes)
    pairs = []
    for split_seed, seed in shared:
        pa = frames_a[(split_seed, seed)] if frames_a is not None else _predictions(a, split_seed, seed, dataset)
        pb = frames_b[(split_seed, seed)] if frames_b is not None else _predictions(b, split_seed, seed, dataset)
        paths_a, paths_b = set(pa["path"]), set(pb["path"])
        if paths_a != paths_b:
            differ = len(paths_a ^ paths_b)
            example = sorted(paths_a ^ paths_b)[0]
            raise LeukoError(f"runs {a.name} and {b.name} were not evaluated on the same {what}: {differ} image "
                             f"path(s) differ for split_seed {split_seed}, seed {seed} (e.g. {example})")
        labels_differ = pa["label"].to_numpy() != pb["label"].to_numpy()
        if labels_differ.any():
            raise LeukoError(f"runs {a.name} and {b.name} give different labels to {int(labels_differ.sum())} "
                             f"image(s) for split_seed {split_seed}, seed {seed} "
                             f"(e.g. {pa['path'][labels_differ].iloc[0]})")
        pairs.append(Pair(split_seed=split_seed, seed=seed, paths=pa["path"].to_numpy(dtype=str),
                          y_true=pa["label"].map(code).to_numpy(np.int64),
                          pred_a=pa["prediction"].map(code).to_numpy(np.int64),
                          pred_b=pb["prediction"].map(code).to_numpy(np.int64),
                          n_classes=len(a.classes), probs_a=pa[columns].to_numpy(float),
                          probs_b=pb[columns].to_numpy(float)))
    return pairs


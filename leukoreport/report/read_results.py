"""Reading the result files the report needs (docs/results.md), with one-line errors naming the file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from leukoreport.base.atomic_io import read_json
from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import require_columns
from leukoreport.report.gallery_rows import left_out_text
from leukoreport.stats.run_tables import GAP_COLUMNS, METRIC_COLUMNS

__all__ = ["gallery_meta", "gallery_pages", "need_file", "read_report_csv", "read_report_json", "require_key",
           "shown_path", "summary_tables"]


def need_file(path: Path) -> Path:
    """`path` itself; LeukoError naming it when it is not a file."""
    if not path.is_file():
        raise LeukoError(f"{path.as_posix()}: file not found (needed for the report)")
    return path


def read_report_json(path: Path) -> dict:
    """A JSON object the report needs (atomic_io.read_json)."""
    return read_json(path, "the report")


def read_report_csv(path: Path, columns: Iterable[str], **kwargs: Any) -> pd.DataFrame:
    """A CSV the report needs, holding `columns`; one-line LeukoError naming the file otherwise."""
    need_file(path)
    try:
        df = pd.read_csv(path, **kwargs)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeukoError(f"{path.as_posix()}: cannot read as CSV ({exc})") from None
    require_columns(path.as_posix(), df, columns)
    return df


def require_key(data: dict, key: str, path: Path) -> Any:
    """`data[key]`; LeukoError naming the file and the key when it is missing."""
    if key not in data:
        raise LeukoError(f"{path.as_posix()}: missing key '{key}'")
    return data[key]


def shown_path(path: Path, results_dir: Path) -> str:
    """`path` as the report names it: as given under a relative results folder ('results/splits/...'), else from
    the results folder's own name."""
    if not results_dir.is_absolute():
        return path.as_posix()
    return (Path(results_dir.name) / path.relative_to(results_dir)).as_posix()


def _sentence(text: str) -> str:
    """`text` with a capital first letter and a full stop; '' stays ''."""
    return f"{text[0].upper()}{text[1:]}." if text else ""


def gallery_meta(path: Path, listed_in: str) -> dict:
    """What a capped gallery shows, from the JSON its plotting step wrote beside it (gallery_rows.write_gallery_meta):
    ``shown``, ``total`` and the left-out ``note`` naming `listed_in` ('' when every item is drawn, or when the
    JSON is missing: results of earlier versions drew every item)."""
    if not path.is_file():
        return {"shown": None, "total": None, "note": ""}
    meta = read_report_json(path)
    for k in ("shown", "total", "noun"):
        require_key(meta, k, path)
    return {"shown": meta["shown"], "total": meta["total"],
            "note": _sentence(left_out_text(int(meta["shown"]), int(meta["total"]), str(meta["noun"]), listed_in))}


def gallery_pages(folder: Path) -> list[Path]:
    """The error-gallery pages (``page-NN.png``) in order; LeukoError naming the folder when there are none."""
    pages = sorted(folder.glob("page-*.png"))
    if not pages:
        raise LeukoError(f"{folder.as_posix()}/page-01.png: file not found (needed for the report)")
    return pages


def summary_tables(results_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results/summary/metrics.csv and external.csv."""
    folder = results_dir / "summary"
    table = read_report_csv(folder / "metrics.csv", METRIC_COLUMNS, dtype={"dataset": str})
    gaps = read_report_csv(folder / "external.csv", GAP_COLUMNS, dtype={"dataset": str})
    return table, gaps

"""Class folders of an external set matched to the training classes: case and surrounding spaces ignored,
config key ``class_aliases`` for other names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leukoreport.base.errors import LeukoError

__all__ = ["how_matched", "mapping_rows", "match_classes", "normalise", "relabel"]


def normalise(name: str) -> str:
    """The form names are compared in: surrounding spaces removed, case folded."""
    return str(name).strip().casefold()


def match_classes(folders: list[str], classes: list[str], aliases: dict | None, root: str | Path) -> dict[str, str]:
    """Folder name -> training class for every class folder of an external set under ``root``.

    A folder matches a class whose name equals it ignoring case and surrounding spaces, else an alias key of
    ``aliases`` (same comparison) whose value is a training class; a folder that matches nothing raises
    LeukoError naming it."""
    by_name = {normalise(c): c for c in classes}
    by_alias = {}
    for key, value in (aliases or {}).items():
        target = by_name.get(normalise(value))
        if target is None:
            raise LeukoError(f"config key class_aliases.{key}: '{value}' is not a training class "
                             f"({', '.join(classes)})")
        by_alias[normalise(key)] = target
    mapping = {}
    for folder in folders:
        found = by_name.get(normalise(folder)) or by_alias.get(normalise(folder))
        if found is None:
            raise LeukoError(f"{(Path(root) / str(folder)).as_posix()}: class '{folder}' is not a training class "
                             f"({', '.join(classes)}); rename the folder or map it with config key class_aliases")
        mapping[str(folder)] = found
    return mapping


def how_matched(folder: str, target: str) -> str:
    """'same name', 'case or spaces' or 'class_aliases' for one entry of match_classes' mapping."""
    if folder == target:
        return "same name"
    if normalise(folder) == normalise(target):
        return "case or spaces"
    return "class_aliases"


def relabel(images: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """``images`` (path, label) with each label replaced by its training class, sorted by label then path."""
    out = images.assign(label=images["label"].astype(str).map(mapping))
    return out.sort_values(["label", "path"], kind="stable", ignore_index=True)


def mapping_rows(mapping: dict[str, str]) -> list[dict]:
    """The mappings that changed a name, as rows (folder, class, how) for the report."""
    return [{"folder": f, "class": c, "how": how_matched(f, c)} for f, c in mapping.items() if f != c]

"""Config checks that give one-line errors naming the offending key."""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from pathlib import Path

import jsonschema

from leukoreport.base.errors import LeukoError
from leukoreport.config.provenance import external_path, external_paths
from leukoreport.config.settings import with_defaults

__all__ = ["SNAKEMAKE_PATH_CHARACTERS", "check_config", "check_path_characters", "exit_on_error", "key_path",
           "path_keys"]

# Snakemake reads `{name}` in a file path as a wildcard (an input it cannot name fails, a finished run may skip
# the job) and expands `<name>` as a path variable (`<results>` becomes `results`, another name is an error).
SNAKEMAKE_PATH_CHARACTERS = "{}<>"


@contextmanager
def exit_on_error():
    """In a Snakefile: a LeukoError becomes the one line ``error: ...`` on stderr and exit status 1, without
    Snakemake's parse trace around it."""
    try:
        yield
    except LeukoError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        sys.stderr.flush()
        sys.exit(1)


def key_path(parts) -> str:
    """``['phases', 'frozen', 'lr']`` -> ``phases.frozen.lr``; list indices in brackets."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def path_keys(config: dict) -> dict[str, str]:
    """Every path-valued config key (dotted) and its value: data_dir, external.NAME (or external.NAME.path),
    compare_with and claims, where set."""
    keys = {"data_dir": config.get("data_dir")}
    for name, entry in (config.get("external") or {}).items():
        keys[f"external.{name}.path" if isinstance(entry, dict) else f"external.{name}"] = external_path(entry)
    keys.update(compare_with=config.get("compare_with"), claims=config.get("claims"))
    return {key: value for key, value in keys.items() if isinstance(value, str)}


def check_path_characters(config: dict) -> None:
    """LeukoError naming the first path-valued key (``path_keys``) whose value holds a character Snakemake treats
    specially in file paths ({ } < >)."""
    for key, value in path_keys(config).items():
        bad = next((c for c in value if c in SNAKEMAKE_PATH_CHARACTERS), None)
        if bad is not None:
            raise LeukoError(f"config key {key}: {value!r} contains {bad!r}, which Snakemake reads in file paths "
                             "({name} is a wildcard, <name> a path variable); rename the folder or file, or link "
                             "it under a name without { } < >")


def check_config(config: dict, schema_path: str | Path, base_dir: str | Path = ".") -> dict:
    """The config validated once against the schema, with the schema's defaults filled in (a copy); raises
    ``LeukoError`` for the first schema violation, bad split fractions, a path with a character Snakemake treats
    specially or a missing data folder."""
    if "split_seed" in config:
        raise LeukoError("config key split_seed: replaced by split_seeds, a list (e.g. split_seeds: [42])")
    filled, errors = with_defaults(config, schema_path)
    if errors:
        error = errors[0]
        if error.validator == "oneOf" and isinstance(error.instance, dict):  # e.g. external.NAME as a mapping
            error = jsonschema.exceptions.best_match(
                [e for e in error.context if e.schema.get("type") != "string" and e.validator != "type"] or
                error.context)
        elif error.validator == "oneOf":
            raise LeukoError(f"config key {key_path(error.absolute_path)}: {error.instance!r} must be a folder or a "
                             "mapping with path (and source, scanner, stain, citation)")
        if error.validator == "required":
            missing = next(k for k in error.validator_value if k not in error.instance)
            raise LeukoError(f"config key {key_path([*error.absolute_path, missing])}: missing (required)")
        raise LeukoError(f"config key {key_path(error.absolute_path)}: {error.message}")
    fractions = config.get("split_fractions")
    if fractions is not None and not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise LeukoError(f"config key split_fractions: {fractions} must sum to 1")
    check_path_characters(filled)
    base = Path(base_dir)
    folders = {"data_dir": config["data_dir"]}
    folders.update({f"external.{name}": path for name, path in external_paths(config).items()})
    for key, folder in folders.items():
        if not (base / folder).is_dir():
            raise LeukoError(f"config key {key}: folder not found: {folder}")
    return filled

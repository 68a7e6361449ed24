"""A paper's claims as data (config key ``claims``): the file read and checked against
workflow/schemas/claims.schema.yaml, with one-line errors naming the file, the claim and the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from leukoreport.base.errors import LeukoError
from leukoreport.config.settings import SCHEMA as CONFIG_SCHEMA

__all__ = ["CLAIMS_SCHEMA", "KINDS", "Claim", "ClaimsFile", "Paper", "flatten", "load_claims"]

CLAIMS_SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "claims.schema.yaml"
KINDS = ("metric", "per_class", "errors", "confusion", "overfitting", "balance", "external", "reproducibility",
         "untestable")


@dataclass(frozen=True)
class Paper:
    """The paper the claims come from."""

    title: str
    citation: str


@dataclass(frozen=True)
class Claim:
    """One claim: its id, kind, our wording, its section, and every other key as written (``fields``)."""

    id: str
    kind: str
    text: str
    where: str
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimsFile:
    """A claims file: the paper, its declared recipe and software, and its claims in file order."""

    path: str
    paper: Paper
    recipe: dict
    software: dict
    claims: tuple[Claim, ...]


@cache
def _schema(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {dotted key: leaf value} (``{phases: {frozen: {lr: 1e-3}}}`` -> ``phases.frozen.lr``)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _config_key(dotted: str) -> bool:
    """Whether `dotted` names a key of the workflow config schema (nested properties followed)."""
    schema = _schema(CONFIG_SCHEMA)
    node = schema
    for part in dotted.split("."):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            node = schema["$defs"][ref[len("#/$defs/"):]]
        props = node.get("properties") or {}
        if part not in props:
            return False
        node = props[part]
    return True


def _describe(error: jsonschema.ValidationError, claims: Any) -> str:
    """'claim 'ID': key K: what is wrong' (or 'key K: ...' outside a claim) for one schema error."""
    path = list(error.absolute_path)
    where = ""
    if len(path) >= 2 and path[0] == "claims" and isinstance(path[1], int):
        item = claims[path[1]] if isinstance(claims, list) else None
        cid = item.get("id") if isinstance(item, dict) else None
        where = f"claim '{cid}': " if cid is not None else f"claim #{path[1] + 1}: "
        path = path[2:]
        if error.validator == "required" and not path and isinstance(item, dict):
            missing = next(k for k in error.validator_value if k not in item)
            kind = item.get("kind")
            why = "required" if missing in ("id", "kind", "text", "where") else f"required for kind {kind}"
            return f"{where}key {missing}: missing ({why})"
    key = ".".join(str(p) for p in path) or "(top level)"
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = next(k for k in error.validator_value if k not in error.instance)
        return f"{where}key {'.'.join([*map(str, path), missing])}: missing (required)"
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"{where}key {key}: {error.instance!r} is not one of {allowed}"
    if error.validator == "additionalProperties":
        return f"{where}key {key}: {error.message}"
    return f"{where}key {key}: {error.message}"


def _claim(item: dict) -> Claim:
    rest = {k: v for k, v in item.items() if k not in ("id", "kind", "text", "where")}
    return Claim(id=str(item["id"]), kind=str(item["kind"]), text=str(item["text"]).strip(),
                 where=str(item["where"]).strip(), fields=rest)


def load_claims(path: str | Path) -> ClaimsFile:
    """The claims file at `path`, validated; raises ``LeukoError`` "claims file F: claim 'ID': key K: ..." on the
    first problem (unknown kind, missing field, wrong type, duplicate id, recipe key not in the config)."""
    name = str(path)
    prefix = f"claims file {name}: "
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LeukoError(f"{prefix}not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LeukoError(f"{prefix}cannot be read: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise LeukoError(f"{prefix}expected a mapping with paper, recipe, software and claims")
    validator = jsonschema.validators.validator_for(_schema(CLAIMS_SCHEMA))(_schema(CLAIMS_SCHEMA))
    errors = sorted(validator.iter_errors(data),
                    key=lambda e: ([str(p) for p in e.absolute_path], e.validator != "required", e.message))
    if errors:
        raise LeukoError(prefix + _describe(errors[0], data.get("claims")))
    recipe = data.get("recipe") or {}
    for key in flatten(recipe):
        if not _config_key(key):
            raise LeukoError(f"{prefix}key recipe.{key}: not a key of the workflow config "
                             "(workflow/schemas/config.schema.yaml)")
    seen: set[str] = set()
    for item in data["claims"]:
        if item["id"] in seen:
            raise LeukoError(f"{prefix}claim '{item['id']}': key id: used by more than one claim")
        seen.add(item["id"])
    software = {str(k): str(v) for k, v in (data.get("software") or {}).items()}
    for item in data["claims"]:
        for key in item.get("depends_on") or []:
            if key not in software and not _config_key(key):
                raise LeukoError(f"{prefix}claim '{item['id']}': key depends_on: {key!r} is neither a config key nor "
                                 "a software item of the file")
    paper = Paper(title=str(data["paper"]["title"]), citation=str(data["paper"]["citation"]))
    return ClaimsFile(path=name, paper=paper, recipe=recipe, software=software,
                      claims=tuple(_claim(item) for item in data["claims"]))

"""Typed settings read from the validated config. Defaults live only in workflow/schemas/config.schema.yaml:
every record here reads its keys as they are, after the schema filled what the user left out."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from leukoreport.base.errors import LeukoError

__all__ = ["SCHEMA", "ReportLimits", "SchemaDefaults", "ShiftSettings", "Uncertainty", "schema_defaults",
           "with_defaults"]

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@cache
def _schema(path: Path = SCHEMA) -> dict:
    """The config schema, read once per process."""
    return yaml.safe_load(Path(path).read_text())


def _filling_validator(path: Path = SCHEMA) -> Any:
    """A jsonschema validator that fills each absent property with its schema default while it validates."""
    base = jsonschema.validators.validator_for(_schema(path))
    check_properties = base.VALIDATORS["properties"]

    def fill_then_check(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": fill_then_check})(_schema(path))


def with_defaults(config: dict, schema: str | Path = SCHEMA) -> tuple[dict, list[jsonschema.ValidationError]]:
    """A copy of `config` with every schema default filled in where a key is absent (as Snakemake's `validate`
    does), and the schema errors of the result, by key path and message; `config` itself is not changed."""
    filled = copy.deepcopy(config)
    errors = sorted(_filling_validator(Path(schema).resolve()).iter_errors(filled),
                    key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return filled, errors


def schema_defaults() -> dict:
    """Every default of the schema, nested blocks filled (keys without a default are absent)."""
    return with_defaults({})[0]


def _get(config: dict, *keys: str) -> Any:
    """config[k1][k2]...; a missing key is a one-line error naming it (the config was not validated)."""
    node: Any = config
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise LeukoError(f"config key {'.'.join(keys[:i + 1])}: missing (the config was not validated against "
                             "workflow/schemas/config.schema.yaml)")
        node = node[key]
    return node


class SchemaDefaults:
    """A settings record built by ``from_config``; ``defaults(**changes)`` builds it from the schema's defaults, with
    ``changes`` applied (for code and tests that run outside the workflow)."""

    @classmethod
    def defaults(cls, **changes: Any) -> Any:
        """The record of the schema's defaults, with ``changes`` applied."""
        return replace(cls.from_config(schema_defaults()), **changes)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Uncertainty(SchemaDefaults):
    """Settings of the intervals and the calibration summary stored in metrics.json."""

    confidence: float
    n_resamples: int
    bootstrap_seed: int
    calibration_bins: int

    @classmethod
    def from_config(cls, config: dict) -> Uncertainty:
        """From the validated config (or the evaluate rule's params, which carry the same keys)."""
        return cls(confidence=float(_get(config, "confidence_level")),
                   n_resamples=int(_get(config, "bootstrap_resamples")),
                   bootstrap_seed=int(_get(config, "bootstrap_seed")),
                   calibration_bins=int(_get(config, "calibration_bins")))


@dataclass(frozen=True)
class ShiftSettings(SchemaDefaults):
    """The `validity` keys that the embedding diagnostics use, with the interval settings."""

    domain: bool
    folds: int
    max_per_side: int
    permutations: int
    components: int
    ood: bool
    k: int
    confidence: float
    seed: int

    @classmethod
    def from_config(cls, config: dict) -> ShiftSettings:
        """From the validated config: `validity.domain_classifier`, `validity.ood`, `confidence_level`,
        `bootstrap_seed`."""
        dom, ood = _get(config, "validity", "domain_classifier"), _get(config, "validity", "ood")
        return cls(domain=bool(dom["enabled"]), folds=int(dom["folds"]), max_per_side=int(dom["max_per_side"]),
                   permutations=int(dom["permutations"]), components=int(dom["components"]),
                   ood=bool(ood["enabled"]), k=int(ood["k"]), confidence=float(_get(config, "confidence_level")),
                   seed=int(_get(config, "bootstrap_seed")))


@dataclass(frozen=True)
class ReportLimits(SchemaDefaults):
    """Images and table rows the report shows per seed and dataset (`report_limits`)."""

    errors: int
    error_rows: int
    pairs: int
    pair_rows: int
    agreement: int
    label_rows: int

    @classmethod
    def from_config(cls, config: dict) -> ReportLimits:
        """From the validated config's `report_limits` block."""
        limits = _get(config, "report_limits")
        return cls(**{key: int(_get(limits, key)) for key in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, int]:
        """The limits by key, as the report's view models take them."""
        return {key: getattr(self, key) for key in self.__dataclass_fields__}

"""Where the images come from, as the config declares it: the training data (``data_provenance``) and each
external set (``external.NAME: folder`` or ``{path, source, scanner, stain, citation}``). Nothing here states a
fact the config does not give."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from leukoreport.config.class_names import normalise

__all__ = ["FACTS", "DeclaredProvenance", "Provenance", "declared_provenance", "external_path", "external_paths",
           "provenance_sentences", "same_source"]

FACTS = ("source", "scanner", "stain", "citation")


@dataclass
class Provenance:
    """Declared facts about one image set; None where the config says nothing."""

    source: str | None = None
    scanner: str | None = None
    stain: str | None = None
    citation: str | None = None

    def declared(self) -> bool:
        """Whether the config names the set's source."""
        return bool(self.source)

    def facts(self) -> str:
        """'source, scanner, stain' of what is declared ('' when nothing is)."""
        return ", ".join(v for v in (self.source, self.scanner, self.stain) if v)

    def to_dict(self) -> dict:
        """The facts as plain JSON types."""
        return asdict(self)


def _provenance(entry: dict | None) -> Provenance:
    entry = entry or {}
    return Provenance(**{k: (str(entry[k]).strip() or None) if entry.get(k) is not None else None for k in FACTS})


def external_path(entry: str | dict) -> str:
    """The folder of one ``external`` entry (a folder, or a mapping with ``path``)."""
    return entry["path"] if isinstance(entry, dict) else entry


def external_paths(config: dict) -> dict[str, str]:
    """External set name -> folder."""
    return {name: external_path(entry) for name, entry in (config.get("external") or {}).items()}


def _relation(train: Provenance, external: Provenance) -> str:
    if not external.declared():
        return "provenance not declared"
    return "same source as training" if same_source(train, external) else "other source"


def same_source(a: Provenance, b: Provenance) -> bool | None:
    """True/False when both sources are declared (compared ignoring case and surrounding spaces), else None."""
    if not (a.declared() and b.declared()):
        return None
    return normalise(a.source) == normalise(b.source)


@dataclass(frozen=True)
class DeclaredProvenance:
    """What the config declares about the images' origin, derived once: the training data, each external set,
    and how each external set relates to the training data."""

    training: Provenance
    external: dict[str, Provenance]
    relations: dict[str, str]  # 'same source as training', 'other source' or 'provenance not declared'

    def relation(self, name: str) -> str:
        """How external set `name` relates to the training data ('other source' also when the training source is
        not declared)."""
        return self.relations[name]


def declared_provenance(config: dict) -> DeclaredProvenance:
    """The provenance facts of `config` (keys ``data_provenance`` and ``external``)."""
    training = _provenance(config.get("data_provenance"))
    external = {name: _provenance(entry if isinstance(entry, dict) else None)
                for name, entry in (config.get("external") or {}).items()}
    return DeclaredProvenance(training, external, {n: _relation(training, p) for n, p in external.items()})


def _names(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def provenance_sentences(declared: DeclaredProvenance) -> list[str]:
    """Limitations about sources: which sources the external sets test, which share the training source, which
    declare none; said only from the config's facts."""
    train, sets, relations = declared.training, declared.external, declared.relations
    origin = (f"The training images come from {train.facts()} (config data_provenance)" if train.declared()
              else "The training images' source is not given in the config (data_provenance)")
    other = [n for n, r in relations.items() if r == "other source"]
    same = [n for n, r in relations.items() if r == "same source as training"]
    unknown = [n for n, r in relations.items() if r == "provenance not declared"]
    out = []
    if not sets:
        return [f"{origin}; no external set is given, so shift to another laboratory, scanner or stain is not tested."]
    if other:
        tested = "; ".join(f"'{n}' ({sets[n].facts()})" for n in other)
        out.append(f"{origin}. External set(s) from other sources: {tested}. They test shift to these sources only: "
                   "BatchNorm ResNets are known to lose accuracy under stain and scanner shift, so other sources may "
                   "give other results.")
    else:
        out.append(f"{origin}. No external set is declared to come from another source, so stain and scanner shift "
                   "are not tested here (BatchNorm ResNets are known to lose accuracy under them).")
    if same:
        out.append(f"External set(s) {_names(same)} come from the training source: they test new images, not a new "
                   "laboratory, scanner or stain.")
    if unknown:
        out.append(f"External set(s) {_names(unknown)} declare no provenance (config external.NAME.source), so "
                   "whether they test another laboratory, scanner or stain is not known.")
    return out

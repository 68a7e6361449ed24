"""External class folders matched to the training classes: case and surrounding spaces ignored, class_aliases."""

from __future__ import annotations

import pandas as pd
import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.config.class_names import how_matched, mapping_rows, match_classes, normalise, relabel

CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def test_case_and_surrounding_spaces_are_ignored():
    mapping = match_classes(["Basophil", " MONOCYTE ", "neutrophil"], CLASSES, None, "ext")
    assert mapping == {"Basophil": "basophil", " MONOCYTE ": "monocyte", "neutrophil": "neutrophil"}
    assert [how_matched(f, c) for f, c in mapping.items()] == ["case or spaces", "case or spaces", "same name"]
    assert normalise("  Ab C ") == "ab c"


def test_aliases_map_other_names_and_every_mapping_is_listed():
    aliases = {"neutrophils": "neutrophil", "Segmented": "Neutrophil", "lympho": "lymphocyte"}
    mapping = match_classes(["segmented", "Neutrophils", "Lymphocyte"], CLASSES, aliases, "ext")
    assert mapping == {"segmented": "neutrophil", "Neutrophils": "neutrophil", "Lymphocyte": "lymphocyte"}
    assert mapping_rows(mapping) == [
        {"folder": "segmented", "class": "neutrophil", "how": "class_aliases"},
        {"folder": "Neutrophils", "class": "neutrophil", "how": "class_aliases"},
        {"folder": "Lymphocyte", "class": "lymphocyte", "how": "case or spaces"}]


def test_a_name_that_matches_nothing_keeps_todays_one_line_error():
    with pytest.raises(LeukoError) as err:
        match_classes(["Basophil", "band cell"], CLASSES, {"segmented": "neutrophil"}, "data/lab2")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("data/lab2/band cell: class 'band cell' is not a training class (basophil, eosinophil")
    assert "class_aliases" in message


def test_an_alias_to_no_training_class_names_the_config_key():
    with pytest.raises(LeukoError, match=r"^config key class_aliases\.segmented: 'neutrofil' is not a training class"):
        match_classes(["segmented"], CLASSES, {"segmented": "neutrofil"}, "ext")


def test_relabel_merges_folders_into_one_class_sorted():
    images = pd.DataFrame({"path": ["e/Seg/2.jpg", "e/Neutrophil/1.jpg", "e/Mono/3.jpg"],
                           "label": ["Seg", "Neutrophil", "Mono"]})
    out = relabel(images, {"Seg": "neutrophil", "Neutrophil": "neutrophil", "Mono": "monocyte"})
    assert out.to_dict("records") == [{"path": "e/Mono/3.jpg", "label": "monocyte"},
                                      {"path": "e/Neutrophil/1.jpg", "label": "neutrophil"},
                                      {"path": "e/Seg/2.jpg", "label": "neutrophil"}]
    assert images["label"].tolist() == ["Seg", "Neutrophil", "Mono"]  # the input is not modified

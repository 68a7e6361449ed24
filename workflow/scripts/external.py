"""Discover one external set and match its class folders to the training classes (case, spaces, class_aliases)."""

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.config.class_names import mapping_rows, match_classes, relabel
from leukoreport.data.images import discover

with step_log(snakemake.log[0]):
    split = pd.read_csv(snakemake.input.split, dtype=str, keep_default_na=False)
    classes = sorted(split["label"].unique())
    images = discover(snakemake.input.images)
    folders = list(pd.unique(images["label"]))
    mapping = match_classes(folders, classes, snakemake.params.aliases, snakemake.input.images)
    mapped = mapping_rows(mapping)
    write_json({"folder": snakemake.input.images, "classes": mapping, "mapped": mapped}, snakemake.output.classes)
    images = relabel(images, mapping)
    write_csv(images, snakemake.output.images)
    for row in mapped:
        print(f"class folder '{row['folder']}' -> {row['class']} ({row['how']})")
    print(images["label"].value_counts().sort_index())

"""Path-valued config keys holding a character Snakemake reads in file paths ({ } < >) stop with one line naming
the key; other unusual characters pass."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from leukoreport.base.errors import LeukoError
from leukoreport.config.checks import check_config, path_keys

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture
def project(tmp_path):
    """A folder with the smoke config's data folders (empty class folders are enough here) and claims file."""
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    for folder in [cfg["data_dir"], *cfg["external"].values()]:
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "config").mkdir()
    shutil.copy2(ROOT / "config" / "claims.yaml", tmp_path / "config" / "claims.yaml")
    return tmp_path, cfg


def test_path_keys_lists_every_path_valued_key():
    cfg = {"data_dir": "d", "external": {"a": "x", "b": {"path": "y", "source": "lab"}}, "compare_with": None,
           "claims": "c.yaml", "size": 64}
    assert path_keys(cfg) == {"data_dir": "d", "external.a": "x", "external.b.path": "y", "claims": "c.yaml"}


@pytest.mark.parametrize("char", ["{", "}", "<", ">"])
@pytest.mark.parametrize("key", ["data_dir", "external.ext", "external.lab.path", "compare_with", "claims"])
def test_special_character_names_the_key(project, key, char):
    root, cfg = project
    cfg = copy.deepcopy(cfg)
    value = f"runs/x{char}v"
    if key == "external.ext":
        cfg["external"]["ext"] = value
    elif key == "external.lab.path":
        cfg["external"]["lab"] = {"path": value, "source": "another lab"}
    else:
        cfg[key] = value
    (root / value).mkdir(parents=True)  # it exists: only the name is wrong
    with pytest.raises(LeukoError) as err:
        check_config(cfg, SCHEMA, root)
    message = str(err.value)
    assert message.startswith(f"config key {key}: {value!r} contains {char!r}, which Snakemake reads in file paths")
    assert "\n" not in message


def test_other_unusual_characters_pass(project):
    root, cfg = project
    cfg = copy.deepcopy(cfg)
    for name in ["lab 2 #3", "a%b&c=d", "é(1)[2]"]:
        (root / "data" / name).mkdir(parents=True)
        cfg["external"][f"e{len(cfg['external'])}"] = f"data/{name}"
    check_config(cfg, SCHEMA, root)


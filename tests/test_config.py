"""Settings (rnr/config.py): strict typed loading, the shared block plus one block per method, and the
documentation of every key in config/README.md, checked against the code key by key with defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rnr.config import SettingsError, SharedSettings, defaults, parse_overrides
from rnr.methods.settings import replace_settings, settings_from_file, settings_from_mapping
from rnr.methods.table import METHODS

REPO = Path(__file__).resolve().parents[1]


def test_flat_mapping_splits_into_shared_and_method_blocks_and_back():
    s = settings_from_mapping({"method": "idir", "seed": 5, "iterations": 7, "lr": "1e-4"})
    assert (s.method, s.seed, s.device) == ("idir", 5, "auto")
    assert (s.params.iterations, s.params.lr) == (7, 1e-4)
    assert settings_from_mapping(s.to_dict()) == s
    assert list(s.to_dict())[:3] == ["method", "seed", "device"]
    assert replace_settings(s, iterations=9).params.iterations == 9
    with pytest.raises(SettingsError, match="keeps the method"):
        replace_settings(s, method="rnr")


@pytest.mark.parametrize(
    "mapping, fragment",
    [
        ({"learning_rate": 0.1}, "unknown setting 'learning_rate'; valid settings for method rnr are: method, seed"),
        ({"method": "demons", "lr": 1e-3}, "setting 'lr' belongs to method rnr/idir, not demons"),
        ({"method": "idir", "pairing": "seed"}, "setting 'pairing' belongs to method rnr, not idir"),
        ({"method": "rnr", "demons_sigma": 2}, "setting 'demons_sigma' belongs to method demons, not rnr"),
        ({"method": "voxelmorph"}, "'method' must be one of rnr, idir, demons, identity"),
        ({"iterations": "many"}, "setting 'iterations' expects int, got 'many' (str)"),
        ({"iterations": True}, "setting 'iterations' expects int"),
        ({"intermediate": "yes"}, "setting 'intermediate' expects bool"),
        ({"lr": "fast"}, "setting 'lr' expects float"),
        ({"batch_size": "mask/0"}, "'batch_size' must be a positive integer or 'mask/K'"),
        ({"iterations": 0}, "'iterations' must be > 0"),
        ({"device": "tpu"}, "'device' must be one of auto, cpu, cuda"),
        ({"method": "demons", "demons_iterations": [1, "x", 3]}, "'demons_iterations' expects tuple[int, ...]"),
    ],
)
def test_bad_settings_name_the_key_and_what_was_expected(mapping, fragment):
    with pytest.raises(SettingsError) as info:
        settings_from_mapping(mapping, where="cfg")
    assert str(info.value).startswith("cfg: ") and fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_types_ints_for_floats_yaml_lists_and_batch_fractions():
    p = settings_from_mapping({"alpha_grad": 2, "batch_size": "mask/30"}).params
    assert p.alpha_grad == 2.0 and isinstance(p.alpha_grad, float)
    assert p.resolve_batch_size(3000) == 100 and p.resolve_batch_size(10) == 1
    assert settings_from_mapping({"batch_size": 500}).params.resolve_batch_size(100) == 100
    assert parse_overrides(["iterations=3", "shift=[1, 2]", "lr=1e-4"]) == {
        "iterations": 3,
        "shift": [1, 2],
        "lr": "1e-4",
    }
    with pytest.raises(SettingsError, match="key=value"):
        parse_overrides(["iterations"])


def test_settings_file_and_overrides(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("method: idir\niterations: 3\n")
    s = settings_from_file(path, {"iterations": 4})
    assert (s.method, s.params.iterations) == ("idir", 4)
    path.write_text("- a list\n")
    with pytest.raises(SettingsError, match="expected a mapping"):
        settings_from_file(path)


def _documented(section: str) -> dict[str, object]:
    """key -> default of one table of config/README.md (a section starting with ``section``)."""
    text = (REPO / "config" / "README.md").read_text()
    start = text.index(section)
    end = text.find("\n### ", start + 1)
    rows = re.findall(r"^\| `([a-z_0-9]+)` \| `([^`]*)` \|", text[start : end if end > 0 else None], re.M)
    return {key: yaml.safe_load(value) for key, value in rows}


def _code(defaults_: dict) -> dict[str, object]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in defaults_.items()}


@pytest.mark.parametrize("method", list(METHODS))
def test_config_readme_documents_every_setting_with_its_default(method):
    assert _documented("### Every method") == _code(defaults(SharedSettings))
    documented = _documented(f"### method `{method}`")
    assert documented == _code(defaults(METHODS[method].settings))


def test_config_readme_documents_every_workflow_key():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    text = (REPO / "config" / "README.md").read_text()
    for key, node in schema["properties"].items():
        names = [f"{key}.{sub}" for sub in node.get("properties", {})] or [key]
        for name in names:
            assert f"| `{name}` |" in text, name

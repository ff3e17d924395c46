"""rnr.plan in-process: what the workflow would run for the shipped configs and a user's own file, and every
config the plan must refuse before any job runs. The configs are merged as Snakemake merges them
(snakemake.utils.update_config), values from `--config` arrive as Snakemake hands them over (strings)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from rnr import layout
from rnr.data import DATASETS
from rnr.plan import PlanError, make_plan

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def merged(*overrides: dict) -> dict:
    """config/config.yaml with ``overrides`` merged over it, key by key, as Snakemake merges config files."""
    config = copy.deepcopy(DEFAULT)
    for o in overrides:
        update_config(config, copy.deepcopy(o))
    return config


def plan(*overrides: dict):
    return make_plan(merged(*overrides), SCHEMA)


def refused(*overrides: dict) -> str:
    with pytest.raises(PlanError) as info:
        plan(*overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- the shipped configs -----------------------------------------------------------------------------------
def test_default_config():
    p = plan()
    assert p.dataset is DATASETS["phantom"] and p.source_dir is None
    assert p.cases == tuple(range(1, 11)) and p.names == tuple(DEFAULT["configurations"])
    assert p.compare_to == "rnr" and not p.use_gpu and p.device == "cpu"
    assert all(c.seeds == (3,) for c in p.configurations)
    assert p.labels() == {n: c["label"] for n, c in DEFAULT["configurations"].items()}
    # `initial` once per case, every configuration once per case and seed.
    metrics = p.metrics_files()
    assert len(metrics) == len(set(metrics)) == 10 * (1 + len(p.names))
    assert "results/phantom/runs/initial/case10/seed0/metrics.json" in metrics
    assert "results/phantom/runs/demons/case1/seed3/metrics.json" in metrics
    # The settings file of a configuration: its overrides, minus the workflow's keys, plus the device.
    rnr = p.configuration("rnr")
    assert dict(rnr.settings) == {
        "iterations": 200,
        "batch_size": 1000,
        "intermediate": True,
        "curve_every": 10,
        "device": "cpu",
    }
    assert rnr.method == "rnr" and p.configuration("demons").method == "demons"


def test_default_config_is_not_changed():
    config = merged()
    before = copy.deepcopy(config)
    make_plan(config, SCHEMA)
    assert config == before


def test_dirlab_config(tmp_path):
    """config/dirlab.yaml over the default: five RNR configurations at the model defaults and the four baselines,
    three seeds, GPU; config.yaml's CPU-sized IDIR switched off; the thesis ablations as sweeps of rnr."""
    dirlab = yaml.safe_load((REPO / "config" / "dirlab.yaml").read_text())
    p = plan(dirlab, {"dirlab_dir": str(tmp_path), "cases": ["1", "2"]})
    assert p.dataset.name == "dirlab" and p.source_dir == str(tmp_path) and p.cases == (1, 2)
    swept = (
        "rnr_alpha_grad_0.01",
        "rnr_alpha_grad_0.1",
        "rnr_alpha_grad_10",
        "rnr_n_blocks_10",
        "rnr_n_blocks_15",
        "rnr_batch_size_1000",
        "rnr_batch_size_3000",
        "rnr_batch_size_30000",
    )
    assert sorted(p.names) == sorted(
        (
            *swept,
            "rnr",
            "rnr_no_intermediate",
            "rnr_no_grad_penalty",
            "rnr_shared_weights",
            "rnr_trajectory",
            "idir",
            "demons",
            "elastix",
            "ants",
        )
    )
    assert all(c.seeds == (3, 4, 5) for c in p.configurations)
    assert p.use_gpu and p.device == "cuda" and p.register_threads == 2
    assert all(c.settings["device"] == "cuda" for c in p.configurations)
    assert p.configuration("rnr").settings["iterations"] == 2500
    assert "results/dirlab/runs/demons/case2/seed5/metrics.json" in p.metrics_files()
    assert len(p.metrics_files()) == 2 * (1 + (9 + len(swept)) * 3)
    assert [s.name for s in p.sweeps] == ["alpha_grad", "n_blocks", "batch_size"]
    assert all(s.base == "rnr" and "rnr" in s.configurations for s in p.sweeps)  # each lists rnr's own value
    assert p.configuration("rnr_n_blocks_15").settings["n_blocks"] == 15
    assert all(c.settings.get("curve_every") == 50 for c in p.configurations if c.method in ("rnr", "idir"))


def test_baselines_config():
    """config/baselines.yaml adds elastix and ANTs to the default phantom run."""
    baselines = yaml.safe_load((REPO / "config" / "baselines.yaml").read_text())
    p = plan(baselines)
    assert p.names[: len(DEFAULT["configurations"]) + 2] == (*DEFAULT["configurations"], "elastix", "ants")
    assert p.configuration("elastix").method == "elastix" and p.configuration("ants").method == "ants"
    assert "results/phantom/runs/ants/case10/seed3/metrics.json" in p.metrics_files()


def test_command_line_strings_are_read_as_meant():
    """`--config seeds=[3,4] cases=[1,2] use_gpu=true`: Snakemake hands the items over as strings."""
    p = plan({"seeds": ["4", "3"], "cases": ["1", "2"], "use_gpu": "true"})
    assert p.cases == (1, 2) and all(c.seeds == (3, 4) for c in p.configurations) and p.use_gpu
    assert plan({"use_gpu": "True"}).device == "cuda" and plan({"use_gpu": "FALSE"}).device == "cpu"
    assert "results/phantom/runs/rnr/case2/seed4/metrics.json" in plan({"seeds": ["3", "4"]}).metrics_files()


def test_a_minimal_config_file_gets_every_default(tmp_path):
    """A user's own file with only dataset, dirlab_dir and one configuration: the schema fills the rest."""
    config = {"dataset": "dirlab", "dirlab_dir": str(tmp_path), "configurations": {"mine": {"iterations": 5}}}
    p = make_plan(config, SCHEMA)
    assert p.cases == tuple(range(1, 11)) and not p.use_gpu and p.register_threads == 1
    assert (p.masks_method, p.masks_weights, p.phantom_scale, p.phantom_seed) == ("auto", None, 1.0, 0)
    assert p.names == ("mine",) and p.compare_to == "mine" and p.configuration("mine").seeds == (3,)
    assert "results/dirlab/runs/mine/case10/seed3/metrics.json" in p.metrics_files()


def test_a_configuration_gives_its_own_seeds_and_label():
    p = plan({"seeds": [1], "configurations": {"demons": {"seeds": [9, 2, 9], "label": "Demons"}}})
    assert p.configuration("demons").seeds == (2, 9) and p.configuration("rnr").seeds == (1,)
    assert "seeds" not in p.configuration("demons").settings and "label" not in p.configuration("demons").settings
    assert p.labels()["demons"] == "Demons" and p.largest_seed() == 9


def test_paths_keep_the_wildcards():
    p = plan()
    assert p.case_file(layout.CASE_JSON) == "results/phantom/data/case{case}/case.json"
    assert p.run_file(layout.CHECKPOINT) == "results/phantom/runs/{configuration}/case{case}/seed{seed}/checkpoint.pt"
    assert p.export_file(layout.FIELD) == "results/phantom/export/{configuration}/case{case}/seed{seed}/field.nii.gz"
    assert p.settings_file() == "results/phantom/settings/{configuration}.yaml"
    assert (
        p.log("register", "{configuration}/case{case}")
        == "results/phantom/logs/register/{configuration}/case{case}.log"
    )
    assert p.source_output() == "results/phantom/source"
    exports = p.export_files(layout.MANIFEST)
    assert len(exports) == 10 * len(p.names) and "results/phantom/export/demons/case3/seed3/export.json" in exports


def test_field_configuration_names_its_file_as_an_input():
    pattern = "results/phantom/export/rnr/case{case}/seed3/field.nii.gz"
    p = plan({"configurations": {"f": {"method": "field", "fields": pattern}}})
    assert p.field_input("f", 2) == {"field": "results/phantom/export/rnr/case2/seed3/field.nii.gz"}
    assert p.field_input("rnr", 2) == {} and p.field_input(layout.INITIAL, 2) == {}


def test_a_switched_off_configuration_is_left_out():
    p = plan({"configurations": {"idir_cpu": False, "demons": False}})
    assert p.names == ("rnr", "rnr_no_intermediate")


# -- refused before any job runs ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        ({"bogus": 1}, ["config: Additional properties are not allowed ('bogus' was unexpected)"]),
        ({"use_gpus": True}, ["('use_gpus' was unexpected)"]),
        ({"masks": {"method": "magic"}}, ["config.masks.method: 'magic' is not one of"]),
        ({"masks": {"wieghts": None}}, ["config.masks:", "('wieghts' was unexpected)"]),
        ({"use_gpu": "maybe"}, ["config.use_gpu: 'maybe' is not of type 'boolean'"]),
        ({"cases": [0]}, ["config.cases[0]: 0 is less than the minimum of 1"]),
        ({"cases": [1, 11]}, ["config cases[1]: case 11 is not a case of dataset 'phantom' (expected one of 1, 2,"]),
        (
            {"dataset": "copd"},
            ["config: dataset must be one of phantom, dirlab, copdgene, copdgene_phantom; got 'copd'"],
        ),
        (
            {"dirlb_dir": "/data"},
            ["config: 'dirlb_dir' is no dataset's folder key; expected one of copdgene_dir, dirlab_dir"],
        ),
        ({"configurations": {"initial": {}}}, ["should not be valid under {'const': 'initial'}"]),
        ({"configurations": {"rnr": {"iterationz": 5}}}, ["config configurations.rnr: unknown setting 'iterationz'"]),
        ({"configurations": {"q": {"iterations": "many"}}}, ["setting 'iterations' expects int, got 'many' (str)"]),
        (
            {"configurations": {"d": {"method": "demons", "lr": 0.1}}},
            ["config configurations.d: setting 'lr' belongs to method rnr/idir, not demons"],
        ),
        ({"configurations": {"rnr": {"device": "cuda"}}}, ["'device' is not a configuration setting; use_gpu decides"]),
        ({"configurations": {"rnr": {"seed": 4}}}, ["config configurations.rnr: 'seed' is set by 'seeds'"]),
        ({"configurations": {"rnr": {"seeds": []}}}, ["'seeds' must be a non-empty list of integers >= 0, got []"]),
        ({"configurations": {"rnr": {"label": ""}}}, ["config configurations.rnr: 'label' must be a non-empty text"]),
        (
            {"configurations": {"f": {"method": "field", "fields": "one.nii.gz"}}},
            ["config configurations.f: setting 'fields' must be a path pattern containing {case}"],
        ),
        ({"compare_to": "nope"}, ["config: compare_to 'nope' is not a configuration; expected one of rnr,"]),
        (
            {"configurations": {n: False for n in DEFAULT["configurations"]}},
            ["config: every configuration is switched off (false); at least one must run"],
        ),
    ],
)
def test_bad_config_is_refused(overrides, fragments):
    message = refused(overrides)
    for fragment in fragments:
        assert fragment in message, message


def test_dirlab_without_its_folder_is_refused(tmp_path):
    assert refused({"dataset": "dirlab"}) == (
        "config: dataset is 'dirlab' but dirlab_dir is not set; give the folder holding the Case{N}Pack folders "
        "of DIR-Lab, as unpacked, e.g. --config dataset=dirlab dirlab_dir=/data/dirlab"
    )
    missing = tmp_path / "missing"
    assert refused({"dataset": "dirlab", "dirlab_dir": str(missing)}) == (
        f"config: dirlab_dir '{missing}' is not a folder (expected the folder holding the Case{{N}}Pack folders of "
        "DIR-Lab, as unpacked; relative paths start in the working directory)"
    )

# Config validation and the path helpers every rule file uses. File names come from rnr.layout and
# rnr.table_specs only: a rename there reaches every rule.

import re
import shlex
from pathlib import Path

from snakemake.utils import validate

from rnr import layout
from rnr.config import Settings, SettingsError
from rnr.export import DETJ, FIELD, MANIFEST, export_dir
from rnr.table_specs import CAPTIONS, HTML_TABLES, TABLES, caption_file


# `--config` values arrive as strings unless Snakemake recognises them (it knows True/False, not true/false,
# and reads [1,2] as strings): accept digit strings as case numbers and seeds and true/false for use_gpu.
for key in ("cases", "seeds"):
    if isinstance(config.get(key), list):
        config[key] = [int(c) if isinstance(c, str) and c.isdigit() else c for c in config[key]]
if isinstance(config.get("use_gpu"), str) and config["use_gpu"].lower() in ("true", "false"):
    config["use_gpu"] = config["use_gpu"].lower() == "true"

# Fills every documented default (workflow/schemas/config.schema.yaml), so a config may leave keys out.
validate(config, "../schemas/config.schema.yaml", set_default=True)

if config["dataset"] == "dirlab" and not config.get("dirlab_dir"):
    raise ValueError(
        "config: dataset is 'dirlab' but dirlab_dir is not set; give the folder holding the Case{N}Pack "
        "folders, e.g. --config dataset=dirlab dirlab_dir=/data/dirlab"
    )
if config["dataset"] == "dirlab" and not Path(config["dirlab_dir"]).is_dir():
    raise ValueError(
        f"config: dirlab_dir {config['dirlab_dir']!r} is not a folder (expected the folder holding the "
        "Case{N}Pack folders of DIR-Lab, as unpacked; relative paths start in the working directory)"
    )

RESULTS_ROOT = "results"
DATASET = config["dataset"]
RESULTS = str(layout.dataset_dir(RESULTS_ROOT, DATASET))
CASES = [int(c) for c in config["cases"]]
# A configuration set to false is left out: a file merged over another (config/dirlab.yaml over
# config/config.yaml) cannot delete keys, only switch them off.
config["configurations"] = {k: v for k, v in config["configurations"].items() if v is not False}
if not config["configurations"]:
    raise ValueError("config: every configuration is switched off (false); at least one must run")
CONFIGURATIONS = list(config["configurations"])
INITIAL = layout.INITIAL
USE_GPU = bool(config["use_gpu"])
# `use_gpu` decides the device of every registration: true -> "cuda" (the job fails, naming use_gpu in its
# log, where no CUDA device exists), false -> "cpu".
DEVICE = "cuda" if USE_GPU else "cpu"



def configuration_seeds(name):
    """The seeds of one configuration: its own `seeds`, else the workflow's `seeds` (one run per seed)."""
    seeds = (config["configurations"][name] or {}).get("seeds", config["seeds"])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ValueError(f"config configurations.{name}: 'seeds' must be a non-empty list of integers >= 0, got {seeds!r}")
    return sorted(set(seeds))


# Keys of a configuration that the workflow reads itself (not registration settings).
WORKFLOW_KEYS = ("seeds", "label")


def table_labels():
    """` --label NAME=TEXT` arguments of `rnr tables` for the configurations that give a `label`."""
    labels = {n: (c or {}).get("label") for n, c in config["configurations"].items()}
    return " ".join(f"--label {shlex.quote(f'{n}={t}')}" for n, t in labels.items() if t)


def registration_settings(configuration):
    """The settings file content of one configuration: its overrides (without `seeds`, which pick the
    registrations, not one registration's settings) plus the device from use_gpu."""
    overrides = {
        k: v for k, v in (config["configurations"][configuration] or {}).items() if k not in WORKFLOW_KEYS
    }
    return {**overrides, "device": DEVICE}


COMPARE_TO = config["compare_to"] or CONFIGURATIONS[0]
if COMPARE_TO not in CONFIGURATIONS:
    raise ValueError(
        f"config: compare_to {COMPARE_TO!r} is not a configuration; expected one of {', '.join(CONFIGURATIONS)}"
    )

# Check every configuration against its method's settings now, before any job runs.
SEEDS = {}
for _name, _overrides in config["configurations"].items():
    if "device" in (_overrides or {}):
        raise ValueError(
            f"config configurations.{_name}: 'device' is not a configuration setting; use_gpu decides the device"
        )
    if "seed" in (_overrides or {}):
        raise ValueError(
            f"config configurations.{_name}: 'seed' is set by 'seeds' (a list; one registration per seed)"
        )
    SEEDS[_name] = configuration_seeds(_name)
    try:
        Settings.from_mapping(registration_settings(_name), where=f"config configurations.{_name}")
    except SettingsError as _exc:
        raise ValueError(str(_exc)) from None


wildcard_constraints:
    case=r"\d+",
    configuration="|".join(re.escape(c) for c in [INITIAL, *CONFIGURATIONS]),
    seed=r"\d+",


# -- paths (wildcards {case} and {configuration} left in) ------------------------------------------------
def case_file(name):
    """A file of the converted case folder, e.g. case_file(layout.CASE_JSON)."""
    return str(layout.case_dir(RESULTS_ROOT, DATASET, "{case}") / name)


def run_file(name):
    """A file of the run folder of one case x configuration x seed, e.g. run_file(layout.CHECKPOINT)."""
    return str(layout.run_dir(RESULTS_ROOT, DATASET, "{configuration}", "{case}", "{seed}") / name)


def export_file(name):
    """A file of one run's export folder (wildcards {configuration}, {case} and {seed} left in)."""
    return str(export_dir(RESULTS_ROOT, DATASET, "{configuration}", "{case}", "{seed}") / name)


def table_file(key):
    """One table of `rnr tables` (rnr.table_specs.TABLES)."""
    return str(layout.tables_dir(RESULTS_ROOT, DATASET) / TABLES[key])


# -- report ------------------------------------------------------------------------------------------------
def table_report(key):
    """One table of rnr.table_specs.TABLES, flagged for the report: the HTML pages (HTML_TABLES) under "Tables",
    shown inline and labelled in reading order; the other files in a category of their own, to download. The
    caption file shows the table's caption from rnr.table_specs (the tables rule passes them as a param)."""
    caption = f"../report/{caption_file(key)}"
    if key in HTML_TABLES:
        number = layout.sortable_number(list(HTML_TABLES).index(key) + 1, len(HTML_TABLES))
        labels = {"#": number, "table": HTML_TABLES[key]}
        return report(table_file(key), caption=caption, category="Tables", labels=labels)
    return report(table_file(key), caption=caption, category="Tables (Markdown, LaTeX, CSV)")


def case_figure_labels(wildcards):
    """Report labels of one figure of a run's figures folder (wildcards case, seed and the pattern's name);
    case and seed as sortable text (the report sorts labels as text)."""
    largest_seed = max(max(seeds) for seeds in SEEDS.values())
    return {
        "case": layout.sortable_number(wildcards.case, max(CASES)),
        "seed": layout.sortable_number(wildcards.seed, max(largest_seed, layout.INITIAL_SEED)),
        "figure": wildcards.name,
    }


def figure_questions(wildcards):
    """rnr.plots.QUESTIONS, the question each dataset figure answers (figures.rst, its report caption, states
    it). Imported when a figures job is planned, not at parse time: matplotlib slows an import by ~2 s."""
    from rnr.plots import QUESTIONS

    return dict(QUESTIONS)


def evaluate_inputs(wildcards):
    """The converted case and mask, plus the run's checkpoint and record unless it is `initial`."""
    inputs = {"case_json": case_file(layout.CASE_JSON), "mask": case_file(layout.MASK_T00)}
    if wildcards.configuration != INITIAL:
        inputs["checkpoint"] = run_file(layout.CHECKPOINT)
        inputs["run_json"] = run_file(layout.RUN_JSON)
    return {key: path.format(**wildcards) for key, path in inputs.items()}


def dirlab_source(wildcards, input):
    """The folder holding Case{N}Pack/: generated for the phantom, the user's `dirlab_dir` otherwise."""
    return input[0] if DATASET == "phantom" else config["dirlab_dir"]


def all_metrics():
    """Every metrics.json: `initial` once per case, each configuration once per case and seed."""
    runs = [(INITIAL, layout.INITIAL_SEED)] + [(c, s) for c in CONFIGURATIONS for s in SEEDS[c]]
    return [
        run_file(layout.METRICS_JSON).format(configuration=c, case=case, seed=s) for c, s in runs for case in CASES
    ]


def runs_dir(metrics_paths):
    """results/<dataset>/runs from the metrics.json paths (runs/<configuration>/case<N>/seed<S>/metrics.json)."""
    return Path(metrics_paths[0]).parents[3]


def field_input(wildcards):
    """A `field` configuration's displacement field file (rnr/methods/field.py) as an input: Snakemake checks
    that it exists before any job runs, reruns the registration when it changes, and runs `rnr export` first
    when the pattern names an export of another configuration."""
    overrides = config["configurations"].get(wildcards.configuration) or {}
    if overrides.get("method") != "field":
        return {}
    return {"field": str(Settings.from_mapping(overrides).params.path(int(wildcards.case)))}

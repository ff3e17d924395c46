"""The workflow's plan: the merged configuration turned into a typed, checked description of every job.

Snakemake merges ``config/config.yaml``, the files given with ``--configfile`` and ``--config key=value``
into one mapping; :func:`make_plan` turns it into a :class:`Plan`:

* ``--config`` values arrive as strings unless Snakemake recognises them (it knows True/False, not
  true/false, and reads ``[1,2]`` as strings): digit strings are read as case numbers and seeds, true/false
  as ``use_gpu``;
* the schema (``workflow/schemas/config.schema.yaml``) is checked and fills every documented default;
* the dataset comes from :data:`rnr.data.DATASETS`: its case list bounds ``cases``, and a dataset read from
  the user's files needs its folder key (``dirlab_dir``) set to an existing folder;
* on a dataset with two phases only (COPDgene), a configuration asking for the intermediate phases T10..T40
  (RNR's ``intermediate``) is refused;
* configurations set to ``false`` are left out (a merged file cannot delete keys, only switch them off);
  each remaining one is checked against its method's settings block (:class:`rnr.config.Settings`), gets
  its seeds (its own ``seeds`` or the workflow's) and its display label;
* ``compare_to`` names the reference of the paired tests (default: the first configuration);
* ``sweeps`` expand into further configurations (rnr/methods/sweeps.py), checked the same way, after the config's own.

A bad value raises :class:`PlanError` with one line naming the key, what was expected and what was found:
Snakemake stops before any job runs. Every output path of the workflow comes from the plan's methods
(names from :mod:`rnr.layout`), so the rule files hold no path logic and the plan is tested in-process.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import layout
from .config import SettingsError, SharedSettings
from .data import DATASETS, Dataset
from .methods.settings import settings_from_mapping
from .methods.sweeps import Sweep, SweepError, expand_sweeps
from .reporting.table_specs import ABLATION, BUDGET

#: Where the workflow's results go, relative to its working directory.
RESULTS_ROOT = "results"
#: Keys of a configuration that the workflow reads itself (not registration settings).
WORKFLOW_KEYS = ("seeds", "label")


class PlanError(ValueError):
    """A merged configuration that does not describe a runnable workflow."""


@dataclass(frozen=True)
class Configuration:
    """One configuration of the config's ``configurations``.

    Attributes:
        name: its key: the results folder ``runs/<name>/`` and its table row.
        settings: the settings file the workflow writes for it (``rnr register --settings``): the config's
            overrides without the workflow keys, plus ``device`` from ``use_gpu``.
        seeds: the seeds it is registered with, ascending (one registration per seed).
        label: its display label in the tables and figures (None: the name).
    """

    name: str
    settings: Mapping[str, Any]
    seeds: tuple[int, ...]
    label: str | None

    @property
    def method(self) -> str:
        return str(self.settings.get("method", SharedSettings.method))


@dataclass(frozen=True)
class Plan:
    """Everything the rules need, checked.

    Attributes:
        dataset: the dataset's table entry (rnr.data.DATASETS).
        source_dir: the user's folder of raw files (the dataset's ``source_key``), or None for a generated
            dataset (the phantom), whose folder is the rule ``phantom``'s output :meth:`source_output`.
        cases: case numbers to run, as given.
        configurations: the configurations that run, in the config's order.
        compare_to: the reference configuration of the paired tests.
        use_gpu: every registration on ``cuda`` with one GPU requested (else the CPU).
        register_threads: CPU threads per registration job.
        masks_method, masks_weights: how the T00 lung mask is made (``rnr segment``).
        phantom_seed, phantom_scale: the phantom generator's settings (``rnr phantom``).
        results_root: the results folder, relative to the working directory.
        sweeps: the config's sweeps, expanded (their configurations are among ``configurations``).
    """

    dataset: Dataset
    source_dir: str | None
    cases: tuple[int, ...]
    configurations: tuple[Configuration, ...]
    compare_to: str
    use_gpu: bool
    register_threads: int
    masks_method: str
    masks_weights: str | None
    phantom_seed: int
    phantom_scale: float
    results_root: str = RESULTS_ROOT
    sweeps: tuple[Sweep, ...] = ()

    # -- what runs --------------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        """The device of every registration: ``cuda`` when use_gpu (the job fails, naming use_gpu in its
        log, where no CUDA device exists), else ``cpu``."""
        return "cuda" if self.use_gpu else "cpu"

    @property
    def names(self) -> tuple[str, ...]:
        """The configuration names in the config's order (``initial`` not included)."""
        return tuple(c.name for c in self.configurations)

    def configuration(self, name: str) -> Configuration:
        for c in self.configurations:
            if c.name == name:
                return c
        raise KeyError(f"no configuration {name!r}; the plan has {', '.join(self.names)}")

    def runs(self) -> list[tuple[str, int]]:
        """Every (configuration, seed) evaluated per case: ``initial`` once (its seed folder), then each
        configuration once per seed."""
        return [(layout.INITIAL, layout.INITIAL_SEED)] + [(c.name, s) for c in self.configurations for s in c.seeds]

    def labels(self) -> dict[str, str]:
        """Configuration -> display label, for the configurations that give one."""
        return {c.name: c.label for c in self.configurations if c.label}

    # -- paths (the wildcards {case}, {configuration} and {seed} left in) ---------------------------------
    @property
    def results(self) -> str:
        """``results/<dataset>``: everything this workflow writes."""
        return str(layout.dataset_dir(self.results_root, self.dataset.name))

    def source_output(self) -> str:
        """The folder the rule ``phantom`` writes a generated dataset into."""
        return f"{self.results}/source"

    def case_file(self, name: str) -> str:
        """A file of the converted case folder, e.g. case_file(layout.CASE_JSON)."""
        return str(layout.case_dir(self.results_root, self.dataset.name, "{case}") / name)

    def run_file(self, name: str) -> str:
        """A file of the run folder of one case x configuration x seed, e.g. run_file(layout.CHECKPOINT)."""
        return str(layout.run_dir(self.results_root, self.dataset.name, "{configuration}", "{case}", "{seed}") / name)

    def export_file(self, name: str) -> str:
        """A file of one run's export folder (rnr export)."""
        return str(
            layout.export_dir(self.results_root, self.dataset.name, "{configuration}", "{case}", "{seed}") / name
        )

    def settings_file(self) -> str:
        """The settings file of a configuration (wildcard {configuration})."""
        return str(layout.settings_file(self.results_root, self.dataset.name, "{configuration}"))

    def tables_dir(self) -> str:
        return str(layout.tables_dir(self.results_root, self.dataset.name))

    def figures_dir(self) -> str:
        return str(layout.figures_dir(self.results_root, self.dataset.name))

    def log(self, rule: str, wildcards: str = "") -> str:
        """``results/<dataset>/logs/<rule>[/<wildcards>].log``, e.g. log("convert", "case{case}")."""
        return f"{self.results}/logs/{rule}" + (f"/{wildcards}" if wildcards else "") + ".log"

    def metrics_files(self) -> list[str]:
        """Every metrics.json of the plan: each run of :meth:`runs` for each case."""
        pattern = self.run_file(layout.METRICS_JSON)
        return [pattern.format(configuration=c, case=n, seed=s) for c, s in self.runs() for n in self.cases]

    def export_files(self, name: str) -> list[str]:
        """One file of every registration's export folder (the opt-in target ``export``)."""
        pattern = self.export_file(name)
        return [
            pattern.format(configuration=c.name, case=n, seed=s)
            for c in self.configurations
            for s in c.seeds
            for n in self.cases
        ]

    def field_input(self, configuration: str, case: int) -> dict[str, str]:
        """A ``field`` configuration's displacement field file of ``case`` (rnr/methods/field.py), as a rule
        input: Snakemake checks it exists, reruns the registration when it changes, and runs ``rnr export``
        first when the pattern names another configuration's export. Empty for every other method."""
        if configuration == layout.INITIAL or self.configuration(configuration).method != "field":
            return {}
        settings = settings_from_mapping(self.configuration(configuration).settings)
        return {"field": str(settings.params.path(int(case)))}  # type: ignore[attr-defined]

    def sweep(self, name: str) -> Sweep:
        return next(s for s in self.sweeps if s.name == name)

    def ablation_outputs(self) -> list[str]:
        """The files of one sweep's folder ``results/<dataset>/ablation/<sweep>/`` (wildcard {sweep}): the table
        in its formats and the figure (rnr ablation)."""
        names = [*(ABLATION.file(fmt) for fmt in ABLATION.formats), layout.ABLATION_FIGURE]
        return [f"{self.results}/{layout.ABLATION_DIR}/{{sweep}}/{name}" for name in names]

    def ablation_files(self) -> list[str]:
        """Every sweep's ablation outputs."""
        return [path.format(sweep=s.name) for s in self.sweeps for path in self.ablation_outputs()]

    def curves_outputs(self) -> list[str]:
        """``results/<dataset>/curves/``: the budget table in its formats, every point, the figure (rnr curves)."""
        names = [*(BUDGET.file(fmt) for fmt in BUDGET.formats), layout.CURVE_POINTS, layout.CURVES_FIGURE]
        return [f"{self.results}/{layout.CURVES_DIR}/{name}" for name in names]

    def largest_seed(self) -> int:
        return max(max(c.seeds) for c in self.configurations)


# ---------------------------------------------------------------------------------------------- building
def make_plan(config: Mapping[str, Any], schema: str | Path) -> Plan:
    """Check the merged ``config`` against the schema file ``schema`` and build the :class:`Plan`.

    ``config`` is not changed (a deep copy is checked and filled with the schema's defaults).
    """
    config = _coerce_command_line(copy.deepcopy(dict(config)))
    _validate(config, schema)

    dataset = DATASETS.get(config["dataset"])
    if dataset is None:
        raise PlanError(f"config: dataset must be one of {', '.join(DATASETS)}; got {config['dataset']!r}")
    keys = {d.source_key for d in DATASETS.values()}
    unknown = [k for k in config if k.endswith("_dir") and k not in keys]
    if unknown:
        raise PlanError(
            f"config: {unknown[0]!r} is no dataset's folder key; expected one of {', '.join(sorted(keys - {None}))}"
        )
    source_dir = _source_dir(config, dataset)
    cases = tuple(int(c) for c in config["cases"])
    for i, case in enumerate(cases):
        try:
            dataset.check_case(case, f"config cases[{i}]")
        except ValueError as exc:
            raise PlanError(str(exc)) from None

    device = "cuda" if config["use_gpu"] else "cpu"
    entries = {name: entry for name, entry in config["configurations"].items() if entry is not False}
    if not entries:
        raise PlanError("config: every configuration is switched off (false); at least one must run")
    try:
        swept, sweeps = expand_sweeps(config["sweeps"], {name: entry or {} for name, entry in entries.items()})
    except SweepError as exc:
        raise PlanError(str(exc)) from None
    configurations = tuple(
        _configuration(name, entry or {}, config["seeds"], device) for name, entry in {**entries, **swept}.items()
    )

    if not dataset.has_intermediate:
        for c in configurations:
            _check_two_phases(c, dataset)
    compare_to = config["compare_to"] or configurations[0].name
    if compare_to not in entries:
        raise PlanError(
            f"config: compare_to {compare_to!r} is not a configuration; expected one of {', '.join(entries)}"
        )
    return Plan(
        dataset=dataset,
        source_dir=source_dir,
        cases=cases,
        configurations=configurations,
        compare_to=compare_to,
        use_gpu=bool(config["use_gpu"]),
        register_threads=int(config["register_threads"]),
        masks_method=config["masks"]["method"],
        masks_weights=config["masks"]["weights"],
        phantom_seed=int(config["phantom"]["seed"]),
        phantom_scale=float(config["phantom"]["scale"]),
        sweeps=sweeps,
    )


def _coerce_command_line(config: dict[str, Any]) -> dict[str, Any]:
    """Read ``--config`` strings as Snakemake users mean them: digit strings in ``cases``/``seeds`` as
    integers, ``true``/``false`` (any letter case) in ``use_gpu`` as booleans."""
    for key in ("cases", "seeds"):
        if isinstance(config.get(key), list):
            config[key] = [int(c) if isinstance(c, str) and c.isdigit() else c for c in config[key]]
    if isinstance(config.get("use_gpu"), str) and config["use_gpu"].lower() in ("true", "false"):
        config["use_gpu"] = config["use_gpu"].lower() == "true"
    return config


def _validate(config: dict[str, Any], schema_path: str | Path) -> None:
    """Check ``config`` against the JSON schema and fill its defaults in place (nested ones included: a
    default is set before the validator descends into it)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    # Named here, not by the schema: with the <dataset>_dir pattern jsonschema's message for a typo
    # ("does not match any of the regexes") would not say which keys exist.
    unknown = [k for k in config if k not in schema["properties"] and not k.endswith("_dir")]
    if unknown:
        raise PlanError(
            f"config: Additional properties are not allowed ({unknown[0]!r} was unexpected); the keys are "
            f"{', '.join(schema['properties'])} and a dataset's folder key <dataset>_dir"
        )
    base = jsonschema.validators.validator_for(schema)
    check_properties = base.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, subschema):  # noqa: ANN001 (jsonschema's signature)
        if isinstance(instance, dict):
            for key, child in properties.items():
                if "default" in child:
                    instance.setdefault(key, copy.deepcopy(child["default"]))
        yield from check_properties(validator, properties, instance, subschema)

    validator = jsonschema.validators.extend(base, {"properties": fill_defaults})(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise PlanError(f"config{where}: {error.message} (schema {Path(schema_path).name})")


def _source_dir(config: Mapping[str, Any], dataset: Dataset) -> str | None:
    """The user's folder of ``dataset`` (its source key), checked to exist; None for a generated dataset."""
    if dataset.source_key is None:
        return None
    folder = config.get(dataset.source_key)
    if not folder:
        example = f"--config dataset={dataset.name} {dataset.source_key}=/data/{dataset.name}"
        raise PlanError(
            f"config: dataset is {dataset.name!r} but {dataset.source_key} is not set; give "
            f"{dataset.source_description}, e.g. {example}"
        )
    if not Path(folder).is_dir():
        raise PlanError(
            f"config: {dataset.source_key} {folder!r} is not a folder (expected {dataset.source_description}; "
            "relative paths start in the working directory)"
        )
    return str(folder)


def _configuration(name: str, entry: Mapping[str, Any], default_seeds: list[int], device: str) -> Configuration:
    """One configuration, checked against its method's settings block before any job runs."""
    where = f"config configurations.{name}"
    if "device" in entry:
        raise PlanError(f"{where}: 'device' is not a configuration setting; use_gpu decides the device")
    if "seed" in entry:
        raise PlanError(f"{where}: 'seed' is set by 'seeds' (a list; one registration per seed)")
    seeds = entry.get("seeds", default_seeds)
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise PlanError(f"{where}: 'seeds' must be a non-empty list of integers >= 0, got {seeds!r}")
    label = entry.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise PlanError(f"{where}: 'label' must be a non-empty text, got {label!r}")
    settings = {**{k: v for k, v in entry.items() if k not in WORKFLOW_KEYS}, "device": device}
    try:
        settings_from_mapping(settings, where=where)
    except SettingsError as exc:
        raise PlanError(str(exc)) from None
    return Configuration(name=name, settings=settings, seeds=tuple(sorted(set(seeds))), label=label)


def _check_two_phases(configuration: Configuration, dataset: Dataset) -> None:
    """PlanError when ``configuration`` asks for the intermediate phases T10..T40 (RNR's ``intermediate``, true by
    default) on a dataset that has only the two extreme phases (COPDgene): the setting would be ignored."""
    params = settings_from_mapping(configuration.settings).params
    if getattr(params, "intermediate", False):
        raise PlanError(
            f"config configurations.{configuration.name}: intermediate is true (the default) but dataset "
            f"{dataset.name!r} has only the phases {' and '.join(dataset.phases)}; set intermediate: false"
        )

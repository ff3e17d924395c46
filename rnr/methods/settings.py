"""Every method's settings block, and building a run's settings from them.

A method's settings block (a frozen dataclass derived from :class:`rnr.config.MethodSettings`, every default in
it, checked by its ``check``) lives here, not in the method's module, so that the workflow's plan can check
every configuration at parse time without loading torch, SimpleITK or the baselines' packages. The method's
module (``rnr/methods/<name>.py``) imports its block from here and says why the defaults are what they are;
:data:`SETTINGS` names each block by the ``method`` setting that selects it (the method table,
:data:`rnr.methods.table.METHODS`, points to the same classes: ``tests/test_methods.py`` checks it).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import (
    LoopSettings,
    MethodSettings,
    Settings,
    SettingsError,
    SharedSettings,
    build,
    check_choice,
    check_positive,
    field_names,
)
from ..fitting.phases import PAIRINGS, steps_per_interval


# ----------------------------------------------------------------------------------------------------- rnr
@dataclass(frozen=True)
class RNRSettings(LoopSettings):
    """RNR's settings; the defaults are the method's (2500 iterations of 10,000 random mask points, Adam
    lr 1e-4 from :class:`~rnr.config.LoopSettings`).

    Attributes:
        intermediate: use T10..T40 in the loss when the case has them.
        pairing: ``seed`` or ``trajectory`` (rnr/fitting/phases.py).
        n_blocks: residual blocks N (one or more per phase interval).
        width: hidden width q of each block.
        shared_weights: one block reused for every step (a stationary velocity field).
        alpha_grad: weight of the gradient (Jacobian) penalty P; 0 switches it off.
        alpha_weight: weight of the weight-matrix penalty S.
    """

    intermediate: bool = True
    pairing: str = "seed"
    n_blocks: int = 5
    width: int = 100
    shared_weights: bool = False
    alpha_grad: float = 1.0
    alpha_weight: float = 1e-4

    def check(self) -> None:
        super().check()
        check_choice("pairing", self.pairing, PAIRINGS)
        check_positive(self, "n_blocks", "width")
        check_positive(self, "alpha_grad", "alpha_weight", strict=False)
        if self.intermediate:  # checked with the settings, so a bad n_blocks stops the plan, not a job
            steps_per_interval(self.n_blocks)


# ---------------------------------------------------------------------------------------------------- idir
@dataclass(frozen=True)
class IDIRSettings(LoopSettings):
    """IDIR's settings with its published defaults: Adam lr 1e-5 (instead of RNR's 1e-4), 2500 iterations
    of 10,000 fresh random points.

    Attributes:
        alpha_bending: weight of the bending energy B (a mean over points): the public code's effective
            10 / 10,000.
        omega0: SIREN frequency factor of every sine layer.
        idir_width: hidden width of the SIREN.
    """

    lr: float = 1e-5
    alpha_bending: float = 1e-3
    omega0: float = 32.0
    idir_width: int = 256

    def check(self) -> None:
        super().check()
        check_positive(self, "omega0", "idir_width")
        check_positive(self, "alpha_bending", strict=False)


# -------------------------------------------------------------------------------------------------- demons
@dataclass(frozen=True)
class DemonsSettings(MethodSettings):
    """The demons settings and their defaults (units in the names; rnr/methods/demons.py gives the reasons).

    Attributes:
        demons_iterations: demons iterations per level, coarse to fine.
        demons_shrink: shrink factor per level for the finest-spaced axis (same length as the iterations).
        demons_sigma: std of the Gaussian smoothing of the displacement field, voxels of the current level.
        demons_max_step: ITK's MaximumUpdateStepLength (caps one iteration's update, about a voxel).
        demons_window_hu: HU window (low, high) clamped and rescaled to [0, 1].
        demons_mask_margin_mm: dilation of the T00 lung mask before masking both images (mm).
        demons_min_level_size: an axis is never shrunk below this many voxels.
    """

    demons_iterations: tuple[int, ...] = (200, 100, 50)
    demons_shrink: tuple[int, ...] = (4, 2, 1)
    demons_sigma: float = 1.5
    demons_max_step: float = 1.0
    demons_window_hu: tuple[float, ...] = (-1000.0, -200.0)
    demons_mask_margin_mm: float = 10.0
    demons_min_level_size: int = 8

    def check(self) -> None:
        # Lists given to the constructor directly become tuples (a frozen dataclass should hash).
        for key in ("demons_iterations", "demons_shrink", "demons_window_hu"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        if not self.demons_shrink or len(self.demons_iterations) != len(self.demons_shrink):
            raise SettingsError(
                "settings 'demons_iterations' and 'demons_shrink' need one entry per resolution level (the same "
                f"non-zero length); got {list(self.demons_iterations)} and {list(self.demons_shrink)}"
            )
        if any(s < 1 for s in self.demons_shrink) or any(i < 0 for i in self.demons_iterations):
            raise SettingsError(
                "setting 'demons_shrink' needs factors >= 1 and 'demons_iterations' counts >= 0; got "
                f"{list(self.demons_shrink)} and {list(self.demons_iterations)}"
            )
        window = self.demons_window_hu
        if len(window) != 2 or not window[0] < window[1]:
            raise SettingsError(f"setting 'demons_window_hu' must be [low, high] with low < high, got {list(window)}")
        check_positive(self, "demons_sigma", "demons_mask_margin_mm", strict=False)
        check_positive(self, "demons_max_step", "demons_min_level_size")


# ------------------------------------------------------------------------------------------------ identity
@dataclass(frozen=True)
class IdentitySettings(MethodSettings):
    """No settings of its own (only the shared method, seed and device)."""


# --------------------------------------------------------------------------------------------------- field
#: The file formats ``format`` names: ITK's displacement field (mm, world axes) or Learn2Reg's (voxels).
FORMATS = ("itk", "l2r")


#: The placeholder a ``fields`` pattern must contain.
CASE_PLACEHOLDER = "{case}"


#: ... or this one, replaced by the case number in four digits (Learn2Reg's ``disp_0001_0001.nii.gz``).
CASE_PLACEHOLDER_04 = "{case:04d}"


@dataclass(frozen=True)
class FieldSettings(MethodSettings):
    """The field method's one setting.

    Attributes:
        fields: path pattern of the displacement field files, with ``{case}`` for the case number (e.g.
            ``exports/rnr/case{case}/field.nii.gz``; ``{case:04d}`` gives four digits, as in Learn2Reg's
            ``l2r/disp_{case:04d}_{case:04d}.nii.gz``); relative paths start in the working directory.
        format: ``itk`` (rnr/methods/field.py: mm along the world axes, ``rnr export``'s ``field.nii.gz``) or
            ``l2r`` (Learn2Reg's ``disp_*.nii.gz``: voxels along the array axes, rnr/data/l2r.py).
    """

    fields: str = "fields/case{case}/field.nii.gz"
    format: str = "itk"

    def check(self) -> None:
        if self.format not in FORMATS:
            raise SettingsError(f"setting 'format' must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if CASE_PLACEHOLDER not in self.fields and CASE_PLACEHOLDER_04 not in self.fields:
            raise SettingsError(
                f"setting 'fields' must be a path pattern containing {CASE_PLACEHOLDER} (replaced by the case "
                f"number) or {CASE_PLACEHOLDER_04} (four digits, as Learn2Reg names cases), got {self.fields!r}"
            )

    def path(self, case: int) -> Path:
        """The field file of ``case`` (only ``{case}`` and ``{case:04d}`` are replaced; other braces stay)."""
        text = self.fields.replace(CASE_PLACEHOLDER_04, f"{int(case):04d}")
        return Path(text.replace(CASE_PLACEHOLDER, str(int(case))))


# ------------------------------------------------------------------------------------------------- elastix
#: elastix metrics a configuration may choose (all accept a fixed mask and the bending-energy penalty).
METRICS = ("AdvancedNormalizedCorrelation", "AdvancedMattesMutualInformation", "AdvancedMeanSquares")


#: elastix image samplers a configuration may choose.
SAMPLERS = ("RandomCoordinate", "Random", "Full")


@dataclass(frozen=True)
class ElastixSettings(MethodSettings):
    """The elastix settings and their defaults (rnr/methods/elastix.py says where they come from).

    Attributes:
        elastix_grid_spacing_mm: final B-spline control-point spacing (mm, all axes).
        elastix_grid_schedule: per resolution, coarse to fine, the multiple of the final grid spacing.
        elastix_pyramid: per resolution, the image pyramid's shrink factor (all axes).
        elastix_iterations: optimiser iterations per resolution.
        elastix_metric: the similarity metric (one of :data:`METRICS`).
        elastix_bending_weight: relative weight of the bending-energy penalty (0: no penalty).
        elastix_sampler: the image sampler (one of :data:`SAMPLERS`).
        elastix_samples: spatial samples per iteration (ignored by the ``Full`` sampler).
    """

    elastix_grid_spacing_mm: float = 5.0
    elastix_grid_schedule: tuple[float, ...] = (16.0, 8.0, 4.0, 2.0, 1.0)
    elastix_pyramid: tuple[int, ...] = (4, 3, 2, 1, 1)
    elastix_iterations: int = 500
    elastix_metric: str = "AdvancedNormalizedCorrelation"
    elastix_bending_weight: float = 0.05
    elastix_sampler: str = "RandomCoordinate"
    elastix_samples: int = 2000

    def check(self) -> None:
        for key in ("elastix_grid_schedule", "elastix_pyramid"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        if not self.elastix_pyramid or len(self.elastix_grid_schedule) != len(self.elastix_pyramid):
            raise SettingsError(
                "settings 'elastix_grid_schedule' and 'elastix_pyramid' need one entry per resolution (the same "
                f"non-zero length); got {list(self.elastix_grid_schedule)} and {list(self.elastix_pyramid)}"
            )
        if any(f < 1 for f in self.elastix_pyramid) or any(g <= 0 for g in self.elastix_grid_schedule):
            raise SettingsError(
                "setting 'elastix_pyramid' needs factors >= 1 and 'elastix_grid_schedule' multiples > 0; got "
                f"{list(self.elastix_pyramid)} and {list(self.elastix_grid_schedule)}"
            )
        check_choice("elastix_metric", self.elastix_metric, METRICS)
        check_choice("elastix_sampler", self.elastix_sampler, SAMPLERS)
        check_positive(self, "elastix_grid_spacing_mm", "elastix_iterations", "elastix_samples")
        check_positive(self, "elastix_bending_weight", strict=False)


# ---------------------------------------------------------------------------------------------------- ants
@dataclass(frozen=True)
class AntsSettings(MethodSettings):
    """The ANTs settings and their defaults (rnr/methods/ants.py gives the reasons).

    Attributes:
        ants_iterations: SyN iterations per resolution, coarse to fine; n entries run at shrink factors
            2^(n-1), ..., 2, 1 with Gaussian smoothing n-1, ..., 1, 0 voxels (antspyx's rule); a last 0 skips
            the full resolution (its field is the upsampled field of the level before).
        ants_cc_radius: neighbourhood radius of the CC metric (voxels).
        ants_grad_step: SyN gradient step.
        ants_flow_sigma: Gaussian smoothing of the update field (voxels).
        ants_total_sigma: Gaussian smoothing of the total field (voxels; 0 = none).
    """

    ants_iterations: tuple[int, ...] = (100, 70, 50, 0)
    ants_cc_radius: int = 2
    ants_grad_step: float = 0.2
    ants_flow_sigma: float = 3.0
    ants_total_sigma: float = 0.0

    def check(self) -> None:
        object.__setattr__(self, "ants_iterations", tuple(self.ants_iterations))
        if not self.ants_iterations or any(i < 0 for i in self.ants_iterations):
            raise SettingsError(
                "setting 'ants_iterations' needs one count >= 0 per resolution (at least one); got "
                f"{list(self.ants_iterations)}"
            )
        check_positive(self, "ants_cc_radius", "ants_grad_step")
        check_positive(self, "ants_flow_sigma", "ants_total_sigma", strict=False)


# ------------------------------------------------------------------------------------------------- command
#: The placeholders a command template may use (rnr/methods/command.py).
PLACEHOLDERS = ("fixed", "moving", "fixed_mask", "field", "threads", "case", "seed")


@dataclass(frozen=True)
class CommandSettings(MethodSettings):
    """The command method's settings.

    Attributes:
        command: the command template (shell syntax) with the placeholders of :data:`PLACEHOLDERS`; it must
            use ``{field}``. Empty by default: a configuration of this method has to give it.
        command_timeout_s: stop the command after this many seconds (0: no limit).
    """

    command: str = ""
    command_timeout_s: float = 0.0

    def check(self) -> None:
        if self.command:
            names = placeholders(self.command)
            unknown = sorted(set(names) - set(PLACEHOLDERS))
            if unknown:
                raise SettingsError(
                    f"setting 'command' may use the placeholders {', '.join('{' + p + '}' for p in PLACEHOLDERS)}; "
                    f"found {', '.join('{' + u + '}' for u in unknown)} in {self.command!r}"
                )
            if "field" not in names:
                raise SettingsError(
                    f"setting 'command' must contain {{field}} (where the tool writes its displacement field); "
                    f"got {self.command!r}"
                )
        check_positive(self, "command_timeout_s", strict=False)


def placeholders(template: str) -> list[str]:
    """The placeholder names of a command template; a SettingsError for a template that is not one
    (an unpaired brace, a format spec)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise SettingsError(
            f"setting 'command' is not a valid template ({exc}; write a literal brace as {{{{ or }}}}): {template!r}"
        ) from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion:
            raise SettingsError(f"setting 'command': write placeholders plainly as {{{name}}}; got {template!r}")
        names.append(name)
    return names


#: ``method`` setting -> its settings block (the same classes as the method table's ``settings``).
SETTINGS: dict[str, type[MethodSettings]] = {
    "rnr": RNRSettings,
    "idir": IDIRSettings,
    "demons": DemonsSettings,
    "identity": IdentitySettings,
    "field": FieldSettings,
    "elastix": ElastixSettings,
    "ants": AntsSettings,
    "command": CommandSettings,
}


# ----------------------------------------------------------------------------------------- a run's settings
def settings_from_mapping(mapping: Mapping[str, Any] | None, *, where: str = "settings") -> Settings[Any]:
    """A run's settings from a flat mapping of overrides (``{method: idir, lr: 1e-4}``): the shared block and
    the block of the named method, every value checked (rnr.config.build); ``where`` names the source in
    error messages. Unknown keys and keys of another method are :class:`~rnr.config.SettingsError`."""
    values = dict(mapping or {})
    method = values.get("method", SharedSettings.method)
    if method not in SETTINGS:
        raise SettingsError(f"{where}: setting 'method' must be one of {', '.join(SETTINGS)}; got {method!r}")
    block_cls = SETTINGS[method]
    shared_keys = field_names(SharedSettings)
    own_keys = field_names(block_cls)
    unknown = [k for k in values if k not in shared_keys and k not in own_keys]
    if unknown:
        raise SettingsError(f"{where}: " + _foreign_key_message(unknown, method, shared_keys + own_keys))
    shared = build(SharedSettings, {k: v for k, v in values.items() if k in shared_keys}, where)
    params = build(block_cls, {k: v for k, v in values.items() if k in own_keys}, where)
    return Settings(shared, params)


def settings_for_method(method: str, **overrides: Any) -> Settings[Any]:
    """The defaults of ``method``, then ``overrides``."""
    return settings_from_mapping({"method": method, **overrides}, where=f"settings for method {method!r}")


def settings_from_file(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Settings[Any]:
    """Read a YAML or JSON mapping of overrides from ``path``, then apply ``overrides`` on top."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: cannot read settings ({exc})") from None
    if not isinstance(data, Mapping):
        raise SettingsError(f"{path}: expected a mapping of setting -> value, found {type(data).__name__}")
    return settings_from_mapping({**data, **dict(overrides or {})}, where=str(path))


def replace_settings(settings: Settings[Any], **changes: Any) -> Settings[Any]:
    """A copy of ``settings`` with some keys (shared or the method's) changed; the method cannot change."""
    if "method" in changes and changes["method"] != settings.method:
        raise SettingsError("replace_settings keeps the method; build new settings with settings_for_method")
    return settings_from_mapping({**settings.to_dict(), **changes}, where="replace_settings()")


def _foreign_key_message(keys: list[str], method: str, valid: list[str]) -> str:
    """Name, for each unknown key, the method(s) it belongs to, or say it belongs to none."""
    parts = []
    for key in keys:
        owners = [name for name, block in SETTINGS.items() if key in field_names(block)]
        if owners:
            parts.append(f"setting {key!r} belongs to method {'/'.join(owners)}, not {method}")
        else:
            parts.append(f"unknown setting {key!r}")
    return "; ".join(parts) + f"; valid settings for method {method} are: {', '.join(valid)}"

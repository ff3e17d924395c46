"""A toy registration method, written the way rnr/README.md's "Adding a method" says, to prove that one
module plus one table entry is all a new method needs: a constant shift of every point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from rnr.config import MethodSettings, SettingsError
from rnr.fitting.transform import Transform
from rnr.methods.base import FitContext, Method, MethodOutcome


@dataclass(frozen=True)
class ShiftSettings(MethodSettings):
    """shift_vox: the (x, y, z) shift in voxels that every T00 point gets."""

    shift_vox: tuple[float, ...] = (0.0, 0.0, -1.0)

    def check(self) -> None:
        object.__setattr__(self, "shift_vox", tuple(self.shift_vox))
        if len(self.shift_vox) != 3:
            raise SettingsError(f"setting 'shift_vox' needs 3 values (x, y, z), got {list(self.shift_vox)}")


class ShiftTransform(Transform):
    """phi(x) = x + shift, stored in voxels, applied in normalised units."""

    kind = "toy-shift"

    def __init__(self, size_xyz: Sequence[int], spacing_xyz: Sequence[float], shift_vox: Sequence[float] = (0, 0, 0)):
        super().__init__(size_xyz, spacing_xyz)
        self.shift_vox = tuple(float(s) for s in shift_vox)

    def map_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        scale = torch.tensor([2.0 / (n - 1) for n in self.size_xyz], dtype=u.dtype, device=u.device)
        return u + torch.tensor(self.shift_vox, dtype=u.dtype, device=u.device) * scale

    def state(self) -> dict[str, Any]:
        return {"shift_vox": list(self.shift_vox)}

    @classmethod
    def from_state(cls, state, size_xyz, spacing_xyz, device):  # noqa: D102
        return cls(size_xyz, spacing_xyz, state["shift_vox"]).to(device)


def fit(ctx: FitContext) -> MethodOutcome:
    params: ShiftSettings = ctx.settings.params  # type: ignore[assignment]
    return MethodOutcome(
        transform=ShiftTransform(ctx.case.size_xyz, ctx.case.spacing_xyz, params.shift_vox),
        log=pd.DataFrame({"iteration": [1], "loss": [0.0], "elapsed_s": [0.0]}),
        wall_s=0.0,
        iterations=1,
        batch_size=None,
        n_points=int(np.count_nonzero(ctx.mask)),
        compared_terms=["T50_phi1_vs_T00"],
    )


METHOD = Method(
    name="toy",
    settings=ShiftSettings,
    fit=fit,
    transforms=(ShiftTransform,),
    summary="a constant shift (tests only)",
)

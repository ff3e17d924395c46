"""Fitted maps: apply to points, dense displacements and Jacobian determinants, in chunks.

A :class:`Transform` is the map phi of rnr/methods/README.md: it takes T00 points to T50 positions (the reference
code's semantics: T50 is the warped image, sampled at phi(x) for x on the T00 grid). It works internally in
normalised coordinates (coords.py) and exposes voxel (0-based, (x, y, z)) and mm front ends. Maps with
intermediate steps (RNR's phi_1..phi_N) expose them through ``step``.

Every registration method (RNR, IDIR, demons, the identity) provides a Transform, so TRE and folding are
computed by one code path (metrics.py) whatever produced the map.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from .. import coords
from ..io import InputError, save_torch
from ..runtime import package_versions

DEFAULT_CHUNK = 65536


class Transform(ABC):
    """A map from T00 normalised coordinates to T50 normalised coordinates on a fixed image geometry.

    Attributes:
        size_xyz: image size (nx, ny, nz) in voxels, the grid the normalisation refers to.
        spacing_xyz: voxel spacing (sx, sy, sz) in mm.
        n_steps: number of intermediate maps phi_1..phi_n_steps (phi_n_steps is the full map); 1 for maps
            without intermediate steps.
    """

    kind: ClassVar[str] = ""
    n_steps: int = 1

    def __init__(self, size_xyz: Sequence[int], spacing_xyz: Sequence[float]):
        self.size_xyz = tuple(int(s) for s in size_xyz)
        self.spacing_xyz = tuple(float(s) for s in spacing_xyz)
        self.device = torch.device("cpu")

    # -- what a subclass provides -----------------------------------------------------------------
    @abstractmethod
    def map_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """phi_step(u): (M, 3) normalised points -> (M, 3) normalised points; ``step=None`` is the full map.

        Must be differentiable with respect to ``u`` (autograd) for the default Jacobian.
        """

    def state(self) -> dict[str, Any]:
        """Everything beyond geometry needed to rebuild the map (tensors on CPU)."""
        return {}

    @classmethod
    def from_state(
        cls, state: dict[str, Any], size_xyz: Sequence[int], spacing_xyz: Sequence[float], device: torch.device
    ) -> Transform:
        obj = cls(size_xyz, spacing_xyz)  # type: ignore[call-arg]
        return obj.to(device)

    def to(self, device: torch.device | str) -> Transform:
        self.device = torch.device(device)
        return self

    # -- Jacobians ------------------------------------------------------------------------------------
    def jacobian_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """Jacobian d phi / d u at points u: (M, 3) -> (M, 3, 3), J[m, i, j] = d phi_i / d u_j.

        Default: three autograd passes (rows of J); subclasses may override with a closed form.
        """
        u = u.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = self.map_normalised(u, step)
            rows = [torch.autograd.grad(out[:, i].sum(), u, retain_graph=i < 2)[0] for i in range(3)]
        return torch.stack(rows, dim=1).detach()

    # -- chunked front ends -------------------------------------------------------------------------
    def _chunked(self, points: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor], chunk: int) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        outs = []
        for start in range(0, len(points), chunk):
            u = torch.as_tensor(points[start : start + chunk], dtype=torch.float32, device=self.device)
            outs.append(fn(u).detach().to("cpu", torch.float64).numpy())
        if not outs:
            return np.zeros((0,) + fn(torch.zeros((1, 3), device=self.device)).shape[1:], dtype=np.float64)
        return np.concatenate(outs, axis=0)

    def apply_voxels(self, points: np.ndarray, step: int | None = None, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
        """Map 0-based (x, y, z) voxel points (M, 3) of T00 to their T50 voxel positions (M, 3), float64."""

        def fn(p: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                out = self.map_normalised(coords.voxel_to_normalised(p, self.size_xyz), step)
            return coords.normalised_to_voxel(out, self.size_xyz)

        return self._chunked(points, fn, chunk)

    def apply_mm(self, points_mm: np.ndarray, step: int | None = None, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
        """Map points in mm (M, 3) (origin at voxel 0, coords.py) to mm (M, 3)."""
        vox = coords.mm_to_voxel(np.asarray(points_mm, dtype=np.float64), self.spacing_xyz)
        return coords.voxel_to_mm(self.apply_voxels(vox, step, chunk), self.spacing_xyz)

    def jacobian_det_voxels(
        self, points: np.ndarray, step: int | None = None, chunk: int = DEFAULT_CHUNK
    ) -> np.ndarray:
        """det of the Jacobian of phi at 0-based voxel points (M, 3) -> (M,), float64.

        phi maps a grid onto the same grid, so the diagonal unit scalings cancel: the determinant is the same
        in normalised, voxel and mm coordinates.
        """

        def fn(p: torch.Tensor) -> torch.Tensor:
            jac = self.jacobian_normalised(coords.voxel_to_normalised(p, self.size_xyz), step)
            return torch.linalg.det(jac.double())

        return self._chunked(points, fn, chunk)

    def map_steps_and_detj(self, points_vox: np.ndarray, chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
        """Every step's mapped points and det J at 0-based voxel points, as one call.

        Args:
            points_vox: (M, 3) T00 points, 0-based voxel (x, y, z).
            chunk: points per call of the underlying map (bounds the memory of one call).
        Returns:
            mapped: (S, M, 3) float64 voxel positions, mapped[n-1] = phi_n(points) for n = 1..S, S = n_steps
                (mapped[-1] is the full map; S = 1 for maps without intermediate steps).
            detj: (S, M) float64, detj[n-1] = det of the Jacobian of phi_n at the points (unitless: the same
                in normalised, voxel and mm coordinates, see :meth:`jacobian_det_voxels`).

        This default evaluates step by step through :meth:`apply_voxels` and :meth:`jacobian_det_voxels`;
        maps that can do better (RNR: one chained pass, the identity: closed form) override it.
        """
        points = np.asarray(points_vox, dtype=np.float64).reshape(-1, 3)
        steps: list[int | None] = [None] if self.n_steps == 1 else list(range(1, self.n_steps + 1))
        mapped = np.stack([self.apply_voxels(points, step, chunk) for step in steps])
        detj = np.stack([self.jacobian_det_voxels(points, step, chunk) for step in steps])
        return mapped, detj

    def displacement_field(self, step: int | None = None, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
        """Dense displacement on the whole T00 grid in voxels: array (nz, ny, nx, 3) of (dx, dy, dz), float32."""
        nx, ny, nz = self.size_xyz
        out = np.empty((nz * ny * nx, 3), dtype=np.float32)
        grid = coords.voxel_grid(self.size_xyz)
        for start in range(0, len(grid), chunk):
            part = grid[start : start + chunk]
            out[start : start + chunk] = self.apply_voxels(part, step, chunk) - part
        return out.reshape(nz, ny, nx, 3)

    # -- checkpoints ----------------------------------------------------------------------------------
    def save(self, path: str | Path, **metadata: Any) -> None:
        """Write a self-describing checkpoint: kind, geometry, state, versions and any metadata given
        (settings, seed, case, ...)."""
        payload = {
            "format": "rnr-transform/1",
            "kind": self.kind,
            "size_xyz": list(self.size_xyz),
            "spacing_xyz": list(self.spacing_xyz),
            "state": self.state(),
            "versions": package_versions(),
            "metadata": metadata,
        }
        save_torch(path, payload)


class IdentityTransform(Transform):
    """phi(u) = u: the 'initial' configuration (no registration)."""

    kind = "identity"

    def map_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        return u.clone() if not u.requires_grad else u * 1.0

    def jacobian_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The identity matrix at every point (closed form, no autograd): (M, 3) -> (M, 3, 3)."""
        return torch.eye(3, dtype=u.dtype, device=u.device).expand(u.shape[0], 3, 3).clone()

    def map_steps_and_detj(self, points_vox: np.ndarray, chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
        """Closed form: the points themselves (1, M, 3) and det J = 1 exactly (1, M), both float64."""
        points = np.asarray(points_vox, dtype=np.float64).reshape(-1, 3)
        return points[None].copy(), np.ones((1, len(points)), dtype=np.float64)


class AffineTransform(Transform):
    """phi(u) = A u + t in normalised coordinates (tests and analytic checks). A: (3, 3), t: (3,)."""

    kind = "affine"

    def __init__(
        self,
        size_xyz: Sequence[int],
        spacing_xyz: Sequence[float],
        matrix: np.ndarray | None = None,
        offset: np.ndarray | None = None,
    ):
        super().__init__(size_xyz, spacing_xyz)
        self.matrix = torch.as_tensor(np.eye(3) if matrix is None else matrix, dtype=torch.float32)
        self.offset = torch.as_tensor(np.zeros(3) if offset is None else offset, dtype=torch.float32)

    def map_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        return u @ self.matrix.to(u.device).T + self.offset.to(u.device)

    def state(self) -> dict[str, Any]:
        return {"matrix": self.matrix.cpu(), "offset": self.offset.cpu()}

    @classmethod
    def from_state(cls, state, size_xyz, spacing_xyz, device):  # noqa: D102
        return cls(size_xyz, spacing_xyz, state["matrix"].numpy(), state["offset"].numpy()).to(device)


class FieldTransform(Transform):
    """phi(x) = x + d(x) with d a dense displacement field on the T00 grid, trilinearly interpolated.

    The field is kept as a tensor (1, 3, nz, ny, nx) of displacements in *normalised* units with channels
    (dx, dy, dz); between voxel centres it is interpolated trilinearly, outside the volume it is clamped to
    the border value (grid_sample, align_corners=True, padding "border"), the same sampling as images.

    The Jacobian (:meth:`jacobian_normalised`) is computed by central finite differences of the
    interpolated field with a step of one voxel on each axis (one-sided at the volume border). At voxel
    centres this is exactly ``numpy.gradient`` of the dense field, the usual discrete Jacobian of a
    displacement field; autograd through the trilinear interpolation would instead give a one-sided
    difference whose side depends on float rounding at voxel centres.
    """

    kind = "demons"

    def __init__(
        self,
        size_xyz: Sequence[int],
        spacing_xyz: Sequence[float],
        displacement_vox: np.ndarray | torch.Tensor | None = None,
    ):
        """``displacement_vox``: (nz, ny, nx, 3) displacement in voxels, columns (dx, dy, dz); None = zero."""
        super().__init__(size_xyz, spacing_xyz)
        shape = coords.size_xyz_to_shape_zyx(self.size_xyz)
        if displacement_vox is None:
            displacement_vox = np.zeros(shape + (3,), dtype=np.float32)
        disp = torch.as_tensor(np.asarray(displacement_vox, dtype=np.float32))
        if tuple(disp.shape) != shape + (3,):
            raise ValueError(
                f"displacement field must have shape (nz, ny, nx, 3) = {shape + (3,)}, got {tuple(disp.shape)}"
            )
        half = torch.tensor([(n - 1) / 2.0 for n in self.size_xyz], dtype=torch.float32)
        self.field = (disp / half).permute(3, 0, 1, 2).unsqueeze(0).contiguous()

    def to(self, device: torch.device | str) -> FieldTransform:
        super().to(device)
        self.field = self.field.to(self.device)
        return self

    def displacement_normalised(self, u: torch.Tensor) -> torch.Tensor:
        """d(u): (M, 3) normalised points -> (M, 3) normalised displacements (trilinear, border-clamped)."""
        grid = u.to(self.field.dtype).reshape(1, 1, 1, -1, 3)
        out = F.grid_sample(self.field, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out.reshape(3, -1).T.to(u.dtype)

    def map_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        return u + self.displacement_normalised(u)

    def jacobian_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """(M, 3) -> (M, 3, 3): I + central differences of d, one-voxel step (see the class docstring)."""
        u = u.detach()
        h = torch.tensor([2.0 / (n - 1) for n in self.size_xyz], dtype=u.dtype, device=u.device)
        cols = []
        for j in range(3):
            plus, minus = u.clone(), u.clone()
            plus[:, j] = (u[:, j] + h[j]).clamp(-1.0, 1.0)
            minus[:, j] = (u[:, j] - h[j]).clamp(-1.0, 1.0)
            # Divide by the distance actually spanned: a one-sided difference at the volume border.
            span = (plus[:, j] - minus[:, j]).clamp_min(1e-12)
            diff = self.displacement_normalised(plus) - self.displacement_normalised(minus)
            cols.append(diff / span[:, None])
        grad = torch.stack(cols, dim=2)  # grad[m, i, j] = d d_i / d u_j
        return torch.eye(3, dtype=u.dtype, device=u.device) + grad

    def displacement_voxels(self) -> np.ndarray:
        """The stored field as (nz, ny, nx, 3) voxel displacements (dx, dy, dz), float32."""
        half = torch.tensor([(n - 1) / 2.0 for n in self.size_xyz], dtype=torch.float32)
        return (self.field[0].detach().cpu().permute(1, 2, 3, 0) * half).numpy()

    def state(self) -> dict[str, Any]:
        return {"displacement_vox": torch.from_numpy(self.displacement_voxels())}

    @classmethod
    def from_state(cls, state, size_xyz, spacing_xyz, device):  # noqa: D102
        return cls(size_xyz, spacing_xyz, state["displacement_vox"].numpy()).to(device)


def read_checkpoint(
    path: str | Path, kinds: Mapping[str, type[Transform]], device: str | torch.device = "cpu"
) -> tuple[Transform, dict[str, Any]]:
    """Load a checkpoint written by :meth:`Transform.save` onto ``device``, its class picked by its ``kind`` from
    ``kinds``; return (transform, metadata). The method table passes every kind it knows
    (:func:`rnr.methods.table.load_transform`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise InputError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != "rnr-transform/1":
        raise InputError(f"{path}: expected an rnr-transform/1 checkpoint written by 'rnr register'")
    cls = kinds.get(payload["kind"])
    if cls is None:
        raise InputError(f"{path}: unknown transform kind {payload['kind']!r}; known: {sorted(kinds)}")
    transform = cls.from_state(payload["state"], payload["size_xyz"], payload["spacing_xyz"], torch.device(device))
    return transform, payload.get("metadata", {})

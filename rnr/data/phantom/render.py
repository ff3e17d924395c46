"""Rendering the phantom's phases: every phase, T00 included, is acquired from the anatomy by one renderer.

Why (each step argued from how a 4DCT scanner sees breathing lungs):

1. **The anatomy is continuous.** Its shapes are implicit functions and capsules in millimetres
   (anatomy.py). They are rasterised once, in T00 space, on a fine grid (:func:`rasterise_anatomy`) that is
   :data:`FINE` times finer than the acquisition grid along each axis (about 1 mm in-plane, 1.2 mm along z at
   scale 1), with partial-volume edges. The factors are not integers, so the points a phase samples never sit
   on the raster's nodes in a fixed pattern, at T00 no more than at any other phase. No phase is made from
   another phase's voxels; the methods under test interpolate the coarse acquisition grid, not this one.
2. **Each phase voxel is an average over its own volume** (:func:`render_phase`). The voxel is sampled at
   :data:`SUPERSAMPLE` points: a 2 x 2 grid in-plane (partial volume) and 3 points across the slice, a
   box as wide as the slice thickness (the slice sensitivity profile, a z blur of slice-thickness width).
   Each sample point ``y`` shows the T00 anatomy at its backward-mapped position ``b(y)``, lung or body
   compartment as :class:`~rnr.data.phantom.motion.Motion` defines them. A reconstruction kernel then blurs
   in-plane (Gaussian, :data:`PSF_SIGMA_VOXELS`).
3. **Lung density follows the motion (mass preservation).** Lung tissue and the air in it do not leave the
   lungs between phases; when a region's volume shrinks by the factor ``1 / det(grad b)``, the same tissue
   fills it, so its density, i.e. ``HU + 1000`` (HU is linear in the attenuation, -1000 for air), rises by
   ``det(grad b)``: ``HU_phase(y) + 1000 = (HU_T00(b(y)) + 1000) * det(grad b)(y)``. At exhale the lungs
   compress (det > 1), most at the bases. Tissue and blood are incompressible (compression only expels
   air), so the lung part of a voxel gets no denser than air-free tissue (:data:`TISSUE_DENSITY`); only
   voxels that are nearly all vessel reach that cap, and lung mass is conserved to within a few per cent
   (truth/summary.csv states it per case). ``det(grad b)`` is computed by central finite differences of the
   analytic backward map in mm (step :data:`JACOBIAN_STEP_MM`), at the voxel centre (the map is smooth on
   the scale of a voxel). The body compartment (soft tissue, bone) is incompressible and keeps its HU.
4. **Sub-resolution parenchyma detail is only partly shared between phases.** Alveoli and small airways
   are far below the voxel; breathing changes which of them a voxel averages. So the lung texture has a
   part that moves with the tissue (rasterised in T00 space) and a part drawn anew per phase on the
   acquisition grid (:data:`PHASE_TEXTURE_HU`).
5. **Noise**: Gaussian, independent per phase, correlated in-plane as filtered back-projection makes it
   (Gaussian filter of :data:`NOISE_CORRELATION_VOXELS`, rescaled to std ``noise_hu``). The writer then
   stores whole HU with the scanner's floor of -1024 HU (raw 0), which clips the lower tail in air.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ... import coords
from .anatomy import Anatomy, Segment, airways, bones
from .motion import Motion

#: Fine raster of the T00 anatomy: this many raster steps per acquisition voxel along (x, y, z); not integers.
FINE = (2.3, 2.3, 4.6)
#: Sample points per acquisition voxel along (x, y, z): 2 x 2 in-plane, 3 across the slice.
SUPERSAMPLE = (2, 2, 3)
#: In-plane reconstruction blur (Gaussian sigma, acquisition voxels); along z the slice profile blurs.
PSF_SIGMA_VOXELS = 0.5
#: In-plane correlation of the noise (Gaussian sigma, acquisition voxels) before rescaling to ``noise_hu``.
NOISE_CORRELATION_VOXELS = 0.6
#: Step (mm) of the central differences that give det(grad b).
JACOBIAN_STEP_MM = 0.5
#: Shared lung texture (std HU and Gaussian correlation length in mm, in the T00 raster).
SHARED_TEXTURE_HU, SHARED_TEXTURE_MM = 20.0, 2.0
#: Per-phase lung texture (std HU on the acquisition grid, Gaussian sigma 0.6 voxel): what breathing reshuffles.
PHASE_TEXTURE_HU = 8.0
#: Density (HU + 1000) of air-free lung tissue and blood (+60 HU): what compression can reach at most.
TISSUE_DENSITY = 1060.0
#: HU of the parenchyma at T00 (end-inhale), before texture, vessels and the gravity gradient.
PARENCHYMA_HU = -870.0


def axes_mm(lo: Sequence[int], hi: Sequence[int], spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Millimetre coordinates of voxel index ranges ``lo..hi`` (inclusive, (x, y, z)), shaped to broadcast
    over a (z, y, x) block: x (1, 1, nx), y (1, ny, 1), z (nz, 1, 1)."""
    out = []
    for axis in range(3):
        points = np.zeros((int(hi[axis]) - int(lo[axis]) + 1, 3))
        points[:, axis] = np.arange(int(lo[axis]), int(hi[axis]) + 1)
        out.append(coords.voxel_to_mm(points, spacing)[:, axis])
    return out[0][None, None, :], out[1][None, :, None], out[2][:, None, None]


def render_capsules(
    shape_zyx: tuple[int, int, int],
    spacing: np.ndarray,
    capsules: Iterable[tuple[np.ndarray, np.ndarray, float]],
    width: float,
) -> np.ndarray:
    """Partial-volume occupancy (z, y, x) in [0, 1] of capsules (a, b, radius) in mm; edge ramp ``width``.

    A capsule thinner than a voxel (radius < width / 2) is drawn half a voxel wide with its contrast
    scaled by its cross-section, ``(2 r / width) ** 2``, as a coarse scanner would average it.
    """
    out = np.zeros(shape_zyx, dtype=np.float32)
    size = np.asarray(shape_zyx[::-1])
    for a, b, radius in capsules:
        r = max(radius, 0.5 * width)
        amplitude = (radius / r) ** 2
        pad = r + width
        box = coords.mm_to_voxel(np.stack([np.minimum(a, b) - pad, np.maximum(a, b) + pad]), spacing)
        if (box[1] < 0).any() or (box[0] > size - 1).any():
            continue  # entirely outside the volume
        lo = np.clip(np.floor(box[0]).astype(int), 0, size - 1)
        hi = np.clip(np.ceil(box[1]).astype(int), 0, size - 1)
        x, y, z = axes_mm(lo, hi, spacing)
        px, py, pz = x - a[0], y - a[1], z - a[2]
        ab = b - a
        t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
        d = np.sqrt((px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2 + (pz - t * ab[2]) ** 2)
        frac = (amplitude * np.clip(0.5 + (r - d) / width, 0.0, 1.0)).astype(np.float32)
        view = out[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1]
        np.maximum(view, frac, out=view)
    return out


@dataclass(frozen=True)
class AnatomyRaster:
    """The T00 anatomy on the fine raster (grid point i at ``i * spacing`` mm, like the acquisition grid).

    ``density``: HU + 1000 (z, y, x) float32 of the T00 anatomy with lungs, noise-free and unblurred;
    ``no_lung``: the same with soft tissue in place of the lungs (what fills room the lungs slide away from
    where the body does not follow). ``spacing``: (3,) mm (x, y, z).
    """

    density: np.ndarray
    no_lung: np.ndarray
    spacing: np.ndarray

    def sample(self, image: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Trilinear samples of ``image`` (``density`` or ``no_lung``) at points (mm), edge values outside."""
        rows = np.stack([z / self.spacing[2], y / self.spacing[1], x / self.spacing[0]])
        return ndimage.map_coordinates(image, rows, order=1, mode="nearest")


def rasterise_anatomy(
    anat: Anatomy, segments: list[Segment], acquisition_spacing: np.ndarray, rng: np.random.Generator
) -> AnatomyRaster:
    """Rasterise the T00 anatomy (HU: air -1000, fat -90, soft tissue 35 with a faint texture, bone, lungs
    about -870 denser posteriorly with a texture, vessels +40, airways) on the fine raster of an acquisition
    grid of ``acquisition_spacing`` (x, y, z) mm. Partial-volume edges from :func:`render_capsules` and the
    raster's own resolution; no blur (the acquisition adds it)."""
    ex, ey, ez = anat.extent
    spacing = np.asarray(acquisition_spacing, dtype=np.float64) / np.asarray(FINE)
    size = np.floor(np.asarray(anat.extent) / spacing).astype(int) + 1
    shape = coords.size_xyz_to_shape_zyx(tuple(int(v) for v in size))
    x, y, z = axes_mm((0, 0, 0), size - 1, spacing)
    width = float(spacing.min())

    rb = anat.body_radius(x, y) + 0 * z
    vol = np.full(shape, -1000.0, dtype=np.float32)
    vol[rb < 1.0] = -90.0  # subcutaneous fat rim
    soft = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), 5.0 / spacing[::-1])
    soft *= 8.0 / max(float(soft.std()), 1e-6)
    inner = rb < 0.92
    vol[inner] = 35.0 + soft[inner]
    del soft, inner

    # Spine: vertebral bodies (cortical rim, cancellous core) with discs; ribs, arches and sternum.
    spx, spy = anat.spine_centre()
    rs = np.sqrt((x - spx) ** 2 + (y - spy) ** 2) + 0 * z
    disc = (np.mod(z, anat.VERTEBRA_PERIOD_MM) < 6.0) & np.ones_like(rs, dtype=bool)
    vertebra = rs < 16.0
    vol[vertebra] = 300.0
    vol[vertebra & (rs > 13.0)] = 750.0
    vol[vertebra & disc] = 80.0
    del rs, disc, vertebra
    bone = render_capsules(shape, spacing, bones(anat), width)
    vol += bone * (650.0 - vol)
    del bone

    # Lungs: parenchyma denser posteriorly (gravity) with the shared part of the texture.
    lung = anat.lung(x, y, z)
    no_lung = vol.copy()
    texture = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), SHARED_TEXTURE_MM / spacing[::-1])
    texture *= SHARED_TEXTURE_HU / max(float(texture.std()), 1e-6)
    texture += PARENCHYMA_HU + 50.0 * np.clip((y - anat.cy) / anat.by + 0.5, 0.0, 1.5)
    vol = np.where(lung, texture, vol)
    del texture

    # Vessels (inside the lungs only; elsewhere they would be invisible soft tissue anyway).
    vessels = render_capsules(shape, spacing, [(s.a, s.b, s.radius) for s in segments], width)
    vol = np.where(lung, vol + vessels * (40.0 - vol), vol)
    del vessels, lung

    air = render_capsules(shape, spacing, airways(anat), width)
    vol += air * (-1000.0 - vol)
    no_lung += air * (-1000.0 - no_lung)
    return AnatomyRaster((vol + 1000.0).astype(np.float32), (no_lung + 1000.0).astype(np.float32), spacing)


def _offsets(spacing: np.ndarray) -> list[np.ndarray]:
    """Sample offsets (mm, (x, y, z)) inside one acquisition voxel: cell centres of a SUPERSAMPLE grid."""
    axes = [((np.arange(n) + 0.5) / n - 0.5) * s for n, s in zip(SUPERSAMPLE, spacing, strict=True)]
    return [np.array([ox, oy, oz]) for oz in axes[2] for oy in axes[1] for ox in axes[0]]


def jacobian_det(motion: Motion, x: np.ndarray, y: np.ndarray, z: np.ndarray, tau: float) -> np.ndarray:
    """det(grad b) of the lung compartment's backward map ``b(y) = y + v(y, tau)`` at broadcastable mm
    coordinates, by central differences of step :data:`JACOBIAN_STEP_MM` (dimensionless; 1 at T00)."""
    h = JACOBIAN_STEP_MM
    grad = np.empty((3, 3), dtype=object)
    for j in range(3):
        plus = [x, y, z]
        minus = [x, y, z]
        plus[j] = plus[j] + h
        minus[j] = minus[j] - h
        vp = motion.fields(*plus, tau, body=False)[:3]
        vm = motion.fields(*minus, tau, body=False)[:3]
        for i in range(3):
            grad[i, j] = (vp[i] - vm[i]) / (2.0 * h) + (1.0 if i == j else 0.0)
    return (
        grad[0, 0] * (grad[1, 1] * grad[2, 2] - grad[1, 2] * grad[2, 1])
        - grad[0, 1] * (grad[1, 0] * grad[2, 2] - grad[1, 2] * grad[2, 0])
        + grad[0, 2] * (grad[1, 0] * grad[2, 1] - grad[1, 1] * grad[2, 0])
    )


def render_phase(
    raster: AnatomyRaster,
    motion: Motion,
    tau: float,
    shape_zyx: tuple[int, int, int],
    spacing: np.ndarray,
    rng: np.random.Generator,
    noise_hu: float,
) -> np.ndarray:
    """One phase at breathing time ``tau`` on the acquisition grid ``shape_zyx`` of ``spacing`` (x, y, z) mm:
    HU (z, y, x) float32 with partial volume, slice profile, mass-preserving lung density, the per-phase
    texture, in-plane blur and noise of std ``noise_hu`` (module docstring). ``rng`` draws the per-phase
    texture and the noise."""
    spacing = np.asarray(spacing, dtype=np.float64)
    anat = motion.anatomy()
    x0, y0, z0 = axes_mm((0, 0, 0), np.asarray(shape_zyx[::-1]) - 1, spacing)
    lung_sum = np.zeros(shape_zyx, dtype=np.float64)  # summed density of the lung-compartment samples
    lung_count = np.zeros(shape_zyx, dtype=np.float64)
    other_sum = np.zeros(shape_zyx, dtype=np.float64)
    offsets = _offsets(spacing)
    n = int(np.prod(shape_zyx))
    for off in offsets:
        x, y, z = x0 + off[0], y0 + off[1], z0 + off[2]
        vx, vy, vz, m, wall = motion.fields(x, y, z, tau)
        lung_src = [np.broadcast_to(c + v, shape_zyx).reshape(n) for c, v in ((x, vx), (y, vy), (z, vz))]
        in_lung = anat.lung_points(*lung_src).reshape(shape_zyx)
        flat = in_lung.reshape(n)
        lung_sum[in_lung] += raster.sample(raster.density, *(c[flat] for c in lung_src))
        lung_count += in_lung
        out = ~in_lung
        body_src = [np.broadcast_to(c + m * v, shape_zyx)[out] for c, v in ((x, vx), (y, vy - wall), (z, vz))]
        # Where the lungs slid away and the body does not follow, the body point is a T00 lung point: soft
        # tissue (no_lung) fills that room.
        gap = anat.lung_points(*body_src)
        values = np.empty(len(gap))
        values[gap] = raster.sample(raster.no_lung, *(c[gap] for c in body_src))
        values[~gap] = raster.sample(raster.density, *(c[~gap] for c in body_src))
        other_sum[out] += values
    # Per-phase parenchyma detail, in the lung part of each voxel, before the density change.
    detail = ndimage.gaussian_filter(rng.normal(size=shape_zyx), (0.0, 0.6, 0.6))
    detail *= PHASE_TEXTURE_HU / max(float(detail.std()), 1e-6)
    lung_sum += lung_count * detail
    jac = np.broadcast_to(jacobian_det(motion, x0, y0, z0, tau), shape_zyx)
    # Compression expels air only: the lung part of a voxel gets no denser than air-free tissue.
    lung_density = np.minimum(jac * lung_sum, TISSUE_DENSITY * lung_count)
    density = (lung_density + other_sum) / len(offsets)
    hu = ndimage.gaussian_filter(density, (0.0, PSF_SIGMA_VOXELS, PSF_SIGMA_VOXELS)) - 1000.0
    noise = ndimage.gaussian_filter(
        rng.normal(size=shape_zyx), (0.0, NOISE_CORRELATION_VOXELS, NOISE_CORRELATION_VOXELS)
    )
    noise *= noise_hu / max(float(noise.std()), 1e-12)
    return (hu + noise).astype(np.float32)


def lung_mask(motion: Motion, tau: float, shape_zyx: tuple[int, int, int], spacing: np.ndarray) -> np.ndarray:
    """Bool (z, y, x): acquisition voxels whose centre is a lung point at breathing time ``tau`` (its
    backward-mapped lung position lies in the T00 lungs)."""
    x, y, z = axes_mm((0, 0, 0), np.asarray(shape_zyx[::-1]) - 1, np.asarray(spacing, dtype=np.float64))
    vx, vy, vz, _, _ = motion.fields(x, y, z, tau, body=False)
    return np.broadcast_to(motion.anatomy().lung(x + vx, y + vy, z + vz), shape_zyx).copy()

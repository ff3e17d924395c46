"""The built-in synthetic 4DCT dataset: ten cases in the DIR-Lab layout with known motion.

``write_dataset(out_dir)`` writes, for each case N in 1..10::

    OUT/geometry.json                         size/spacing per case (dirlab.py honours it)
    OUT/README_phantom.txt                    what this folder is
    OUT/Case{N}Pack/  (Case8Deploy for case 8)
        Images/<real naming>                  T00..T50, raw int16 little-endian, HU + 1024
                                              (case1_T00_s.img, case2_T00-ssm.img, case6_T00.img, ...)
        ExtremePhases/Case{N}_300_T{PP}_xyz.txt       cases 1-5 (" 82\\t 55\\t 72\\t" rows, CRLF)
        extremePhases/case{N}_dirLab300_T{PP}_xyz.txt cases 6-10 ("82  55  72" rows, CRLF)
        Sampled4D/case{N}_4D-75_T{PP}.txt     75 of the 300 points, T00..T50
        Masks/case{N}_T00_mask.mhd (+ .zraw)  the true T00 lung mask, as a user-provided mask
    OUT/truth/case{N}.npz                     exact truth for tests (see :func:`load_truth`)
    OUT/truth/case{N}.json                    the same scalars, human-readable

Anatomy (HU): air -1000 outside; body 35 with a -90 fat rim; ribs and sternum +650, vertebrae (+300 core,
+750 rim) with discs; trachea and main bronchi (air); heart; two lungs (about -850, denser posteriorly,
smooth texture) each with a space-filling branching vessel tree (+40 HU, radius 4.5 mm near the hilum down
to 1 mm, partial-volume edges); a slight scanner blur; CT noise (sigma 12 HU, independent per phase). The
300 landmarks sit on distinct vessel bifurcations inside the lungs (points along vessels would be used
only if a case had too few; none of the ten needs them at scale >= 0.25).

Motion is defined by its **backward** map (so images need no inversion): the T00 position seen by a
phase-t voxel at ``y`` (mm) is ``psi_t(y) = y + s_t * A * g(y)``, with ``g`` a smooth analytic field
(:class:`Motion`): mostly cranio-caudal, growing from the apex to the diaphragm (exhale moves tissue toward
slice 1), plus antero-posterior chest fall and a little lateral contraction. ``s_t`` is the breathing
curve ``(1 - cos(pi k / 5)) / 2`` for ``T{k}0`` (0 at T00, 1 at T50). Phase images are
``I_t(y) = I_T00(psi_t(y))`` (trilinear); landmark positions at phase t invert ``psi_t`` by fixed-point
iteration (``A * |grad g|`` is kept <= 0.5, so psi is invertible and the iteration contracts). The amplitude
``A`` of each case is calibrated (bisection) so that the identity TRE computed from the written landmark
files equals DIR-Lab's published initial TRE of that case (:data:`TARGET_IDENTITY_TRE_MM`).

``scale`` shrinks the voxel grid (same anatomy and motion in mm, coarser voxels): scale 0.5 gives about
52x42x30 voxels per case, still with 300 distinct landmarks inside the lungs (scale >= 0.25). Output is
deterministic for a seed; the shapes (body, lungs, vessel tree) and the motion do not depend on ``scale``
or on which cases are written (per-voxel texture and noise do).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

from . import coords, layout
from .dirlab import DIRECTION, GEOMETRY_FILE, HU_OFFSET, N_LANDMARKS, N_SAMPLED4D
from .io import atomic_path, write_json, write_text

#: Phantom grid per case at scale 1: size (x, y, z) voxels, spacing (x, y, z) mm. Wider than deep (a chest),
#: so x/y mix-ups change shapes; field of view about 300 x 240 x 185 mm.
PHANTOM_GEOMETRY: dict[int, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    1: ((104, 84, 56), (2.8, 2.8, 3.2)),
    2: ((104, 84, 60), (2.9, 2.9, 3.2)),
    3: ((104, 84, 58), (2.9, 2.9, 3.2)),
    4: ((104, 84, 56), (2.9, 2.9, 3.3)),
    5: ((104, 84, 60), (2.9, 2.9, 3.2)),
    6: ((112, 88, 60), (2.8, 2.8, 3.2)),
    7: ((112, 88, 64), (2.8, 2.8, 3.2)),
    8: ((112, 88, 60), (2.8, 2.8, 3.2)),
    9: ((112, 88, 60), (2.8, 2.8, 3.2)),
    10: ((112, 88, 56), (2.8, 2.8, 3.3)),
}

#: Calibration targets: DIR-Lab's published no-registration TRE (mean, mm) per case (dirlab.md). The
#: phantom's motion amplitude is chosen to reproduce these; the pipeline never uses them as results.
TARGET_IDENTITY_TRE_MM: dict[int, float] = {
    1: 3.89,
    2: 4.34,
    3: 6.94,
    4: 9.83,
    5: 7.48,
    6: 10.89,
    7: 11.03,
    8: 14.99,
    9: 7.92,
    10: 7.30,
}

#: Breathing curve s_t: fraction of the T00 -> T50 motion reached at each phase.
BREATHING: dict[str, float] = {p: float((1 - np.cos(np.pi * k / 5)) / 2) for k, p in enumerate(layout.PHASES)}

NOISE_HU = 12.0
# The backward map's gain A * max|grad g| stays below this (invertibility with a margin).
_MAX_GAIN = 0.5
_TRUTH_DIR = "truth"


# ------------------------------------------------------------------------------------------- naming
def case_folder_name(case: int) -> str:
    return "Case8Deploy" if case == 8 else f"Case{case}Pack"


def image_file_name(case: int, phase: str) -> str:
    """DIR-Lab's own naming: case 1 ``_s``, cases 2-5 ``-ssm``, cases 6-10 bare."""
    if case == 1:
        return f"case1_{phase}_s.img"
    if case <= 5:
        return f"case{case}_{phase}-ssm.img"
    return f"case{case}_{phase}.img"


def landmark_file_path(case: int, phase: str) -> str:
    """Path of the 300-point file inside the case folder (ExtremePhases vs extremePhases as released)."""
    if case <= 5:
        return f"ExtremePhases/Case{case}_300_{phase}_xyz.txt"
    return f"extremePhases/case{case}_dirLab300_{phase}_xyz.txt"


def sampled4d_file_path(case: int, phase: str) -> str:
    return f"Sampled4D/case{case}_4D-75_{phase}.txt"


def mask_file_path(case: int) -> str:
    return f"Masks/case{case}_T00_mask.mhd"


def geometry(case: int, scale: float = 1.0) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Phantom grid of ``case`` at ``scale``: (size_xyz, spacing_xyz). The field of view (size * spacing)
    stays that of scale 1; spacing is rounded to 4 decimals (the values written to geometry.json)."""
    size, spacing = PHANTOM_GEOMETRY[case]
    new_size = tuple(max(8, int(round(n * scale))) for n in size)
    new_spacing = tuple(round(n * s / m, 4) for n, s, m in zip(size, spacing, new_size, strict=True))
    return new_size, new_spacing  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------- motion
def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class Motion:
    """Analytic breathing motion of one case, in index-space millimetres (x, y, z) = index0 * spacing.

    The backward map ``psi_s(y) = y + s * amplitude_mm * g(y)`` gives, for a point ``y`` of the phase with
    breathing fraction ``s``, the T00 point that moved there. ``g`` (dimensionless shape, <= ~1.2):

    * z: ``w(z) * b(x, y)``: ``w`` rises smoothly from 0 at ``z_top`` to 1 at ``z_bottom`` (apex to
      diaphragm); ``b`` is ~1, larger posteriorly (``post``) and on one side (``asym``). Positive: at exhale
      the voxel at y shows tissue from further caudal, i.e. tissue moved toward slice 1.
    * y: ``-ap * a(y) * h(z)``: the anterior chest falls (moves posterior) at exhale.
    * x: ``lr * (x - cx) / bx * h(z)``: slight lateral contraction.
    """

    extent_mm: tuple[float, float, float]
    amplitude_mm: float
    ap: float
    lr: float
    asym: float
    post: float

    # Landmarks of the field, as fractions of the extent (same for every case).
    @property
    def _geo(self) -> tuple[float, float, float, float, float, float]:
        ex, ey, ez = self.extent_mm
        return 0.5 * ex, 0.5 * ey, 0.44 * ex, 0.40 * ey, 0.04 * ez, 0.80 * ez

    def shape(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit-amplitude field ``g`` at broadcastable coordinate arrays (mm) -> (gx, gy, gz)."""
        cx, cy, bx, by, z_top, z_bottom = self._geo
        w = _smoothstep((z - z_top) / (z_bottom - z_top))
        h = 0.4 + 0.6 * w
        u = (x - cx) / bx
        b = (
            (1.0 + self.asym * np.tanh((cx - x) / (0.1 * self.extent_mm[0])))
            * (1.0 - 0.3 * u * u)
            * (1.0 + self.post * np.clip((y - cy) / by, -1.2, 1.2))
        )
        a = 0.5 * (1.0 - np.tanh((y - cy) / (0.5 * by)))
        return self.lr * u * h, -self.ap * a * h, w * b

    def backward(self, points_mm: np.ndarray, s: float) -> np.ndarray:
        """``psi_s``: phase points (M, 3) mm -> the T00 points (M, 3) mm that moved there."""
        p = np.asarray(points_mm, dtype=np.float64)
        g = self.shape(p[:, 0], p[:, 1], p[:, 2])
        return p + s * self.amplitude_mm * np.stack(g, axis=1)

    def forward(self, points_mm: np.ndarray, s: float, iterations: int = 60) -> np.ndarray:
        """T00 points (M, 3) mm -> their positions at breathing fraction ``s`` (inverse of ``backward``).

        Fixed point ``y <- x - s A g(y)``; contracts because ``A |grad g| <= 0.5``.
        """
        x = np.asarray(points_mm, dtype=np.float64)
        y = x.copy()
        for _ in range(iterations):
            g = self.shape(y[:, 0], y[:, 1], y[:, 2])
            y = x - s * self.amplitude_mm * np.stack(g, axis=1)
        return y

    def max_gradient(self, n: int = 24) -> float:
        """Largest Frobenius norm of ``grad g`` (1/mm) over a grid of the extent (central differences)."""
        axes = [np.linspace(0.0, e, n) for e in self.extent_mm]
        x, y, z = np.meshgrid(*axes, indexing="ij")
        pts = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
        eps = 0.5
        total = np.zeros(len(pts))
        for axis in range(3):
            step = np.zeros(3)
            step[axis] = eps
            gp = np.stack(self.shape(*(pts + step).T), axis=1)
            gm = np.stack(self.shape(*(pts - step).T), axis=1)
            total += (((gp - gm) / (2 * eps)) ** 2).sum(axis=1)
        return float(np.sqrt(total.max()))

    def with_amplitude(self, amplitude_mm: float) -> Motion:
        return Motion(self.extent_mm, float(amplitude_mm), self.ap, self.lr, self.asym, self.post)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Motion:
        return cls(
            tuple(data["extent_mm"]),
            data["amplitude_mm"],
            data["ap"],
            data["lr"],  # type: ignore
            data["asym"],
            data["post"],
        )


# ------------------------------------------------------------------------------------------ anatomy
@dataclass(frozen=True)
class _Anatomy:
    """Body, lungs and organs of one case: implicit shapes in mm (index space), independent of the grid."""

    extent: tuple[float, float, float]
    dome_offsets: tuple[float, float]  # per-side diaphragm dome height change (fraction of z extent)

    @property
    def cx(self) -> float:
        return 0.5 * self.extent[0]

    @property
    def cy(self) -> float:
        return 0.5 * self.extent[1]

    @property
    def bx(self) -> float:
        return 0.44 * self.extent[0]

    @property
    def by(self) -> float:
        return 0.40 * self.extent[1]

    def body_radius(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Elliptic 'radius' of the body cross-section: 1 on the skin."""
        return np.sqrt(((x - self.cx) / self.bx) ** 2 + ((y - self.cy) / self.by) ** 2)

    def spine_centre(self) -> tuple[float, float]:
        return self.cx, self.cy + 0.27 * self.extent[1]

    def heart(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        ex, ey, ez = self.extent
        return (self.cx + 0.06 * ex, self.cy - 0.10 * ey, 0.64 * ez), (0.15 * ex, 0.17 * ey, 0.17 * ez)

    def lung(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """True inside either lung, eroded by ``margin`` mm (approximately). Broadcastable arrays."""
        ex, ey, ez = self.extent
        m = margin
        inside = None
        for k, side in enumerate((-1.0, 1.0)):  # -1: patient right (small x), +1: left
            xc = self.cx + side * 0.16 * ex
            yc = self.cy + 0.03 * ey
            ax, ay = 0.185 * ex - m, 0.29 * ey - m
            z_apex, z_full = 0.07 * ez + m, 0.45 * ez
            t = np.clip((z_full - z) / (z_full - z_apex), 0.0, None)
            rho = np.sqrt(np.clip(1.0 - t * t, 0.0, None))  # dome-shaped apex
            r2 = ((x - xc) / ax) ** 2 + ((y - yc) / ay) ** 2
            dome = (0.25 if side < 0 else 0.21) + self.dome_offsets[k]
            z_dia = 0.90 * ez - dome * ez * (1.0 - np.clip(r2, 0.0, 1.0)) - m
            part = (r2 < rho * rho) & (z < z_dia) & (side * (x - self.cx) > 0.035 * ex + m)
            inside = part if inside is None else inside | part
        cavity = ((x - self.cx) / (0.80 * self.bx - m)) ** 2 + ((y - self.cy) / (0.80 * self.by - m)) ** 2 < 1.0
        (hx, hy, hz), (sx, sy, sz) = self.heart()
        heart = ((x - hx) / (sx + m)) ** 2 + ((y - hy) / (sy + m)) ** 2 + ((z - hz) / (sz + m)) ** 2 < 1.0
        spx, spy = self.spine_centre()
        spine = (x - spx) ** 2 + (y - spy) ** 2 < (24.0 + m) ** 2
        return inside & cavity & ~heart & ~spine


@dataclass(frozen=True)
class _Segment:
    a: np.ndarray  # (3,) mm, parent end
    b: np.ndarray  # (3,) mm, child end
    radius: float  # mm


def _sample_lung(anat: _Anatomy, n: int, side: float, margin: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` points (n, 3) mm uniformly inside one lung (``side`` -1 right, +1 left), eroded by ``margin``."""
    ex, ey, ez = anat.extent
    lo = np.array([anat.cx if side > 0 else 0.0, 0.0, 0.0])
    hi = np.array([ex if side > 0 else anat.cx, ey, ez])
    out: list[np.ndarray] = []
    count = 0
    while count < n:
        p = lo + (hi - lo) * rng.random((4 * n, 3))
        p = p[anat.lung(p[:, 0], p[:, 1], p[:, 2], margin)]
        out.append(p)
        count += len(p)
    return np.concatenate(out)[:n]


def _grow_trees(anat: _Anatomy, rng: np.random.Generator) -> tuple[list[_Segment], list[np.ndarray], list[np.ndarray]]:
    """Space-filling vessel trees of both lungs by space colonisation (Runions et al. 2007), in mm.

    Attraction points fill each lung; every iteration, each tree node that is the nearest node of some
    attraction points (within ``reach``) grows one step toward their mean direction; attraction points
    closer than ``kill`` to a node are consumed. Radii follow a pipe model from the leaves
    (``r = r_leaf * n_leaves ** 0.4``, clipped). Returns (segments, bifurcations, bends): bifurcations are
    nodes with two or more child vessels, bends the nodes with one (points along a vessel).
    """
    ex, ey, ez = anat.extent
    step, reach, kill = 4.0, 45.0, 7.0
    r_leaf, r_max = 1.0, 4.5
    segments: list[_Segment] = []
    bifurcations: list[np.ndarray] = []
    bends: list[np.ndarray] = []
    for side in (-1.0, 1.0):
        hilum = np.array([anat.cx + side * (0.035 * ex + 14.0), anat.cy + 0.06 * ey, 0.47 * ez])
        for _ in range(40):  # nudge laterally until inside the lung with a margin
            if anat.lung(*(np.array(v) for v in hilum), margin=5.0):
                break
            hilum[0] += side * 2.0
        attractors = _sample_lung(anat, 1400, side, 3.0, rng)
        nodes = [hilum]
        parent = [-1]
        for _ in range(400):
            if len(attractors) == 0:
                break
            tree = cKDTree(np.asarray(nodes))
            dist, nearest = tree.query(attractors, distance_upper_bound=reach)
            active = np.isfinite(dist)
            if not active.any():
                break
            idx = nearest[active]
            vec = attractors[active] - np.asarray(nodes)[idx]
            vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-9)
            sums = np.zeros((len(nodes), 3))
            np.add.at(sums, idx, vec)
            grown = 0
            for i in np.unique(idx):
                d = sums[i] + rng.normal(scale=0.15, size=3) * np.linalg.norm(sums[i])
                q = nodes[i] + step * d / max(np.linalg.norm(d), 1e-9)
                if not anat.lung(*(np.array(v) for v in q), margin=1.5) or tree.query(q)[0] < 0.5 * step:
                    continue
                nodes.append(q)
                parent.append(int(i))
                grown += 1
            if not grown:
                break
            new = np.asarray(nodes[-grown:])
            near = cKDTree(new).query(attractors, distance_upper_bound=kill)[0]
            attractors = attractors[~np.isfinite(near)]
        # Pipe-model radii: children are appended after their parents, so one reverse pass suffices.
        pts = np.asarray(nodes)
        par = np.asarray(parent)
        leaves = np.ones(len(nodes))
        n_children = np.zeros(len(nodes), dtype=int)
        for i in range(len(nodes) - 1, 0, -1):
            n_children[par[i]] += 1
        leaves[n_children > 0] = 0.0
        for i in range(len(nodes) - 1, 0, -1):
            leaves[par[i]] += leaves[i]
        radius = np.clip(r_leaf * leaves**0.4, r_leaf, r_max)
        segments += [_Segment(pts[par[i]], pts[i], float(radius[i])) for i in range(1, len(nodes))]
        bifurcations += [pts[i] for i in range(len(nodes)) if n_children[i] >= 2]
        bends += [pts[i] for i in range(len(nodes)) if n_children[i] == 1]
    return segments, bifurcations, bends


def _axes_mm(lo: Sequence[int], hi: Sequence[int], spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Millimetre coordinates of voxel index ranges ``lo..hi`` (inclusive, (x, y, z)), shaped to broadcast
    over a (z, y, x) block: x (1, 1, nx), y (1, ny, 1), z (nz, 1, 1)."""
    out = []
    for axis in range(3):
        points = np.zeros((int(hi[axis]) - int(lo[axis]) + 1, 3))
        points[:, axis] = np.arange(int(lo[axis]), int(hi[axis]) + 1)
        out.append(coords.voxel_to_mm(points, spacing)[:, axis])
    return out[0][None, None, :], out[1][None, :, None], out[2][:, None, None]


def _render_capsules(
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
        x, y, z = _axes_mm(lo, hi, spacing)
        px, py, pz = x - a[0], y - a[1], z - a[2]
        ab = b - a
        t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
        d = np.sqrt((px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2 + (pz - t * ab[2]) ** 2)
        frac = (amplitude * np.clip(0.5 + (r - d) / width, 0.0, 1.0)).astype(np.float32)
        view = out[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1]
        np.maximum(view, frac, out=view)
    return out


def _ribs(anat: _Anatomy) -> list[tuple[np.ndarray, np.ndarray, float]]:
    ex, ey, ez = anat.extent
    capsules = []
    phis = np.linspace(0.35, 2.75, 18)  # from beside the spine (0) round to the front (pi)
    for z0 in np.arange(0.05, 0.78, 0.12) * ez:
        for side in (-1.0, 1.0):
            pts = [
                np.array(
                    [
                        anat.cx + side * 0.88 * anat.bx * np.sin(phi),
                        anat.cy + 0.88 * anat.by * np.cos(phi),
                        z0 + 0.09 * ez * phi / np.pi,
                    ]
                )
                for phi in phis
            ]
            capsules += [(p, q, 4.5) for p, q in zip(pts[:-1], pts[1:], strict=True)]
    return capsules


def _render_anatomy(
    anat: _Anatomy,
    segments: list[_Segment],
    shape_zyx: tuple[int, int, int],
    spacing: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The noise-free T00 volume (z, y, x) in HU (float32) and the true lung mask (bool)."""
    ex, ey, ez = anat.extent
    x, y, z = _axes_mm((0, 0, 0), np.asarray(shape_zyx[::-1]) - 1, spacing)
    width = float(spacing.min())

    rb = anat.body_radius(x, y) + 0 * z
    vol = np.full(shape_zyx, -1000.0, dtype=np.float32)
    vol[rb < 1.0] = -90.0  # subcutaneous fat rim
    soft = ndimage.gaussian_filter(rng.normal(size=shape_zyx).astype(np.float32), 2.0)
    soft *= 8.0 / max(float(soft.std()), 1e-6)
    inner = rb < 0.92
    vol[inner] = 35.0 + soft[inner]

    # Spine: vertebral bodies (cortical rim, cancellous core) with discs, and posterior arches.
    spx, spy = anat.spine_centre()
    rs = np.sqrt((x - spx) ** 2 + (y - spy) ** 2) + 0 * z
    period = 28.0
    disc = (np.mod(z, period) < 6.0) & np.ones_like(rs, dtype=bool)
    vertebra = rs < 16.0
    vol[vertebra] = 300.0
    vol[vertebra & (rs > 13.0)] = 750.0
    vol[vertebra & disc] = 80.0
    arches = [
        (np.array([spx, spy + 14.0, zc]), np.array([spx, spy + 40.0, zc + 8.0]), 5.0)
        for zc in np.arange(period / 2, ez, period)
    ]
    sternum = [
        (
            np.array([anat.cx, anat.cy - 0.9 * anat.by, 0.12 * ez]),
            np.array([anat.cx, anat.cy - 0.88 * anat.by, 0.60 * ez]),
            6.0,
        )
    ]
    bone = _render_capsules(shape_zyx, spacing, _ribs(anat) + arches + sternum, width)
    vol += bone * (650.0 - vol)

    # Lungs: parenchyma denser posteriorly (gravity) with a smooth texture.
    lung = anat.lung(x, y, z)
    texture = ndimage.gaussian_filter(rng.normal(size=shape_zyx).astype(np.float32), 1.2)
    texture *= 18.0 / max(float(texture.std()), 1e-6)
    parenchyma = -870.0 + 50.0 * np.clip((y - anat.cy) / anat.by + 0.5, 0.0, 1.5) + texture
    vol = np.where(lung, parenchyma, vol).astype(np.float32)

    # Vessels (inside the lungs only; elsewhere they would be invisible soft tissue anyway).
    vessels = _render_capsules(shape_zyx, spacing, [(s.a, s.b, s.radius) for s in segments], width)
    vol = np.where(lung, vol + vessels * (40.0 - vol), vol).astype(np.float32)

    # Airways: trachea down to the carina, main bronchi toward each hilum.
    carina = np.array([anat.cx, anat.cy - 0.02 * ey, 0.38 * ez])
    airways = [(np.array([anat.cx, anat.cy - 0.05 * ey, -10.0]), carina, 8.0)]
    for side in (-1.0, 1.0):
        hilum = np.array([anat.cx + side * (0.035 * ex + 20.0), anat.cy + 0.02 * ey, 0.46 * ez])
        airways.append((carina, hilum, 5.5))
    air = _render_capsules(shape_zyx, spacing, airways, width)
    vol += air * (-1000.0 - vol)

    vol = ndimage.gaussian_filter(vol, 0.5)  # scanner point-spread: partial-volume edges everywhere
    return vol.astype(np.float32), lung


def _warp(volume: np.ndarray, motion: Motion, s: float, spacing: np.ndarray) -> np.ndarray:
    """Phase volume ``I_s(y) = I_T00(psi_s(y))`` by trilinear backward warping (edge values outside)."""
    if s == 0.0:
        return volume.copy()
    x, y, z = _axes_mm((0, 0, 0), np.asarray(volume.shape[::-1]) - 1, spacing)
    gx, gy, gz = motion.shape(x, y, z)
    k = s * motion.amplitude_mm
    source_mm = np.stack(
        [np.broadcast_to(c + k * g, volume.shape).ravel() for c, g in ((x, gx), (y, gy), (z, gz))], axis=1
    )
    source = coords.mm_to_voxel(source_mm, spacing)  # (M, 3) voxel (x, y, z)
    out = ndimage.map_coordinates(volume, source[:, ::-1].T, order=1, mode="nearest")
    return out.reshape(volume.shape).astype(np.float32)


# ---------------------------------------------------------------------------------------- landmarks
def _identity_tre(p0_1based: np.ndarray, p1_1based: np.ndarray, spacing: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of the landmark distances in mm."""
    d0 = coords.voxel_to_mm(coords.from_dirlab_index(p0_1based), spacing)
    d1 = coords.voxel_to_mm(coords.from_dirlab_index(p1_1based), spacing)
    dist = np.linalg.norm(d1 - d0, axis=1)
    return float(dist.mean()), float(dist.std(ddof=1))


def _rounded_1based(points_mm: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Exact mm points -> DIR-Lab 1-based integer voxel indices (nearest voxel)."""
    return np.rint(coords.to_dirlab_index(coords.mm_to_voxel(points_mm, spacing))).astype(np.int64)


def _select_landmarks(
    anat: _Anatomy,
    segments: list[_Segment],
    bifurcations: list[np.ndarray],
    bends: list[np.ndarray],
    motion_max: Motion,
    size: np.ndarray,
    spacing: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """300 landmark points (mm) on distinct voxels: bifurcations first (random order), then bends, then
    points along vessels, keeping those inside the lungs and inside the volume at every phase.
    Returns the points (300, 3) and how many of them are bifurcations."""
    candidates = [bifurcations[i] for i in rng.permutation(len(bifurcations))]
    candidates += [bends[i] for i in rng.permutation(len(bends))]
    extra = [s.a + f * (s.b - s.a) for f in (0.5, 0.25, 0.75) for s in segments]
    candidates += [extra[i] for i in rng.permutation(len(extra))]
    cand = np.asarray(candidates)
    ok = anat.lung(cand[:, 0], cand[:, 1], cand[:, 2], margin=2.0)
    # The voxel a landmark file names must be a lung voxel of the true mask too.
    centre = coords.voxel_to_mm(np.rint(coords.mm_to_voxel(cand, spacing)), spacing)
    ok &= anat.lung(centre[:, 0], centre[:, 1], centre[:, 2])
    # Stay inside the volume (one voxel margin) at T00 and at the largest allowed T50 motion.
    for pts in (cand, motion_max.forward(cand, 1.0)):
        vox = coords.mm_to_voxel(pts, spacing)
        ok &= ((vox >= 1.0) & (vox <= size - 2.0)).all(axis=1)
    chosen: list[int] = []
    seen: set[tuple[int, ...]] = set()
    keys = _rounded_1based(cand, spacing)
    for i in np.nonzero(ok)[0]:
        key = tuple(keys[i])
        if key not in seen:
            seen.add(key)
            chosen.append(int(i))
            if len(chosen) == N_LANDMARKS:
                return cand[chosen], sum(i < len(bifurcations) for i in chosen)
    raise ValueError(
        f"phantom: only {len(chosen)} distinct landmark voxels inside the lungs at spacing "
        f"{tuple(spacing)} mm (need {N_LANDMARKS}); use a larger scale"
    )


def _calibrate(motion: Motion, points_mm: np.ndarray, spacing: np.ndarray, target: float, a_max: float) -> Motion:
    """Bisection on the amplitude so that the file-level identity TRE (rounded voxels) hits ``target``."""
    p0 = _rounded_1based(points_mm, spacing)

    def tre(a: float) -> float:
        p1 = _rounded_1based(motion.with_amplitude(a).forward(points_mm, 1.0), spacing)
        return _identity_tre(p0, p1, spacing)[0]

    if tre(a_max) < target:
        raise ValueError(
            f"phantom: identity TRE {tre(a_max):.2f} mm at the largest invertible amplitude "
            f"{a_max:.1f} mm is below the target {target} mm"
        )
    lo, hi = 0.0, a_max
    best = (abs(tre(hi) - target), hi)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        value = tre(mid)
        best = min(best, (abs(value - target), mid))
        if value < target:
            lo = mid
        else:
            hi = mid
    return motion.with_amplitude(best[1])


# ------------------------------------------------------------------------------------------- writing
def _landmark_text(points_1based: np.ndarray, style: str) -> str:
    """DIR-Lab-style landmark text with CRLF line ends; ``style`` picks the real files' quirks."""
    if style == "tabs":  # ' 82\t 55\t 72\t' (trailing tab)
        lines = [f"{x:3d}\t{y:3d}\t{z:3d}\t" for x, y, z in points_1based]
    elif style == "spaces":
        lines = [f"{x}  {y}  {z}" for x, y, z in points_1based]
    else:
        lines = [f"{x}\t{y}\t{z}" for x, y, z in points_1based]
    return "\r\n".join(lines) + "\r\n"


def _write_raw(path: Path, hu: np.ndarray) -> None:
    raw = np.clip(np.rint(hu) + HU_OFFSET, 0, 32767).astype("<i2")
    with atomic_path(path) as tmp:
        raw.tofile(tmp)


def _write_mhd(path: Path, image: sitk.Image) -> None:
    """Write an .mhd + .zraw pair so that the header (which names the data file) appears last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".mhd.", dir=path.parent))
    try:
        sitk.WriteImage(image, str(tmpdir / path.name), useCompression=True)
        header = tmpdir / path.name
        for item in sorted(tmpdir.iterdir(), key=lambda p: p == header):
            os.replace(item, path.parent / item.name)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _write_mask(path: Path, mask_zyx: np.ndarray, spacing_xyz: Sequence[float]) -> None:
    image = sitk.GetImageFromArray(np.asarray(mask_zyx, dtype=np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    image.SetDirection(DIRECTION)
    _write_mhd(path, image)


def write_mask(dataset_dir: str | Path, case: int) -> Path:
    """(Re)write the true T00 lung mask of a written phantom case as ``Masks/case{N}_T00_mask.mhd``."""
    truth = load_truth(dataset_dir, case)
    path = Path(dataset_dir) / case_folder_name(case) / mask_file_path(case)
    _write_mask(path, truth.mask_T00, truth.spacing_xyz)
    return path


def _case_params(case: int, seed: int) -> tuple[_Anatomy, Motion, np.random.Generator]:
    size, spacing = PHANTOM_GEOMETRY[case]
    extent = tuple(float(n * s) for n, s in zip(size, spacing, strict=True))
    rng = np.random.default_rng([seed, case])
    anat = _Anatomy(extent, (float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03))))  # type: ignore
    motion = Motion(
        extent,
        1.0,
        ap=float(rng.uniform(0.15, 0.3)),
        lr=float(rng.uniform(0.04, 0.1)),  # type: ignore
        asym=float(rng.uniform(-0.12, 0.12)),
        post=float(rng.uniform(0.05, 0.25)),
    )
    return anat, motion, rng


def write_case(out_dir: str | Path, case: int, seed: int = 0, scale: float = 1.0, with_mask: bool = True) -> dict:
    """Write phantom ``case`` into ``out_dir`` (DIR-Lab layout + truth); return its summary record.

    ``with_mask`` also writes the true T00 lung mask as the user-made ``Masks/case{N}_T00_mask.mhd``.
    """
    if case not in PHANTOM_GEOMETRY:
        raise ValueError(f"phantom cases are 1..10, got {case}")
    out = Path(out_dir)
    size_xyz, spacing_xyz = geometry(case, scale)
    size, spacing = np.asarray(size_xyz), np.asarray(spacing_xyz)
    shape = coords.size_xyz_to_shape_zyx(size_xyz)
    anat, motion, rng = _case_params(case, seed)
    segments, bifurcations, bends = _grow_trees(anat, rng)

    a_max = _MAX_GAIN / motion.max_gradient()
    points, n_on_bifurcations = _select_landmarks(
        anat,
        segments,
        bifurcations,
        bends,
        motion.with_amplitude(a_max),
        size,
        spacing,
        np.random.default_rng([seed, case, 100]),
    )
    motion = _calibrate(motion, points, spacing, TARGET_IDENTITY_TRE_MM[case], a_max)

    exact = {p: coords.mm_to_voxel(motion.forward(points, s), spacing) for p, s in BREATHING.items()}
    files = {p: np.rint(coords.to_dirlab_index(v)).astype(np.int64) for p, v in exact.items()}
    for p, v in files.items():
        if ((v < 1) | (v > size)).any():
            raise RuntimeError(f"phantom case {case}: a {p} landmark left the volume (bug)")
    sampled = np.sort(np.random.default_rng([seed, case, 200]).choice(N_LANDMARKS, N_SAMPLED4D, replace=False))

    volume, lung = _render_anatomy(anat, segments, shape, spacing, np.random.default_rng([seed, case, 300]))
    case_dir = out / case_folder_name(case)
    for k, (phase, s) in enumerate(BREATHING.items()):
        noise = np.random.default_rng([seed, case, 400 + k]).normal(0.0, NOISE_HU, shape).astype(np.float32)
        image = _warp(volume, motion, s, spacing) + noise
        _write_raw(case_dir / "Images" / image_file_name(case, phase), image)
    style = "tabs" if case <= 5 else "spaces"
    for phase in ("T00", "T50"):
        write_text(case_dir / landmark_file_path(case, phase), _landmark_text(files[phase], style))
    for phase in layout.PHASES:
        text = _landmark_text(files[phase][sampled], "plain")
        write_text(case_dir / sampled4d_file_path(case, phase), text)
    if with_mask:
        _write_mask(case_dir / mask_file_path(case), lung, spacing_xyz)

    tre_files = _identity_tre(files["T00"], files["T50"], spacing_xyz)
    tre_exact = _identity_tre(coords.to_dirlab_index(exact["T00"]), coords.to_dirlab_index(exact["T50"]), spacing_xyz)
    summary = {
        "case": case,
        "seed": seed,
        "scale": scale,
        "size_xyz": list(size_xyz),
        "spacing_xyz": list(spacing_xyz),
        "motion": motion.to_dict(),
        "breathing": BREATHING,
        "target_identity_tre_mm": TARGET_IDENTITY_TRE_MM[case],
        "identity_tre_files_mm": list(tre_files),
        "identity_tre_exact_mm": list(tre_exact),
        "lung_voxels": int(lung.sum()),
        "landmarks_on_bifurcations": n_on_bifurcations,
        "n_bifurcations": len(bifurcations),
        "n_bends": len(bends),
        "n_vessel_segments": len(segments),
    }
    truth = out / _TRUTH_DIR
    with atomic_path(truth / f"case{case}.npz") as tmp:
        np.savez_compressed(
            tmp,
            size_xyz=size,
            spacing_xyz=spacing,
            mask_T00=lung.astype(np.uint8),
            sampled4d_index=sampled,
            summary=json.dumps(summary),
            **{f"landmarks_{p}": v for p, v in exact.items()},
        )
    write_json(truth / f"case{case}.json", summary)
    return summary


_README = """Synthetic 4DCT phantom written by `rnr phantom` (rnr.phantom), laid out like DIR-Lab.

Case{N}Pack/ (Case8Deploy/) hold raw int16 images (HU + 1024, little-endian, x fastest), the 300 landmarks
of T00/T50 (1-based voxel indices, CRLF) and Sampled4D files, named as in the real DIR-Lab release.
geometry.json gives each case's size and spacing (real DIR-Lab data uses the table in rnr/dirlab.py).
Masks/case{N}_T00_mask.mhd is the true T00 lung mask, placed where a user's own mask would go.
truth/case{N}.npz holds the exact landmark positions (0-based voxels) of every phase, the true T00 lung
mask and the motion parameters; truth/case{N}.json the same scalars. Not patient data.
"""


def write_dataset(
    out_dir: str | Path,
    cases: Iterable[int] = range(1, 11),
    seed: int = 0,
    scale: float = 1.0,
    *,
    with_masks: bool = True,
) -> Path:
    """Write the phantom cases ``cases`` into ``out_dir`` in the DIR-Lab layout; return ``out_dir``.

    ``geometry.json`` lists the written cases (merged with entries already there for other cases).
    ``with_masks`` writes each case's true T00 lung mask as a user-provided ``Masks/`` mask.
    """
    if not 0.25 <= scale <= 2.0:
        raise ValueError(f"scale must be in [0.25, 2.0], got {scale}")
    cases = [int(c) for c in cases]
    bad = [c for c in cases if c not in PHANTOM_GEOMETRY]
    if bad:
        raise ValueError(f"phantom cases are 1..10, got {bad}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict] = {}
    geometry_path = out / GEOMETRY_FILE
    if geometry_path.is_file():
        try:
            entries = dict(json.loads(geometry_path.read_text()).get("cases", {}))
        except (ValueError, AttributeError):
            entries = {}
    for case in cases:
        summary = write_case(out, case, seed=seed, scale=scale, with_mask=with_masks)
        entries[str(case)] = {
            "size_xyz": summary["size_xyz"],
            "spacing_xyz": summary["spacing_xyz"],
            "seed": seed,
            "scale": scale,
        }
    write_json(
        geometry_path,
        {
            "description": "rnr phantom: per-case grid (size in voxels x, y, z; spacing in mm); "
            "overrides the DIR-Lab geometry table for these cases",
            "cases": dict(sorted(entries.items(), key=lambda kv: int(kv[0]))),
        },
    )
    write_text(out / "README_phantom.txt", _README)
    return out


# -------------------------------------------------------------------------------------------- truth
@dataclass(frozen=True)
class PhantomTruth:
    """Exact truth of one phantom case (from ``truth/case{N}.npz``).

    ``landmarks[phase]``: (300, 3) float64 0-based voxel (x, y, z) of every phase T00..T50 (unrounded);
    ``mask_T00``: bool (z, y, x) true lung mask; ``sampled4d_index``: (75,) rows of the 300 used for
    Sampled4D; ``motion``: the analytic :class:`Motion`; ``summary``: the JSON record.
    """

    case: int
    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    landmarks: dict[str, np.ndarray]
    mask_T00: np.ndarray
    sampled4d_index: np.ndarray
    motion: Motion
    summary: dict


def load_truth(dataset_dir: str | Path, case: int) -> PhantomTruth:
    path = Path(dataset_dir) / _TRUTH_DIR / f"case{case}.npz"
    with np.load(path) as data:
        summary = json.loads(str(data["summary"]))
        return PhantomTruth(
            case=case,
            size_xyz=tuple(int(v) for v in data["size_xyz"]),  # type: ignore[arg-type]
            spacing_xyz=tuple(float(v) for v in data["spacing_xyz"]),  # type: ignore[arg-type]
            landmarks={p: data[f"landmarks_{p}"].copy() for p in layout.PHASES},
            mask_T00=data["mask_T00"].astype(bool),
            sampled4d_index=data["sampled4d_index"].copy(),
            motion=Motion.from_dict(summary["motion"]),
            summary=summary,
        )

"""The built-in synthetic 4DCT dataset: ten cases in the DIR-Lab layout with known motion.

``write_dataset(out_dir)`` writes, for each case N in 1..10::

    OUT/geometry.json                         size/spacing per case (dirlab.py honours it)
    OUT/README_phantom.txt                    what this folder is
    OUT/Case{N}Pack/  (Case8Deploy for case 8)
        Images/<real naming>                  T00..T50, raw int16 little-endian, HU + 1024
                                              (case1_T00_s.img, case2_T00-ssm.img, case6_T00.img, ...)
        ExtremePhases/Case{N}_300_T{PP}_xyz.txt       cases 1-5; extremePhases/case{N}_dirLab300_T{PP}_xyz.txt
                                              cases 6-10. Rows as in the real files (:data:`LANDMARK_STYLE`):
                                              cases 2, 6, 7, 8, 10 " 82\\t 55\\t 72\\t", others "211\\t139\\t66"; CRLF
        Sampled4D/case{N}_4D-75_T{PP}.txt     75 of the 300 points, T00..T50 ("x\\ty\\tz", CRLF)
        Masks/case{N}_T00_mask.mhd (+ .zraw)  the true T00 lung mask, as a user-provided mask
    OUT/truth/case{N}.npz                     exact truth for tests (see :func:`load_truth`)
    OUT/truth/case{N}.json                    the same scalars, human-readable

Anatomy (HU): air -1000 outside; body 35 with a -90 fat rim; ribs and sternum +650, vertebrae (+300 core,
+750 rim) with discs; trachea and main bronchi (air); heart; two lungs (about -850, denser posteriorly,
smooth texture) each with a space-filling branching vessel tree (+40 HU, radius 4.5 mm near the hilum down
to 1 mm, partial-volume edges); a slight scanner blur; CT noise (sigma 12 HU, independent per phase). The
300 landmarks sit on distinct vessel bifurcations inside the lungs (points along vessels would be used
only if a case had too few; none of the ten needs them at scale >= 0.25).

Motion (:class:`Motion`) has two compartments, the lungs and the body, each with an analytic **backward** map
(images need no inversion). Lung tissue moves mostly cranio-caudally (toward slice 1 at exhale), most at
the bases and posteriorly, with antero-posterior and lateral components; the body follows in the
mediastinum and abdomen but not at the chest wall (a fall of at most ~3 mm anteriorly) nor at the spine
and back (exactly still), so the lungs slide along the pleura. Regions reach their T50 displacement with
different phase lags (apex vs base, front vs back), so T10..T40 are no fixed fraction of T00 -> T50.
Per case the amplitude and the apex-to-base exponent are calibrated (on the rounded landmark files) to
DIR-Lab's published identity TRE mean and std (:data:`TARGET_IDENTITY_TRE_MM`, :data:`TARGET_IDENTITY_STD_MM`);
the displacement length is soft-limited to the real case's largest landmark displacement + 10 %
(:data:`MAX_DISPLACEMENT_MM`). Every case's summary (``truth/case{N}.json``) states what it reaches: mean and
std, per-axis shares, max displacement, the spine's largest displacement, and the RMS distance of the
intermediate landmarks from the straight T00 -> T50 line.

**Truth for evaluation**: ``truth/case{N}.npz`` alone (copy it with a converted case) loads with
:func:`load_truth_file` into :class:`PhantomTruth`, whose ``positions(points_vox, phase)`` gives the exact
position at any phase of any T00 point (0-based voxel (x, y, z), vectorised).

``scale`` shrinks the voxel grid (same anatomy and motion in mm, coarser voxels): scale 0.5 gives about
52x42x30 voxels per case, still with 300 distinct landmarks inside the lungs (scale >= 0.25). Output is
deterministic for a seed; the shapes (body, lungs, vessel tree) and the motion's form do not depend on
``scale`` or on which cases are written (per-voxel texture and noise do), but the calibrated amplitude and
exponent do (they are fitted on the rounded landmark files of that grid; at scale 0.5 the mean is met, the
std is not always: whole 5.6 mm voxels dominate small motions).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
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

#: Calibration targets: DIR-Lab's published no-registration TRE (mean, mm) per case. The
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

#: DIR-Lab's published no-registration TRE sample std (ddof = 1, mm) per case: the second calibration target.
TARGET_IDENTITY_STD_MM: dict[int, float] = {
    1: 2.78,
    2: 3.90,
    3: 4.05,
    4: 4.86,
    5: 5.51,
    6: 6.97,
    7: 7.43,
    8: 9.01,
    9: 3.98,
    10: 6.35,
}

#: Largest landmark displacement (mm) in the real DIR-Lab case: the phantom stays within it plus
#: :data:`MAX_DISPLACEMENT_MARGIN` (tested).
MAX_DISPLACEMENT_MM: dict[int, float] = {
    1: 10.9,
    2: 17.3,
    3: 16.2,
    4: 20.6,
    5: 23.8,
    6: 26.9,
    7: 27.0,
    8: 30.6,
    9: 15.5,
    10: 26.1,
}
MAX_DISPLACEMENT_MARGIN = 0.10

# Ranges of the per-case motion parameters drawn from the seed (see Motion).
_AP_RANGE = (0.40, 0.50)
_LR_RANGE = (0.17, 0.23)
_LAG_RANGE = (0.8, 1.2)
_POST_RANGE = (0.25, 0.5)

#: Nominal breathing curve s_t: fraction of the T00 -> T50 motion reached at each phase.
BREATHING: dict[str, float] = {p: float((1 - np.cos(np.pi * k / 5)) / 2) for k, p in enumerate(layout.PHASES)}

NOISE_HU = 12.0
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


def phase_time(phase: str | float) -> float:
    """Breathing time ``tau`` in [0, 1] of a phase: ``T{k}0`` -> k / 5 (T00 end-inhale 0, T50 end-exhale 1);
    a number is returned as it is (any time between the phases)."""
    if isinstance(phase, str):
        return layout.PHASES.index(phase) / (len(layout.PHASES) - 1)
    return float(phase)


def _fraction(tau: float, gamma: np.ndarray) -> np.ndarray:
    """Fraction of the T00 -> T50 motion reached at time ``tau`` by tissue with lag exponent ``gamma``:
    ``(1 - cos(pi tau**gamma)) / 2``. 0 at tau 0 and 1 at tau 1 for every gamma; gamma > 1 lags (moves
    late), gamma < 1 leads."""
    if tau <= 0.0:
        return np.zeros_like(gamma)
    if tau >= 1.0:
        return np.ones_like(gamma)
    return 0.5 * (1.0 - np.cos(np.pi * np.exp(gamma * np.log(tau))))


def _profile(t: np.ndarray, power: float) -> np.ndarray:
    """Apex (t = 0) to base (t = 1) profile in [0, 1]: ``t**p`` for p >= 1, ``1 - (1 - t)**(1/p)`` below
    (concave, finite slope at the apex). Larger ``p`` concentrates the motion at the base."""
    t = np.clip(t, 0.0, 1.0)
    if power >= 1.0:
        return t**power
    return 1.0 - (1.0 - t) ** (1.0 / power)


@dataclass(frozen=True)
class Motion:
    """Analytic breathing motion of one case with two compartments, in index-space millimetres
    (x, y, z) = index0 * spacing; x right -> left, y anterior -> posterior, z superior -> inferior.

    Defined by its **backward** map per compartment, ``psi(y) = y + v(y, tau)``: the T00 point that moved to
    the phase point ``y`` (mm) at breathing time ``tau`` (:func:`phase_time`). ``v`` (mm):

    * **lungs**: ``v_z = A b(x, y) P(t)`` (cranio-caudal; positive: at exhale tissue moved toward slice 1),
      ``P`` rising from 0 at the apex to 1 at the base (``t`` = z fraction, exponent ``power``), ``b`` ~ 1,
      larger posteriorly (``post``), one side larger (``asym``), smaller laterally;
      ``v_y = -A ap a(y) h`` (the front moves most, posteriorly at exhale) and ``v_x = A lr u h``
      (medial contraction, ``u`` = lateral offset / half width), ``h = 0.3 + 0.7 P``.
    * **body** (everything else): the lung field times ``m(x, y)``, 1 in the mediastinum and 0 from the
      inner chest wall outward and within 30 mm of the spine, plus a chest wall that falls back by at most
      ``wall_mm`` anteriorly. The spine and the back do not move at all; the lungs slide along the pleura
      (the lung's tangential motion jumps to the wall's).
    * **phase lags**: each component reaches the fraction ``(1 - cos(pi tau**gamma)) / 2`` of its T50
      value, with ``gamma`` depending on position: z and x lag toward the base (``lag_cc``), z lags and y
      leads posteriorly (``lag_ap``). Paths are curved and intermediate phases are no fixed fraction of
      T00 -> T50.

    A T00 point moves with the field of its T00 compartment (:meth:`forward`, inverting ``psi`` by relaxed
    fixed-point iteration). Images (see ``_warp``) show at a phase point ``y`` the lung point ``psi_lung(y)``
    if that lies in the T00 lungs, else the body point ``psi_body(y)``.
    """

    extent_mm: tuple[float, float, float]
    dome_offsets: tuple[float, float]
    amplitude_mm: float
    power: float
    ap: float
    lr: float
    asym: float
    post: float
    lag_cc: float
    lag_ap: float
    wall_mm: float
    saturation_mm: float

    def anatomy(self) -> _Anatomy:
        return _Anatomy(self.extent_mm, self.dome_offsets)

    def fields(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, tau: float, body: bool = True) -> tuple:
        """Both compartments' backward displacements at broadcastable coordinate arrays (mm).

        Returns ``(vx, vy, vz, m, wall)``: the lung field ``(vx, vy, vz)`` (mm) and the body field
        ``(m vx, m vy - wall, m vz)``. Factors depending on fewer axes stay small when the inputs are
        separable grid axes (as in image warping). ``body`` False skips the body factors (None).
        """
        ex, ey, ez = self.extent_mm
        cx, cy, bx, by = 0.5 * ex, 0.5 * ey, 0.44 * ex, 0.40 * ey
        t = np.clip((z - 0.03 * ez) / (0.89 * ez), 0.0, 1.0)
        prof = _profile(t, self.power)
        h = 0.05 + 0.95 * prof**0.8
        u = (x - cx) / bx
        b = (
            (1.0 + self.asym * np.tanh((cx - x) / (0.1 * ex)))
            * (1.0 - 0.3 * u * u)
            * (1.0 + self.post * np.clip((y - cy) / by, -1.2, 1.2))
        )
        a = 0.5 * (1.0 - np.tanh((y - cy) / (0.5 * by)))
        lag_cc = self.lag_cc * (2.0 * t - 1.0)
        lag_ap = self.lag_ap * (1.0 - 2.0 * a)
        amp = self.amplitude_mm
        # The T50 field, its length soft-limited to ``saturation_mm`` (a smooth minimum, sharp knee): no
        # point moves farther, and the distribution below the limit keeps its shape.
        vx, vy, vz = (amp * self.lr) * u * h, (-amp * self.ap) * a * h, amp * b * prof
        length = np.maximum(np.sqrt(vx * vx + vy * vy + vz * vz), 1e-12)
        limit = (1.0 + (length / self.saturation_mm) ** 6) ** (-1.0 / 6.0)
        fy = _fraction(tau, np.exp(-lag_ap))
        vx = vx * limit * _fraction(tau, np.exp(lag_cc))
        vy = vy * limit * fy
        vz = vz * limit * _fraction(tau, np.exp(lag_cc + 0.5 * lag_ap))
        if not body:
            return vx, vy, vz, None, None
        anat = self.anatomy()
        spx, spy = anat.spine_centre()
        spine = _smoothstep((np.hypot(x - spx, y - spy) - 30.0) / 45.0)
        m = (1.0 - _smoothstep((anat.body_radius(x, y) - 0.45) / 0.33)) * spine
        wall = (1.0 - m) * spine * self.wall_mm * a * fy
        return vx, vy, vz, m, wall

    def displacement(self, points_mm: np.ndarray, tau: float, lung: np.ndarray | bool) -> np.ndarray:
        """Backward displacement ``v`` (M, 3) mm at phase points (M, 3) mm; ``lung`` (M,) bool or one bool
        picks the compartment's field."""
        p = np.asarray(points_mm, dtype=np.float64)
        lung = np.broadcast_to(np.asarray(lung, dtype=bool), (len(p),))
        body = ~lung
        vx, vy, vz, m, wall = self.fields(p[:, 0], p[:, 1], p[:, 2], tau, body=bool(body.any()))
        v = np.stack([vx, vy, vz], axis=1)
        if body.any():
            v[body] *= m[body, None]
            v[body, 1] -= wall[body]
        return v

    def backward(self, points_mm: np.ndarray, tau: float | str, lung: np.ndarray | bool) -> np.ndarray:
        """``psi``: phase points (M, 3) mm -> the T00 points (M, 3) mm that moved there, in compartment
        ``lung`` (bool or (M,) bool)."""
        p = np.asarray(points_mm, dtype=np.float64)
        return p + self.displacement(p, phase_time(tau), lung)

    def forward(
        self, points_mm: np.ndarray, tau: float | str, lung: np.ndarray | bool | None = None, tol: float = 1e-9
    ) -> np.ndarray:
        """T00 points (M, 3) mm -> their positions (M, 3) mm at breathing time / phase ``tau``.

        ``lung``: the points' T00 compartment (default: the analytic T00 lungs). Solves ``psi(y) = x``
        iteratively: Newton in z (``dv_z/dz`` >= 0, up to ~1.5 at the bases, by a forward difference),
        a plain fixed-point step in x and y (small, smooth fields). Converges to ``tol`` mm in a few
        iterations; raises if it does not.
        """
        x = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
        tau = phase_time(tau)
        if lung is None:
            lung = self.anatomy().lung(x[:, 0], x[:, 1], x[:, 2])
        lung = np.broadcast_to(np.asarray(lung, dtype=bool), (len(x),))
        y = x - self.displacement(x, tau, lung)
        active = np.arange(len(x))
        eps = 1e-3
        dvz = np.zeros(len(x))
        for iteration in range(60):
            if len(active) == 0:
                return y
            ya, la = y[active], lung[active]
            v = self.displacement(ya, tau, la)
            residual = ya + v - x[active]
            if iteration < 3:  # the slope settles once y is near the solution: reuse it (quasi-Newton)
                shifted = ya.copy()
                shifted[:, 2] += eps
                dvz[active] = (self.displacement(shifted, tau, la)[:, 2] - v[:, 2]) / eps
            step = residual.copy()
            step[:, 2] /= np.maximum(1.0 + dvz[active], 0.2)
            y[active] = ya - step
            keep = np.abs(residual).max(axis=1) > tol
            active = active[keep]
        raise RuntimeError(f"phantom motion: {len(active)} point(s) did not converge (bug)")

    def with_params(self, **changes: float) -> Motion:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Motion:
        values = dict(data)
        values["extent_mm"] = tuple(float(v) for v in values["extent_mm"])
        values["dome_offsets"] = tuple(float(v) for v in values["dome_offsets"])
        return cls(**values)


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The noise-free T00 volume (z, y, x) in HU (float32), the true lung mask (bool), and the same volume
    with soft tissue in place of the lungs (what fills the room the lungs leave when they slide)."""
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
    no_lung = vol.copy()
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
    no_lung += air * (-1000.0 - no_lung)

    # Scanner point-spread: partial-volume edges everywhere.
    blur = [ndimage.gaussian_filter(v, 0.5).astype(np.float32) for v in (vol, no_lung)]
    return blur[0], lung, blur[1]


def _warp(volume: np.ndarray, no_lung: np.ndarray, motion: Motion, tau: float, spacing: np.ndarray) -> np.ndarray:
    """Phase volume at breathing time ``tau`` by trilinear backward warping (edge values outside).

    A phase voxel ``y`` shows the T00 lung point ``psi_lung(y)`` when that lies in the T00 lungs, else the
    body point ``psi_body(y)``; where the lungs slid away from a place the body does not fill (the body
    point is a lung point too), ``no_lung`` (soft tissue) is shown there.
    """
    if tau == 0.0:
        return volume.copy()
    x, y, z = _axes_mm((0, 0, 0), np.asarray(volume.shape[::-1]) - 1, spacing)
    vx, vy, vz, m, wall = motion.fields(x, y, z, tau)
    shape = volume.shape
    lung_src = [np.broadcast_to(c + v, shape) for c, v in ((x, vx), (y, vy), (z, vz))]
    body_src = [np.broadcast_to(c + m * v, shape) for c, v in ((x, vx), (y, vy - wall), (z, vz))]
    anat = motion.anatomy()
    in_lung = anat.lung(*lung_src)
    gap = np.zeros(shape, dtype=bool)
    gap[~in_lung] = anat.lung(*(c[~in_lung] for c in body_src))
    out = np.empty(shape, dtype=np.float32)
    scale = 1.0 / np.asarray(spacing, dtype=np.float64)
    for source, select, image in (
        (lung_src, in_lung, volume),
        (body_src, ~in_lung & ~gap, volume),
        (body_src, gap, no_lung),
    ):
        # map_coordinates wants (z, y, x) voxel rows.
        rows = np.stack([source[axis][select] * scale[axis] for axis in (2, 1, 0)])
        out[select] = ndimage.map_coordinates(image, rows, order=1, mode="nearest")
    return out


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
    for pts in (cand, motion_max.forward(cand, 1.0, lung=True)):
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


def _calibrate(motion: Motion, points_mm: np.ndarray, spacing: np.ndarray, target: tuple[float, float]) -> Motion:
    """Amplitude and apex-to-base exponent so that the file-level identity TRE (rounded voxels) hits
    ``target`` = (mean, std) mm: the mean by the amplitude, the std / mean ratio by the exponent (a larger
    exponent concentrates the motion at the bases: larger spread). Bisection on log(exponent) over
    [0.3, 5], each with the amplitude solved for the mean (multiplicative updates, then bisection)."""
    p0 = _rounded_1based(points_mm, spacing)
    target_mean, target_std = target

    def stats(amp: float, power: float) -> tuple[float, float]:
        moved = motion.with_params(amplitude_mm=amp, power=power).forward(points_mm, 1.0, lung=True, tol=1e-6)
        return _identity_tre(p0, _rounded_1based(moved, spacing), spacing)

    def amplitude(power: float, refine: bool) -> tuple[float, float, float]:
        """(amplitude, mean, std) with the mean closest to the target."""
        amp, best = 2.5 * target_mean, (np.inf, 0.0, 0.0, 0.0)
        for _ in range(5):
            mean, std = stats(amp, power)
            best = min(best, (abs(mean - target_mean), amp, mean, std))
            amp *= target_mean / max(mean, 1e-3)
        if refine:  # the mean is a step function of the amplitude (rounding): bisect to the closest step
            lo, hi = 0.8 * best[1], 1.2 * best[1]
            for _ in range(16):
                mid = 0.5 * (lo + hi)
                mean, std = stats(mid, power)
                best = min(best, (abs(mean - target_mean), mid, mean, std))
                lo, hi = (mid, hi) if mean < target_mean else (lo, mid)
        return best[1], best[2], best[3]

    lo, hi = np.log(0.3), np.log(5.0)
    for _ in range(10):
        mid = 0.5 * (lo + hi)
        _, mean, std = amplitude(float(np.exp(mid)), refine=False)
        lo, hi = (mid, hi) if std / mean < target_std / target_mean else (lo, mid)
    power = float(np.exp(0.5 * (lo + hi)))
    amp, mean, _ = amplitude(power, refine=True)
    if abs(mean - target_mean) > 0.05 * target_mean:
        raise ValueError(f"phantom: identity TRE {mean:.2f} mm, cannot reach the target {target_mean} mm")
    return motion.with_params(amplitude_mm=amp, power=power)


# ------------------------------------------------------------------------------------------- writing
#: Text form of the 300-point files per case, as in the DIR-Lab release: "plain" rows ``211\t139\t66``,
#: "padded" rows `` 82\t 55\t 72\t`` (a space before and a tab after every integer). CRLF everywhere.
LANDMARK_STYLE: dict[int, str] = {c: "padded" if c in (2, 6, 7, 8, 10) else "plain" for c in range(1, 11)}


def _landmark_text(points_1based: np.ndarray, style: str) -> str:
    """DIR-Lab landmark text, one CRLF-terminated row per point; ``style`` "plain" or "padded"."""
    if style == "padded":
        lines = [f" {x}\t {y}\t {z}\t" for x, y, z in points_1based]
    elif style == "plain":
        lines = [f"{x}\t{y}\t{z}" for x, y, z in points_1based]
    else:
        raise ValueError(f"unknown landmark text style {style!r}")
    return "".join(line + "\r\n" for line in lines)


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
    """Anatomy and (uncalibrated) motion of ``case``; the generator continues with the vessel trees."""
    size, spacing = PHANTOM_GEOMETRY[case]
    extent = tuple(float(n * s) for n, s in zip(size, spacing, strict=True))
    rng = np.random.default_rng([seed, case])
    domes = (float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03)))
    anat = _Anatomy(extent, domes)  # type: ignore[arg-type]
    motion = Motion(
        extent,  # type: ignore[arg-type]
        domes,
        amplitude_mm=1.0,
        power=1.0,
        ap=float(rng.uniform(*_AP_RANGE)),
        lr=float(rng.uniform(*_LR_RANGE)),
        asym=float(rng.uniform(-0.2, 0.2)),
        post=float(rng.uniform(*_POST_RANGE)),
        lag_cc=float(rng.uniform(*_LAG_RANGE)),
        lag_ap=float(rng.uniform(*_LAG_RANGE)),
        wall_mm=float(rng.uniform(1.5, 3.0)),
        saturation_mm=(1.0 + MAX_DISPLACEMENT_MARGIN) * MAX_DISPLACEMENT_MM[case],
    )
    return anat, motion, rng


def _still_points(anat: _Anatomy, spacing: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Voxel centres (M, 3) mm of the spine and the back behind it (vertebral bodies, arches, the body wall
    behind them): the region that must not move."""
    x, y, z = _axes_mm((0, 0, 0), size - 1, spacing)
    spx, spy = anat.spine_centre()
    region = (np.hypot(x - spx, y - spy) < 28.0) | ((np.abs(x - spx) < 28.0) & (y > spy))
    region = np.broadcast_to(region & (anat.body_radius(x, y) < 1.0), (len(z.ravel()), *region.shape[1:]))
    iz, iy, ix = np.nonzero(region)
    return coords.voxel_to_mm(np.stack([ix, iy, iz], axis=1).astype(np.float64), spacing)


def motion_statistics(
    exact_vox: dict[str, np.ndarray], files_1based: dict[str, np.ndarray], spacing: Sequence[float]
) -> dict:
    """Figures of the landmark motion: per-axis shares of the summed per-axis mean |T50 - T00| (from the
    files, mm), max exact displacement (mm), and the RMS distance (mm) of the T10..T40 positions from the
    straight T00 -> T50 line at the one best fraction per phase (least squares over the landmarks), which
    is what a fixed-fraction model of the intermediate phases cannot explain."""
    sp = np.asarray(spacing, dtype=np.float64)
    d_files = (files_1based["T50"] - files_1based["T00"]) * sp
    per_axis = np.abs(d_files).mean(axis=0)
    p0 = exact_vox["T00"] * sp
    d = exact_vox["T50"] * sp - p0
    residuals, fractions = [], {}
    for phase in layout.PHASES[1:-1]:
        step = exact_vox[phase] * sp - p0
        f = float((step * d).sum() / max(float((d * d).sum()), 1e-12))
        fractions[phase] = f
        residuals.append(np.linalg.norm(step - f * d, axis=1))
    res = np.concatenate(residuals)
    return {
        "axis_share_xyz": [float(v) for v in per_axis / per_axis.sum()],
        "mean_abs_displacement_xyz_mm": [float(v) for v in per_axis],
        "max_displacement_mm": float(np.linalg.norm(d, axis=1).max()),
        "straight_line_fraction": fractions,
        "straight_line_rms_deviation_mm": float(np.sqrt((res**2).mean())),
        "straight_line_max_deviation_mm": float(res.max()),
    }


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

    # Candidates must stay inside the volume under a motion as large as any calibration can choose.
    cap = MAX_DISPLACEMENT_MM[case]
    points, n_on_bifurcations = _select_landmarks(
        anat,
        segments,
        bifurcations,
        bends,
        motion.with_params(amplitude_mm=1.2 * cap),
        size,
        spacing,
        np.random.default_rng([seed, case, 100]),
    )
    motion = _calibrate(motion, points, spacing, (TARGET_IDENTITY_TRE_MM[case], TARGET_IDENTITY_STD_MM[case]))

    exact = {p: coords.mm_to_voxel(motion.forward(points, p, lung=True), spacing) for p in layout.PHASES}
    files = {p: np.rint(coords.to_dirlab_index(v)).astype(np.int64) for p, v in exact.items()}
    for p, v in files.items():
        if ((v < 1) | (v > size)).any():
            raise RuntimeError(f"phantom case {case}: a {p} landmark left the volume (bug)")
    sampled = np.sort(np.random.default_rng([seed, case, 200]).choice(N_LANDMARKS, N_SAMPLED4D, replace=False))

    volume, lung, no_lung = _render_anatomy(anat, segments, shape, spacing, np.random.default_rng([seed, case, 300]))
    case_dir = out / case_folder_name(case)
    for k, phase in enumerate(layout.PHASES):
        noise = np.random.default_rng([seed, case, 400 + k]).normal(0.0, NOISE_HU, shape).astype(np.float32)
        image = _warp(volume, no_lung, motion, phase_time(phase), spacing) + noise
        _write_raw(case_dir / "Images" / image_file_name(case, phase), image)
    for phase in ("T00", "T50"):
        write_text(case_dir / landmark_file_path(case, phase), _landmark_text(files[phase], LANDMARK_STYLE[case]))
    for phase in layout.PHASES:
        text = _landmark_text(files[phase][sampled], "plain")
        write_text(case_dir / sampled4d_file_path(case, phase), text)
    if with_mask:
        _write_mask(case_dir / mask_file_path(case), lung, spacing_xyz)

    still = _still_points(anat, spacing, size)
    still_max = max(
        float(np.linalg.norm(motion.forward(still, p, lung=False) - still, axis=1).max()) for p in layout.PHASES[1:]
    )
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
        "phase_time": {p: phase_time(p) for p in layout.PHASES},
        "target_identity_tre_mm": TARGET_IDENTITY_TRE_MM[case],
        "target_identity_std_mm": TARGET_IDENTITY_STD_MM[case],
        "identity_tre_files_mm": list(tre_files),
        "identity_tre_exact_mm": list(tre_exact),
        "max_displacement_cap_mm": cap,
        "spine_max_displacement_mm": still_max,
        **motion_statistics(exact, files, spacing_xyz),
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
    """Exact truth of one phantom case (from ``truth/case{N}.npz``; see :func:`load_truth_file`).

    ``landmarks[phase]``: (300, 3) float64 0-based voxel (x, y, z) of every phase T00..T50 (unrounded);
    ``mask_T00``: bool (z, y, x) true lung mask; ``sampled4d_index``: (75,) rows of the 300 used for
    Sampled4D; ``motion``: the analytic :class:`Motion` (both compartments, lags); ``summary``: the JSON
    record. :meth:`positions` maps any T00 point to any phase.
    """

    case: int
    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    landmarks: dict[str, np.ndarray]
    mask_T00: np.ndarray
    sampled4d_index: np.ndarray
    motion: Motion
    summary: dict

    def in_lung(self, points_vox: np.ndarray) -> np.ndarray:
        """(M,) bool: whether T00 points (M, 3) 0-based voxel (x, y, z) lie in the T00 lungs (the analytic
        shape the mask was rendered from: equal to ``mask_T00`` at voxel centres)."""
        p = coords.voxel_to_mm(np.asarray(points_vox, dtype=np.float64).reshape(-1, 3), self.spacing_xyz)
        return self.motion.anatomy().lung(p[:, 0], p[:, 1], p[:, 2])

    def positions(
        self, points_vox: np.ndarray, phase: str | float, lung: np.ndarray | bool | None = None
    ) -> np.ndarray:
        """Exact positions (M, 3) 0-based voxel (x, y, z) at ``phase`` ("T00".."T50", or a breathing time in
        [0, 1]) of T00 points (M, 3) 0-based voxel (x, y, z), float.

        ``lung``: the points' compartment (True: lung field, False: body field, (M,) bool per point;
        default: the T00 lungs, :meth:`in_lung`). Mask voxels and landmarks are lung points. About 5 s of one
        core per million points and phase.
        """
        p = coords.voxel_to_mm(np.asarray(points_vox, dtype=np.float64).reshape(-1, 3), self.spacing_xyz)
        return coords.mm_to_voxel(self.motion.forward(p, phase, lung=lung), self.spacing_xyz)

    def displacement_mm(
        self, points_vox: np.ndarray, phase: str | float, lung: np.ndarray | bool | None = None
    ) -> np.ndarray:
        """True displacement (M, 3) mm (x, y, z) from T00 to ``phase`` of T00 points (M, 3) 0-based voxel."""
        p = np.asarray(points_vox, dtype=np.float64).reshape(-1, 3)
        return (self.positions(p, phase, lung) - p) * np.asarray(self.spacing_xyz)


def truth_file(dataset_dir: str | Path, case: int) -> Path:
    """``DATASET/truth/case{N}.npz``: the one file that carries a case's truth (copy it along with a case)."""
    return Path(dataset_dir) / _TRUTH_DIR / f"case{case}.npz"


def load_truth_file(path: str | Path) -> PhantomTruth:
    """Read a truth file written by the phantom (``truth/case{N}.npz``, self-contained)."""
    with np.load(path) as data:
        summary = json.loads(str(data["summary"]))
        return PhantomTruth(
            case=int(summary["case"]),
            size_xyz=tuple(int(v) for v in data["size_xyz"]),  # type: ignore[arg-type]
            spacing_xyz=tuple(float(v) for v in data["spacing_xyz"]),  # type: ignore[arg-type]
            landmarks={p: data[f"landmarks_{p}"].copy() for p in layout.PHASES},
            mask_T00=data["mask_T00"].astype(bool),
            sampled4d_index=data["sampled4d_index"].copy(),
            motion=Motion.from_dict(summary["motion"]),
            summary=summary,
        )


def load_truth(dataset_dir: str | Path, case: int) -> PhantomTruth:
    """The truth of ``case`` in a written phantom dataset (``DATASET/truth/case{N}.npz``)."""
    return load_truth_file(truth_file(dataset_dir, case))


def true_positions_vox(truth_path: str | Path, phase: str | float, points_vox: np.ndarray) -> np.ndarray:
    """Convenience: :meth:`PhantomTruth.positions` of the truth file ``truth_path`` (M, 3) -> (M, 3) voxel."""
    return load_truth_file(truth_path).positions(points_vox, phase)

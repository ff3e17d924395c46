"""The phantom's analytic breathing motion (:class:`Motion`): the exact truth every phase is made from.

Pure model, no randomness and no files: the generator (calibrate.py, render.py, write.py) and the truth reader
(rnr/data/truth.py) both use it; evaluation imports only this module and anatomy.py of the phantom package.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ... import layout
from .anatomy import Anatomy, smoothstep

#: Nominal breathing curve s_t: fraction of the T00 -> T50 motion reached at each phase.
BREATHING: dict[str, float] = {p: float((1 - np.cos(np.pi * k / 5)) / 2) for k, p in enumerate(layout.PHASES)}


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
    fixed-point iteration). Images (render.py) show at a phase point ``y`` the lung point ``psi_lung(y)``
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

    def anatomy(self) -> Anatomy:
        return Anatomy(self.extent_mm, self.dome_offsets)

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
        spine = smoothstep((np.hypot(x - spx, y - spy) - 30.0) / 45.0)
        m = (1.0 - smoothstep((anat.body_radius(x, y) - 0.45) / 0.33)) * spine
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

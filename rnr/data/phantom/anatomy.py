"""The phantom's analytic anatomy in millimetres (index space): body, lungs, heart, spine, vessel trees, ribs.

Shapes only (implicit functions and capsule lists), independent of any voxel grid: render.py rasterises them,
motion.py moves them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


def smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class Anatomy:
    """Body, lungs and organs of one case: implicit shapes in mm (index space), independent of the grid."""

    extent: tuple[float, float, float]
    dome_offsets: tuple[float, float]  # per-side diaphragm dome height change (fraction of z extent)

    #: Vertebra + disc height (mm) along z.
    VERTEBRA_PERIOD_MM = 28.0

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

    def lung_box(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) mm (x, y, z): a box holding both lungs (:meth:`lung` is False outside it)."""
        ex, ey, ez = self.extent
        lo = np.array([self.cx - 0.345 * ex, self.cy - 0.26 * ey, 0.07 * ez])
        hi = np.array([self.cx + 0.345 * ex, self.cy + 0.32 * ey, 0.90 * ez])
        return lo, hi

    def lung_points(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """:meth:`lung` of 1-D point coordinates, evaluated only inside :meth:`lung_box` (faster)."""
        lo, hi = self.lung_box()
        box = (x > lo[0]) & (x < hi[0]) & (y > lo[1]) & (y < hi[1]) & (z > lo[2]) & (z < hi[2])
        out = np.zeros(x.shape, dtype=bool)
        out[box] = self.lung(x[box], y[box], z[box])
        return out

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
class Segment:
    a: np.ndarray  # (3,) mm, parent end
    b: np.ndarray  # (3,) mm, child end
    radius: float  # mm


def _sample_lung(anat: Anatomy, n: int, side: float, margin: float, rng: np.random.Generator) -> np.ndarray:
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


def grow_trees(anat: Anatomy, rng: np.random.Generator) -> tuple[list[Segment], list[np.ndarray], list[np.ndarray]]:
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
    segments: list[Segment] = []
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
        segments += [Segment(pts[par[i]], pts[i], float(radius[i])) for i in range(1, len(nodes))]
        bifurcations += [pts[i] for i in range(len(nodes)) if n_children[i] >= 2]
        bends += [pts[i] for i in range(len(nodes)) if n_children[i] == 1]
    return segments, bifurcations, bends


Capsule = tuple[np.ndarray, np.ndarray, float]


def _ribs(anat: Anatomy) -> list[Capsule]:
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


def bones(anat: Anatomy) -> list[Capsule]:
    """Bone capsules (a, b, radius mm): ribs, the vertebral arches and the sternum (+650 HU)."""
    ez = anat.extent[2]
    spx, spy = anat.spine_centre()
    period = anat.VERTEBRA_PERIOD_MM
    arches = [
        (np.array([spx, spy + 14.0, zc]), np.array([spx, spy + 40.0, zc + 8.0]), 5.0)
        for zc in np.arange(period / 2, ez, period)
    ]
    sternum = (
        np.array([anat.cx, anat.cy - 0.9 * anat.by, 0.12 * ez]),
        np.array([anat.cx, anat.cy - 0.88 * anat.by, 0.60 * ez]),
        6.0,
    )
    return _ribs(anat) + arches + [sternum]


def airways(anat: Anatomy) -> list[Capsule]:
    """Air capsules: the trachea down to the carina and the main bronchi toward each hilum."""
    ex, ey, ez = anat.extent
    carina = np.array([anat.cx, anat.cy - 0.02 * ey, 0.38 * ez])
    out = [(np.array([anat.cx, anat.cy - 0.05 * ey, -10.0]), carina, 8.0)]
    for side in (-1.0, 1.0):
        hilum = np.array([anat.cx + side * (0.035 * ex + 20.0), anat.cy + 0.02 * ey, 0.46 * ez])
        out.append((carina, hilum, 5.5))
    return out

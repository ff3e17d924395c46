"""Small COPDgene-layout folders for the reader's tests: every file written here byte by byte, independently of
the reader and of the phantom, in the forms the copies of COPDgene in circulation take.

The image is argued from what a scanner writes, not tuned: air (-1000 HU) in the square slice, a body ellipse
of soft tissue (+40 HU) holding two lungs (-850 HU), Gaussian noise of 10 HU, stored as HU + 1024 clipped at raw
0 (the scanner's floor); outside the circle inscribed in the slice the reconstruction is undefined and holds the
padding value (-3024 HU, raw -2000). Landmarks: 300 distinct lung voxels at inhale, moved at exhale by a
whole-voxel displacement mostly cranial (toward slice 1), as breath-hold exhale moves the lung bases.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIZE = (40, 36, 14)
SPACING = (0.8, 0.8, 2.5)
PADDING_HU = -3024
FORMS = {
    "int_tab_crlf": lambda v: "\t".join(f"{int(x)}" for x in v) + "\r\n",
    "float_tab_lf": lambda v: "\t".join(f"{float(x):.6f}" for x in v) + "\n",
    "int_padded_lf": lambda v: "".join(f" {int(x)}\t" for x in v) + "\n",
    "float_padded_crlf": lambda v: "".join(f" {float(x):.6f}\t" for x in v) + "\r\n",
}


def image_hu(size=SIZE, seed: int = 0, padding_hu: int = PADDING_HU) -> np.ndarray:
    """(nz, ny, nx) HU as written (whole HU, raw floor, padding outside the inscribed circle)."""
    nx, ny, nz = size
    y, x = np.meshgrid(np.arange(ny) - (ny - 1) / 2, np.arange(nx) - (nx - 1) / 2, indexing="ij")
    body = (x / (0.4 * nx)) ** 2 + (y / (0.33 * ny)) ** 2 < 1
    lungs = ((np.abs(x) - 0.18 * nx) / (0.13 * nx)) ** 2 + (y / (0.25 * ny)) ** 2 < 1
    slice_hu = np.where(lungs, -850.0, np.where(body, 40.0, -1000.0))
    rng = np.random.default_rng(seed)
    hu = slice_hu[None] + 10.0 * rng.standard_normal((nz, ny, nx))
    hu = np.clip(np.rint(hu), -1024, None)
    outside = np.hypot(x / (nx / 2), y / (ny / 2)) > 1
    hu[:, outside] = padding_hu
    return hu.astype(np.int32)


def lung_landmarks(size=SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(inhale, exhale) 1-based (300, 3) integer voxel indices: distinct inhale voxels inside the lungs, exhale
    = inhale moved 0..3 slices cranially and -1..1 voxels in-plane, kept inside the volume."""
    nx, ny, nz = size
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.nonzero(image_hu(size, seed) < -700)
    keep = (zz >= 4) & (xx > 0) & (xx < nx - 1) & (yy > 0) & (yy < ny - 1)  # room for the cranial motion
    pick = rng.choice(np.count_nonzero(keep), 300, replace=False)
    inhale = np.stack([xx[keep][pick], yy[keep][pick], zz[keep][pick]], axis=1) + 1
    move = np.stack([rng.integers(-1, 2, 300), rng.integers(-1, 2, 300), -rng.integers(0, 4, 300)], axis=1)
    exhale = np.clip(inhale + move, 1, np.asarray(size))
    return inhale, exhale


def write_case(
    root: Path,
    case: int = 1,
    folder: str = "copd{n}/copd{n}",
    form: str = "int_tab_crlf",
    size=SIZE,
    spacing=SPACING,
    seed: int = 0,
) -> dict:
    """Write one COPDgene-layout case under ``root`` (and its grid into root/geometry.json); return its parts:
    folder, the image HU written, the landmarks (1-based) and the files."""
    case_dir = root / folder.format(n=case) if folder else root
    case_dir.mkdir(parents=True, exist_ok=True)
    hu = image_hu(size, seed)
    inhale, exhale = lung_landmarks(size, seed)
    files = {}
    for tag, points in (("i", inhale), ("e", exhale)):
        files[f"{tag}_image"] = case_dir / f"copd{case}_{tag}BHCT.img"
        (hu + 1024).astype("<i2").tofile(files[f"{tag}_image"])
        files[f"{tag}_landmarks"] = case_dir / f"copd{case}_300_{tag}BH_xyz_r1.txt"
        files[f"{tag}_landmarks"].write_bytes("".join(FORMS[form](p) for p in points).encode())
    geometry = root / "geometry.json"
    entries = json.loads(geometry.read_text())["cases"] if geometry.is_file() else {}
    entries[str(case)] = {"size_xyz": list(size), "spacing_xyz": list(spacing)}
    geometry.write_text(json.dumps({"cases": entries}))
    return {"case_dir": case_dir, "hu": hu, "inhale": inhale, "exhale": exhale, "files": files}


def identity_tre(inhale_path: Path, exhale_path: Path, spacing=SPACING) -> tuple[float, float]:
    """Mean and sample std (ddof 1) of the landmark distances in mm, straight from the two text files."""

    def parse(path: Path) -> np.ndarray:
        return np.array([[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()])

    d = np.linalg.norm((parse(exhale_path) - parse(inhale_path)) * np.asarray(spacing), axis=1)
    return float(d.mean()), float(d.std(ddof=1))

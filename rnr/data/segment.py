"""Lung masks on the T00 grid: lungmask (deep learning), a user-provided mask, or a classical threshold.

The registration samples its training points inside the T00 lung mask, so every method returns a boolean
array of shape (nz, ny, nx) on the converted T00 grid (array order of coords.py) and :func:`segment_case`
writes it as ``mask_T00.nii.gz`` (uint8 0/1, same spacing, origin and direction as ``T00.nii.gz``).

Methods (``METHODS``):

* ``lungmask`` -- the U-Net R231 of lungmask (Hofmanninger et al., Eur. Radiol. Exp. 2020) through its
  ``LMInferer``; its labels (1 = right lung, 2 = left lung) are merged into one lung mask. lungmask works
  slice by slice on axial slices resampled to 256 x 256 and expects HU; it reorients a SimpleITK image to
  LPS itself and maps the mask back, so the T00 image is handed over with the direction the converter wrote.
  The weights (a ~120 MB PyTorch state dict) are read from a local file: ``weights`` when given, else
  torch's hub cache, where lungmask would put its own download; only when neither exists is a download
  tried, and a failure tells exactly how to provide the file (compute nodes are often offline).
* ``provided`` -- the user's mask (``mask_provided.nii.gz``, made by ``rnr convert`` from DIR-Lab's
  ``Masks/``), checked to lie on the T00 grid.
* ``threshold`` -- :func:`threshold_lung_mask`, a classical segmentation that needs no weights.
* ``auto`` -- ``provided`` when the case has a provided mask, else ``lungmask``.

Whatever the method, the mask is checked before it is written (:func:`rnr.data.case.check_mask_content`: at
least 80 % of its voxels below -500 HU in T00, at least 0.5 L, at least 90 % of it in its two largest
connected components); a mask failing that is refused with its figures, and nothing is written. The
figures of an accepted mask are recorded next to it in ``mask_T00.json`` (:func:`mask_record_path`):
method, figures, thresholds and, for a provided mask, how its orientation was taken.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .. import layout
from ..io import InputError, array_from_image, read_image, read_json, write_image, write_json
from .case import (
    AIR_HU,
    MIN_AIR_FRACTION,
    MIN_MAIN_FRACTION,
    MIN_VOLUME_L,
    ConvertedCase,
    check_mask_content,
    check_on_grid,
    load_case,
    oriented_mask,
)

log = logging.getLogger(__name__)

METHODS = ("auto", "lungmask", "provided", "threshold")

# lungmask's R231 model: its release URL (lungmask.mask.MODEL_URLS["R231"]) and file name. torch.hub keeps
# downloads under <torch hub dir>/checkpoints/<file name>, which is where lungmask looks first.
LUNGMASK_MODEL = "R231"
LUNGMASK_URL = "https://github.com/JoHof/lungmask/releases/download/v0.0/unet_r231-d5d2fc3d.pth"
LUNGMASK_FILE = LUNGMASK_URL.rsplit("/", 1)[1]


@dataclass(frozen=True)
class ThresholdParams:
    """Parameters of :func:`threshold_lung_mask`.

    Attributes:
        threshold_hu: voxels below this HU value are air (lung parenchyma is about -850 HU at inhale,
            soft tissue about 0 HU; -400 sits well between them).
        second_fraction: the second-largest air component is kept as the other lung only when its volume
            is at least this fraction of the largest (the two lungs are of similar size; smaller pockets
            such as stomach or bowel gas are not).
        closing_radius: radius (voxels) of the 3-D closing that smooths the boundary and takes in vessels
            touching the lung surface.
    """

    threshold_hu: float = -400.0
    second_fraction: float = 0.1
    closing_radius: int = 1


def threshold_lung_mask(hu: np.ndarray, params: ThresholdParams = ThresholdParams()) -> np.ndarray:
    """Classical lung segmentation of a CT volume in HU, shape (nz, ny, nx) -> bool (nz, ny, nx).

    1. Air: voxels below ``params.threshold_hu``.
    2. Outside air: air components (6-connected, 3-D) touching one of the four side faces of the volume
       (x or y border) are the air around the body and are removed. The top and bottom faces are not used:
       the lungs and the trachea may be cut by the first or last slice.
    3. Lungs: the largest remaining 3-D component, plus the second largest when it has at least
       ``second_fraction`` of the largest's volume (two lungs not joined by the airways).
    4. A 3-D closing with a ball of ``closing_radius`` voxels, then holes filled per axial slice, so that
       vessels and airway walls inside the lungs belong to the mask (as in lungmask's masks).

    Raises InputError when no air is found inside the body (not a lung CT, or not in HU).
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"expected a 3-D volume (z, y, x), got shape {hu.shape}")
    air = hu < params.threshold_hu

    labels, _ = ndimage.label(air)  # 6-connectivity
    side = np.concatenate(
        [labels[:, 0, :].ravel(), labels[:, -1, :].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]
    )
    inside = air & ~np.isin(labels, np.unique(side[side > 0]))

    labels, n = ndimage.label(inside)
    if n == 0:
        raise InputError(
            f"no air below {params.threshold_hu} HU inside the body: expected a lung CT in HU, "
            f"found values in [{hu.min():.0f}, {hu.max():.0f}]"
        )
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(sizes)[::-1]
    keep = [order[0] + 1]
    if n > 1 and sizes[order[1]] >= params.second_fraction * sizes[order[0]]:
        keep.append(order[1] + 1)
    mask = np.isin(labels, keep)

    r = params.closing_radius
    if r > 0:
        ball = _ball(r)
        # Pad so that the closing does not erode lungs cut by the volume border.
        padded = np.pad(mask, r, mode="edge")
        mask = ndimage.binary_closing(padded, structure=ball)[r:-r, r:-r, r:-r]
    for z in range(mask.shape[0]):
        mask[z] = ndimage.binary_fill_holes(mask[z])
    return mask


def _ball(radius: int) -> np.ndarray:
    grid = np.mgrid[-radius : radius + 1, -radius : radius + 1, -radius : radius + 1]
    return (grid**2).sum(axis=0) <= radius**2


# -- lungmask ----------------------------------------------------------------------------------------------
def lungmask_weights(weights: str | Path | None = None, *, download: bool = True, url: str = LUNGMASK_URL) -> Path:
    """Path of a local lungmask R231 weights file.

    ``weights`` (a file the user provides) wins; else the file in torch's hub cache
    (``<torch.hub.get_dir()>/checkpoints/unet_r231-d5d2fc3d.pth``, lungmask's own download location);
    else, when ``download`` is true, the file is downloaded there from ``url``. Raises InputError with
    instructions when the file is missing and cannot be downloaded.
    """
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise InputError(
                f"{path}: lungmask weights file not found (expected the {LUNGMASK_MODEL} state "
                f"dict {LUNGMASK_FILE}, downloadable from {LUNGMASK_URL})"
            )
        return path
    cached = lungmask_cache_path()
    if cached.is_file():
        return cached
    reason = "downloading is switched off"
    if download:
        import torch

        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            # download_url_to_file writes a temporary file and renames it: no half file is left behind.
            torch.hub.download_url_to_file(url, str(cached), progress=False)
            return cached
        except Exception as exc:  # any network failure means the same to the user
            reason = f"the download failed: {type(exc).__name__}: {exc}"
    raise InputError(missing_weights_message(reason))


def lungmask_cache_path() -> Path:
    """Where torch.hub (and so lungmask) keeps the R231 weights: ``$TORCH_HOME/hub/checkpoints/...``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / LUNGMASK_FILE


def missing_weights_message(reason: str) -> str:
    """The instructions shown when the lungmask weights are neither local nor downloadable."""
    return (
        f"{lungmask_cache_path()}: the lungmask {LUNGMASK_MODEL} weights are not available locally and "
        f"{reason}. Compute nodes are often offline; on a machine with internet access download "
        f"{LUNGMASK_URL} and either (a) copy it to {lungmask_cache_path()} (torch's hub cache, "
        f"$TORCH_HOME/hub/checkpoints/, where lungmask looks), or (b) give its path with "
        f"`rnr segment --weights FILE`, in the workflow with the config key `masks: {{weights: FILE}}`. "
        f"Alternatively use --method provided (DIR-Lab Masks/) or --method threshold"
    )


def lungmask_lung_mask(
    image: sitk.Image,
    weights: str | Path | None = None,
    *,
    download: bool = True,
    force_cpu: bool = False,
    batch_size: int = 20,
) -> np.ndarray:
    """Run lungmask R231 on a CT ``image`` in HU -> bool (nz, ny, nx) in the image's array order.

    ``image`` keeps its direction cosines: lungmask reorients it to LPS for the network and maps the
    labels back, so the mask matches the image voxel for voxel.
    """
    from lungmask import LMInferer

    path = lungmask_weights(weights, download=download)
    try:
        inferer = LMInferer(
            modelname=LUNGMASK_MODEL, modelpath=str(path), force_cpu=force_cpu, batch_size=batch_size, tqdm_disable=True
        )
    except Exception as exc:  # torch.load and load_state_dict raise various types
        raise InputError(
            f"{path}: cannot load as lungmask {LUNGMASK_MODEL} weights (expected the state dict "
            f"{LUNGMASK_FILE} from {LUNGMASK_URL}; {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0]})"
        ) from None
    labels = inferer.apply(sitk.Cast(image, sitk.sitkFloat32))
    # R231 labels: 0 background, 1 right lung, 2 left lung -> one lung mask.
    return np.asarray(labels) > 0


# -- one case ----------------------------------------------------------------------------------------------
def resolve_method(case: ConvertedCase, method: str) -> str:
    """``auto`` -> ``provided`` when the case has ``mask_provided.nii.gz``, else ``lungmask``."""
    if method not in METHODS:
        raise ValueError(f"segmentation method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "auto":
        return "provided" if case.provided_mask_path is not None else "lungmask"
    return method


def mask_record_path(mask_path: str | Path) -> Path:
    """The JSON record written next to a mask: ``mask_T00.nii.gz`` -> ``mask_T00.json``."""
    mask_path = Path(mask_path)
    name = mask_path.name
    for suffix in (".nii.gz", ".nii", ".mha"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return mask_path.with_name(name + ".json")


def read_mask_record(mask_path: str | Path) -> dict | None:
    """The record :func:`segment_case` wrote next to ``mask_path`` (None when there is none: a mask made
    before records existed, or by hand). Keys: method, voxels, air_fraction, volume_l, n_components,
    two_largest_fraction, z_flipped_air_fraction, air_hu, thresholds, orientation, mask, t00."""
    path = mask_record_path(mask_path)
    return read_json(path) if path.is_file() else None


def segment_case(
    case_dir: str | Path,
    method: str = "auto",
    *,
    weights: str | Path | None = None,
    out: str | Path | None = None,
    download: bool = True,
) -> tuple[Path, str]:
    """Write the T00 lung mask of a converted case; return (path written, method used).

    ``out`` defaults to ``<case_dir>/mask_T00.nii.gz``. The mask is uint8 0/1 with the T00 image's
    geometry, and is checked (on the grid, oriented as T00, lung-like content) before it is written
    atomically, after its record (:func:`mask_record_path`). A failure leaves neither (an earlier record at
    that place is removed first).
    """
    out = Path(out) if out is not None else Path(case_dir) / layout.MASK_T00
    record_path = mask_record_path(out)
    record_path.unlink(missing_ok=True)  # whatever fails below, no record of an earlier mask stays
    case = load_case(case_dir)
    used = resolve_method(case, method)
    t00 = read_image(case.image_path("T00"))
    check_on_grid(t00, case.size_xyz, case.spacing_xyz, case.image_path("T00"))
    hu = array_from_image(t00).astype(np.float32)

    orientation = None
    culprit: Path = case.image_path("T00")
    if used == "provided":
        if case.provided_mask_path is None:
            raise InputError(
                f"{case.path / layout.MASK_PROVIDED}: no provided mask (expected one converted "
                f"from Masks/case{case.case}_T00_mask.mhd by rnr convert); "
                f"use --method lungmask or threshold"
            )
        culprit = case.provided_mask_path
        mask, orientation = oriented_mask(
            read_image(culprit), t00.GetDirection(), case.size_xyz, case.spacing_xyz, culprit
        )
        converted = (case.info.get("sources") or {}).get("mask_orientation")
        if converted:  # how rnr convert took the user's Masks/ file
            orientation = f"{converted} (at conversion, from {case.info['sources'].get('mask')})"
    elif used == "threshold":
        mask = threshold_lung_mask(hu)
    else:
        mask = lungmask_lung_mask(t00, weights, download=download)

    if not mask.any():
        raise InputError(
            f"{culprit}: the {used} segmentation found no lung voxel (expected a lung mask; found an empty one)"
        )
    figures = check_mask_content(mask, hu, case.spacing_xyz, culprit, f"the {used} mask")
    record = {
        "method": used,
        "mask": out.name,
        "t00": str(case.image_path("T00")),
        **figures,
        "thresholds": {
            "min_air_fraction": MIN_AIR_FRACTION,
            "air_hu": AIR_HU,
            "min_volume_l": MIN_VOLUME_L,
            "min_two_largest_fraction": MIN_MAIN_FRACTION,
        },
        "orientation": orientation,
    }
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(t00)
    write_json(record_path, record)
    try:
        write_image(out, image)
    except BaseException:
        record_path.unlink(missing_ok=True)
        raise
    log.info("%s: %s mask with %d voxels -> %s", case.path, used, int(mask.sum()), out)
    return out, used


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap 2|A∩B| / (|A| + |B|) of two boolean masks of equal shape (1.0 when both are empty)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total

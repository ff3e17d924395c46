"""Convert one case of a dataset (rnr.data.DATASETS: dirlab, phantom) into the pipeline's case folder.

Input: --dataset NAME and --source, the dataset's folder as the user unpacked it (nothing is fetched) or as
`rnr phantom` wrote it. DIR-Lab (and the phantom, which imitates it):
  Case{N}Pack/ (Case8Deploy/ for case 8; folder and file names are matched ignoring letter case)
    Images/         raw 16-bit images case{N}_T00..T50 (e.g. case1_T00_s.img, case2_T00-ssm.img,
                    case6_T00.img): values are HU + 1024, x fastest, no header
    ExtremePhases/  300 landmarks of T00 and T50 (Case1_300_T00_xyz.txt, case6_dirLab300_T50_xyz.txt, ...)
    Sampled4D/      optional, 75 landmarks per phase (case{N}_4D-75_T00.txt ..)
    Masks/          optional, your own T00 lung mask case{N}_T00_mask.mhd on the T00 grid
Image size and spacing come from DIR-Lab's table, or from a geometry.json next to the case folders
(the phantom writes one).

Output (--out CASE_DIR):
  T00.nii.gz .. T50.nii.gz   int16 HU volumes with spacing in mm; voxels in DIR-Lab order (slice 1 =
                             most superior), direction diag(1, 1, -1) so viewers show the patient upright
  landmarks_T00.csv, landmarks_T50.csv   300 rows: x_vox,y_vox,z_vox (0-based = DIR-Lab index - 1) and
                             x_mm,y_mm,z_mm (= 0-based index * spacing)
  sampled4d_T00.csv ..       75 rows per phase, when Sampled4D/ is present
  mask_provided.nii.gz       your Masks/ mask in T00's voxel order, after checking its size, axis order
                             and spacing. Orientation: an identity direction (or T00's) means raw DIR-Lab
                             order; another axis permutation/flip is reoriented (case.json says how); an
                             oblique direction, or a mask that fits T00 only flipped along z, is refused
  case.json                  case, size, spacing, orientation, phases and source files (written last)

Every problem (missing or duplicated phase, wrong file size, a landmark file with the wrong row count or a
point outside the volume, the same landmark pair twice, a mask on another grid or upside down) stops with
a message naming the file, what was expected and what was found.

Example:
  rnr convert --dataset dirlab --source /data/dirlab --case 1 --out results/dirlab/data/case1
  rnr convert --dataset phantom --source results/phantom/source --case 1 --out results/phantom/data/case1
"""

from __future__ import annotations

import argparse

from ..data import DATASETS

HELP = "convert one DIR-Lab case: raw images -> NIfTI (HU), landmarks -> CSV (0-based voxel + mm)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        required=True,
        choices=list(DATASETS),
        help="the dataset: " + "; ".join(f"{d.name}: {d.summary}" for d in DATASETS.values()),
    )
    parser.add_argument(
        "--source",
        required=True,
        metavar="D",
        help="the dataset's folder: " + "; ".join(f"{d.name}: {d.source_description}" for d in DATASETS.values()),
    )
    parser.add_argument("--case", required=True, type=int, metavar="N", help="case number (one of the dataset's)")
    parser.add_argument("--out", required=True, metavar="CASE_DIR", help="converted case folder to write")


def run(args: argparse.Namespace) -> int:
    from ..data.case import load_case

    out = DATASETS[args.dataset].convert(args.source, args.case, args.out)
    case = load_case(out)
    extras = []
    if case.sampled4d("T00") is not None:
        extras.append("Sampled4D")
    if case.provided_mask_path is not None:
        extras.append("provided mask")
    size = "x".join(str(v) for v in case.size_xyz)
    spacing = ", ".join(f"{v:g}" for v in case.spacing_xyz)
    print(
        f"case {case.case}: {size} voxels of ({spacing}) mm, phases {' '.join(case.phases)}, 300 landmarks"
        f"{'; ' + ', '.join(extras) if extras else ''} -> {out}"
    )
    return 0

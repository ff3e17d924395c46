"""Export one run's fitted map as NIfTI files any ITK-based tool or viewer reads (3D Slicer, ITK-SNAP, ANTs).

Inputs:
  --case-dir C   the converted case the run was fitted on (rnr convert): T00..T50.nii.gz, case.json
  --run-dir R    the run folder of 'rnr register' (R/checkpoint.pt, R/run.json)

Outputs in --out D (each written atomically; export.json last), all on the T00 grid with T00.nii.gz's
geometry, so they overlay T00.nii.gz in a viewer:
  field.nii.gz               displacement field of phi: per T00 voxel the vector phi(x) - x in mm along ITK's
                             physical (LPS) axes, float32 (ITK's convention: sitk.DisplacementFieldTransform
                             reads it; with the converted direction diag(1, 1, -1), z is minus the index-space
                             z displacement)
  field_step{n}.nii.gz       the same for phi_n, n < N, of a stepped map (RNR: one per residual block)
  warped_T50.nii.gz          T50 sampled at phi(x) (HU, float32, trilinear)
  warped_{P}_step{n}.nii.gz  stepped maps on cases with T10..T40: phase P at phi_n(x), per the run's pairing
  detj.nii.gz                det J of phi per voxel (float32)
  export.json                what each file is, the run, the conventions

--format l2r writes Learn2Reg's form instead (rnr/data/l2r.py): disp_{NNNN}_{NNNN}.nii.gz (N = the case, 4 digits),
an (H, W, D, 3) array as nibabel's get_fdata() returns it, in VOXELS of the T00 grid along its array axes
(x, y, z), pointing from fixed (T00) to moving (T50); plus export.json.

Full-size DIR-Lab fields are about 400 MB each before compression; --no-steps keeps only phi.

Example:
  rnr export --case-dir results/phantom/data/case1 --run-dir results/phantom/runs/rnr/case1 --out exp/rnr/case1
  rnr export --format l2r --case-dir ... --run-dir ... --out exp/l2r    # -> exp/l2r/disp_0001_0001.nii.gz
"""

from __future__ import annotations

import argparse

HELP = "a run's map as NIfTI: ITK displacement field(s), warped images, det J map (for viewers and other tools)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--case-dir", required=True, help="converted case folder (rnr convert)")
    parser.add_argument("--run-dir", required=True, help="run folder (rnr register) holding checkpoint.pt")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where to evaluate the map (default: CUDA when available)",
    )
    parser.add_argument(
        "--format",
        choices=("itk", "l2r"),
        default="itk",
        help="itk (default): the files above; l2r: only Learn2Reg's disp_{N}_{N}.nii.gz (voxels, fixed T00 -> "
        "moving T50, (H, W, D, 3) as nibabel reads it; rnr/data/l2r.py) and export.json",
    )
    parser.add_argument("--no-steps", action="store_true", help="only phi: no field_step*/warped_*_step* files")
    parser.add_argument("--no-warped", action="store_true", help="no warped images")
    parser.add_argument("--no-detj", action="store_true", help="no det J map")


def run(args: argparse.Namespace) -> int:
    if args.format == "l2r":
        from ..evaluation.export import export_l2r

        manifest = export_l2r(args.case_dir, args.run_dir, args.out, device=args.device)
        print(
            f"rnr export: case {manifest['case']} [{manifest['configuration']}] ({manifest['method']}): "
            f"{manifest['files'][0]['file']} (Learn2Reg, voxels) -> {args.out} ({manifest['wall_s']:.1f} s)"
        )
        return 0
    from ..evaluation.export import export_run

    manifest = export_run(
        args.case_dir,
        args.run_dir,
        args.out,
        device=args.device,
        steps=not args.no_steps,
        warped=not args.no_warped,
        detj=not args.no_detj,
    )
    names = ", ".join(f["file"] for f in manifest["files"])
    print(
        f"rnr export: case {manifest['case']} [{manifest['configuration']}] ({manifest['method']}): "
        f"{names} -> {args.out} ({manifest['wall_s']:.1f} s)"
    )
    return 0

"""Write the built-in synthetic 4DCT phantom: ten lung cases laid out exactly like DIR-Lab.

Use it to run and test the whole pipeline without downloading DIR-Lab. Each case has phases T00
(end-inhale) .. T50 (end-exhale) with realistic HU (air, body, ribs, spine, two lungs with vessel trees)
and a known breathing motion: lungs sliding along a still spine and chest wall, mostly cranio-caudal and
largest at the bases, with region-dependent phase lags; calibrated so that the no-registration TRE mean and
std of the landmark files match the DIR-Lab case with the same number (3.9 .. 15 mm). Every phase is
rendered from the anatomy like a 4DCT acquisition: partial volume, slices 2.2-2.6 times the in-plane
spacing (DIR-Lab's ratio) with a slice-thick z profile, lung density that follows the motion (mass
preserving: denser at exhale, most at the bases), partly new parenchyma detail per phase, and CT noise.

Output (OUT_DIR):
  Case1Pack/ .. Case10Pack/ (Case8Deploy/)   DIR-Lab layout and file names: Images/*.img (raw int16,
                                             HU + 1024), ExtremePhases/ (300 landmarks of T00 and T50,
                                             1-based voxel indices), Sampled4D/ (75 landmarks per phase),
                                             Masks/case{N}_T00_mask.mhd (the true lung mask)
  geometry.json                              size and spacing per case (rnr convert reads it)
  truth/case{N}.npz, truth/case{N}.json      exact landmark positions, true lung mask, motion, each
                                             phase's lung volume, mean lung HU and lung mass; the .npz
                                             alone gives the exact position of any T00 point at any phase
                                             (rnr.data.truth.load_truth_file(...).positions)
  truth/summary.csv                          the realism table (printed too): lung volume T50/T00, mean
                                             lung HU at T00 and T50, lung mass T50/T00, noise, spacing,
                                             NCC of T00 with T50 under the true motion

At scale 1 a voxel is DIR-Lab's times 2.2 (about 2.1-2.6 mm in-plane, 5.4-5.5 mm slices; 0.4-0.6 M voxels
per case); --scale 0.5 doubles the spacing. About 10 s of one core per case at scale 1 (--jobs runs
cases in parallel). Same seed, same data.

--layout copdgene writes two breath-hold phases per case in DIR-Lab COPDgene's layout instead
(copd{N}/copd{N}/copd{N}_iBHCT.img, _eBHCT.img, copd{N}_300_iBH_xyz_r1.txt, ...): 512-wide slices at the
scale, padding outside the circular field of view, the landmark text forms of COPDgene's copies, motion
loosely calibrated (twice the 4DCT phantom's, at most 15 mm mean), no truth file and no mask
(rnr/data/phantom/copdgene.py).

Next step: rnr convert --dataset phantom --source OUT_DIR --case N --out CASE_DIR
  (--layout copdgene: rnr convert --dataset copdgene_phantom --source OUT_DIR ...)

Example:
  rnr phantom results/phantom/source --jobs 2             # all ten cases
  rnr phantom /tmp/phantom --cases 1 2 --scale 0.5        # two small cases for a quick test
"""

from __future__ import annotations

import argparse
import json
import time

from ..data.phantom import DATASET as PHANTOM

# The option ranges only: rnr.data.phantom's modules load lazily, so --help stays quick.
from ..data.phantom.grid import ACQUISITION_FACTOR, NOISE_HU, NOISE_RANGE_HU, SCALE_RANGE

HELP = "write the built-in synthetic 4DCT phantom (ten cases) in the DIR-Lab layout"


def _ranged(option: str, low: float, high: float, unit: str = ""):
    def parse(text: str) -> float:
        value = float(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{option} must be in [{low:g}, {high:g}]{unit}, got {value:g}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the dataset into (created)")
    parser.add_argument(
        "--cases",
        type=int,
        nargs="+",
        default=list(PHANTOM.cases),
        choices=PHANTOM.cases,
        metavar="N",
        help=f"case numbers to write (default: all, {PHANTOM.cases[0]} .. {PHANTOM.cases[-1]})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of anatomy, motion and noise (default 0)")
    parser.add_argument(
        "--scale",
        type=_ranged("--scale", *SCALE_RANGE),
        default=1.0,
        help=f"grid size factor, {SCALE_RANGE[0]:g} .. {SCALE_RANGE[1]:g} (default 1.0: DIR-Lab's voxel x "
        f"{ACQUISITION_FACTOR:g}; 0.5 doubles the spacing, same anatomy; below {SCALE_RANGE[0]:g} a case has "
        "fewer than 300 distinct landmark voxels)",
    )
    parser.add_argument(
        "--noise",
        type=_ranged("--noise", *NOISE_RANGE_HU, " HU"),
        default=NOISE_HU,
        help=f"CT noise std in HU, {NOISE_RANGE_HU[0]:g} .. {NOISE_RANGE_HU[1]:g} (default {NOISE_HU:g}; clinical "
        "4DCT: 20-40)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="cases written at once, in worker processes (default 1; same output)"
    )
    parser.add_argument(
        "--layout",
        choices=("dirlab", "copdgene"),
        default="dirlab",
        help="dirlab (default): 4DCT, T00..T50 in DIR-Lab's layout; copdgene: two breath-hold phases in DIR-Lab "
        "COPDgene's layout (copd{N}/copd{N}/, 512-wide slices at the scale, padding outside the field of view; "
        "loosely calibrated, no truth file, no mask: rnr/data/phantom/copdgene.py)",
    )
    parser.add_argument(
        "--no-masks",
        action="store_true",
        help="do not write Masks/case{N}_T00_mask.mhd (the true lung mask, placed as a user-provided mask)",
    )


def run(args: argparse.Namespace) -> int:
    if args.layout == "copdgene":
        return _run_copdgene(args)
    from ..data.phantom import read_summary, realism_text, write_dataset
    from ..data.truth import load_truth

    start = time.perf_counter()
    out = write_dataset(
        args.out_dir,
        cases=args.cases,
        seed=args.seed,
        scale=args.scale,
        with_masks=not args.no_masks,
        noise_hu=args.noise,
        jobs=max(1, args.jobs),
    )
    for case in args.cases:
        summary = load_truth(out, case).summary
        mean, std = summary["identity_tre_files_mm"]
        size = "x".join(str(v) for v in summary["size_xyz"])
        spacing = ", ".join(f"{v:g}" for v in summary["spacing_xyz"])
        print(
            f"case {case}: {size} voxels of ({spacing}) mm, identity TRE {mean:.2f} +- {std:.2f} mm "
            f"(DIR-Lab case {case}: {summary['target_identity_tre_mm']:.2f} +- "
            f"{summary['target_identity_std_mm']:.2f}), max {summary['max_displacement_mm']:.1f} mm"
        )
    table = read_summary(out)
    print("\nrealism table (truth/summary.csv):\n" + realism_text(table[table["case"].isin(args.cases)]))
    print(f"wrote {len(args.cases)} case(s) to {out} in {time.perf_counter() - start:.1f} s")
    return 0


def _run_copdgene(args: argparse.Namespace) -> int:
    from ..data.phantom.copdgene import write_dataset

    start = time.perf_counter()
    out = write_dataset(
        args.out_dir, cases=args.cases, seed=args.seed, scale=args.scale, noise_hu=args.noise, jobs=max(1, args.jobs)
    )
    for case in args.cases:
        summary = json.loads((out / "truth" / f"case{case}.json").read_text())
        mean, std = summary["identity_tre_files_mm"]
        size = "x".join(str(v) for v in summary["size_xyz"])
        spacing = ", ".join(f"{v:g}" for v in summary["spacing_xyz"])
        print(f"case {case}: {size} voxels of ({spacing}) mm, identity TRE {mean:.2f} +- {std:.2f} mm")
    print(f"wrote {len(args.cases)} case(s) in COPDgene's layout to {out} in {time.perf_counter() - start:.1f} s")
    return 0

"""Time RNR's fitting loop against the straightforward reference loop, and check that they agree; or, with
--evaluate, time the evaluation pass against the machine's matrix-rate limit.

Fitting loops (default): both loops run in this process on the same case, mask, settings and seed, through
the same loop (sampler, Adam, logging). The project's loop computes every phi_n and the Jacobians of all
residuals in one pass in closed form with a hand-written backward; the reference loop (rnr/methods/reference.py,
also the test suite's reference) does a separate forward pass per step and autograd Jacobians with
create_graph=True. Before timing, the loss and all parameter gradients of the first iteration are compared
(to float precision). Printed: iterations/s of each loop (median over --repeats), their ratio, the peak
memory of each loop (CPU: peak resident set; CUDA: peak allocated), the device, and the equality check.
Exit status 1 when the check fails.

Defaults are sized to finish in about three minutes on a laptop CPU: 100 iterations of the project's loop
and 10 of the reference loop (about 6x slower per iteration), each with the method's 10,000 points per
iteration; per-iteration figures do not depend on the number of iterations beyond the first few.
--method-defaults runs both loops at the method's 2500 iterations (the reference loop alone takes about 40
minutes on a 2-core CPU). --iterations N sets both loops, --reference-iterations the reference alone.

Evaluation (--evaluate): every phi_n and det J of every phi_n at --points voxels (default 1.6 M, a
DIR-Lab-size case mask, in a 256 x 256 x 94 grid) through the one chained pass that `rnr evaluate` uses,
interleaved with the pass's matrix products alone (the limit). Printed: seconds, points/s, the limit and
the ratio; --old-points N also times the previous step-by-step path on N points (scaled to --points).

Data: --case-dir (a converted case; mask: --mask, else CASE_DIR/mask_T00.nii.gz, else the provided mask);
without it a phantom case is generated in a temporary folder (rnr phantom + rnr convert, its true lung
mask). Settings: the method defaults unless changed by --iterations/--batch-size/--device or
--settings/--set. --out FILE.json also writes the record.

Example:
  rnr bench
  rnr bench --repeats 3 --device cuda --method-defaults
  rnr bench --evaluate --device cuda --repeats 3
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .. import layout
from ..data.case import ConvertedCase, load_case
from ..io import InputError, write_json
from .register import load_settings

HELP = "time the fitting loop against the straightforward reference, or (--evaluate) the evaluation pass"

#: Short defaults (about three minutes on a laptop CPU): iterations of the project's and the reference loop.
BENCH_ITERATIONS = 100
BENCH_REFERENCE_ITERATIONS = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--case-dir",
        type=Path,
        default=None,
        help="converted case folder (default: generate phantom case 1 in a temporary folder)",
    )
    parser.add_argument("--mask", type=Path, default=None, help="T00 lung mask (see above for the default)")
    parser.add_argument("--phantom-case", type=int, default=1, help="phantom case to generate (default 1)")
    parser.add_argument("--phantom-scale", type=float, default=1.0, help="phantom grid scale (default 1.0)")
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help=f"iterations of both loops (default {BENCH_ITERATIONS} project, {BENCH_REFERENCE_ITERATIONS} reference)",
    )
    parser.add_argument("--reference-iterations", type=int, default=None, help="iterations of the reference loop alone")
    parser.add_argument(
        "--method-defaults",
        action="store_true",
        help="both loops at the method's iterations (2500; ~40 min for the reference loop on a 2-core CPU)",
    )
    parser.add_argument(
        "--evaluate", action="store_true", help="time the evaluation pass (det J of every step) against its limit"
    )
    parser.add_argument("--points", type=int, default=None, help="--evaluate: points of the pass (default 1,600,000)")
    parser.add_argument(
        "--old-points",
        type=int,
        default=0,
        help="--evaluate: also time the previous per-step path on this many points (default 0: not timed)",
    )
    parser.add_argument("--batch-size", default=None, help="points per iteration, or mask/K (default 10000)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each loop; medians reported")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default: auto")
    parser.add_argument("--settings", type=Path, default=None, help="YAML/JSON mapping of settings")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting (repeatable)",
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="time only the project's loop (the equality check still runs)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the record as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _mask_path(case: ConvertedCase, mask: Path | None) -> Path:
    if mask is not None:
        return mask
    for candidate in (case.path / layout.MASK_T00, case.path / layout.MASK_PROVIDED):
        if candidate.is_file():
            return candidate
    raise InputError(f"{case.path / layout.MASK_T00}: no T00 lung mask; run `rnr segment` or pass --mask")


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        raise InputError(f"--repeats must be >= 1, got {args.repeats}")
    if args.evaluate:
        return _run_evaluate(args)
    overrides = list(args.overrides)
    iterations = args.iterations
    if iterations is None and not args.method_defaults:
        iterations = BENCH_ITERATIONS
    options = (("iterations", iterations), ("batch_size", args.batch_size), ("device", args.device))
    for key, value in options:
        if value is not None:
            overrides.insert(0, f"{key}={value}")
    settings = load_settings(args.settings, overrides)
    reference_iterations = args.reference_iterations
    if reference_iterations is None and args.iterations is None and not args.method_defaults:
        reference_iterations = BENCH_REFERENCE_ITERATIONS
    if reference_iterations is not None and reference_iterations < 1:
        raise InputError(f"--reference-iterations must be >= 1, got {reference_iterations}")
    with tempfile.TemporaryDirectory(prefix="rnr-bench-") as tmp:
        if args.case_dir is None:
            from ..data.dirlab_reader import convert_case
            from ..data.phantom import write_dataset

            print(f"bench: generating phantom case {args.phantom_case} (scale {args.phantom_scale}) in {tmp}")
            source = write_dataset(Path(tmp) / "phantom", cases=[args.phantom_case], seed=0, scale=args.phantom_scale)
            case_dir = convert_case(source, args.phantom_case, Path(tmp) / f"case{args.phantom_case}")
        else:
            case_dir = args.case_dir
        case = load_case(case_dir)
        mask = case.load_mask(_mask_path(case, args.mask))
        from ..methods.bench import run_benchmark  # torch: loaded by this step only, not by `rnr`'s parser

        record = run_benchmark(
            case,
            mask,
            settings,
            repeats=args.repeats,
            reference=not args.no_reference,
            progress=not args.no_progress,
            reference_iterations=reference_iterations,
        )
    if args.out is not None:
        write_json(args.out, record)
        print(f"bench: wrote {args.out}")
    return 0 if record["equality"]["passed"] else 1


def _run_evaluate(args: argparse.Namespace) -> int:
    from ..methods.bench import EVAL_POINTS, run_evaluation_benchmark
    from ..runtime import resolve_device

    settings = load_settings(args.settings, ([f"device={args.device}"] if args.device else []) + list(args.overrides))
    points = EVAL_POINTS if args.points is None else args.points
    if points < 1 or args.old_points < 0:
        raise InputError(f"--points must be >= 1 and --old-points >= 0, got {points}, {args.old_points}")
    record = run_evaluation_benchmark(
        resolve_device(settings.device),
        n_points=points,
        repeats=args.repeats,
        old_points=args.old_points,
        n_blocks=settings.params.n_blocks,
        width=settings.params.width,
    )
    if args.out is not None:
        write_json(args.out, record)
        print(f"bench: wrote {args.out}")
    return 0

"""Time RNR's fitting loop against the straightforward reference loop, and check that they agree.

Both loops run in this process on the same case, mask, settings and seed, through the same loop (sampler,
Adam, logging). The project's loop computes every phi_n and the Jacobians of all residuals in one pass in
closed form with a hand-written backward; the reference loop (rnr/reference.py, also the test suite's
reference) does a separate forward pass per step and autograd Jacobians with create_graph=True. Before
timing, the loss and all parameter gradients of the first iteration are compared (to float precision).

Printed: iterations/s of each loop (median over --repeats), their ratio, the peak memory of each loop
(CPU: peak resident set; CUDA: peak allocated), the device, and the equality check. Exit status 1 when
the check fails. --out FILE.json also writes the record.

Data: --case-dir (a converted case; mask: --mask, else CASE_DIR/mask_T00.nii.gz, else the provided mask);
without it a phantom case is generated in a temporary folder (rnr phantom + rnr convert, its true lung
mask). Settings: the method defaults (2500 iterations x 10,000 points, 5 blocks of width 100) unless
changed by --iterations/--batch-size/--device or --settings/--set. At the defaults on a 2-core CPU the
reference loop alone takes about 40 minutes per repeat; --iterations 50 gives the same per-iteration
figures in about two minutes.

Example:
  rnr bench --iterations 50 --repeats 5
  rnr bench --case-dir results/phantom/data/case1 --device cuda --no-reference
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .. import layout
from ..bench import run_benchmark
from ..case import ConvertedCase, load_case
from ..io import InputError, write_json
from .register import load_settings

HELP = "time the fitting loop against the straightforward reference (iterations/s, ratio, memory)"


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
    parser.add_argument("--iterations", type=int, default=None, help="iterations per loop (default 2500)")
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
    overrides = list(args.overrides)
    options = (("iterations", args.iterations), ("batch_size", args.batch_size), ("device", args.device))
    for key, value in options:
        if value is not None:
            overrides.insert(0, f"{key}={value}")
    settings = load_settings(args.settings, overrides)
    if args.repeats < 1:
        raise InputError(f"--repeats must be >= 1, got {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="rnr-bench-") as tmp:
        if args.case_dir is None:
            from ..dirlab import convert_case
            from ..phantom import write_dataset

            print(f"bench: generating phantom case {args.phantom_case} (scale {args.phantom_scale}) in {tmp}")
            source = write_dataset(Path(tmp) / "phantom", cases=[args.phantom_case], seed=0, scale=args.phantom_scale)
            case_dir = convert_case(source, args.phantom_case, Path(tmp) / f"case{args.phantom_case}")
        else:
            case_dir = args.case_dir
        case = load_case(case_dir)
        mask = case.load_mask(_mask_path(case, args.mask))
        record = run_benchmark(
            case, mask, settings, repeats=args.repeats, reference=not args.no_reference, progress=not args.no_progress
        )
    if args.out is not None:
        write_json(args.out, record)
        print(f"bench: wrote {args.out}")
    return 0 if record["equality"]["passed"] else 1

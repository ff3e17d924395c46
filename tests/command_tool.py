"""A registration tool of the test suite's own, for ``method: command`` (tests/test_methods_command.py).

    python command_tool.py MODE FIXED MOVING FIXED_MASK FIELD THREADS CASE SEED [X Y Z]

It checks what the method hands over (the images and the mask exist and share the fixed grid; threads, case
and seed are numbers; the thread variables are set) and then, by MODE:

* ``shift``: writes the constant displacement (X, Y, Z) mm along ITK's physical axes on the fixed grid, the
  field contract of ``method: field``;
* ``fail``: says "cannot converge" on stderr and exits with code 3;
* ``nothing``: writes no field;
* ``scalar``: writes a scalar image where the field should be.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import SimpleITK as sitk


def main(argv: list[str]) -> int:
    mode, fixed_path, moving_path, mask_path, field_path, threads, case, seed = argv[:8]
    fixed = sitk.ReadImage(fixed_path)
    for other in (sitk.ReadImage(moving_path), sitk.ReadImage(mask_path)):
        assert other.GetSize() == fixed.GetSize() and np.allclose(other.GetSpacing(), fixed.GetSpacing())
        assert np.allclose(other.GetDirection(), fixed.GetDirection())
    assert int(threads) >= 1 and int(case) >= 1 and int(seed) >= 0
    assert os.environ["OMP_NUM_THREADS"] == threads == os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"]
    mask = sitk.GetArrayFromImage(sitk.ReadImage(mask_path))
    print(f"command_tool: case {case}, {int(mask.sum())} mask voxels, {threads} thread(s)", file=sys.stderr)
    if mode == "fail":
        print("command_tool: cannot converge", file=sys.stderr)
        return 3
    if mode == "nothing":
        return 0
    shape = sitk.GetArrayFromImage(fixed).shape
    if mode == "scalar":
        image = sitk.GetImageFromArray(np.zeros(shape, dtype=np.float32))
    else:
        vector = np.asarray([float(v) for v in argv[8:11]], dtype=np.float32)
        image = sitk.GetImageFromArray(np.broadcast_to(vector, shape + (3,)).copy(), isVector=True)
    image.CopyInformation(fixed)
    sitk.WriteImage(image, field_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

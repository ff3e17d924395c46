"""The one module that knows the coordinate systems (rnr/coords.py): voxel <-> normalised <-> mm, DIR-Lab's
1-based indices, the reference code's legacy scaling, and the (z, y, x) array vs (x, y, z) point order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnr import coords

SIZE = (7, 5, 4)  # (nx, ny, nz)
SPACING = (0.8, 1.25, 2.5)


def test_normalised_puts_voxel_centres_on_minus_one_to_one_per_axis():
    corners = np.array([[0, 0, 0], [6, 4, 3], [3, 2, 1.5]], dtype=float)
    u = coords.voxel_to_normalised(corners, SIZE)
    np.testing.assert_allclose(u, [[-1, -1, -1], [1, 1, 1], [0, 0, 0]], atol=1e-12)  # u = -1 + 2 i / (n - 1)
    points = np.random.default_rng(0).uniform(-1, 8, size=(50, 3))
    np.testing.assert_allclose(coords.normalised_to_voxel(coords.voxel_to_normalised(points, SIZE), SIZE), points)
    # The same maps on torch tensors (the networks' side), on every device the tensors live on.
    t = coords.voxel_to_normalised(torch.as_tensor(corners), SIZE)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), u)


def test_mm_is_index_times_spacing_and_dirlab_indices_are_one_based():
    vox = np.array([[0.0, 0.0, 0.0], [2.0, 3.0, 1.0]])
    np.testing.assert_allclose(coords.voxel_to_mm(vox, SPACING), [[0, 0, 0], [1.6, 3.75, 2.5]])
    np.testing.assert_allclose(coords.mm_to_voxel(coords.voxel_to_mm(vox, SPACING), SPACING), vox)
    assert coords.normalised_scale_mm(SIZE, SPACING) == pytest.approx((0.8 * 3, 1.25 * 2, 2.5 * 1.5))
    np.testing.assert_array_equal(
        coords.from_dirlab_index(np.array([[1, 1, 1], [82, 55, 72]])), [[0, 0, 0], [81, 54, 71]]
    )
    np.testing.assert_array_equal(coords.to_dirlab_index(coords.from_dirlab_index(np.array([[3, 4, 5]]))), [[3, 4, 5]])


def test_legacy_scaling_is_the_reference_codes_n_over_two_on_one_based_indices():
    p = np.array([[1.0, 1.0, 1.0], [7.0, 5.0, 4.0]])  # 1-based, used as is
    u = coords.legacy_to_normalised(p, SIZE)
    np.testing.assert_allclose(u, p / (np.array(SIZE) / 2) - 1)
    np.testing.assert_allclose(coords.legacy_from_normalised(u, SIZE), p)
    # Not the project's convention: the same voxel lands elsewhere in normalised space.
    assert not np.allclose(u, coords.voxel_to_normalised(coords.from_dirlab_index(p), SIZE))


def test_array_order_is_zyx_and_points_are_xyz():
    assert coords.size_xyz_to_shape_zyx(SIZE) == (4, 5, 7)
    assert coords.shape_zyx_to_size_xyz((4, 5, 7)) == SIZE
    grid = coords.voxel_grid(SIZE)
    assert grid.shape == (7 * 5 * 4, 3)
    np.testing.assert_array_equal(grid[:2], [[0, 0, 0], [1, 0, 0]])  # x fastest, as in C order of (z, y, x)
    mask = np.zeros((4, 5, 7), dtype=bool)
    mask[3, 1, 6] = True  # z = 3, y = 1, x = 6
    np.testing.assert_array_equal(coords.mask_points(mask), [[6.0, 1.0, 3.0]])

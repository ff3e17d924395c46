"""Trilinear sampling with border clamping and the point samplers (rnr/fitting/sampling.py)."""

from __future__ import annotations

import pytest
import torch

from rnr import coords
from rnr.fitting.sampling import PointSampler, sample_volumes


def test_sample_volumes_at_voxel_centres_between_them_and_outside():
    vol = torch.arange(4 * 5 * 6, dtype=torch.float32).reshape(4, 5, 6)  # (z, y, x): value = 30 z + 6 y + x
    size = (6, 5, 4)
    vox = torch.tensor([[0.0, 0.0, 0.0], [5.0, 4.0, 3.0], [2.0, 1.0, 3.0], [2.5, 1.5, 0.5]])
    got = sample_volumes(vol, coords.voxel_to_normalised(vox, size)[None])
    expected = 30 * vox[:, 2] + 6 * vox[:, 1] + vox[:, 0]  # trilinear is exact on a linear ramp
    torch.testing.assert_close(got[0], expected, rtol=0, atol=1e-4)
    # Border clamping: outside the volume the edge value is returned.
    outside = coords.voxel_to_normalised(torch.tensor([[-3.0, 2.0, 1.0], [9.0, 2.0, 1.0]]), size)
    torch.testing.assert_close(sample_volumes(vol, outside[None])[0], torch.tensor([42.0, 47.0]), atol=1e-4, rtol=0)


def test_sample_volumes_one_volume_many_rows_or_one_row_per_volume():
    vols = torch.stack([torch.full((3, 3, 3), float(k)) for k in range(3)])
    pts = torch.zeros(3, 4, 3)
    torch.testing.assert_close(sample_volumes(vols, pts), torch.arange(3.0)[:, None].expand(3, 4))
    torch.testing.assert_close(sample_volumes(vols[2], pts), torch.full((3, 4), 2.0))
    with pytest.raises(ValueError):
        sample_volumes(vols, torch.zeros(2, 4, 3))


def test_point_sampler_random_is_seeded_and_cycle_covers_every_point():
    a = PointSampler(1000, 64, "random", seed=3)
    b = PointSampler(1000, 64, "random", seed=3)
    c = PointSampler(1000, 64, "random", seed=4)
    first = [a.next() for _ in range(3)]
    assert all(torch.equal(x, b.next()) for x in first)
    assert not torch.equal(first[0], c.next())
    assert not torch.equal(first[0], first[1])  # a fresh batch each iteration
    cyc = PointSampler(10, 4, "cycle", seed=1)
    batches = [cyc.next() for _ in range(5)]  # 20 draws = 2 full passes, wrapping inside batches 3 and 5
    flat = torch.cat(batches)
    assert sorted(flat[:10].tolist()) == list(range(10))
    assert torch.equal(flat[:10], flat[10:])  # one fixed order, repeated
    assert all(len(bt) == 4 for bt in batches)
    with pytest.raises(ValueError):
        PointSampler(10, 11, "random")

"""The terms of RNR's energy (rnr/methods/README.md, "Energy") as pure functions of tensors.

loss = mean over compared phases of D_n + alpha_grad * P + alpha_W * S, with D_n = 1 - NCC.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

# Added to the product of standard deviations so that a constant batch gives NCC = 0, not NaN.
# HU intensities have standard deviations of hundreds, so it never matters otherwise.
NCC_EPS = 1e-8


def ncc(a: torch.Tensor, b: torch.Tensor, eps: float = NCC_EPS) -> torch.Tensor:
    """Global normalised cross-correlation over the last axis (the batch of points; no local window).

    NCC(a, b) = mean((a - mean a)(b - mean b)) / (std a * std b + eps), with population standard
    deviations (divide by M), so NCC(a, a) = 1 up to eps and NCC is invariant to a -> s*a + c (s > 0).
    (IDIR-style code uses torch's default unbiased std, which scales NCC by (M-1)/M: 1e-4 at M = 10,000.)

    Args:
        a, b: (..., M) intensities at the same M points.
    Returns:
        (...,) NCC per leading index.
    """
    a0 = a - a.mean(dim=-1, keepdim=True)
    b0 = b - b.mean(dim=-1, keepdim=True)
    cov = (a0 * b0).mean(dim=-1)
    std_a = a0.square().mean(dim=-1).sqrt()
    std_b = b0.square().mean(dim=-1).sqrt()
    return cov / (std_a * std_b + eps)


def dissimilarity(warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    """D = 1 - NCC(warped, fixed) over the last axis: (..., M), (..., M) -> (...,)."""
    return 1.0 - ncc(warped, fixed)


def gradient_penalty(residual_jacobians: torch.Tensor) -> torch.Tensor:
    """P = (1 / (|B| N)) sum_n sum_b ||d/dx F_n(phi_{n-1}(x_b))||_F^2.

    Args:
        residual_jacobians: (N, M, 3, 3): for each step n and point b the Jacobian of the n-th residual
            with respect to the ORIGINAL input x (chain rule through the earlier blocks).
    Returns:
        () the penalty.
    """
    n, m = residual_jacobians.shape[:2]
    return residual_jacobians.square().sum() / (n * m)


def gradient_penalty_from_sums(squared_norm_sums: torch.Tensor, n_points: int) -> torch.Tensor:
    """P from per-step sums: squared_norm_sums (N,) holds sum_b ||dF_n/dx (x_b)||_F^2 -> () the penalty."""
    return squared_norm_sums.sum() / (squared_norm_sums.shape[0] * n_points)


def weight_penalty(weight_matrices: Iterable[torch.Tensor]) -> torch.Tensor:
    """S = (sum of squared entries of all weight matrices) / (their number of entries).

    Args:
        weight_matrices: the distinct W1, W2, W3 of all blocks (biases excluded; shared weights once).
    Returns:
        () the penalty.
    """
    mats = list(weight_matrices)
    if not mats:
        raise ValueError("weight_penalty needs at least one weight matrix")
    total = sum(w.square().sum() for w in mats)
    count = sum(w.numel() for w in mats)
    return total / count  # type: ignore[return-value]

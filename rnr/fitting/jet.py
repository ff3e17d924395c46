"""One pass through the ResNet that carries every phi_n and the Jacobians of the residuals, with a
hand-written backward: RNR's fast path for the energy of rnr/methods/README.md.

Each point travels as a *jet*: its value z and the three tangent columns dz/dx_j with respect to the
ORIGINAL input x. Through a linear layer the value gets ``z W^T + b`` and every tangent ``t W^T``; through
``sin`` the value gets ``sin(a)`` and every tangent ``cos(a) * t``. So one pass yields phi_n(x) for every n
and G_n(x) = dF_n(phi_{n-1}(x))/dx = J_{F_n}(phi_{n-1}(x)) J_{phi_{n-1}}(x), the Jacobian that the
gradient penalty P squares, without any double backward. sin and cos of each layer are computed once and
reused by the tangents, the backward and the Jacobian of the folding check.

Layout: a chunk of C points is a stacked (4C, d) matrix, rows 0..C-1 the values and rows (j+1)C..(j+2)C-1
the tangents d/dx_j, so one matrix product applies a layer to values and tangents alike (biases touch the
value rows only). The Jacobian of point m is ``J[m, i, j] = tangents[j][m, i]``.

Speed (this is the fitting loop's inner cost): points are processed in chunks (1024 on the CPU: a chunk's
temporaries stay in cache, so the many elementwise passes do not go to main memory; one chunk on a GPU).
On the CPU the chunks are shared out to ``torch.get_num_threads()`` worker threads that each run
single-threaded kernels (torch releases the GIL inside kernels): this scales better than splitting every
small kernel over the cores (no barrier per kernel) and degrades gracefully on a busy machine. All buffers
live in a reusable :class:`Workspace` (no allocation, hence no page faults, per iteration); only s1, c1,
[a2; h2], c2, s2 and the block inputs are kept for the backward (the tangent products are recomputed in
cache); the backward is written out by hand (once differentiable) instead of autograd recomputing sin/cos
through many small kernels; float32 sin/cos on the CPU go through NumPy's SIMD loops (:func:`_sin_cos`).
Measured on the 2-core development machine (10,000 points, 5 blocks of width 100): ~0.24 s of CPU per
iteration single-threaded against ~1.4 s for the straightforward formulation. Results do not depend on the
number of threads except for the order in which the per-thread weight gradients are summed (float
rounding). ``tests/test_network.py`` checks it against
``torch.autograd.gradcheck`` in float64 and against the straightforward formulation (rnr/methods/reference.py).

Evaluation (:func:`jet_steps`): the same forward without anything kept for a backward gives phi_1..phi_N
and det J of every phi_n in one pass (folding of every step); its matrix products alone
(:func:`products_only_pass`) are the limit `rnr bench --evaluate` compares it with.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

#: Points per chunk on the CPU. 1024 points x 100 hidden units keep a chunk's working set (~7 MB) in the
#: L2/L3 caches of this machine class; a GPU processes all points as one chunk.
CPU_CHUNK = 1024

BlockParams = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class Workspace:
    """Reusable buffers for jet passes of M points through N blocks of width q (dtype, device fixed).

    With ``save=True`` (training) every block keeps its buffers for the backward; they are overwritten by
    the next forward that uses this workspace, so a backward must come before the next forward
    (:attr:`generation` lets the backward check that). With ``save=False`` (evaluation) one set of
    chunk-sized buffers is reused for every block and chunk, so memory does not grow with M or N.

    Memory with ``save=True``: about 3.3 kB per point and block in float32 at width 100 (165 MB for the
    default 10,000 points and 5 blocks). ``workers`` (CPU only; default ``torch.get_num_threads()``) threads
    share the chunks, whose number is rounded up to a multiple of the workers.
    """

    _SAVED = {"s1": (1, None), "c1": (1, None), "a2": (4, None), "s2": (1, None), "c2": (1, None), "y": (4, 3)}

    def __init__(
        self,
        m: int,
        width: int,
        n_blocks: int,
        dtype: torch.dtype,
        device: torch.device,
        chunk: int | None = None,
        save: bool = True,
        workers: int | None = None,
    ):
        device = torch.device(device)
        if chunk is None:
            chunk = CPU_CHUNK if _is_cpu(device) else m
        if workers is None:
            workers = torch.get_num_threads() if _is_cpu(device) and save else 1
        # Evaluation passes (save=False) share one set of block buffers, so they run on one thread.
        workers = max(1, workers) if save else 1
        n_chunks = max(1, -(-m // chunk))
        if workers > 1:  # a multiple of the workers, so that they all get the same number of points
            n_chunks = min(m, -(-n_chunks // workers) * workers)
        base, extra = divmod(m, n_chunks)  # equal chunks (no tiny remainder chunk)
        self.bounds: list[tuple[int, int]] = []
        start = 0
        for k in range(n_chunks):
            stop = start + base + (1 if k < extra else 0)
            self.bounds.append((start, stop))
            start = stop
        self.save = save
        self.workers = min(workers, n_chunks)
        self.key = (m, width, n_blocks, dtype, device, save, self.workers)
        q, cmax = width, max(b - a for a, b in self.bounds)
        opts = {"dtype": dtype, "device": device}
        sizes = [b - a for a, b in self.bounds] if save else [cmax]
        n_sets = n_blocks if save else 1

        def chunks(rows_per_point: int, cols: int) -> list[torch.Tensor]:
            return [torch.empty((rows_per_point * c, cols), **opts) for c in sizes]

        # Saved per block: x0[n] is block n's input (x0[N] holds phi_N and its tangents).
        self.store = {name: [chunks(r, cols or q) for _ in range(n_sets)] for name, (r, cols) in self._SAVED.items()}
        self.store["x0"] = [chunks(4, 3) for _ in range(n_blocks + 1 if save else 2)]
        self.g0 = chunks(4, 3)  # gradient w.r.t. a block's output, per chunk
        # Temporaries: one set per worker thread, sized for the largest chunk.
        self.temps = [_Temps(cmax, q, opts) for _ in range(self.workers)]
        self.eye = torch.eye(3, **opts)
        self.generation = 0

    def buf(self, name: str, n: int, k: int) -> torch.Tensor:
        """Buffer ``name`` of block n (x0: of block input n) on chunk k, shaped (rows_per_point * c, cols)."""
        if self.save:
            return self.store[name][n][k]
        a, b = self.bounds[k]
        rows = (4 if name in ("x0", "a2", "y") else 1) * (b - a)
        return self.store[name][n % 2 if name == "x0" else 0][0][:rows]

    def run(self, task: Callable[[int, range], None]) -> None:
        """Call ``task(worker, chunk_indices)`` for every worker (chunks dealt round-robin), in parallel
        threads when there are several workers; re-raise the first error."""
        n = len(self.bounds)
        if self.workers == 1:
            task(0, range(n))
            return
        pool = _pool(self.workers)
        futures = [pool.submit(task, w, range(w, n, self.workers)) for w in range(self.workers)]
        for future in futures:
            future.result()

    @classmethod
    def for_shape(
        cls,
        cached: Workspace | None,
        m: int,
        width: int,
        n_blocks: int,
        dtype: torch.dtype,
        device: torch.device,
        workers: int | None = None,
    ) -> Workspace:
        """``cached`` if it fits these sizes and worker count (training buffers), else a new workspace.
        ``workers`` defaults to ``torch.get_num_threads()`` on the CPU."""
        device = torch.device(device)
        if workers is None:
            workers = torch.get_num_threads() if _is_cpu(device) else 1
        if cached is not None and cached.key[:6] == (m, width, n_blocks, dtype, device, True):
            if cached.workers == max(1, min(workers, len(cached.bounds))):
                return cached
        return cls(m, width, n_blocks, dtype, device, workers=workers)


class _Temps:
    """Scratch buffers of one worker thread (largest chunk: cmax points, width q)."""

    def __init__(self, cmax: int, q: int, opts: dict):
        self.a1 = torch.empty((4 * cmax, q), **opts)
        self.u = torch.empty((3 * cmax, q), **opts)
        self.gx = torch.empty((4 * cmax, q), **opts)
        self.gx1 = torch.empty((4 * cmax, q), **opts)
        self.gc = torch.empty((cmax, q), **opts)
        self.gy = torch.empty((4 * cmax, 3), **opts)


_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The shared worker threads (created on first use); each runs torch kernels single-threaded."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != workers:
            if _POOL is not None:
                _POOL[1].shutdown(wait=True)
            _POOL = (workers, ThreadPoolExecutor(workers, thread_name_prefix="rnr-jet", initializer=_single_threaded))
        return _POOL[1]


def _single_threaded() -> None:
    # Thread-local in PyTorch's OpenMP/MKL builds: the calling (main) thread keeps its own setting.
    torch.set_num_threads(1)


def _is_cpu(device: torch.device) -> bool:
    """Whether ``device`` takes the CPU branches (NumPy sin/cos, small chunks, worker threads). Every device
    branch of this module goes through here, so a test can force the other (GPU) branch on CPU tensors."""
    return device.type == "cpu"


def _sin_cos(a: torch.Tensor, s: torch.Tensor, c: torch.Tensor) -> None:
    """s = sin(a), c = cos(a) in place. On the CPU in float32 through NumPy's SIMD loops (same memory, GIL
    released): 2.4x faster than torch's on this machine class (55 vs 130 us per 100k values), within an
    ulp. Elsewhere torch's kernels."""
    if _is_cpu(a.device) and a.dtype == torch.float32:
        values = a.numpy()
        np.cos(values, out=c.numpy())
        np.sin(values, out=s.numpy())
    else:
        torch.cos(a, out=c)
        torch.sin(a, out=s)


def _prepare(p: BlockParams) -> tuple[torch.Tensor, ...]:
    """Contiguous transposes once per pass: MKL runs the skinny (K = 3) products ~10x slower on views."""
    w1, b1, w2, b2, w3, b3 = (t.detach() for t in p)
    return w1, w1.t().contiguous(), b1, w2, w2.t().contiguous(), b2, w3, b3


def _block_values_and_tangents(
    x0: torch.Tensor,
    x1: torch.Tensor,
    s1: torch.Tensor,
    c1: torch.Tensor,
    a2: torch.Tensor,
    s2: torch.Tensor,
    c2: torch.Tensor,
    y: torch.Tensor,
    a1: torch.Tensor,
    u: torch.Tensor,
    c: int,
    p: tuple[torch.Tensor, ...],
) -> None:
    """One block on a chunk of c points: x1 = x0 + [F; G] for the stacked (4c, 3) jet x0 (values, then the
    tangents d/dx_j). Shapes: s1, c1, s2, c2 (c, q); a2, a1 (4c, q); u (3c, q); y (4c, 3). Fills s1, c1,
    a2 = [a2 - ; h2], s2, c2, y = [F; G] (kept by the training pass for its backward); a1 and u are scratch."""
    _, w1t, b1, _, w2t, b2, w3, b3 = p
    torch.mm(x0, w1t, out=a1)  # [a1 - b1; h1]
    a1[:c] += b1
    _sin_cos(a1[:c], s1, c1)
    torch.mul(a1[c:].view(3, c, -1), c1, out=u.view(3, c, -1))  # u1 = cos(a1) h1
    torch.addmm(b2, s1, w2t, out=a2[:c])  # a2
    torch.mm(u, w2t, out=a2[c:])  # h2
    _sin_cos(a2[:c], s2, c2)
    torch.mul(a2[c:].view(3, c, -1), c2, out=u.view(3, c, -1))  # u2 = cos(a2) h2
    torch.addmm(b3, s2, w3.t(), out=y[:c])  # F
    torch.mm(u, w3.t(), out=y[c:])  # G (tangents of F w.r.t. x)
    torch.add(x0, y, out=x1)  # phi_{n+1} and its tangents


def _forward_block(ws: Workspace, tmp: _Temps, n: int, k: int, p: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Block n (0-based) on chunk k: fills the saved buffers and x0[n+1]; returns sum ||G||^2 (0-dim)."""
    a, b = ws.bounds[k]
    c = b - a
    x0, s1, c1, a2, s2, c2, y = (ws.buf(name, n, k) for name in ("x0", "s1", "c1", "a2", "s2", "c2", "y"))
    _block_values_and_tangents(x0, ws.buf("x0", n + 1, k), s1, c1, a2, s2, c2, y, tmp.a1[: 4 * c], tmp.u[: 3 * c], c, p)
    g = y[c:].reshape(-1)
    return torch.dot(g, g)


def _backward_block(
    ws: Workspace,
    tmp: _Temps,
    n: int,
    k: int,
    p: tuple[torch.Tensor, ...],
    gsq2: torch.Tensor,
    grads: list[torch.Tensor],
    need_input_grad: bool,
) -> None:
    """Backward of block n on chunk k. ws.g0[k] holds the gradient w.r.t. the block's output (value and
    tangents) and becomes the gradient w.r.t. its input; ``gsq2`` = 2 * d loss / d sum||G_n||^2; weight and
    bias gradients are accumulated into ``grads`` (gW1^T, gb1, gW2, gb2, gW3, gb3).

    Skinny products (one side of width 3) are arranged as MKL runs them fast: gW1 is accumulated
    transposed and the product with W1 uses the transposed view of W1^T (~4x faster than the plain forms)."""
    _, w1t, _, w2, _, _, w3, _ = p
    gw1t, gb1, gw2, gb2, gw3, gb3 = grads
    a, b = ws.bounds[k]
    c = b - a
    x0, s1, c1, a2, s2, c2, y = (ws.buf(name, n, k) for name in ("x0", "s1", "c1", "a2", "s2", "c2", "y"))
    g0 = ws.g0[k]
    gy = tmp.gy[: 4 * c]
    u = tmp.u[: 3 * c]
    gx = tmp.gx[: 4 * c]
    gx1 = tmp.gx1[: 4 * c]
    gc = tmp.gc[:c]
    # The block output is x0 + y, and the penalty adds d/dG sum G^2 = 2 G on the tangent rows.
    gy.copy_(g0)
    gy[c:].addcmul_(y[c:], gsq2)
    # Layer 3: F = s2 W3^T + b3, G = u2 W3^T.
    h2 = a2[c:]
    torch.mul(h2.view(3, c, -1), c2, out=u.view(3, c, -1))  # u2, recomputed in cache
    gw3.addmm_(gy[:c].t(), s2).addmm_(gy[c:].t(), u)
    gb3 += gy[:c].sum(0)
    torch.mm(gy, w3, out=gx)  # [d/ds2; d/du2]
    # sin layer 2: s2 = sin(a2), u2_j = cos(a2) h2_j.
    torch.mul(gx[c : 2 * c], h2[:c], out=gc)
    gc.addcmul_(gx[2 * c : 3 * c], h2[c : 2 * c]).addcmul_(gx[3 * c :], h2[2 * c :])
    gx[c:].view(3, c, -1).mul_(c2)  # d/dh2
    gx[:c].mul_(c2).addcmul_(gc, s2, value=-1.0)  # d/da2
    # Layer 2: a2 = s1 W2^T + b2, h2_j = u1_j W2^T (u1 = cos(a1) h1, h1 = t W1^T recomputed in cache).
    h1 = tmp.a1[: 3 * c]
    torch.mm(x0[c:], w1t, out=h1)
    torch.mul(h1.view(3, c, -1), c1, out=u.view(3, c, -1))  # u1
    gw2.addmm_(gx[:c].t(), s1).addmm_(gx[c:].t(), u)
    gb2 += gx[:c].sum(0)
    torch.mm(gx, w2, out=gx1)  # [d/ds1; d/du1]
    # sin layer 1.
    torch.mul(gx1[c : 2 * c], h1[:c], out=gc)
    gc.addcmul_(gx1[2 * c : 3 * c], h1[c : 2 * c]).addcmul_(gx1[3 * c :], h1[2 * c :])
    gx1[c:].view(3, c, -1).mul_(c1)  # d/dh1
    gx1[:c].mul_(c1).addcmul_(gc, s1, value=-1.0)  # d/da1
    # Layer 1: [a1; h1] = x0 W1^T (+ b1 on the value rows).
    gw1t.addmm_(x0.t(), gx1)
    gb1 += gx1[:c].sum(0)
    if need_input_grad:
        g0.addmm_(gx1, w1t.t())  # residual path + through the block


def _check_inputs(x: torch.Tensor, blocks: Sequence[BlockParams]) -> None:
    if x.dim() != 2 or x.shape[1] != 3:
        raise ValueError(f"points must be (M, 3), got {tuple(x.shape)}")
    if any(p.dtype != x.dtype or p.device != x.device for blk in blocks for p in blk):
        raise ValueError("points and parameters must share dtype and device")


def _forward(
    ws: Workspace,
    x: torch.Tensor,
    prepared: list[tuple[torch.Tensor, ...]],
    layout: Sequence[int],
    n_steps: int,
    tangents: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill ``ws`` for steps 1..n_steps; return (phis (n, M, 3), sq (n,)); with ``tangents`` (3, M, 3)
    also store the tangents of phi_n there."""
    ws.generation += 1
    phis = x.new_empty((n_steps, x.shape[0], 3))
    sqs = [x.new_zeros((n_steps,)) for _ in range(ws.workers)]

    def task(worker: int, chunks: range) -> None:
        tmp, sq = ws.temps[worker], sqs[worker]
        with torch.no_grad():
            for k in chunks:
                a, b = ws.bounds[k]
                x0 = ws.buf("x0", 0, k)
                x0[: b - a].copy_(x[a:b])
                x0[b - a :].view(3, b - a, 3).copy_(ws.eye.unsqueeze(1))  # tangents of phi_0 = x: identity
                for n in range(n_steps):
                    sq[n] += _forward_block(ws, tmp, n, k, prepared[layout[n]])
                    phis[n, a:b] = ws.buf("x0", n + 1, k)[: b - a]
                if tangents is not None:
                    tangents[:, a:b] = ws.buf("x0", n_steps, k)[b - a :].view(3, b - a, 3)

    ws.run(task)
    return phis, sum(sqs[1:], sqs[0])


def jet_forward(
    x: torch.Tensor, blocks: Sequence[BlockParams], n_steps: int | None = None
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Jet pass without autograd (evaluation: Jacobians for the folding check).

    Args:
        x: (M, 3) points. blocks: parameters of the block used at each step (len N).
        n_steps: stop after this many blocks (default all).
    Returns:
        phis: list of (M, 3), phi_1..phi_n; t: (3, M, 3) tangents of phi_n, t[j, m, i] = d phi_i / d x_j
        (J = t.permute(1, 2, 0)); sq: (n,) sum over points of ||G_k||_F^2 per block.
    """
    n = len(blocks) if n_steps is None else n_steps
    _check_inputs(x, blocks)
    with torch.no_grad():
        ws = Workspace(x.shape[0], blocks[0][0].shape[0], n, x.dtype, x.device, save=False)
        prepared = [_prepare(p) for p in blocks]
        t = torch.empty((3, x.shape[0], 3), dtype=x.dtype, device=x.device)
        phis, sq = _forward(ws, x, prepared, list(range(n)), n, tangents=t)
    return list(phis.unbind(0)), t, sq


#: Points per chunk of an evaluation pass (:func:`jet_steps`) off the CPU: bounds the device memory of one
#: pass to about 6 kB per point at width 100 (1.5 GB), while keeping the matrix products large.
DEVICE_CHUNK = 2**18


class _StepBuffers:
    """Buffers of one worker thread of :func:`jet_steps` (largest chunk: cmax points, width q)."""

    def __init__(self, cmax: int, q: int, opts: dict):
        self.x = [torch.empty((4 * cmax, 3), **opts) for _ in range(2)]  # block input / output, alternating
        self.s1, self.c1, self.s2, self.c2 = (torch.empty((cmax, q), **opts) for _ in range(4))
        self.a1 = torch.empty((4 * cmax, q), **opts)
        self.a2 = torch.empty((4 * cmax, q), **opts)
        self.u = torch.empty((3 * cmax, q), **opts)
        self.y = torch.empty((4 * cmax, 3), **opts)
        wide = {**opts, "dtype": torch.float64}
        self.t64 = torch.empty((3, cmax, 3), **wide)
        self.cross = torch.empty((cmax, 3), **wide)


def chunk_bounds(m: int, chunk: int) -> list[tuple[int, int]]:
    """[start, stop) of ceil(m / chunk) chunks of (almost) equal size covering 0..m (no tiny remainder)."""
    n_chunks = max(1, -(-m // max(1, chunk)))
    base, extra = divmod(m, n_chunks)
    bounds, start = [], 0
    for k in range(n_chunks):
        stop = start + base + (1 if k < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def jet_steps(
    x: torch.Tensor,
    blocks: Sequence[BlockParams],
    n_steps: int | None = None,
    *,
    chunk: int | None = None,
    workers: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluation pass: every phi_n and det J(phi_n) in ONE chained pass through the blocks, no autograd.

    The same jet as the fitting pass (values and the three tangents d/dx_j carried through each block), but
    nothing is kept for a backward: each worker thread owns one set of chunk-sized buffers, reused for every
    block and chunk, and after each block the 3 x 3 Jacobian of phi_n at every point of the chunk is reduced
    to its determinant (the triple product of its columns, in float64) before the next block overwrites it.
    Cost per point and block: the products of the 4 stacked rows (value and tangents) with W1, W2, W3
    (about 85 kFLOP at width 100) plus 2 x 100 sin/cos; memory: O(chunk) per worker plus the outputs.

    Args:
        x: (M, 3) points (normalised coordinates), any device; the parameters on the same device and dtype.
        blocks: parameters (W1, b1, W2, b2, W3, b3) of the block used at each step (len N).
        n_steps: evaluate phi_1..phi_n_steps (default N).
        chunk: points per chunk; default :data:`CPU_CHUNK` on the CPU (a chunk stays in cache),
            :data:`DEVICE_CHUNK` elsewhere.
        workers: CPU threads sharing the chunks (default ``torch.get_num_threads()``; 1 off the CPU). Each
            takes the next chunk when it is done with one, so a busy core slows the pass down only by its share.
    Returns:
        phis: (n_steps, M, 3) in the dtype of x, phis[n-1] = phi_n(x).
        det: (n_steps, M) float64, det[n-1, m] = det d phi_n / dx at x_m.
    """
    n = len(blocks) if n_steps is None else int(n_steps)
    if not 1 <= n <= len(blocks):
        raise ValueError(f"n_steps must be in 1..{len(blocks)}, got {n_steps}")
    _check_inputs(x, blocks)
    device, m = x.device, x.shape[0]
    cpu = _is_cpu(device)
    if chunk is None:
        chunk = CPU_CHUNK if cpu else DEVICE_CHUNK
    if workers is None:
        workers = torch.get_num_threads() if cpu else 1
    bounds = chunk_bounds(m, chunk)
    workers = max(1, min(int(workers), len(bounds)))
    phis = x.new_empty((n, m, 3))
    det = torch.empty((n, m), dtype=torch.float64, device=device)
    if m == 0:
        return phis, det
    with torch.no_grad():
        prepared = [_prepare(p) for p in blocks[:n]]
        q = prepared[0][0].shape[0]
        cmax = max(b - a for a, b in bounds)
        opts = {"dtype": x.dtype, "device": device}
        eye = torch.eye(3, **opts).unsqueeze(1)
        next_chunk = itertools.count()  # shared: next() on it is atomic under the GIL

        def task(buffers: _StepBuffers) -> None:
            with torch.no_grad():
                while (k := next(next_chunk)) < len(bounds):
                    a, b = bounds[k]
                    c = b - a
                    cur = buffers.x[0][: 4 * c]
                    cur[:c].copy_(x[a:b])
                    cur[c:].view(3, c, 3).copy_(eye)  # tangents of phi_0 = x: the identity
                    for i, p in enumerate(prepared):
                        nxt = buffers.x[(i + 1) % 2][: 4 * c]
                        _block_values_and_tangents(
                            cur,
                            nxt,
                            buffers.s1[:c],
                            buffers.c1[:c],
                            buffers.a2[: 4 * c],
                            buffers.s2[:c],
                            buffers.c2[:c],
                            buffers.y[: 4 * c],
                            buffers.a1[: 4 * c],
                            buffers.u[: 3 * c],
                            c,
                            p,
                        )
                        phis[i, a:b].copy_(nxt[:c])
                        # J[m, :, j] = tangent j of point m, so det J = t_0 . (t_1 x t_2).
                        t = buffers.t64[:, :c]
                        t.copy_(nxt[c:].view(3, c, 3))
                        cross = buffers.cross[:c]
                        torch.linalg.cross(t[1], t[2], dim=1, out=cross)
                        cross.mul_(t[0])
                        torch.sum(cross, dim=1, out=det[i, a:b])
                        cur = nxt

        _run_workers(task, [_StepBuffers(cmax, q, opts) for _ in range(workers)])
    return phis, det


def _run_workers(task: Callable[[_StepBuffers], None], all_buffers: list[_StepBuffers]) -> None:
    """task(buffers) in each worker thread (in this thread when there is one); re-raise the first error."""
    if len(all_buffers) == 1:
        task(all_buffers[0])
        return
    pool = _pool(len(all_buffers))
    for future in [pool.submit(task, buf) for buf in all_buffers]:
        future.result()


def step_pass_flop(width: int, n_steps: int) -> int:
    """Floating-point operations of the matrix products of :func:`jet_steps` per point: per block the 4
    stacked rows (value, 3 tangents) times W1^T (3 x q), W2^T (q x q) and W3^T (q x 3), 2 FLOP per
    multiply-add: 8 q (q + 6) per block (84,800 at width 100; 424,000 for five blocks)."""
    return 8 * width * (width + 6) * n_steps


def products_only_pass(
    x: torch.Tensor,
    blocks: Sequence[BlockParams],
    n_steps: int | None = None,
    *,
    chunk: int | None = None,
    workers: int | None = None,
) -> None:
    """The matrix products of :func:`jet_steps` alone, on the same shapes, chunks, buffers and threads, and
    nothing else (no sin/cos, no elementwise work, no determinants; the results are meaningless): the
    matrix-rate limit of the evaluation pass on this machine, for the benchmark (rnr/methods/bench.py)."""
    n = len(blocks) if n_steps is None else int(n_steps)
    _check_inputs(x, blocks)
    device, m = x.device, x.shape[0]
    cpu = _is_cpu(device)
    chunk = (CPU_CHUNK if cpu else DEVICE_CHUNK) if chunk is None else chunk
    workers = (torch.get_num_threads() if cpu else 1) if workers is None else workers
    bounds = chunk_bounds(m, chunk)
    workers = max(1, min(int(workers), len(bounds)))
    with torch.no_grad():
        prepared = [_prepare(p) for p in blocks[:n]]
        q = prepared[0][0].shape[0]
        cmax = max(b - a for a, b in bounds)
        next_chunk = itertools.count()

        def task(buf: _StepBuffers) -> None:
            with torch.no_grad():
                while (k := next(next_chunk)) < len(bounds):
                    a, b = bounds[k]
                    c = b - a
                    buf.x[0][:c].copy_(x[a:b])
                    for _, w1t, _, _, w2t, b2, w3, b3 in prepared:
                        torch.mm(buf.x[0][: 4 * c], w1t, out=buf.a1[: 4 * c])
                        torch.addmm(b2, buf.s1[:c], w2t, out=buf.a2[:c])
                        torch.mm(buf.u[: 3 * c], w2t, out=buf.a2[c : 4 * c])
                        torch.addmm(b3, buf.s2[:c], w3.t(), out=buf.y[:c])
                        torch.mm(buf.u[: 3 * c], w3.t(), out=buf.y[c : 4 * c])

        bufs = [_StepBuffers(cmax, q, {"dtype": x.dtype, "device": device}) for _ in range(workers)]
        for buf in bufs:  # finite inputs (empty memory could hold NaN/denormals that slow the products down)
            for t in (buf.x[0], buf.s1, buf.s2, buf.u):
                t.fill_(0.5)
        _run_workers(task, bufs)


class _JetFunction(torch.autograd.Function):
    """Autograd node for the whole ResNet: (x, unique parameters) -> (phis (N, M, 3), sq (N,))."""

    @staticmethod
    def forward(ctx, x, layout, ws, *params):  # noqa: D102
        unique = [tuple(params[6 * i : 6 * i + 6]) for i in range(len(params) // 6)]
        prepared = [_prepare(p) for p in unique]
        phis, sq = _forward(ws, x.detach(), prepared, layout, len(layout))
        ctx.layout, ctx.ws, ctx.prepared, ctx.generation = layout, ws, prepared, ws.generation
        ctx.param_shapes = [p.shape for p in params]
        return phis, sq

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_phis, g_sq):  # noqa: D102
        ws, layout, prepared = ctx.ws, ctx.layout, ctx.prepared
        if ws.generation != ctx.generation:
            raise RuntimeError(
                "rnr.fitting.jet: the workspace was reused by another forward pass before this "
                "backward; call backward first (or give each pass its own workspace)"
            )
        opts = {"dtype": g_phis.dtype, "device": g_phis.device}
        shapes = ctx.param_shapes
        gsq2 = 2.0 * g_sq
        n_blocks = len(layout)

        # Per worker and unique block: gW1 is accumulated transposed (3, q), see _backward_block.
        def zeros(i: int) -> list[torch.Tensor]:
            block = shapes[6 * i : 6 * i + 6]
            return [torch.zeros(sh if j else sh[::-1], **opts) for j, sh in enumerate(block)]

        per_worker = [[zeros(i) for i in range(len(prepared))] for _ in range(ws.workers)]

        def task(worker: int, chunks: range) -> None:
            tmp, grads = ws.temps[worker], per_worker[worker]
            with torch.no_grad():
                for k in chunks:
                    a, b = ws.bounds[k]
                    g0 = ws.g0[k]
                    g0.zero_()
                    g0[: b - a] = g_phis[n_blocks - 1, a:b]
                    for n in range(n_blocks - 1, -1, -1):
                        _backward_block(
                            ws, tmp, n, k, prepared[layout[n]], gsq2[n], grads[layout[n]], need_input_grad=n > 0
                        )
                        if n > 0:
                            g0[: b - a] += g_phis[n - 1, a:b]

        ws.run(task)
        grads = per_worker[0]
        for other in per_worker[1:]:  # fixed order: deterministic for a given number of workers
            for acc, add in zip(grads, other, strict=True):
                for a_, b_ in zip(acc, add, strict=True):
                    a_ += b_
        flat = [g.t().contiguous() if j == 0 else g for block in grads for j, g in enumerate(block)]
        return (None, None, None, *flat)


def jet(
    x: torch.Tensor, unique_params: Sequence[BlockParams], layout: Sequence[int], workspace: Workspace | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable one-pass energy terms of the ResNet.

    Args:
        x: (M, 3) points (no gradient is propagated to x).
        unique_params: the distinct blocks' parameters (W1, b1, W2, b2, W3, b3); one entry when the
            weights are shared.
        layout: for each step n = 1..N the index into ``unique_params`` of the block it uses.
        workspace: buffers (and worker threads) to use, see :class:`Workspace`; when None or when it does
            not fit these sizes, a fresh one with ``torch.get_num_threads()`` workers.
    Returns:
        phis: (N, M, 3), phis[n-1] = phi_n(x).
        sq: (N,), sq[n-1] = sum_m ||d/dx F_n(phi_{n-1}(x_m))||_F^2 (the summand of P, rnr/methods/README.md).
    """
    _check_inputs(x, unique_params)
    width = unique_params[0][0].shape[0]
    key = (x.shape[0], width, len(layout), x.dtype, x.device, True)
    ws = workspace if workspace is not None and workspace.key[:6] == key else None
    if ws is None:
        ws = Workspace(x.shape[0], width, len(layout), x.dtype, x.device)
    flat = [p for block in unique_params for p in block]
    return _JetFunction.apply(x, tuple(int(i) for i in layout), ws, *flat)

"""The optimisation loop (rnr/fitting/fit.py): determinism, the per-iteration log, and the stop on a non-finite
loss."""

from __future__ import annotations

import numpy as np
import torch

from rnr.fitting.fit import FitContext, make_sampler, optimise
from rnr.methods.rnr import RNRObjective, rnr_data
from rnr.methods.settings import settings_for_method

CPU = torch.device("cpu")


def test_loop_is_deterministic_on_cpu_and_logs_every_iteration(case, mask):
    # Default threads: with 2+ threads the jet's worker threads share the 2000 points' chunks.
    settings = settings_for_method("rnr", iterations=6, batch_size=2000, width=16)
    logs, params = [], []
    for _ in range(2):
        data = rnr_data(FitContext(case, mask, settings, CPU, "test", False))
        objective = RNRObjective(data, settings)
        sampler = make_sampler(settings.params, settings.seed, data.n_points, CPU)
        log = optimise(objective, sampler, settings.params.iterations, settings.params.lr, progress=False)
        logs.append(log.frame)
        params.append([p.detach().clone() for p in objective.parameters()])
    frame = logs[0]
    assert list(frame.columns[:5]) == ["iteration", "loss", "dissimilarity", "grad_penalty", "weight_penalty"]
    assert frame.columns[-1] == "elapsed_s" and len(frame) == 6
    assert frame["iteration"].tolist() == list(range(1, 7))
    d_cols = [c for c in frame.columns if c.startswith("dissimilarity_")]
    assert len(d_cols) == 5
    np.testing.assert_allclose(frame[d_cols].mean(axis=1), frame["dissimilarity"], rtol=1e-6)
    recomposed = frame["dissimilarity"] + frame["grad_penalty"] + 1e-4 * frame["weight_penalty"]
    np.testing.assert_allclose(recomposed, frame["loss"], rtol=1e-6)
    cols = [c for c in frame.columns if c != "elapsed_s"]
    assert logs[0][cols].equals(logs[1][cols])
    assert all(torch.equal(a, b) for a, b in zip(*params, strict=True))
    assert not torch.equal(params[0][2], RNRObjective(data, settings).model.blocks[0].W2)  # it trained

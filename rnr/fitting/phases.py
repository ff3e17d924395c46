"""The breathing phases a fit compares and the landmarks that evaluate each step: the one definition.

DIR-Lab's phases run T00 (end-inhale) -> T10 -> ... -> T50 (end-exhale): five phase intervals. A map with
N = 5k steps (RNR's residual blocks) spends k steps per interval, so interval n ends at step n*k.

A *pairing* says which phase pair belongs to interval n (rnr/methods/README.md, "Pairings"):

* ``seed`` (the reference code's): the T50 image warped by phi_{nk} is compared with phase T(50-10n), so
  phi_{nk} carries T(50-10n) points to their T50 positions;
* ``trajectory``: phase T(10n) sampled at phi_{nk}(x) is compared with T00 at x, so phi_{nk} carries T00
  points to their phase-T(10n) positions.

Both end at n = 5 with T00 -> T50. Fitting and evaluation both read :func:`phase_pairs`, so a fit's
compared terms and the Sampled4D landmarks that score each step cannot disagree: a term samples phase
``moving`` at phi(x) for x on the grid of phase ``fixed``; the same step is scored by pushing the
``fixed``-phase landmarks through phi and comparing them with the ``moving``-phase landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import SettingsError
from ..layout import PHASES

#: Phase intervals covered by T00 -> T10 -> ... -> T50.
N_INTERVALS = len(PHASES) - 1
PAIRINGS = ("seed", "trajectory")


@dataclass(frozen=True)
class PhasePair:
    """Interval ``n`` (1..5) of a pairing: phase ``moving`` sampled at phi(x), x on the ``fixed`` phase."""

    interval: int
    fixed: str
    moving: str


@dataclass(frozen=True)
class Term:
    """One compared term of a fit: phase ``moving`` sampled at phi_step(x) vs phase ``fixed`` at x."""

    step: int
    moving: str
    fixed: str

    @property
    def label(self) -> str:
        return f"{self.moving}_phi{self.step}_vs_{self.fixed}"


def phase_pairs(pairing: str) -> tuple[PhasePair, ...]:
    """The five phase pairs of ``pairing`` (module docstring), interval 1 first."""
    if pairing not in PAIRINGS:
        raise SettingsError(f"setting 'pairing' must be one of {', '.join(PAIRINGS)}; got {pairing!r}")
    if pairing == "seed":
        return tuple(PhasePair(n, PHASES[N_INTERVALS - n], PHASES[-1]) for n in range(1, N_INTERVALS + 1))
    return tuple(PhasePair(n, PHASES[0], PHASES[n]) for n in range(1, N_INTERVALS + 1))


def steps_per_interval(n_steps: int) -> int:
    """k for a map of ``n_steps`` = 5k steps; a SettingsError otherwise."""
    if n_steps < N_INTERVALS or n_steps % N_INTERVALS:
        raise SettingsError(
            f"intermediate phases need n_blocks to be a multiple of {N_INTERVALS} (one or more blocks per phase "
            f"interval T00->T10->...->T50), got n_blocks={n_steps}; set intermediate=false or change n_blocks"
        )
    return n_steps // N_INTERVALS


def compared_terms(pairing: str, use_intermediate: bool, n_steps: int) -> tuple[Term, ...]:
    """The terms of a fit's dissimilarity.

    Args:
        pairing: ``seed`` or ``trajectory``.
        use_intermediate: whether T10..T40 enter the loss (the setting *and* the case has them).
        n_steps: steps of the map (RNR: n_blocks).
    Returns:
        One term per interval (step n*k) with intermediate phases; else the single term T50 at phi_N vs T00
        (all N steps still run).
    """
    if not use_intermediate:
        if pairing not in PAIRINGS:
            raise SettingsError(f"setting 'pairing' must be one of {', '.join(PAIRINGS)}; got {pairing!r}")
        return (Term(n_steps, PHASES[-1], PHASES[0]),)
    k = steps_per_interval(n_steps)
    return tuple(Term(p.interval * k, p.moving, p.fixed) for p in phase_pairs(pairing))


@dataclass(frozen=True)
class LandmarkPair:
    """Scoring of interval ``interval``: phi_step(landmarks of ``source``) vs landmarks of ``target``.

    ``step`` is the transform step (None: the full map, for maps that are the same at every step)."""

    interval: int
    source: str
    target: str
    step: int | None


def landmark_pairs(pairing: str, n_steps: int, stepwise_identity: bool = False) -> list[LandmarkPair]:
    """The Sampled4D landmark pairs that score each interval of a map with ``n_steps`` steps.

    Empty when the map has no step per interval (``n_steps`` not a multiple of 5), unless
    ``stepwise_identity`` (the identity map: the same at every step, scored with ``step=None``).
    """
    if stepwise_identity:
        return [LandmarkPair(p.interval, p.fixed, p.moving, None) for p in phase_pairs(pairing)]
    if n_steps < N_INTERVALS or n_steps % N_INTERVALS:
        return []
    k = n_steps // N_INTERVALS
    return [LandmarkPair(p.interval, p.fixed, p.moving, p.interval * k) for p in phase_pairs(pairing)]

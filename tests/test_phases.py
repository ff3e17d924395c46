"""The pairings of phases and steps (rnr/fitting/phases.py), written out literally so that fitting and evaluation
are checked against the definition, not against each other."""

from __future__ import annotations

import pytest

from rnr.config import SettingsError
from rnr.fitting.phases import LandmarkPair, Term, compared_terms, landmark_pairs, phase_pairs

# The definition (rnr/methods/README.md, "Pairings"), one row per phase interval n: (moving, fixed).
SEED = [("T50", "T40"), ("T50", "T30"), ("T50", "T20"), ("T50", "T10"), ("T50", "T00")]
TRAJECTORY = [("T10", "T00"), ("T20", "T00"), ("T30", "T00"), ("T40", "T00"), ("T50", "T00")]


@pytest.mark.parametrize("pairing, table", [("seed", SEED), ("trajectory", TRAJECTORY)])
def test_compared_terms_follow_the_definition(pairing, table):
    terms = compared_terms(pairing, True, 5)
    assert [(t.step, t.moving, t.fixed) for t in terms] == [(n, m, f) for n, (m, f) in enumerate(table, 1)]
    assert [(p.interval, p.moving, p.fixed) for p in phase_pairs(pairing)] == [
        (n, m, f) for n, (m, f) in enumerate(table, 1)
    ]


@pytest.mark.parametrize("pairing, table", [("seed", SEED), ("trajectory", TRAJECTORY)])
def test_landmark_pairs_score_the_fitted_terms(pairing, table):
    """Interval n is scored by pushing the fixed phase's landmarks through phi_n onto the moving phase's."""
    assert landmark_pairs(pairing, 5) == [LandmarkPair(n, f, m, n) for n, (m, f) in enumerate(table, 1)]
    assert [p.step for p in landmark_pairs(pairing, 10)] == [2, 4, 6, 8, 10]
    assert landmark_pairs(pairing, 1) == [] and landmark_pairs(pairing, 3) == []
    identity = landmark_pairs(pairing, 1, stepwise_identity=True)
    assert [(p.source, p.target, p.step) for p in identity] == [(f, m, None) for m, f in table]


def test_without_intermediate_phases_one_term_at_the_last_step():
    assert compared_terms("seed", False, 5) == (Term(5, "T50", "T00"),)
    assert compared_terms("trajectory", False, 3) == (Term(3, "T50", "T00"),)
    assert [t.step for t in compared_terms("seed", True, 10)] == [2, 4, 6, 8, 10]
    with pytest.raises(SettingsError, match="multiple of 5"):
        compared_terms("seed", True, 3)
    with pytest.raises(SettingsError, match="pairing"):
        compared_terms("other", True, 5)

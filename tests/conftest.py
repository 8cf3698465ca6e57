"""Hand-made datasets shared by the test modules.

Every fixture uses one-hot embeddings (``np.eye(K)``), so the embeddings are orthonormal and the
Graph-SVM is feasible. Token names in the docstrings: a = 0, b = 1, and so on.
"""

from __future__ import annotations

import numpy as np
import pytest

from attnmech import Dataset


@pytest.fixture
def unbalanced_cycle() -> Dataset:
    """Three copies of [a, b] (last token b) with labels a, a, b (docs/theory.md#the-finite-part).

    ``G^(b)`` has the single SCC {a, b}; ``W_svm = 0`` and
    ``(e_a - e_b)^T W_fin e_b = log 2``.
    """
    return Dataset([[0, 1], [0, 1], [0, 1]], [0, 0, 1], np.eye(2))


@pytest.fixture
def balanced_cycle() -> Dataset:
    """Two copies of [a, b] with labels a and b: one SCC {a, b} and ``W_fin = 0``."""
    return Dataset([[0, 1], [0, 1]], [0, 1], np.eye(2))


@pytest.fixture
def acyclic_chain() -> Dataset:
    """Under last token d: a > b > c > d, a strict chain (every SCC a single token).

    Sequences [a, b, c, d], [b, c, d], [c, d] with labels a, b, c give ``G^(d)`` the edges
    a->b, a->c, a->d, b->c, b->d, c->d; the levels are a: 0, b: 1, c: 2, d: 3.
    """
    return Dataset([[0, 1, 2, 3], [1, 2, 3], [2, 3]], [0, 1, 2], np.eye(4))


@pytest.fixture
def ragged_with_repeats() -> Dataset:
    """Ragged sequences with repeated tokens, two last tokens, SCCs of size 2 on two levels.

    Under last token e (= 4)::

        [a, b, a, e] -> a     [a, b, e] -> b     [a, c, e] -> a     [c, d, e, e] -> c
        [c, d, e] -> d

    give the SCCs {a, b} (level 0), {c, d} (level 1), {e} (level 2). The edge a -> e skips
    level 1, so e's level is the longest path (2), not the shortest (1). Under last token c
    (= 2), [d, c] -> d gives {d} (level 0) > {c} (level 1).
    """
    sequences = [[0, 1, 0, 4], [0, 1, 4], [0, 2, 4], [2, 3, 4, 4], [2, 3, 4], [3, 2]]
    labels = [0, 1, 0, 2, 3, 3]
    return Dataset(sequences, labels, np.eye(5))

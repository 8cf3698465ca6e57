"""The Graph-SVM (compatibility module): the code lives in :mod:`attnmech.theory.graphsvm`.

``attnmech.theory.svm`` keeps its public names: :func:`solve_graph_svm`, :class:`GraphSVMResult`,
:class:`SVMConstraints`, :func:`svm_constraints`, and :func:`solve_nuclear_svm`, now a deprecated
shim of ``attnmech.theory.norms.solve_norm_svm(graphs, embeddings, "nuclear")``.
"""

from __future__ import annotations

import warnings
from typing import Any

from .graphs import PriorityGraphs
from .graphsvm.active_set import DENSE_LIMIT_BYTES, DUAL_MEMORY_LIMIT, SINGLE_THREAD_BELOW
from .graphsvm.certificate import (
    GAP_TOL,
    VIOLATION_TOL,
    GraphSVMResult,
    SVMResultBase,
    SVMResultMixin,
)
from .graphsvm.constraints import SVMConstraints, svm_constraints
from .graphsvm.solve import solve_graph_svm

__all__ = [
    "GraphSVMResult",
    "SVMConstraints",
    "svm_constraints",
    "solve_graph_svm",
    "solve_nuclear_svm",
]

_REEXPORTED = (
    DENSE_LIMIT_BYTES,
    DUAL_MEMORY_LIMIT,
    SINGLE_THREAD_BELOW,
    GAP_TOL,
    VIOLATION_TOL,
    SVMResultBase,
    SVMResultMixin,
)


def solve_nuclear_svm(graphs: PriorityGraphs, embeddings: Any, **options: Any) -> GraphSVMResult:
    """Deprecated: use ``solve_norm_svm(graphs, embeddings, "nuclear")``.

    The nuclear-norm Graph-SVM ``min ||W||_*`` under the Graph-SVM constraints, solved by
    :func:`attnmech.theory.norms.solve_norm_svm` (same result: the certified gap against the
    multipliers' lower bound, the uniqueness certificate, the Frobenius tie-break when the
    minimiser is not unique). ``options`` go to that function.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from attnmech import Dataset, build_priority_graphs
    >>> ds = Dataset([[0, 1, 2]], [0], np.eye(3))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     res = solve_nuclear_svm(build_priority_graphs(ds), ds.embeddings)
    >>> round(float(np.linalg.norm(res.W_svm, "nuc")), 4)  # one query: rank one, as Frobenius
    0.8165
    """
    warnings.warn(
        "solve_nuclear_svm is deprecated; use attnmech.theory.norms.solve_norm_svm(graphs, "
        "embeddings, 'nuclear') (or attnmech.solve(dataset, svm_norm='nuclear'))",
        DeprecationWarning,
        stacklevel=2,
    )
    from .norms import solve_norm_svm

    result = solve_norm_svm(graphs, embeddings, "nuclear", **options)
    assert isinstance(result, GraphSVMResult)
    return result

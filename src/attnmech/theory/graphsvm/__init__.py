"""The Graph-SVM layer: one set of constraints, one active-set core, one certificate.

=================== =================================================================
:mod:`.constraints` the reduced constraints, built on :func:`~attnmech.theory.graphs.scc_chains`
:mod:`.active_set`  the proximal active-set core with a dense-Cholesky or sparse-KKT solve
:mod:`.certificate` the optimality certificate, the status messages and the result fields
:mod:`.infeasibility` checked Farkas certificates (an "infeasible" verdict needs one)
:mod:`.clarabel`    Clarabel fallbacks (primal with unit rows, dual)
:mod:`.solve`       :func:`solve_graph_svm` (``method="dense" | "tokenspace" | "auto"``)
=================== =================================================================

Other norms are solved by :func:`attnmech.theory.norms.solve_norm_svm` on the same constraints and
reported through the same certificate fields.
"""

from __future__ import annotations

from .certificate import GAP_TOL, VIOLATION_TOL, GraphSVMResult, SVMResultBase
from .constraints import SVMConstraints, svm_constraints
from .infeasibility import InfeasibilityCertificate, infeasibility_certificate
from .solve import solve_graph_svm

__all__ = [
    "GAP_TOL",
    "VIOLATION_TOL",
    "GraphSVMResult",
    "InfeasibilityCertificate",
    "SVMConstraints",
    "SVMResultBase",
    "infeasibility_certificate",
    "solve_graph_svm",
    "svm_constraints",
]

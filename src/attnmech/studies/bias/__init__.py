"""Which optimiser finds which max-margin graph direction: the bias table.

The paper proves that gradient descent on one attention layer converges in direction to the
Frobenius-norm Graph-SVM (docs/theory.md#graph-svm). Other optimisers are predicted
to follow the Graph-SVM of their own geometry (:func:`attnmech.layer.optim.expected_svm_norm`):
mirror descent with an l_p potential the ``lp:p`` one, sign descent (and Adam) ``linf``, l_1
steepest descent ``l1``, spectral descent (exact Muon) ``spectral``, factorised ``W = K Q^T``
training ``nuclear``. :func:`run` measures it: every row of :data:`BIAS_OPTIMIZERS` trains on the
paper's settings (the data of the experiments registry), and the final ``W`` of each trial is
compared with every norm's Graph-SVM (:func:`attnmech.theory.norms.solve_norm_svm`, solved once per
dataset):

- ``cos``: the cosine ``<W, W_svm^N> / (||W||_F ||W_svm^N||_F)`` (Frobenius inner product);
- ``dist``: the margin-normalised distance ``N(W / margin(W) - W_svm^N)`` in that norm
  (:func:`attnmech.theory.norms.margin_distance`), and ``rel_dist`` the same divided by
  ``N(W_svm^N)`` so that columns of different norms can be compared;
- ``excess``: ``N(W / margin(W)) / N(W_svm^N) - 1``, how far the margin-normalised ``W`` is from
  being a minimiser of ``N`` (0 exactly on the optimal face). Unlike the cosine and the distance,
  which compare with one point (``attnmech.theory.norms`` returns the face's least-Frobenius point
  when the minimiser of ``l1``, ``linf``, ``nuclear`` or ``spectral`` is not unique), it does not
  depend on which point of a non-unique optimal face the optimiser picks.

It also records, per optimiser, the rates: ``1 - cos(W(t), W_svm^own)``, ``L(W(t)) - L*`` (``L*``
the infimum of the loss: 0 on acyclic data, the reduced loss at ``W_fin`` on cyclic data) and
``||W(t)||_F`` against ``t``, with the slope of a least-squares line on log-log axes over the last
decade of steps; and on cyclic data the finite part ``||Proj_{S_fin} W(t) - W_fin||_F``.

The package follows the study scaffold (:mod:`attnmech.studies.scaffold`): :class:`BiasConfig`,
:func:`run` and :class:`BiasResult`; :func:`bias_table` is the same call with keyword arguments.
Modules: :mod:`.rows` (rows and columns), :mod:`.config`, :mod:`.measure` (solves and measures),
:mod:`.curves`, :mod:`.result`, :mod:`.report` (``TABLE.md``), :mod:`.figures`, :mod:`.runfiles`
(``resume``), :mod:`.runner`.

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
Julistiono, Tarzanagh, Azizi 2024, arXiv:2410.14581; Vasudeva et al. 2024, arXiv:2402.05738;
Fan et al. 2025, arXiv:2502.04664; Sheen et al. 2024, arXiv:2403.08699.
"""

from __future__ import annotations

from .config import BiasConfig
from .curves import loglog_slope
from .result import BiasResult, BiasRun, BiasTable
from .rows import BIAS_NORMS, BIAS_OPTIMIZERS, DEFAULT_SETTINGS, BiasOptimizer
from .runner import bias_table, run, write_bias_table

CONFIG_TYPE = BiasConfig
RESULT_TYPE = BiasResult

__all__ = [
    "BIAS_NORMS",
    "BIAS_OPTIMIZERS",
    "CONFIG_TYPE",
    "DEFAULT_SETTINGS",
    "RESULT_TYPE",
    "BiasConfig",
    "BiasOptimizer",
    "BiasResult",
    "BiasRun",
    "BiasTable",
    "bias_table",
    "loglog_slope",
    "run",
    "write_bias_table",
]

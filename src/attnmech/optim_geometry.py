"""Step rules of other geometries: mirror descent, sign, l1 and spectral steepest descent.

Each rule is one class with the step-rule interface of :mod:`attnmech.optim` (``init`` returns the
optimiser state, ``update`` returns the new parameters), working on a batch of independent trials:
``params`` and ``grad`` have shape ``(B, d, d)`` (combined ``W``) or ``(B, 2, d, r)`` (factorised
``W = K Q^T``: the factors ``K`` and ``Q``). Every norm is taken per trial, never across trials.

Which max-margin direction each rule is expected to follow (see ``docs/notes/norms.md``):

===================== ========================================== ===========================
rule                   step (per trial, learning rate ``lr``)     implicit bias
===================== ========================================== ===========================
``mirror`` (p)         ``grad psi(W') = grad psi(W) - lr g``,     l_p Graph-SVM (``lp:p``)
                       ``psi(W) = ||W||_p^p / p`` entrywise
``normalized-mirror``  same with ``g / ||g||_q``, 1/p + 1/q = 1   l_p Graph-SVM (``lp:p``)
``sign``               ``W - lr sign(g)``                         l_inf Graph-SVM (``linf``)
``l1-steepest``        ``W - lr sign(g_m) e_m``, ``m`` the        l_1 Graph-SVM (``l1``)
                       largest ``|g|`` (ties share the step)
``spectral``           ``W - lr U V^T`` with ``g = U S V^T``      spectral Graph-SVM
                       (reduced SVD)                              (``spectral``)
===================== ========================================== ===========================

Steepest descent with respect to a norm ``N`` moves along ``-s`` with ``s`` maximising ``<g, s>``
over ``N(s) <= 1``. The *normalised* rules (``normalized=True``, the default for ``sign``,
``l1-steepest`` and ``spectral``) take the step ``lr s``; the unnormalised ones take
``lr N*(g) s`` (``N*`` the dual norm: ``||g||_1`` for sign descent, ``||g||_inf`` for l_1
steepest descent, the nuclear norm for spectral descent), which is the exact minimiser of
``<g, D> + N(D)^2 / (2 lr)``.

For ``spectral`` on factorised parameters each factor gets its own ``U V^T``; unnormalised, the
common factor is the sum of the two factors' nuclear norms (the dual of ``max(||K||_2, ||Q||_2)``).
The exact ``U V^T`` from the SVD is what Muon approximates; Muon in practice uses a few
Newton-Schulz iterations instead of an SVD (and momentum), neither of which is done here.

These classes are importable without torch (torch is imported inside the methods). On this branch
they sit in :data:`GEOMETRY_OPTIMIZERS`; at merge they join ``attnmech.optim.OPTIMIZERS``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import InvalidParameterError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

__all__ = [
    "StepRule",
    "MirrorDescent",
    "NormalizedMirrorDescent",
    "SignDescent",
    "L1SteepestDescent",
    "SpectralDescent",
    "GEOMETRY_OPTIMIZERS",
    "SVM_NORM_OF",
    "expected_svm_norm",
]


class StepRule:
    """Base of the step rules (the interface of ``attnmech.optim.StepRule``).

    Parameters
    ----------
    learning_rate : float
        Positive and finite.
    **options
        The rule's own options (``OPTIONS`` lists them with their defaults).
    """

    name: ClassVar[str] = ""
    OPTIONS: ClassVar[dict[str, Any]] = {}

    def __init__(self, learning_rate: float, **options: Any) -> None:
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float):
            raise InvalidParameterError(
                f"optimizer {self.name!r}: learning_rate must be a number, got {learning_rate!r}"
            )
        if not (math.isfinite(learning_rate) and learning_rate > 0):
            raise InvalidParameterError(
                f"optimizer {self.name!r}: learning_rate must be positive and finite, got "
                f"{learning_rate!r}"
            )
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            accepted = ", ".join(f"{k}={v!r}" for k, v in self.OPTIONS.items()) or "none"
            raise InvalidParameterError(
                f"optimizer {self.name!r} has no option(s) {unknown}; its options are: {accepted}"
            )
        self.learning_rate = float(learning_rate)
        self.options = {**self.OPTIONS, **options}

    def init(self, params: Tensor) -> dict[str, Tensor]:
        """Optimiser state (checkpointed with the parameters); these rules keep none."""
        return {}

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """The new parameters (``params`` is not modified)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}(learning_rate={self.learning_rate!r}{opts})"


def _trial_dims(t: Tensor) -> tuple[int, ...]:
    """All dimensions but the first (the trial)."""
    return tuple(range(1, t.ndim))


def _check_batched(rule: StepRule, params: Tensor, grad: Tensor) -> None:
    if params.ndim not in (3, 4) or grad.shape != params.shape:
        raise InvalidParameterError(
            f"optimizer {rule.name!r}: params must have shape (B, d, d) or (B, 2, d, r) and grad "
            f"the same shape; got params {tuple(params.shape)}, grad {tuple(grad.shape)}"
        )


def _safe_divide(x: Tensor, norm: Tensor) -> Tensor:
    """``x / norm`` per trial, leaving trials with a zero norm unchanged (their ``x`` is 0)."""
    import torch

    return x / torch.where(norm > 0, norm, torch.ones_like(norm))


class MirrorDescent(StepRule):
    """Mirror descent with the entrywise potential ``psi(W) = sum |W_ab|^p / p``.

    ``grad psi(W) = sign(W) |W|^(p - 1)`` and its inverse ``sign(Z) |Z|^(1 / (p - 1))`` act entry
    by entry, so one step is ``W' = (grad psi)^-1(grad psi(W) - lr g)``; ``p = 2`` is gradient
    descent. Options: ``p`` (> 1, default 2) and ``normalized`` (default False: divide ``g`` by
    its per-trial dual norm ``||g||_q``, ``1/p + 1/q = 1``, before the step).

    Expected implicit bias: the l_p-norm Graph-SVM (Julistiono, Tarzanagh, Azizi 2024,
    arXiv:2410.14581, for attention; ``svm_norm="lp:p"``).
    """

    name = "mirror"
    OPTIONS: ClassVar[dict[str, Any]] = {"p": 2.0, "normalized": False}

    def __init__(self, learning_rate: float, **options: Any) -> None:
        super().__init__(learning_rate, **options)
        p = self.options["p"]
        if isinstance(p, bool) or not isinstance(p, int | float) or not (1 < p < math.inf):
            raise InvalidParameterError(
                f"optimizer {self.name!r}: option p must be a number with 1 < p < inf, got {p!r} "
                "(use 'sign' for the l_inf geometry and 'l1-steepest' for l_1)"
            )
        self.p = float(p)
        self.q = self.p / (self.p - 1.0)

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        import torch

        _check_batched(self, params, grad)
        if self.options["normalized"]:
            norm = torch.linalg.vector_norm(grad, ord=self.q, dim=_trial_dims(grad), keepdim=True)
            grad = _safe_divide(grad, norm)
        if self.p == 2.0:
            return params - self.learning_rate * grad
        dual = torch.sign(params) * params.abs() ** (self.p - 1.0)  # grad psi(W)
        dual = dual - self.learning_rate * grad
        return torch.sign(dual) * dual.abs() ** (1.0 / (self.p - 1.0))  # (grad psi)^-1


class NormalizedMirrorDescent(MirrorDescent):
    """:class:`MirrorDescent` with ``normalized=True`` by default: the step is ``lr g / ||g||_q``
    in the dual space (``p = 2``: normalised gradient descent)."""

    name = "normalized-mirror"
    OPTIONS: ClassVar[dict[str, Any]] = {"p": 2.0, "normalized": True}


class SignDescent(StepRule):
    """Sign descent, the steepest descent of the entrywise l_inf norm: ``W - lr sign(g)``.

    With ``normalized=False`` the step is ``lr ||g||_1 sign(g)`` (``||g||_1`` per trial).
    Expected implicit bias: the l_inf (max-norm) Graph-SVM (for linear models, the max-norm
    margin of sign descent and Adam; Fan et al. 2025, arXiv:2502.04664).
    """

    name = "sign"
    OPTIONS: ClassVar[dict[str, Any]] = {"normalized": True}

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        import torch

        _check_batched(self, params, grad)
        direction = torch.sign(grad)
        if not self.options["normalized"]:
            direction = direction * grad.abs().sum(dim=_trial_dims(grad), keepdim=True)
        return params - self.learning_rate * direction


class L1SteepestDescent(StepRule):
    """Steepest descent of the entrywise l_1 norm: move only the largest-magnitude gradient
    coordinate(s) of each trial.

    The step is ``lr sign(g_m)`` on the coordinate ``m`` with the largest ``|g_m|`` over the whole
    trial (both factors when factorised); exact ties share it equally (``lr / n_ties`` each), so
    the step always has l_1 norm ``lr``. With ``normalized=False`` it is multiplied by
    ``||g||_inf`` (per trial). Expected implicit bias: the l_1 Graph-SVM.
    """

    name = "l1-steepest"
    OPTIONS: ClassVar[dict[str, Any]] = {"normalized": True}

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        _check_batched(self, params, grad)
        dims = _trial_dims(grad)
        magnitude = grad.abs()
        largest = magnitude.amax(dim=dims, keepdim=True)
        chosen = (magnitude == largest) & (largest > 0)
        count = chosen.sum(dim=dims, keepdim=True).clamp(min=1)
        direction = chosen.to(grad.dtype) * grad.sign() / count
        if not self.options["normalized"]:
            direction = direction * largest
        return params - self.learning_rate * direction


class SpectralDescent(StepRule):
    """Steepest descent of the spectral norm: ``W - lr U V^T`` from the reduced SVD
    ``g = U S V^T`` of each matrix (an exact, SVD-based Muon step, without momentum).

    Singular values below ``max(d, r) * eps * s_max`` are treated as zero (their directions are
    left out). With ``normalized=False`` the step is multiplied by the nuclear norm of ``g`` (the
    sum over both factors when factorised). Expected implicit bias: the spectral-norm Graph-SVM
    (for linear models, Muon's spectral margin; Fan et al. 2025, arXiv:2502.04664).
    """

    name = "spectral"
    OPTIONS: ClassVar[dict[str, Any]] = {"normalized": True}

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        import torch

        _check_batched(self, params, grad)
        U, S, Vh = torch.linalg.svd(grad, full_matrices=False)  # per matrix: (..., d, k)
        rows, cols = grad.shape[-2:]
        tol = max(rows, cols) * torch.finfo(grad.dtype).eps * S.amax(dim=-1, keepdim=True)
        keep = (S > tol).to(grad.dtype)  # (..., k)
        direction = (U * keep.unsqueeze(-2)) @ Vh  # U V^T on the kept singular directions
        if not self.options["normalized"]:
            nuclear = (S * keep).sum(dim=_trial_dims(S), keepdim=True)  # (B, 1[, 1])
            direction = direction * nuclear.unsqueeze(-1)
        return params - self.learning_rate * direction


GEOMETRY_OPTIMIZERS: dict[str, type[StepRule]] = {
    rule.name: rule
    for rule in (
        MirrorDescent,
        NormalizedMirrorDescent,
        SignDescent,
        L1SteepestDescent,
        SpectralDescent,
    )
}
"""The rules of this module by name (to join ``attnmech.optim.OPTIMIZERS`` at merge)."""

SVM_NORM_OF: dict[str, str] = {
    "sign": "linf",
    "l1-steepest": "l1",
    "spectral": "spectral",
}
"""The Graph-SVM norm each fixed-geometry rule is expected to follow (``mirror``: ``lp:p``)."""


def expected_svm_norm(rule: StepRule) -> str:
    """The ``svm_norm`` whose Graph-SVM ``rule`` is expected to follow (combined ``W``).

    Examples
    --------
    >>> expected_svm_norm(MirrorDescent(0.1, p=3)), expected_svm_norm(SignDescent(0.1))
    ('lp:3', 'linf')
    """
    if isinstance(rule, MirrorDescent):
        return "fro" if rule.p == 2.0 else f"lp:{rule.p:g}"
    return SVM_NORM_OF[rule.name]

"""First-order step rules and the one optimisation loop (docs/theory.md#model-and-loss and
#the-papers-experiments).

A step rule maps ``(params, grad, loss, state, step)`` to new parameters, per trial: ``params`` and
``grad`` carry a leading trials dimension (``(B, d, d)`` for ``W`` itself, ``(B, 2, d, r)`` for the
factors) and ``loss`` is the ``(B,)`` risk at ``params``. Norms are taken per trial, never across
trials. :data:`OPTIMIZERS` is the registry: adding an optimiser is one :class:`StepRule` subclass
and one line there. :func:`gradient_descent` is the loop that runs every rule, for training and for
the ``W_fin(t)`` trajectory alike.

Rules and the max-margin direction each is expected to follow (``expected_svm_norm``; measured by
:func:`attnmech.studies.bias.bias_table`):

=====================  =============================================  ==========================
name                   step (per trial, learning rate ``lr``)         expected Graph-SVM
=====================  =============================================  ==========================
``gd``                 ``W - lr g``                                   ``fro`` (the paper)
``ngd``                ``W - lr g / ||g||_F`` (option ``eps``)         ``fro``
``polyak``             ``W - lr (L - L*) g / ||g||_F^2``              ``fro``
``adam``               Adam (bias-corrected moments)                  ``linf`` (like sign descent)
``mirror`` (p)         ``grad psi(W') = grad psi(W) - lr g``,         ``lp:p``
                       ``psi(W) = sum |W_ab|^p / p``
``normalized-mirror``  the same with ``g / ||g||_q``, 1/p + 1/q = 1   ``lp:p``
``sign``               ``W - lr sign(g)``                             ``linf``
``l1-steepest``        ``W - lr sign(g_m) e_m``, ``m`` the largest    ``l1``
                       ``|g_m|`` (ties share the step)
``spectral``           ``W - lr U V^T``, ``g = U S V^T`` (reduced)    ``spectral``
``momentum``           ``v <- beta v + g``, ``W - lr v``              ``fro``
``signum``             ``m <- beta m + (1 - beta) g``,                ``linf``
                       ``W - lr sign(m)``
``muon``               momentum, then ``W - lr NS(m)`` (Newton-       ``spectral``
                       Schulz orthogonalisation, no SVD)
=====================  =============================================  ==========================

With the factorised parameterization (``W = K Q^T``, both trained) ``gd`` and ``ngd`` are expected
to follow the ``nuclear`` Graph-SVM instead.

Steepest descent with respect to a norm ``N`` moves along ``-s`` with ``s`` maximising ``<g, s>``
over ``N(s) <= 1``. The *normalised* rules (``normalized=True``, the default for ``sign``,
``l1-steepest`` and ``spectral``) take the step ``lr s``; the unnormalised ones take
``lr N*(g) s`` (``N*`` the dual norm: ``||g||_1`` for sign descent, ``||g||_inf`` for l_1
steepest descent, the nuclear norm for spectral descent), the exact minimiser of
``<g, D> + N(D)^2 / (2 lr)``. For ``spectral`` on factorised parameters each factor gets its own
``U V^T``; unnormalised, the common factor is the sum of the two factors' nuclear norms. The exact
``U V^T`` from the SVD is what Muon approximates: :class:`Muon` uses momentum and a few
Newton-Schulz iterations (:func:`newton_schulz`) instead of an SVD, as in practice.

Every rule's step is proportional to ``learning_rate``, so a schedule
(:mod:`attnmech.layer.schedules`) applies to all of them through :func:`gradient_descent`.
Norms of gradients are taken with
:func:`scaled_norm` (scaled by the largest entry before squaring), so a gradient of size 1e-163
has a norm of that size rather than 0.

This module imports torch only inside methods, so the registry's names can be listed (by the
command line, say) without loading torch.

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
Julistiono, Tarzanagh, Azizi 2024, arXiv:2410.14581 (mirror descent on attention: l_p margin).
Vasudeva et al. 2024, arXiv:2402.05738 (normalised GD and Polyak steps on attention: rates).
Fan et al. 2025, arXiv:2502.04664 (sign descent, Adam, spectral descent / Muon: max-norm and
spectral margins, for linear models).
Sheen et al. 2024, arXiv:2403.08699 (factorised K Q^T: nuclear norm).
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .._validation import Interval, check_params, register
from ..errors import InvalidParameterError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "StepRule",
    "GradientDescent",
    "NormalizedGradientDescent",
    "Adam",
    "PolyakStep",
    "OptionRule",
    "MirrorDescent",
    "NormalizedMirrorDescent",
    "SignDescent",
    "L1SteepestDescent",
    "SpectralDescent",
    "MomentumDescent",
    "Signum",
    "Muon",
    "newton_schulz",
    "scaled_norm",
    "CappedPolyakStep",
    "SplitNormalizedStep",
    "OPTIMIZERS",
    "SVM_NORM_OF",
    "expected_svm_norm",
    "make_step_rule",
    "gradient_descent",
]


_POSITIVE = Interval(numbers.Real, 0, None, closed="neither")
STEP_RULE_PARAMS = register("StepRule", {"learning_rate": [_POSITIVE]})
ADAM_PARAMS = register("Adam", {"eps": [Interval(numbers.Real, 0, None, closed="left")]})


def _positive_number(name: str, value: Any, owner: str) -> float:
    """``value`` as a float, checked against the one declared constraint of a positive option."""
    check_params({name: value}, {name: [_POSITIVE]}, where=owner)
    return float(value)


def _per_trial(values: Tensor, like: Tensor) -> Tensor:
    """Reshape ``values`` (B,) to broadcast against ``like`` (B, ...)."""
    return values.view(-1, *([1] * (like.ndim - 1)))


def scaled_norm(
    x: Tensor, dims: tuple[int, ...] | None = None, ord: float = 2.0, keepdim: bool = False
) -> Tensor:
    """The l_``ord`` norm of ``x`` over ``dims``, computed as ``m * ||x / m||`` with ``m`` the
    largest ``|x|`` entry, so that it does not underflow to 0 (nor overflow) where the plain sum
    of powers would: for entries near 1e-163, ``sum x^2`` is below the smallest float64 while the
    norm is not. Exactly 0 only where ``x`` is 0.

    >>> import torch
    >>> x = torch.full((1, 4), 1e-163, dtype=torch.float64)
    >>> float(torch.linalg.vector_norm(x)), float(scaled_norm(x, dims=(1,))[0])
    (0.0, 2e-163)
    """
    import torch

    dims = tuple(range(x.ndim)) if dims is None else dims
    largest = x.abs().amax(dim=dims, keepdim=True)
    safe = torch.where(largest > 0, largest, torch.ones_like(largest))
    norm = largest * torch.linalg.vector_norm(x / safe, ord=ord, dim=dims, keepdim=True)
    return norm if keepdim else norm.squeeze(dims) if dims else norm


class StepRule(abc.ABC):
    """One update of a first-order method, per trial (abstract base class).

    Parameters
    ----------
    learning_rate : float
        Finite and positive.
    **options
        Rule-specific options (a subclass declares them as keyword arguments). Unknown options
        raise :class:`~attnmech.errors.InvalidParameterError`.

    Notes
    -----
    ``init(params)`` returns the optimiser state (a dict of tensors, saved in checkpoints);
    ``update(params, grad, loss, state, step)`` returns the new parameters and may update
    ``state`` in place. ``step`` counts updates from 0.
    """

    name: ClassVar[str] = "step"

    def __init__(self, learning_rate: float, **options: Any) -> None:
        if options:
            raise InvalidParameterError(
                f"optimizer {self.name!r} takes no option(s) {', '.join(map(repr, options))}; "
                f"see {type(self).__name__}'s documentation for its options"
            )
        check_params({"learning_rate": learning_rate}, STEP_RULE_PARAMS, where=self.name)
        self.learning_rate = float(learning_rate)

    def init(self, params: Tensor) -> dict[str, Tensor]:
        """The optimiser state for ``params`` (B, ...): a dict of tensors (default: none).

        It is passed to every :meth:`update` and saved in checkpoints, so a resumed run continues
        bit for bit.
        """
        return {}

    @abc.abstractmethod
    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """One step: the new parameters (a new tensor, same shape as ``params``).

        Parameters
        ----------
        params, grad : Tensor of shape (B, ...)
            Parameters and the gradient of the loss, one trial per leading index.
        loss : Tensor of shape (B,)
            Each trial's loss at ``params``.
        state : dict of str to Tensor
            From :meth:`init`; may be updated in place.
        step : int
            Updates done before this one (0 for the first).
        """


class GradientDescent(StepRule):
    """``W <- W - lr * grad``."""

    name = "gd"

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """Gradient descent's step: ``params - lr * grad``."""
        return params - self.learning_rate * grad


class NormalizedGradientDescent(StepRule):
    """``W <- W - lr * grad / ||grad||_F``, the norm taken per trial (no step where grad = 0).

    Parameters
    ----------
    learning_rate : float
    eps : float, default=0.0
        With ``eps > 0`` the step is ``lr * grad / (||grad||_F + eps)`` (the form of the authors'
        code, where a tiny gradient gives a step shorter than ``lr``); 0 (default) is the exact
        normalised step.
    """

    name = "ngd"

    def __init__(self, learning_rate: float, *, eps: float = 0.0, **options: Any) -> None:
        super().__init__(learning_rate, **options)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (
            math.isfinite(eps) and eps >= 0
        ):
            raise InvalidParameterError(f"ngd: eps must be a number >= 0, got {eps!r}")
        self.eps: float = float(eps)

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """Normalised GD's step: ``lr * grad / ||grad||_F`` per trial (``+ eps`` in the
        denominator when ``eps > 0``; no step where the gradient is 0)."""
        import torch

        norm = scaled_norm(grad.flatten(1), dims=(1,))  # (B,), no underflow for tiny grads
        if self.eps > 0:
            scale = self.learning_rate / (norm + self.eps)
        else:
            scale = self.learning_rate / torch.where(norm > 0, norm, torch.ones_like(norm))
        return params - _per_trial(scale, grad) * grad


class Adam(StepRule):
    """Adam with bias correction, per parameter entry (the state is saved in checkpoints).

    Parameters
    ----------
    learning_rate : float
    betas : pair of float, default=(0.9, 0.999)
        Decay rates of the first and second moments, each in [0, 1).
    eps : float, default=1e-8
        Denominator guard, >= 0. With ``eps = 0`` (the setting of the l_inf implicit-bias
        theorems) the moments are stored relative to a per-trial scale ``c`` that follows the
        gradients' size (``m / c`` and ``v / c^2``), so that ``g^2`` never underflows to 0 while
        ``g`` does not; an entry whose second moment is exactly 0 (its gradient was always 0)
        does not move.
    """

    name = "adam"

    def __init__(
        self,
        learning_rate: float,
        betas: tuple[float, float] | list[float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(learning_rate)
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise InvalidParameterError(f"adam: betas must be a pair of numbers, got {betas!r}")
        checked: list[float] = []
        for beta in betas:
            if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
                raise InvalidParameterError(f"adam: betas must be numbers in [0, 1), got {betas!r}")
            if not 0.0 <= float(beta) < 1.0:
                raise InvalidParameterError(f"adam: betas must lie in [0, 1), got {betas!r}")
            checked.append(float(beta))
        self.betas = (checked[0], checked[1])
        check_params({"eps": eps}, ADAM_PARAMS, where=self.name)
        self.eps = float(eps)

    def init(self, params: Tensor) -> dict[str, Tensor]:
        """Adam's state: zero first and second moments (and a zero per-trial scale when
        ``eps = 0``)."""
        import torch

        state = {"exp_avg": torch.zeros_like(params), "exp_avg_sq": torch.zeros_like(params)}
        if self.eps == 0.0:  # moments kept relative to a per-trial scale (see _update_unscaled)
            state["scale"] = torch.zeros((params.shape[0],) + (1,) * (params.ndim - 1))
            state["scale"] = state["scale"].to(dtype=params.dtype, device=params.device)
        return state

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """Adam's step: bias-corrected ``m_hat / (sqrt(v_hat) + eps)`` times ``lr`` (the scaled
        moments of ``_update_unscaled`` when ``eps = 0``)."""
        if self.eps == 0.0:
            return self._update_unscaled(params, grad, state, step)
        beta1, beta2 = self.betas
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        t = step + 1
        m_hat = state["exp_avg"] / (1 - beta1**t)
        v_hat = state["exp_avg_sq"] / (1 - beta2**t)
        return params - self.learning_rate * m_hat / (v_hat.sqrt() + self.eps)

    def _update_unscaled(
        self, params: Tensor, grad: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """Adam with ``eps = 0``: the moments relative to the per-trial scale ``state["scale"]``.

        The scale ``c`` is the largest ``|g|`` of the step or ``sqrt(beta2)`` times the previous
        scale, whichever is larger, so the stored ``m / c`` and ``v / c^2`` stay of order one;
        ``m_hat / sqrt(v_hat)`` does not depend on ``c``.
        """
        import torch

        beta1, beta2 = self.betas
        old = state["scale"]
        largest = grad.abs().amax(dim=_trial_dims(grad), keepdim=True)
        new = torch.maximum(largest, old * math.sqrt(beta2))
        positive = new > 0
        safe = torch.where(positive, new, torch.ones_like(new))
        ratio = torch.where(positive, old / safe, torch.zeros_like(new))
        g = grad / safe
        state["exp_avg"].mul_(beta1 * ratio).add_(g, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2 * ratio.square()).addcmul_(g, g, value=1 - beta2)
        state["scale"] = new
        t = step + 1
        m_hat = state["exp_avg"] / (1 - beta1**t)
        v_hat = state["exp_avg_sq"] / (1 - beta2**t)
        denominator = v_hat.sqrt()
        direction = torch.where(
            denominator > 0, m_hat / torch.where(denominator > 0, denominator, 1.0), 0.0
        )
        return params - self.learning_rate * direction


class PolyakStep(StepRule):
    """Polyak's step size: ``W <- W - lr * (L(W) - L*) / ||grad||_F^2 * grad``, per trial.

    Parameters
    ----------
    learning_rate : float
        Multiplies Polyak's step (1 is Polyak's rule).
    lower_bound : float or list of float, default=0
        ``L*``, a lower bound of the loss, for all trials or one per trial (0 bounds the log-loss;
        on cyclic data the infimum is larger, the loss of ``W_fin`` on the reduced data). No
        step is taken where ``L(W) <= L*`` or the gradient is 0.
    """

    name = "polyak"

    def __init__(self, learning_rate: float, lower_bound: float | list[float] = 0.0) -> None:
        super().__init__(learning_rate)
        bounds = list(lower_bound) if isinstance(lower_bound, (list, tuple)) else [lower_bound]
        for bound in bounds:
            if isinstance(bound, bool) or not isinstance(bound, numbers.Real):
                raise InvalidParameterError(
                    f"polyak: lower_bound must be a number or a list of numbers (one per "
                    f"trial), got {lower_bound!r}"
                )
            if not math.isfinite(bound):
                raise InvalidParameterError(f"polyak: lower_bound must be finite, got {bound!r}")
        if not bounds:
            raise InvalidParameterError("polyak: lower_bound is an empty list")
        self.lower_bound = [float(b) for b in bounds]

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """Polyak's step: ``lr (L - L*) / ||g||_F^2 g`` per trial (none where ``L <= L*`` or
        ``g = 0``)."""
        import torch

        norm = scaled_norm(grad.flatten(1), dims=(1,))  # (B,); ||g||^2 is never formed
        bound = torch.tensor(self.lower_bound, dtype=loss.dtype, device=loss.device)
        if bound.numel() not in (1, loss.numel()):
            raise InvalidParameterError(
                f"polyak: lower_bound has {bound.numel()} values for {loss.numel()} trials; "
                "give one number, or one per trial"
            )
        gap = (loss - bound).clamp(min=0)  # (B,)
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        size = torch.where(norm > 0, gap / safe, 0.0)  # (L - L*) / ||g||
        unit = grad / _per_trial(safe, grad)  # g / ||g||
        return params - _per_trial(self.learning_rate * size, grad) * unit


# ---------------------------------------------------------------------------------- geometries
class OptionRule(StepRule):
    """A step rule whose options are declared in one table, ``OPTIONS`` (name -> default).

    ``self.options`` holds the defaults updated with the given options; an option not in the
    table raises :class:`~attnmech.errors.InvalidParameterError` listing the accepted ones.
    """

    OPTIONS: ClassVar[dict[str, Any]] = {}

    def __init__(self, learning_rate: float, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            accepted = ", ".join(f"{k}={v!r}" for k, v in self.OPTIONS.items()) or "none"
            raise InvalidParameterError(
                f"optimizer {self.name!r} has no option(s) {unknown}; its options are: {accepted}"
            )
        super().__init__(learning_rate)
        self.options = {**self.OPTIONS, **options}
        if not isinstance(self.options.get("normalized", False), bool):
            raise InvalidParameterError(
                f"optimizer {self.name!r}: option normalized must be true or false, got "
                f"{self.options['normalized']!r}"
            )

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


class MirrorDescent(OptionRule):
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
        """Mirror descent's step, entrywise through ``grad psi`` and its inverse (plain GD for
        ``p = 2``), after dividing ``g`` by ``||g||_q`` when ``normalized``."""
        import torch

        _check_batched(self, params, grad)
        if self.options["normalized"]:
            norm = scaled_norm(grad, dims=_trial_dims(grad), ord=self.q, keepdim=True)
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


class SignDescent(OptionRule):
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
        """Sign descent's step: ``lr sign(g)``, times ``||g||_1`` per trial unless normalized."""
        import torch

        _check_batched(self, params, grad)
        direction = torch.sign(grad)
        if not self.options["normalized"]:
            direction = direction * grad.abs().sum(dim=_trial_dims(grad), keepdim=True)
        return params - self.learning_rate * direction


class L1SteepestDescent(OptionRule):
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
        """The l_1 steepest step: ``lr sign(g_m)`` shared over the largest ``|g_m|`` of each
        trial, times ``||g||_inf`` unless ``normalized``."""
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


class SpectralDescent(OptionRule):
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
        """The spectral steepest step: ``lr U V^T`` per matrix, times the nuclear norm of ``g``
        unless ``normalized``."""
        import torch

        _check_batched(self, params, grad)
        # scale each matrix by its largest entry first (U V^T does not change; S is scaled back)
        size = grad.abs().amax(dim=(-2, -1), keepdim=True)
        size = torch.where(size > 0, size, torch.ones_like(size))
        U, S, Vh = torch.linalg.svd(grad / size, full_matrices=False)  # per matrix: (..., d, k)
        S_true = S * size[..., 0]
        rows, cols = grad.shape[-2:]
        tol = max(rows, cols) * torch.finfo(grad.dtype).eps * S.amax(dim=-1, keepdim=True)
        keep = (S > tol).to(grad.dtype)  # (..., k)
        direction = (U * keep.unsqueeze(-2)) @ Vh  # U V^T on the kept singular directions
        if not self.options["normalized"]:
            nuclear = (S_true * keep).sum(dim=_trial_dims(S), keepdim=True)  # (B, 1[, 1])
            direction = direction * nuclear.unsqueeze(-1)
        return params - self.learning_rate * direction


OPTIMIZERS: dict[str, type[StepRule]] = {
    "gd": GradientDescent,
    "ngd": NormalizedGradientDescent,
    "adam": Adam,
    "polyak": PolyakStep,
    "mirror": MirrorDescent,
    "normalized-mirror": NormalizedMirrorDescent,
    "sign": SignDescent,
    "l1-steepest": L1SteepestDescent,
    "spectral": SpectralDescent,
}
"""Step rules by name (``TrainConfig.optimizer``); options go to the class as keyword arguments."""

SVM_NORM_OF: dict[str, str] = {
    "gd": "fro",
    "ngd": "fro",
    "polyak": "fro",
    "adam": "linf",
    "sign": "linf",
    "l1-steepest": "l1",
    "spectral": "spectral",
}
"""The Graph-SVM norm each fixed-geometry rule is expected to follow with the combined ``W``
(``mirror`` / ``normalized-mirror``: ``lp:p``, see :func:`expected_svm_norm`). ``adam``: the
max-norm margin that Fan et al. (2025) prove for Adam-like sign methods on linear models; for
attention it is an extrapolation that :func:`attnmech.studies.bias.bias_table` measures."""


def expected_svm_norm(rule: StepRule | str, parameterization: str = "combined") -> str:
    """The ``svm_norm`` whose Graph-SVM ``rule`` is expected to follow.

    Parameters
    ----------
    rule : StepRule or str
        A step rule, or a name of :data:`OPTIMIZERS` (with its default options).
    parameterization : {"combined", "factorized"}, default="combined"
        ``"factorized"`` (``W = K Q^T``, both trained): ``"nuclear"`` for ``gd`` and ``ngd``
        (Sheen et al. 2024, arXiv:2403.08699); no prediction for the other rules.

    Raises
    ------
    InvalidParameterError
        An unknown rule, or a rule without a prediction for this parameterization.

    Examples
    --------
    >>> expected_svm_norm(MirrorDescent(0.1, p=3)), expected_svm_norm("sign")
    ('lp:3', 'linf')
    >>> expected_svm_norm("ngd", "factorized")
    'nuclear'
    """
    if isinstance(rule, str):
        rule = make_step_rule(rule, 1.0)
    if parameterization == "factorized":
        if rule.name in ("gd", "ngd"):
            return "nuclear"
        raise InvalidParameterError(
            f"no implicit-bias prediction for optimizer {rule.name!r} with factorised W = K Q^T "
            "(only gd and ngd: nuclear norm); pass svm_norm explicitly"
        )
    if isinstance(rule, MirrorDescent):
        return "fro" if rule.p == 2.0 else f"lp:{rule.p:g}"
    if rule.name not in SVM_NORM_OF:
        raise InvalidParameterError(
            f"no implicit-bias prediction for optimizer {rule.name!r}; pass svm_norm explicitly"
        )
    return SVM_NORM_OF[rule.name]


def make_step_rule(
    name: str, learning_rate: float, options: Mapping[str, Any] | None = None
) -> StepRule:
    """The step rule ``OPTIMIZERS[name](learning_rate, **options)``, its options validated.

    Raises
    ------
    InvalidParameterError
        Unknown name, or an option the rule does not take or whose value is out of range.
    """
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise InvalidParameterError(
            f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}"
        )
    options = dict(options or {})
    if not all(isinstance(key, str) for key in options):
        raise InvalidParameterError(f"optimizer_options keys must be strings, got {options!r}")
    try:
        return OPTIMIZERS[name](learning_rate, **options)
    except TypeError as exc:  # an option the class does not declare
        raise InvalidParameterError(
            f"optimizer {name!r} does not take the options {sorted(options)}: {exc}"
        ) from None


Observer = Callable[[int, "Tensor", "Tensor", "Tensor", dict[str, "Tensor"]], Any]
Objective = Callable[["Tensor"], tuple["Tensor", "Tensor"]]


def gradient_descent(
    objective: Objective,
    params: Tensor,
    step_rule: StepRule,
    num_steps: int,
    *,
    start_step: int = 0,
    state: dict[str, Tensor] | None = None,
    observer: Observer | None = None,
    schedule: Any = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The one optimisation loop: ``params <- step_rule.update(...)`` for steps
    ``start_step .. num_steps - 1``.

    Parameters
    ----------
    objective : callable
        ``objective(params) -> (loss, grad)`` with ``loss`` of shape (B,) and ``grad`` shaped like
        ``params``. Wrap it to project or mask gradients.
    params : Tensor of shape (B, ...)
        Starting point (not modified).
    step_rule : StepRule
    num_steps : int
    start_step : int, default=0
        First step to run (when resuming).
    state : dict of Tensor, optional
        Optimiser state to resume from (default: ``step_rule.init(params)``).
    observer : callable, optional
        ``observer(step, params, loss, grad, state)`` runs before each update, with the loss and
        gradient at ``params`` (the parameters after ``step`` updates). If it returns True the loop
        stops before that update.
    schedule : Schedule, optional
        A learning-rate schedule (:mod:`attnmech.layer.schedules`): update ``step`` uses
        ``step_rule.learning_rate * schedule.factor(step)``. None: the constant rate.

    Returns
    -------
    params, state
        The parameters after the last update and the optimiser state.
    """
    params = params.clone()
    state = step_rule.init(params) if state is None else state
    base = step_rule.learning_rate
    constant = schedule is None or getattr(schedule, "name", "") == "constant"
    try:
        for step in range(start_step, num_steps):
            loss, grad = objective(params)
            if observer is not None and observer(step, params, loss, grad, state):
                break
            if not constant:
                step_rule.learning_rate = base * schedule.factor(step)
            params = step_rule.update(params, grad, loss, state, step)
    finally:
        step_rule.learning_rate = base
    return params, state


# ---------------------------------------------------------------------------------- momentum
def _beta(rule: StepRule, value: Any, name: str = "beta") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= float(value) < 1:
        raise InvalidParameterError(
            f"optimizer {rule.name!r}: option {name} must be a number in [0, 1), got {value!r}"
        )
    return float(value)


class _AveragingRule(OptionRule):
    """A rule with option ``beta`` in [0, 1) and one running average of the gradients, kept in
    ``state[STATE_KEY]`` and started at zero."""

    STATE_KEY: ClassVar[str] = "momentum"

    def __init__(self, learning_rate: float, **options: Any) -> None:
        super().__init__(learning_rate, **options)
        self.beta = _beta(self, self.options["beta"])

    def init(self, params: Tensor) -> dict[str, Tensor]:
        """The running average (``state[STATE_KEY]``), zero."""
        import torch

        return {self.STATE_KEY: torch.zeros_like(params)}


class MomentumDescent(_AveragingRule):
    """Gradient descent with heavy-ball momentum: ``v <- beta v + g``, ``W <- W - lr v``.

    Option ``beta`` in [0, 1) (default 0.9; 0 is gradient descent). Expected implicit bias: the
    Frobenius (l_2) Graph-SVM, as for gradient descent (momentum does not change the max-margin
    direction of linear models; see arXiv:2602.16340 for the analysis with decaying rates).
    """

    name = "momentum"
    OPTIONS: ClassVar[dict[str, Any]] = {"beta": 0.9}
    STATE_KEY: ClassVar[str] = "velocity"

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """``v <- beta v + g``; ``W - lr v``."""
        state["velocity"].mul_(self.beta).add_(grad)
        return params - self.learning_rate * state["velocity"]


class Signum(_AveragingRule):
    """Sign descent on a momentum average (signSGD with momentum):
    ``m <- beta m + (1 - beta) g``, ``W <- W - lr sign(m)``.

    Option ``beta`` in [0, 1) (default 0.9; 0 is :class:`SignDescent`). Expected implicit bias: the
    l_inf (max-norm) Graph-SVM under a decaying learning rate (arXiv:2602.16340, linear models).
    """

    name = "signum"
    OPTIONS: ClassVar[dict[str, Any]] = {"beta": 0.9}

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """``m <- beta m + (1 - beta) g``; ``W - lr sign(m)``."""
        import torch

        _check_batched(self, params, grad)
        state["momentum"].mul_(self.beta).add_(grad, alpha=1 - self.beta)
        return params - self.learning_rate * torch.sign(state["momentum"])


NEWTON_SCHULZ_ITERATIONS: dict[str, tuple[float, ...]] = {
    "cubic": (1.5, -0.5),
    "quintic": (3.4445, -4.7750, 2.0315),
}
"""Coefficients of the odd matrix polynomials ``X <- a X + b (X X^T) X [+ c (X X^T)^2 X]``:
``cubic`` is the classical Newton-Schulz iteration (it converges to the polar factor ``U V^T`` for
singular values in (0, sqrt(3))); ``quintic`` is the tuned iteration used by Muon in practice,
which in 5 steps maps every singular value of a normalised matrix into roughly [0.7, 1.2] rather
than to 1."""


def newton_schulz(G: Tensor, steps: int = 5, iteration: str = "quintic") -> Tensor:
    """Approximate the polar factor ``U V^T`` of each matrix of ``G`` (..., m, n) by Newton-Schulz.

    ``G`` is first divided by its (rescaled) Frobenius norm, so every singular value is at most 1;
    then ``steps`` iterations of :data:`NEWTON_SCHULZ_ITERATIONS` ``[iteration]``. A zero matrix
    stays zero. Only matrix products: no SVD.
    """
    import torch

    if iteration not in NEWTON_SCHULZ_ITERATIONS:
        raise InvalidParameterError(
            f"newton_schulz: iteration must be one of {', '.join(NEWTON_SCHULZ_ITERATIONS)}, "
            f"got {iteration!r}"
        )
    coefficients = NEWTON_SCHULZ_ITERATIONS[iteration]
    norm = scaled_norm(G, dims=(-2, -1), keepdim=True)
    X = G / torch.where(norm > 0, norm, torch.ones_like(norm))
    wide = X.shape[-2] > X.shape[-1]
    if wide:
        X = X.transpose(-2, -1)  # X X^T is the smaller Gram matrix
    for _ in range(steps):
        A = X @ X.transpose(-2, -1)
        if len(coefficients) == 2:
            X = coefficients[0] * X + coefficients[1] * (A @ X)
        else:
            a, b, c = coefficients
            X = a * X + (b * A + c * (A @ A)) @ X
    return X.transpose(-2, -1) if wide else X


class Muon(_AveragingRule):
    """Muon: momentum, then the update orthogonalised by Newton-Schulz iterations.

    ``buf <- beta buf + g``; with ``nesterov`` the direction is ``g + beta buf``, otherwise
    ``buf``; ``W <- W - lr NS(direction)`` with :func:`newton_schulz` on each matrix (each factor
    when factorised). Options: ``beta`` in [0, 1) (default 0.95), ``nesterov`` (default True),
    ``ns_steps`` (default 5), ``iteration`` (``"quintic"``, as in practice, or ``"cubic"``, which
    converges to the exact ``U V^T`` of :class:`SpectralDescent`). Expected implicit bias: the
    spectral-norm Graph-SVM under a decaying learning rate (Fan et al. 2025, arXiv:2502.04664;
    arXiv:2602.16340, for linear models).
    """

    name = "muon"
    OPTIONS: ClassVar[dict[str, Any]] = {
        "beta": 0.95,
        "nesterov": True,
        "ns_steps": 5,
        "iteration": "quintic",
    }

    def __init__(self, learning_rate: float, **options: Any) -> None:
        super().__init__(learning_rate, **options)
        steps = self.options["ns_steps"]
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise InvalidParameterError(
                f"optimizer 'muon': option ns_steps must be an integer >= 1, got {steps!r}"
            )
        if not isinstance(self.options["nesterov"], bool):
            raise InvalidParameterError(
                f"optimizer 'muon': option nesterov must be true or false, got "
                f"{self.options['nesterov']!r}"
            )
        if self.options["iteration"] not in NEWTON_SCHULZ_ITERATIONS:
            raise InvalidParameterError(
                f"optimizer 'muon': option iteration must be one of "
                f"{', '.join(NEWTON_SCHULZ_ITERATIONS)}, got {self.options['iteration']!r}"
            )

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """``W - lr NS(momentum direction)``."""
        _check_batched(self, params, grad)
        buf = state["momentum"].mul_(self.beta).add_(grad)
        direction = grad + self.beta * buf if self.options["nesterov"] else buf
        ortho = newton_schulz(direction, int(self.options["ns_steps"]), self.options["iteration"])
        return params - self.learning_rate * ortho


OPTIMIZERS.update({"momentum": MomentumDescent, "signum": Signum, "muon": Muon})
SVM_NORM_OF.update({"momentum": "fro", "signum": "linf", "muon": "spectral"})


# ---------------------------------------------------------------------------------- capped Polyak
class CappedPolyakStep(StepRule):
    """Polyak's step capped at a normalised step: per trial,
    ``W <- W - min(lr, c (L(W) - L*) / ||g||_F) g / ||g||_F``.

    Far from the infimum it is normalised GD (step length ``lr``); near it, Polyak's step
    ``c (L - L*) / ||g||^2 g``. With ``L*`` the infimum of the risk (on cyclic data the finite
    part's loss, ``theory.finite.loss``) the two parts of the error then shrink together: along
    ``S_fin`` the loss is quadratic in the distance to ``W_fin`` and Polyak's step removes a
    fixed fraction of it per step, while along ``W_svm`` the loss gap and the gradient both decay
    like ``exp(-margin R)``, so their ratio, and the growth of ``R`` per step, stay of order one
    (until the cap ``lr``). The step is a multiple of the gradient, as for ``ngd`` and ``polyak``,
    whose implicit bias is the Frobenius Graph-SVM (Vasudeva et al. 2024); an entry whose gradient
    is 0 does not move.

    Parameters
    ----------
    learning_rate : float
        The cap on the step length (``ngd``'s step).
    lower_bound : float or list of float, default=0
        ``L*`` for all trials or one per trial. Too low a bound makes the steps too long near the
        infimum (the cap still holds them to ``lr``); too high stops the training early.
    scale : float, default=1
        ``c``: the multiple of Polyak's step.
    """

    name = "polyak-capped"

    def __init__(
        self,
        learning_rate: float,
        lower_bound: float | list[float] = 0.0,
        scale: float = 1.0,
    ) -> None:
        super().__init__(learning_rate)
        self._polyak = PolyakStep(1.0, lower_bound)
        self.lower_bound = self._polyak.lower_bound
        self.scale = _positive_number("scale", scale, self.name)

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """The capped Polyak step: ``min(lr, c (L - L*) / ||g||_F) g / ||g||_F`` per trial (none
        where ``g = 0``)."""
        import torch

        norm = scaled_norm(grad.flatten(1), dims=(1,))  # (B,)
        bound = torch.tensor(self.lower_bound, dtype=loss.dtype, device=loss.device)
        if bound.numel() not in (1, loss.numel()):
            raise InvalidParameterError(
                f"{self.name}: lower_bound has {bound.numel()} values for {loss.numel()} trials; "
                "give one number, or one per trial"
            )
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        polyak = self.scale * (loss - bound).clamp(min=0) / safe
        length = torch.minimum(polyak, torch.full_like(polyak, self.learning_rate))
        size = torch.where(norm > 0, length / safe, torch.zeros_like(norm))
        return params - _per_trial(size, grad) * grad


OPTIMIZERS["polyak-capped"] = CappedPolyakStep
SVM_NORM_OF["polyak-capped"] = "fro"


# ---------------------------------------------------------------------------------- split step
class SplitNormalizedStep(StepRule):
    """Normalised GD with the finite part and the rest stepped separately.

    With ``P`` the orthogonal projection onto ``S_fin`` (the span of ``(e_i - e_j) e_q^T`` over
    tokens ``i, j`` of one SCC of query ``q``'s priority graph: known from the training data
    alone) and ``g`` the gradient, per trial:

    ``W <- W - lr (I - P) g / ||(I - P) g||_F - min(fin_lr, (L - L*) / ||P g||_F) P g / ||P g||_F``

    The part orthogonal to ``S_fin``, where ``W_svm`` lies, takes ``ngd``'s step of fixed length
    ``lr`` however small its gradient (it decays like ``exp(-R)``), so ``R`` grows linearly; the
    finite part takes Polyak's step on its own, capped at ``fin_lr``, so it settles on ``W_fin``
    instead of bouncing around it at the step length (which is what stalls ``ngd``, whose one
    normalised step is then almost all finite part). Each part moves along its own gradient
    component, so an entry whose gradient is 0 does not move; the orthogonal part is normalised
    GD, whose direction follows the Frobenius Graph-SVM.

    The projection is data-dependent: call :meth:`bind_projection` before the first step
    (:func:`attnmech.layer.onehot.train_onehot` binds it from the theory's ``S_fin``).

    Parameters
    ----------
    learning_rate : float
        Step length of the part orthogonal to ``S_fin``.
    fin_lr : float, optional
        Cap of the finite part's step (default: ``learning_rate``).
    lower_bound : float, default=0
        ``L*`` of the finite part's Polyak step (the finite part's loss ``theory.finite.loss``).
    tol : float, default=1e-10
        No step once ``L - L* <= tol``: the risk is then at its infimum to within float64
        round-off of the gradient (the orthogonal gradient, of order ``exp(-R)``, is no longer
        above the rounding of the per-sample terms, and normalising it would amplify noise).
    """

    name = "split-ngd"

    def __init__(
        self,
        learning_rate: float,
        fin_lr: float | None = None,
        lower_bound: float = 0.0,
        tol: float = 1e-10,
    ) -> None:
        super().__init__(learning_rate)
        self.tol = _positive_number("tol", tol, self.name)
        self.fin_lr = (
            self.learning_rate if fin_lr is None else _positive_number("fin_lr", fin_lr, self.name)
        )
        if isinstance(lower_bound, bool) or not isinstance(lower_bound, numbers.Real) or not (
            math.isfinite(lower_bound)
        ):
            raise InvalidParameterError(
                f"{self.name}: lower_bound must be a finite number, got {lower_bound!r}"
            )
        self.lower_bound: float = float(lower_bound)
        self.projection: Callable[[Tensor], Tensor] | None = None

    def bind_projection(self, projection: Callable[[Tensor], Tensor]) -> None:
        """Set ``P``: ``projection(g)`` returns the projection of ``g`` (same shape) on S_fin."""
        self.projection = projection

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        """The split step: a normalised step of length ``lr`` on ``(I - P) g`` and a Polyak step
        capped at ``fin_lr`` on ``P g`` (raises without a bound projection)."""
        import torch

        if self.projection is None:
            raise InvalidParameterError(
                f"optimizer {self.name!r} needs the S_fin projection of the data; train it with "
                "attnmech.layer.onehot.train_onehot and a theory (as `attnmech text` does)"
            )
        fin = self.projection(grad)
        perp = grad - fin
        perp_norm = scaled_norm(perp.flatten(1), dims=(1,))
        fin_norm = scaled_norm(fin.flatten(1), dims=(1,))
        one = torch.ones_like(perp_norm)
        perp_size = torch.where(
            perp_norm > 0, self.learning_rate / torch.where(perp_norm > 0, perp_norm, one), 0.0
        )
        gap = (loss - self.lower_bound).clamp(min=0)
        perp_size = torch.where(gap > self.tol, perp_size, 0.0)
        safe = torch.where(fin_norm > 0, fin_norm, one)
        length = torch.minimum(gap / safe, torch.full_like(gap, self.fin_lr))
        fin_size = torch.where(fin_norm > 0, length / safe, 0.0)
        return params - _per_trial(perp_size, perp) * perp - _per_trial(fin_size, fin) * fin


OPTIMIZERS["split-ngd"] = SplitNormalizedStep
SVM_NORM_OF["split-ngd"] = "fro"

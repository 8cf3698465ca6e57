"""First-order step rules and the one optimisation loop (SPEC sections 2 and 9).

A step rule maps ``(params, grad, loss, state, step)`` to new parameters, per trial: ``params`` and
``grad`` carry a leading trials dimension (``(B, d, d)`` for ``W`` itself, ``(B, 2, d, r)`` for the
factors) and ``loss`` is the ``(B,)`` risk at ``params``. Norms are taken per trial, never across
trials. :data:`OPTIMIZERS` is the registry: adding an optimiser is one :class:`StepRule` subclass
and one line there. :func:`gradient_descent` is the loop that runs every rule, for training and for
the ``W_fin(t)`` trajectory alike.

This module imports torch only inside methods, so the registry's names can be listed (by the
command line, say) without loading torch.

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import InvalidParameterError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "StepRule",
    "GradientDescent",
    "NormalizedGradientDescent",
    "Adam",
    "PolyakStep",
    "OPTIMIZERS",
    "make_step_rule",
    "gradient_descent",
]


def _positive_number(name: str, value: Any, owner: str) -> float:
    """``value`` as a finite float > 0, or InvalidParameterError naming the option."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(
            f"{owner}: {name} must be a positive number, got {value!r} ({type(value).__name__})"
        )
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(f"{owner}: {name} must be a positive number, got {value!r}")
    return value


def _per_trial(values: Tensor, like: Tensor) -> Tensor:
    """Reshape ``values`` (B,) to broadcast against ``like`` (B, ...)."""
    return values.view(-1, *([1] * (like.ndim - 1)))


class StepRule:
    """One update of a first-order method, per trial (base class).

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
        self.learning_rate = _positive_number("learning_rate", learning_rate, self.name)

    def init(self, params: Tensor) -> dict[str, Tensor]:
        return {}

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        raise NotImplementedError


class GradientDescent(StepRule):
    """``W <- W - lr * grad``."""

    name = "gd"

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        return params - self.learning_rate * grad


class NormalizedGradientDescent(StepRule):
    """``W <- W - lr * grad / ||grad||_F``, the norm taken per trial (no step where grad = 0)."""

    name = "ngd"

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        import torch

        norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)  # (B,)
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
        Denominator guard, > 0.
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
        self.eps = _positive_number("eps", eps, self.name)

    def init(self, params: Tensor) -> dict[str, Tensor]:
        import torch

        return {"exp_avg": torch.zeros_like(params), "exp_avg_sq": torch.zeros_like(params)}

    def update(
        self, params: Tensor, grad: Tensor, loss: Tensor, state: dict[str, Tensor], step: int
    ) -> Tensor:
        beta1, beta2 = self.betas
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        t = step + 1
        m_hat = state["exp_avg"] / (1 - beta1**t)
        v_hat = state["exp_avg_sq"] / (1 - beta2**t)
        return params - self.learning_rate * m_hat / (v_hat.sqrt() + self.eps)


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
        import torch

        squared = torch.linalg.vector_norm(grad.flatten(1), dim=1).square()  # (B,)
        bound = torch.tensor(self.lower_bound, dtype=loss.dtype, device=loss.device)
        if bound.numel() not in (1, loss.numel()):
            raise InvalidParameterError(
                f"polyak: lower_bound has {bound.numel()} values for {loss.numel()} trials; "
                "give one number, or one per trial"
            )
        gap = (loss - bound).clamp(min=0)  # (B,)
        size = torch.where(squared > 0, gap / torch.where(squared > 0, squared, 1.0), 0.0)
        return params - _per_trial(self.learning_rate * size, grad) * grad


OPTIMIZERS: dict[str, type[StepRule]] = {
    "gd": GradientDescent,
    "ngd": NormalizedGradientDescent,
    "adam": Adam,
    "polyak": PolyakStep,
}
"""Step rules by name (``TrainConfig.optimizer``); options go to the class as keyword arguments."""


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

    Returns
    -------
    params, state
        The parameters after the last update and the optimiser state.
    """
    params = params.clone()
    state = step_rule.init(params) if state is None else state
    for step in range(start_step, num_steps):
        loss, grad = objective(params)
        if observer is not None and observer(step, params, loss, grad, state):
            break
        params = step_rule.update(params, grad, loss, state, step)
    return params, state

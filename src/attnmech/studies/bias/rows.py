"""The rows and columns of the bias table: which optimiser, with which options, against which norms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import InvalidParameterError
from ...layer.optim import OPTIMIZERS, expected_svm_norm, make_step_rule

__all__ = ["BIAS_NORMS", "BIAS_OPTIMIZERS", "DEFAULT_SETTINGS", "BiasOptimizer", "resolve_rows"]

BIAS_NORMS: tuple[str, ...] = ("fro", "nuclear", "spectral", "l1", "linf", "lp:3")
"""The Graph-SVM norms every optimiser is compared with (the table's columns)."""

DEFAULT_SETTINGS: tuple[str, ...] = ("acyclic-4-6-8-8", "cyclic-6-4-6-8")
"""The experiments-registry settings the bias table runs by default."""


@dataclass(frozen=True, slots=True)
class BiasOptimizer:
    """One row of the bias table: an optimiser, its options and its budget.

    Parameters
    ----------
    label : str
        Row name (unique in a table), e.g. ``"mirror p=3"`` or ``"gd (K Q^T)"``.
    optimizer : str
        A key of :data:`attnmech.layer.optim.OPTIMIZERS`.
    learning_rate : float
    num_steps : int
        Steps when the table gets no ``steps``.
    options : dict, default={}
        The step rule's keyword arguments.
    parameterization : {"combined", "factorized"}, default="combined"
    """

    label: str
    optimizer: str
    learning_rate: float
    num_steps: int
    options: Mapping[str, Any] = field(default_factory=dict)
    parameterization: str = "combined"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise InvalidParameterError(
                f"bias optimizer {self.label!r}: optimizer must be one of "
                f"{', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.parameterization not in ("combined", "factorized"):
            raise InvalidParameterError(
                f"bias optimizer {self.label!r}: parameterization must be 'combined' or "
                f"'factorized', got {self.parameterization!r}"
            )
        if isinstance(self.num_steps, bool) or not isinstance(self.num_steps, int):
            raise InvalidParameterError(
                f"bias optimizer {self.label!r}: num_steps must be an integer >= 10, got "
                f"{self.num_steps!r}"
            )
        if self.num_steps < 10:
            raise InvalidParameterError(
                f"bias optimizer {self.label!r}: num_steps must be at least 10 (a decade of steps "
                f"for the rates), got {self.num_steps}"
            )
        object.__setattr__(self, "options", dict(self.options))
        make_step_rule(self.optimizer, self.learning_rate, self.options)  # validates

    @property
    def expected_norm(self) -> str:
        """The Graph-SVM norm this optimiser is predicted to follow."""
        rule = make_step_rule(self.optimizer, self.learning_rate, self.options)
        return expected_svm_norm(rule, self.parameterization)

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON values (with its expected norm)."""
        return {
            "label": self.label,
            "optimizer": self.optimizer,
            "options": dict(self.options),
            "learning_rate": self.learning_rate,
            "num_steps": self.num_steps,
            "parameterization": self.parameterization,
            "expected_norm": self.expected_norm,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BiasOptimizer:
        """The row whose :meth:`to_dict` is ``data`` (``expected_norm`` is recomputed)."""
        return cls(
            data["label"],
            data["optimizer"],
            data["learning_rate"],
            int(data["num_steps"]),
            dict(data.get("options") or {}),
            data.get("parameterization", "combined"),
        )


BIAS_OPTIMIZERS: tuple[BiasOptimizer, ...] = (
    BiasOptimizer("gd", "gd", 1.0, 4000),
    BiasOptimizer("ngd", "ngd", 0.05, 4000),
    BiasOptimizer("polyak", "polyak", 1.0, 4000),
    BiasOptimizer("adam", "adam", 0.01, 4000),
    BiasOptimizer("mirror p=3", "mirror", 1.0, 4000, {"p": 3}),
    BiasOptimizer("normalized-mirror p=3", "normalized-mirror", 0.05, 4000, {"p": 3}),
    BiasOptimizer("sign", "sign", 0.002, 6000),
    BiasOptimizer("l1-steepest", "l1-steepest", 0.05, 4000),
    BiasOptimizer("spectral", "spectral", 0.007, 6000),
    BiasOptimizer("gd (K Q^T)", "gd", 1.0, 4000, parameterization="factorized"),
    BiasOptimizer("ngd (K Q^T)", "ngd", 0.05, 4000, parameterization="factorized"),
)
"""The default rows: every optimiser of the registry, combined, and factorised gd / ngd."""


def resolve_rows(optimizers: Any) -> tuple[BiasOptimizer, ...]:
    """The rows named by ``optimizers``: None (the defaults), a comma-separated string of labels,
    or a sequence of :class:`BiasOptimizer` and labels.

    Raises
    ------
    InvalidParameterError
        An unknown label, or two rows with one label.
    """
    if optimizers is None:
        return tuple(BIAS_OPTIMIZERS)
    if isinstance(optimizers, str):
        optimizers = [o for o in optimizers.split(",") if o.strip()]
    by_label = {o.label: o for o in BIAS_OPTIMIZERS}
    rows = []
    for item in optimizers:
        if isinstance(item, BiasOptimizer):
            rows.append(item)
        elif isinstance(item, Mapping):
            rows.append(BiasOptimizer.from_dict(item))
        elif isinstance(item, str) and item.strip() in by_label:
            rows.append(by_label[item.strip()])
        else:
            raise InvalidParameterError(
                f"unknown bias-table optimizer {item!r}; use a BiasOptimizer or one of "
                f"{', '.join(repr(o.label) for o in BIAS_OPTIMIZERS)}"
            )
    labels = [r.label for r in rows]
    if not rows or len(set(labels)) != len(labels):
        raise InvalidParameterError(f"bias-table optimizers need distinct labels, got {labels}")
    return tuple(rows)

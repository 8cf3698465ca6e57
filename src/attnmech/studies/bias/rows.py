"""The rows and columns of the bias table: which optimiser, with which options, against which
norms."""

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
    schedule : str, default="constant"
        Learning-rate schedule spec (:mod:`attnmech.layer.schedules`).
    loss : str, optional
        The loss (default: the setting's, the log-loss); ``"exp"`` for the exponential loss.
    expected : str, optional
        The predicted Graph-SVM norm when it is not the rule's own geometry
        (:func:`~attnmech.layer.optim.expected_svm_norm`), e.g. ``"fro"`` for Adam with
        ``eps > 0`` under a decaying rate.
    theorem : str, optional
        The key of :data:`attnmech.studies.bias.theorems.THEOREMS` the row is judged against
        (None: no theorem covers it, an extrapolation).
    search : bool, default=True
        Whether a search (``BiasConfig(search=True)``) picks this row's learning rate (and
        decay exponent); False keeps the given one (e.g. Polyak's rule, whose multiplier is 1).
    note : str, default=""
        A sentence the report prints beside the row (e.g. the cause of a known deviation).
    """

    label: str
    optimizer: str
    learning_rate: float
    num_steps: int
    options: Mapping[str, Any] = field(default_factory=dict)
    parameterization: str = "combined"
    schedule: str = "constant"
    loss: str | None = None
    expected: str | None = None
    theorem: str | None = None
    search: bool = True
    note: str = ""

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
        from ...layer.schedules import parse_schedule

        object.__setattr__(self, "schedule", parse_schedule(self.schedule).spec())
        if self.loss is not None:
            from ..._choices import LOSS_NAMES

            if self.loss not in LOSS_NAMES:
                raise InvalidParameterError(
                    f"bias optimizer {self.label!r}: loss must be one of {', '.join(LOSS_NAMES)}, "
                    f"got {self.loss!r}"
                )
        if self.expected is not None:
            from ...theory.norms import parse_norm

            object.__setattr__(self, "expected", parse_norm(self.expected).name)
        if self.theorem is not None:
            from .theorems import THEOREMS

            if self.theorem not in THEOREMS:
                raise InvalidParameterError(
                    f"bias optimizer {self.label!r}: unknown theorem {self.theorem!r}; the "
                    f"theorems are {', '.join(THEOREMS)}"
                )

    @property
    def expected_norm(self) -> str:
        """The Graph-SVM norm this optimiser is predicted to follow."""
        if self.expected is not None:
            return self.expected
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
            "schedule": self.schedule,
            "loss": self.loss,
            "expected": self.expected,
            "theorem": self.theorem,
            "search": self.search,
            "note": self.note,
        }

    def replace(self, **changes: Any) -> BiasOptimizer:
        """A copy with ``changes`` (validated again)."""
        import dataclasses

        return dataclasses.replace(self, **changes)

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
            data.get("schedule", "constant"),
            data.get("loss"),
            data.get("expected"),
            data.get("theorem"),
            bool(data.get("search", True)),
            data.get("note", ""),
        )


DECAY = "inverse-power:a=0.5,t0=1"
"""The decaying schedule of the rows whose theorem assumes one (the search also tries a = 1)."""

ADAM_CAUSE = (
    "constant lr: each step moves every entry by about lr whatever the gradient's size, and the "
    "second moment averages the last ~1/(1 - beta2) = 1000 squared gradients, which shrink "
    "during that window, so the step is not the sign-like step of the theorem; the theorem's "
    "decaying lr makes the window short against the change of the step"
)

BIAS_OPTIMIZERS: tuple[BiasOptimizer, ...] = (
    BiasOptimizer("gd", "gd", 1.0, 4000, theorem="li2024-gd"),
    BiasOptimizer("ngd", "ngd", 0.05, 4000, theorem="vasudeva2024-ngd"),
    BiasOptimizer("polyak", "polyak", 1.0, 4000, theorem="vasudeva2024-ngd", search=False),
    BiasOptimizer("momentum", "momentum", 0.5, 4000, schedule=DECAY, theorem="momentum-l2"),
    BiasOptimizer("mirror p=3", "mirror", 1.0, 4000, {"p": 3}, theorem="julistiono2024-mirror"),
    BiasOptimizer("normalized-mirror p=3", "normalized-mirror", 0.05, 4000, {"p": 3}),
    BiasOptimizer("sign", "sign", 0.05, 6000, schedule=DECAY, theorem="fan2025-nsd"),
    BiasOptimizer("signum", "signum", 0.05, 6000, schedule=DECAY, theorem="signum-linf"),
    BiasOptimizer("l1-steepest", "l1-steepest", 0.5, 4000, schedule=DECAY, theorem="fan2025-nsd"),
    BiasOptimizer("spectral", "spectral", 0.1, 6000, schedule=DECAY, theorem="fan2025-nsd"),
    BiasOptimizer("muon", "muon", 0.1, 6000, schedule=DECAY, theorem="muon-spectral"),
    BiasOptimizer(
        "adam (eps 0, decaying)",
        "adam",
        0.3,
        6000,
        {"eps": 0.0},
        schedule=DECAY,
        theorem="zhang2024-adam",
    ),
    BiasOptimizer(
        "adam (eps 1e-8, decaying)",
        "adam",
        0.3,
        6000,
        {"eps": 1e-8},
        schedule=DECAY,
        expected="fro",
        theorem="wang2021-adam-eps",
    ),
    BiasOptimizer(
        "adam (eps 1e-8, constant)",
        "adam",
        0.01,
        6000,
        {"eps": 1e-8},
        theorem="zhang2024-adam",
        note=ADAM_CAUSE,
    ),
    BiasOptimizer(
        "gd (K Q^T)", "gd", 1.0, 4000, parameterization="factorized", theorem="sheen2024-nuclear"
    ),
    BiasOptimizer(
        "gd (K Q^T), exp loss",
        "gd",
        1.0,
        4000,
        parameterization="factorized",
        loss="exp",
        theorem="sheen2024-nuclear",
    ),
    BiasOptimizer(
        "ngd (K Q^T)", "ngd", 0.05, 4000, parameterization="factorized", theorem="sheen2024-nuclear"
    ),
)
"""The default rows: every step rule of the registry under the conditions of its theorem where one
exists (decaying rates for the steepest-descent, momentum, Adam and Muon rows), the practical
constant-lr Adam beside it, and factorised gd / ngd with the log- and exponential losses."""


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
    by_label = {o.label: o for o in BIAS_OPTIMIZERS}
    if isinstance(optimizers, str):
        optimizers = _split_labels(optimizers, by_label)
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


def _split_labels(text: str, labels: Mapping[str, Any]) -> list[str]:
    """Split a comma-separated list of labels, some of which contain commas: at each position the
    longest run of pieces that forms a known label is taken (an unknown piece is kept alone)."""
    pieces = text.split(",")
    out, i = [], 0
    while i < len(pieces):
        for j in range(len(pieces), i, -1):
            joined = ",".join(pieces[i:j]).strip()
            if joined in labels:
                out.append(joined)
                i = j
                break
        else:
            if pieces[i].strip():
                out.append(pieces[i].strip())
            i += 1
    return out

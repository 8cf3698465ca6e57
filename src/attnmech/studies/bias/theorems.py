"""Which theorem predicts each row of the bias table, under which conditions, and whether a run
meets them.

Each :class:`Theorem` names the Graph-SVM norm it predicts, its citation, the model it is proved
for, and its conditions: the step rules and parameterization, the losses, the learning-rate
schedule (``constant``, ``decaying``: an inverse power ``(t + t0)^-a`` with ``0 < a <= 1``,
``flow``: gradient flow, which a discrete run never meets), the stability constant ``eps`` of Adam,
and the data class (``acyclic``: every token-priority graph acyclic, the separable case; ``any``).
:func:`assess` checks one row on one setting: a row that meets every condition is a **theorem**
row; any other row (no theorem, or an unmet condition) is an **extrapolation**, and the report says
which condition fails.

The linear-model theorems (steepest descent, Adam, momentum, Muon) are carried to the attention
layer through its Graph-SVM, as the paper does for gradient descent; the table states the model each
was proved for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["THEOREMS", "Theorem", "assess"]


@dataclass(frozen=True)
class Theorem:
    """A published implicit-bias result and its conditions (see the module docstring)."""

    key: str
    norm: str
    citation: str
    model: str
    rules: tuple[str, ...]
    parameterization: str = "combined"
    losses: tuple[str, ...] = ("log", "ce")
    schedule: str = "constant"
    eps: str | None = None  # "zero" | "positive" | None (no eps)
    data: str = "acyclic"

    def conditions(self) -> str:
        """The conditions as one line of text."""
        parts = [
            f"loss {'/'.join(self.losses)}",
            {
                "constant": "constant (small) lr",
                "decaying": "decaying lr (t + t0)^-a, 0 < a <= 1",
                "flow": "gradient flow (lr -> 0)",
                "any": "any lr schedule",
            }[self.schedule],
        ]
        if self.eps == "zero":
            parts.append("eps = 0")
        elif self.eps == "positive":
            parts.append("eps > 0")
        parts.append("acyclic (separable) data" if self.data == "acyclic" else "any data")
        return "; ".join(parts)


def _linear_multiclass(key: str, norm: str, citation: str, rules: tuple[str, ...]) -> Theorem:
    """A theorem for linear multiclass models under a decaying lr and the log, ce or exp loss."""
    return Theorem(
        key,
        norm,
        citation,
        "linear multiclass",
        rules,
        losses=("log", "ce", "exp"),
        schedule="decaying",
    )


THEOREMS: dict[str, Theorem] = {
    t.key: t
    for t in (
        Theorem(
            "li2024-gd",
            "fro",
            "Li et al. 2024, arXiv:2403.08081",
            "one attention layer (this library)",
            ("gd",),
            data="any",
        ),
        Theorem(
            "vasudeva2024-ngd",
            "fro",
            "Vasudeva et al. 2024, arXiv:2402.05738",
            "one attention layer, token selection",
            ("ngd", "polyak"),
        ),
        _linear_multiclass("momentum-l2", "fro", "arXiv:2602.16340", ("momentum",)),
        Theorem(
            "julistiono2024-mirror",
            "lp:p",
            "Julistiono, Tarzanagh, Azizi 2024, arXiv:2410.14581",
            "one attention layer, token selection",
            ("mirror",),
        ),
        _linear_multiclass(
            "fan2025-nsd",
            "own",
            "Fan, Schmidt, Thrampoulidis 2025, arXiv:2502.04664",
            ("sign", "l1-steepest", "spectral"),
        ),
        _linear_multiclass("signum-linf", "linf", "arXiv:2602.16340", ("signum",)),
        _linear_multiclass(
            "muon-spectral",
            "spectral",
            "arXiv:2602.16340; Fan et al. 2025, arXiv:2502.04664",
            ("muon",),
        ),
        Theorem(
            "zhang2024-adam",
            "linf",
            "Zhang, Zou, Cao 2024, arXiv:2406.10650; Fan et al. 2025, arXiv:2502.04664",
            "linear (multiclass) classification",
            ("adam",),
            losses=("log", "ce", "exp"),
            schedule="decaying",
            eps="zero",
        ),
        Theorem(
            "wang2021-adam-eps",
            "fro",
            "arXiv:2012.06244",
            "homogeneous models",
            ("adam",),
            losses=("log", "ce", "exp"),
            schedule="any",
            eps="positive",
        ),
        Theorem(
            "sheen2024-nuclear",
            "nuclear",
            "Sheen et al. 2024, arXiv:2403.08699",
            "attention with W = K Q^T, gradient flow",
            ("gd", "ngd"),
            parameterization="factorized",
            losses=("exp",),
            schedule="flow",
        ),
    )
}
"""The theorems the bias table's rows are judged against, by key."""


def assess(row: Any, cyclic: bool, setting_loss: str = "log") -> dict[str, Any]:
    """Whether the run of ``row`` (a :class:`~attnmech.studies.bias.BiasOptimizer`) on a setting
    meets its theorem's conditions.

    Returns
    -------
    dict
        ``theorem`` (key or None), ``predicted`` (the norm), ``citation``, ``model``,
        ``conditions`` (text), ``unmet`` (list of the conditions the run does not meet),
        ``meets`` (bool) and ``label``: ``"theorem"`` or ``"extrapolation"``.
    """
    from ...layer.schedules import parse_schedule

    predicted = row.expected_norm
    theorem = THEOREMS.get(row.theorem) if row.theorem is not None else None
    if theorem is None:
        return {
            "theorem": None,
            "predicted": predicted,
            "citation": "",
            "model": "",
            "conditions": "",
            "unmet": ["no theorem covers this rule"],
            "meets": False,
            "label": "extrapolation",
        }
    unmet = []
    loss = row.loss or setting_loss
    if row.optimizer not in theorem.rules:
        unmet.append(f"rule {row.optimizer} (the theorem is for {', '.join(theorem.rules)})")
    if row.parameterization != theorem.parameterization:
        unmet.append(f"{row.parameterization} W (needs {theorem.parameterization})")
    if loss not in theorem.losses:
        unmet.append(f"loss {loss} (needs {'/'.join(theorem.losses)})")
    schedule = parse_schedule(row.schedule)
    if theorem.schedule == "flow":
        unmet.append("discrete steps from a random init (the theorem is for gradient flow)")
    elif theorem.schedule == "constant" and schedule.name != "constant":
        unmet.append(f"schedule {schedule.spec()} (needs a constant lr)")
    elif theorem.schedule == "decaying":
        a = schedule.options.get("a") if schedule.name == "inverse-power" else None
        if a is None or not 0 < a <= 1:
            unmet.append(f"schedule {schedule.spec()} (needs (t + t0)^-a with 0 < a <= 1)")
    if theorem.eps is not None:
        eps = float(row.options.get("eps", 1e-8))
        if theorem.eps == "zero" and eps != 0:
            unmet.append(f"eps = {eps:g} (needs 0)")
        if theorem.eps == "positive" and eps == 0:
            unmet.append("eps = 0 (needs eps > 0)")
    if theorem.data == "acyclic" and cyclic:
        unmet.append("cyclic data (the theorem is for acyclic data)")
    return {
        "theorem": theorem.key,
        "predicted": predicted,
        "citation": theorem.citation,
        "model": theorem.model,
        "conditions": theorem.conditions(),
        "unmet": unmet,
        "meets": not unmet,
        "label": "theorem" if not unmet else "extrapolation",
    }

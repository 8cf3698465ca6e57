"""The registry of experiments: :data:`EXPERIMENTS`, name -> :class:`Setting`.

Each setting of SPEC section 9 is one :func:`register` call below. The helpers
(:func:`cyclic_setting`, :func:`acyclic_setting`, :func:`local_setting`) only assemble data: the
table rows and figure references come from the paper's values in
:mod:`~attnmech.experiments.paper`. Adding an experiment is one more ``register(Setting(...))``.

=========================  ===============================================================
name                       experiment
=========================  ===============================================================
cyclic-6-4-6-8             global convergence, cyclic TPGs, iden head + log-loss, lr 0.01
cyclic-10-6-8-8            the same, larger
acyclic-4-6-8-8            acyclic TPGs, lr 0.01: corr and attention on the label
acyclic-6-4-6-8-lr0.1      acyclic TPGs, lr 0.1: fast alignment
local-ce, local-squared    gen head, cross-entropy / squared loss (n=6 T=4 K=6 d=8): local
                           TPGs (SPEC section 8) predict the direction, the global ones do not
local-ce-4-6-8-8, ...      the same with n=4 T=6 K=8 d=8
=========================  ===============================================================

Examples
--------
>>> list(EXPERIMENTS)[:3]
['cyclic-6-4-6-8', 'cyclic-10-6-8-8', 'acyclic-4-6-8-8']
>>> EXPERIMENTS["local-ce"].head, EXPERIMENTS["local-ce"].loss
('gen', 'ce')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ExperimentNotFoundError, InvalidParameterError
from .figures import CurveFigure, GraphFigure, Reference
from .measures import History, LabelMiss, LocalTPG, OneMinus
from .paper import LOCAL_GLOBAL_CORR, LOCAL_LOCAL_CORR, PAPER
from .settings import DataSpec, Measure, Setting
from .verdicts import PaperValue

__all__ = [
    "EXPERIMENTS",
    "register",
    "unregister",
    "list_experiments",
    "select",
    "cyclic_setting",
    "acyclic_setting",
    "local_setting",
]

EXPERIMENTS: dict[str, Setting] = {}
"""Every registered setting, in the order they run (name -> Setting)."""


def register(setting: Setting, *, replace: bool = False) -> Setting:
    """Add ``setting`` to :data:`EXPERIMENTS` (``attnmech reproduce --only NAME`` runs it).

    Raises
    ------
    InvalidParameterError
        If it is not a Setting, or its name is taken and ``replace`` is False.
    """
    if not isinstance(setting, Setting):
        raise InvalidParameterError(f"register() takes a Setting, got {type(setting).__name__}")
    if setting.name in EXPERIMENTS and not replace:
        raise InvalidParameterError(
            f"an experiment named {setting.name!r} is already registered; choose another name or "
            "pass replace=True"
        )
    EXPERIMENTS[setting.name] = setting
    return setting


def unregister(name: str) -> Setting:
    """Remove and return the setting called ``name``."""
    if name not in EXPERIMENTS:
        raise ExperimentNotFoundError(
            f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}"
        )
    return EXPERIMENTS.pop(name)


def list_experiments() -> list[tuple[str, str]]:
    """``(name, title)`` of every registered setting, in run order."""
    return [(name, setting.title) for name, setting in EXPERIMENTS.items()]


def select(only: str | Sequence[str] | None) -> list[Setting]:
    """The settings named in ``only`` (all when None), in registry order."""
    if only is None:
        return list(EXPERIMENTS.values())
    names = [only] if isinstance(only, str) else list(only)
    unknown = [name for name in names if name not in EXPERIMENTS]
    if unknown or not names:
        raise ExperimentNotFoundError(
            f"unknown experiment {', '.join(map(repr, unknown)) or '(none given)'}; choose from "
            f"{', '.join(EXPERIMENTS)}"
        )
    wanted = set(names)
    return [setting for name, setting in EXPERIMENTS.items() if name in wanted]


# ---------------------------------------------------------------------------------- wording
_CORR = "corr(W, W_svm)"
_CORR_FIN = "corr(W, W_fin + R W_svm)"
_CORR_PERP = "corr(Proj_{S_fin-perp} W, W_svm)"
_GAP = "||Proj_{S_fin} W - W_fin(t)||_F"
_DRAWS = (
    "the quantity depends on the random dataset (the size of W_svm and W_fin), and the paper's "
    "datasets are other random draws that cannot be regenerated here"
)
_EXPONENTIAL = (
    "it decays like exp(-margin x R(t)) with R(t) about ||W(t)|| / ||W_svm||, so it is "
    "exponentially sensitive to the dataset's Graph-SVM norm: across our trials it spans "
    "orders of magnitude, and a mean over trials is dominated by the slowest trial"
)
_LOCAL_NOTE = (
    "whether GD gets stuck in a local direction, and how far that direction is from the global "
    "one, depends on the dataset and the initialisation, and the paper's datasets are other "
    "random draws that cannot be regenerated here"
)
_LEGEND_CORR = (
    ("corr_svm", "corr$(W, W_{svm})$"),
    ("corr_svm_fin", "corr$(W, W_{fin} + R\\,W_{svm})$"),
    ("corr_perp_svm", "corr$(\\Pi_{S_{fin}^\\perp} W, W_{svm})$"),
)
_GLOBAL_METRICS = (
    History(),
    OneMinus("corr_svm", "one_minus_corr"),
    LabelMiss("one_minus_label_attention"),
)
_GRAPH_TITLE = (
    "{name}, trial {trial}: %s token-priority graphs (%s)\n"
    "one panel per last token; boxes: SCCs; top: highest priority"
)


def _paper_line(paper: dict[str, Any], key: str) -> tuple[Reference, ...]:
    """A horizontal line at the paper's value for ``key``, or nothing if the paper has none."""
    if key not in paper:
        return ()
    return (Reference("hline", f"paper: {paper[key].text}", (paper[key].value,)),)


# ---------------------------------------------------------------------------------- helpers
def cyclic_setting(n: int, T: int, K: int, d: int, paper: dict[str, Any]) -> Setting:
    """Global convergence with cyclic TPGs (iden head, log-loss, normalised GD lr 0.01)."""
    name = f"cyclic-{n}-{T}-{K}-{d}"
    corr_at: dict[int, PaperValue] = paper.get("corr_at", {})
    measures = [
        Measure(
            "corr_svm@final", f"{_CORR}, final", "corr_svm", paper=paper.get("corr"), note=_DRAWS
        )
    ]
    measures += [
        Measure(
            f"corr_svm@{step}",
            f"{_CORR} at step {step}",
            "corr_svm",
            mode="step",
            step=step,
            paper=value,
            note=_DRAWS,
        )
        for step, value in corr_at.items()
    ]
    measures += [
        Measure("corr_svm_fin@final", f"{_CORR_FIN}, final", "corr_svm_fin"),
        Measure("corr_perp_svm@final", f"{_CORR_PERP}, final", "corr_perp_svm"),
    ]
    if "gap_peak" in paper:
        measures += [
            Measure(
                "fin_gap_traj@peak",
                f"{_GAP}, at the peak of the mean curve",
                "fin_gap_traj",
                mode="mean_peak",
                paper=paper["gap_peak"],
                note="the early overshoot of the finite part scales with ||W_fin||; " + _DRAWS,
            ),
            Measure(
                "fin_gap_traj@peak_step",
                "step of that peak",
                "fin_gap_traj",
                mode="mean_peak_step",
                paper=paper["gap_peak_step"],
                note="when the overshoot peaks depends on the datasets; " + _DRAWS,
            ),
        ]
    measures += [
        Measure(
            "fin_gap_traj@final",
            f"{_GAP}, final",
            "fin_gap_traj",
            paper=paper.get("gap"),
            note=_DRAWS,
        ),
        Measure(
            "top_scc_mass@final",
            "top-SCC attention mass, final",
            "top_scc_mass",
            paper=paper.get("top"),
            note=_EXPONENTIAL,
        ),
    ]
    if corr_at:
        steps = (*corr_at, 4000)
        values = (*(v.value for v in corr_at.values()), paper["corr"].value)
        corr_refs = (Reference("points", "paper: mean corr$(W, W_{svm})$", values, steps),)
    else:
        corr = paper["corr"]
        corr_refs = (Reference("hline", f"paper: corr {corr.text}", (corr.value,)),)
    gap_refs: tuple[Reference, ...] = ()
    if "gap_peak" in paper:
        peak, at = paper["gap_peak"], paper["gap_peak_step"]
        gap_refs = (
            Reference(
                "points",
                f"paper: peak {peak.text} near step {at.text}",
                (peak.value,),
                (int(at.value),),
            ),
        )
    gap_refs += (Reference("hline", f"paper: final {paper['gap'].text}", (paper["gap"].value,)),)
    return Setting(
        name=name,
        title=f"Cyclic TPGs, n={n} T={T} K={K} d={d}, lr 0.01",
        kind="global",
        data=DataSpec("cyclic", n, T, K, d),
        learning_rate=0.01,
        num_steps=4000,
        metrics=_GLOBAL_METRICS,
        measures=tuple(measures),
        figures=(
            CurveFigure(
                "corr",
                _LEGEND_CORR,
                "correlation",
                "direction of W(t)",
                "Direction: W(t) against W_svm, against W_fin + R W_svm (R fitted), and its part "
                "orthogonal to S_fin against W_svm.",
                references=corr_refs,
            ),
            CurveFigure(
                "fin-gap",
                (("fin_gap_traj", "$\\|\\Pi_{S_{fin}} W(t) - W_{fin}(t)\\|_F$"),),
                "norm of the difference (log scale)",
                "finite part: gap to W_fin(t)",
                "Finite part: the projection of W(t) onto S_fin against W_fin(t), W_fin trained "
                "by the same optimiser from zero on the reduced data.",
                logy=True,
                references=gap_refs,
            ),
            CurveFigure(
                "top-scc",
                (("top_scc_mass", "attention mass on the top SCC"),),
                "attention mass",
                "hard retrieval: attention on the top SCC",
                "Hard retrieval: per sample the largest attention mass on one SCC of G^(k), "
                "averaged over samples.",
                references=_paper_line(paper, "top"),
            ),
        ),
        description=(
            "Global convergence with cyclic token-priority graphs: iden head, log-loss, "
            "normalised GD (SPEC sections 6 and 9)."
        ),
    )


def acyclic_setting(
    name: str, n: int, T: int, K: int, d: int, lr: float, steps: int, paper: dict[str, Any]
) -> Setting:
    """Global convergence with acyclic TPGs: corr with W_svm and attention on the label."""
    corr_at: dict[int, PaperValue] = paper.get("corr_at", {})
    measures = [
        Measure(
            "corr_svm@final", f"{_CORR}, final", "corr_svm", paper=paper.get("corr"), note=_DRAWS
        )
    ]
    if "one_minus_corr" in paper:
        measures.append(
            Measure(
                "one_minus_corr@final",
                f"1 - {_CORR}, final",
                "one_minus_corr",
                paper=paper["one_minus_corr"],
                note=_DRAWS,
            )
        )
    measures += [
        Measure(
            f"corr_svm@{step}",
            f"{_CORR} at step {step}",
            "corr_svm",
            mode="step",
            step=step,
            paper=value,
            note=_DRAWS,
        )
        for step, value in corr_at.items()
    ]
    if "first_step" in paper:
        measures.append(
            Measure(
                "corr_svm@first_step_0.99",
                f"first step with {_CORR} >= 0.99",
                "corr_svm",
                mode="first_step_at_least",
                threshold=0.99,
                paper=paper["first_step"],
                note=_DRAWS,
            )
        )
    measures += [
        Measure("label_attention@final", "attention on the label, final", "label_attention"),
        Measure(
            "one_minus_label_attention@final",
            "1 - attention on the label, final",
            "one_minus_label_attention",
            paper=paper.get("one_minus_attn"),
            note=_EXPONENTIAL,
        ),
    ]
    corr = paper["corr"]
    corr_refs: tuple[Reference, ...] = (Reference("hline", f"paper: {corr.text}", (corr.value,)),)
    corr_refs += tuple(
        Reference("points", f"paper: {value.text} at step {step}", (value.value,), (step,))
        for step, value in corr_at.items()
    )
    figures = (
        CurveFigure(
            "corr",
            (("corr_svm", "corr$(W, W_{svm})$"),),
            "correlation",
            "direction of W(t)",
            "Direction: W(t) against the Graph-SVM solution W_svm.",
            references=corr_refs,
        ),
        CurveFigure(
            "one-minus-corr",
            (("one_minus_corr", "$1 - $corr$(W, W_{svm})$"),),
            "1 - correlation (log scale)",
            "direction of W(t): 1 - corr (log axis)",
            "The same on a log axis: 1 - corr(W, W_svm).",
            logy=True,
            references=_paper_line(paper, "one_minus_corr"),
        ),
        CurveFigure(
            "label-attention",
            (("label_attention", "attention on the label"),),
            "attention mass",
            "hard retrieval: attention on the label",
            "Hard retrieval: attention mass on the label's positions, averaged over samples.",
        ),
        CurveFigure(
            "one-minus-label-attention",
            (("one_minus_label_attention", "$1 - $attention on the label"),),
            "1 - attention mass (log scale)",
            "hard retrieval: 1 - attention on the label (log axis)",
            "The same on a log axis: 1 - attention on the label.",
            logy=True,
            references=_paper_line(paper, "one_minus_attn"),
        ),
    )
    return Setting(
        name=name,
        title=f"Acyclic TPGs, n={n} T={T} K={K} d={d}, lr {lr:g}",
        kind="global",
        data=DataSpec("acyclic", n, T, K, d),
        learning_rate=lr,
        num_steps=steps,
        metrics=_GLOBAL_METRICS,
        measures=tuple(measures),
        figures=figures,
        description=(
            "Global convergence with acyclic token-priority graphs (every SCC one token): W_fin = "
            "0 and the attention concentrates on the label (SPEC sections 6 and 9)."
        ),
    )


def local_setting(loss: str, n: int, T: int, K: int, d: int, name: str) -> Setting:
    """Gen head, CE or squared loss: W(t) against the global and the local TPG predictions."""
    loss_name = {"ce": "cross-entropy", "squared": "squared loss"}[loss]
    loss_short = {"ce": "CE", "squared": "squared loss"}[loss]
    measures = (
        Measure(
            "corr_svm@final",
            f"global TPG: {_CORR}, final",
            "corr_svm",
            paper=LOCAL_GLOBAL_CORR,
            note=_LOCAL_NOTE,
        ),
        Measure(
            "corr_svm_local@final",
            "local TPG: corr(W, W_svm^loc), final",
            "corr_svm_local",
            paper=LOCAL_LOCAL_CORR,
            note=_LOCAL_NOTE,
        ),
        Measure("corr_svm_fin@final", f"global TPG: {_CORR_FIN}, final", "corr_svm_fin"),
        Measure(
            "corr_svm_fin_local@final",
            "local TPG: corr(W, W_fin^loc + R W_svm^loc), final",
            "corr_svm_fin_local",
        ),
    )
    figures = (
        CurveFigure(
            "corr",
            (
                ("corr_svm", "global TPG: corr$(W, W_{svm})$"),
                ("corr_svm_local", "local TPG: corr$(W, W_{svm}^{loc})$"),
            ),
            "correlation",
            "global vs local TPG prediction: W_svm",
            "Direction: W(t) against the global Graph-SVM (edges from the labels) and against the "
            "local Graph-SVM (edges from the tokens GD selected at the end, SPEC section 8).",
            references=(
                Reference("band", "paper: global stalls at ~0.70-0.75", (0.70, 0.75)),
                Reference("hline", "paper: local reaches ~0.99", (0.99,)),
            ),
        ),
        CurveFigure(
            "corr-fin",
            (
                ("corr_svm_fin", "global TPG: corr$(W, W_{fin} + R\\,W_{svm})$"),
                ("corr_svm_fin_local", "local TPG: corr$(W, W_{fin}^{loc} + R\\,W_{svm}^{loc})$"),
            ),
            "correlation",
            "global vs local TPG prediction: W_fin + R W_svm",
            "The same with the finite parts: W(t) against W_fin + R W_svm, R fitted, for the "
            "global and the local prediction.",
        ),
        GraphFigure(
            "theories",
            "{name}-tpg-global",
            _GRAPH_TITLE % ("global", "edges from the labels"),
            "global token-priority graphs of trial {trial}",
            "Trial {trial}, global token-priority graphs (edges from the labels).",
        ),
        GraphFigure(
            "local_theories",
            "{name}-tpg-local",
            _GRAPH_TITLE % ("local", "edges from the tokens GD selected"),
            "local token-priority graphs of trial {trial}",
            "Trial {trial}, local token-priority graphs (edges from the tokens GD selected: "
            "a_j > 1e-2).",
        ),
    )
    return Setting(
        name=name,
        title=f"Local: gen head, {loss_short}, n={n} T={T} K={K} d={d}, lr 0.1",
        kind="local",
        data=DataSpec("cyclic", n, T, K, d),
        learning_rate=0.1,
        num_steps=2000,
        head="gen",
        loss=loss,
        metrics=(
            History(),
            OneMinus("corr_svm", "one_minus_corr"),
            OneMinus("label_attention", "one_minus_label_attention"),
            LocalTPG(),
        ),
        measures=measures,
        figures=figures,
        description=(
            f"Nonconvex training (gen head, {loss_name}): GD may converge to a local direction. "
            "After training, the attention mass a_j per sample selects the tokens "
            "(a_j > 1e-2); the local TPG, local Graph-SVM and local W_fin are built from them "
            "(SPEC section 8) and W(t) is measured against both predictions."
        ),
    )


# ---------------------------------------------------------------------------------- the entries
register(cyclic_setting(6, 4, 6, 8, PAPER["cyclic-6-4-6-8"]))
register(cyclic_setting(10, 6, 8, 8, PAPER["cyclic-10-6-8-8"]))
register(acyclic_setting("acyclic-4-6-8-8", 4, 6, 8, 8, 0.01, 4000, PAPER["acyclic-4-6-8-8"]))
register(
    acyclic_setting("acyclic-6-4-6-8-lr0.1", 6, 4, 6, 8, 0.1, 2000, PAPER["acyclic-6-4-6-8-lr0.1"])
)
register(local_setting("ce", 6, 4, 6, 8, "local-ce"))
register(local_setting("squared", 6, 4, 6, 8, "local-squared"))
register(local_setting("ce", 4, 6, 8, 8, "local-ce-4-6-8-8"))
register(local_setting("squared", 4, 6, 8, 8, "local-squared-4-6-8-8"))

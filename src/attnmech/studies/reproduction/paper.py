"""The authors' reported values, as data, each labelled by its exact origin.

:data:`PAPER` maps a setting name to the numbers the authors report for it, by role, each a
:class:`~attnmech.studies.reproduction.verdicts.PaperValue` carrying its verdict rule and its
origin: a notebook print (notebook, commit, cell), a rerun of a notebook's code, a figure stored
in a notebook, or a repository figure file (its path at commit ``0d105ef``). One comparison rule:

- the authors print per-trial values (their mean and spread): a two-sample test with their
  spread (:class:`MeanStd`, computed from the printed values);
- any other statistic of ``k`` trials on random datasets (a mean without spread, a value read off
  a figure, the peak or the step of the peak of a mean curve): the authors' value against the
  sampling distribution of the same statistic over ``k``-trial draws of ours
  (:class:`Sampling`, bootstrap), widened by the reading's own uncertainty;
- a qualitative claim: :class:`AtLeast`, only where the authors' own values pass it;
- a number that measures something else than ours: :class:`NotComparable`, with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._notebook_records import NOTEBOOK_RECORDS, PRINTED_ONLY_RECORDS
from .verdicts import AtLeast, MeanStd, PaperValue, Sampling

__all__ = [
    "AUTHORS_GAP_RISE",
    "AUTHORS_LOCAL_GAP",
    "LOCAL_GAP",
    "NOTEBOOK_CORR",
    "NOTEBOOK_PROJ",
    "PAPER",
    "QUALITATIVE_LOCAL",
    "RERUN_GLOBAL",
    "RERUN_PROJ",
    "local_claim",
]

_REPO = "figures/Papers/"
_AT = " (repository figure file, commit 0d105ef; trial count not printed, 10 assumed)"
NB_GLOBAL = (
    "notebook print: mc_next_single_layer_global_converge.ipynb @ 514473c, cell [4] (10 trials)"
)
NB_LOCAL_SQ = (
    "notebook print: mc_next_single_layer_local_converge.ipynb @ 514473c, cell [4] (10 trials)"
)
NB_LOCAL_CE = (
    "notebook print: mc_next_single_layer_local_converge.ipynb @ 0d105ef, cell [3] (10 trials)"
)
NB_ACYC = "notebook print: mc_next_single_layer_global_converge_acyc.ipynb @ 0d105ef (its 2 trials)"
RERUN_GLOBAL = (
    "rerun of the code of mc_next_single_layer_global_converge.ipynb @ 514473c on its own 10 "
    "trials (the notebook does not print these)"
)
NB_FIGURE = (
    "figure stored in mc_next_single_layer_global_converge.ipynb @ 514473c (its 10 trials, read "
    "off the image)"
)

RERUN_PROJ = (
    "rerun of the code of mc_next_single_layer_global_converge.ipynb @ 514473c on its own 10 "
    "trials (its proj_corr_list, the curve of its projected-correlation panel, figure file "
    "figures/Papers/proj_corr_cyc_log_n6T4K6d8_pos.png/.pdf; the notebook prints only the last "
    "step, 0.9860, which this rerun reproduces: the authors' trainer replayed by "
    "attnmech.studies.authors.train_authors on the regenerated datasets and float32 "
    "initialisations, against the exact W_svm)"
)
NOTEBOOK_PROJ = {100: 0.406, 500: 0.864, 1000: 0.946, 2000: 0.979}
"""Mean corr(W - Proj_{S_fin} W, W_svm) over the global notebook's 10 trials at these steps
(:data:`RERUN_PROJ`; 4000: 0.9860, the notebook's print)."""

TOP_START_SOURCE = (
    _REPO + "sfx_cyc_log_n6T4K6d8_pos.png (repository figure file, commit 0d105ef; linear axis, "
    "its first point, step 0 (the initialisation); the curve is the global notebook's "
    "attn_probs, per sample the largest attention mass on one SCC, averaged; trial count not "
    "printed, 10 assumed. On the notebook's own 10 regenerated trials this statistic is 0.4028 "
    "at step 0, their largest single-position attention 0.296)"
)
MAX_START_SOURCE = (
    _REPO + "sfx_cyc_log_n10T6K8d8_pos.png (repository figure file, commit 0d105ef; linear axis, "
    "its first point, step 0 (the initialisation); the curve is the largest single-position "
    "attention (it plateaus near 0.80, which the top-SCC mass of cyclic data does not); no "
    "notebook runs this setting; trial count not printed, 10 assumed)"
)

NOTEBOOK_CORR = {100: 0.403, 500: 0.863, 1000: 0.946, 2000: 0.979, 4000: 0.986}
"""Mean corr(W, W_svm) over the global notebook's 10 trials at these steps (4000: the notebook's
print; 100-2000: a rerun of its code, :data:`RERUN_GLOBAL`)."""

_LOG2 = 2.0  # a value read off a log axis (PNG): known within a factor 2
_PDF = 1e-4  # a value read from a PDF's vector paths: the axis calibration only


def _printed(text: str, values: Any, origin: str) -> PaperValue:
    """A mean of printed per-trial values, compared by the two-sample test with their spread."""
    array = np.asarray(values, dtype=np.float64)
    return PaperValue(
        text, float(array.mean()), MeanStd(std=float(array.std()), n=int(array.size)), origin
    )


def _figure(
    text: str,
    value: float,
    origin: str,
    *,
    tol: float = 0.0,
    factor: float = 1.0,
    k: int = 10,
    k_known: bool = False,
) -> PaperValue:
    """A statistic of ``k`` trials read off a figure (``tol`` / ``factor``: the reading)."""
    return PaperValue(text, value, Sampling(k=k, tol=tol, factor=factor, k_known=k_known), origin)


_GLOBAL = NOTEBOOK_RECORDS["cyclic-6-4-6-8"].metrics
_LOCAL_SQ = NOTEBOOK_RECORDS["local-squared"].metrics
_LOCAL_CE = PRINTED_ONLY_RECORDS["local-ce"].metrics

_DIFFERENT_GAP = (
    "different quantity: the authors' W_fin(t) of the local graphs is trained from zero with the "
    "gen head and the setting's loss (their local_Wdiff_norm_list), attnmech's is the exact "
    "iden-head W_fin of the local theory; the trials without a local S_fin count as n/a in "
    "attnmech's and as 0 in theirs (the rows of their definition, computed by "
    "studies/reproduction/authors_finite.py, are the ones compared)"
)
_AT_GAP = (
    " (repository figure file, commit 0d105ef; trial count not printed, 10 assumed; the mean "
    "over trials of the gap at its last step. The local notebook @ 0d105ef plots this quantity "
    "twice: its executed cell with square_flag=False (the plain gap, y label 'Norm difference "
    "Sqaure') saved as local_norm_diff_cyc_ce_gen_0.1_n4T6K8d8_pos.pdf, and a cell not run "
    "there, show_norm_diff(..., use_square=True), whose file name is this one. Taken as the "
    "plain gap: on 10 of our draws the authors' own pipeline gives a mean squared gap of 285, "
    "38 times the reading, and a mean plain gap of 11.3)"
)
_AT_GAP_LS = (
    " (repository figure file, commit 0d105ef; trial count not printed, 10 assumed; the mean "
    "over trials of the gap at its last step, taken as the plain gap as for the cross-entropy "
    "file (on 10 of our draws: mean squared gap 412, 24 times the reading; mean plain gap "
    "12.1); no notebook version writes this name: theirs would read 'lsq2')"
)

AUTHORS_GAP_RISE = (
    0.012103864337684345,
    0.4498329210073193,
    0.16629604941927173,
    0.29099560934411367,
    -0.10835999568866084,
    0.007114085150850623,
    -0.06960317722999693,
    -0.1478313279754257,
    -0.10470557121337487,
    0.15735451178011747,
)
"""||Proj W - W_fin(t)|| at step 50 minus at step 0, per trial, on the authors' own 10 datasets
and float32 initialisations (:data:`AUTHORS_GAP_RISE_SOURCE`)."""

AUTHORS_GAP_RISE_SOURCE = (
    "attnmech's trainer on the global notebook's regenerated 10 trials (`attnmech reproduce "
    "--data authors --only cyclic-6-4-6-8`, row fin_gap_traj_rise@50; the same run's final corr "
    "matches the notebook's prints within 1e-4)"
)

PAPER: dict[str, dict[str, Any]] = {
    "cyclic-6-4-6-8": {
        "corr": _printed("0.986 ± 0.005 (min 0.976)", _GLOBAL["corr_svm"], NB_GLOBAL),
        "corr_at": {
            step: PaperValue(
                f"{value:.3f} (mean)", value, Sampling(k=10, k_known=True), RERUN_GLOBAL
            )
            for step, value in NOTEBOOK_CORR.items()
            if step < 4000
        },
        "corr_fin": _printed("0.9860 ± 0.0049", _GLOBAL["corr_fin"], NB_GLOBAL),
        "corr_proj": _printed("0.9860 ± 0.0049", _GLOBAL["corr_proj"], NB_GLOBAL),
        "gap": _printed("0.0062 ± 0.0024", _GLOBAL["norm_gap"], NB_GLOBAL),
        "gap_sq_peak": _figure("0.18 (mean of squares)", 0.18, NB_FIGURE, tol=0.02, k_known=True),
        "gap_sq_peak_step": _figure("213", 213, NB_FIGURE, tol=20, k_known=True),
        "gap_peak": _figure(
            "~0.29", 0.29, _REPO + "norm_diff_cyc_log_n6T4K6d8_pos.png" + _AT, tol=0.03
        ),
        "gap_peak_step": _figure(
            "~220", 220, _REPO + "norm_diff_cyc_log_n6T4K6d8_pos.png" + _AT, tol=30
        ),
        "gap_peak_pdf": _figure(
            "0.54", 0.54, _REPO + "norm_diff_cyc_log_n6T4K6d8.pdf" + _AT, tol=_PDF
        ),
        "gap_peak_step_pdf": _figure(
            "~426", 426, _REPO + "norm_diff_cyc_log_n6T4K6d8.pdf" + _AT, tol=10
        ),
        "gap_final_pdf": _figure(
            "0.011", 0.011, _REPO + "norm_diff_cyc_log_n6T4K6d8.pdf" + _AT, factor=1.05
        ),
        "gap_sq_peak_pdf": _figure(
            "0.45", 0.45, _REPO + "norm_diff_sq_cyc_log_n6T4K6d8.pdf" + _AT, tol=_PDF
        ),
        "gap_sq_peak_step_pdf": _figure(
            "~430", 430, _REPO + "norm_diff_sq_cyc_log_n6T4K6d8.pdf" + _AT, tol=10
        ),
        "gap_sq_final_pdf": _figure(
            "5e-4", 5e-4, _REPO + "norm_diff_sq_cyc_log_n6T4K6d8.pdf" + _AT, factor=1.05
        ),
        "gap_rise": PaperValue(
            "rises from step 0 (the authors' figures)",
            0.0,
            AtLeast(authors=AUTHORS_GAP_RISE, authors_source=AUTHORS_GAP_RISE_SOURCE),
            "all four author figures of the finite part",
        ),
        "one_minus_top": _figure(
            "3e-4", 3e-4, _REPO + "sfx_cyc_log_n6T4K6d8_pos.png" + _AT, factor=_LOG2
        ),
        "top_start": _figure("0.40", 0.40, TOP_START_SOURCE, tol=0.01),
        "proj_at": {
            step: PaperValue(
                f"{value:.3f} (mean)", value, Sampling(k=10, tol=5e-4, k_known=True), RERUN_PROJ
            )
            for step, value in NOTEBOOK_PROJ.items()
        },
    },
    "cyclic-10-6-8-8": {
        "corr": _figure("~0.975", 0.975, _REPO + "corr_cyc_log_n10T6K8d8_pos.png" + _AT, tol=0.005),
        "gap": _figure(
            "~1e-2", 1e-2, _REPO + "norm_diff_cyc_log_n10T6K8d8.png" + _AT, factor=_LOG2
        ),
        "max_attn": _figure(
            "plateau 0.80 (band 0.70-0.90)",
            0.80,
            _REPO + "sfx_cyc_log_n10T6K8d8_pos.png" + _AT,
            tol=0.02,
        ),
        "max_attn_start": _figure("0.21", 0.21, MAX_START_SOURCE, tol=0.01),
    },
    "acyclic-4-6-8-8": {
        "corr": PaperValue(
            "0.9927 ± 0.003",
            0.9927,
            MeanStd(std=0.003, n=10),
            _REPO + "corr_asyc_log_n4T6K8d8_pos.pdf" + _AT,
        ),
        "one_minus_max_attn_at": {
            2000: _figure(
                "5.5e-3",
                5.5e-3,
                _REPO
                + "sfx_asyc_log_n4T6K8d8_pos.png"
                + _AT
                + "; not the acyclic notebook's own 2 trials",
                factor=_LOG2,
            ),
            4000: _figure(
                "~7e-5",
                7e-5,
                _REPO
                + "sfx_asyc_log_n4T6K8d8_pos.png"
                + _AT
                + "; not the acyclic notebook's own 2 trials, which give 4.75e-6 at step 4000",
                factor=_LOG2,
            ),
        },
    },
    "acyclic-6-4-6-8-lr0.1": {
        "corr": _figure(
            "0.9954 (band 0.990-1.000)",
            0.9954,
            _REPO + "corr_asyc_log_n6T4K6d8_pos_0.1.pdf" + _AT,
            tol=_PDF,
        ),
        "corr_at": {
            300: _figure(
                "0.988 (band 0.983-0.994)",
                0.988,
                _REPO + "corr_asyc_log_n6T4K6d8_pos_0.1.pdf" + _AT,
                tol=_PDF,
            )
        },
        "corr_peak": _figure(
            "0.9986", 0.9986, _REPO + "corr_asyc_log_n6T4K6d8_pos_0.1.pdf" + _AT, tol=_PDF
        ),
        "corr_peak_step": _figure(
            "~1130", 1130, _REPO + "corr_asyc_log_n6T4K6d8_pos_0.1.pdf" + _AT, tol=50
        ),
    },
    "local-ce": {
        "global": _printed("0.828 ± 0.180", _LOCAL_CE["corr_svm"], NB_LOCAL_CE),
        "local": _printed("0.9894 ± 0.0075", _LOCAL_CE["corr_local_svm"], NB_LOCAL_CE),
    },
    "local-squared": {
        "global": _printed("0.646 ± 0.221", _LOCAL_SQ["corr_svm"], NB_LOCAL_SQ),
        "local": _printed("0.9979 ± 0.0023", _LOCAL_SQ["corr_local_svm"], NB_LOCAL_SQ),
        "global_fin": _printed("0.654 ± 0.303", _LOCAL_SQ["corr_fin"], NB_LOCAL_SQ),
        "local_fin": PaperValue("0.9979 (mean)", 0.9979, Sampling(k=10, k_known=True), NB_LOCAL_SQ),
    },
    "local-ce-4-6-8-8": {
        "global": PaperValue(
            "0.752 ± 0.28",
            0.752,
            MeanStd(std=0.28, n=10),
            _REPO + "local_corr_cyc_ce_0.1_n4T6K8d8_pos.pdf" + _AT,
        ),
        "local": _figure(
            "0.9886", 0.9886, _REPO + "local_corr_cyc_ce_0.1_n4T6K8d8_pos.pdf" + _AT, tol=_PDF
        ),
        "gap_global": _figure(
            "~7.6", 7.6, _REPO + "local_norm_diff_cyc_ce_0.1_n4T6K8d8_pos.pdf" + _AT_GAP, tol=0.05
        ),
        "gap_local": _figure(
            "~0.1", 0.1, _REPO + "local_norm_diff_cyc_ce_0.1_n4T6K8d8_pos.pdf" + _AT_GAP, tol=0.05
        ),
    },
    "local-squared-4-6-8-8": {
        "global": PaperValue(
            "0.703 ± 0.285",
            0.703,
            MeanStd(std=0.285, n=10),
            _REPO + "local_corr_cyc_ls_0.1_n4T6K8d8_pos.pdf" + _AT,
        ),
        "local": _figure(
            "0.9954", 0.9954, _REPO + "local_corr_cyc_ls_0.1_n4T6K8d8_pos.pdf" + _AT, tol=_PDF
        ),
        "gap_global": _figure(
            "~17.4",
            17.4,
            _REPO + "local_norm_diff_cyc_ls_0.1_n4T6K8d8_pos.pdf" + _AT_GAP_LS,
            tol=0.05,
        ),
        "gap_local": _figure(
            "0.022",
            0.022,
            _REPO + "local_norm_diff_cyc_ls_0.1_n4T6K8d8_pos.pdf" + _AT_GAP_LS,
            tol=0.0005,
        ),
    },
}
"""Per setting, the authors' numbers by role."""

LOCAL_THRESHOLD = 0.2
"""The local settings' qualitative claim: corr(W, W_svm^loc) - corr(W, W_svm) > 0.2."""


def local_claim(name: str) -> PaperValue:
    """The qualitative claim of a local setting, tested on the authors' own values first.

    Where the authors print per-trial values (local-ce at 0d105ef, local-squared at 514473c) the
    test runs on their per-trial differences; where only the means of a figure are known, on the
    difference of the means.
    """
    per_trial = {"local-ce": (_LOCAL_CE, NB_LOCAL_CE), "local-squared": (_LOCAL_SQ, NB_LOCAL_SQ)}
    if name in per_trial:
        metrics, origin = per_trial[name]
        authors = tuple(
            float(v)
            for v in np.asarray(metrics["corr_local_svm"]) - np.asarray(metrics["corr_svm"])
        )
    else:
        paper = PAPER.get(name, {})
        if "local" in paper and "global" in paper:
            authors = (paper["local"].value - paper["global"].value,)
            origin = "difference of the means of " + paper["local"].source
        else:
            authors, origin = (), ""
    return PaperValue(
        "global-TPG corr stalls well below the local one: local − global > 0.2",
        LOCAL_THRESHOLD,
        AtLeast(authors=authors, authors_source=origin),
        "the paper's claim (every local figure)",
    )


QUALITATIVE_LOCAL = local_claim("local-ce-4-6-8-8")
"""The local claim tested on the means of a figure (kept for callers of the old name)."""

LOCAL_GAP = ("gap_global", "gap_local")
AUTHORS_LOCAL_GAP = _DIFFERENT_GAP
"""Why the local norm-gap rows are not comparable with ours."""

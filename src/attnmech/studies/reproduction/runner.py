"""The runner: :func:`run_setting` for any setting, and :func:`run_reproduction`, the keyword
form of :func:`attnmech.studies.reproduction.study.run` (the whole reproduction).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from .execute import FIRST_TRIALS, measure_row, run_setting, with_data
from .results import SettingResult
from .settings import Setting
from .study import ReproductionConfig, run

__all__ = [
    "FIRST_TRIALS",
    "measure_row",
    "run_setting",
    "run_experiment",
    "run_reproduction",
    "with_data",
    "Progress",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str], Any]


def run_experiment(
    spec: Setting, *, trials: int = 10, steps_scale: float = 1.0
) -> tuple[SettingResult, dict[str, Any]]:
    """Alias of :func:`run_setting` (the name of the single-module version)."""
    return run_setting(spec, trials=trials, steps_scale=steps_scale)


def run_reproduction(
    out_dir: str | os.PathLike[str],
    *,
    only: str | Sequence[str] | None = None,
    trials: int = 10,
    steps_scale: float = 1.0,
    progress: Progress | None = None,
    formats: Sequence[str] = ("png", "pdf"),
    data: str | None = None,
    authors_eps: float | None = None,
) -> Any:
    """Run the paper's experiments and write figures, ``results.json`` and ``REPRODUCTION.md``.

    The old keyword form of :func:`attnmech.studies.reproduction.study.run`: it builds a
    :class:`~attnmech.studies.reproduction.study.ReproductionConfig` and calls ``run``.

    Parameters
    ----------
    out_dir : path
        Folder for every output (created if missing; files in it are replaced atomically).
    only : str or sequence of str, optional
        Run only these settings (names of
        :data:`~attnmech.studies.reproduction.EXPERIMENTS`); default
        all of them.
    trials : int, default=10
        Trials per setting (datasets with seeds ``0 .. trials - 1``).
    steps_scale : float, default=1.0
        Multiply every setting's number of steps (for quick checks; the comparison with the
        paper is meaningful at 1.0).
    progress : callable, optional
        ``progress(message)`` is called with one line of text before and after each setting.
    formats : sequence of str, default=("png", "pdf")
        Formats of every figure (the report embeds the PNGs and links the PDFs).
    data : str, optional
        The data source of every setting (default: each setting's own, ``"generated"`` for the
        paper's entries) (a key of
        :data:`~attnmech.studies.reproduction.sources.DATA_SOURCES`). ``"authors"``: the
        authors' own
        datasets and initialisations for the settings that have them (``only`` unset: the
        others are skipped and listed in the report; named in ``only``: an error), each
        setting also replayed with the authors' training (:func:`attnmech.studies.authors.
        train_authors`) and compared per trial with what their notebook prints.
    authors_eps : float, optional
        With ``data="authors"``: the eps inside the authors' ``-log(p_y + eps)`` for the
        replay (default their float64 machine epsilon; 0 for the exact log-loss).

    Returns
    -------
    ReproductionResult
        (:class:`attnmech.studies.reproduction.study.ReproductionResult`)

    Raises
    ------
    ExperimentNotFoundError
        If ``only`` names an unknown setting.
    InvalidParameterError
        If ``trials`` or ``steps_scale`` is not positive.
    """
    from ..._validation import PathLike, check_params

    check_params({"out_dir": out_dir}, {"out_dir": [PathLike()]}, where="run_reproduction")
    config = ReproductionConfig(
        only=None if only is None else ((only,) if isinstance(only, str) else tuple(only)),
        trials=trials,
        steps_scale=steps_scale,
        data=data,
        authors_eps=authors_eps,
        formats=tuple(formats),
    )
    say = progress if progress is not None else (lambda message: logger.info("%s", message))
    return run(config, out_dir=out_dir, progress=say)

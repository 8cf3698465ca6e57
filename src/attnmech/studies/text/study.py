"""The text study's run: data -> theory -> training -> held-out evaluation -> result."""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..._io import atomic_write_text, exclusive_lock
from ...data.dataset import check_memory
from ...errors import AttnmechError, FileFormatError, InvalidParameterError
from ..scaffold import (
    Progress,
    ProgressLike,
    StudyResult,
    locks_out_dir,  # one writer per output folder
    prepare_out_dir,
)
from .config import TextConfig
from .corpus import TextData, prepare_text
from .evaluation import PREDICTORS, evaluate_heldout
from .windows import position_scores, softmax_rows, window_tv

__all__ = ["TextResult", "TextRunResult", "run", "run_text", "evaluate_dir", "estimate_memory"]

logger = logging.getLogger(__name__)

LAYER_FILE = "layer.npz"
THEORY_FILE = "theory.npz"
WINDOWS_FILE = "windows.npz"
HISTORY_FILE = "history.npz"
CHECKPOINT_FILE = "checkpoint.npz"
_REDO = "run the study again into a new folder"


@dataclass(eq=False)
class TextResult(StudyResult):
    """What :func:`run` computed.

    Attributes
    ----------
    results : dict
        The content of ``results.json``.
    config : TextConfig
    vocabulary : list of str
    train_dataset : Dataset or None
    test_tokens : ndarray of int64 of shape (n_test, T), or None
    test_labels : ndarray of int64 of shape (n_test,), or None
    W : ndarray of shape (d, d), OneHotLayer, or None
        The trained layer (a :class:`~attnmech.layer.onehot.OneHotLayer` for one-hot
        embeddings: nothing ``K x K``).
    theory : Theory or None
    out_dir : Path or None
    history : dict of str to ndarray
    """

    study: ClassVar[str] = "text"

    results: dict[str, Any]
    config: TextConfig
    vocabulary: list[str] = field(default_factory=list)
    train_dataset: Any = None
    test_tokens: Any = None
    test_labels: Any = None
    W: Any = None
    theory: Any = None
    out_dir: Path | None = None
    history: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``results.json`` (``config`` included)."""
        return {**self.results, "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextResult:
        """The result of a ``results.json`` (arrays, layer and theory not loaded)."""
        data = {k: v for k, v in data.items() if k not in ("study", "attnmech_version")}
        config = TextConfig.from_dict(data.get("config", {}))
        return cls(results=dict(data), config=config)

    def report(self) -> Any:
        """The Markdown report (from the results alone)."""
        from .report import build_report

        return build_report(self.to_dict())

    def write_figures(self, out_dir: Path) -> list[Path]:
        """``graphs.png`` and ``attention.png`` (when the theory and the windows are here)."""
        from .report import attention_figure, graph_figure

        if self.theory is None:
            return []
        paths = [graph_figure(self.theory, out_dir / "graphs.png")]
        if self.test_tokens is not None and self.W is not None:
            picked = attention_figure(self, out_dir / "attention.png")
            if picked:
                paths.append(out_dir / "attention.png")
        return paths

    def write_extra(self, out_dir: Path) -> list[Path]:
        """The trained layer (``layer.npz``), the theory (``theory.npz``), the held-out and
        training windows with the vocabulary (``windows.npz``) and the metric history
        (``history.npz``), each through :func:`attnmech._persist.write` (atomic, checksummed,
        with the training data's fingerprint and the config)."""
        from ... import _persist

        fingerprint = self._fingerprint()
        meta = {"config": self.config.to_dict()}
        written = []
        if self.W is not None:
            if hasattr(self.W, "save"):
                written.append(
                    self.W.save(out_dir / LAYER_FILE, dataset_fingerprint=fingerprint, meta=meta)
                )
            else:
                written.append(
                    _persist.write(
                        out_dir / LAYER_FILE,
                        "text-layer",
                        {"W": np.asarray(self.W, dtype=np.float64)},
                        meta,
                        dataset_fingerprint=fingerprint,
                    )
                )
        if self.theory is not None:
            written.append(self.theory.save(out_dir / THEORY_FILE))
        if self.test_tokens is not None:
            arrays = {
                "test_tokens": np.asarray(self.test_tokens),
                "test_labels": np.asarray(self.test_labels),
                "vocabulary": np.array(self.vocabulary),
            }
            if self.train_dataset is not None:  # the realizable training windows
                arrays["train_tokens"] = self.train_dataset.padded()
                arrays["train_labels"] = np.asarray(self.train_dataset.labels)
            written.append(
                _persist.write(
                    out_dir / WINDOWS_FILE,
                    "text-windows",
                    arrays,
                    meta,
                    dataset_fingerprint=fingerprint,
                )
            )
        if self.history:
            written.append(
                _persist.write(
                    out_dir / HISTORY_FILE,
                    "text-history",
                    self.history,
                    meta,
                    dataset_fingerprint=fingerprint,
                )
            )
        return written

    def _fingerprint(self) -> str | None:
        return None if self.train_dataset is None else str(self.train_dataset.fingerprint())

    @classmethod
    def load_full(cls, out_dir: str | os.PathLike[str]) -> TextResult:
        """:meth:`load` plus the saved layer, theory, windows and history.

        Every file is read through :func:`attnmech._persist.read` and checked: its checksum, the
        fingerprint of the training data it was computed from (the same for all files) and the
        config it was written with (that of ``results.json``).

        Raises
        ------
        FileFormatError
            A missing, unreadable, edited or damaged file, a file of the format before checksums
            (a folder written by an earlier attnmech), or files of different runs.
        """
        from ...layer.onehot import OneHotLayer, check_fingerprint, read_layer_file
        from ...theory.solve import load_theory

        out = Path(out_dir)
        result = cls.load(out)
        windows = _read_file(out / WINDOWS_FILE, "text-windows", result.config)
        fingerprint = windows.dataset_fingerprint
        if not isinstance(fingerprint, str):
            raise FileFormatError(
                f"{out / WINDOWS_FILE} records no training-data fingerprint; {_REDO}",
                path=str(out / WINDOWS_FILE),
            )
        arrays = windows.arrays
        try:
            result.test_tokens = arrays["test_tokens"].astype(np.int64)
            result.test_labels = arrays["test_labels"].astype(np.int64)
            result.vocabulary = [str(w) for w in arrays["vocabulary"]]
        except KeyError as exc:
            raise FileFormatError(
                f"{out / WINDOWS_FILE} lacks {exc}; {_REDO}", path=str(out / WINDOWS_FILE)
            ) from None
        if (out / THEORY_FILE).is_file():
            result.theory = load_theory(out / THEORY_FILE)
            result.train_dataset = result.theory.dataset
            if str(result.theory.fingerprint) != fingerprint:
                raise FileFormatError(
                    f"{out / THEORY_FILE} was solved on other training data than "
                    f"{out / WINDOWS_FILE} (files of different runs); {_REDO}",
                    path=str(out / THEORY_FILE),
                )
        layer_path = out / LAYER_FILE
        if result.config.embeddings == "onehot":
            stored = read_layer_file(layer_path, fingerprint, _REDO)
            _check_config(stored, result.config)
            result.W = OneHotLayer.from_stored(stored)
        else:
            stored = read_layer_file(layer_path, fingerprint, _REDO, kind="text-layer")
            _check_config(stored, result.config)
            if "W" not in stored.arrays:
                raise FileFormatError(f"{layer_path} holds no W; {_REDO}", path=str(layer_path))
            result.W = stored.arrays["W"]
        if (out / HISTORY_FILE).is_file():
            history = _read_file(out / HISTORY_FILE, "text-history", result.config)
            check_fingerprint(history, fingerprint, _REDO)
            result.history = history.arrays
        result.out_dir = out
        return result


def _read_file(path: Path, kind: str, config: TextConfig) -> Any:
    """A file of a saved run through :func:`attnmech._persist.read`; a file of the format before
    checksums, or one written under another config, is refused (FileFormatError)."""
    from ... import _persist

    stored = _persist.read(path, kind, hint=_REDO)
    if stored.legacy:
        raise FileFormatError(
            f"{path} was written by an earlier attnmech (before checksums and fingerprints) and "
            f"cannot be checked; {_REDO}",
            path=str(path),
        )
    _check_config(stored, config)
    return stored


def _check_config(stored: Any, config: TextConfig) -> None:
    saved = stored.meta.get("config")
    if not isinstance(saved, dict):
        raise FileFormatError(f"{stored.path} records no config; {_REDO}", path=str(stored.path))
    differ = config.differing_fields(saved)
    if differ:
        raise FileFormatError(
            f"{stored.path} was written under another config than results.json (it differs in "
            f"{', '.join(differ)}): files of different runs; {_REDO}",
            path=str(stored.path),
        )


TextRunResult = TextResult
"""Deprecated name of :class:`TextResult`."""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------- memory
def estimate_memory(data: TextData, config: TextConfig) -> float:
    """Bytes a run needs beyond the corpus, estimated from the number of windows and (token,
    query) pairs (one-hot: nothing grows with ``K^2``; dense embeddings: ``d x d`` matrices)."""
    ds = data.train_dataset
    n, T = ds.n_samples, ds.max_length
    n_test = data.test_labels.size
    pairs = n * T  # an upper bound on the distinct (token, query) pairs
    K = data.vocab_size
    windows = 8.0 * n * T * 24  # the model's (n, T) index tensors and the metrics' tables
    per_pair = 8.0 * pairs * 16  # pair scores, gradients, optimiser state, metric lookups
    evaluation = 8.0 * n_test * T * T * 4 + 8.0 * 4 * min(n_test, max(1, 2_000_000 // K)) * K
    total = windows + per_pair + evaluation + 8.0 * 4 * 2_000_000
    d = config.embedding_dim
    if d is not None:
        total += 8.0 * d * d * 12 + 8.0 * K * d * 4
    return total


# ---------------------------------------------------------------------------------- run
@locks_out_dir("text run folder")
def run(
    config: TextConfig,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: ProgressLike = None,
    resume: bool = False,
) -> TextResult:
    """Train on the first part of a corpus and predict its held-out end.

    Parameters
    ----------
    config : TextConfig
        ``config.corpus`` names the text file or folder.
    out_dir : path-like, optional
        Where to write ``results.json``, ``REPORT.md``, the figures, the trained layer
        (``layer.npz``), the theory (``theory.npz``), the held-out windows (``windows.npz``)
        and the metric history (``history.npz``). Checked for writability before any work.
    progress : None, bool, callable or Progress
        See :meth:`attnmech.studies.scaffold.Progress.coerce` (bars on a terminal only).
    resume : bool, default=False
        With ``out_dir``: when it holds a finished run of the same config, re-evaluate its saved
        layer (:func:`evaluate_dir`); when it holds the checkpoint of an interrupted training
        (``checkpoint.npz``, see ``TextConfig.checkpoint_every``), continue that training from
        it (the result is the same, bit for bit, as an uninterrupted run); otherwise start from
        step 0. A finished run or checkpoint of another config is refused, naming the options
        that differ.

    Returns
    -------
    TextResult

    Raises
    ------
    FileFormatError
        Unreadable corpus.
    InvalidDatasetError
        Too little text, or no realizable training window.
    InvalidParameterError
        No corpus, a run estimated to need more memory than the limit (refused before the
        theory and the training), or ``resume`` onto a run of another config.
    CheckpointError
        ``resume`` with a checkpoint that is unreadable, edited, or of other training data.
    OutputError
        ``out_dir`` cannot be written (checked before any work).
    """
    from threadpoolctl import threadpool_limits

    if not isinstance(config, TextConfig):
        raise InvalidParameterError(f"config must be a TextConfig, got {type(config).__name__}")
    if config.corpus is None:
        raise InvalidParameterError("TextConfig.corpus is required: a text file or a folder")
    prog = Progress.coerce(progress)
    started = time.perf_counter()
    out_path = prepare_out_dir(out_dir, what="text run output") if out_dir is not None else None
    checkpoint = None
    if out_path is not None and config.checkpoint_period > 0:
        checkpoint = out_path / CHECKPOINT_FILE
    resuming = False
    if resume and out_path is not None:
        finished = _finished_config(out_path)
        if finished is not None and (out_path / LAYER_FILE).is_file():
            differ = config.differing_fields(finished)
            if differ:
                raise InvalidParameterError(
                    f"cannot resume: {out_path} holds a finished run of another config (it "
                    f"differs in {', '.join(differ)}); give the same options, or another --out"
                )
            prog.message("text: re-evaluating the saved layer (resume)")
            return evaluate_dir(out_path, progress=prog)
        if (out_path / CHECKPOINT_FILE).is_file():
            from ...layer.onehot import read_checkpoint

            stored = read_checkpoint(out_path / CHECKPOINT_FILE)
            saved_config = stored.meta.get("caller", {}).get("config")
            differ = config.differing_fields(saved_config or {})
            if differ:
                raise InvalidParameterError(
                    f"cannot resume: the checkpoint {out_path / CHECKPOINT_FILE} was written by a "
                    f"run of another config (it differs in {', '.join(differ)}); give the same "
                    "options, or run without --resume to start over"
                )
            if checkpoint is None:  # checkpoint_every=0 now: still read the one there
                checkpoint = out_path / CHECKPOINT_FILE
            resuming = True
            prog.message(
                f"text: resuming the training from step {stored.meta.get('step')} "
                f"({out_path / CHECKPOINT_FILE})"
            )
        else:
            prog.message(f"text: no checkpoint in {out_path}; training from step 0")
    elif checkpoint is not None and checkpoint.is_file():
        prog.message(f"text: starting over; {checkpoint} will be replaced")
    timings: dict[str, float] = {}
    with prog.stage(5, "text", unit="stage") as advance:
        # ---- data
        t0 = time.perf_counter()
        data = prepare_text(None, config)
        timings["data"] = time.perf_counter() - t0
        check_memory(
            estimate_memory(data, config),
            f"the text run (K = {data.vocab_size}, {data.train_dataset.n_samples} training "
            f"windows of {config.seq_len})",
            "use a smaller --K, --T, a larger --stride or a shorter corpus",
        )
        prog.message(
            f"text: {data.train_labels.size} training windows "
            f"({data.train_dataset.n_samples} realizable), {data.test_labels.size} held-out, "
            f"K={data.vocab_size}"
        )
        advance(1)

        # ---- theory
        from ...theory.solve import solve

        t0 = time.perf_counter()
        theory = None
        theory_error = None
        try:
            with threadpool_limits(limits=1):
                theory = solve(data.train_dataset)
        except AttnmechError as exc:  # e.g. coupled embeddings too large: say so, go on
            theory_error = str(exc)
            logger.warning("text: the theory could not be solved: %s", exc)
        timings["theory"] = time.perf_counter() - t0
        advance(1)

        # ---- training
        t0 = time.perf_counter()
        W, history, steps_run, optimizer = _train_layer(
            data, config, theory, prog.bar, checkpoint=checkpoint, resume=resuming
        )
        timings["train"] = time.perf_counter() - t0
        advance(1)

        # ---- evaluation
        t0 = time.perf_counter()
        result = _evaluate(
            data=data,
            config=config,
            theory=theory,
            theory_error=theory_error,
            W=W,
            history=history,
            steps_run=steps_run,
            timings=timings,
            optimizer=optimizer,
        )
        timings["evaluate"] = time.perf_counter() - t0
        advance(1)
        result.results["timings"] = timings
        result.results["wall_seconds"] = time.perf_counter() - started
        result.results["peak_rss_mb"] = _peak_rss_mb()
        if out_path is not None:
            t0 = time.perf_counter()
            result.out_dir = out_path
            result.write(out_path)
            timings["write"] = time.perf_counter() - t0
            result.results["wall_seconds"] = time.perf_counter() - started
            result.results["peak_rss_mb"] = _peak_rss_mb()
            _rewrite_results(result, out_path)
            if checkpoint is not None:  # the run is written: its checkpoint is not needed
                checkpoint.unlink(missing_ok=True)
        advance(1)
    return result


def _finished_config(out: Path) -> dict[str, Any] | None:
    """The config of the finished run in ``out`` (its results.json), None if there is none."""
    try:
        saved = TextResult.load(out)
    except AttnmechError:
        return None
    return saved.config.to_dict()


def _rewrite_results(result: TextResult, out: Path) -> None:
    """results.json again, with the final wall time and peak RSS (the report keeps its own)."""
    from ..._version import __version__
    from ..report import to_jsonable

    payload = {"study": result.study, "attnmech_version": __version__, **result.to_dict()}
    text = json.dumps(to_jsonable(payload), indent=2, allow_nan=False, ensure_ascii=False)
    atomic_write_text(out / "results.json", text + "\n")


def _train_layer(
    data: TextData,
    config: TextConfig,
    theory: Any,
    bar: bool,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
) -> tuple[Any, dict[str, np.ndarray], int, str]:
    from ...layer.onehot import ONEHOT_RULES, train_onehot
    from ...layer.training import TrainConfig, train

    log_every = config.log_every or max(config.steps // 20, 1)
    track_finite = config.finite_trajectory
    if track_finite is None:
        track_finite = data.vocab_size <= 2000
    optimizer, options = config.optimizer, {}
    ds = data.train_dataset
    token_theory = theory if theory is not None and _token_space(theory) else None
    if optimizer in _NEEDS_THEORY and (token_theory is None or not ds.is_onehot):
        logger.warning("text: %s needs one-hot embeddings and a theory; ngd instead", optimizer)
        optimizer = "ngd"
    if optimizer in _NEEDS_THEORY and token_theory is not None:  # the infimum of the risk
        options = {"lower_bound": float(token_theory.finite.loss)}
    train_config = TrainConfig(
        optimizer=optimizer,
        optimizer_options=options,
        learning_rate=config.learning_rate,
        steps=config.steps,
        log_every=log_every,
        seed=config.seed,
        init=config.init,
        num_threads=config.num_threads,
    )
    if ds.is_onehot and optimizer in ONEHOT_RULES:
        run_ = train_onehot(
            ds,
            train_config,
            theory=token_theory,
            progress=bar,
            finite_path=bool(track_finite),
            checkpoint_path=checkpoint,
            checkpoint_every=config.checkpoint_period if checkpoint is not None else 0,
            resume=resume,
            checkpoint_meta={"config": config.to_dict()},
        )
        return run_.layer, dict(run_.history), int(run_.num_steps), optimizer
    if resume:
        raise InvalidParameterError(
            "cannot resume: only one-hot runs trained on the pair entries are checkpointed "
            f"(this run: embeddings {config.embeddings!r}, optimizer {optimizer!r})"
        )
    trained = train(ds, train_config, theory=theory, progress=bar, finite_path=bool(track_finite))
    return (
        np.asarray(trained.W, dtype=np.float64),
        {k: np.asarray(v) for k, v in trained.history.items()},
        int(trained.num_steps),
        optimizer,
    )


_NEEDS_THEORY = ("split-ngd", "polyak-capped")
"""Rules that take the finite part's loss (and split-ngd its S_fin) from the theory."""


def _token_space(theory: Any) -> bool:
    from ...theory.tokenspace import TokenFiniteResult, TokenSVMResult

    return isinstance(theory.svm, TokenSVMResult) and isinstance(theory.finite, TokenFiniteResult)


def _last(history: Mapping[str, np.ndarray], key: str) -> float | None:
    if key not in history:
        return None
    values = np.asarray(history[key])
    value = float(values.reshape(len(values), -1)[-1, 0])
    return value if np.isfinite(value) else None


def _seen_pairs(ds: Any, K: int) -> np.ndarray:
    """Sorted keys ``query * K + token`` of the training windows' (token, query) pairs."""
    tokens = ds.padded()
    queries = ds.last_tokens
    mask = tokens >= 0
    return np.unique((queries[:, None] * K + tokens)[mask])


def _evaluate(
    *,
    data: TextData,
    config: TextConfig,
    theory: Any,
    theory_error: str | None,
    W: Any,
    history: dict[str, np.ndarray],
    steps_run: int,
    timings: dict[str, float],
    optimizer: str | None = None,
) -> TextResult:
    from .report import generated_text, graph_stats, largest_sccs

    K, unk = data.vocab_size, data.unk
    train_ds = data.train_dataset
    test_windows, test_labels = data.test_tokens, data.test_labels
    if hasattr(W, "with_entries"):  # one-hot: store the held-out pairs' initial values too
        q = np.broadcast_to(test_windows[:, -1:], test_windows.shape)
        W = W.with_entries((test_windows * K + q).ravel())
    fitted_R = _last(history, "fitted_R")
    E = train_ds.embedding_table
    offsets = None
    if theory is not None and hasattr(W, "initial"):  # the automaton keeping initial scores
        from .evaluation import initial_offsets

        offsets, _ = initial_offsets(
            train_ds.padded(), train_ds.last_tokens, W.initial, test_windows, K
        )
    heldout = evaluate_heldout(
        test_windows,
        test_labels,
        W=W,
        E=E,
        theory=theory,
        fitted_R=fitted_R,
        unigram=data.unigram,
        bigram=data.bigram,
        unk=unk,
        exclude_unk=config.unk == "drop-labels",
        train_stream=data.train_stream,
        seen_pairs=_seen_pairs(train_ds, K) if theory is not None else None,
        initial_offsets=offsets,
    )
    heldout.pop("window_category", None)
    in_window = (test_windows == test_labels[:, None]).any(axis=1)
    train_tv = None
    if theory is not None:  # TV(layer, automaton at R = infinity) on the training windows
        X = train_ds.padded()
        layer_w = softmax_rows(position_scores(W, X, E))
        auto_w = np.asarray(theory.automaton().position_weights(X, X[:, -1]))
        train_tv = float(window_tv(layer_w, auto_w, X).mean())
    tv_fitted = _last(history, "automaton_tv")
    results: dict[str, Any] = {
        "realizable_fraction": float(in_window.mean()),
        "n_train": int(train_ds.n_samples),
        "n_test": int(test_labels.size),
        "theory": {"solve_seconds": timings.get("theory"), "error": theory_error},
        "train": {
            "corr_svm": _last(history, "corr_svm"),
            "top_scc_mass": _last(history, "top_scc_mass"),
            "tv_layer_automaton": train_tv,
            "tv_layer_automaton_fitted_R": tv_fitted,
            "tv_automaton": tv_fitted,
            "fitted_R": fitted_R,
            "fin_gap": _last(history, "fin_gap"),
            "loss": _last(history, "loss"),
            "norm": _last(history, "norm"),
            "seconds": timings.get("train"),
            "steps": steps_run,
            "optimizer": optimizer or config.optimizer,
        },
        "heldout": {
            "accuracy": {name: heldout["accuracy"]["all"].get(name) for name in PREDICTORS},
            "log_loss": {name: heldout["log_loss"]["all"].get(name) for name in PREDICTORS},
            "tv_layer_automaton": (heldout.get("tv_layer_automaton") or {}).get("all"),
            "tv_layer_automaton_fitted_R": (heldout.get("tv_layer_automaton_fitted_R") or {}).get(
                "all"
            ),
            "decided_fraction": heldout.get("decided_fraction"),
            "tv_decided": heldout.get("tv_decided"),
            "tv_undecided": heldout.get("tv_undecided"),
            "tv_layer_automaton_init": (heldout.get("tv_layer_automaton_init") or {}).get("all"),
            "tv_decided_automaton_init": heldout.get("tv_decided_automaton_init"),
            "tv_undecided_automaton_init": heldout.get("tv_undecided_automaton_init"),
            "categories": heldout.get("categories"),
            "warnings": heldout.get("warnings", []),
            "subsets": heldout,
        },
        "data": {
            "corpus": str(config.corpus),
            "files": data.files,
            "tokens": data.n_tokens,
            "vocab_size": K,
            "seq_len": config.seq_len,
            "stride": data.stride,
            "n_train_windows": int(data.train_labels.size),
            "train_realizable_fraction": float(data.train_realizable.mean()),
        },
    }
    if theory is not None:
        graphs = theory.graphs
        results["theory"].update(
            {
                "svm_status": theory.svm.status.value,
                "fin_status": theory.finite.status.value,
                "n_sccs": int(graphs.n_sccs),
                "n_nontrivial_sccs": int((graphs.scc_size > 1).sum()),
                "dim_S_fin": int(theory.finite.dimension),
                "w_svm_fro_norm": float(theory.svm.norm),
                "fin_norm": float(theory.finite.norm),
                **graph_stats(theory),
            }
        )
        results["largest_sccs"] = largest_sccs(theory, data.vocabulary)
    result = TextResult(
        results=results,
        config=config,
        vocabulary=data.vocabulary,
        train_dataset=train_ds,
        test_tokens=test_windows,
        test_labels=test_labels,
        W=W,
        theory=theory,
        history=history,
    )
    results["generated"] = generated_text(result)
    return result


def evaluate_dir(
    out_dir: str | os.PathLike[str], *, progress: ProgressLike = None, write: bool = True
) -> TextResult:
    """Evaluate the layer saved in ``out_dir`` again (``attnmech text --evaluate DIR``).

    Reads the config, the layer, the theory and the held-out windows written by :func:`run`,
    recomputes the held-out evaluation (the corpus is read again for the training counts of the
    baselines) and, with ``write``, rewrites the folder's results and report.

    Raises
    ------
    FileFormatError
        A missing or unreadable file of the run.
    OutputError
        With ``write``, another attnmech process is writing ``out_dir``.
    """
    if not write:
        return _evaluate_dir(out_dir, progress=progress, write=False)
    with exclusive_lock(out_dir, what="text run folder"):
        return _evaluate_dir(out_dir, progress=progress, write=True)


def _evaluate_dir(
    out_dir: str | os.PathLike[str], *, progress: ProgressLike, write: bool
) -> TextResult:
    prog = Progress.coerce(progress)
    out = Path(out_dir)
    saved = TextResult.load_full(out)
    config = saved.config
    started = time.perf_counter()
    data = prepare_text(None, config)
    if saved.train_dataset is not None and (
        data.train_dataset.fingerprint() != saved.train_dataset.fingerprint()
    ):
        raise FileFormatError(
            f"the training windows of {config.corpus} under the saved config differ from those "
            f"the run in {out} was trained on (the corpus changed?); {_REDO}",
            path=str(out / THEORY_FILE),
        )
    if not np.array_equal(data.test_tokens, saved.test_tokens):
        raise FileFormatError(
            f"{out / WINDOWS_FILE} does not match the windows of {config.corpus} under the saved "
            "config (the corpus changed?); run the study again",
            path=str(out / WINDOWS_FILE),
        )
    prog.message(f"text: evaluating the layer saved in {out}")
    old = saved.results
    timings = dict(old.get("timings", {}))
    result = _evaluate(
        data=data,
        config=config,
        theory=saved.theory,
        theory_error=old.get("theory", {}).get("error"),
        W=saved.W,
        history=saved.history,
        steps_run=int(old.get("train", {}).get("steps", config.steps)),
        timings=timings,
        optimizer=old.get("train", {}).get("optimizer"),
    )
    result.results["train"]["seconds"] = old.get("train", {}).get("seconds")
    result.results["timings"] = timings
    result.results["evaluated_seconds"] = time.perf_counter() - started
    result.results["wall_seconds"] = old.get("wall_seconds")
    result.results["peak_rss_mb"] = _peak_rss_mb()
    result.out_dir = out
    if write:
        result.write(out)
    return result


def run_text(
    corpus: str | os.PathLike[str],
    config: TextConfig | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: ProgressLike = False,
) -> TextResult:
    """:func:`run` with the corpus given apart from the config (the earlier signature)."""
    config = TextConfig() if config is None else config
    return run(config.with_corpus(corpus), out_dir=out_dir, progress=progress)

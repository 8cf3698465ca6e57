"""One entry point for the theory: graphs, ``W_svm``, ``W_fin`` and the automaton of a dataset.

:func:`solve` computes a :class:`Theory`; :meth:`Theory.save` writes it and :func:`load_theory`
reads it back as the same class, so a saved theory goes wherever a solved one does
(``train(..., theory=...)``, ``verify(...)``, ``.automaton()``). The file keeps what is expensive
(both solutions with their solver reports) and the dataset; the graphs and the reduced dataset are
rebuilt on loading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._choices import SVM_NORMS
from .. import _persist
from .._results import SolverStats, SolveStatus, readonly
from .automaton import Automaton
from ..data.dataset import Dataset
from ..errors import (
    FileFormatError,
    InvalidDatasetError,
    InvalidParameterError,
    NotFittedError,
    SolverError,
)
from .check import check_theory, theory_problems
from .finite import FiniteResult, reduce_dataset, solve_finite
from .graphs import PriorityGraphs, build_priority_graphs
from .norms import parse_norm, solve_norm_svm
from .graphsvm import GraphSVMResult, SVMConstraints
from .._validation import FLAG, validate_params
from .norms import NormSpec as NormSpecType

if TYPE_CHECKING:
    from .tokenspace import TokenFiniteResult, TokenSVMResult

__all__ = [
    "Theory",
    "solve",
    "load_theory",
    "check_theory",
    "theory_problems",
    "AttentionTheory",
    "SVM_NORMS",
    "THEORY_FORMAT",
]

THEORY_FORMAT = "attnmech-theory-v3"  # written into every theory file as meta["format"]
OLDEST_THEORY_VERSION = 2  # theory files this version still reads (v2: no checksum)


@dataclass(frozen=True, slots=True, eq=False)
class Theory:
    """What the theory predicts for a dataset (docs/theory.md#token-priority-graphs, #graph-svm,
    #the-finite-part, #the-theorem and #the-automaton).

    Attributes
    ----------
    dataset : Dataset
    graphs : PriorityGraphs
    svm : GraphSVMResult
    finite : FiniteResult
    svm_norm : {"fro", "nuclear"}
        Which Graph-SVM ``svm`` holds.
    source : str or None
        The file this theory was loaded from (None when solved in this process).
    """

    dataset: Dataset
    graphs: PriorityGraphs
    svm: GraphSVMResult | TokenSVMResult
    finite: FiniteResult | TokenFiniteResult
    svm_norm: str = "fro"
    source: str | None = None

    @property
    def W_svm(self) -> np.ndarray:
        """ndarray of shape (d, d): the Graph-SVM direction (hard retrieval)."""
        return self.svm.W_svm

    @property
    def W_fin(self) -> np.ndarray:
        """ndarray of shape (d, d): the finite part (soft composition)."""
        return self.finite.W_fin

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the dataset this theory was solved for (see :meth:`Dataset.fingerprint`)."""
        return self.dataset.fingerprint()

    def check_dataset(self, dataset: Dataset) -> None:
        """Raise unless ``dataset`` is the one this theory was solved for.

        Raises
        ------
        InvalidParameterError
            If the fingerprints differ; the message names the theory file and says how to solve
            again.
        """
        _check_fingerprint(self.fingerprint, dataset, self.source)

    def automaton(self, *, tie_tol: float = 1e-6) -> Automaton:
        """The automaton defined by ``W_svm`` and ``W_fin`` (docs/theory.md#the-automaton).

        For token-space solutions it reads the sparse score tables (nothing ``K x K``).
        """
        from .tokenspace import TokenAutomaton, TokenFiniteResult, TokenSVMResult

        if isinstance(self.svm, TokenSVMResult) and isinstance(self.finite, TokenFiniteResult):
            return TokenAutomaton(self.svm.scores, self.finite.scores, tie_tol=tie_tol)
        return Automaton(self.W_svm, self.W_fin, self.dataset.embeddings, tie_tol=tie_tol)

    def summary(self) -> str:
        """A few lines: graphs, both solves, norms and accuracy."""
        s, f = self.svm, self.finite
        nuclear = f" ({self.svm_norm} norm)" if self.svm_norm != "fro" else ""
        return "\n".join(
            [
                f"dataset: {self.dataset!r}",
                f"graphs: {self.graphs.summary(max_queries=0).splitlines()[0]}",
                f"W_svm{nuclear}: "
                f"{s.status.value}, ||W_svm||_F = {s.norm:.6g}, "
                f"{s.constraints.n_constraints} constraints ({s.constraints.n_original} edges), "
                f"max violation {s.max_violation:.1e}, relative gap {s.relative_gap:.1e}, "
                f"{s.solver_stats.solve_time:.3f} s",
                f"W_fin: {f.status.value}, ||W_fin|| = {f.norm:.6g}, "
                f"dim S_fin = {f.dimension}, gradient norm {f.gradient_norm:.1e}, "
                f"{f.solver_stats.num_iters} Newton steps, {f.solver_stats.solve_time:.3f} s",
            ]
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the theory to ``path`` (.npz, atomically); :func:`load_theory` reads it back.

        Members: ``W_svm``, ``W_fin``, ``embeddings`` (shape (0, 0) for one-hot embeddings,
        with ``meta["embeddings_kind"] = "onehot"``); for a theory solved in token space
        (:mod:`attnmech.theory.tokenspace`) the sparse score tables
        ``svm_score_{query,token,value}`` and ``fin_score_{query,token,value}`` replace ``W_svm``,
        ``W_fin`` and ``fin_frame`` (nothing ``d x d`` is written); the dataset (``dataset_tokens``,
        ``dataset_offsets``, ``dataset_labels``); the Graph-SVM report (``svm_query``,
        ``svm_i``, ``svm_j``, ``svm_strict``, ``svm_margins``, ``svm_dual_values``,
        ``svm_active``, ``svm_edge_margins``, ``svm_edge_strict``); the finite part
        (``fin_generator_query``, ``fin_generator_i``, ``fin_generator_j``,
        ``fin_coefficients``, ``fin_frame``, the ``S_fin`` frame); ``meta`` (JSON: format,
        fingerprint, svm norm, statuses, messages, scalars and solver statistics).

        Raises
        ------
        InvalidParameterError
            If ``path`` does not end in ``.npz``.
        OutputError
            If the file cannot be written.
        """
        path = Path(path)
        if path.suffix != ".npz":
            raise InvalidParameterError(f"theory files are .npz; got {path}, use a .npz name")
        s, f, ds = self.svm, self.finite, self.dataset
        meta = {
            "svm_norm": self.svm_norm,
            "cyclic": self.graphs.is_cyclic,
            "svm_unique": s.unique,
            "svm_tie_break": s.tie_break,
            "svm": {
                "method": getattr(s, "method", "active-set"),
                "relative_violation": getattr(s, "relative_violation", 0.0),
                "status": s.status.value,
                "message": s.message,
                "n_original": s.constraints.n_original,
                "max_violation": s.max_violation,
                "duality_gap": s.duality_gap,
                "relative_gap": s.relative_gap,
                "stats": _stats_to_json(s.solver_stats),
            },
            "finite": {
                "status": f.status.value,
                "message": f.message,
                "gradient_norm": f.gradient_norm,
                "loss": f.loss,
                "stats": _stats_to_json(f.solver_stats),
            },
        }
        from .tokenspace import TokenFiniteResult, TokenSVMResult

        token_space = isinstance(s, TokenSVMResult) and isinstance(f, TokenFiniteResult)
        meta["token_space"] = token_space
        meta["embeddings_kind"] = ds.embeddings_kind
        meta["vocab_size"] = ds.vocab_size
        if token_space:
            assert isinstance(s, TokenSVMResult) and isinstance(f, TokenFiniteResult)
            solution: dict[str, np.ndarray] = {
                "svm_score_query": s.scores.query,
                "svm_score_token": s.scores.token,
                "svm_score_value": s.scores.value,
                "fin_score_query": f.scores.query,
                "fin_score_token": f.scores.token,
                "fin_score_value": f.scores.value,
            }
        else:
            solution = {"W_svm": s.W_svm, "W_fin": f.W_fin, "fin_frame": f._frame}  # type: ignore[union-attr]
        embeddings = np.zeros((0, 0)) if ds.is_onehot else np.asarray(ds.embedding_table)
        arrays = dict(
            **solution,
            embeddings=embeddings,
            dataset_tokens=ds.tokens,
            dataset_offsets=ds.offsets,
            dataset_labels=ds.labels,
            svm_query=s.constraints.query,
            svm_i=s.constraints.i,
            svm_j=s.constraints.j,
            svm_strict=s.constraints.strict,
            svm_margins=s.margins,
            svm_dual_values=s.dual_values,
            svm_active=s.active,
            svm_edge_margins=s.edge_margins,
            svm_edge_strict=s.edge_strict,
            fin_generator_query=f.generator_query,
            fin_generator_i=f.generator_i,
            fin_generator_j=f.generator_j,
            fin_coefficients=f.coefficients,
        )
        _persist.write(path, "theory", arrays, meta, dataset_fingerprint=self.fingerprint)
        return path

    def __repr__(self) -> str:
        s, f = self.svm, self.finite
        where = f", source={Path(self.source).name!r}" if self.source else ""
        return (
            f"Theory({self.dataset!r}, svm_norm={self.svm_norm!r}, "
            f"svm={s.status.value} ||W_svm||={s.norm:.4g}, "
            f"finite={f.status.value} ||W_fin||={f.norm:.4g} dim S_fin={f.dimension}, "
            f"cyclic={self.graphs.is_cyclic}{where})"
        )


def _check_fingerprint(expected: str, dataset: Any, source: str | None) -> None:
    if not isinstance(dataset, Dataset):
        raise InvalidDatasetError(
            f"expected an attnmech.Dataset to check against the theory, got "
            f"{type(dataset).__name__}"
        )
    found = dataset.fingerprint()
    if found != expected:
        name = Path(source).name if source else "this theory"
        target = source or "theory.npz"
        raise InvalidParameterError(
            f"{name} was solved for another dataset (fingerprint {expected[:12]}... vs "
            f"{found[:12]}...); solve again with attnmech solve DATA -o {target}"
        )


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _stats_to_json(stats: SolverStats) -> dict[str, Any]:
    return {
        "solver_name": stats.solver_name,
        "solve_time": stats.solve_time,
        "setup_time": stats.setup_time,
        "num_iters": stats.num_iters,
        "extra_stats": _json_safe(stats.extra_stats),
    }


def _stats_from_json(data: dict[str, Any]) -> SolverStats:
    return SolverStats(
        solver_name=str(data["solver_name"]),
        solve_time=float(data["solve_time"]),
        setup_time=float(data["setup_time"]),
        num_iters=int(data["num_iters"]),
        extra_stats=dict(data.get("extra_stats", {})),
    )


_DENSE_ARRAYS = {"W_svm": 2, "W_fin": 2, "fin_frame": 2}
_TOKEN_ARRAYS = {
    f"{part}_score_{field}": 1 for part in ("svm", "fin") for field in ("query", "token", "value")
}
_ARRAYS = {
    "embeddings": 2,
    "dataset_tokens": 1,
    "dataset_offsets": 1,
    "dataset_labels": 1,
    "svm_query": 1,
    "svm_i": 1,
    "svm_j": 1,
    "svm_strict": 1,
    "svm_margins": 1,
    "svm_dual_values": 1,
    "svm_active": 1,
    "svm_edge_margins": 1,
    "svm_edge_strict": 1,
    "fin_generator_query": 1,
    "fin_generator_i": 1,
    "fin_generator_j": 1,
    "fin_coefficients": 1,
}


def _read_theory_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the meta of a theory file, through :func:`attnmech._persist.read`
    (checksum verified); FileFormatError for anything else."""
    hint = "solve again with attnmech solve DATA -o " + str(path)
    stored = _persist.read(path, "theory", what="theory file", hint=hint)
    arrays, meta = stored.arrays, dict(stored.meta)
    if not stored.meta or not ({"W_svm", "svm_score_value"} & set(arrays)):
        raise FileFormatError(
            f"{path} is not a theory file (it has no 'W_svm' or 'svm_score_value' and no 'meta' "
            f"member); {hint}",
            str(path),
        )
    if stored.version < OLDEST_THEORY_VERSION:
        raise FileFormatError(
            f"{path} is in an older format, not attnmech-theory-v{OLDEST_THEORY_VERSION} or "
            f"newer (written by another attnmech version); {hint}",
            str(path),
        )
    fingerprint = stored.dataset_fingerprint or meta.get("fingerprint")
    if not isinstance(fingerprint, str):
        raise FileFormatError(f"{path} records no dataset fingerprint; {hint}", str(path))
    meta["fingerprint"] = fingerprint
    required = {**_ARRAYS, **(_TOKEN_ARRAYS if meta.get("token_space") else _DENSE_ARRAYS)}
    missing = sorted(set(required) - set(arrays))
    if missing:
        raise FileFormatError(f"{path} lacks the members {missing}; {hint}", str(path))
    wrong = [k for k, ndim in required.items() if arrays[k].ndim != ndim]
    if wrong:
        raise FileFormatError(f"{path}: members {wrong} have the wrong shape; {hint}", str(path))
    return arrays, meta


def load_theory(path: str | os.PathLike[str], dataset: Dataset | None = None) -> Theory:
    """Read a file written by :meth:`Theory.save` back into a :class:`Theory`.

    Parameters
    ----------
    path : path-like
        A theory ``.npz``.
    dataset : Dataset, optional
        The dataset the theory was solved for. When given, it is checked against the stored
        fingerprint and becomes the theory's ``dataset``; otherwise the dataset stored in the
        file is used. Either way the graphs and the reduced dataset are rebuilt (cheap); the
        Graph-SVM and finite-part solutions are read, not solved again.

    Returns
    -------
    Theory

    Raises
    ------
    FileFormatError
        If the file is missing, empty, truncated, corrupt, not an ``.npz`` or not a theory file.
    InvalidParameterError
        If ``dataset`` is not the one the theory was solved for.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from attnmech import Dataset
    >>> ds = Dataset([[0, 1]] * 3, [0, 0, 1], np.eye(2))
    >>> path = os.path.join(tempfile.mkdtemp(), "theory.npz")
    >>> theory = load_theory(solve(ds).save(path), dataset=ds)
    >>> round(float(theory.W_fin[0, 1] - theory.W_fin[1, 1]), 6)
    0.693147
    """
    from .._validation import PathLike, check_params

    check_params({"path": path}, {"path": [PathLike()]}, where="load_theory")
    path = Path(path)
    arrays, meta = _read_theory_file(path)
    try:
        if meta.get("embeddings_kind") == "onehot":
            from ..data.dataset import OneHotEmbeddings

            table: Any = OneHotEmbeddings(int(meta["vocab_size"]))
        else:
            table = arrays["embeddings"].astype(np.float64)
        stored = Dataset._from_valid(
            arrays["dataset_tokens"].astype(np.int64),
            arrays["dataset_offsets"].astype(np.int64),
            arrays["dataset_labels"].astype(np.int64),
            table,
        )
        if stored.fingerprint() != meta["fingerprint"]:
            raise ValueError("the stored dataset does not match the stored fingerprint")
        svm_meta, fin_meta = meta["svm"], meta["finite"]
        constraints = SVMConstraints(
            readonly(arrays["svm_query"], np.int64),
            readonly(arrays["svm_i"], np.int64),
            readonly(arrays["svm_j"], np.int64),
            readonly(arrays["svm_strict"], bool),
            int(svm_meta["n_original"]),
        )
        svm_report = {
            "status": SolveStatus(svm_meta["status"]),
            "message": str(svm_meta["message"]),
            "constraints": constraints,
            "margins": readonly(arrays["svm_margins"], np.float64),
            "dual_values": readonly(arrays["svm_dual_values"], np.float64),
            "active": readonly(arrays["svm_active"], bool),
            "edge_margins": readonly(arrays["svm_edge_margins"], np.float64),
            "edge_strict": readonly(arrays["svm_edge_strict"], bool),
            "max_violation": float(svm_meta["max_violation"]),
            "duality_gap": float(svm_meta["duality_gap"]),
            "relative_gap": float(svm_meta["relative_gap"]),
            "solver_stats": _stats_from_json(svm_meta["stats"]),
            "method": str(svm_meta.get("method", "active-set")),
            "relative_violation": float(svm_meta.get("relative_violation", 0.0)),
            "unique": meta.get("svm_unique", True),
            "tie_break": meta.get("svm_tie_break"),
        }
        token_space = bool(meta.get("token_space", False))
        svm_norm = str(meta["svm_norm"])
        fin_status = SolveStatus(fin_meta["status"])
    except (KeyError, ValueError, TypeError) as exc:
        raise FileFormatError(
            f"{path} is damaged ({exc}); solve again with attnmech solve DATA -o {path}",
            str(path),
        ) from None
    source = str(path)
    if dataset is not None:
        _check_fingerprint(meta["fingerprint"], dataset, source)
    else:
        dataset = stored
    graphs = build_priority_graphs(dataset)
    if token_space:
        return _load_token_theory(path, arrays, meta, dataset, graphs, svm_report, fin_status)
    svm = GraphSVMResult(
        W_svm=readonly(arrays["W_svm"], np.float64),
        norm_name=svm_norm,
        **svm_report,
    )
    finite = FiniteResult(
        W_fin=readonly(arrays["W_fin"], np.float64),
        **_finite_report(arrays, fin_meta, fin_status, dataset, graphs),
        _frame=readonly(arrays["fin_frame"], np.float64),
        _embeddings=dataset.embeddings,
    )
    theory = Theory(dataset, graphs, svm, finite, svm_norm, source)
    check_theory(theory)
    return theory


def _finite_report(
    arrays: dict[str, np.ndarray],
    fin_meta: dict[str, Any],
    fin_status: SolveStatus,
    dataset: Dataset,
    graphs: PriorityGraphs,
) -> dict[str, Any]:
    """The fields shared by a loaded :class:`FiniteResult` and its token-space twin."""
    return {
        "status": fin_status,
        "message": str(fin_meta["message"]),
        "generator_query": readonly(arrays["fin_generator_query"], np.int64),
        "generator_i": readonly(arrays["fin_generator_i"], np.int64),
        "generator_j": readonly(arrays["fin_generator_j"], np.int64),
        "coefficients": readonly(arrays["fin_coefficients"], np.float64),
        "gradient_norm": float(fin_meta["gradient_norm"]),
        "loss": float(fin_meta["loss"]),
        "reduced": reduce_dataset(dataset, graphs),
        "solver_stats": _stats_from_json(fin_meta["stats"]),
    }


def _load_token_theory(
    path: Path,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    dataset: Dataset,
    graphs: PriorityGraphs,
    svm_report: dict[str, Any],
    fin_status: SolveStatus,
) -> Theory:
    """The token-space part of :func:`load_theory`: sparse score tables back into results."""
    from .tokenspace import ScoreTable, TokenFiniteResult, TokenSVMResult, finite_subspace_of

    K = dataset.vocab_size
    tables = {}
    for part in ("svm", "fin"):
        query = arrays[f"{part}_score_query"].astype(np.int64)
        token = arrays[f"{part}_score_token"].astype(np.int64)
        value = arrays[f"{part}_score_value"].astype(np.float64)
        keys = query * K + token
        bad = (
            query.size != value.size
            or token.size != value.size
            or (
                query.size
                and (min(query.min(), token.min()) < 0 or max(query.max(), token.max()) >= K)
            )
            or bool(np.any(np.diff(keys) <= 0))
        )
        if bad:
            raise FileFormatError(
                f"{path} is damaged (its {part} score table is not a sorted table of tokens in "
                f"[0, {K})); solve again with attnmech solve DATA -o {path}",
                str(path),
            )
        tables[part] = ScoreTable(
            K, readonly(query, np.int64), readonly(token, np.int64), readonly(value)
        )
    E = dataset.embedding_table
    _, _, subspace = finite_subspace_of(graphs, E)
    svm = TokenSVMResult(scores=tables["svm"], embeddings=E, **svm_report)
    finite = TokenFiniteResult(
        scores=tables["fin"],
        embeddings=E,
        **_finite_report(arrays, meta["finite"], fin_status, dataset, graphs),
        subspace=subspace,
    )
    theory = Theory(dataset, graphs, svm, finite, str(meta["svm_norm"]), str(path))
    check_theory(theory)
    return theory



SOLVE_PARAMS: dict[str, list[Any]] = {"method": [str], "svm_norm": [str, NormSpecType], "allow_inaccurate": [FLAG]}
"""What :func:`solve`'s options may be (the dataset is checked in its own words)."""


@validate_params(SOLVE_PARAMS, where="solve")
def solve(
    dataset: Dataset,
    *,
    svm_norm: str = "fro",
    svm_options: dict[str, Any] | None = None,
    finite_options: dict[str, Any] | None = None,
    method: str = "auto",
    allow_inaccurate: bool = False,
) -> Theory:
    """Build the token-priority graphs and solve for ``W_svm`` and ``W_fin``.

    Parameters
    ----------
    dataset : Dataset
    svm_norm : {"fro", "nuclear", "spectral", "l1", "linf", "lp:P"}, default="fro"
        ``"fro"``: the paper's Graph-SVM (combined ``W``). ``"nuclear"``: the expected direction
        when ``W = K Q^T`` is trained with both factors; the others: the max-margin directions
        of other optimisers' geometries (extensions; see :mod:`attnmech.theory.norms`).
    svm_options, finite_options : dict, optional
        Keyword arguments for :func:`attnmech.theory.norms.solve_norm_svm` (with ``"fro"``: those of
        :func:`attnmech.theory.svm.solve_graph_svm`) and :func:`attnmech.theory.finite.solve_finite`
        (or of their token-space versions).
    method : {"auto", "dense", "tokenspace"}, default="auto"
        ``"auto"``: the token-space solvers (:mod:`attnmech.theory.tokenspace`: one small problem
        per query, ``W_svm`` / ``W_fin`` kept as sparse score tables) when the embeddings are
        one-hot or have orthonormal rows and ``svm_norm="fro"``, else the dense ones.
    allow_inaccurate : bool, default=False
        When no method certifies ``W_svm`` (violation and duality gap within tolerance), False
        raises :class:`~attnmech.errors.SolverError` saying what was tried; True returns the best
        candidate (status ``INACCURATE``, with a warning).

    Returns
    -------
    Theory

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset
    >>> theory = solve(Dataset([[0, 1]] * 3, [0, 0, 1], np.eye(2)))
    >>> theory.svm.is_zero, round(float(theory.W_fin[0, 1] - theory.W_fin[1, 1]), 6)
    (True, 0.693147)
    """
    if not isinstance(dataset, Dataset):
        raise InvalidDatasetError(
            f"solve expects an attnmech.Dataset, got {type(dataset).__name__}; build one with "
            "attnmech.Dataset(sequences, labels, embeddings) or attnmech.load_dataset(path)"
        )
    norm = parse_norm(svm_norm)  # InvalidParameterError naming the accepted norms
    if method not in ("auto", "dense", "tokenspace"):
        raise InvalidParameterError(
            f"method must be 'auto', 'dense' or 'tokenspace', got {method!r}"
        )
    _check_solver_options(svm_options, finite_options)
    graphs = build_priority_graphs(dataset)
    if method != "dense" and norm.name == "fro":
        from .tokenspace import is_token_space, solve_token_finite, solve_token_svm

        if method == "tokenspace" or is_token_space(dataset.embedding_table):
            options = dict(svm_options or {})
            unknown = set(options) - {"max_iter"} - _DENSE_ONLY_SVM_OPTIONS
            if unknown:
                raise InvalidParameterError(
                    f"svm_options {sorted(unknown)} are not options of the Graph-SVM solvers; "
                    "the token-space solver takes max_iter, the dense one also "
                    f"{sorted(_DENSE_ONLY_SVM_OPTIONS)}"
                )
            svm_kw = {k: v for k, v in options.items() if k == "max_iter"}
            token_svm = solve_token_svm(graphs, dataset.embedding_table, **svm_kw)
            _require_certified(token_svm, allow_inaccurate)
            token_fin = solve_token_finite(
                dataset, graphs, constraints=token_svm.constraints, **(finite_options or {})
            )
            return Theory(dataset=dataset, graphs=graphs, svm=token_svm, finite=token_fin)
    options = dict(svm_options or {})
    if norm.name == "fro":
        options.setdefault("allow_inaccurate", allow_inaccurate)
    svm = solve_norm_svm(graphs, dataset.embeddings, norm, **options)
    _require_certified(svm, allow_inaccurate)
    finite = solve_finite(dataset, graphs, **(finite_options or {}))
    return Theory(dataset=dataset, graphs=graphs, svm=svm, finite=finite, svm_norm=norm.name)


# options of the dense Graph-SVM that the token-space solver has no use for (no dense dual, no
# coupled blocks); they are accepted with method="auto" so one call works for any embeddings
_DENSE_ONLY_SVM_OPTIONS = frozenset({"threads", "memory_limit", "coupling_tol", "reduce"})


def _require_certified(svm: Any, allow_inaccurate: bool) -> None:
    """Raise SolverError for an uncertified Graph-SVM unless ``allow_inaccurate``."""
    if svm.success or allow_inaccurate:
        return
    raise SolverError(
        f"the {svm.norm_name}-norm Graph-SVM could not be certified ({svm.message}); pass "
        "allow_inaccurate=True (attnmech solve --allow-inaccurate) to use the best candidate anyway"
    )


class AttentionTheory:
    """scikit-learn style facade: ``AttentionTheory().fit(dataset).predict_proba(sequences)``.

    Parameters
    ----------
    tie_tol : float, default=1e-6
        Passed to :class:`~attnmech.theory.automaton.Automaton`.

    Attributes
    ----------
    graphs_ : PriorityGraphs
    W_svm_, W_fin_ : ndarray of shape (d, d)
    theory_ : Theory
    """

    def __init__(self, *, tie_tol: float = 1e-6) -> None:
        self.tie_tol = tie_tol

    def fit(self, dataset: Dataset) -> AttentionTheory:
        """Solve the theory of ``dataset`` (:func:`solve`) and keep it, its graphs, ``W_svm`` and
        ``W_fin``; returns self."""
        self.theory_ = solve(dataset)
        self.graphs_ = self.theory_.graphs
        self.W_svm_ = self.theory_.W_svm
        self.W_fin_ = self.theory_.W_fin
        return self

    def _automaton(self) -> Automaton:
        if not hasattr(self, "theory_"):
            raise NotFittedError("this AttentionTheory is not fitted yet; call fit(dataset) first")
        return self.theory_.automaton(tie_tol=self.tie_tol)

    def predict_proba(
        self, sequences: Any, queries: Any = None, R: float | None = None
    ) -> np.ndarray:
        """Next-token distributions of shape (n, vocab_size); see ``Automaton.predict_proba``."""
        return self._automaton().predict_proba(sequences, queries, R)

    def predict(self, sequences: Any, queries: Any = None) -> np.ndarray:
        """Most likely next token of each sequence."""
        return self.predict_proba(sequences, queries).argmax(axis=1)


def _check_solver_options(svm_options: Any, finite_options: Any) -> None:
    """Refuse option dicts that are not dicts, or that name an option no solver takes, with
    InvalidParameterError naming the option (before any work)."""
    if svm_options is None and finite_options is None:
        return  # the default call: nothing to check (and no signatures to read)
    import inspect
    from collections.abc import Mapping

    from .finite import solve_finite
    from .graphsvm.solve import solve_graph_svm
    from .norms import solve_norm_svm

    def names(*functions: Any) -> set[str]:
        out: set[str] = set()
        for function in functions:
            for p in inspect.signature(function).parameters.values():
                if p.kind is inspect.Parameter.KEYWORD_ONLY:
                    out.add(p.name)
        return out

    known = {
        "svm_options": names(solve_norm_svm, solve_graph_svm) - {"allow_inaccurate"},
        "finite_options": names(solve_finite),
    }
    for label, options in (("svm_options", svm_options), ("finite_options", finite_options)):
        if options is None:
            continue
        if not isinstance(options, Mapping):
            raise InvalidParameterError(
                f"{label} must be a dict of option name to value, got {type(options).__name__}"
            )
        unknown = sorted(str(k) for k in options if k not in known[label])
        if unknown:
            raise InvalidParameterError(
                f"{label} {unknown} are not options of the solver; it takes "
                f"{', '.join(sorted(known[label]))}"
            )

"""Does a theory hold for its dataset? The re-check of a loaded (or any) :class:`Theory`.

A theory file could have been edited or damaged after it was solved, with a checksum recomputed;
so :func:`attnmech.load_theory` re-checks what it reads against the dataset itself (graphs and
reduced dataset rebuilt from the data, never from the file): :func:`theory_problems` lists what
does not hold, :func:`check_theory` refuses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.dataset import Dataset
from ..errors import FileFormatError
from .finite import FiniteResult
from .graphsvm import GraphSVMResult

__all__ = ["RECHECK_TOL", "theory_problems", "check_theory"]


RECHECK_TOL = 1e-5  # relative tolerance of the re-check of a loaded theory (solvers reach ~1e-9)


def _score_function(svm_or_finite: Any, dataset: Dataset) -> Any:
    """``scores(tokens, queries) = e_token^T W e_query`` of a dense or token-space solution."""
    table = getattr(svm_or_finite, "scores", None)
    if table is not None and not isinstance(svm_or_finite, (GraphSVMResult, FiniteResult)):
        return lambda tokens, queries: table[tokens, queries]
    W = svm_or_finite.W_svm if hasattr(svm_or_finite, "W_svm") else svm_or_finite.W_fin
    E = dataset.embeddings
    return lambda tokens, queries: np.einsum("nd,nd->n", E[tokens] @ W, E[queries])


def theory_problems(theory: Any) -> list[str]:
    """What does not hold in ``theory`` (a :class:`attnmech.Theory`) for its own dataset (empty
    when it all holds).

    Computed from the dataset alone (graphs and reduced dataset rebuilt), never from the
    solver's reports: every score finite; ``W_svm``: margin ``>= 1`` on every strict TPG edge,
    ``= 0`` on every edge inside an SCC, and the smallest strict margin ``1`` (a larger one is a
    scaled, not the max-margin, solution; with no strict edge ``W_svm = 0``); ``W_fin``: the
    gradient of the reduced loss projected onto ``S_fin`` small (and, for dense solutions,
    ``W_fin`` inside ``S_fin``). Tolerances are :data:`RECHECK_TOL` relative to the scores'
    scale, widened to the stored violation for a solution kept with ``allow_inaccurate``.
    """
    from .graphs import scc_chains
    from .graphsvm.constraints import svm_constraints

    dataset, graphs, svm, fin = theory.dataset, theory.graphs, theory.svm, theory.finite
    problems: list[str] = []
    token_space = not isinstance(svm, GraphSVMResult)
    values = (
        [svm.scores.value, fin.scores.value]
        if token_space
        else [svm.W_svm, fin.W_fin]
    )
    d = dataset.embedding_dim
    if not token_space and any(np.shape(v) != (d, d) for v in values):
        return [f"W_svm and W_fin must have shape ({d}, {d}) for this dataset"]
    if not all(np.isfinite(v).all() for v in values):
        return ["W_svm or W_fin holds NaN or infinite entries"]
    # --- W_svm: margins on every TPG edge
    cons = svm_constraints(graphs, reduce=False)
    score = _score_function(svm, dataset)
    s_i, s_j = score(cons.i, cons.query), score(cons.j, cons.query)
    margins = s_i - s_j
    scale = max(1.0, float(np.max(np.abs(np.concatenate([s_i, s_j])), initial=0.0)))
    tol = RECHECK_TOL * scale
    if not svm.success:
        tol = max(tol, min(0.1, 10.0 * float(svm.max_violation)))
    strict = cons.strict
    if strict.any():
        low = float(margins[strict].min())
        if low < 1.0 - tol:
            k = int(np.argmin(np.where(strict, margins, np.inf)))
            problems.append(
                f"W_svm violates a strict priority: margin {margins[k]:.6g} < 1 on edge "
                f"{int(cons.i[k])} -> {int(cons.j[k])} of G^({int(cons.query[k])})"
            )
        elif low > 1.0 + 10 * tol:
            problems.append(
                f"W_svm is not the max-margin solution: its smallest strict margin is {low:.6g}, "
                "not 1"
            )
    elif float(np.linalg.norm(values[0])) > tol:
        problems.append("W_svm must be 0 (no strict priority edge) but is not")
    if (~strict).any():
        worst = float(np.max(np.abs(margins[~strict])))
        if worst > tol:
            problems.append(
                f"W_svm breaks an equality inside an SCC: |margin| {worst:.3g} > {tol:.1e}"
            )
    # --- W_fin: stationary on the reduced data, inside S_fin
    gq, gi, gj = scc_chains(graphs)
    reduced = fin.reduced
    if gq.size and reduced.n_samples:
        fin_score = _score_function(fin, dataset)
        queries = np.repeat(reduced.queries, reduced.lengths)
        sample = np.repeat(np.arange(reduced.n_samples), reduced.lengths)
        z = fin_score(reduced.tokens, queries)
        zmax = np.full(reduced.n_samples, -np.inf)
        np.maximum.at(zmax, sample, z)
        w = np.exp(z - zmax[sample])
        p = w / np.bincount(sample, weights=w, minlength=reduced.n_samples)[sample]
        is_label = reduced.tokens == reduced.labels[sample]
        p_label = np.bincount(sample, weights=p * is_label, minlength=reduced.n_samples)
        g = (p - is_label * p / p_label[sample]) / reduced.n_full  # d loss / d score
        limit = max(1e-6, min(1e-3, 10.0 * float(fin.gradient_norm)))
        if token_space:
            K = dataset.vocab_size
            keys = queries * K + reduced.tokens
            uniq, inverse = np.unique(keys, return_inverse=True)
            acc = np.bincount(inverse, weights=g, minlength=uniq.size)

            def at(q: np.ndarray, t: np.ndarray) -> np.ndarray:
                want = q * K + t
                pos = np.minimum(np.searchsorted(uniq, want), max(uniq.size - 1, 0))
                return np.where(uniq[pos] == want, acc[pos], 0.0)

            grad_norm = float(np.max(np.abs(at(gq, gi) - at(gq, gj)), initial=0.0))
        else:
            from .finite import _generator_gram, _orthonormal_frame

            E = dataset.embeddings
            G = E[reduced.tokens].T @ (g[:, None] * E[queries])  # d loss / d W, (d, d)
            grad = np.einsum("cd,de,ce->c", E[gi] - E[gj], G, E[gq])
            gram = _generator_gram(E, gq, gi, gj)
            frame = _orthonormal_frame(gram)
            stored = getattr(fin, "_frame", None)
            if stored is not None and (
                stored.shape != frame.shape
                or not np.allclose(stored.T @ gram @ stored, np.eye(frame.shape[1]), atol=1e-6)
            ):
                problems.append(
                    f"the stored S_fin frame (shape {stored.shape}) is not one of this dataset's "
                    f"S_fin (shape {frame.shape})"
                )
            grad_norm = float(np.linalg.norm(frame.T @ grad))
            b = fin_score(gi, gq) - fin_score(gj, gq)  # <generator, W_fin>
            inside = float(np.linalg.norm(frame.T @ b))
            total = float(np.linalg.norm(fin.W_fin))
            outside = np.sqrt(max(total**2 - inside**2, 0.0))
            if outside > 1e-6 * max(1.0, total):
                problems.append(f"W_fin lies outside S_fin (distance {outside:.3g})")
        if grad_norm > limit:
            problems.append(
                f"W_fin is not the finite-part optimum: the reduced loss's gradient on S_fin has "
                f"norm {grad_norm:.3g} > {limit:.1e}"
            )
    elif float(np.linalg.norm(values[1])) > 1e-9:
        problems.append("W_fin must be 0 (S_fin = {0}) but is not")
    return problems


def check_theory(theory: Any, *, source: str | None = None) -> None:
    """Raise unless ``theory`` holds for its own dataset (see :func:`theory_problems`).

    Raises
    ------
    FileFormatError
        Naming the file (``source``, default ``theory.source``) and every problem found.
    """
    problems = theory_problems(theory)
    if problems:
        where = source or theory.source or "the theory"
        raise FileFormatError(
            f"{where} does not hold for its dataset: {'; '.join(problems)} (edited or damaged "
            f"after it was solved); solve again with attnmech solve DATA -o {where}",
            path=where,
        )

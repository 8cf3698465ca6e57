"""Why a key sits where it does under a query: the training data behind a priority.

The Graph-SVM direction ``W_svm`` is a combination of the constraints
``(e_y - e_j)^T W e_k >= 1`` weighted by their dual multipliers (docs/theory.md, Graph-SVM): the
constraints with a positive multiplier (active) are the ones that pin the direction, and every
such constraint stands for training edges ``y -> j`` under query ``k``, i.e. samples whose last
token is ``k``, whose label is ``y`` and whose window holds ``j``. Inside an SCC the order is
decided by the finite part ``W_fin`` (docs/theory.md, the finite part): :func:`explain` gives the
log-odds of the key against each SCC mate.

attnmech solves the Graph-SVM on a reduced, equivalent constraint set (one constraint per edge of
the transitive reduction of each condensation DAG, between the SCCs' smallest tokens; see
:func:`attnmech.svm.svm_constraints`); a reduced constraint between SCC ``A`` and SCC ``B`` is
expanded here to every training edge from a token of ``A`` to a token of ``B``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["Explanation", "PinningConstraint", "explain"]


@dataclass(frozen=True, slots=True)
class PinningConstraint:
    """An active Graph-SVM constraint ``SCC(i) > SCC(j)`` under the query, with its evidence.

    Attributes
    ----------
    i, j : int
        The reduced constraint's tokens (the smallest members of the two SCCs).
    dual : float
        Its multiplier (how much it pins ``W_svm``).
    margin : float
        ``(e_i - e_j)^T W_svm e_query`` (1 on an active constraint).
    side : {"above", "below"}
        ``"above"``: the key's SCC is preferred to ``SCC(j)``; ``"below"``: ``SCC(i)`` is preferred
        to the key's SCC.
    edges : list of (int, int)
        Training edges ``(y, j')`` (label ``y`` preferred to window token ``j'``) behind it.
    samples : list of int
        Indices of the training samples that supply those edges (at most ``max_samples``).
    n_samples : int
        How many samples supply them in all.
    """

    i: int
    j: int
    dual: float
    margin: float
    side: str
    edges: list[tuple[int, int]]
    samples: list[int]
    n_samples: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "i": self.i,
            "j": self.j,
            "dual": self.dual,
            "margin": self.margin,
            "side": self.side,
            "edges": [list(e) for e in self.edges],
            "samples": self.samples,
            "n_samples": self.n_samples,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """The answer of :func:`explain`.

    Attributes
    ----------
    query, key : int
    occurs : bool
        Whether ``key`` occurs in some window ending with ``query`` (else the theory says nothing
        about it under this query).
    scc : tuple of int
        The key's SCC under the query (its tokens).
    level : int
        Priority level of that SCC (0 = highest).
    constraints : list of PinningConstraint
        Active strict constraints touching the key's SCC, largest multiplier first.
    finite_log_odds : dict of int to float
        For each other token ``m`` of the SCC: ``x_key^T W_fin x_q - x_m^T W_fin x_q``, the
        log-odds of attending to ``key`` rather than ``m`` once the SCC is selected.
    svm_score : float
        ``x_key^T W_svm x_q``.
    """

    query: int
    key: int
    occurs: bool
    scc: tuple[int, ...]
    level: int
    constraints: list[PinningConstraint]
    finite_log_odds: dict[int, float]
    svm_score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "query": self.query,
            "key": self.key,
            "occurs": self.occurs,
            "scc": list(self.scc),
            "level": self.level,
            "svm_score": self.svm_score,
            "constraints": [c.to_dict() for c in self.constraints],
            "finite_log_odds": {str(k): v for k, v in self.finite_log_odds.items()},
        }

    def format(self, names: Any = None) -> str:
        """A few readable lines (``names``: token names by id, optional)."""

        def nm(t: int) -> str:
            return str(names[t]) if names is not None else str(t)

        if not self.occurs:
            return f"key {nm(self.key)} never occurs in a window ending with {nm(self.query)}"
        lines = [
            f"under query {nm(self.query)}: key {nm(self.key)} is in SCC "
            f"{{{', '.join(nm(t) for t in self.scc)}}} at level {self.level} "
            f"(W_svm score {self.svm_score:.4g})"
        ]
        if not self.constraints:
            lines.append("  no active strict constraint touches this SCC")
        for c in self.constraints:
            rel = (
                f"{{SCC of {nm(self.key)}}} > {{SCC of {nm(c.j)}}}"
                if c.side == "above"
                else f"{{SCC of {nm(c.i)}}} > {{SCC of {nm(self.key)}}}"
            )
            edges = ", ".join(f"{nm(y)}>{nm(j)}" for y, j in c.edges[:6])
            more = f" (+{len(c.edges) - 6})" if len(c.edges) > 6 else ""
            lines.append(
                f"  dual {c.dual:.4g}  {rel}  edges {edges}{more}  from {c.n_samples} "
                f"sample(s) {c.samples[:8]}"
            )
        for m, lo in self.finite_log_odds.items():
            lines.append(f"  finite part: log-odds {nm(self.key)} vs {nm(m)} = {lo:.4g}")
        return "\n".join(lines)


def _score(result: Any, dataset: Any, token: np.ndarray, query: int) -> np.ndarray:
    """``x_token^T W x_query`` from a dense result (W_svm / W_fin) or a token-space score table."""
    table = getattr(result, "scores", None)
    if table is not None and hasattr(table, "column"):
        return np.asarray(table[token, np.full(token.shape, query)], dtype=np.float64)
    W = result.W_svm if hasattr(result, "W_svm") else result.W_fin
    E = np.asarray(dataset.embeddings, dtype=np.float64)
    return np.asarray(E[token] @ (W @ E[query]), dtype=np.float64)


def explain(theory: Any, query: int, key: int, *, max_samples: int = 20) -> Explanation:
    """The training edges whose active Graph-SVM constraints pin ``key`` under ``query``.

    Parameters
    ----------
    theory : attnmech.Theory
        From :func:`attnmech.solve` or :func:`attnmech.load_theory`.
    query, key : int
        Token ids.
    max_samples : int, default=20
        Sample indices listed per constraint.

    Returns
    -------
    Explanation
        ``constraints`` ranked by multiplier; ``finite_log_odds`` against the key's SCC mates.
    """
    graphs, svm, dataset = theory.graphs, theory.svm, theory.dataset
    K = graphs.vocab_size
    for name, value in (("query", query), ("key", key)):
        if not 0 <= int(value) < K:
            raise InvalidParameterError(f"{name} {value} is outside the vocabulary [0, {K})")
    q, k = int(query), int(key)
    scc_id = int(graphs.scc_of(q, k))
    if scc_id < 0:
        return Explanation(q, k, False, (), -1, [], {}, float("nan"))
    members = graphs.scc_members(scc_id)
    level = int(graphs.scc_level[scc_id])
    cons = svm.constraints
    dual = np.asarray(svm.dual_values, dtype=np.float64)
    margins = np.asarray(svm.margins, dtype=np.float64)
    sel = np.flatnonzero((cons.query == q) & cons.strict & (dual > 0))
    sc_i = graphs.scc_of(np.full(sel.size, q), cons.i[sel])
    sc_j = graphs.scc_of(np.full(sel.size, q), cons.j[sel])
    touch = (sc_i == scc_id) | (sc_j == scc_id)
    sel, sc_i, sc_j = sel[touch], sc_i[touch], sc_j[touch]
    sel_order = np.argsort(-dual[sel], kind="stable")
    # training edges of G^(q) and the samples behind them
    lo, hi = np.searchsorted(graphs.edge_query, [q, q + 1])
    e_src, e_dst = graphs.edge_src[lo:hi], graphs.edge_dst[lo:hi]
    e_src_scc, e_dst_scc = graphs.scc_of(q, e_src), graphs.scc_of(q, e_dst)
    padded = dataset.padded()
    under_q = np.flatnonzero(dataset.last_tokens == q)
    found: list[PinningConstraint] = []
    for c in sel_order.tolist():
        a, b = int(sc_i[c]), int(sc_j[c])
        pick = (e_src_scc == a) & (e_dst_scc == b)
        edges = list(zip(e_src[pick].tolist(), e_dst[pick].tolist(), strict=True))
        supply = np.zeros(under_q.size, dtype=bool)
        for y, j in edges:
            rows = padded[under_q]
            supply |= (dataset.labels[under_q] == y) & (rows == j).any(axis=1)
        samples = under_q[supply]
        idx = int(sel[c])
        found.append(
            PinningConstraint(
                i=int(cons.i[idx]),
                j=int(cons.j[idx]),
                dual=float(dual[idx]),
                margin=float(margins[idx]),
                side="above" if a == scc_id else "below",
                edges=edges,
                samples=samples[:max_samples].tolist(),
                n_samples=int(samples.size),
            )
        )
    mates = np.array([m for m in members if m != k], dtype=np.int64)
    finite: dict[int, float] = {}
    if mates.size:
        f_key = _score(theory.finite, dataset, np.array([k]), q)[0]
        f_mates = _score(theory.finite, dataset, mates, q)
        finite = {int(m): float(f_key - f) for m, f in zip(mates, f_mates, strict=True)}
    svm_score = float(_score(svm, dataset, np.array([k]), q)[0])
    return Explanation(q, k, True, tuple(members), level, found, finite, svm_score)

"""Check of the Graph-SVM's infeasible / refused verdicts on hard random instances.

Families (all seeded, built with numpy only, so the same instances are drawn for any attnmech
version):

- ``scaled``: K > d, random Gaussian embeddings whose rows are scaled by ``10**U(-4, 4)``;
- ``neardup``: K <= d (feasible in exact arithmetic), one or two rows replaced by a copy of another
  row plus a perturbation of relative size ``eps = 10**U(-10, -3)``;
- ``spectral``: the paper's generator ``make_dataset(n, T, K, d, seed)`` with K > d (K=5, d=4 and
  K=6, d=5; n in 4, 6, 8; T in 3, 4; seeds 0-7), spectral-norm Graph-SVM.

For every instance the script records the solver's verdict (``optimal``, ``inaccurate``,
``infeasible`` or ``refused`` for a SolverError), its method, the largest violation relative to
each edge's round-off scale (recomputed here from ``W_svm``), the relative gap, and an independent
oracle: cvxpy + Clarabel on the row-normalised primal in the row space of the embeddings, whose
answer is accepted only if its own recomputed relative violation is at most 1e-9.

A verdict is counted *false infeasible* when the solver says "infeasible" and some method (the
oracle, or the solver itself in another run) has a point with relative violation <= 1e-9; *false
refusal* when it raises SolverError and the oracle has a certified point.

Usage::

    PYTHONPATH=src python benchmarks/bench_infeasibility.py run OUT.jsonl [--n 120]
    python benchmarks/bench_infeasibility.py table BEFORE.jsonl AFTER.jsonl

Run ``run`` once against each version (e.g. a worktree of the old commit) and ``table`` to compare.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from typing import Any

import numpy as np

VIOL_TOL = 1e-9


def instances(n_per_family: int) -> list[dict[str, Any]]:
    """The random instances (sequences, labels, embeddings, norm)."""
    out = []
    rng = np.random.default_rng(2121)
    for idx in range(n_per_family):
        K = int(rng.integers(5, 10))
        d = int(rng.integers(2, K))
        n, T = int(rng.integers(3, 9)), int(rng.integers(3, 6))
        E = rng.standard_normal((K, d)) * 10.0 ** rng.uniform(-4, 4, size=(K, 1))
        seqs = [rng.choice(K, size=min(T, K), replace=False) for _ in range(n)]
        labels = [int(rng.choice(s)) for s in seqs]
        out.append(
            {
                "family": "scaled",
                "idx": idx,
                "seqs": seqs,
                "labels": labels,
                "E": E,
                "norm": "fro",
                "info": f"K={K} d={d}",
            }
        )
    rng = np.random.default_rng(2122)
    for idx in range(n_per_family):
        K = int(rng.integers(4, 9))
        d = K + int(rng.integers(0, 4))
        n, T = int(rng.integers(3, 9)), int(rng.integers(3, 6))
        E = rng.standard_normal((K, d)) / np.sqrt(d)
        eps = 10.0 ** rng.uniform(-10, -3)
        for _ in range(int(rng.integers(1, 3))):
            a, b = rng.choice(K, size=2, replace=False)
            E[b] = E[a] + eps * rng.standard_normal(d) / np.sqrt(d)
        seqs = [rng.choice(K, size=min(T, K), replace=False) for _ in range(n)]
        labels = [int(rng.choice(s)) for s in seqs]
        out.append(
            {
                "family": "neardup",
                "idx": idx,
                "seqs": seqs,
                "labels": labels,
                "E": E,
                "norm": "fro",
                "info": f"K={K} d={d} eps={eps:.1e}",
            }
        )
    from attnmech import make_dataset  # the paper's generator (unchanged between versions)

    idx = 0
    for K, d in ((5, 4), (6, 5)):
        for n in (4, 6, 8):
            for T in (3, 4):
                for seed in range(8):
                    ds = make_dataset(n, T, K, d, seed=seed)
                    out.append(
                        {
                            "family": "spectral",
                            "idx": idx,
                            "seqs": [list(map(int, s)) for s in ds.sequences],
                            "labels": [int(y) for y in ds.labels],
                            "E": np.asarray(ds.embeddings),
                            "norm": "spectral",
                            "info": f"make_dataset({n}, {T}, {K}, {d}, seed={seed})",
                        }
                    )
                    idx += 1
    return out


def relative_violation(graphs: Any, E: np.ndarray, W: np.ndarray) -> float:
    """Largest violation over every TPG edge, relative to max(1, its round-off scale)."""
    q, s, t = graphs.edge_query, graphs.edge_src, graphs.edge_dst
    strict = graphs.scc_of(q, s) != graphs.scc_of(q, t)
    margin = np.einsum("cd,de,ce->c", E[s] - E[t], W, E[q])
    scale = np.einsum("cd,de,ce->c", np.abs(E[s]) + np.abs(E[t]), np.abs(W), np.abs(E[q]))
    viol = np.where(strict, np.maximum(1.0 - margin, 0.0), np.abs(margin))
    return float((viol / np.maximum(scale, 1.0)).max(initial=0.0))


def oracle(graphs: Any, E: np.ndarray, norm: str) -> dict[str, Any]:
    """cvxpy + Clarabel on unit-normalised constraint rows in the row space of E."""
    import cvxpy as cp

    q, s, t = graphs.edge_query, graphs.edge_src, graphs.edge_dst
    strict = graphs.scc_of(q, s) != graphs.scc_of(q, t)
    if not strict.any():
        return {"verdict": "optimal", "norm": 0.0, "viol": 0.0}
    _, sv, Vt = np.linalg.svd(E, full_matrices=False)
    r = int((sv > sv[0] * 1e-15).sum())
    V = Vt[:r].T
    F = E @ V
    rows = ((F[s] - F[t])[:, :, None] * F[q][:, None, :]).reshape(q.size, -1)
    scale = np.linalg.norm(rows, axis=1)
    if np.any(scale[strict] == 0):
        return {"verdict": "infeasible", "norm": None, "viol": None}
    scale[scale == 0] = 1.0
    A = rows / scale[:, None]
    b = strict / scale
    M = cp.Variable(r * r)
    cons = [A[strict] @ M >= b[strict]]
    if (~strict).any():
        cons.append(A[~strict] @ M == 0)
    if norm == "fro":
        obj = cp.sum_squares(M)
    else:
        obj = cp.sigma_max(cp.reshape(M, (r, r), order="C"))
    prob = cp.Problem(cp.Minimize(obj), cons)
    try:
        prob.solve(solver=cp.CLARABEL)
    except cp.error.SolverError:
        return {"verdict": "error", "norm": None, "viol": None}
    if prob.status in ("infeasible", "infeasible_inaccurate"):
        return {"verdict": "infeasible", "norm": None, "viol": None}
    if M.value is None:
        return {"verdict": prob.status, "norm": None, "viol": None}
    W = V @ np.asarray(M.value).reshape(r, r) @ V.T
    viol = relative_violation(graphs, E, W)
    return {
        "verdict": "optimal" if viol <= VIOL_TOL else "inaccurate",
        "norm": float(np.linalg.norm(W)),
        "viol": viol,
    }


def run(path: str, n_per_family: int) -> None:
    """Solve every instance with the installed attnmech and write one JSON line each."""
    from attnmech import Dataset
    from attnmech.errors import InfeasibleProblemError, SolverError
    from attnmech.theory.graphs import build_priority_graphs
    from attnmech.theory.norms import solve_norm_svm

    warnings.simplefilter("ignore")
    with open(path, "w") as fh:
        for inst in instances(n_per_family):
            ds = Dataset([list(map(int, s)) for s in inst["seqs"]], inst["labels"], inst["E"])
            graphs = build_priority_graphs(ds)
            E = np.asarray(ds.embeddings, dtype=np.float64)
            row: dict[str, Any] = {k: inst[k] for k in ("family", "idx", "info", "norm")}
            start = time.perf_counter()
            try:
                res = solve_norm_svm(graphs, E, inst["norm"])
                W = np.asarray(res.W_svm)
                row.update(
                    verdict=str(res.status.value),
                    method=res.method,
                    viol=relative_violation(graphs, E, W),
                    gap=float(res.relative_gap),
                    wnorm=float(np.linalg.norm(W)),
                )
            except InfeasibleProblemError as exc:
                row["conflict_sv_ratio"] = _conflict_sv_ratio(E, exc.conflicts)
                row.update(
                    verdict="infeasible",
                    method="-",
                    viol=None,
                    gap=None,
                    wnorm=None,
                    n_conflicts=len(exc.conflicts),
                    message=str(exc)[:200],
                )
            except SolverError as exc:
                row.update(
                    verdict="refused",
                    method="-",
                    viol=None,
                    gap=None,
                    wnorm=None,
                    message=str(exc)[:200],
                )
            except Exception as exc:  # noqa: BLE001 - a traceback is a finding
                row.update(
                    verdict=f"error:{type(exc).__name__}",
                    method="-",
                    viol=None,
                    gap=None,
                    wnorm=None,
                    message=str(exc)[:200],
                )
            row["time"] = time.perf_counter() - start
            o = oracle(graphs, E, inst["norm"])
            row.update(oracle=o["verdict"], oracle_norm=o["norm"], oracle_viol=o["viol"])
            fh.write(json.dumps(row) + "\n")
            fh.flush()


def _conflict_sv_ratio(E: np.ndarray, conflicts: list) -> float:
    """Smallest / largest singular value of the conflict's unit rows: near 0 for a genuine
    (dependent) conflict, far from 0 when the named constraints are linearly independent."""
    if not conflicts:
        return float("nan")
    rows = np.array([np.outer(E[i] - E[j], E[k]).ravel() for k, i, j, _ in conflicts])
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
    sv = np.linalg.svd(rows, compute_uv=False)
    if rows.shape[0] > rows.shape[1]:
        return 0.0
    return float(sv[-1] / sv[0])


def _classify(row: dict[str, Any], feasible: bool) -> str:
    v = row["verdict"]
    if v == "infeasible":
        return "false infeasible" if feasible else "infeasible (no point found)"
    if v == "refused":
        return "false refusal" if row["oracle"] == "optimal" else "refused (oracle too)"
    if v == "optimal":
        return "optimal, certified" if (row["viol"] or 0) <= VIOL_TOL else "optimal, WRONG"
    return v


def table(before_path: str, after_path: str) -> None:
    """Print the before/after counts and every instance whose verdict changed."""
    before = [json.loads(line) for line in open(before_path)]
    after = [json.loads(line) for line in open(after_path)]
    key = {(r["family"], r["idx"]): r for r in before}
    counts: dict[tuple[str, str, str], int] = {}
    changed = []
    relabelled: dict[tuple[str, str], int] = {}
    for a in after:
        b = key[(a["family"], a["idx"])]
        feasible = (
            any(
                r["verdict"] in ("optimal", "inaccurate") and (r["viol"] or 1) <= VIOL_TOL
                for r in (a, b)
            )
            or a["oracle"] == "optimal"
        )
        cb, ca = _classify(b, feasible), _classify(a, feasible)
        for when, c in (("before", cb), ("after", ca)):
            counts[(a["family"], c, when)] = counts.get((a["family"], c, when), 0) + 1
        if cb != ca:
            changed.append((a, b, cb, ca))
        elif b["method"] != a["method"]:
            relabelled[(b["method"], a["method"])] = (
                relabelled.get((b["method"], a["method"]), 0) + 1
            )
    fams = sorted({f for f, _, _ in counts})
    print(f"{'family':9s} {'outcome':30s} {'before':>7s} {'after':>7s}")
    for f in fams:
        for c in sorted({c for ff, c, _ in counts if ff == f}):
            print(
                f"{f:9s} {c:30s} {counts.get((f, c, 'before'), 0):7d} "
                f"{counts.get((f, c, 'after'), 0):7d}"
            )
    for when, rows in (("before", before), ("after", after)):
        inf = [r for r in rows if r["verdict"] == "infeasible"]
        indep = [r for r in inf if (r.get("conflict_sv_ratio") or 0.0) > 1e-8]
        print(
            f"{when}: {len(inf)} infeasible verdicts, {len(indep)} name a conflict whose unit "
            "rows are linearly independent (smallest/largest singular value > 1e-8)"
        )
    for (mb, ma), count in sorted(relabelled.items()):
        print(f"same verdict, method label {mb!r} -> {ma!r}: {count} instances")
    print(f"\ninstances: {len(after)}; changed verdict: {len(changed)}")
    fmt = lambda x: "-" if x is None else f"{x:.1e}"  # noqa: E731
    for a, b, cb, ca in changed:
        print(
            f"  {a['family']}#{a['idx']} ({a['info']}): {cb} [{b['method']}, viol "
            f"{fmt(b['viol'])}, gap {fmt(b['gap'])}] -> {ca} [{a['method']}, viol "
            f"{fmt(a['viol'])}, gap {fmt(a['gap'])}, ||W|| {fmt(a['wnorm'])}]; oracle "
            f"{a['oracle']} ||W|| {fmt(a['oracle_norm'])}"
        )


if __name__ == "__main__":
    if sys.argv[1] == "run":
        n = int(sys.argv[sys.argv.index("--n") + 1]) if "--n" in sys.argv else 120
        run(sys.argv[2], n)
    else:
        table(sys.argv[2], sys.argv[3])

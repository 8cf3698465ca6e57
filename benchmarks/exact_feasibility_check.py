"""Exact rational check of the Graph-SVM answer for instances of bench_infeasibility.py.

Usage: ``PYTHONPATH=src python benchmarks/exact_feasibility_check.py "scaled#117" "scaled#76"``.
Prints the exact (Fraction) minimum strict margin and largest |equality margin| of ``W_svm`` on
every TPG edge: with no equalities and a positive minimum margin m, ``W / m`` is exactly feasible
(so the problem is feasible, whatever any floating-point solver says).
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np


def main(keys: list[str]) -> None:
    """Solve each named instance and print its exact margins."""
    from attnmech import Dataset
    from attnmech.theory.graphs import build_priority_graphs
    from attnmech.theory.graphsvm import solve_graph_svm

    path = Path(__file__).with_name("bench_infeasibility.py")
    spec = importlib.util.spec_from_file_location("bench_infeasibility", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    warnings.simplefilter("ignore")
    insts = {(i["family"], i["idx"]): i for i in bench.instances(120)}
    for key in keys:
        fam, idx = key.split("#")
        inst = insts[(fam, int(idx))]
        ds = Dataset([list(map(int, s)) for s in inst["seqs"]], inst["labels"], inst["E"])
        g = build_priority_graphs(ds)
        E = np.asarray(ds.embeddings)
        W = np.asarray(solve_graph_svm(g, E).W_svm)
        Ef = [[Fraction(float(v)) for v in r] for r in E]
        Wf = [[Fraction(float(v)) for v in r] for r in W]
        d = E.shape[1]
        strict = g.scc_of(g.edge_query, g.edge_src) != g.scc_of(g.edge_query, g.edge_dst)
        ms, me = [], []
        for q, s, t, st in zip(g.edge_query, g.edge_src, g.edge_dst, strict, strict=True):
            delta = [Ef[s][a] - Ef[t][a] for a in range(d)]
            Wq = [sum(Wf[a][c] * Ef[q][c] for c in range(d)) for a in range(d)]
            m = sum(delta[a] * Wq[a] for a in range(d))
            (ms if st else me).append(m)
        print(
            f"{key}: {len(ms)} strict, {len(me)} equality edges; exact min strict margin "
            f"{float(min(ms))!r}; max |equality margin| "
            f"{float(max(map(abs, me))) if me else 0.0!r}; ||W||_F {np.linalg.norm(W):.6g}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])

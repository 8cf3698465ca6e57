"""Exact rational check of the Graph-SVM answer for instances of bench_infeasibility.py.

Usage: PYTHONPATH=src python benchmarks/exact_feasibility_check.py "scaled#117" "scaled#76"
Prints the exact (Fraction) minimum strict margin and largest |equality margin| of W_svm: with
no equalities and a positive minimum margin m, W / m is exactly feasible (the problem is feasible).
"""

import importlib.util, sys, warnings
from fractions import Fraction
import numpy as np

spec = importlib.util.spec_from_file_location("b", "benchmarks/bench_infeasibility.py")
b = importlib.util.module_from_spec(spec)
spec.loader.exec_module(b)
from attnmech import Dataset
from attnmech.theory.graphs import build_priority_graphs
from attnmech.theory.graphsvm import solve_graph_svm

warnings.simplefilter("ignore")
insts = {(i["family"], i["idx"]): i for i in b.instances(120)}
for key in sys.argv[1:]:
    fam, idx = key.split("#")
    inst = insts[(fam, int(idx))]
    ds = Dataset([list(map(int, s)) for s in inst["seqs"]], inst["labels"], inst["E"])
    g = build_priority_graphs(ds)
    E = ds.embeddings
    W = np.asarray(solve_graph_svm(g, E).W_svm)
    Ef = [[Fraction(float(v)) for v in r] for r in E]
    Wf = [[Fraction(float(v)) for v in r] for r in W]
    d = E.shape[1]
    strict = g.scc_of(g.edge_query, g.edge_src) != g.scc_of(g.edge_query, g.edge_dst)
    ms, me = [], []
    for q, s, t, st in zip(g.edge_query, g.edge_src, g.edge_dst, strict):
        delta = [Ef[s][a] - Ef[t][a] for a in range(d)]
        Wq = [sum(Wf[a][c] * Ef[q][c] for c in range(d)) for a in range(d)]
        m = sum(delta[a] * Wq[a] for a in range(d))
        (ms if st else me).append(m)
    print(
        key,
        "n_strict",
        len(ms),
        "n_equal",
        len(me),
        "exact min strict margin",
        float(min(ms)),
        "max |equality|",
        float(max(map(abs, me))) if me else 0.0,
        "||W||",
        np.linalg.norm(W),
    )

"""Graph-SVM and graph-building timings (issue: theory core, "Speed").

Prints a table: attnmech's solver against a straightforward dual QP measured in the same run
(constraint rows vec((e_i - e_j) e_k^T) of length d^2, one per TPG edge, Q = C^T C, solved by the
Clarabel interior-point solver; run at K <= 128, not at K = 256, where its dense constraint
matrix alone would take 3.75 GB), plus the large-scale graph build. Targets (2 cores): K = d =
128 under 1.5 s and at least 10x the reference; K = d = 256 under 5 s; orthonormal K = d = 1024
under 10 s.

Every attnmech time is the median of ``--repeat`` runs (default 3) with one BLAS thread
(threadpoolctl); ``cpu s`` is the process time of the same runs (less sensitive to other
load on a shared machine); the ``method`` column names the Graph-SVM method whose certified
solution came back, ``rel viol`` is the largest violation relative to each edge's round-off scale.

Run:  python benchmarks/bench_svm.py [--quick] [--skip-reference] [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import attnmech
from attnmech.theory.reference import svm_dual_clarabel
from attnmech.theory.svm import solve_graph_svm


def setting(K: int, embeddings: str, seed: int = 0) -> attnmech.Dataset:
    """K = d, n = 4K sequences of T = 8 distinct tokens, labels drawn from the sequence."""
    return attnmech.make_dataset(4 * K, 8, K, K, embeddings=embeddings, seed=seed)


def straightforward_dual(graphs, E) -> tuple[np.ndarray, float]:
    """Reference: dense constraint rows (d^2 each), Q = C^T C, Clarabel on the dual QP."""
    start = time.perf_counter()
    W = svm_dual_clarabel(graphs, E)
    return W, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (median)")
    args = parser.parse_args()
    with threadpool_limits(limits=1):
        return run(args)


def run(args: argparse.Namespace) -> int:
    cases = [
        (64, "random", True),
        (128, "random", True),
        (256, "random", False),
        (1024, "ortho", False),
    ]
    if args.quick:
        cases = [(32, "random", True), (64, "random", True)]
    header = (
        f"{'setting':<26}{'m (reduced)':>12}{'attnmech s':>12}{'cpu s':>8}{'reference s':>13}"
        f"{'ratio':>8}"
        f"{'max viol':>10}{'rel viol':>10}{'rel gap':>10}{'|dW|/|W|':>10}  method"
    )
    print(header)
    print("-" * len(header))
    for K, emb, with_ref in cases:
        ds = setting(K, emb)
        graphs = attnmech.build_priority_graphs(ds)
        times, cpu_times = [], []
        for _ in range(max(1, args.repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            res = solve_graph_svm(graphs, ds.embeddings)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        ours, cpu = float(np.median(times)), float(np.median(cpu_times))
        ref_time, diff = float("nan"), float("nan")
        if with_ref and not args.skip_reference:
            W_ref, ref_time = straightforward_dual(graphs, ds.embeddings)
            diff = np.linalg.norm(W_ref - res.W_svm) / np.linalg.norm(res.W_svm)
        name = f"K=d={K} {emb}, n={4 * K}"
        measured = np.isfinite(ref_time)
        ref_text = f"{ref_time:>13.3f}" if measured else f"{'not run':>13}"
        ratio_text = f"{ref_time / ours:>8.1f}" if measured else f"{'-':>8}"
        diff_text = f"{diff:>10.1e}" if measured else f"{'-':>10}"
        print(
            f"{name:<26}{res.constraints.n_constraints:>12}{ours:>12.3f}{cpu:>8.3f}{ref_text}"
            f"{ratio_text}"
            f"{res.max_violation:>10.1e}{getattr(res, 'relative_violation', float('nan')):>10.1e}"
            f"{res.relative_gap:>10.1e}{diff_text}  {getattr(res, 'method', '-')}",
            flush=True,
        )
    if not args.quick:
        n, K = 1_000_000, 10_000
        rng = np.random.default_rng(0)
        seqs = rng.integers(0, K, size=(n, 8))
        labels = seqs[np.arange(n), rng.integers(0, 8, size=n)]
        t0 = time.perf_counter()
        ds = attnmech.Dataset(seqs, labels, rng.standard_normal((K, 16)))
        t_ds = time.perf_counter() - t0
        t0 = time.perf_counter()
        graphs = attnmech.build_priority_graphs(ds)
        t_g = time.perf_counter() - t0
        print(
            f"\nDataset(n=10^6, T=8, K=10^4) validated in {t_ds:.2f} s; token-priority graphs "
            f"({graphs.n_nodes} nodes, {graphs.n_edges} edges, {graphs.n_sccs} SCCs) in {t_g:.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Language-sized vocabularies: the token-space theory on Shakespeare (one-hot embeddings).

For each size, in a fresh subprocess (so that peak memory is per size), with one BLAS thread:
dataset build (word level, all files in ``shared/data/shakespeare``), token-priority graphs
(+ the bounded ``attnmech graphs`` text and a drawing of the top SCCs), Graph-SVM and ``W_fin``,
each with its wall time and the process's peak RSS after it. The dense solvers run as a
reference at a smaller size where they take well under a minute (on the same data with
``np.eye`` embeddings), and the two answers are compared.

    PYTHONPATH=src python benchmarks/bench_scale.py                 # K=1000/T=16, K=5000/T=32
    PYTHONPATH=src python benchmarks/bench_scale.py --huge          # + the K=50,000 run
    PYTHONPATH=src python benchmarks/bench_scale.py --sizes 1000:16 --reference 1000:16:1500

The K=50,000 run: Shakespeare has 26,438 distinct words, so it uses (a) the full word
vocabulary with overlapping windows (stride 4) and (b) a synthetic Zipf(1.1) token stream over
50,000 tokens (1,000,000 tokens, windows of 16), both one-hot.
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "shakespeare"


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB -> GB (Linux)


def _corpus() -> str:
    from attnmech.data.text import _strip_gutenberg

    files = sorted(glob.glob(str(DATA / "*.txt")))
    if not files:
        sys.exit(f"no text files in {DATA}")
    return "\n".join(
        _strip_gutenberg(Path(f).read_text(encoding="utf-8", errors="replace")) for f in files
    )


def _stage(rows: list, name: str, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    rows.append((name, time.perf_counter() - start, _rss_gb()))
    print(f"  ... {name}: {rows[-1][1]:.2f} s", file=sys.stderr, flush=True)
    return out


def _run_size(args: tuple) -> list:
    """One size in this (fresh) process: stages with time and peak RSS."""
    kind, K, T, stride = args
    from threadpoolctl import threadpool_limits

    from attnmech.data.dataset import Dataset
    from attnmech.theory.graphs import build_priority_graphs
    from attnmech.data.text import text_dataset
    from attnmech.theory.tokenspace import solve_token_finite, solve_token_svm

    rows: list = []
    with threadpool_limits(1):
        if kind == "zipf":

            def build():
                rng = np.random.default_rng(0)
                ranks = np.arange(1, K + 1, dtype=np.float64)
                p = ranks**-1.1
                stream = rng.choice(K, size=1_000_000, p=p / p.sum())
                starts = np.arange(0, stream.size - T, T)
                windows = stream[starts[:, None] + np.arange(T)]
                labels = stream[starts + T]
                return Dataset(windows, labels, "onehot", vocab_size=K, on_unrealizable="drop")

            ds = _stage(rows, "dataset build", build)
        else:
            text = _corpus()
            ds = _stage(
                rows,
                "dataset build",
                lambda: (
                    text_dataset(
                        text, vocab_size=K, seq_len=T, embeddings="onehot", stride=stride
                    ).dataset
                ),
            )
        graphs = _stage(rows, "graphs", build_priority_graphs, ds)
        _stage(rows, "graphs text", lambda: graphs.summary() + graphs.overview())
        if kind != "zipf" and K <= 10_000:
            from attnmech.studies.report import plot_priority_graphs, save_figure

            def draw():
                fig = plot_priority_graphs(graphs, max_queries=16)
                with tempfile.TemporaryDirectory() as tmp:
                    save_figure(fig, Path(tmp) / "graphs", formats=("png",))

            _stage(rows, "graphs drawing (16 panels)", draw)
        svm = _stage(rows, "Graph-SVM", solve_token_svm, graphs, ds.embedding_table)
        fin = _stage(rows, "W_fin", solve_token_finite, ds, graphs)
    info = (
        f"K={ds.vocab_size} T={T} n={ds.n_samples} nodes={graphs.n_nodes} "
        f"edges={graphs.n_edges} SCCs={graphs.n_sccs} (largest {int(graphs.scc_size.max())}); "
        f"W_svm: {svm.status.value}, {int(svm.constraints.strict.sum())} strict constraints, "
        f"max violation {svm.max_violation:.1e}, gap {svm.relative_gap:.1e}; W_fin: "
        f"{fin.status.value}, dim S_fin {fin.dimension}, gradient {fin.gradient_norm:.1e}"
    )
    return [info, rows]


def _reference(args: tuple) -> list:
    """Dense solvers against the token-space ones on the same data (np.eye embeddings).

    ``W_fin`` runs to a gradient norm of 1e-13 (default 1e-10) so that the comparison shows the
    solvers, not their stopping points: at 1e-10 the two may stop one Newton step apart.
    """
    K, T, n_max, repeats = args
    from threadpoolctl import threadpool_limits

    from attnmech.theory.finite import solve_finite
    from attnmech.theory.graphs import build_priority_graphs
    from attnmech.theory.svm import solve_graph_svm
    from attnmech.data.text import text_dataset
    from attnmech.theory.tokenspace import solve_token_finite, solve_token_svm

    text = _corpus()
    ds = text_dataset(text, vocab_size=K, seq_len=T, embeddings="onehot", max_samples=n_max).dataset
    dense_ds = ds.with_embeddings(np.eye(K))
    graphs = build_priority_graphs(ds)
    times: dict[str, list[float]] = {}
    with threadpool_limits(1):
        for _ in range(repeats):
            for name, fn in [
                ("dense Graph-SVM", lambda: solve_graph_svm(graphs, dense_ds.embeddings)),
                ("dense W_fin", lambda: solve_finite(dense_ds, graphs, tol=1e-13)),
                ("token Graph-SVM", lambda: solve_token_svm(graphs, ds.embedding_table)),
                ("token W_fin", lambda: solve_token_finite(ds, graphs, tol=1e-13)),
            ]:
                start = time.perf_counter()
                out = fn()
                times.setdefault(name, []).append(time.perf_counter() - start)
                if name.startswith("dense Graph"):
                    W_svm_dense = out.W_svm
                elif name.startswith("dense W"):
                    W_fin_dense = out.W_fin
                elif name.startswith("token Graph"):
                    W_svm_token = out.W_svm
                else:
                    W_fin_token = out.W_fin
    diff = (
        float(np.abs(W_svm_dense - W_svm_token).max()),
        float(np.abs(W_fin_dense - W_fin_token).max()),
    )
    return [f"K={K} T={T} n={ds.n_samples}", times, diff]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000:16,5000:32", help="K:T pairs (word level)")
    parser.add_argument(
        "--reference",
        default="1000:16:1500",
        help="K:T:n of the dense reference (the first n samples; dense K=1000 with all samples "
        "took 396 s)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="reference runs (median)")
    parser.add_argument("--huge", action="store_true", help="also run the K=50,000 theory")
    parser.add_argument("--zipf-only", action="store_true", help="huge: only the Zipf K=50,000")
    opts = parser.parse_args()
    ctx = mp.get_context("spawn")
    pairs = [s.split(":") for s in opts.sizes.split(",") if s]
    jobs: list[tuple] = [("words", int(k), int(t), None) for k, t in pairs]
    if opts.huge:
        if not opts.zipf_only:
            jobs.append(("words", 30_000, 16, 4))
        jobs.append(("zipf", 50_000, 16, None))
    print("stage | seconds | peak RSS so far (GB)")
    for job in jobs:
        with ctx.Pool(1) as pool:
            info, rows = pool.apply(_run_size, (job,))
        label = "Zipf synthetic" if job[0] == "zipf" else "Shakespeare words"
        print(f"\n## {label}: {info}")
        total = 0.0
        for name, seconds, rss in rows:
            total += seconds if name in ("Graph-SVM", "W_fin") else 0.0
            print(f"{name:28s} | {seconds:8.2f} | {rss:6.2f}")
        print(f"{'Graph-SVM + W_fin':28s} | {total:8.2f} |")
    if opts.reference:
        K, T, n_max = (int(v) for v in opts.reference.split(":"))
        with ctx.Pool(1) as pool:
            info, times, diff = pool.apply(_reference, ((K, T, n_max, opts.repeats),))
        print(f"\n## dense reference ({info}; median of {opts.repeats}, 1 BLAS thread)")
        for name, values in times.items():
            print(f"{name:28s} | {statistics.median(values):8.2f} |")
        print(
            f"max |W_svm dense - token| = {diff[0]:.1e}, max |W_fin dense - token| = {diff[1]:.1e}"
        )


if __name__ == "__main__":
    main()

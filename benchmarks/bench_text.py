"""Per-stage cost of the held-out text pipeline (`attnmech text`) at language-sized vocabularies.

For each size (word level, all Shakespeare files, one-hot, non-overlapping windows, --unk
drop-labels) a fresh process measures: building the windows, solving the theory (token space),
one training step without metrics (NGD; on the pair entries of W, as train() runs one-hot
data, and on the dense K x K W for reference), one call of the training metrics (sparse score
tables, factored S_fin projection, TV over window cells), one W_fin(t) step, and the held-out
evaluation.
The "dense metrics" column is the reference: the same metrics through dense d x d matrices, the
dense [p, d, d] S_fin basis and (n, K) probability tables, run only where that basis fits.
Medians of --repeats runs, one BLAS / torch thread. Peak RSS is the process's peak so far.

    PYTHONPATH=src python benchmarks/bench_text.py
    PYTHONPATH=src python benchmarks/bench_text.py --sizes 1000:16,5000:32 --reference 200:8
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "shakespeare"


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _dense_metrics(W: np.ndarray, theory, recorder, inputs) -> dict[str, float]:
    """The reference: dense W_svm / W_fin, the dense S_fin basis and (n, K) tables."""
    import torch

    from attnmech.layer.metrics import correlation, fitted_scale
    from attnmech.layer.model import pair_scores

    d = W.shape[-1]
    W_svm, W_fin = np.asarray(theory.W_svm), np.asarray(theory.W_fin)
    basis = theory.finite.basis.reshape(-1, d, d)
    proj = np.einsum("p,pij->ij", np.einsum("ij,pij->p", W, basis), basis)
    R = fitted_scale(W, W_svm, W_fin)
    head = recorder.head
    state = head.forward(pair_scores(torch.as_tensor(W[None]), inputs), inputs)
    probs = head.probabilities(state, inputs).numpy()
    return {
        "corr_svm": correlation(W, W_svm),
        "corr_svm_fin": correlation(W, W_fin + R * W_svm),
        "corr_perp_svm": correlation(W - proj, W_svm),
        "fin_gap": float(np.linalg.norm(proj - W_fin)),
        "automaton_tv": float(recorder.automaton_tv(probs, np.array([R]))[0]),
    }


def one_size(K: int, T: int, repeats: int, reference: bool) -> dict[str, float]:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
    from attnmech.studies.text import TextRunConfig, evaluate_heldout, prepare_text
    from attnmech.layer.metrics import TrajectoryMetrics
    from attnmech.layer.model import AttentionConfig, AttentionObjective, inputs_from_datasets
    from attnmech.layer.optim import OPTIMIZERS
    from attnmech.theory.solve import solve

    out: dict[str, float] = {"K": K, "T": T}
    t0 = time.perf_counter()
    data = prepare_text(CORPUS, TextRunConfig(vocab_size=K, seq_len=T))
    out["data_s"] = time.perf_counter() - t0
    ds = data.train_dataset
    out["n_train"], out["n_test"] = ds.n_samples, int(data.test_labels.size)
    t0 = time.perf_counter()
    theory = solve(ds)
    out["theory_s"] = time.perf_counter() - t0
    out["dim_S_fin"] = theory.finite.dimension
    inputs = inputs_from_datasets(ds)
    objective = AttentionObjective(inputs, AttentionConfig())
    rule = OPTIMIZERS["ngd"](0.1)
    rng = np.random.default_rng(0)
    params = torch.as_tensor(rng.uniform(-1, 1, size=(1, K, K)) / np.sqrt(K))
    state = rule.init(params)

    def step() -> None:
        nonlocal params
        loss, grad = objective(params)
        params = rule.update(params, grad, loss, state, 0)

    step()
    out["train_step_dense_s"] = _median_time(step, repeats)
    # what train() runs for one-hot data: the optimiser on the pair entries of W alone
    theta = params.reshape(-1)[inputs.pair_flat][None].clone()
    theta_state = rule.init(theta)

    def pair_step() -> None:
        nonlocal theta
        loss, dpair = objective.pair_gradient(theta[0])
        theta = rule.update(theta, dpair[None], loss, theta_state, 0)

    pair_step()
    out["train_step_s"] = _median_time(pair_step, repeats)
    t0 = time.perf_counter()
    recorder = TrajectoryMetrics(inputs, [ds], [theory])
    out["metrics_setup_s"] = time.perf_counter() - t0
    W = params.numpy()
    got = recorder(W)
    out["metrics_s"] = _median_time(lambda: recorder(W), repeats)
    # what train() logs for one-hot data: the metrics from the pair entries alone
    pair_recorder = TrajectoryMetrics(inputs, [ds], [theory])
    pair_recorder.use_pair_entries(params)
    theta_now = params.reshape(-1)[inputs.pair_flat][None]
    pair_got = pair_recorder(theta_now)
    out["metrics_pairs_s"] = _median_time(lambda: pair_recorder(theta_now), repeats)
    out["pairs_vs_dense_diff"] = max(
        abs(float(pair_got[k][0]) - float(got[k][0])) for k in got if np.isfinite(got[k][0])
    )
    # one W_fin(t) step (reduced data, gradient projected on S_fin)
    from attnmech.layer.finite_path import reduced_inputs
    from attnmech.layer.metrics import FiniteProjection

    red = AttentionObjective(reduced_inputs([ds], [theory]), AttentionConfig())
    projection = FiniteProjection([theory], K)
    Wf = torch.zeros(1, K, K, dtype=torch.float64)
    fstate = rule.init(Wf)

    def fin_step() -> None:
        nonlocal Wf
        loss, grad = red(Wf)
        Wf = rule.update(Wf, projection.project_tensor(grad), loss, fstate, 0)

    fin_step()
    out["fin_step_s"] = _median_time(fin_step, repeats)
    t0 = time.perf_counter()
    evaluate_heldout(
        data.test_tokens,
        data.test_labels,
        W=W[0],
        E=ds.embedding_table,
        theory=theory,
        fitted_R=float(got["fitted_R"][0]),
        unigram=data.unigram,
        bigram=data.bigram,
        unk=data.unk,
    )
    out["evaluate_s"] = time.perf_counter() - t0
    if reference:
        dense = _dense_metrics(W[0], theory, recorder, inputs)
        out["dense_metrics_s"] = _median_time(
            lambda: _dense_metrics(W[0], theory, recorder, inputs), repeats
        )
        out["max_abs_diff"] = max(abs(float(got[k][0]) - v) for k, v in dense.items())
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000:16,5000:32", help="K:T,... (sparse path only)")
    parser.add_argument("--reference", default="200:8", help="K:T,... also with dense metrics")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--dense", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        K, T = (int(x) for x in args.one.split(":"))
        print(json.dumps(one_size(K, T, args.repeats, args.dense)))
        return
    jobs = [(s, True) for s in args.reference.split(",") if s] + [
        (s, False) for s in args.sizes.split(",") if s
    ]
    rows = []
    for size, dense in jobs:
        cmd = [sys.executable, __file__, "--one", size, "--repeats", str(args.repeats)]
        cmd += ["--dense"] if dense else []
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{size}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    cols = [
        ("K", "K"),
        ("T", "T"),
        ("n_train", "n train"),
        ("dim_S_fin", "dim S_fin"),
        ("data_s", "data"),
        ("theory_s", "theory"),
        ("train_step_s", "train step (pairs)"),
        ("train_step_dense_s", "train step (dense W)"),
        ("metrics_pairs_s", "metrics (pair entries)"),
        ("pairs_vs_dense_diff", "pairs vs dense W diff"),
        ("metrics_s", "metrics (sparse, dense W)"),
        ("dense_metrics_s", "metrics (dense ref.)"),
        ("max_abs_diff", "max diff"),
        ("fin_step_s", "W_fin(t) step (dense W)"),
        ("evaluate_s", "held-out eval"),
        ("peak_rss_mb", "peak RSS MB"),
    ]
    print("| " + " | ".join(c[1] for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        cells = []
        for key, _ in cols:
            v = row.get(key)
            if v is None:
                cells.append("-")
            elif key in ("max_abs_diff", "pairs_vs_dense_diff"):
                cells.append(f"{v:.1e}")
            elif isinstance(v, float):
                cells.append(f"{v:.3f}" if v < 100 else f"{v:.0f}")
            else:
                cells.append(str(v))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Wall time of a sweep on the local backend: 1000 trials of the paper's first setting (n=6, T=4,
K=6, d=8, cyclic data, 4000 normalised-GD steps at lr 0.01, the theory metrics at the end),
against a reference measured in the same run: the same trials as sequential single-dataset
``attnmech.train(ds, config, theory=True)`` calls (how one would script it without sweeps), timed
on a subset and extrapolated.

Run:  python benchmarks/bench_sweep.py [--trials 1000] [--workers 2] [--reference-trials 5]
      [--batch 0] [--device cpu]

``--batch 0`` (default) batches all trials of the cell shape into ``workers`` tasks (one batched
training call per worker). Workers and the reference use one torch / BLAS thread each. The sweep
is timed once (it is long); the reference's time per trial is the median over ``--repeats`` runs
of the subset. Also printed: the sweep's mean final corr(W, W_svm) (the paper's notebook:
0.986 +- 0.005 over 10 trials), the load average before and after, and the time of one training
step (risk, gradient and normalised-GD update) of attnmech against a hand-fused torch step of the
same model, both at batch 1 (the paper's size) and at the sweep's batch, measured in the same run
(median of ``--repeats`` blocks): ``train()``'s step, ``exact`` (the gradient-only step of
``train_final``, bit for bit ``train()``'s), ``scores`` (the score-space step the sweep runs, see
``attnmech.layer.scorespace``) and the hand-fused torch step. Where the sweep's time goes is
printed from its rows (``solve_time_s``, ``train_time_s``). The sweep trains in score space, so
its rows equal ``train()``'s up to round-off amplified by 4000 normalised steps; the yardstick,
``train()`` against itself with the initial ``W`` changed by one part in 1e15, is printed beside.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time

import numpy as np

SPEC = """
[sweep]
name = "bench"
seed = 0
trials = {trials}
batch_trials = {batch}
metrics = ["corr_svm", "corr_svm_fin", "corr_perp_svm", "fin_gap", "top_scc_mass", "loss"]

[fixed]
T = 4
K = 6
d = 8
graph = "cyclic"
optimizer = "ngd"
lr = 0.01
steps = {steps}

[axes]
n = [6]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--batch", type=int, default=0, help="sweep.batch_trials (0: trials / workers)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--step-repeats", type=int, default=200, help="steps per timed block")
    parser.add_argument("--reference-trials", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from threadpoolctl import threadpool_limits

    import attnmech
    from attnmech.studies.sweeps import load_results, parse_sweep_spec, run_sweep

    torch.set_num_threads(1)
    batch = args.batch or math.ceil(args.trials / args.workers)
    print(f"load average before: {_load()}")
    spec = parse_sweep_spec(
        SPEC.format(trials=args.trials, steps=args.steps, batch=batch), "bench.toml"
    )
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = run_sweep(spec, os.path.join(tmp, "out"), workers=args.workers, device=args.device)
        sweep_s = time.perf_counter() - started
        table = load_results(result.out_dir)
    corr = table["corr_svm"]
    assert len(table) == args.trials and np.isfinite(corr).all()

    # reference: the first trials of the sweep, one train call each, theory solved per call
    rows = np.flatnonzero(table["trial"] < args.reference_trials)
    samples = []
    with threadpool_limits(1):
        for _ in range(args.repeats):
            started = time.perf_counter()
            for i in rows:
                ds = attnmech.make_dataset(
                    6, 4, 6, 8, graph="cyclic", seed=int(table["dataset_seed"][i])
                )
                init = np.random.default_rng(int(table["init_seed"][i])).uniform(
                    -1 / math.sqrt(8), 1 / math.sqrt(8), size=(8, 8)
                )
                config = attnmech.TrainConfig(
                    steps=args.steps, log_every=0, init=init, num_threads=1
                )
                run = attnmech.train(ds, config, theory=True)
            samples.append((time.perf_counter() - started) / len(rows))
    per_trial = float(np.median(samples))
    last = rows[-1]
    check = abs(float(run.history["corr_svm"][-1]) - float(corr[last]))
    with threadpool_limits(1):  # train() against itself, the initial W moved by 1e-15
        nudged_config = attnmech.TrainConfig(
            steps=args.steps, log_every=0, init=init * (1 + 1e-15), num_threads=1
        )
        nudged = attnmech.train(ds, nudged_config, theory=True)
    yardstick = abs(float(run.history["corr_svm"][-1]) - float(nudged.history["corr_svm"][-1]))
    # the theory solve of a trial (the workers' other big part), timed here on 50 trials' datasets
    from attnmech.theory.solve import solve

    solve_times = []
    with threadpool_limits(1):
        for i in range(min(50, len(table))):
            ds_i = attnmech.make_dataset(
                6, 4, 6, 8, graph="cyclic", seed=int(table["dataset_seed"][i])
            )
            started = time.perf_counter()
            solve(ds_i)
            solve_times.append(time.perf_counter() - started)
    solve_s = float(np.median(solve_times)) * args.trials / args.workers
    train_s = float(np.nansum(table["train_time_s"])) / args.workers

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"torch {torch.__version__}; workers {args.workers}, 1 thread each"
    )
    print(f"{'case':<44} {'trials':>7} {'wall s':>9} {'s/trial':>9}")
    print(
        f"{'sweep (local backend, batched tasks)':<44} {args.trials:>7} {sweep_s:>9.1f} "
        f"{sweep_s / args.trials:>9.4f}"
    )
    ref_total = per_trial * args.trials
    print(
        f"{'reference: sequential train() per trial':<44} {args.trials:>7} "
        f"{ref_total:>9.1f} {per_trial:>9.4f}  (measured on {len(rows)}, extrapolated)"
    )
    print(
        f"speed-up: {ref_total / sweep_s:.1f}x; target: the sweep at or under 15 s on 2 quiet cores"
    )
    print(
        f"mean final corr(W, W_svm) over {args.trials} trials: {corr.mean():.4f} "
        f"(std {corr.std():.4f}, min {corr.min():.4f}); paper's notebook: 0.986 +- 0.005"
    )
    print(
        f"reference vs sweep, same trial: |corr difference| = {check:.1e}; train() vs itself "
        f"with init * (1 + 1e-15): {yardstick:.1e}"
    )
    print(
        f"where a worker's time goes: theory solves about {solve_s:.1f} s "
        f"({np.median(solve_times) * 1e3:.1f} ms per trial, median of {len(solve_times)}, "
        f"timed after the sweep), training + final metrics {train_s:.1f} s (train_time_s), the "
        f"rest (start-up, datasets, files) {sweep_s - solve_s - train_s:.1f} s of {sweep_s:.1f} s"
    )
    print(f"batch_trials {batch}; load average after: {_load()}")
    print()
    names = ("ours", "exact", "scores", "fused")
    print(
        f"{'per-step time (us), median of ' + str(args.repeats) + ' blocks':<36} {'batch':>6} "
        f"{'train()':>9} {'exact':>9} {'scores':>9} {'fused':>9} {'scores/fused':>12}  load"
    )
    for size in (1, batch):
        t, diff = _step_times(size, args.step_repeats, args.repeats, args.device)
        cells = " ".join(f"{t[k]:>9.1f}" if k in t else f"{'n/a':>9}" for k in names)
        ratio = f"{t['scores'] / t['fused']:>12.2f}" if "scores" in t else f"{'n/a':>12}"
        print(
            f"{'gradient + ngd update':<36} {size:>6} {cells} {ratio}  {_load().split()[0]}  "
            f"(max |W diff| after a block: {diff:.1e})"
        )


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def _step_times(
    batch: int, steps: int, repeats: int, device: str
) -> tuple[dict[str, float], float]:
    """Median time (us) of one normalised-GD step: ``ours`` (the objective and step rule that
    ``train()`` runs), ``fast`` (the gradient-only step of ``train_final``, where the library has
    it) and ``fused`` (a hand-fused torch step of the same model: dense positions, iden head, log
    loss, ngd); and the largest difference of W between them after a block."""
    import torch
    from threadpoolctl import threadpool_limits

    import attnmech
    from attnmech.layer.model import AttentionObjective, inputs_from_datasets
    from attnmech.layer.optim import make_step_rule

    datasets = [attnmech.make_dataset(6, 4, 6, 8, graph="cyclic", seed=s) for s in range(batch)]
    inputs = inputs_from_datasets(datasets, dtype=torch.float64, device=device)
    objective = AttentionObjective(inputs)
    rule = make_step_rule("ngd", 0.01)
    W0 = torch.as_tensor(
        np.random.default_rng(0).uniform(-(8**-0.5), 8**-0.5, (batch, 8, 8)), device=device
    )
    # the hand-fused step: every sample has T = 4 real positions here (no padding)
    E = torch.as_tensor(np.stack([ds.embeddings for ds in datasets]), device=device)
    seqs = torch.as_tensor(np.stack([ds.padded() for ds in datasets]), device=device)  # (B,n,T)
    labels = torch.as_tensor(np.stack([np.asarray(ds.labels) for ds in datasets]), device=device)
    idx = torch.arange(batch, device=device)[:, None, None]
    X = E[idx, seqs]  # (B, n, T, d)
    xq = X[:, :, -1, :]  # (B, n, d): the query is the last token
    is_label = seqs == labels[..., None]  # (B, n, T)
    n = seqs.shape[1]

    def fused(W):
        s = torch.einsum("bntd,bde,bne->bnt", X, W, xq)
        logp = torch.log_softmax(s, -1)
        p = logp.exp()
        py = (p * is_label).sum(-1, keepdim=True)
        g = (p - p * is_label / py) / n  # d(-log p_y)/ds, averaged over samples
        G = torch.einsum("bnt,bntd,bne->bde", g, X, xq)
        norm = torch.linalg.vector_norm(G.flatten(1), dim=1).clamp_min(1e-300)
        return W - 0.01 * G / norm[:, None, None]

    def ours(W):
        loss, grad = objective(W)
        return rule.update(W, grad, loss, {}, 0)

    def on_weights(fn):  # a step W -> W as (step, final) over a block started at W0
        def start(W0):
            state = [W0.clone()]

            def step():
                state[0] = fn(state[0])

            return step, lambda: state[0]

        return start

    candidates = [("ours", on_weights(ours)), ("fused", on_weights(fused))]
    try:
        from attnmech.layer.model import IdentityLogGradient
    except ImportError:  # a library without the fast path (the "before" of a comparison)
        pass
    else:
        gradient = IdentityLogGradient(inputs)

        def exact(W):
            grad = gradient(W)
            norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)
            scale = 0.01 / torch.where(norm > 0, norm, torch.ones_like(norm))
            return W - scale.view(-1, 1, 1) * grad

        candidates.append(("exact", on_weights(exact)))
    try:
        from attnmech.layer.scorespace import ScoreSpaceDescent
    except ImportError:  # a library without the score-space path
        pass
    else:

        def scores(W0):  # built once per run (not timed), then one step per call
            descent = ScoreSpaceDescent(inputs, W0.clone(), normalized=True)
            return (lambda: descent.step(0.01)), descent.weights

        candidates.append(("scores", scores))
    times: dict[str, list[float]] = {name: [] for name, _ in candidates}
    finals = {}
    with threadpool_limits(1):
        for _ in range(repeats):
            for name, start in candidates:
                step, final = start(W0)
                for _ in range(5):
                    step()
                step, final = start(W0)
                started = time.perf_counter()
                for _ in range(steps):
                    step()
                times[name].append((time.perf_counter() - started) / steps * 1e6)
                finals[name] = final()
    diff = max(float((finals["ours"] - W).abs().max()) for W in finals.values())
    return {name: float(np.median(v)) for name, v in times.items()}, diff


if __name__ == "__main__":
    main()

"""Wall time of a sweep on the local backend: 1000 trials of the paper's first setting (n=6, T=4,
K=6, d=8, cyclic data, 4000 normalised-GD steps at lr 0.01, the theory metrics at the end),
against a reference measured in the same run: the same trials as sequential single-dataset
``attnmech.train(ds, config, theory=True)`` calls (how one would script it without sweeps), timed
on a subset and extrapolated.

Run:  python benchmarks/bench_sweep.py [--trials 1000] [--workers 2] [--reference-trials 5]

Workers and the reference use one torch / BLAS thread each. The sweep is timed once (it is long);
the reference's time per trial is the median over ``--repeats`` runs of the subset. Also printed:
the sweep's mean final corr(W, W_svm) (the paper's notebook: 0.986 +- 0.005 over 10 trials).
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
    parser.add_argument("--batch", type=int, default=250, help="sweep.batch_trials")
    parser.add_argument("--reference-trials", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from threadpoolctl import threadpool_limits

    import attnmech
    from attnmech.studies.sweeps import load_results, parse_sweep_spec, run_sweep

    torch.set_num_threads(1)
    spec = parse_sweep_spec(
        SPEC.format(trials=args.trials, steps=args.steps, batch=args.batch), "bench.toml"
    )
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = run_sweep(spec, os.path.join(tmp, "out"), workers=args.workers)
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
                    num_steps=args.steps, log_every=0, init=init, num_threads=1
                )
                run = attnmech.train(ds, config, theory=True)
            samples.append((time.perf_counter() - started) / len(rows))
    per_trial = float(np.median(samples))
    last = rows[-1]
    check = abs(float(run.history["corr_svm"][-1]) - float(corr[last]))

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
    print(f"speed-up: {ref_total / sweep_s:.1f}x; target: sweep under 60 s")
    print(
        f"mean final corr(W, W_svm) over {args.trials} trials: {corr.mean():.4f} "
        f"(std {corr.std():.4f}, min {corr.min():.4f}); paper's notebook: 0.986 +- 0.005"
    )
    print(f"reference vs sweep, same trial: |corr difference| = {check:.1e}")


if __name__ == "__main__":
    main()

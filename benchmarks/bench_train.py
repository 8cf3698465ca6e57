"""Time per training step (metrics logging off) of attnmech's batched analytic-gradient loop,
against a naive reference measured in the same run: one autograd graph per trial, looped in
Python over the trials (how a per-experiment notebook is usually written).

Run:  python benchmarks/bench_train.py [--threads N] [--quick]

Each case times full-batch normalised-GD steps (the gradient and the update). The ``attnmech``
column is the library loop (:func:`attnmech.layer.optim.gradient_descent` with the model's analytic
gradient); ``reference`` is the naive loop; ``ratio`` is reference / attnmech. Times are the median
over repeats of the mean time per step in a block of steps. torch's thread count is set here only.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np
import torch

import attnmech
from attnmech.layer.model import AttentionObjective, inputs_from_datasets
from attnmech.layer.optim import NormalizedGradientDescent, gradient_descent
from attnmech.layer.training import TrainConfig, train


def _time_per_step(run_block, steps: int, repeats: int) -> float:
    run_block(max(steps // 10, 1))  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_block(steps)
        samples.append((time.perf_counter() - start) / steps)
    return float(np.median(samples))


def attnmech_block(datasets, W0: np.ndarray, learning_rate: float):
    objective = AttentionObjective(inputs_from_datasets(datasets))
    rule = NormalizedGradientDescent(learning_rate)
    params = torch.as_tensor(W0)

    def run(steps: int) -> None:
        gradient_descent(objective, params, rule, steps)

    return run


def reference_block(datasets, W0: np.ndarray, learning_rate: float):
    """Naive: per trial, an autograd forward/backward over that trial's samples, then NGD."""
    trials = []
    for b, ds in enumerate(datasets):
        E = torch.as_tensor(np.array(ds.embeddings))
        X = E[torch.as_tensor(ds.padded().clip(min=0))]  # (n, T, d)
        mask = torch.as_tensor(ds.padded_mask())
        xq = E[torch.as_tensor(np.array(ds.last_tokens))]  # (n, d)
        is_label = torch.as_tensor(ds.padded() == ds.labels[:, None]) & mask
        trials.append((X, mask, xq, is_label, torch.as_tensor(W0[b]).clone()))

    def run(steps: int) -> None:
        for _ in range(steps):
            for b, (X, mask, xq, is_label, W) in enumerate(trials):
                W = W.detach().requires_grad_(True)
                query = xq @ W.T  # (n, d): W x_q, so that scores cost n T d, not n T d^2
                scores = (X @ query[:, :, None])[..., 0].masked_fill(~mask, -math.inf)  # (n, T)
                s = torch.softmax(scores, dim=1)
                loss = -torch.log((s * is_label).sum(1)).mean()
                (grad,) = torch.autograd.grad(loss, W)
                with torch.no_grad():
                    trials[b] = (X, mask, xq, is_label, W - learning_rate * grad / grad.norm())

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scale = 0.2 if args.quick else 1.0

    cases = [
        (
            "paper: 10 trials, n=6 T=4 K=6 d=8",
            [attnmech.make_dataset(6, 4, 6, 8, graph="cyclic", seed=s) for s in range(10)],
            2000,
            0.5,
        ),
        ("n=1000, T=4, K=6, d=8", [attnmech.make_dataset(1000, 4, 6, 8, seed=0)], 500, 1.0),
        ("n=100000, T=16, K=d=64", [attnmech.make_dataset(100_000, 16, 64, 64, seed=0)], 10, 50.0),
    ]
    print(
        f"attnmech {attnmech.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}, {torch.get_num_threads()} torch thread(s), float64"
    )
    header = (
        f"{'case':<36} {'attnmech ms/step':>17} {'target':>8} {'reference ms/step':>18} "
        f"{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, datasets, steps, target_ms in cases:
        d = datasets[0].embedding_dim
        W0 = np.random.default_rng(0).uniform(
            -1 / math.sqrt(d), 1 / math.sqrt(d), (len(datasets), d, d)
        )
        steps = max(int(steps * scale), 2)
        repeats = 5 if not args.quick else 3
        ours = _time_per_step(attnmech_block(datasets, W0, 0.01), steps, repeats) * 1e3
        ref_steps = max(steps // 4, 2)
        reference = _time_per_step(reference_block(datasets, W0, 0.01), ref_steps, repeats) * 1e3
        flag = "ok" if ours < target_ms else "MISS"
        print(
            f"{name:<36} {ours:>17.4f} {'<' + format(target_ms, 'g'):>8} {reference:>18.4f} "
            f"{reference / ours:>6.1f}x  {flag}"
        )

    # end to end: train() for the paper setting, logging off (log_every=0 logs only the ends)
    datasets = cases[0][1]
    config = TrainConfig(num_steps=int(4000 * scale), log_every=0, num_threads=args.threads)
    start = time.perf_counter()
    run = train(datasets, config)
    total = time.perf_counter() - start
    print(
        f"\ntrain() paper setting, 10 trials x {config.num_steps} NGD steps, logging off: "
        f"{total:.3f} s in all ({total / config.num_steps * 1e3:.4f} ms/step incl. set-up); "
        f"final mean loss {run.history['loss'][-1].mean():.4g}"
    )


if __name__ == "__main__":
    main()

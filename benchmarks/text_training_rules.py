"""TV(layer, automaton) against training steps: NGD against the split normalised step.

For one corpus (default: all Shakespeare files, K = 1000, T = 16, one-hot) the script solves the
theory once, trains the layer on its pair entries with each rule, and at log-spaced steps
measures TV(layer, automaton at R = infinity) on the training windows and on the held-out
windows, split into decided / undecided (see attnmech.studies.text.evaluation), and
corr(W, W_svm). It prints one table and draws docs/text/tv_vs_steps.png.

    PYTHONPATH=src python benchmarks/text_training_rules.py
    PYTHONPATH=src python benchmarks/text_training_rules.py --corpus FILE --K 300 --steps 1000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve()
    parser.add_argument("--corpus", default=str(here.parents[2] / "shared/data/shakespeare"))
    parser.add_argument("--K", type=int, default=1000)
    parser.add_argument("--T", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--rules", default="ngd:0.1,split-ngd:0.5,split-ngd:1")
    parser.add_argument("--figure", default=str(here.parents[1] / "docs/text/tv_vs_steps.png"))
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot-only", default=None, help="Draw the figure from a --json file.")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(Path(args.plot_only).read_text()), args.figure)
        return

    import torch
    from threadpoolctl import threadpool_limits

    from attnmech.layer.metrics import TrajectoryMetrics
    from attnmech.layer.model import AttentionObjective, inputs_from_datasets
    from attnmech.layer.onehot import OneHotLayer, pair_projection, uniform_entries
    from attnmech.layer.optim import gradient_descent, make_step_rule
    from attnmech.studies.text import CATEGORIES, TextConfig, prepare_text
    from attnmech.studies.text.evaluation import window_categories
    from attnmech.studies.text.study import _seen_pairs
    from attnmech.studies.text.windows import position_scores, softmax_rows, window_tv
    from attnmech.theory.solve import solve

    torch.set_num_threads(1)
    config = TextConfig(corpus=args.corpus, vocab_size=args.K, seq_len=args.T)
    data = prepare_text(None, config)
    ds = data.train_dataset
    with threadpool_limits(limits=1):
        theory = solve(ds)
    L_star = float(theory.finite.loss)
    automaton = theory.automaton()
    K = data.vocab_size
    X, Xt = ds.padded(), data.test_tokens
    auto_train = np.asarray(automaton.position_weights(X, X[:, -1]))
    auto_test = np.asarray(automaton.position_weights(Xt, Xt[:, -1]))
    q = np.broadcast_to(Xt[:, -1:], Xt.shape)
    keys = np.asarray(_seen_pairs(ds, K))
    want = q * K + Xt
    pos = np.minimum(np.searchsorted(keys, want), keys.size - 1)
    cat, _ = window_categories(Xt, np.asarray(automaton.svm_table[Xt, q]), keys[pos] == want)
    decided = cat == CATEGORIES.index("decided")

    inputs = inputs_from_datasets(ds)
    objective = AttentionObjective(inputs)
    flat = inputs.pair_flat.numpy()
    values0, total_sq = uniform_entries(0, K, flat, 1 / math.sqrt(K))
    rest_sq = total_sq - float(values0 @ values0)
    recorder = TrajectoryMetrics(inputs, [ds], [theory])
    recorder.use_pair_entries(None, off_sq=rest_sq)
    base = OneHotLayer(K, flat.astype(np.int64), values0, "uniform", 0, rest_sq)
    base = base.with_entries(want.ravel())
    index = np.searchsorted(base.keys, flat)
    checkpoints = sorted({int(s) for s in np.unique(np.geomspace(25, args.steps, 12).astype(int))})
    rows = []
    print(
        f"corpus {args.corpus}: K={K}, T={args.T}, {ds.n_samples} training windows, "
        f"{Xt.shape[0]} held-out ({decided.mean():.3f} decided); L* = {L_star:.6g}; "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print("rule | lr | step | TV train | TV held-out decided | undecided | corr_svm | fitted R | s")
    for spec in args.rules.split(","):
        name, lr = spec.split(":")
        options = {"lower_bound": L_star} if name in ("polyak-capped", "split-ngd") else {}
        rule = make_step_rule(name, float(lr), options)
        if hasattr(rule, "bind_projection"):
            rule.bind_projection(pair_projection(theory, flat, K, torch.float64, "cpu"))
        started = time.perf_counter()

        def objective_on_pairs(theta):
            risk, dpair = objective.pair_gradient(theta[0])
            return risk, dpair[None]

        def observer(step, theta, loss, grad, state, name=name, lr=lr, started=started):
            if step not in checkpoints:
                return False
            values = base.values.copy()
            values[index] = theta.detach().numpy()[0]
            layer = OneHotLayer(K, base.keys, values, "uniform", 0, base.rest_sq)
            tv_train = window_tv(softmax_rows(position_scores(layer, X, None)), auto_train, X)
            tv_test = window_tv(softmax_rows(position_scores(layer, Xt, None)), auto_test, Xt)
            metrics = recorder(theta)
            row = {
                "rule": name,
                "lr": float(lr),
                "step": step,
                "tv_train": float(tv_train.mean()),
                "tv_decided": float(tv_test[decided].mean()),
                "tv_undecided": float(tv_test[~decided].mean()),
                "corr_svm": float(metrics["corr_svm"][0]),
                "fitted_R": float(metrics["fitted_R"][0]),
                "seconds": time.perf_counter() - started,
            }
            rows.append(row)
            print(
                f"{name} | {lr} | {step} | {row['tv_train']:.4f} | {row['tv_decided']:.4f} | "
                f"{row['tv_undecided']:.4f} | {row['corr_svm']:.4f} | {row['fitted_R']:.3g} | "
                f"{row['seconds']:.1f}",
                flush=True,
            )
            return False

        theta0 = torch.as_tensor(values0[None])
        gradient_descent(objective_on_pairs, theta0, rule, args.steps + 1, observer=observer)
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    plot(rows, args.figure)
    print(f"figure: {args.figure}")


def plot(rows: list[dict], path: str) -> None:
    """TV against steps, one line per (rule, lr), on the three window sets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for ax, key, title in zip(
        axes,
        ("tv_train", "tv_decided", "tv_undecided"),
        ("training windows", "held-out, decided", "held-out, undecided"),
        strict=False,
    ):
        for rule, lr in dict.fromkeys((r["rule"], r["lr"]) for r in rows):
            pts = [r for r in rows if r["rule"] == rule and r["lr"] == lr]
            ys = [max(r[key], 1e-7) for r in pts]
            ax.plot([r["step"] for r in pts], ys, "o-", label=f"{rule}, lr {lr:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training steps")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("TV(layer, automaton at R = inf)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()

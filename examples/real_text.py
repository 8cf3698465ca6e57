"""Real text: does a single attention layer trained on Shakespeare follow the theory?

Cuts a play or poem into windows of T words (the K - 1 most frequent words plus <unk>, windows
whose next word is absent dropped: the theory needs the label inside the window), solves the
Graph-SVM and the finite part, trains with normalised GD while measuring the distance to the
prediction, and lets the automaton write a continuation.

Run:  python examples/real_text.py [--text FILE] [--K 48] [--T 8] [--steps 4000]
(without --text: Shakespeare's sonnets, bundled with attnmech)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import attnmech

def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--text", type=Path, default=None, help="a plain-text file (default: the bundled sonnets)"
    )
    parser.add_argument("--K", type=int, default=48, help="vocabulary size (with <unk>)")
    parser.add_argument("--T", type=int, default=8, help="window length")
    parser.add_argument("--n", type=int, default=1500, help="at most this many samples")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args(argv)
    if args.text is None:
        args.text = attnmech.bundled_corpus("sonnets")

    cut = attnmech.text_dataset(
        args.text,
        vocab_size=args.K,
        seq_len=args.T,
        embedding_dim=args.K,
        stride=2,
        max_samples=args.n,
        unknown_labels=False,
    )
    ds = cut.dataset
    print(f"{args.text.name}: {cut.n_windows} windows, {ds.n_samples} kept; {ds!r}")
    theory = attnmech.solve(ds)
    print(theory.summary())
    config = attnmech.TrainConfig(
        steps=args.steps, learning_rate=args.lr, log_every=max(args.steps // 8, 1)
    )
    run = attnmech.train(ds, config, theory=theory)
    print(
        f"{'step':>6} {'loss':>8} {'corr(W,W_svm)':>14} {'top-SCC mass':>13} {'TV(automaton)':>14}"
    )
    for row in zip(
        run.history["step"],
        run.history["loss"],
        run.history["corr_svm"],
        run.history["top_scc_mass"],
        run.history["automaton_tv"],
        strict=True,
    ):
        print(f"{int(row[0]):>6} {row[1]:>8.4f} {row[2]:>14.4f} {row[3]:>13.4f} {row[4]:>14.4f}")
    prompt = ds.sequence(0)
    words = theory.automaton().generate(prompt, 12, seed=0)
    print(f"automaton: [{cut.decode(prompt)}] {cut.decode(words[prompt.size :])}")
    out = {k: float(np.asarray(run.history[k])[-1]) for k in ("corr_svm", "automaton_tv")}
    out.update(
        {f"start_{k}": float(np.asarray(run.history[k])[0]) for k in ("corr_svm", "automaton_tv")}
    )
    return out  # final values, and the values at step 0 as start_<name>


if __name__ == "__main__":
    main()

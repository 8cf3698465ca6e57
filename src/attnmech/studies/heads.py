"""Where the theory holds in real heads: small transformers against the corpus's priority graphs.

One run (``attnmech heads-study``, :func:`run_heads_study`):

1. the corpus is cut into next-token windows exactly as ``attnmech text`` does
   (:func:`attnmech.studies.text.prepare_text`: the first ``1 - holdout`` of the token stream for
   training, the end held out; the realizable windows of each part give its token-priority
   graphs);
2. small TransformerLens models are trained on the realizable training windows (loss at the last
   position) for several seeds, in variants that add one ingredient each to the setting the
   theory covers (1 attention-only layer, no positions): learned positions, an MLP, a second
   layer, four heads; an untrained model is the chance reference;
3. every head's token-level score table (:func:`attnmech.interp.head_scores`, tokens alone at
   position 0) is compared with the training graphs and the held-out graphs
   (:func:`attnmech.interp.compare_priorities`), and its fidelity to the head's real scores on
   held-out windows is measured (:func:`attnmech.interp.score_fidelity`);
4. beside them, attnmech's own trained layer (normalised GD on the same windows, one-hot) and the
   automaton of the theory (``W_svm`` first, ``W_fin`` inside SCCs).

Writes ``results.json``, ``REPORT.md``, ``agreement.png`` and ``priorities.png``, and the
trained models (``models/*.pt``, readable by ``attnmech heads``).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import check_writable
from ..data.dataset import Dataset, make_embeddings
from ..errors import InvalidParameterError
from ..theory.graphs import PriorityGraphs, build_priority_graphs

__all__ = [
    "HeadsStudyConfig",
    "VARIANTS",
    "run_heads_study",
    "plot_head_priorities",
    "corpus_graphs",
    "CorpusGraphs",
]

VARIANTS: dict[str, dict[str, Any]] = {
    "attn1-nopos": {},
    "attn1-pos": {"positions": True},
    "attn1-mlp": {"attn_only": False},
    "attn2-nopos": {"n_layers": 2},
    "attn1-4heads": {"n_heads": 4},
}
"""The model variants: each adds one ingredient to the theory's setting (the first one)."""

VARIANT_NOTES = {
    "attn1-nopos": "1 layer, attention only, no positions (closest to the theory; learned V/O "
    "maps, softmax scale)",
    "attn1-pos": "+ learned positional embeddings",
    "attn1-mlp": "+ an MLP after attention",
    "attn2-nopos": "+ a second attention layer",
    "attn1-4heads": "4 heads instead of 1",
    "untrained": "initialisation only (chance reference)",
}


@dataclass(frozen=True, slots=True)
class HeadsStudyConfig:
    """What :func:`run_heads_study` does."""

    vocab_size: int = 100  # K: the K-1 most frequent training words + <unk>
    seq_len: int = 8  # T: window length
    stride: int = 1  # step between windows
    holdout: float = 0.2  # held-out end of the token stream
    level: str = "word"  # word | char
    variants: tuple[str, ...] = tuple(VARIANTS)  # model variants (keys of VARIANTS)
    seeds: tuple[int, ...] = (0, 1, 2)  # one model per variant and seed
    d_model: int = 32  # residual width of the transformers
    num_steps: int = 400  # Adam steps (full batch)
    learning_rate: float = 0.01  # Adam step size
    layer_steps: int = 1000  # normalised-GD steps of attnmech's layer
    layer_learning_rate: float = 0.1  # its step size
    save_models: bool = True  # write models/*.pt
    extra: dict[str, Any] = field(default_factory=dict)  # recorded as given

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise InvalidParameterError(
                f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}"
            )
        if not self.seeds:
            raise InvalidParameterError("seeds is empty; give at least one seed")
        if not 0.0 < self.holdout < 1.0:
            raise InvalidParameterError(f"holdout must be in (0, 1), got {self.holdout}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


@dataclass(frozen=True, slots=True, eq=False)
class CorpusGraphs:
    """A corpus cut as ``attnmech text`` cuts it, with the graphs of both parts.

    Attributes
    ----------
    vocabulary : list of str
    train : Dataset
        Realizable training windows (one-hot).
    heldout : Dataset
        Realizable held-out windows (one-hot).
    train_graphs, heldout_graphs : PriorityGraphs
    test_tokens, test_labels : ndarray
        Every held-out window (realizable or not) and its next token.
    """

    vocabulary: list[str]
    train: Dataset
    heldout: Dataset
    train_graphs: PriorityGraphs
    heldout_graphs: PriorityGraphs
    test_tokens: np.ndarray
    test_labels: np.ndarray


def corpus_graphs(
    corpus: str | os.PathLike[str],
    *,
    vocab_size: int,
    seq_len: int,
    stride: int | None = None,
    holdout: float = 0.1,
    level: str = "word",
) -> CorpusGraphs:
    """Cut ``corpus`` as :func:`attnmech.studies.text.prepare_text` does; graphs of both parts."""
    from .text import TextRunConfig, prepare_text

    data = prepare_text(
        corpus,
        TextRunConfig(
            vocab_size=vocab_size, seq_len=seq_len, stride=stride, holdout=holdout, level=level
        ),
    )
    onehot = make_embeddings("onehot", data.vocab_size)
    real = (data.test_tokens == data.test_labels[:, None]).any(axis=1)
    if not real.any():
        raise InvalidParameterError(
            f"no held-out window of {corpus} holds its next token; give more text or a larger "
            "vocabulary / window"
        )
    heldout = Dataset(data.test_tokens[real], data.test_labels[real], onehot)
    return CorpusGraphs(
        vocabulary=data.vocabulary,
        train=data.train_dataset,
        heldout=heldout,
        train_graphs=build_priority_graphs(data.train_dataset),
        heldout_graphs=build_priority_graphs(heldout),
        test_tokens=data.test_tokens,
        test_labels=data.test_labels,
    )


# ------------------------------------------------------------------------------ figures
def plot_head_priorities(
    scores: np.ndarray,
    graphs: PriorityGraphs,
    queries: Any,
    *,
    names: Any = None,
    title: str = "",
    max_tokens: int = 25,
) -> Any:
    """One panel per query: each token of ``G^(q)`` at (head score, SCC level).

    Strict edges ``y -> j`` are drawn as lines, green when the head scores ``y`` above ``j`` and
    red otherwise; tokens of one SCC share a colour band. At most ``max_tokens`` tokens per panel
    (the highest-level ones); the panel title says how many were left out.
    """
    from .report import _new_figure

    qs = [int(q) for q in np.atleast_1d(np.asarray(queries, dtype=np.int64))]
    if not qs:
        raise InvalidParameterError("give at least one query to draw")
    S = np.asarray(scores, dtype=np.float64)
    cols = min(len(qs), 3)
    rows = -(-len(qs) // cols)
    fig = _new_figure(5.0 * cols, 3.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)

    def nm(t: int) -> str:
        return str(names[t]) if names is not None else str(t)

    for ax, q in zip(axes.ravel(), qs, strict=False):
        levels = graphs.levels(q)
        if not levels:
            ax.set_title(f"query {nm(q)}: never a last token")
            ax.axis("off")
            continue
        toks = sorted(levels, key=lambda t: (levels[t], t))[:max_tokens]
        left_out = len(levels) - len(toks)
        shown = set(toks)
        for y, j in graphs.edges(q):
            if y in shown and j in shown and levels[y] != levels[j]:
                same = int(graphs.scc_of(q, y)) == int(graphs.scc_of(q, j))
                if same:
                    continue
                ok = S[q, y] > S[q, j]
                ax.plot(
                    [S[q, y], S[q, j]],
                    [-levels[y], -levels[j]],
                    color="tab:green" if ok else "tab:red",
                    alpha=0.35,
                    lw=0.8,
                )
        xs = np.array([S[q, t] for t in toks])
        ys = np.array([-levels[t] for t in toks], dtype=float)
        ax.scatter(xs, ys, s=14, color="black", zorder=3)
        for t, x, yv in zip(toks, xs, ys, strict=True):
            ax.annotate(nm(t), (x, yv), fontsize=7, xytext=(2, 2), textcoords="offset points")
        more = f", {left_out} not shown" if left_out else ""
        ax.set_title(f"query '{nm(q)}' ({len(levels)} tokens{more})", fontsize=9)
        ax.set_xlabel("head score")
        ax.set_ylabel("- SCC level (top = highest priority)")
    for ax in axes.ravel()[len(qs) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _agreement_figure(summary: list[dict[str, Any]]) -> Any:
    from .report import _new_figure

    fig = _new_figure(10.0, 3.6)
    axes = fig.subplots(1, 3)
    labels = [row["variant"] for row in summary]
    x = np.arange(len(labels))
    for ax, key, title in zip(
        axes,
        ("strict_edge_agreement", "kendall_tau", "fidelity_pearson"),
        ("strict-edge agreement", "Kendall tau (SCC level vs score)", "table fidelity (held-out)"),
        strict=True,
    ):
        if key == "fidelity_pearson":
            vals = [row["fidelity_pearson_mean"] for row in summary]
            errs = [row["fidelity_pearson_std"] for row in summary]
            ax.bar(x, np.nan_to_num(vals), yerr=np.nan_to_num(errs), color="tab:gray")
        else:
            for shift, split, color in (
                (-0.2, "train", "tab:blue"),
                (0.2, "heldout", "tab:orange"),
            ):
                vals = [row[f"{split}_{key}_mean"] for row in summary]
                errs = [row[f"{split}_{key}_std"] for row in summary]
                ax.bar(
                    x + shift,
                    np.nan_to_num(np.asarray(vals, dtype=float)),
                    0.4,
                    yerr=np.nan_to_num(np.asarray(errs, dtype=float)),
                    color=color,
                    label=split,
                )
            ax.legend(fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
    return fig


# ------------------------------------------------------------------------------ the study
def _measure(scores: np.ndarray, cg: CorpusGraphs) -> dict[str, dict[str, float]]:
    from ..interp.compare import compare_priorities

    out = {}
    for split, graphs in (("train", cg.train_graphs), ("heldout", cg.heldout_graphs)):
        overall = compare_priorities(scores, graphs).overall
        out[split] = {
            k: float(overall[k])
            for k in ("strict_edge_agreement", "kendall_tau", "scc_ari", "n_strict_edges")
        }
    return out


def _stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        entry: dict[str, Any] = {
            "variant": variant,
            "n_models": len({r["seed"] for r in mine}),
            "n_heads": len(mine),
            "seeds": sorted({r["seed"] for r in mine}),
        }
        for split in ("train", "heldout"):
            for key in ("strict_edge_agreement", "kendall_tau", "scc_ari"):
                mean, std = _stats([r[split][key] for r in mine])
                entry[f"{split}_{key}_mean"], entry[f"{split}_{key}_std"] = mean, std
            best = [
                max(r[split]["strict_edge_agreement"] for r in mine if r["seed"] == s)
                for s in entry["seeds"]
            ]
            entry[f"{split}_best_head_agreement_mean"] = _stats(best)[0]
        for key in ("pearson", "pair_agreement"):
            mean, std = _stats([r["fidelity"][key] for r in mine])
            entry[f"fidelity_{key}_mean"], entry[f"fidelity_{key}_std"] = mean, std
        for key in ("train_accuracy", "heldout_accuracy"):
            entry[f"{key}_mean"] = _stats([r[key] for r in mine])[0]
        summary.append(entry)
    return summary


def run_heads_study(
    corpus: str | os.PathLike[str],
    config: HeadsStudyConfig | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Train the variants, score every head, compare with the corpus graphs (module doc).

    Parameters
    ----------
    corpus : path-like or text
        A ``.txt`` file or folder (as for ``attnmech text``).
    config : HeadsStudyConfig, optional
    out_dir : path-like, optional
        Where to write ``results.json``, ``REPORT.md``, figures and ``models/``.
    progress : callable, optional
        ``progress(message)`` after each model.

    Returns
    -------
    dict
        The content of ``results.json``.
    """
    from ..interp.scores import head_scores, score_fidelity
    from ..interp.transformers import TinyTransformerConfig, train_transformer
    from ..layer.model import torch_threads
    from ..layer.training import TrainConfig, train
    from ..theory.solve import solve

    config = HeadsStudyConfig() if config is None else config
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        check_writable(out / "results.json", what="heads study output")
    started = time.perf_counter()
    say = progress if progress is not None else (lambda message: None)
    cg = corpus_graphs(
        corpus,
        vocab_size=config.vocab_size,
        seq_len=config.seq_len,
        stride=config.stride,
        holdout=config.holdout,
        level=config.level,
    )
    K = len(cg.vocabulary)
    X_train, y_train = cg.train.padded(), cg.train.labels
    X_held, y_held = cg.heldout.padded(), cg.heldout.labels
    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    runs = [(v, s) for v in config.variants for s in config.seeds]
    runs += [("untrained", s) for s in config.seeds]
    for variant, seed in runs:
        params = dict(VARIANTS.get(variant, {}))
        steps = config.num_steps if variant != "untrained" else 1
        tcfg = TinyTransformerConfig(
            d_model=config.d_model,
            num_steps=steps,
            learning_rate=config.learning_rate if variant != "untrained" else 1e-12,
            seed=seed,
            **params,
        )
        trained = train_transformer(X_train, y_train, K, tcfg)
        held_acc = trained.accuracy(X_held, y_held)
        name = f"{variant}-seed{seed}"
        models[name] = trained.model
        for layer in range(tcfg.n_layers):
            for head in range(tcfg.n_heads):
                scores = head_scores(trained.model, layer, head)
                fid = score_fidelity(trained.model, layer, head, X_held, scores)
                rows.append(
                    {
                        "variant": variant,
                        "seed": seed,
                        "layer": layer,
                        "head": head,
                        **_measure(scores, cg),
                        "fidelity": {"pearson": fid.pearson, "pair_agreement": fid.pair_agreement},
                        "train_accuracy": trained.train_accuracy,
                        "heldout_accuracy": held_acc,
                        "final_loss": float(trained.losses[-1]),
                        "seconds": trained.elapsed_s,
                    }
                )
        say(f"{name}: {trained.elapsed_s:.1f} s, held-out accuracy {held_acc:.3f}")
    # attnmech's own layer and the automaton (one-hot: scores[q, k] = W[k, q])
    with torch_threads(1):
        layer_run = train(
            cg.train,
            TrainConfig(
                steps=config.layer_steps,
                learning_rate=config.layer_learning_rate,
                log_every=0,
                seed=0,
            ),
        )
    W = np.asarray(layer_run.W)
    theory_info: dict[str, Any]
    references: dict[str, Any] = {"attnmech_layer": _measure(W.T, cg)}
    references["attnmech_layer"]["note"] = (
        f"normalised GD, {config.layer_steps} steps, step {config.layer_learning_rate}, one-hot"
    )
    try:
        theory = solve(cg.train)
        automaton_scores = 1e6 * theory.W_svm + theory.W_fin  # SVM order first, finite inside
        references["automaton"] = _measure(np.asarray(automaton_scores).T, cg)
        theory_info = {"solved": True, "svm_status": theory.svm.status.value}
    except Exception as exc:  # an unsolvable corpus still gets its transformer numbers
        theory_info = {"solved": False, "error": str(exc)}
    say("attnmech layer and automaton done")
    summary = _summarise(rows)
    results: dict[str, Any] = {
        "config": config.to_dict(),
        "corpus": os.fspath(corpus) if isinstance(corpus, os.PathLike) else str(corpus)[:200],
        "data": {
            "vocab_size": K,
            "n_train_windows": cg.train.n_samples,
            "n_heldout_windows": cg.heldout.n_samples,
            "train_graphs": {
                "n_queries": int(cg.train_graphs.queries.size),
                "n_edges": cg.train_graphs.n_edges,
                "n_sccs": cg.train_graphs.n_sccs,
                "cyclic_queries": int(cg.train_graphs.cyclic_queries.size),
            },
            "heldout_graphs": {
                "n_queries": int(cg.heldout_graphs.queries.size),
                "n_edges": cg.heldout_graphs.n_edges,
                "n_sccs": cg.heldout_graphs.n_sccs,
                "cyclic_queries": int(cg.heldout_graphs.cyclic_queries.size),
            },
        },
        "rows": rows,
        "summary": summary,
        "references": references,
        "theory": theory_info,
        "wall_seconds": time.perf_counter() - started,
    }
    if out is not None:
        _write_outputs(out, results, config, cg, models)
    return results


def _best_head(rows: list[dict[str, Any]], variant: str) -> dict[str, Any] | None:
    mine = [r for r in rows if r["variant"] == variant]
    return max(mine, key=lambda r: r["train"]["strict_edge_agreement"]) if mine else None


def _write_outputs(
    out: Path,
    results: dict[str, Any],
    config: HeadsStudyConfig,
    cg: CorpusGraphs,
    models: dict[str, Any],
) -> None:
    from ..interp.export import save_hooked_transformer
    from ..interp.scores import head_scores
    from .report import save_figure, write_json, write_markdown

    out.mkdir(parents=True, exist_ok=True)
    if config.save_models:
        for name, model in models.items():
            save_hooked_transformer(model, out / "models" / f"{name}.pt")
    figures = []
    figures += save_figure(_agreement_figure(results["summary"]), out / "agreement", ("png",))
    base = _best_head(results["rows"], config.variants[0] if config.variants else "untrained")
    if base is not None:
        model = models[f"{base['variant']}-seed{base['seed']}"]
        scores = head_scores(model, base["layer"], base["head"])
        g = cg.train_graphs
        counts = np.bincount(g.node_query, minlength=g.vocab_size)
        counts[g.vocab_size - 1] = -1  # <unk> last: its graph mixes every rare word
        busiest = np.argsort(-counts, kind="stable")[:3]
        fig = plot_head_priorities(
            scores,
            g,
            busiest,
            names=cg.vocabulary,
            title=f"{base['variant']} seed {base['seed']} head {base['layer']}.{base['head']} "
            "against the training graphs",
        )
        figures += save_figure(fig, out / "priorities", ("png",))
    results["figures"] = [p.name for p in figures]
    write_json(out / "results.json", results)
    write_markdown(out / "REPORT.md", _report(results, config))


def _fmt(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.3f} ± {std:.3f}" if np.isfinite(std) else f"{mean:.3f}"


def _report(results: dict[str, Any], config: HeadsStudyConfig) -> str:
    from .report import markdown_table

    d = results["data"]
    table = []
    for row in results["summary"]:
        table.append(
            [
                row["variant"],
                VARIANT_NOTES.get(row["variant"], ""),
                row["n_models"],
                row["n_heads"],
                _fmt(
                    row["train_strict_edge_agreement_mean"], row["train_strict_edge_agreement_std"]
                ),
                _fmt(
                    row["heldout_strict_edge_agreement_mean"],
                    row["heldout_strict_edge_agreement_std"],
                ),
                _fmt(row["train_kendall_tau_mean"], row["train_kendall_tau_std"]),
                _fmt(row["heldout_kendall_tau_mean"], row["heldout_kendall_tau_std"]),
                _fmt(row["train_scc_ari_mean"], row["train_scc_ari_std"]),
                _fmt(row["fidelity_pearson_mean"], row["fidelity_pearson_std"]),
                row["train_accuracy_mean"],
                row["heldout_accuracy_mean"],
            ]
        )
    for name, ref in results["references"].items():
        table.append(
            [
                name,
                ref.get("note", "W_svm order, W_fin inside SCCs")
                if name != "automaton"
                else "the theory's prediction",
                1,
                1,
                f"{ref['train']['strict_edge_agreement']:.3f}",
                f"{ref['heldout']['strict_edge_agreement']:.3f}",
                f"{ref['train']['kendall_tau']:.3f}",
                f"{ref['heldout']['kendall_tau']:.3f}",
                f"{ref['train']['scc_ari']:.3f}",
                "1 (exact)",
                None,
                None,
            ]
        )
    headers = [
        "model",
        "what",
        "models",
        "heads",
        "edge agr. train",
        "edge agr. held-out",
        "tau train",
        "tau held-out",
        "ARI train",
        "fidelity",
        "train acc.",
        "held-out acc.",
    ]
    summary = {r["variant"]: r for r in results["summary"]}
    lines = [
        "# Where the theory holds in real heads",
        "",
        f"Corpus `{results['corpus']}`, {config.level}s, K = {d['vocab_size']}, "
        f"T = {config.seq_len}, stride {config.stride}, held-out end {config.holdout:.0%}: "
        f"{d['n_train_windows']} realizable training windows, {d['n_heldout_windows']} "
        "realizable held-out windows (cut as `attnmech text` cuts them). Training graphs: "
        f"{d['train_graphs']['n_queries']} queries, {d['train_graphs']['n_edges']} edges, "
        f"{d['train_graphs']['cyclic_queries']} queries with a cycle; held-out graphs: "
        f"{d['heldout_graphs']['n_queries']} queries, {d['heldout_graphs']['n_edges']} edges.",
        "",
        f"Transformers: TransformerLens, d_model = {config.d_model}, Adam step "
        f"{config.learning_rate}, {config.num_steps} full-batch steps, cross-entropy at the last "
        f"position, seeds {list(config.seeds)}; mean ± standard deviation over every head of "
        "every seed. A head's token table is `head_scores(model, layer, head)` (each token alone "
        "at position 0); *fidelity* is the Pearson correlation of that table with the head's "
        "real pre-softmax scores from the last position of the held-out windows (each window's "
        "mean removed).",
        "",
        markdown_table(table, headers),
        "",
        "## Reading",
        "",
        "Theorem conditions: the paper's results are about one attention layer without "
        "positions, trained by (normalised) gradient descent on realizable windows, in the "
        "limit of long training; there a head's order agrees with every strict edge of the "
        "training graphs (attnmech's layer and the automaton rows). Every transformer row is "
        "outside those conditions (learned embeddings and value/output maps, Adam, softmax "
        "scale, finite training): its numbers are measurements, and any reading of them as the "
        "theory at work is an extrapolation.",
        "",
    ]
    base = summary.get("attn1-nopos")
    chance = summary.get("untrained")
    if base is not None:
        for name, row in summary.items():
            if name == "attn1-nopos":
                continue
            for split in ("train", "heldout"):
                delta = (
                    row[f"{split}_strict_edge_agreement_mean"]
                    - base[f"{split}_strict_edge_agreement_mean"]
                )
                row.setdefault("delta", {})[split] = delta
            lines.append(
                f"- {name}: strict-edge agreement {row['delta']['train']:+.3f} (training graphs) "
                f"and {row['delta']['heldout']:+.3f} (held-out graphs) against attn1-nopos."
            )
        if chance is not None:
            lines.append(
                "- chance level (untrained models): "
                f"{chance['train_strict_edge_agreement_mean']:.3f}"
                f" / {chance['heldout_strict_edge_agreement_mean']:.3f}."
            )
    lines += [
        "",
        "`scc_ari` compares each query's SCCs with the head's scores cut at their largest gaps "
        "into as many clusters; most SCCs here are single tokens, so it is high even by chance "
        "(see the untrained row).",
        "",
        f"Figures: {', '.join(results.get('figures', []))}. Models: `models/*.pt` "
        f"(`attnmech heads models/attn1-nopos-seed0.pt --corpus CORPUS --K {config.vocab_size} "
        f"--T {config.seq_len} --stride {config.stride} --holdout {config.holdout}`).",
        f"Wall time {results['wall_seconds']:.1f} s.",
    ]
    return "\n".join(lines)

"""Commands that read real attention heads: ``heads`` and ``heads-study``.

``heads`` reads one attention head as token priorities: its score table over the tokens, each
query's priority order, and (with ``--corpus`` or ``--data``) the agreement with that data's
token-priority graphs. The model is an attnmech run (``.npz`` from ``attnmech train``), a
TransformerLens model saved by :func:`attnmech.interp.save_hooked_transformer` (``.pt``), or a
BERT-style safetensors checkpoint (a ``.safetensors`` file, or a folder holding
``model.safetensors`` and ``vocab.txt``, such as all-MiniLM-L6-v2).

Only typer is imported at module level; the work is imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import _print_table, _reports_errors, _table, app

__all__ = ["heads_command", "heads_study_command"]


def _parse_token(text: str, names: list[str] | None, vocab: int) -> int:
    from ..errors import InvalidParameterError

    if names is not None and text in names:
        return names.index(text)
    try:
        value = int(text)
    except ValueError:
        known = "" if names is None else f" (the corpus vocabulary has {len(names)} words)"
        raise InvalidParameterError(
            f"--query/--explain {text!r} is neither a token id nor a known word{known}"
        ) from None
    if not 0 <= value < vocab:
        raise InvalidParameterError(f"token id {value} is outside [0, {vocab})")
    return value


class _Head:
    """A head's score table on demand, whatever the model file."""

    def __init__(
        self, model: Path, layer: int, head: int, trial: int, data: Path | None, context: str
    ) -> None:
        import numpy as np

        from ..errors import FileFormatError

        self.layer, self.head, self.context = layer, head, context
        self.kind: str
        self.W: Any = None
        self.model: Any = None
        self.bert: Any = None
        suffix = model.suffix.lower()
        if suffix == ".pt":
            from ..interp.export import load_hooked_transformer

            self.kind = "transformer-lens"
            self.model = load_hooked_transformer(model)
            self.vocab = int(self.model.cfg.d_vocab)
        elif suffix == ".npz":
            from ..layer.training import load_run

            run = load_run(model)
            W = np.asarray(run.W)
            trials = W.shape[0] if W.ndim == 3 else 1
            if layer != 0 or head != 0:
                from ..errors import InvalidParameterError

                raise InvalidParameterError(
                    f"{model.name} is an attnmech run: one layer with one head (--layer 0 "
                    f"--head 0), got --layer {layer} --head {head}"
                )
            if trial >= trials:
                from ..errors import InvalidParameterError

                raise InvalidParameterError(
                    f"--trial {trial}: {model.name} holds {trials} trial(s), numbered from 0"
                )
            if W.ndim == 3:
                W = W[trial]
            self.kind = "attnmech"
            self.W = W
            if data is not None:
                from ..data.dataset import load_dataset

                E = load_dataset(data).embeddings
            else:
                E = np.eye(W.shape[0])  # one-hot: the run's d is its vocabulary
            if E.shape[1] != W.shape[0]:
                raise FileFormatError(
                    f"{model}: W is {W.shape[0]} x {W.shape[0]} but the embeddings of "
                    f"{data} have dimension {E.shape[1]}; give the run's dataset with --data"
                )
            self.E = E
            self.vocab = int(E.shape[0])
        elif suffix == ".safetensors" or model.is_dir():
            from ..interp.bert import load_bert

            self.kind = "bert"
            self.bert = load_bert(model)
            self.vocab = int(self.bert.vocab_size)
        else:
            raise FileFormatError(
                f"{model}: not a model attnmech reads; give an attnmech run (.npz), a saved "
                "TransformerLens model (.pt) or a BERT safetensors checkpoint"
            )

    def scores(self, tokens: Any, names: list[str] | None) -> Any:
        """Score table over ``tokens`` (ids of the model; for BERT: of ``names``)."""
        import numpy as np

        if self.kind == "attnmech":
            E = self.E[tokens]
            return np.asarray((E @ self.W @ E.T).T)
        if self.kind == "transformer-lens":
            from ..interp.scores import head_scores

            return head_scores(self.model, self.layer, self.head, tokens, context=self.context)
        from ..interp.bert import word_scores

        if names is None:
            raise typer.BadParameter("a BERT checkpoint needs --corpus (its words are scored)")
        return word_scores(self.bert, self.layer, self.head, [names[int(t)] for t in tokens])


@app.command("heads")
@_reports_errors
def heads_command(
    model: Annotated[
        Path,
        typer.Argument(
            help="attnmech run (.npz), saved TransformerLens model (.pt), or BERT safetensors "
            "checkpoint (.safetensors file or folder with vocab.txt).",
            show_default=False,
        ),
    ],
    layer: Annotated[int, typer.Option("--layer", min=0, help="Layer of the head.")] = 0,
    head: Annotated[int, typer.Option("--head", min=0, help="Head index in the layer.")] = 0,
    query: Annotated[
        list[str] | None,
        typer.Option(
            "--query",
            help="Query token (a word of the corpus or a token id; repeat for several). "
            "Default: the queries with the most tokens.",
            show_default=False,
        ),
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus",
            help="Text (.txt file or folder) whose priority graphs the head is compared with, "
            "cut as attnmech text cuts it (--K, --T, --stride, --holdout).",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A dataset file instead of --corpus (also the embeddings of an attnmech run).",
            show_default=False,
        ),
    ] = None,
    vocab_size: Annotated[
        int | None,
        typer.Option(
            "--K",
            min=3,
            help="Corpus vocabulary size [default: the model's, at most 1000].",
            show_default=False,
        ),
    ] = None,
    seq_len: Annotated[int, typer.Option("--T", min=2, help="Corpus window length.")] = 16,
    stride: Annotated[
        int | None,
        typer.Option(
            "--stride", min=1, help="Step between windows [default: T].", show_default=False
        ),
    ] = None,
    holdout: Annotated[float, typer.Option("--holdout", help="Held-out end of the corpus.")] = 0.1,
    split: Annotated[
        str, typer.Option("--split", help="Compare with the graphs of: train | heldout.")
    ] = "train",
    context: Annotated[
        str,
        typer.Option(
            "--context",
            help="TransformerLens models: alone (each token alone at position 0, through the "
            "whole model up to the head) | tokens (embeddings only).",
        ),
    ] = "alone",
    trial: Annotated[int, typer.Option("--trial", min=0, help="Trial of a batched run.")] = 0,
    top: Annotated[int, typer.Option("--top", min=1, help="Keys listed per query.")] = 15,
    explain_key: Annotated[
        str | None,
        typer.Option(
            "--explain",
            help="With one --query: the training edges whose active Graph-SVM constraints pin "
            "this key (solves the theory of the data).",
            show_default=False,
        ),
    ] = None,
    draw: Annotated[
        Path | None,
        typer.Option(
            "--draw", help="Per-query priority picture (.png, .pdf, .svg).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Read one attention head as token priorities and compare it with a corpus's graphs."""
    import numpy as np

    from ..errors import InvalidParameterError

    if split not in ("train", "heldout"):
        raise typer.BadParameter("must be train or heldout", param_hint="--split")
    if not 0.0 < holdout < 1.0:  # NaN fails this too
        raise typer.BadParameter(f"must lie in (0, 1), got {holdout}", param_hint="--holdout")
    if corpus is not None and data is not None and model.suffix.lower() != ".npz":
        raise typer.BadParameter("give --corpus or --data, not both", param_hint="--data")
    if draw is not None and draw.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise typer.BadParameter(f"{draw} must end in .png, .pdf or .svg", param_hint="--draw")
    if draw is not None:
        from .._io import check_writable

        check_writable(draw, what="--draw figure")
    source = _Head(model, layer, head, trial, data, context)
    names: list[str] | None = None
    graphs = None
    dataset = None
    if corpus is not None:
        from ..studies.heads import corpus_graphs

        K = vocab_size if vocab_size is not None else min(source.vocab, 1000)
        cg = corpus_graphs(corpus, vocab_size=K, seq_len=seq_len, stride=stride, holdout=holdout)
        names = cg.vocabulary
        graphs = cg.train_graphs if split == "train" else cg.heldout_graphs
        dataset = cg.train if split == "train" else cg.heldout
        if source.kind != "bert" and len(names) > source.vocab:
            raise InvalidParameterError(
                f"the corpus vocabulary has {len(names)} tokens, the model {source.vocab}; "
                "use --K at most the model's vocabulary"
            )
    elif data is not None:
        from ..data.dataset import load_dataset
        from ..theory.graphs import build_priority_graphs

        dataset = load_dataset(data)
        graphs = build_priority_graphs(dataset)
    n_tokens = graphs.vocab_size if graphs is not None else source.vocab
    tokens = np.arange(n_tokens)
    scores = source.scores(tokens, names)
    comparison = None
    if graphs is not None:
        from ..interp.compare import compare_priorities

        comparison = compare_priorities(scores, graphs)
    if query:
        queries = [_parse_token(q, names, n_tokens) for q in query]
    elif comparison is not None:
        order = np.argsort(-comparison.n_tokens, kind="stable")[:5]
        queries = [int(comparison.queries[i]) for i in order]
    else:
        queries = [0]

    def nm(t: int) -> str:
        return names[t] if names is not None else str(t)

    per_query = []
    for q in queries:
        levels = graphs.levels(q) if graphs is not None else {}
        order = np.argsort(-scores[q], kind="stable")
        if levels:
            order = np.array([t for t in order if int(t) in levels])
        keys = [
            {
                "token": int(t),
                "name": nm(int(t)),
                "score": float(scores[q, t]),
                "level": levels.get(int(t)),
                "scc": int(graphs.scc_of(q, int(t))) if graphs is not None and levels else None,
            }
            for t in order[:top]
        ]
        measures = (
            comparison.per_query(q)
            if comparison is not None and q in set(comparison.queries.tolist())
            else None
        )
        per_query.append({"query": q, "name": nm(q), "measures": measures, "keys": keys})
    explanation = None
    if explain_key is not None:
        if dataset is None or len(queries) != 1:
            raise typer.BadParameter(
                "needs --corpus or --data and exactly one --query", param_hint="--explain"
            )
        from ..interp.pinning import explain
        from ..theory.solve import solve

        key = _parse_token(explain_key, names, n_tokens)
        explanation = explain(solve(dataset), queries[0], key)
    out: dict[str, Any] = {
        "model": str(model),
        "kind": source.kind,
        "layer": layer,
        "head": head,
        "context": context if source.kind == "transformer-lens" else None,
        "split": split if graphs is not None else None,
        "overall": comparison.to_dict()["overall"] if comparison is not None else None,
        "queries": per_query,
        "explain": explanation.to_dict() if explanation is not None else None,
    }
    if draw is not None:
        if graphs is None:
            raise typer.BadParameter("needs --corpus or --data", param_hint="--draw")
        from ..studies.heads import plot_head_priorities
        from ..studies.report import save_figure

        fig = plot_head_priorities(
            scores, graphs, queries, names=names, title=f"{model.name} head {layer}.{head}"
        )
        (written,) = save_figure(
            fig, draw.with_suffix(""), formats=(draw.suffix.lower().lstrip("."),)
        )
        out["figure"] = str(written)
    if as_json:
        from ..studies.report import to_jsonable

        typer.echo(json.dumps(to_jsonable(out), indent=2, allow_nan=False))
        return
    _show(out, explanation, names)


def _show(out: dict[str, Any], explanation: Any, names: list[str] | None) -> None:
    typer.echo(f"{out['model']} ({out['kind']}), layer {out['layer']} head {out['head']}")
    if out["overall"] is not None:
        o = out["overall"]
        rows = [
            [name, o[name]]
            for name in ("strict_edge_agreement", "kendall_tau", "scc_ari")
            if name in o
        ]
        rows.append(["queries compared", int(o["n_queries"])])
        rows.append(["strict edges", int(o["n_strict_edges"])])
        _print_table(
            _table(
                rows,
                ["against the " + str(out["split"]) + " graphs", "value"],
                float_format="{:.4f}",
            )
        )
    for entry in out["queries"]:
        m = entry["measures"]
        title = f"query {entry['name']!r}"
        if m is not None:
            title += (
                f": {m['n_tokens']} tokens, strict-edge agreement "
                f"{m['strict_edge_agreement']:.3f}, tau {m['kendall_tau']:.3f}, "
                f"ARI {m['scc_ari']:.3f}"
            )
        rows = [
            [rank + 1, k["name"], k["score"], k["level"], k["scc"]]
            for rank, k in enumerate(entry["keys"])
        ]
        typer.echo("")
        _print_table(
            _table(
                rows,
                ["rank", "key", "score", "SCC level", "SCC"],
                title=title,
                float_format="{:.4g}",
            )
        )
    if explanation is not None:
        typer.echo("")
        typer.echo(explanation.format(names))
    if out.get("figure"):
        typer.echo(f"wrote {out['figure']}")


@app.command("heads-study")
@_reports_errors
def heads_study_command(
    corpus: Annotated[Path, typer.Argument(help="A .txt file or a folder of .txt files.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for results.json, REPORT.md, figures, models.")
    ],
    vocab_size: Annotated[int, typer.Option("--K", min=3, help="Vocabulary size.")] = 100,
    seq_len: Annotated[int, typer.Option("--T", min=2, help="Window length.")] = 8,
    stride: Annotated[int, typer.Option("--stride", min=1, help="Step between windows.")] = 1,
    holdout: Annotated[float, typer.Option("--holdout", help="Held-out end.")] = 0.2,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Models per variant.")] = 3,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Adam steps per model.")] = 400,
    d_model: Annotated[int, typer.Option("--d-model", min=4, help="Residual width.")] = 32,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant", help="Variants to train (repeat; default all).", show_default=False
        ),
    ] = None,
    layer_steps: Annotated[
        int, typer.Option("--layer-steps", min=1, help="NGD steps of attnmech's own layer.")
    ] = 1000,
) -> None:
    """Where the theory holds in real heads: train small transformers on a corpus and compare
    every head with the corpus's token-priority graphs (writes results.json, REPORT.md)."""
    from ..studies.heads import VARIANTS, HeadsStudyConfig, run_heads_study

    config = HeadsStudyConfig(
        vocab_size=vocab_size,
        seq_len=seq_len,
        stride=stride,
        holdout=holdout,
        seeds=tuple(range(seeds)),
        num_steps=steps,
        d_model=d_model,
        variants=tuple(variant) if variant else tuple(VARIANTS),
        layer_steps=layer_steps,
    )
    results = run_heads_study(
        corpus, config, out_dir=out, progress=lambda m: typer.echo(m, err=True)
    )
    rows = [
        [
            r["variant"],
            r["n_models"],
            r["n_heads"],
            r["train_strict_edge_agreement_mean"],
            r["heldout_strict_edge_agreement_mean"],
            r["train_kendall_tau_mean"],
            r["heldout_kendall_tau_mean"],
        ]
        for r in results["summary"]
    ]
    for name, ref in results["references"].items():
        rows.append(
            [
                name,
                1,
                1,
                ref["train"]["strict_edge_agreement"],
                ref["heldout"]["strict_edge_agreement"],
                ref["train"]["kendall_tau"],
                ref["heldout"]["kendall_tau"],
            ]
        )
    _print_table(
        _table(
            rows,
            ["model", "models", "heads", "agr. train", "agr. held-out", "tau train", "tau held"],
            float_format="{:.3f}",
        )
    )
    typer.echo(f"report: {out / 'REPORT.md'}")

"""``TABLE.md``: the bias table's Markdown report (a :class:`~attnmech.studies.scaffold.Report`)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..scaffold import Report, fmt
from .curves import nanmean

__all__ = ["build_report"]


def build_report(table: Any) -> Report:
    """The report of ``table``: rows, per-setting tables of cos / rel dist / excess, verdicts,
    rates, figures and the Graph-SVM solves."""
    norms = table.norms
    runs_time = sum(r.elapsed_s for r in table.runs)
    report = Report("Which optimiser finds which max-margin graph direction")
    timing = (
        f"This call: wall time {fmt(table.wall_s, 3)} s, process CPU time {fmt(table.cpu_s, 3)} s."
    )
    if table.reused:
        timing += (
            f" {len(table.reused)} of {len(table.runs)} runs were reused from an earlier call "
            f"(`--resume`); the training wall time summed over all runs, as measured when each "
            f"was trained, is {fmt(runs_time, 3)} s."
        )
    reused_searches = sum(1 for r in table.runs if r.search and r.search.get("reused"))
    if reused_searches:
        timing += (
            f" {reused_searches} learning-rate searches were read back from an earlier call's "
            "files."
        )
    report.paragraph(
        f"Settings: {', '.join(table.settings)}; {table.trials} trials each (one dataset per "
        "trial, the experiments registry's seeds; uniform initialisation, seed 0). " + timing
    )
    report.paragraph(
        "`cos`: Frobenius cosine of the final W with each norm's Graph-SVM (mean over trials, "
        "min-max in brackets). `rel dist`: N(W / margin(W) - W_svm^N) / N(W_svm^N) in the "
        "column's norm N (0: W points exactly along W_svm^N). `excess`: N(W / margin(W)) / "
        "N(W_svm^N) - 1 (0: W / margin(W) is a minimiser of N, whichever point of a non-unique "
        "optimal face it is). The expected column (the optimiser's own geometry) is marked with "
        "`*`, the row's best value in bold."
    )
    report.heading("Optimisers and the theorems they are judged against")
    seen: set[str] = set()
    rows = []
    for r in table.runs:
        o = r.optimizer
        if o.label in seen:
            continue
        seen.add(o.label)
        info = table.assessment(r)
        rows.append(
            [
                o.label,
                f"`{o.optimizer}`",
                json.dumps(dict(o.options)) if o.options else "",
                o.parameterization,
                o.loss or "log",
                f"`{o.expected_norm}`",
                info["citation"] or "none (extrapolation)",
                info["model"],
                info["conditions"],
            ]
        )
    report.table(
        [
            "optimiser",
            "rule",
            "options",
            "W",
            "loss",
            "predicted",
            "theorem",
            "proved for",
            "the theorem's conditions",
        ],
        rows,
    )
    report.paragraph(
        "A row is a **theorem** row on a setting when its run meets every condition of its "
        "theorem (the loss, the schedule, eps, the data class); any other row is an "
        "**extrapolation**: no theorem predicts its column, and its verdict says which condition "
        "fails. The linear-model theorems are carried to the attention layer through its "
        "Graph-SVM. `polyak` gets `lower_bound` = L* per trial (0 on acyclic data, the loss of "
        "W_fin on the reduced data when cyclic); its multiplier 1 is Polyak's rule and is not "
        "searched."
    )
    notes = list(
        dict.fromkeys(
            f"`{r.optimizer.label}`: {r.optimizer.note}." for r in table.runs if r.optimizer.note
        )
    )
    if notes:
        report.bullets(notes)
    verdicts = {(v["setting"], v["optimizer"]): v for v in table.verdicts()}
    for name in table.settings:
        kind = "cyclic" if table.cyclic[name] else "acyclic"
        report.heading(f"{name} ({kind})")
        setting_runs = [r for r in table.runs if r.setting == name]
        for what, attr, best_is_max in (
            ("cos", "cos", True),
            ("rel dist", "rel_dist", False),
            ("excess", "excess", False),
        ):
            report.paragraph(f"**{what}**")
            cells_rows = []
            for r in setting_runs:
                values = getattr(r, attr)
                means = [nanmean(values[n]) for n in norms]
                finite = [m for m in means if math.isfinite(m)]
                best = (max if best_is_max else min)(finite) if finite else math.nan
                cells = [r.optimizer.label]
                for n, m in zip(norms, means, strict=True):
                    arr = np.asarray(values[n])
                    arr = arr[np.isfinite(arr)]
                    text = fmt(m)
                    if arr.size:
                        text += f" [{fmt(arr.min())}-{fmt(arr.max())}]"
                    if m == best:
                        text = f"**{text}**"
                    if n == r.optimizer.expected_norm:
                        text += " *"
                    cells.append(text)
                cells_rows.append(cells)
            report.table(["optimiser", *(f"`{n}`" for n in norms)], cells_rows)
        report.paragraph("**Runs** (learning rate and schedule as trained, after any search):")
        report.table(
            ["optimiser", "lr", "schedule", "steps", "label", "unmet conditions", "own best"],
            [
                [
                    r.optimizer.label,
                    fmt(r.optimizer.learning_rate),
                    f"`{r.optimizer.schedule}`",
                    r.num_steps,
                    verdicts[(name, r.optimizer.label)]["label"],
                    "; ".join(table.assessment(r)["unmet"]) or "none",
                    verdicts[(name, r.optimizer.label)]["holds"],
                ]
                for r in setting_runs
            ],
        )
        counts = {}
        for label in ("theorem", "extrapolation"):
            group = [verdicts[(name, r.optimizer.label)] for r in setting_runs]
            group = [v for v in group if v["label"] == label]
            counts[label] = (sum(v["holds"] for v in group), len(group))
        report.paragraph(
            f"Own column best: theorem rows {counts['theorem'][0]} of {counts['theorem'][1]}, "
            f"extrapolations {counts['extrapolation'][0]} of {counts['extrapolation'][1]}."
        )
        lines = []
        for r in setting_runs:
            v = verdicts[(name, r.optimizer.label)]
            kind = "theorem" if v["label"] == "theorem" else "extrapolation"
            if v["label"] != "theorem" and v["holds"]:
                text = (
                    f"extrapolation, own `{v['expected']}` column best: cos {fmt(v['own_cos'])}, "
                    f"{_signed(v['cos_margin'])} over the next column"
                )
            elif v["label"] != "theorem":
                text = (
                    f"extrapolation, own `{v['expected']}` column not best: closest to "
                    f"`{v['best_cos']}` (cos {fmt(v['best_other_cos'])}), own "
                    f"{fmt(v['own_cos'])} ({_signed(v['cos_margin'])})"
                )
            elif v["holds"]:
                text = (
                    f"follows its own `{v['expected']}` Graph-SVM best: cos {fmt(v['own_cos'])}, "
                    f"{_signed(v['cos_margin'])} over the next column"
                )
            else:
                text = (
                    f"**prediction does not hold**: closest to `{v['best_cos']}` (cos "
                    f"{fmt(v['best_other_cos'])}), its own `{v['expected']}` gives "
                    f"{fmt(v['own_cos'])} ({_signed(v['cos_margin'])})"
                )
            rel = (
                f"; smallest relative distance: `{v['best_rel_dist']}` (own "
                f"{fmt(v['own_rel_dist'])}), smallest norm excess: `{v['best_excess']}` (own "
                f"{fmt(v['own_excess'])})"
            )
            lines.append(f"`{r.optimizer.label}` ({kind}): {text}{rel}.")
        report.paragraph("**Verdicts** (by the mean cosine):").bullets(lines)
        report.paragraph(
            "**Rates** (mean over trials of the log-log slope over the last decade of steps; "
            "final values are means):"
        )
        report.table(
            [
                "optimiser",
                "1 - cos(W, own) final",
                "slope",
                "L - L* final",
                "slope",
                "norm final",
                "slope of norm",
                "fin gap final",
                "stalled trials",
            ],
            [
                [
                    r.optimizer.label,
                    fmt(nanmean(r.final["one_minus_cos"]), 3),
                    fmt(nanmean(r.slopes["one_minus_cos"]), 3),
                    fmt(nanmean(r.final["loss_gap"]), 3),
                    fmt(nanmean(r.slopes["loss_gap"]), 3),
                    fmt(nanmean(r.final["norm"]), 4),
                    fmt(nanmean(r.slopes["norm"]), 3),
                    fmt(nanmean(r.final["fin_gap"]), 3),
                    sum(1 for x in r.stalled if x),
                ]
                for r in setting_runs
            ],
        )
        stalls = [
            f"`{r.optimizer.label}`, trial {b}: {why}"
            for r in setting_runs
            for b, why in enumerate(r.stalled)
            if why
        ]
        if stalls:
            report.paragraph("Stalled trials (W did not change over the last logged steps):")
            report.bullets(stalls)
        adam = [r for r in setting_runs if r.optimizer.optimizer == "adam"]
        if adam and "linf" in norms and "lp:3" in norms:
            report.paragraph("**Adam** under its theorem's conditions and outside them:")
            report.table(
                ["optimiser", "eps", "schedule", "lr", "label", "cos linf", "cos lp:3", "best"],
                [
                    [
                        r.optimizer.label,
                        fmt(float(r.optimizer.options.get("eps", 1e-8))),
                        f"`{r.optimizer.schedule}`",
                        fmt(r.optimizer.learning_rate),
                        verdicts[(name, r.optimizer.label)]["label"],
                        fmt(nanmean(r.cos["linf"])),
                        fmt(nanmean(r.cos["lp:3"])),
                        f"`{r.best_norm(norms)}`",
                    ]
                    for r in adam
                ],
            )
        if f"rates_{name}" in table.files:
            report.figure(table.files[f"rates_{name}"].name, f"rates {name}")
    # with search_on, the other settings reuse that setting's searches: list each search once
    searched = [
        r for r in table.runs if r.search and r.search.get("setting", r.setting) == r.setting
    ]
    if searched:
        first = searched[0].search or {}
        report.heading("Learning-rate search")
        report.paragraph(
            f"Each searched row tried its learning rate times each of "
            f"{', '.join(fmt(x) for x in table.config.search_scales)} and, with an inverse-power "
            f"schedule, the exponents a = {', '.join(fmt(x) for x in table.config.search_powers)}, "
            f"on {table.config.search_trials} held-out datasets of "
            f"{table.config.search_on or 'each setting'} (seeds "
            f"{', '.join(str(x) for x in first.get('held_out_seeds', []))}) for "
            f"{first.get('steps')} steps; criterion: {first.get('criterion')}. The chosen "
            "candidate is in bold."
        )
        grid_rows = []
        for r in searched:
            record = r.search or {}
            for cand in record.get("grid", []):
                chosen = (
                    cand["learning_rate"] == record["chosen"]["learning_rate"]
                    and cand["schedule"] == record["chosen"]["schedule"]
                )
                mark = (lambda x: f"**{x}**") if chosen else (lambda x: x)
                grid_rows.append(
                    [
                        f"{r.setting}: {r.optimizer.label}",
                        mark(fmt(cand["learning_rate"])),
                        mark(f"`{cand['schedule']}`"),
                        mark(fmt(cand["mean_final_loss"])),
                    ]
                )
        report.table(["row", "lr", "schedule", "mean final loss (held out)"], grid_rows)
        edges = []
        for r in searched:
            record = r.search or {}
            rates = [c["learning_rate"] for c in record.get("grid", [])]
            lr = record.get("chosen", {}).get("learning_rate")
            if rates and lr == max(rates):
                edges.append(f"`{r.setting}: {r.optimizer.label}` (largest)")
            elif rates and lr == min(rates):
                edges.append(f"`{r.setting}: {r.optimizer.label}` (smallest)")
        if edges:
            report.paragraph(
                "Chosen at an edge of the grid (a wider grid might choose otherwise): "
                + ", ".join(edges)
                + "."
            )
    if "heatmap" in table.files:
        report.heading("Heatmap").figure(table.files["heatmap"].name, "heatmap")
    report.heading("Graph-SVM solves")
    solves = []
    for name in table.settings:
        parts = []
        for n in norms:
            info = table.svm_info[name][n]
            not_unique = sum(1 for u in info["unique"] if u is False)
            viol = max(info["max_violation"], default=0.0)
            parts.append(
                f"`{n}` not unique {not_unique}/{len(info['unique'])}, violation <= {fmt(viol, 2)}"
            )
        solves.append(f"{name}: " + "; ".join(parts) + ".")
    report.bullets(solves)
    report.paragraph(
        "Non-unique minimisers are replaced by the face's least-Frobenius point "
        "(attnmech.theory.norms, tie_break='fro')."
    )
    return report


def _signed(x: float) -> str:
    """``fmt`` with an explicit sign."""
    text = fmt(x)
    return text if text.startswith("-") or text == "n/a" else "+" + text

"""Tests for attnmech.studies.reproduction: the paper's experiments
(docs/theory.md#the-papers-experiments).

The default suite runs reduced versions (3 trials, a quarter of the steps; a few files written
from 2 trials and 5% of the steps) and checks the direction of every number: correlations grow,
attention concentrates, the local prediction beats the global one for the gen head. The full
reproduction (10 trials, the paper's steps) is ``@pytest.mark.slow`` and checks the paper-level
numbers and the 5-minute budget.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pytest

from attnmech import AttnmechError, make_dataset
from attnmech.errors import InvalidParameterError
from attnmech.studies.reproduction import (
    DATA_SOURCES,
    EXPERIMENTS,
    Approx,
    CurveFigure,
    DataSpec,
    ExperimentNotFoundError,
    FigureReading,
    History,
    LogScale,
    Mean,
    MeanStd,
    Measure,
    MedianIQR,
    Metric,
    OneMinus,
    PaperValue,
    PerTrial,
    Range,
    Sample,
    Setting,
    VerdictRule,
    register,
    run_reproduction,
    run_setting,
    unregister,
)
from attnmech.studies.reproduction.measures import extract
from attnmech.studies.reproduction.verdicts import AtLeast as Qualitative

REDUCED = {"trials": 3, "steps_scale": 0.25}
PAPER_SETTINGS = [
    "cyclic-6-4-6-8",
    "cyclic-10-6-8-8",
    "acyclic-4-6-8-8",
    "acyclic-6-4-6-8-lr0.1",
    "local-ce",
    "local-squared",
    "local-ce-4-6-8-8",
    "local-squared-4-6-8-8",
]
GLOBAL, LOCAL = PAPER_SETTINGS[:4], PAPER_SETTINGS[4:]


FAST = ["cyclic-6-4-6-8", "acyclic-6-4-6-8-lr0.1", "local-ce"]  # one of each family


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Three settings (cyclic, acyclic, local) through the whole pipeline: 2 trials, a quarter
    of the paper's steps, PNG figures."""
    out = tmp_path_factory.mktemp("repro")
    messages: list[str] = []
    result = run_reproduction(
        out, only=FAST, trials=2, steps_scale=0.25, progress=messages.append, formats=("png",)
    )
    return out, result, messages


@pytest.fixture(scope="module")
def reduced(written):
    return {s.name: s for s in written[1].settings}


@pytest.fixture(scope="module")
def reduced_all():
    """Every setting with 3 trials and a quarter of the paper's steps (slow suite)."""
    return {name: run_setting(EXPERIMENTS[name], **REDUCED)[0] for name in EXPERIMENTS}


def _params(names):
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _result(request, name):
    """The reduced run of ``name``: from the shared fast run, else from the slow fixture."""
    if name in FAST:
        return request.getfixturevalue("reduced")[name]
    return request.getfixturevalue("reduced_all")[name]


def mean_curve(result, curve):
    return np.nanmean(result.curves[curve], axis=1)


# ----------------------------------------------------------------------------- registry
def test_registry_has_every_setting_of_spec_section_9_in_order():
    assert list(EXPERIMENTS) == PAPER_SETTINGS
    for name, spec in EXPERIMENTS.items():
        assert spec.name == name
        expected = ("iden", "log") if name in GLOBAL else ("gen", spec.loss)
        assert (spec.head, spec.loss, spec.optimizer, spec.data.source) == (
            *expected,
            "ngd",
            "generated",
        )
        produced = {key for metric in spec.metrics for key in metric.curves}
        assert {m.curve for m in spec.measures} <= produced and spec.figures
    first = EXPERIMENTS["cyclic-6-4-6-8"]
    assert (first.learning_rate, first.num_steps) == (0.01, 4000)
    assert EXPERIMENTS["acyclic-6-4-6-8-lr0.1"].learning_rate == 0.1
    assert {EXPERIMENTS[name].loss for name in LOCAL} == {"ce", "squared"}
    # the local settings differ from the global ones by their list of metrics, not by a flag
    assert "local_tpg" in EXPERIMENTS["local-ce"].config(1, 1)["metrics"]
    assert "local_tpg" not in first.config(1, 1)["metrics"]


def test_a_setting_must_record_every_curve_it_reads():
    base = EXPERIMENTS["cyclic-6-4-6-8"]
    with pytest.raises(InvalidParameterError, match=r"top_scc_mass.\].*add the metric"):
        replace(base, metrics=(History(("corr_svm", "fin_gap_traj")),), figures=())
    local = EXPERIMENTS["local-ce"]
    with pytest.raises(InvalidParameterError, match=r"\['local_theories'\].*LocalTPG"):
        replace(
            local,
            metrics=local.metrics[:3],
            measures=local.measures[1:2],
            figures=local.figures[-1:],
        )
    with pytest.raises(InvalidParameterError, match="already registered"):
        register(base)
    with pytest.raises(InvalidParameterError, match="mode must be one of"):
        Measure("k", "k", "corr_svm", mode="median")
    with pytest.raises(InvalidParameterError, match="unknown data source 'nowhere'"):
        run_setting(replace(base, data=replace(base.data, source="nowhere")), trials=1)
    no_authors = EXPERIMENTS["cyclic-10-6-8-8"]
    with pytest.raises(InvalidParameterError, match="authors_key"):
        run_setting(replace(no_authors, data=replace(no_authors.data, source="authors")), trials=1)


def test_unknown_experiment_names_the_valid_ones(tmp_path):
    with pytest.raises(ExperimentNotFoundError, match="cyclic-6-4-6-8") as info:
        run_reproduction(tmp_path, only="cyclic-6-4-6-9")
    assert isinstance(info.value, AttnmechError)  # the CLI turns it into "error: ..."
    assert "'cyclic-6-4-6-9'" in str(info.value)
    assert not any(tmp_path.iterdir())  # nothing ran, nothing written


@pytest.mark.parametrize(
    "kwargs", [{"trials": 0}, {"trials": 2.5}, {"steps_scale": 0.0}, {"steps_scale": math.nan}]
)
def test_bad_sizes_are_rejected(tmp_path, kwargs):
    with pytest.raises(ValueError):
        run_reproduction(tmp_path, **kwargs)


# ----------------------------------------------------------------------------- agreement rules
def test_paper_value_rules():
    def agrees(paper, values):
        return paper.agrees(Sample.of(values))

    ten = np.full(10, 1.0)
    mean_std = PaperValue("0.986 +- 0.005", 0.986, MeanStd(std=0.005))
    # ours 0.984 +- 0.005 over 10 trials: 2 standard errors = 2 sqrt(2 * 0.005^2 / 10) = 0.0045
    spread = np.array([0.979, 0.989] * 5)  # std 0.005
    assert agrees(mean_std, spread - 0.001) and not agrees(mean_std, spread - 0.010)
    approx = PaperValue("~0.99", 0.99, Approx(tol=0.01))
    assert agrees(approx, 0.981 * ten) and not agrees(approx, 0.979 * ten)
    log = PaperValue("~7e-5", 7e-5, LogScale(tol=math.log10(2)))
    assert agrees(log, 1.2e-4 * ten) and not agrees(log, 3e-6 * ten)
    assert log.difference(3.5e-6) == pytest.approx(0.05)
    top = PaperValue("0.9997", 0.9997, LogScale(tol=math.log10(2), complement=True))
    assert agrees(top, 0.9996 * ten) and not agrees(top, 0.999 * ten)
    band = PaperValue("~0.70-0.75", 0.725, Range(low=0.70, high=0.75))
    wide = np.array([0.55, 0.75] * 5)  # mean 0.65, std 0.1: slack 0.063
    assert agrees(band, wide) and not agrees(band, wide - 0.15)
    mean = PaperValue("0.863 (mean)", 0.863, Mean(n=10))
    assert agrees(mean, np.array([0.85, 0.87] * 5)) and not agrees(mean, 0.5 * ten)
    assert not agrees(approx, [math.nan, math.nan])  # no finite value: no agreement
    assert approx.to_dict()["kind"] == "approx" and approx.to_dict()["tol"] == 0.01
    assert top.to_dict()["complement"] is True and "factor 2" in top.to_dict()["rule"]
    with pytest.raises(InvalidParameterError, match="rule must be a VerdictRule"):
        PaperValue("x", 1.0, "approx")
    with pytest.raises(InvalidParameterError, match="low <= high"):
        Range(low=0.8, high=0.7)


def test_two_sample_rule_uses_both_trial_counts():
    # paper 0.986 +- 0.005 over 10 trials; ours std 0.005 over 100 trials:
    # bound = 2 sqrt(0.005^2 / 10 + 0.005^2 / 100) = 0.003317
    rule = PaperValue("0.986 ± 0.005", 0.986, MeanStd(std=0.005, n=10))
    ours = np.array([0.981, 0.991] * 50)  # mean 0.986, std 0.005
    assert rule.agrees(Sample.of(ours - 0.0033)) and not rule.agrees(Sample.of(ours - 0.0034))
    # the same offset passes with 10 paper trials only if the bound is computed with them
    assert MeanStd(std=0.005, n=10).bound(Sample.of(ours)) == pytest.approx(0.0033166, rel=1e-4)
    assert rule.to_dict()["n_paper"] == 10
    with pytest.raises(InvalidParameterError, match="MeanStd.n"):
        MeanStd(std=0.1, n=0)


def test_figure_reading_carries_its_own_tolerance():
    # reading 0.988 +- 0.002 of a mean over 10 runs; ours 10 trials with std 0.001:
    # bound = 0.002 + 2 sqrt(1e-6 / 10 + 1e-6 / 10) = 0.002894
    value = PaperValue("0.988", 0.988, FigureReading(tol=0.002, trials=10))
    ours = np.array([0.987, 0.989] * 5)
    assert value.agrees(Sample.of(ours + 0.0028)) and not value.agrees(Sample.of(ours + 0.0030))
    single = PaperValue("213", 213, FigureReading(tol=20))  # one number: the tolerance alone
    assert single.agrees(Sample.of([232])) and not single.agrees(Sample.of([234]))
    assert "±20" in single.rule.describe()


def test_qualitative_rule_counts_trials_and_needs_two_standard_errors():
    claim = PaperValue("local − global > 0.2", 0.2, Qualitative())
    clear = np.array([0.3, 0.5] * 5)  # mean 0.4, sem 0.0333: 0.4 - 0.067 > 0.2
    assert claim.agrees(Sample.of(clear))
    noisy = np.array([0.0, 0.0, 0.0, 0.0, 1.5])  # mean 0.3 > 0.2 but within 2 SE of it
    assert not claim.agrees(Sample.of(noisy))
    assert not claim.agrees(Sample.of([0.1] * 10))


def test_median_iqr_rule_for_values_spread_over_decades():
    values = np.array([1e-6, 1e-5, 3e-5, 1e-4, 1e-4, 2e-4, 3e-4, 1e-3, 1e-2, 1e-1])
    sample = Sample.of(values)
    q1, med, q3 = sample.quantiles()
    assert med == pytest.approx(1.5e-4) and q1 == pytest.approx(4.75e-5)
    rule = MedianIQR(factor=2.0)
    assert PaperValue("3e-4", 3e-4, rule).agrees(sample)  # inside [Q1/2, Q3*2]
    assert not PaperValue("1e-5", 1e-5, rule).agrees(sample)  # below Q1/2 = 2.4e-5
    assert PaperValue("1e-5", 1e-5, rule).difference_of(sample) == pytest.approx(15.0)
    assert sample.mean > 1e-2  # the mean is dominated by the slowest trial: why medians
    assert "median 0.00015" in rule.summary(sample)
    with pytest.raises(InvalidParameterError, match="factor"):
        MedianIQR(factor=0.5)


def test_per_trial_rule_compares_trial_by_trial():
    notebook = (0.98, 0.99, 0.97)
    value = PaperValue("notebook", 0.98, PerTrial(notebook, tol=1e-4))
    assert value.agrees(Sample.of([0.98005, 0.98995, 0.97]))
    # same mean, but trials swapped: fails (a mean test would pass)
    assert not value.agrees(Sample.of([0.99, 0.98, 0.97]))
    assert value.difference_of(Sample.of([0.98, 0.99, 0.9702])) == pytest.approx(2e-4)


def test_measure_modes():
    steps = np.array([0, 10, 20, 30])
    curve = np.array([[0.0, 0.5], [0.6, 0.9], [0.95, 0.8], [0.99, np.nan]])  # (steps, trials)
    np.testing.assert_array_equal(extract(Measure("k", "k", "c"), steps, curve), curve[-1])
    np.testing.assert_array_equal(
        extract(Measure("k", "k", "c", mode="step", step=20), steps, curve), [0.95, 0.8]
    )
    assert extract(Measure("k", "k", "c", mode="step", step=40), steps, curve) is None
    np.testing.assert_array_equal(
        extract(Measure("k", "k", "c", mode="first_step_at_least", threshold=0.9), steps, curve),
        [20.0, 10.0],
    )
    peak_step = Measure("k", "k", "c", mode="mean_peak_step")
    np.testing.assert_array_equal(extract(peak_step, steps, curve), [30.0])
    peak = Measure("k", "k", "c", mode="mean_peak")
    np.testing.assert_array_equal(extract(peak, steps, curve), curve[-1])


# ----------------------------------------------------------------------------- directions
@pytest.mark.parametrize("name", _params(GLOBAL))
def test_global_correlation_grows(request, name):
    result = _result(request, name)
    corr = mean_curve(result, "corr_svm")
    middle = corr[corr.size // 2]
    assert corr[-1] > middle > corr[0] + 0.5
    assert corr[-1] > 0.8
    # W_svm is orthogonal to S_fin: the projection removes only the finite part
    assert mean_curve(result, "corr_perp_svm")[-1] >= corr[-1] - 1e-3


@pytest.mark.parametrize("name", _params(GLOBAL))
def test_attention_concentrates_on_the_top_scc(request, name):
    result = _result(request, name)
    top = mean_curve(result, "top_scc_mass")
    assert top[-1] > top[0] and top[-1] > 0.6
    assert np.all(np.nanmax(result.curves["top_scc_mass"], axis=0) <= 1 + 1e-12)
    if EXPERIMENTS[name].data.graph == "acyclic":  # the label is an SCC of its own
        assert np.all(result.curves["label_attention"] <= result.curves["top_scc_mass"] + 1e-12)
        miss = mean_curve(result, "one_minus_label_attention")
        assert miss[-1] < miss[0] / 10 and np.all(result.curves["one_minus_label_attention"] > 0)
        np.testing.assert_allclose(  # the precise 1 - attention matches the plain one where it can
            result.curves["one_minus_label_attention"][:5],
            1 - result.curves["label_attention"][:5],
            rtol=1e-9,
        )


@pytest.mark.parametrize("name", _params(["cyclic-6-4-6-8", "cyclic-10-6-8-8"]))
def test_finite_part_gap_shrinks(request, name):
    gap = mean_curve(_result(request, name), "fin_gap_traj")
    assert gap[-1] < gap[3 * gap.size // 4] < gap.max()  # past its peak and falling


@pytest.mark.parametrize("name", _params(LOCAL))
def test_local_prediction_beats_the_global_one(request, name):
    result = _result(request, name)
    local, global_ = mean_curve(result, "corr_svm_local"), mean_curve(result, "corr_svm")
    assert local[-1] > global_[-1] + 0.1
    assert local[-1] > 0.9
    assert result.extra["n_went_local"] >= 1
    assert result.notes and "local direction" in result.notes[0]


def test_metrics_summarise_the_per_trial_values(reduced):
    result = reduced["cyclic-6-4-6-8"]
    metric = result.metric("corr_svm@final")
    assert metric.values.shape == (2,)
    np.testing.assert_allclose(metric.values, result.curves["corr_svm"][-1])
    assert metric.mean == pytest.approx(metric.values.mean())
    assert metric.std == pytest.approx(metric.values.std())
    assert metric.difference == pytest.approx(metric.mean - metric.measure.paper.value)
    assert metric.measure.paper.value == pytest.approx(0.986, abs=5e-4)  # the printed values' mean
    # rows for steps beyond the shortened run are left out
    keys = [m.measure.key for m in result.metrics]
    assert "corr_svm@500" in keys and "corr_svm@2000" not in keys
    assert result.num_steps == 1000 and result.steps[-1] == 1000


# ----------------------------------------------------------------------------- files
def test_reproduction_writes_figures_results_and_report(written):
    out, result, messages = written
    assert [s.name for s in result.settings] == FAST
    assert len(messages) == 7 and "cyclic-6-4-6-8" in messages[0] and "agree" in messages[1]
    for setting in result.settings:  # one PNG per figure object, named <setting>-<slug>
        names = [p.name for p in setting.figures]
        assert names == [f"{f.stem(setting.name)}.png" for f in setting.spec.figures]
    for path in result.files:
        assert path.exists() and path.stat().st_size > 0
    assert (out / "local-ce-tpg-local.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob("*.pdf"))  # formats=("png",)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_results_json_has_every_number(written):
    out, result, _ = written
    data = json.loads((out / "results.json").read_text())
    assert data["trials"] == 2 and data["steps_scale"] == 0.25
    assert data["wall_time_s"] == pytest.approx(result.wall_time_s)
    assert list(data["settings"]) == FAST
    setting = data["settings"]["cyclic-6-4-6-8"]
    assert setting["config"]["num_steps"] == 1000 and setting["config"]["learning_rate"] == 0.01
    # the setting's time covers its training; the run's covers every setting
    assert setting["train_time_s"] <= setting["wall_time_s"] <= data["wall_time_s"]
    assert setting["config"]["dataset_seeds"] == [0, 1] and setting["config"]["init_seed"] == 0
    assert setting["config"]["data_source"] == "generated"
    corr = setting["metrics"]["corr_svm@final"]
    assert {"mean", "std", "min", "max", "values", "paper", "difference", "agrees"} <= set(corr)
    assert corr["paper"]["value"] == pytest.approx(0.986, abs=5e-4)
    assert corr["min"] <= corr["mean"] <= corr["max"]
    assert corr["outcome"] in ("agree", "disagree") and "mean_std" == corr["paper"]["kind"]
    assert setting["metrics"]["corr_svm_fin@final"]["paper"] is None
    local = data["settings"]["local-ce"]
    assert "corr_svm_local@final" in local["metrics"]
    assert len(local["diagnostics"]["went_local"]) == 2
    went = local["diagnostics"]["n_went_local"]
    assert (
        local["notes"][0].startswith("GD converged to a local direction")
        and f"in {went} of 2" in local["notes"][0]
    )
    with np.load(out / "curves.npz") as curves:
        assert curves["local-ce/corr_svm_local"].shape == (51, 2)  # 500 steps, every 10
        np.testing.assert_array_equal(curves["local-ce/step"], np.arange(0, 501, 10))
        for name in FAST:  # the file holds exactly the curves of the run, bit for bit
            for key, value in result.setting(name).curves.items():
                np.testing.assert_array_equal(curves[f"{name}/{key}"], value)
        values = curves["cyclic-6-4-6-8/corr_svm"][-1]
    np.testing.assert_array_equal(corr["values"], values)


def test_report_table_and_text_come_from_the_measurements(written):
    out, result, _ = written
    text = (out / "REPRODUCTION.md").read_text()
    assert "| setting" in text and "| ours (mean ± std unless stated)" in text
    from attnmech.studies.scaffold import fmt

    assert f"{fmt(result.wall_time_s, 5)} s" in text  # the measured wall time is stated
    embedded = set(re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text))
    assert embedded == {p.name for p in result.figures if p.suffix == ".png"}
    metric = result.setting("cyclic-6-4-6-8").metric("corr_svm@final")
    row = next(line for line in text.splitlines() if "corr(W, W_svm), final" in line)
    assert "0.986 ± 0.005" in row and f"{metric.mean:.4g}" in row
    for setting, bad in result.disagreements:  # each disagreement is explained with its numbers
        assert f"**{setting}, {bad.measure.label}**" in text
    assert (
        "attnmech reproduce --only cyclic-6-4-6-8 --only acyclic-6-4-6-8-lr0.1 --only local-ce "
        "--trials 2" in text
    )


# --------------------------------------------------------------- one entry = one experiment
@dataclass(frozen=True)
class NormRatio(Metric):
    """A new metric: ||W(t)|| / ||W(0)||, from the recorded norm curve."""

    curves: tuple[str, ...] = ("norm_ratio",)
    requires: tuple[str, ...] = ("norm",)
    name: ClassVar[str] = "norm_ratio"

    def compute(self, record):
        norm = record.curves["norm"]
        return {"norm_ratio": norm / norm[0]}


@dataclass(frozen=True)
class AtLeast(VerdictRule):
    """A new verdict rule: every trial at or above the paper's value."""

    kind: ClassVar[str] = "at_least"

    def agrees(self, paper, ours):
        return bool(ours.values.min() >= paper)

    def describe(self):
        return "every trial at least the paper's value"


def _tiny_source(spec, trials):
    """A new data source: generated datasets with seeds 100, 101, ..."""
    return [
        make_dataset(
            spec.n_samples,
            spec.seq_len,
            spec.vocab_size,
            spec.embedding_dim,
            graph=spec.graph,
            seed=100 + trial,
        )
        for trial in range(trials)
    ]


@pytest.fixture
def tiny_entry():
    """One registry entry (with its own data source, metric and verdict rule), removed after."""
    DATA_SOURCES["tiny-fixed"] = _tiny_source
    setting = register(
        Setting(
            name="tiny-test",
            title="Tiny: cyclic n=4 T=4 K=4 d=8, lr 0.1",
            kind="global",
            data=DataSpec("cyclic", 4, 4, 4, 8, source="tiny-fixed"),
            learning_rate=0.1,
            num_steps=300,
            metrics=(History(("corr_svm", "norm")), NormRatio(), OneMinus("corr_svm", "gap")),
            measures=(
                Measure(
                    "corr@final",
                    "corr(W, W_svm), final",
                    "corr_svm",
                    paper=PaperValue(">= 0.9", 0.9, AtLeast(), "test"),
                ),
                Measure(
                    "growth@final",
                    "norm growth",
                    "norm_ratio",
                    paper=PaperValue(">= 1000", 1000.0, AtLeast(), "test"),
                    note="too few steps",
                ),
            ),
            figures=(
                CurveFigure("corr", (("corr_svm", "corr"), ("gap", "1 - corr")), "c", "h", "cap"),
            ),
            description="A test entry.",
        )
    )
    yield setting
    unregister("tiny-test")
    del DATA_SOURCES["tiny-fixed"]


def test_one_registry_entry_is_one_experiment(tiny_entry, tmp_path):
    result = run_reproduction(tmp_path, only=["tiny-test"], trials=2, progress=lambda m: None)
    assert [s.name for s in result.settings] == ["tiny-test"]
    assert "tiny-test" not in EXPERIMENTS or EXPERIMENTS["tiny-test"] is tiny_entry
    data = json.loads((tmp_path / "results.json").read_text())["settings"]["tiny-test"]
    assert data["config"]["data_source"] == "tiny-fixed"
    assert data["config"]["metrics"] == ["history", "norm_ratio", "one_minus"]
    with np.load(tmp_path / "curves.npz") as curves:
        norm, corr = curves["tiny-test/norm"], curves["tiny-test/corr_svm"]
        np.testing.assert_allclose(curves["tiny-test/norm_ratio"], norm / norm[0], rtol=1e-15)
        np.testing.assert_allclose(curves["tiny-test/gap"], 1 - corr, rtol=1e-15)
    # the data source was used: the datasets are those of seeds 100 and 101
    _, artefacts = run_setting(tiny_entry, trials=1, steps_scale=0.01)
    assert artefacts["datasets"] == [make_dataset(4, 4, 4, 8, graph="cyclic", seed=100)]
    corr_row, growth = data["metrics"]["corr@final"], data["metrics"]["growth@final"]
    np.testing.assert_allclose(corr_row["values"], corr[-1], rtol=1e-15)
    assert min(corr_row["values"]) >= 0.9 and corr_row["agrees"] is True
    assert corr_row["paper"]["kind"] == "at_least"
    assert 1 < growth["mean"] < 1000 and growth["agrees"] is False  # 300 steps of lr 0.1
    report = (tmp_path / "REPRODUCTION.md").read_text()
    assert "**tiny-test, norm growth**" in report and "every trial at least" in report
    assert "Why: too few steps." in report and "![cap](tiny-test-corr.png)" in report
    assert (tmp_path / "tiny-test-corr.pdf").exists()


# ----------------------------------------------------------------------------- the full run
@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return run_reproduction(tmp_path_factory.mktemp("full"))


@pytest.mark.slow
def test_full_reproduction_runs_every_setting(full):
    # its wall time (the issue: under 5 minutes on 2 cores) is measured and stated in
    # REPRODUCTION.md, not asserted here: timings belong in reports and benchmarks
    assert [s.name for s in full.settings] == list(EXPERIMENTS)
    assert all(s.trials == 10 for s in full.settings)


@pytest.mark.slow
def test_full_cyclic_settings_match_the_paper(full):
    small = full.setting("cyclic-6-4-6-8")
    assert small.metric("corr_svm@final").mean >= 0.98  # paper: 0.986 +- 0.005
    for step, paper in [(100, 0.403), (500, 0.863), (1000, 0.946), (2000, 0.979)]:
        assert small.metric(f"corr_svm@{step}").mean == pytest.approx(paper, abs=0.05)
    assert small.metric("one_minus_top_scc_mass@final").mean <= 1e-3  # paper: 3e-4
    assert small.metric("fin_gap_traj@final").mean < 0.01  # paper: ~0.005
    assert 0.15 < small.metric("fin_gap_traj@peak").mean < 0.45  # paper: ~0.29
    large = full.setting("cyclic-10-6-8-8")
    assert large.metric("corr_svm@final").mean >= 0.965  # paper: ~0.975
    assert large.metric("fin_gap_traj@final").mean < 0.05  # paper: ~1e-2


@pytest.mark.slow
def test_full_acyclic_settings_match_the_paper(full):
    slow = full.setting("acyclic-4-6-8-8")
    assert slow.metric("corr_svm@final").mean >= 0.99  # paper: 0.994 +- 0.004
    assert slow.metric("one_minus_label_attention@final").mean < 1e-4  # paper: ~7e-5
    fast = full.setting("acyclic-6-4-6-8-lr0.1")
    assert fast.metric("corr_svm@final").mean >= 0.999  # paper: ~1.0
    assert fast.metric("corr_svm@300").mean == pytest.approx(0.988, abs=0.005)  # PDF: 0.988


@pytest.mark.slow
@pytest.mark.parametrize("name", LOCAL)
def test_full_local_settings_match_the_paper(full, name):
    result = full.setting(name)
    local = result.metric("corr_svm_local@final")
    global_ = result.metric("corr_svm@final")
    # GD approaches the local prediction during training ...
    assert np.nanmean(result.extra["corr_svm_local_peak"]) >= 0.98
    # ... and ends there (paper: local ~0.99, global stalls at ~0.70-0.75)
    assert local.mean >= 0.98
    assert global_.mean <= 0.85
    assert local.mean > global_.mean + 0.2


@pytest.mark.slow
def test_full_authors_data_matches_the_notebook_per_trial(tmp_path):
    result = run_reproduction(tmp_path, only=["cyclic-6-4-6-8"], data="authors")
    setting = result.setting("cyclic-6-4-6-8")
    row = setting.metric("corr_svm@final_vs_notebook")
    assert row.agrees and row.difference <= 1e-4  # max per-trial |ours - notebook|
    info = setting.extra["notebook"]
    assert all(info["data_equal"]) and info["loss_max_abs_diff"] == 0.0
    assert max(info["metrics"]["corr_svm"]["replay_abs_diff"]) <= 1e-5
    text = (tmp_path / "REPRODUCTION.md").read_text()
    assert "Same data as the authors: cyclic-6-4-6-8" in text and "--data authors" in text


def test_committed_snapshot_has_curves_and_no_machine_paths():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "docs" / "reproduction"
    for folder in (root, root / "authors-data"):
        assert (folder / "curves.npz").is_file() and (folder / "results.json").is_file()
        for name in ("REPRODUCTION.md", "results.json"):
            text = (folder / name).read_text()
            assert not re.search(r"/(work|tmp|home|root|Users)/", text), (folder, name)
        assert "- Command: `attnmech reproduce " in (folder / "REPRODUCTION.md").read_text()


def test_local_drift_paragraph_reports_the_drifting_trials():
    from types import SimpleNamespace

    from attnmech.studies.reproduction import LocalTPG

    drifted = SimpleNamespace(
        name="local-x",
        trials=3,
        extra={"drifting_trials": [1], "corr_svm_local_peak": [0.9, 0.99, 0.8]},
        curves={"corr_svm_local": np.array([[0.5, 0.6, 0.7], [0.9, 0.95, 0.8]])},
    )
    steady = SimpleNamespace(name="local-y", trials=2, extra={"drifting_trials": []}, curves={})
    (text, blank) = LocalTPG.report_paragraph([drifted, steady])
    assert blank == "" and "local-y" not in text
    assert (
        "(local-x: 1 of 3 trials, corr(W, W_svm^loc) peaking at 0.99 on average and ending at 0.95)"
        in text
    )
    assert LocalTPG.report_paragraph([steady]) == [] and History.report_paragraph([drifted]) == []


# ----------------------------------------------------------------------------- authors' data
def test_authors_source_gives_the_notebooks_datasets_through_the_pipeline():
    from attnmech.studies.authors import NOTEBOOK_RECORDS
    from attnmech.studies.reproduction import AUTHORS_UNAVAILABLE, with_data
    from attnmech.studies.reproduction.sources import load_source

    for name in ("cyclic-6-4-6-8", "local-squared", "acyclic-4-6-8-8"):
        setting = with_data(EXPERIMENTS[name], "authors")
        record = NOTEBOOK_RECORDS[name]
        trials = min(record.num_trials, 3)
        data = load_source(setting.data, trials)
        for t, ds in enumerate(data.datasets):
            np.testing.assert_array_equal(ds.padded(), record.sequences[t])
            np.testing.assert_array_equal(ds.labels, record.labels[t])
        # the printed torch.var of the float32 initialisations (4 decimals)
        printed = record.init_variance[:trials]
        np.testing.assert_array_equal(np.round(np.var(data.init, axis=(1, 2), ddof=1), 4), printed)
        keys = [m.key for m in setting.measures]
        assert "corr_svm@final_vs_notebook" in keys
        names = [metric.name for metric in setting.metrics]
        assert "notebook_replay" in names
        assert ("authors_training" in names) == (setting.head == "iden")
    assert set(AUTHORS_UNAVAILABLE) == {
        "cyclic-10-6-8-8",
        "local-ce",
        "local-ce-4-6-8-8",
        "local-squared-4-6-8-8",
    }
    with pytest.raises(InvalidParameterError, match="no authors' data.*--data generated"):
        run_reproduction("unused-dir", only=["local-ce"], data="authors")
    with pytest.raises(InvalidParameterError, match="unknown data source 'nowhere'"):
        run_reproduction("unused-dir", only=["local-ce"], data="nowhere")


def test_authors_data_trains_from_the_authors_initialisation():
    from attnmech.studies.reproduction import with_data

    setting = with_data(EXPERIMENTS["acyclic-4-6-8-8"], "authors")
    light = replace(setting, metrics=setting.metrics[:1], measures=setting.measures[:1], figures=())
    result, artefacts = run_setting(light, trials=2, steps_scale=0.001)  # 4 steps
    W0 = artefacts["source"].init
    # after 4 normalised steps of length 0.01 the weights are within 0.04 of the authors' W0
    moved = np.linalg.norm(np.asarray(artefacts["run"].W) - W0, axis=(1, 2))
    assert np.all(moved <= 0.04 + 1e-12) and np.all(moved > 0.0)
    assert result.spec.data.source == "authors"


def test_reproduction_result_loads_back_and_resumes(written):
    """results.json (and curves.npz) read back into the same rows, outcomes and report."""
    from attnmech.studies.reproduction import ReproductionResult, run
    from attnmech.studies.scaffold import load_result

    out, result, _ = written
    loaded = ReproductionResult.load(out)
    assert loaded.config == result.config and [s.name for s in loaded.settings] == FAST
    for ours, back in zip(result.settings, loaded.settings, strict=True):
        assert [m.measure.key for m in ours.metrics] == [m.measure.key for m in back.metrics]
        for a, b in zip(ours.metrics, back.metrics, strict=True):
            np.testing.assert_array_equal(a.values, b.values)
            assert (a.outcome, a.agrees) == (b.outcome, b.agrees)
        np.testing.assert_array_equal(ours.curves["corr_svm"], back.curves["corr_svm"])
    assert loaded.report().to_markdown() == result.report().to_markdown()
    assert isinstance(load_result(out), ReproductionResult)
    again = run(result.config, out_dir=out, resume=True)
    assert again.wall_time_s == loaded.wall_time_s  # read back, not rerun

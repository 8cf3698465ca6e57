"""The reproduction's comparison rule (agree / disagree / not comparable), its data and its study
shape: each test runs in well under a second (no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnmech._summary import bootstrap_distribution
from attnmech.errors import InvalidParameterError
from attnmech.studies._notebook_records import PRINTED_ONLY_RECORDS
from attnmech.studies.reproduction import (
    EXPERIMENTS,
    AtLeast,
    Measure,
    PaperValue,
    ReproductionConfig,
    Sample,
)
from attnmech.studies.reproduction.measures import sampling_draws
from attnmech.studies.reproduction.paper import PAPER, local_claim
from attnmech.studies.reproduction.verdicts import MeanStd, NotComparable, Sampling


def _sample_with_draws(values, k=10):
    return Sample.of(values, bootstrap_distribution(values, size=k))


def test_sampling_rule_agrees_in_the_middle_and_disagrees_in_the_tail():
    rng = np.random.default_rng(3)
    ours = rng.normal(0.5, 0.1, size=200)
    sample = _sample_with_draws(ours)
    draws = np.sort(sample.draws)
    rule = Sampling(k=10)
    middle = float(np.quantile(draws, 0.5))
    tail = float(np.quantile(draws, 0.001))
    verdict = PaperValue("middle", middle, rule).verdict(sample)
    assert verdict.outcome == "agree" and verdict.percentile == pytest.approx(50, abs=0.5)
    verdict = PaperValue("tail", tail, rule).verdict(sample)
    assert verdict.outcome == "disagree" and verdict.percentile == pytest.approx(0.1, abs=0.05)
    # the sampling distribution of a 10-trial mean: sd / sqrt(10) wide, not the trials' sd
    assert np.std(sample.draws) == pytest.approx(0.1 / np.sqrt(10), rel=0.1)
    # a reading tolerance wide enough to reach the central 95 % turns the tail into agreement
    low = float(np.quantile(draws, 0.025))
    widened = Sampling(k=10, tol=low - tail + 1e-9)
    assert PaperValue("tail", tail, widened).verdict(sample).outcome == "agree"
    # a log-axis reading: known within a factor
    assert PaperValue("tail", tail, Sampling(k=10, factor=low / tail * 1.001)).agrees(sample)


def test_sampling_rule_uses_the_authors_trial_count():
    ours = np.linspace(0.0, 1.0, 101)
    value = 0.62  # outside the central 95 % of a 100-trial mean, inside that of a 2-trial mean
    big = Sample.of(ours, bootstrap_distribution(ours, size=100))
    small = Sample.of(ours, bootstrap_distribution(ours, size=2))
    assert PaperValue("v", value, Sampling(k=100)).verdict(big).outcome == "disagree"
    assert PaperValue("v", value, Sampling(k=2)).verdict(small).outcome == "agree"


def test_not_comparable_rows_are_neither_agree_nor_disagree():
    value = PaperValue("~0.1", 0.1, NotComparable("another definition of W_fin"))
    verdict = value.verdict(Sample.of([0.1, 0.1]))
    assert verdict.outcome == "not comparable" and verdict.agrees is None
    assert "another definition" in verdict.reason
    assert value.verdict(Sample.of([np.nan])).outcome == "not comparable"


def test_a_qualitative_test_must_pass_on_the_authors_data_first():
    theirs_fail = (0.5, -0.3, 0.1, 0.2, -0.1)  # mean 0.08, fails "> 0.2"
    theirs_pass = (0.6, 0.7, 0.65, 0.62, 0.7)
    ours_fail = Sample.of([0.0, 0.1, 0.05])
    ours_pass = Sample.of([0.5, 0.6, 0.55])
    failing_claim = PaperValue("> 0.2", 0.2, AtLeast(authors=theirs_fail, authors_source="nb"))
    verdict = failing_claim.verdict(ours_fail)
    assert (
        verdict.outcome == "not comparable" and "fails on the authors' own data" in verdict.reason
    )
    passing_claim = PaperValue("> 0.2", 0.2, AtLeast(authors=theirs_pass, authors_source="nb"))
    assert passing_claim.verdict(ours_fail).outcome == "disagree"
    assert passing_claim.verdict(ours_pass).outcome == "agree"


def test_local_ce_authors_values_are_the_0d105ef_notebook_prints():
    record = PRINTED_ONLY_RECORDS["local-ce"]
    assert "0d105ef" in record.source and record.num_trials == 10
    glob, loc = record.metrics["corr_svm"], record.metrics["corr_local_svm"]
    assert (round(glob.mean(), 3), round(glob.std(), 3)) == (0.828, 0.180)
    assert (round(loc.mean(), 4), round(loc.std(), 4)) == (0.9894, 0.0075)
    diff = loc - glob
    assert (round(diff.mean(), 3), round(diff.std(), 3), int((diff > 0.2).sum())) == (
        0.161,
        0.177,
        2,
    )
    paper = PAPER["local-ce"]
    assert isinstance(paper["global"].rule, MeanStd) and paper["global"].rule.std == pytest.approx(
        glob.std()
    )
    assert "notebook print" in paper["global"].source and "0d105ef" in paper["global"].source
    # the local claim fails on their own values: not comparable, whatever ours
    verdict = local_claim("local-ce").verdict(Sample.of([0.5, 0.6, 0.7]))
    assert verdict.outcome == "not comparable" and "2/10 trials above 0.2" in verdict.reason
    # local-squared's printed values pass it (mean 0.351, 2 SE below it still above 0.2)
    assert local_claim("local-squared").verdict(Sample.of([0.5, 0.6, 0.7])).outcome == "agree"


def test_local_gap_rows_compare_the_authors_definition_and_the_ls_reference_is_0_022():
    for name in ("local-ce-4-6-8-8", "local-squared-4-6-8-8"):
        measures = {m.key: m for m in EXPERIMENTS[name].measures}
        for key, curve in (("gap_global", "fin_gap_global"), ("gap_local", "fin_gap_local")):
            rule = PAPER[name][key].rule
            assert isinstance(rule, Sampling) and rule.k == 10
            # the authors' number sits on the row of their definition, not on attnmech's exact one
            assert measures[f"{curve}_authors@final"].paper is PAPER[name][key]
            assert measures[f"{curve}@final"].paper is None
            assert "repository figure file" in PAPER[name][key].source
    assert PAPER["local-squared-4-6-8-8"]["gap_local"].value == 0.022


def test_start_values_and_projected_correlation_rows_carry_their_origin():
    cyc = {m.key: m for m in EXPERIMENTS["cyclic-6-4-6-8"].measures}
    top = cyc["top_scc_mass@0"]
    assert top.mode == "step" and top.step == 0 and top.paper.value == 0.40
    assert "sfx_cyc_log_n6T4K6d8_pos.png" in top.paper.source
    big = {m.key: m for m in EXPERIMENTS["cyclic-10-6-8-8"].measures}
    start = big["max_attention@0"]
    assert start.curve == "max_attention" and start.paper.value == 0.21
    assert "sfx_cyc_log_n10T6K8d8_pos.png" in start.paper.source
    for step in (100, 500, 1000, 2000):
        row = cyc[f"corr_perp_svm@{step}"]
        assert row.curve == "corr_perp_svm" and row.step == step
        assert row.paper.source.startswith("rerun of the code")
        assert "proj_corr_cyc_log_n6T4K6d8_pos" in row.paper.source


def test_gap_rise_claim_fails_on_the_authors_data():
    rule = PAPER["cyclic-6-4-6-8"]["gap_rise"]
    verdict = rule.verdict(Sample.of([1.0, 1.1, 0.9]))
    assert verdict.outcome == "not comparable" and "--data authors" in verdict.reason


def test_peak_step_sampling_draws_recompute_the_mean_curve():
    steps = np.arange(0, 50, 10)
    # trial 0 peaks at step 10, trial 1 at step 30; their mean peaks where the larger one does
    curve = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [0.0, 3.0], [0.0, 0.0]], dtype=np.float64)
    step_row = Measure("x@peak_step", "x", "x", mode="mean_peak_step")
    draws = sampling_draws(step_row, steps, curve, k=1, resamples=400)
    assert set(np.unique(draws)) == {10.0, 30.0}
    assert 0.35 < np.mean(draws == 10.0) < 0.65
    draws2 = sampling_draws(step_row, steps, curve, k=2, resamples=400)
    # two draws: both trial 0 -> 10; otherwise trial 1 is in and its 3.0 wins (peak at 30)
    assert np.mean(draws2 == 10.0) == pytest.approx(0.25, abs=0.08)
    peak_row = Measure("x@peak", "x", "x", mode="mean_peak")
    peaks = sampling_draws(peak_row, steps, curve, k=2, resamples=400)
    assert set(np.round(np.unique(peaks), 6)) <= {1.0, 1.5, 3.0}
    np.testing.assert_array_equal(
        draws2, sampling_draws(step_row, steps, curve, k=2, resamples=400)
    )  # deterministic


def test_every_compared_row_names_its_origin():
    for setting in EXPERIMENTS.values():
        for measure in setting.measures:
            if measure.paper is None:
                continue
            source = measure.paper.source
            assert any(
                word in source
                for word in (
                    "notebook print",
                    "rerun of the code",
                    "figures/Papers/",
                    "figure stored",
                    "claim",
                    "author figures",
                )
            ), (setting.name, measure.key, source)


def test_reproduction_config_validates_and_round_trips():
    config = ReproductionConfig(only="local-ce", trials=3, ngd_eps=0.0)
    assert config.only == ("local-ce",)
    again = ReproductionConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    with pytest.raises(InvalidParameterError, match="trials must be a positive integer"):
        ReproductionConfig(trials=0)
    with pytest.raises(InvalidParameterError, match="unknown data source"):
        ReproductionConfig(data="nowhere")
    with pytest.raises(InvalidParameterError, match="ngd_eps"):
        ReproductionConfig(ngd_eps=-1.0)
    with pytest.raises(InvalidParameterError, match="cyclic-6-4-6-9"):
        ReproductionConfig(only=("cyclic-6-4-6-9",))


def test_ngd_eps_is_the_authors_step_and_off_by_default():
    torch = pytest.importorskip("torch")
    from attnmech.layer.optim import OPTIMIZERS

    grad = torch.zeros(2, 3, 3, dtype=torch.float64)
    grad[0, 0, 0], grad[1, 1, 2] = 3.0, 4e-16
    W = torch.zeros_like(grad)
    plain = OPTIMIZERS["ngd"](0.1).update(W, grad, None, {}, 0)
    assert float(plain[0, 0, 0]) == pytest.approx(-0.1) and float(plain[1, 1, 2]) == pytest.approx(
        -0.1
    )
    eps = 2.220446049250313e-16
    authors = OPTIMIZERS["ngd"](0.1, eps=eps).update(W, grad, None, {}, 0)
    # a gradient comparable to eps gives a step shorter than lr: 0.1 * 4e-16 / (4e-16 + eps)
    assert float(authors[1, 1, 2]) == pytest.approx(-0.1 * 4e-16 / (4e-16 + eps), rel=1e-12)
    assert float(authors[0, 0, 0]) == pytest.approx(-0.1 * 3 / (3 + eps), rel=1e-15)
    with pytest.raises(InvalidParameterError, match="eps"):
        OPTIMIZERS["ngd"](0.1, eps=-1.0)

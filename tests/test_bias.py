"""The bias table (attnmech.studies.bias), the geometry optimisers through attnmech.train, and
measuring a run against its own geometry's Graph-SVM (svm_norm_for / train(svm_norm=...))."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from attnmech.data.dataset import Dataset
from attnmech.errors import InvalidParameterError
from attnmech.layer.metrics import svm_norm_for
from attnmech.layer.model import AttentionConfig
from attnmech.layer.optim import OPTIMIZERS
from attnmech.layer.training import TrainConfig, train
from attnmech.studies.bias import BiasOptimizer, bias_table, loglog_slope
from attnmech.theory.norms import norm_of, solve_norm_svm
from attnmech.theory.solve import solve

GEOMETRY_RULES = [
    ("mirror", {"p": 3}, 0.5),
    ("normalized-mirror", {"p": 3}, 0.1),
    ("sign", {}, 0.02),
    ("l1-steepest", {}, 0.1),
    ("spectral", {}, 0.05),
]


# ------------------------------------------------------------------ each rule through train
@pytest.fixture(scope="module")
def tiny() -> Dataset:
    # one-hot embeddings, acyclic: under query 2, token 0 beats 1 and 2; token 1 beats 2
    return Dataset([[0, 1, 2], [1, 2], [0, 2]], [0, 1, 0], np.eye(3))


@pytest.mark.parametrize(("name", "options", "lr"), GEOMETRY_RULES)
@pytest.mark.parametrize("parameterization", ["combined", "factorized"])
def test_geometry_rule_trains_through_attnmech_train(tiny, name, options, lr, parameterization):
    config = TrainConfig(
        model=AttentionConfig(parameterization=parameterization),
        optimizer=name,
        optimizer_options=options,
        learning_rate=lr,
        num_steps=200,
        log_every=50,
        seed=1,
        num_threads=1,
    )
    run = train(tiny, config)
    loss = run.history["loss"]
    assert loss[-1] < 0.5 * loss[0], loss  # every rule descends on this separable problem
    assert np.all(np.isfinite(run.W)) and run.config.optimizer == name
    # the run is a function of its step rule: a replay by hand of 3 steps gives the same W
    if parameterization == "combined":
        short = train(tiny, replace(config, num_steps=3, log_every=0))
        rule = OPTIMIZERS[name](lr, **options)
        from attnmech.layer.model import AttentionObjective

        torch = pytest.importorskip("torch")
        objective = AttentionObjective([tiny])
        bound = 1 / np.sqrt(3)
        W = torch.tensor(np.random.default_rng(1).uniform(-bound, bound, size=(1, 3, 3)))
        for k in range(3):
            value, grad = objective(W)
            W = rule.update(W, grad, value, {}, k)
        np.testing.assert_allclose(short.W, W[0].numpy(), rtol=1e-12, atol=1e-12)


def test_train_measures_against_the_geometrys_own_svm(tiny):
    """train(..., theory=True, svm_norm="auto") measures sign descent against the linf SVM; the
    default stays Frobenius."""
    config = TrainConfig(optimizer="sign", learning_rate=0.02, num_steps=200, log_every=0)
    own = train(tiny, config, theory=True, svm_norm="auto")
    default = train(tiny, config, theory=True)
    graphs = solve(tiny).graphs
    for run, norm in ((own, "linf"), (default, "fro")):
        V = solve_norm_svm(graphs, tiny.embeddings, norm).W_svm
        expected = np.sum(run.W * V) / np.linalg.norm(run.W) / np.linalg.norm(V)
        np.testing.assert_allclose(run.history["corr_svm"][-1], expected, rtol=1e-10)
    np.testing.assert_array_equal(own.W, default.W)  # the theory changes what is measured only
    with pytest.raises(InvalidParameterError, match="no implicit-bias prediction"):
        factorized = AttentionConfig(parameterization="factorized")
        train(tiny, replace(config, model=factorized), theory=True, svm_norm="auto")


def test_svm_norm_for():
    combined, factorized = AttentionConfig(), AttentionConfig(parameterization="factorized")
    assert svm_norm_for(combined) == "fro" and svm_norm_for(factorized) == "nuclear"
    assert svm_norm_for(combined, "sign") == "fro"  # default unchanged whatever the optimiser
    cases = {"sign": "linf", "l1-steepest": "l1", "spectral": "spectral", "adam": "linf"}
    for name, norm in cases.items():
        assert svm_norm_for(combined, name, "auto") == norm
    rule = OPTIMIZERS["mirror"](0.1, p=3)
    assert svm_norm_for(combined, rule, "auto") == "lp:3"
    assert svm_norm_for(factorized, "ngd", "auto") == "nuclear"
    assert svm_norm_for(combined, None, "lp:2") == "fro"
    with pytest.raises(InvalidParameterError, match="needs the optimizer"):
        svm_norm_for(combined, None, "auto")
    with pytest.raises(InvalidParameterError, match="no implicit-bias prediction"):
        svm_norm_for(factorized, "sign", "auto")
    with pytest.raises(InvalidParameterError, match="unknown norm"):
        svm_norm_for(combined, None, "l7")


# ------------------------------------------------------------------ the table
def test_loglog_slope():
    t = np.arange(1, 2001)
    assert loglog_slope(t, 5.0 * t**-1.5) == pytest.approx(-1.5, abs=1e-12)
    assert loglog_slope(t, 0.1 * t) == pytest.approx(1.0, abs=1e-12)
    # only the last decade counts: a kink at t = 100 is invisible
    kinked = np.where(t < 100, 1.0, (t / 100.0) ** -2)
    assert loglog_slope(t, kinked) == pytest.approx(-2.0, abs=1e-12)
    assert np.isnan(loglog_slope([1, 2], [1.0, 0.5]))


@pytest.fixture(scope="module")
def reduced_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("bias")
    rows = [BiasOptimizer("gd", "gd", 1.0, 600), BiasOptimizer("sign", "sign", 0.01, 600)]
    norms = ("fro", "l1", "linf", "lp:3")  # LPs and a power cone: no SDP in the fast suite
    table = bias_table(
        out, settings=["acyclic-4-6-8-8"], trials=2, optimizers=rows, norms=norms, log_points=30
    )
    return table, out


def test_reduced_bias_table_files(reduced_table):
    table, out = reduced_table
    assert {p.name for p in out.iterdir()} == {
        "TABLE.md",
        "results.json",
        "heatmap.png",
        "rates_acyclic-4-6-8-8.png",
        "runs",
    }
    assert {p.name for p in (out / "runs").iterdir()} == {
        "acyclic-4-6-8-8__gd.npz",
        "acyclic-4-6-8-8__sign.npz",
    }
    results = json.loads((out / "results.json").read_text())
    assert results["trials"] == 2 and results["norms"] == ["fro", "l1", "linf", "lp:3"]
    assert [r["label"] for r in results["runs"]] == ["gd", "sign"]
    assert [r["expected_norm"] for r in results["runs"]] == ["fro", "linf"]
    text = (out / "TABLE.md").read_text()
    assert "## acyclic-4-6-8-8 (acyclic)" in text and "| sign |" in text
    # the numbers in the file are the table's
    gd = table.run("acyclic-4-6-8-8", "gd")
    assert results["runs"][0]["cos"]["fro"]["values"] == pytest.approx(list(gd.cos["fro"]))


def test_reduced_bias_table_values(reduced_table):
    table, _ = reduced_table
    gd, sign = table.run("acyclic-4-6-8-8", "gd"), table.run("acyclic-4-6-8-8", "sign")
    # the final W against an SVM solved here independently of the table's cache
    from attnmech.studies.reproduction import EXPERIMENTS
    from attnmech.studies.reproduction.sources import load_datasets

    datasets = load_datasets(EXPERIMENTS["acyclic-4-6-8-8"].data, 2)
    W_sign = train(
        datasets, TrainConfig(optimizer="sign", learning_rate=0.01, num_steps=600, log_every=0)
    ).W
    for b, ds in enumerate(datasets):
        V = solve_norm_svm(solve(ds).graphs, ds.embeddings, "linf").W_svm
        cos = np.sum(W_sign[b] * V) / np.linalg.norm(W_sign[b]) / np.linalg.norm(V)
        assert sign.cos["linf"][b] == pytest.approx(cos, rel=1e-10)
        assert sign.excess["linf"][b] >= -1e-9  # no W beats the minimiser of the norm
        assert sign.rel_dist["linf"][b] == pytest.approx(sign.dist["linf"][b] / norm_of(V, "linf"))
    # measured (2 trials, 600 steps): sign's row peaks on linf (cos 0.963, 0.990; next lp:3
    # 0.906, 0.910), GD's on fro (0.962, 0.969); sign is closer to the linf SVM than GD is
    # (cos 0.963 / 0.990 vs 0.741 / 0.833; norm excess 0.16 / 0.11 vs 1.69 / 1.12)
    assert sign.best_norm(table.norms) == "linf" and gd.best_norm(table.norms) == "fro"
    assert np.all(sign.cos["linf"] > gd.cos["linf"] + 0.1)
    assert np.all(sign.excess["linf"] < 0.5 * gd.excess["linf"])
    assert [v["holds"] for v in table.verdicts()] == [True, True]
    # the rates: 1 - cos decreases over the run for both
    for run in (gd, sign):
        assert np.all(run.one_minus_cos[-1] < run.one_minus_cos[1])


def test_resume_reuses_saved_runs(reduced_table, tmp_path):
    import shutil

    from attnmech.errors import CheckpointError

    table, out = reduced_table
    shutil.copytree(out / "runs", tmp_path / "runs")
    messages: list[str] = []
    rows = [BiasOptimizer("gd", "gd", 1.0, 600), BiasOptimizer("sign", "sign", 0.01, 600)]
    kwargs = {
        "settings": ["acyclic-4-6-8-8"],
        "trials": 2,
        "norms": ("fro", "l1", "linf", "lp:3"),
        "log_points": 30,
        "figures": False,
        "progress": messages.append,
    }
    again = bias_table(tmp_path, optimizers=rows, resume=True, **kwargs)
    assert sum("reused" in m for m in messages) == 2
    for old, new in zip(table.runs, again.runs, strict=True):
        np.testing.assert_array_equal(old.cos["linf"], new.cos["linf"])
        np.testing.assert_array_equal(old.one_minus_cos, new.one_minus_cos)
    # another learning rate: that run is trained again, the other reused
    messages.clear()
    rows[1] = BiasOptimizer("sign", "sign", 0.02, 600)
    bias_table(tmp_path, optimizers=rows, resume=True, **kwargs)
    assert sum("reused" in m for m in messages) == 1
    (tmp_path / "runs" / "acyclic-4-6-8-8__gd.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="delete it"):
        bias_table(tmp_path, optimizers=rows, resume=True, **kwargs)
    # a run file edited in place (a valid .npz whose numbers changed) is refused by its checksum
    shutil.copy(out / "runs" / "acyclic-4-6-8-8__gd.npz", tmp_path / "runs")
    edited = tmp_path / "runs" / "acyclic-4-6-8-8__sign.npz"
    with np.load(edited, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["one_minus_cos"] = arrays["one_minus_cos"] * 0.5
    np.savez(edited, **arrays)
    with pytest.raises(CheckpointError, match="checksum"):
        bias_table(tmp_path, optimizers=rows, resume=True, **kwargs)


def test_bias_table_bad_input(tmp_path):
    with pytest.raises(InvalidParameterError, match="unknown setting 'nope'"):
        bias_table(None, settings=["nope"], trials=1, optimizers=["gd"], steps=10)
    with pytest.raises(InvalidParameterError, match="'local-ce' trains the 'gen' head"):
        bias_table(None, settings=["local-ce"], trials=1, optimizers=["gd"], steps=10)
    with pytest.raises(InvalidParameterError, match="unknown bias-table optimizer 'sgd'"):
        bias_table(None, optimizers=["sgd"])
    with pytest.raises(InvalidParameterError, match="steps must be an integer >= 10"):
        bias_table(None, optimizers=["gd"], steps=5)
    with pytest.raises(InvalidParameterError, match="trials must be a positive integer"):
        bias_table(None, optimizers=["gd"], trials=0)
    with pytest.raises(InvalidParameterError, match="log_points must be an integer >= 10"):
        bias_table(None, optimizers=["gd"], log_points=2)
    with pytest.raises(InvalidParameterError, match="GiB of W"):
        bias_table(None, optimizers=["gd"], trials=10**6, log_points=10**4)
    with pytest.raises(InvalidParameterError, match="optimizer must be one of"):
        BiasOptimizer("x", "sgd", 0.1, 100)
    with pytest.raises(InvalidParameterError, match="1 < p < inf"):
        BiasOptimizer("x", "mirror", 0.1, 100, {"p": 1})


def test_unwritable_out_fails_before_training(tmp_path):
    from attnmech.errors import OutputError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write bias table.*is a file, not a folder"):
        bias_table(blocker, settings=["acyclic-4-6-8-8"], optimizers=["gd"], steps=10)


def test_cli_bias_table(tmp_path):
    from attnmech.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "bias-table",
            "--settings",
            "acyclic-4-6-8-8",
            "--trials",
            "1",
            "--steps",
            "50",
            "--optimizers",
            "ngd",
            "--no-figures",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 runs" in result.output and (out / "TABLE.md").exists()
    assert not (out / "heatmap.png").exists()
    bad = CliRunner().invoke(app, ["bias-table", "--settings", "nope", "--out", str(out)])
    assert bad.exit_code == 1 and "unknown setting 'nope'" in bad.output


def test_result_round_trips_through_results_json(reduced_table):
    from attnmech.studies.bias import BiasConfig, BiasResult
    from attnmech.studies.scaffold import load_result

    table, out = reduced_table
    loaded = BiasResult.load(out)
    assert loaded.to_dict() == json.loads(json.dumps(table.to_dict()))
    assert load_result(out).to_dict() == loaded.to_dict()
    assert loaded.config == table.config
    assert loaded.report().to_markdown() == (out / "TABLE.md").read_text()
    with pytest.warns(DeprecationWarning, match="'num_trials' is deprecated"):
        assert BiasConfig.from_dict({"num_trials": 3, "optimizers": ["gd"]}).trials == 3


def test_adam_matches_torch_optim_adam():
    """The step rule's Adam (bias-corrected moments) against torch.optim.Adam, in float64."""
    import torch

    from attnmech.layer.optim import Adam

    rng = np.random.default_rng(3)
    W0 = rng.normal(size=(1, 4, 4))
    grads = [rng.normal(size=(1, 4, 4)) * 10.0 ** rng.uniform(-3, 1) for _ in range(12)]
    for betas, eps, lr in [((0.9, 0.999), 1e-8, 0.01), ((0.5, 0.9), 1e-3, 0.3)]:
        rule = Adam(lr, betas=betas, eps=eps)
        params = torch.tensor(W0)
        state = rule.init(params)
        ref = torch.nn.Parameter(torch.tensor(W0))
        opt = torch.optim.Adam([ref], lr=lr, betas=betas, eps=eps)
        for step, g in enumerate(grads):
            grad = torch.tensor(g)
            params = rule.update(params, grad, torch.zeros(1, dtype=grad.dtype), state, step)
            ref.grad = grad.clone()
            opt.step()
            np.testing.assert_allclose(params.numpy(), ref.detach().numpy(), rtol=0, atol=1e-12)
        assert not np.allclose(params.numpy(), W0)  # it moved


# ------------------------------------------------------------------ v2: theorems, search, stalls
def test_rows_are_judged_against_their_theorems_conditions():
    from attnmech.studies.bias import BIAS_OPTIMIZERS
    from attnmech.studies.bias.theorems import assess

    rows = {r.label: r for r in BIAS_OPTIMIZERS}
    adam0 = assess(rows["adam (eps 0, decaying)"], cyclic=False)
    assert adam0["label"] == "theorem" and adam0["predicted"] == "linf" and adam0["meets"]
    constant = assess(rows["adam (eps 1e-8, constant)"], cyclic=False)
    assert constant["label"] == "extrapolation"
    assert any("needs (t + t0)^-a" in u for u in constant["unmet"])
    assert any("eps = 1e-08 (needs 0)" in u for u in constant["unmet"])
    assert rows["adam (eps 1e-8, decaying)"].expected_norm == "fro"
    assert assess(rows["adam (eps 1e-8, decaying)"], cyclic=False)["label"] == "theorem"
    # every non-Euclidean row is an extrapolation on cyclic data; gd keeps its theorem there
    assert assess(rows["sign"], cyclic=True)["unmet"] == [
        "cyclic data (the theorem is for acyclic data)"
    ]
    assert assess(rows["gd"], cyclic=True)["label"] == "theorem"
    # no theorem: normalised mirror descent; factorised rows are never gradient flow
    assert assess(rows["normalized-mirror p=3"], cyclic=False)["unmet"] == [
        "no theorem covers this rule"
    ]
    assert assess(rows["gd (K Q^T), exp loss"], cyclic=False)["label"] == "extrapolation"
    # a row run with a constant lr under a decaying-rate theorem is outside it
    assert assess(rows["sign"].replace(schedule="constant"), cyclic=False)["label"] == (
        "extrapolation"
    )
    with pytest.raises(InvalidParameterError, match="unknown theorem 'nope'"):
        BiasOptimizer("x", "gd", 0.1, 100, theorem="nope")


def test_search_picks_the_smallest_held_out_loss():
    from attnmech.studies.bias.search import HELD_OUT_OFFSET, candidates, search_row

    row = BiasOptimizer("gd", "gd", 0.1, 60, schedule="inverse-power:a=0.5,t0=1")
    grid = candidates(row, (0.5, 2.0), (0.5, 1.0))
    assert [(c.learning_rate, c.schedule) for c in grid] == [
        (0.05, "inverse-power:a=0.5,t0=1"),
        (0.2, "inverse-power:a=0.5,t0=1"),
        (0.05, "inverse-power:a=1,t0=1"),
        (0.2, "inverse-power:a=1,t0=1"),
    ]
    chosen, record = search_row(
        "acyclic-4-6-8-8", row, 60, trials=2, scales=(0.5, 2.0), powers=(0.5,)
    )
    means = [c["mean_final_loss"] for c in record["grid"]]
    # on separable data a larger gd step lowers the loss faster: the larger rate wins
    assert means[1] < means[0] and chosen.learning_rate == 0.2
    assert record["held_out_seeds"] == [HELD_OUT_OFFSET, HELD_OUT_OFFSET + 1]


def test_stall_reasons_name_the_cause():
    from attnmech.studies.bias.measure import stall_reasons

    W = np.zeros((2, 4, 2, 2))
    W[1, 0] = 1.0  # trial 0 moved
    W[:, 3] = np.nan
    loss = np.array([[1.0, 0.0, 1e-300, 1.0]] * 2)
    grad = np.array([[1.0, 0.0, 0.0, 1.0]] * 2)
    reasons = stall_reasons(W, loss, grad)
    assert reasons[0] is None
    assert "loss is exactly 0" in reasons[1]
    assert "gradient underflowed to 0" in reasons[2]
    assert "diverged" in reasons[3]


def test_row_labels_with_commas_resolve_from_one_string():
    from attnmech.studies.bias.rows import resolve_rows

    rows = resolve_rows("gd,adam (eps 0, decaying),gd (K Q^T), exp loss,gd (K Q^T)")
    assert [r.label for r in rows] == [
        "gd",
        "adam (eps 0, decaying)",
        "gd (K Q^T), exp loss",
        "gd (K Q^T)",
    ]
    with pytest.raises(InvalidParameterError, match="unknown bias-table optimizer 'nope'"):
        resolve_rows("gd,nope")

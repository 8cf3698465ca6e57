"""One name per thing: ``steps``/``trials`` in TrainConfig (as on the command line), ``svm_norm``
always a norm's name (the number is ``w_svm_fro_norm``); the old names keep working for one
release, with a DeprecationWarning."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from attnmech import TrainConfig, make_dataset, train, verify
from attnmech.errors import InvalidParameterError
from attnmech.studies.sweeps import load_results, parse_sweep_spec


def test_train_config_steps_and_trials_with_deprecated_aliases():
    config = TrainConfig(steps=12, trials=3)
    assert (config.steps, config.trials) == (12, 3)
    with pytest.warns(DeprecationWarning, match="use steps"):
        old = TrainConfig(num_steps=12, num_trials=3)
    assert (old.steps, old.trials) == (12, 3) and old.to_dict() == config.to_dict()
    with pytest.warns(DeprecationWarning, match="TrainConfig.num_steps is deprecated"):
        assert config.num_steps == 12
    with pytest.warns(DeprecationWarning, match="TrainConfig.num_trials is deprecated"):
        assert config.num_trials == 3
    with pytest.warns(DeprecationWarning):
        assert replace(config, num_steps=7).steps == 7
    assert replace(config, steps=7).steps == 7
    # an error names the parameter as it was given
    with pytest.warns(DeprecationWarning), pytest.raises(
        InvalidParameterError, match=r"TrainConfig: num_steps must be an integer in \[0, 1000000000\]"
    ):
        TrainConfig(num_steps=-1)
    with pytest.raises(InvalidParameterError, match="TrainConfig: steps must be"):
        TrainConfig(steps=-1)


def test_train_config_dicts_of_earlier_releases_still_read():
    current = TrainConfig(steps=9, trials=2).to_dict()
    assert "steps" in current and "num_steps" not in current
    old = {k: v for k, v in current.items() if k not in ("steps", "trials")}
    old.update(num_steps=9, num_trials=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no warning for files
        again = TrainConfig.from_dict(old)
    assert (again.steps, again.trials) == (9, 2)


def test_the_library_itself_uses_no_deprecated_name():
    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        run = train(ds, TrainConfig(steps=10, trials=2, checkpoint_every=0), theory=True)
        report = verify(ds, run)
    assert run.num_steps == 10 and report.num_trials == 2


def test_verification_number_is_w_svm_fro_norm():
    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)
    report = verify(ds, train(ds, TrainConfig(steps=5)))
    assert report.w_svm_fro_norm.shape == (1,) and report.w_svm_fro_norm[0] > 0
    assert report.to_dict()["w_svm_fro_norm"] == [float(report.w_svm_fro_norm[0])]
    assert "svm_norm" not in report.to_dict()
    with pytest.warns(DeprecationWarning, match="use w_svm_fro_norm"):
        np.testing.assert_array_equal(report.svm_norm, report.w_svm_fro_norm)


def test_sweep_column_is_w_svm_fro_norm_and_old_names_still_read(tmp_path):
    spec = parse_sweep_spec(
        '[sweep]\nname = "n"\ntrials = 1\nmetrics = ["svm_norm", "cyclic"]\n'
        "[fixed]\nT = 3\nK = 4\nsteps = 5\n[axes]\nn = [3]\nd = [4]\n"
    )
    metrics = spec.grids[0].metrics
    assert "w_svm_fro_norm" in metrics and "svm_norm" not in metrics
    (tmp_path / "results.csv").write_text("cell,trial,svm_norm\n0,0,1.5\n", encoding="utf-8")
    table = load_results(tmp_path)
    assert table.names == ["cell", "trial", "w_svm_fro_norm"]
    assert table["w_svm_fro_norm"].tolist() == [1.5]

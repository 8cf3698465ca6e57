"""``attnmech search --backend ray``: trials as Ray tasks on a local Ray instance, the driver alone
asking and telling the study in DIR/journal.log; the same table as the local backend for a grid
sampler, ``--resume`` continues it, and a trial left running by a killed driver is evaluated
again. The tests on a real Ray instance are slow (starting Ray takes about 20 s here); the
default suite runs the same driver on an in-process stand-in for Ray's task API. Skipped without
Optuna."""

from __future__ import annotations

import numpy as np
import pytest

from attnmech.errors import InvalidParameterError
from attnmech.studies.sweeps import load_results

pytest.importorskip("optuna")

SEARCH = """
[sweep]
name = "lr"
seed = 1
trials = 2
metrics = ["loss", "norm"]
log_every = 5

[fixed]
n = 3
T = 3
K = 4
d = 4
steps = 20

[axes]
lr = [0.01, 0.1, 1.0, 0.03]
optimizer = ["gd"]

[search]
objective = "loss"
direction = "minimize"
sampler = "grid"
budget = {budget}
pruner = "{pruner}"
"""

VARYING = {"cell", "search_trial", "train_time_s", "solve_time_s"}


def _spec(budget: int = 4, pruner: str = "none"):
    from attnmech.studies.sweeps.search import parse_search_spec

    return parse_search_spec(SEARCH.format(budget=budget, pruner=pruner))


def _by_point(table):
    """Rows in a fixed order (lr, trial), without the columns that name the Optuna trial."""
    order = np.lexsort((table["trial"], table["lr"]))
    return {
        name: table[name][order] for name in table.names if name not in VARYING
    }


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    from attnmech.studies.sweeps.search import run_search

    out = tmp_path_factory.mktemp("local") / "s"
    result = run_search(_spec(), out)
    assert (result.trials, result.complete) == (4, 4)
    return result, load_results(out)


@pytest.mark.slow
def test_ray_search_equals_the_local_one_and_resumes(ray_local, local_table, tmp_path):
    from attnmech.studies.sweeps.search import JOURNAL, run_search

    local, table = local_table
    first = run_search(_spec(budget=2), tmp_path / "r", backend="ray", workers=2)
    assert (first.trials, first.ran, first.complete) == (2, 2, 2)
    again = run_search(_spec(budget=4), tmp_path / "r", backend="ray", workers=2, resume=True)
    assert (again.trials, again.ran, again.complete, again.failed) == (4, 2, 4, 0)
    assert again.best_params == local.best_params
    assert again.best_value == local.best_value
    ray_table = load_results(tmp_path / "r")
    a, b = _by_point(ray_table), _by_point(table)
    assert a.keys() == b.keys()
    for name in a:
        if a[name].dtype == object:
            assert list(a[name]) == list(b[name]), name
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert (tmp_path / "r" / JOURNAL).is_file()
    # the journal is the one record: it holds each grid point once
    import optuna

    from attnmech.studies.sweeps.search import _storage

    study = optuna.load_study(study_name="lr", storage=_storage(optuna, tmp_path / "r" / JOURNAL))
    assert sorted(t.params["lr"] for t in study.trials) == [0.01, 0.03, 0.1, 1.0]


@pytest.mark.slow
def test_a_trial_left_running_is_evaluated_again(ray_local, local_table, tmp_path):
    """A driver killed between ask and tell leaves a RUNNING trial in the journal: the next
    --resume evaluates it with its stored parameters; nothing is lost or run twice."""
    import optuna

    from attnmech.studies.sweeps.search import JOURNAL, _sampler, _storage, run_search

    spec = _spec(budget=1)
    run_search(spec, tmp_path / "k", backend="ray")
    study = optuna.load_study(
        study_name="lr",
        storage=_storage(optuna, tmp_path / "k" / JOURNAL),
        sampler=_sampler(optuna, _spec(), ask_tell=True),
    )
    left = study.ask()  # as a killed driver leaves it
    left.suggest_categorical("lr", [0.01, 0.1, 1.0, 0.03])
    left.suggest_categorical("optimizer", ["gd"])
    result = run_search(_spec(budget=4), tmp_path / "k", backend="ray", resume=True)
    assert (result.trials, result.complete, result.failed) == (4, 4, 0)
    table = load_results(tmp_path / "k")
    units = sorted(zip(table["lr"].tolist(), table["trial"].tolist(), strict=True))
    assert units == sorted((lr, t) for lr in (0.01, 0.03, 0.1, 1.0) for t in range(2))
    a, b = _by_point(table), _by_point(local_table[1])
    np.testing.assert_array_equal(a["loss_value"], b["loss_value"])


def test_search_backend_and_address_are_checked(tmp_path):
    from attnmech.studies.sweeps.search import run_search

    with pytest.raises(InvalidParameterError, match="backend must be one of"):
        run_search(_spec(), tmp_path / "x", backend="dask")
    with pytest.raises(InvalidParameterError, match="address is for the ray backend"):
        run_search(_spec(), tmp_path / "x", address="127.0.0.1:6379")
    with pytest.raises(InvalidParameterError, match="connect_timeout"):
        run_search(_spec(), tmp_path / "x", backend="ray", connect_timeout=0)
    assert not (tmp_path / "x").exists()


def test_second_writer_of_a_search_folder_is_refused(tmp_path):
    from attnmech._io import exclusive_lock
    from attnmech.errors import OutputError
    from attnmech.studies.sweeps.search import run_search

    with exclusive_lock(tmp_path / "s", what="search folder"):
        with pytest.raises(OutputError, match="another attnmech process"):
            run_search(_spec(budget=1), tmp_path / "s", resume=True)


class _Ref:
    """An object reference (hashable by identity) holding the task's result."""

    def __init__(self, value) -> None:
        self.value = value


class _InlineRay:
    """Ray's task API as the driver uses it, run inline in this process (results in order of
    submission), for the default suite."""

    def __init__(self, cpus: int = 2) -> None:
        self.submitted = 0
        self.cpus = cpus

    def is_initialized(self) -> bool:
        return True

    def remote(self, **options):
        fake = self

        def wrap(fn):
            class Remote:
                def remote(self, *args):
                    fake.submitted += 1
                    values = [
                        a[1] if isinstance(a, tuple) and a[:1] == ("obj",) else a for a in args
                    ]
                    return _Ref(fn(*values))

            return Remote()

        return wrap

    def put(self, value):
        return ("obj", value)

    def cluster_resources(self):
        return {"CPU": self.cpus}

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref.value

    def shutdown(self) -> None:
        pass

    def get_runtime_context(self):
        class Context:
            def get_node_id(self) -> str:
                return "inline"

        return Context()


def test_ray_driver_on_an_inline_stand_in(local_table, tmp_path, monkeypatch):
    """The driver's ask/tell loop, its resume and a trial left running, without starting Ray: the
    same table as the local backend."""
    import sys

    import optuna

    from attnmech.studies.sweeps.search import JOURNAL, _sampler, _storage, run_search

    fake = _InlineRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    first = run_search(_spec(budget=2), tmp_path / "r", backend="ray", workers=2)
    assert (first.trials, first.complete) == (2, 2) and fake.submitted == 2
    study = optuna.load_study(
        study_name="lr",
        storage=_storage(optuna, tmp_path / "r" / JOURNAL),
        sampler=_sampler(optuna, _spec(), ask_tell=True),
    )
    left = study.ask()  # a driver killed between ask and tell
    left.suggest_categorical("lr", [0.01, 0.1, 1.0, 0.03])
    left.suggest_categorical("optimizer", ["gd"])
    again = run_search(_spec(budget=4), tmp_path / "r", backend="ray", workers=2, resume=True)
    assert (again.trials, again.complete, again.failed) == (4, 4, 0) and fake.submitted == 4
    local, table = local_table
    assert (again.best_params, again.best_value) == (local.best_params, local.best_value)
    a, b = _by_point(load_results(tmp_path / "r")), _by_point(table)
    assert a.keys() == b.keys()
    for name in a:
        if a[name].dtype == object:
            assert list(a[name]) == list(b[name]), name
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_cli_search_backend_ray(tmp_path, monkeypatch):
    """``attnmech search FILE --out DIR --backend ray`` (on the inline stand-in)."""
    import sys

    from typer.testing import CliRunner

    from attnmech.cli import app

    monkeypatch.setitem(sys.modules, "ray", _InlineRay())
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(SEARCH.format(budget=2, pruner="none"))
    out = tmp_path / "o"
    result = CliRunner().invoke(
        app, ["search", str(spec_file), "--out", str(out), "--backend", "ray", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "2 trials (2 run now): 2 complete, 0 pruned, 0 failed" in result.output
    assert len(load_results(out)) == 4


@pytest.mark.slow
def test_search_continued_on_a_local_pool(tmp_path, monkeypatch):
    """A search begun on Ray (the inline stand-in) and continued by a local pool of 2 processes
    sharing the journal (their initializer binds them to this driver)."""
    import sys

    from typer.testing import CliRunner

    from attnmech.cli import app

    monkeypatch.setitem(sys.modules, "ray", _InlineRay())
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(SEARCH.format(budget=2, pruner="none"))
    out = tmp_path / "o"
    result = CliRunner().invoke(
        app, ["search", str(spec_file), "--out", str(out), "--backend", "ray", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    monkeypatch.delitem(sys.modules, "ray")
    spec_file.write_text(SEARCH.format(budget=4, pruner="none"))
    result = CliRunner().invoke(
        app, ["search", str(spec_file), "--out", str(out), "--resume", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "4 trials (2 run now): 4 complete" in result.output
    table = load_results(out)
    assert sorted(set(table["lr"].tolist())) == [0.01, 0.03, 0.1, 1.0] and len(table) == 8


def test_a_trial_left_without_parameters_fails(tmp_path, monkeypatch):
    """A driver killed between ask() and its suggestions leaves a RUNNING trial with no point:
    --resume records it as failed (it counts toward the budget, as Optuna counts failures)."""
    import sys

    import optuna

    from attnmech.studies.sweeps.search import JOURNAL, _sampler, _storage, run_search

    monkeypatch.setitem(sys.modules, "ray", _InlineRay())
    run_search(_spec(budget=1), tmp_path / "r", backend="ray")
    study = optuna.load_study(
        study_name="lr",
        storage=_storage(optuna, tmp_path / "r" / JOURNAL),
        sampler=_sampler(optuna, _spec(), ask_tell=True),
    )
    study.ask()
    again = run_search(_spec(budget=3), tmp_path / "r", backend="ray", resume=True)
    assert (again.trials, again.complete, again.failed) == (3, 2, 1)
    assert len(load_results(tmp_path / "r")) == 4


PRUNED = SEARCH.replace("lr = [0.01, 0.1, 1.0, 0.03]", "lr = {{ log-uniform = [0.001, 3.0] }}")


@pytest.mark.parametrize("pruner", ["median", "halving"])
def test_pruning_on_ray_equals_the_local_backend(pruner, tmp_path, monkeypatch):
    """One trial in flight (one CPU): each point is pruned against the same finished trials as
    in the local backend's sequential loop, so the two studies and tables are the same."""
    import sys

    from attnmech.studies.sweeps.search import parse_search_spec, run_search

    text = PRUNED.format(budget=8, pruner=pruner).replace('sampler = "grid"', 'sampler = "random"')
    spec = parse_search_spec(text)
    local = run_search(spec, tmp_path / "local")
    monkeypatch.setitem(sys.modules, "ray", _InlineRay(cpus=1))
    ray = run_search(spec, tmp_path / "ray", backend="ray", workers=1)
    assert (ray.trials, ray.complete, ray.pruned, ray.failed) == (
        local.trials,
        local.complete,
        local.pruned,
        local.failed,
    )
    assert local.pruned > 0, "the test needs a pruned trial"
    assert (ray.best_value, ray.best_params) == (local.best_value, local.best_params)
    a, b = load_results(tmp_path / "ray"), load_results(tmp_path / "local")
    skip = {"train_time_s", "solve_time_s"}
    oa, ob = np.lexsort((a["trial"], a["cell"])), np.lexsort((b["trial"], b["cell"]))
    for name in a.names:
        if name in skip:
            continue
        x, y = a[name][oa], b[name][ob]
        if x.dtype == object:
            assert list(x) == list(y), name
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.slow
def test_pruning_on_a_real_ray_instance(ray_local, tmp_path):
    """Two trials in flight on a local Ray instance with the median pruner: every trial ends
    complete or pruned, the journal and the rows agree."""
    from attnmech.studies.sweeps.search import parse_search_spec, run_search

    text = PRUNED.format(budget=8, pruner="median")
    text = text.replace('sampler = "grid"', 'sampler = "random"')
    result = run_search(parse_search_spec(text), tmp_path / "p", backend="ray", workers=2)
    assert result.trials == 8 and result.complete + result.pruned == 8 and result.failed == 0
    table = load_results(tmp_path / "p")
    states = {int(t): s for t, s in zip(table["search_trial"], table["search_state"], strict=True)}
    assert sum(s == "pruned" for s in states.values()) == result.pruned


def test_local_resume_evaluates_a_trial_left_running(local_table, tmp_path):
    """The local backend too: a trial a killed run left RUNNING is evaluated again on --resume
    (before, it counted toward the budget and its point never ran)."""
    import optuna

    from attnmech.studies.sweeps.search import JOURNAL, _sampler, _storage, run_search

    run_search(_spec(budget=1), tmp_path / "l")
    study = optuna.load_study(
        study_name="lr",
        storage=_storage(optuna, tmp_path / "l" / JOURNAL),
        sampler=_sampler(optuna, _spec(), ask_tell=True),
    )
    left = study.ask()
    left.suggest_categorical("lr", [0.01, 0.1, 1.0, 0.03])
    left.suggest_categorical("optimizer", ["gd"])
    again = run_search(_spec(budget=4), tmp_path / "l", resume=True)
    assert (again.trials, again.complete, again.failed) == (4, 4, 0)
    a, b = _by_point(load_results(tmp_path / "l")), _by_point(local_table[1])
    for name in ("lr", "trial", "loss_value", "norm", "search_value"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)

"""The one .npz reader/writer (attnmech._persist) and what the files it writes promise.

Files that cannot lie: every file carries its format, a checksum of its content and the fingerprint
of the data it was computed from; a theory is re-checked against its dataset when loaded; a run or
a theory is never used with another dataset; files written by the previous release still load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from attnmech import (
    Dataset,
    TrainConfig,
    load_dataset,
    load_run,
    load_theory,
    make_dataset,
    solve,
    train,
    verify,
)
from attnmech import _persist
from attnmech.cli import app
from attnmech.errors import (
    CheckpointError,
    FileFormatError,
    InvalidParameterError,
)
from attnmech.theory.solve import theory_problems

OLD = Path(__file__).parent / "data" / "format_v1"  # written by the release before _persist


@pytest.fixture(scope="module")
def ds():
    return make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)


@pytest.fixture(scope="module")
def theory(ds):
    return solve(ds)


def _rewrite(src: Path, dst: Path, kind: str, edit) -> Path:
    """Copy ``src`` with ``edit(arrays)`` applied, with a valid checksum (a deliberate edit)."""
    stored = _persist.read(src, kind)
    arrays = dict(stored.arrays)
    edit(arrays)
    meta = {k: v for k, v in stored.meta.items() if k not in ("format", "checksum")}
    return _persist.write(dst, kind, arrays, meta)


# ------------------------------------------------------------------ the format
def test_written_files_carry_format_checksum_and_fingerprint(tmp_path, ds, theory):
    paths = {
        "dataset": ds.save(tmp_path / "d.npz"),
        "theory": theory.save(tmp_path / "t.npz"),
        "run": train(ds, TrainConfig(num_steps=5)).save(tmp_path / "r.npz"),
    }
    for kind, path in paths.items():
        with np.load(path) as archive:
            meta = json.loads(str(archive["meta"]))
            arrays = {k: archive[k] for k in archive.files if k != "meta"}
        assert meta["format"] == _persist.format_name(kind)
        assert meta["checksum"] == _persist.checksum(arrays, meta)
        fingerprint = meta["dataset_fingerprint"]
        assert fingerprint == ds.fingerprint() or fingerprint == [ds.fingerprint()]
        stored = _persist.read(path, kind)
        assert stored.verified and not stored.legacy


def test_checksum_changes_with_any_byte_of_content():
    arrays = {"a": np.arange(4.0), "b": np.array([1, 2])}
    base = _persist.checksum(arrays, {"x": 1})
    assert _persist.checksum(arrays, {"x": 1, "checksum": "ignored"}) == base
    assert _persist.checksum({**arrays, "a": np.arange(4.0) + [0, 0, 0, 1e-12]}, {"x": 1}) != base
    assert _persist.checksum(arrays, {"x": 2}) != base
    assert _persist.checksum({**arrays, "b": np.array([1, 2], dtype=np.int32)}, {"x": 1}) != base
    assert _persist.checksum({"a": arrays["a"], "c": arrays["b"]}, {"x": 1}) != base


@pytest.mark.parametrize("kind", ["dataset", "theory", "run"])
def test_an_edited_member_is_refused(tmp_path, ds, theory, kind):
    good = {
        "dataset": lambda p: ds.save(p),
        "theory": lambda p: theory.save(p),
        "run": lambda p: train(ds, TrainConfig(num_steps=5)).save(p),
    }[kind](tmp_path / "good.npz")
    with np.load(good) as archive:
        arrays = {k: archive[k] for k in archive.files}
    target = {"dataset": "labels", "theory": "W_svm", "run": "W"}[kind]
    arrays[target] = arrays[target][::-1].copy()
    np.savez(tmp_path / "edited.npz", **arrays)
    load = {"dataset": load_dataset, "theory": load_theory, "run": load_run}[kind]
    with pytest.raises(FileFormatError, match="does not match its checksum") as info:
        load(tmp_path / "edited.npz")
    assert info.value.path == str(tmp_path / "edited.npz")


def test_a_file_of_another_kind_or_a_newer_version_is_refused(tmp_path, ds):
    path = ds.save(tmp_path / "d.npz")
    with pytest.raises(FileFormatError, match="is an attnmech dataset file, not a theory file"):
        load_theory(path)
    with pytest.raises(FileFormatError, match="not a training run file"):
        load_run(path)
    stored = _persist.read(path, "dataset")
    meta = {**stored.meta, "format": "attnmech-dataset-v99"}
    meta["checksum"] = _persist.checksum(stored.arrays, meta)
    np.savez(tmp_path / "new.npz", **stored.arrays, meta=np.array(json.dumps(meta)))
    with pytest.raises(FileFormatError, match="newer than this attnmech reads"):
        load_dataset(tmp_path / "new.npz")
    without = {k: v for k, v in stored.meta.items() if k != "checksum"}
    np.savez(tmp_path / "nosum.npz", **stored.arrays, meta=np.array(json.dumps(without)))
    with pytest.raises(FileFormatError, match="carries no checksum"):
        load_dataset(tmp_path / "nosum.npz")


def test_reader_refuses_members_that_inflate_beyond_the_memory_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.npz"
    np.savez_compressed(path, a=np.zeros(2**20))  # 8 MiB inflated, a few KiB on disk
    monkeypatch.setenv("ATTNMECH_MEMORY_LIMIT_GB", str(4 / 1024))  # 4 MiB
    with pytest.raises(FileFormatError, match="inflate to"):
        _persist.read(path, "dataset")
    monkeypatch.setenv("ATTNMECH_MEMORY_LIMIT_GB", "1")
    assert _persist.read(path, "dataset").legacy


def test_deeply_nested_meta_is_a_clean_error(tmp_path):
    path = tmp_path / "deep.npz"
    np.savez(path, a=np.zeros(2), meta=np.array("[" * 100_000 + "]" * 100_000))
    with pytest.raises(FileFormatError, match="unreadable 'meta'"):
        _persist.read(path, "run")


def test_a_dataset_file_whose_fingerprint_does_not_match_is_refused(tmp_path, ds):
    path = _rewrite(
        ds.save(tmp_path / "d.npz"),
        tmp_path / "edited.npz",
        "dataset",
        lambda a: a.__setitem__("embeddings", 2.0 * a["embeddings"]),
    )  # a valid checksum, but the stored fingerprint is the original dataset's
    with pytest.raises(FileFormatError, match="does not match the fingerprint"):
        load_dataset(path)


# ------------------------------------------------------------------ theories
def _tampered(theory_file: Path, tmp_path: Path) -> dict[str, Path]:
    edits = {
        "negated": lambda a: a.__setitem__("W_svm", -a["W_svm"]),
        "doubled": lambda a: a.__setitem__("W_svm", 2 * a["W_svm"]),
        "nan": lambda a: a.__setitem__("W_svm", np.full_like(a["W_svm"], np.nan)),
        "swapped": lambda a: a.update(W_svm=a["W_fin"], W_fin=a["W_svm"]),
        "shifted": lambda a: a.__setitem__("W_fin", a["W_fin"] + 5.0),
        "frame": lambda a: a.__setitem__("fin_frame", a["fin_frame"][:, :-1]),
    }
    return {
        name: _rewrite(theory_file, tmp_path / f"{name}.npz", "theory", edit)
        for name, edit in edits.items()
    }


def test_a_tampered_theory_is_refused_on_loading(tmp_path, ds, theory):
    good = theory.save(tmp_path / "theory.npz")
    assert theory_problems(load_theory(good, dataset=ds)) == []
    expected = {
        "negated": "violates a strict priority",
        "doubled": "not the max-margin solution: its smallest strict margin is 2",
        "nan": "NaN",
        "swapped": "W_svm",
        "shifted": "W_fin",
        "frame": "S_fin frame",
    }
    for name, path in _tampered(good, tmp_path).items():
        with pytest.raises(FileFormatError, match="does not hold for its dataset") as info:
            load_theory(path, dataset=ds)
        assert expected[name] in str(info.value), name
        assert info.value.path == str(path)


def test_a_tampered_token_space_theory_is_refused(tmp_path):
    onehot = Dataset([[0, 1, 2], [1, 0, 2], [0, 2], [2, 1]], [0, 1, 0, 1], "onehot")
    good = solve(onehot).save(tmp_path / "t.npz")
    assert theory_problems(load_theory(good)) == []
    negated = _rewrite(
        good,
        tmp_path / "neg.npz",
        "theory",
        lambda a: a.__setitem__("svm_score_value", -a["svm_score_value"]),
    )
    with pytest.raises(FileFormatError, match="violates a strict priority"):
        load_theory(negated)


def test_train_and_verify_refuse_another_datasets_theory(ds):
    other = make_dataset(6, 4, 6, 8, graph="cyclic", seed=5)  # same K and d
    other_theory = solve(other)
    with pytest.raises(InvalidParameterError, match="was solved for another dataset"):
        train(ds, TrainConfig(num_steps=5), theory=other_theory)
    run = train(ds, TrainConfig(num_steps=5))
    with pytest.raises(InvalidParameterError, match="was solved for another dataset"):
        verify(ds, run, other_theory)


# ------------------------------------------------------------------ runs
def test_verify_refuses_a_run_of_another_dataset(tmp_path, ds):
    other = make_dataset(6, 4, 6, 8, graph="cyclic", seed=5)
    path = train(ds, TrainConfig(num_steps=5)).save(tmp_path / "run.npz")
    run = load_run(path)
    assert run.dataset_fingerprints == (ds.fingerprint(),)
    with pytest.raises(InvalidParameterError, match="this run was trained on another dataset"):
        verify(other, run)
    with pytest.raises(InvalidParameterError, match="this run was trained on another dataset"):
        verify(other, path)
    assert verify(ds, path).num_trials == 1


def test_from_dict_refuses_a_missing_or_wrong_init_array(ds):
    init = np.full((8, 8), 0.02)
    config = TrainConfig(num_steps=3, init=init)
    described = config.to_dict()
    with pytest.raises(InvalidParameterError, match="no init array was given"):
        TrainConfig.from_dict(described)
    with pytest.raises(InvalidParameterError, match="is not the one described"):
        TrainConfig.from_dict(described, init=init + 1.0)
    again = TrainConfig.from_dict(described, init=init)
    np.testing.assert_array_equal(again.init, init)


def test_a_run_file_without_its_init_array_is_refused(tmp_path, ds):
    good = train(ds, TrainConfig(num_steps=3, init=np.full((8, 8), 0.02))).save(tmp_path / "r.npz")
    path = _rewrite(good, tmp_path / "noinit.npz", "run", lambda a: a.pop("init"))
    with pytest.raises(FileFormatError, match="no init array was given"):
        load_run(path)


def test_an_edited_checkpoint_is_refused(tmp_path, ds):
    ckpt = tmp_path / "ckpt.npz"
    config = TrainConfig(num_steps=20, checkpoint_every=10)
    train(ds, config, checkpoint_path=ckpt)
    with np.load(ckpt) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["params"] = arrays["params"] + 1.0
    np.savez(ckpt, **arrays)
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        train(ds, config, checkpoint_path=ckpt, resume=True)


def test_short_reprs(ds, theory, tmp_path):
    run = train(ds, TrainConfig(num_steps=5), theory=theory)
    loaded = load_theory(theory.save(tmp_path / "t.npz"), dataset=ds)
    for obj in (ds, theory, loaded, run, load_run(run.save(tmp_path / "r.npz"))):
        text = repr(obj)
        assert len(text) < 400, text
    assert "svm_norm='fro'" in repr(theory) and "num_steps=5" in repr(run)


# ------------------------------------------------------------------ files of the previous release
def test_files_of_the_previous_release_still_load():
    """tests/data/format_v1 was written by the release before _persist (no checksum, no run
    fingerprint, theory format v2); the numbers read back are the ones it wrote."""
    ds = load_dataset(OLD / "dataset.npz")
    assert ds == make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)
    assert _persist.read(OLD / "dataset.npz", "dataset").legacy
    theory = load_theory(OLD / "theory.npz", dataset=ds)
    np.testing.assert_array_equal(theory.W_svm, np.load(OLD / "W_svm.npy"))
    assert _persist.read(OLD / "theory.npz", "theory").version == 2
    run = load_run(OLD / "run.npz")
    np.testing.assert_array_equal(run.W, np.load(OLD / "W.npy"))
    assert run.dataset_fingerprints is None  # not recorded then: verify cannot check it
    np.testing.assert_array_equal(run.config.init, np.full((8, 8), 0.01))
    report = verify(ds, run, theory)
    np.testing.assert_allclose(report.metrics["corr_svm"], run.history["corr_svm"][-1], rtol=1e-12)


# ------------------------------------------------------------------ the command line
runner = CliRunner()


def _error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_cli_refuses_a_tampered_theory_and_another_datasets_run(tmp_path, ds):
    data = ds.save(tmp_path / "data.npz")
    theory_file = tmp_path / "theory.npz"
    assert runner.invoke(app, ["solve", str(data), "-o", str(theory_file)]).exit_code == 0
    run = tmp_path / "run.npz"
    args = ["train", str(data), "--steps", "20", "-o", str(run)]
    assert runner.invoke(app, args).exit_code == 0
    negated = _tampered(theory_file, tmp_path)["negated"]
    retrain = [*args[:-2], "-o", str(tmp_path / "r2.npz"), "--theory", str(negated)]
    line = _error_line(runner.invoke(app, retrain))
    assert "does not hold for its dataset" in line and "violates a strict priority" in line
    assert not (tmp_path / "r2.npz").exists()
    line = _error_line(runner.invoke(app, ["verify", str(data), str(run), "--theory", str(negated)]))
    assert "does not hold for its dataset" in line and str(negated) in line
    other = make_dataset(6, 4, 6, 8, graph="cyclic", seed=5).save(tmp_path / "other.npz")
    line = _error_line(runner.invoke(app, ["verify", str(other), str(run)]))
    assert "this run was trained on another dataset" in line


def test_a_checkpoint_of_the_previous_release_resumes_bit_for_bit(tmp_path):
    """The run fingerprint is hashed under the option names of earlier releases, so their
    checkpoints (no meta, no checksum) still resume: bit for bit to the remaining steps run from
    the checkpoint's weights, and to the old release's uninterrupted run up to the last bit
    (ngd's norm is now computed rescaled, which moves the last bit of a few entries)."""
    import shutil

    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)
    ckpt = tmp_path / "checkpoint.npz"
    shutil.copy(OLD / "checkpoint.npz", ckpt)
    saved = _persist.read(ckpt, "checkpoint")
    assert saved.legacy and int(saved.arrays["step"]) == 10
    config = TrainConfig(steps=20, log_every=5, checkpoint_every=10, seed=3)
    resumed = train(ds, config, checkpoint_path=ckpt, resume=True)
    rest = train(ds, TrainConfig(steps=10, log_every=5, seed=3, init=saved.arrays["params"][0]))
    np.testing.assert_array_equal(resumed.W, rest.W)
    np.testing.assert_allclose(
        resumed.W, np.load(OLD / "checkpoint_full_W.npy"), rtol=0, atol=1e-15
    )

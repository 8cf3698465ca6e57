"""solve(), theory files (round trip, fingerprints, damaged files) and the scikit-learn facade."""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pytest

from attnmech import _persist

from attnmech import (
    AttentionTheory,
    Dataset,
    InvalidDatasetError,
    InvalidParameterError,
    NotFittedError,
    Theory,
    load_theory,
    make_dataset,
    solve,
)
from attnmech.errors import FileFormatError


def _same_result(a, b) -> None:
    """Every field of two solver results is equal (arrays exactly)."""
    for name in type(a).__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=name)
            assert not y.flags.writeable, name
        elif hasattr(x, "__dataclass_fields__") and name != "solver_stats":
            _same_result(x, y)
        elif name == "solver_stats":
            assert (x.solver_name, x.num_iters) == (y.solver_name, y.num_iters)
            assert x.solve_time == pytest.approx(y.solve_time)
        else:
            assert x == y, name


@pytest.mark.parametrize("seed, graph", [(0, "cyclic"), (1, "acyclic"), (2, "cyclic")])
def test_save_and_load_round_trip(tmp_path, seed, graph):
    ds = make_dataset(10, 6, 8, 8, graph=graph, seed=seed)
    theory = solve(ds)
    path = theory.save(tmp_path / "theory.npz")
    for loaded in (load_theory(path), load_theory(path, dataset=ds)):
        assert isinstance(loaded, Theory) and loaded.source == str(path)
        assert loaded.dataset == ds and loaded.svm_norm == "fro"
        _same_result(theory.svm, loaded.svm)
        _same_result(theory.finite, loaded.finite)
        for name in ("node_scc", "scc_level", "edge_src", "dag_src"):
            np.testing.assert_array_equal(
                getattr(theory.graphs, name), getattr(loaded.graphs, name)
            )
        np.testing.assert_array_equal(loaded.finite.basis, theory.finite.basis)
        seqs = ds.padded()
        np.testing.assert_array_equal(
            loaded.automaton().predict_proba(seqs), theory.automaton().predict_proba(seqs)
        )
        assert loaded.summary().split("W_svm")[0] == theory.summary().split("W_svm")[0]
    meta = json.loads(str(np.load(path)["meta"]))
    assert meta["format"] == "attnmech-theory-v3" and meta["dataset_fingerprint"] == ds.fingerprint()
    assert meta["cyclic"] is (graph == "cyclic")


def test_a_loaded_theory_needs_no_solve(tmp_path, monkeypatch):
    """load_theory reads the solutions; it never calls a solver."""
    import attnmech.theory.solve as theory_module

    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)
    path = solve(ds).save(tmp_path / "t.npz")

    def fail(*args, **kwargs):
        raise AssertionError("solved again")

    monkeypatch.setattr(theory_module, "solve_norm_svm", fail)
    monkeypatch.setattr(theory_module, "solve_finite", fail)
    assert load_theory(path, dataset=ds).svm.success


def test_unbalanced_cycle_round_trip(tmp_path, unbalanced_cycle):
    loaded = load_theory(solve(unbalanced_cycle).save(tmp_path / "c.npz"))
    e_a, e_b = unbalanced_cycle.embeddings
    assert (e_a - e_b) @ loaded.W_fin @ e_b == pytest.approx(
        np.log(2), rel=1e-8
    )  # docs/theory.md#the-finite-part
    assert loaded.svm.is_zero and loaded.finite.dimension == 1


def test_fingerprint_canonical_form():
    """SHA-256 over the documented canonical form; content changes change it, copies do not."""
    import hashlib

    ds = Dataset([[0, 1], [1, 0, 1]], [0, 1], np.eye(2))
    digest = hashlib.sha256(b"attnmech-dataset-v1")
    for name, array, dtype in [
        ("offsets", [0, 2, 5], "<i8"),
        ("tokens", [0, 1, 1, 0, 1], "<i8"),
        ("labels", [0, 1], "<i8"),
        ("embeddings", np.eye(2), "<f8"),
    ]:
        canonical = np.asarray(array, dtype=dtype)
        digest.update(f"\n{name} {tuple(canonical.shape)}\n".encode("ascii"))
        digest.update(canonical.tobytes())
    assert ds.fingerprint() == digest.hexdigest()
    same = Dataset(
        [np.array([0, 1]), [1, 0, 1]], np.array([0, 1]), np.where(np.eye(2) == 1, 1.0, -0.0)
    )
    assert same.fingerprint() == ds.fingerprint()
    for other in (
        Dataset([[0, 1], [1, 0, 1]], [0, 0], np.eye(2)),  # a label
        Dataset([[0, 1], [0, 1, 1]], [0, 1], np.eye(2)),  # a token
        Dataset([[0, 1, 1], [0, 1]], [0, 1], np.eye(2)),  # the lengths (same tokens)
        Dataset([[0, 1], [1, 0, 1]], [0, 1], np.eye(2) * 2),  # the embeddings
    ):
        assert other.fingerprint() != ds.fingerprint()


def test_check_dataset_names_the_file_and_the_fix(tmp_path):
    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)
    other = make_dataset(6, 4, 6, 8, graph="cyclic", seed=1)
    path = solve(ds).save(tmp_path / "theory.npz")
    loaded = load_theory(path)
    loaded.check_dataset(ds)
    message = (
        rf"theory\.npz was solved for another dataset \(fingerprint {ds.fingerprint()[:12]}\.\.\. "
        rf"vs {other.fingerprint()[:12]}\.\.\.\); solve again with attnmech solve DATA -o "
    )
    with pytest.raises(InvalidParameterError, match=message):
        loaded.check_dataset(other)
    with pytest.raises(InvalidParameterError, match=message):
        load_theory(path, dataset=other)
    with pytest.raises(InvalidParameterError, match="this theory was solved for another"):
        solve(ds).check_dataset(other)


def _damaged_files(tmp_path, good):
    data = good.read_bytes()
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.npz").write_text("W_svm = 0\n")
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npz").write_bytes((tmp_path / "array.npy").read_bytes())
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    arrays = dict(np.load(good))
    np.savez(tmp_path / "old.npz", **{**arrays, "meta": np.array(json.dumps({"cyclic": True}))})
    # written with a valid checksum (so that the checks behind it are reached) ...
    stored = _persist.read(good, "theory")
    meta = {k: v for k, v in stored.meta.items() if k not in ("format", "checksum")}
    partial = {k: v for k, v in stored.arrays.items() if k != "fin_frame"}
    _persist.write(tmp_path / "partial.npz", "theory", partial, meta)
    corrupt = {**stored.arrays, "dataset_labels": arrays["dataset_labels"][::-1].copy()}
    _persist.write(tmp_path / "tampered.npz", "theory", corrupt, meta)
    # ... and edited in place, without one
    np.savez(tmp_path / "edited.npz", **{**arrays, "W_svm": -arrays["W_svm"]})
    flipped = bytearray(data)
    with zipfile.ZipFile(good) as archive:
        info = archive.getinfo("W_svm.npy")
    header = data[info.header_offset : info.header_offset + 30]  # the local file header
    name_length, extra_length = (int.from_bytes(header[k : k + 2], "little") for k in (26, 28))
    start = info.header_offset + 30 + name_length + extra_length + 10  # inside the member's data
    flipped[start : start + 8] = b"\xff" * 8
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    return {
        "empty.npz": "is empty",
        "truncated.npz": "truncated, corrupt",
        "text.npz": "is not an .npz file",
        "array.npz": "is not an .npz file",
        "other.npz": "is not a theory file",
        "old.npz": "not attnmech-theory-v2",
        "partial.npz": "lacks the members ['fin_frame']",
        "tampered.npz": "is damaged (the stored dataset does not match",
        "edited.npz": "its content does not match its checksum",
        "flipped.npz": "truncated, corrupt",
        "missing.npz": "does not exist",
    }


def test_damaged_theory_files_are_file_format_errors(tmp_path):
    good = solve(make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)).save(tmp_path / "good.npz")
    for name, fragment in _damaged_files(tmp_path, good).items():
        with pytest.raises(FileFormatError, match=re.escape(fragment)) as info:
            load_theory(tmp_path / name)
        assert info.value.path == str(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
        assert "attnmech solve DATA -o" in str(info.value) or name == "missing.npz"


def test_save_needs_npz(tmp_path):
    theory = solve(make_dataset(6, 4, 6, 8, seed=0))
    with pytest.raises(InvalidParameterError, match=r"use a \.npz name"):
        theory.save(tmp_path / "theory.json")


def test_solve_rejects_non_datasets_and_unknown_norms():
    with pytest.raises(InvalidDatasetError, match="attnmech.Dataset"):
        solve([[0, 1]])
    with pytest.raises(InvalidParameterError, match="unknown norm 'frob'; use one of 'fro', 'l1'"):
        solve(make_dataset(6, 4, 6, 8, seed=0), svm_norm="frob")


def test_facade():
    ds = make_dataset(10, 6, 8, 8, graph="cyclic", seed=4)
    model = AttentionTheory()
    with pytest.raises(NotFittedError, match="fit"):
        model.predict(ds)
    model.fit(ds)
    theory = solve(ds)
    np.testing.assert_array_equal(model.W_svm_, theory.W_svm)
    np.testing.assert_array_equal(model.predict(ds), theory.automaton().predict_proba(ds).argmax(1))
    np.testing.assert_allclose(model.predict_proba(ds).sum(axis=1), 1.0)


def test_saved_run_and_theory_verify_like_the_originals(tmp_path):
    """Round trips end to end: a saved run and a saved theory give verify the same numbers."""
    from attnmech import TrainConfig, load_run, train, verify

    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)
    theory = solve(ds)
    result = train(ds, TrainConfig(num_steps=50, num_trials=2), theory=theory)
    run = load_run(result.save(tmp_path / "run.npz"))
    loaded = load_theory(theory.save(tmp_path / "theory.npz"), dataset=ds)
    again = train(ds, TrainConfig(num_steps=50, num_trials=2), theory=loaded)
    for key in result.history:
        np.testing.assert_array_equal(again.history[key], result.history[key], err_msg=key)
    original = verify(ds, result, theory).metrics
    reloaded = verify(ds, run, loaded).metrics
    assert original.keys() == reloaded.keys() and "corr_svm" in original
    for key in original:
        np.testing.assert_array_equal(reloaded[key], original[key], err_msg=key)

"""solve(), theory files and the scikit-learn style facade."""

from __future__ import annotations

import numpy as np
import pytest

from attnmech import (
    AttentionTheory,
    InvalidDatasetError,
    NotFittedError,
    load_theory,
    make_dataset,
    solve,
)


def test_save_and_load_round_trip(tmp_path):
    theory = solve(make_dataset(6, 4, 6, 8, graph="cyclic", seed=0))
    path = theory.save(tmp_path / "theory.npz")
    loaded = load_theory(path)
    np.testing.assert_array_equal(loaded.W_svm, theory.W_svm)
    np.testing.assert_array_equal(loaded.W_fin, theory.W_fin)
    assert loaded.meta["svm_status"] == "optimal" and loaded.meta["cyclic"] is True
    seqs = theory.dataset.padded()
    np.testing.assert_allclose(
        loaded.automaton().predict_proba(seqs), theory.automaton().predict_proba(seqs)
    )
    assert "W_svm: optimal" in theory.summary()


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(2))
    with pytest.raises(InvalidDatasetError, match="not a theory file"):
        load_theory(tmp_path / "x.npz")


def test_solve_rejects_non_datasets():
    with pytest.raises(InvalidDatasetError, match="attnmech.Dataset"):
        solve([[0, 1]])


def test_facade():
    ds = make_dataset(10, 6, 8, 8, graph="cyclic", seed=4)
    model = AttentionTheory()
    with pytest.raises(NotFittedError, match="fit"):
        model.predict(ds)
    model.fit(ds)
    np.testing.assert_array_equal(model.W_svm_, solve(ds).W_svm)
    assert model.predict(ds).shape == (ds.n_samples,)
    np.testing.assert_allclose(model.predict_proba(ds).sum(axis=1), 1.0)

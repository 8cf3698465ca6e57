"""Tests for attnmech.data.dataset: Dataset construction, validation, files and generators."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnmech import (
    Dataset,
    InvalidDatasetError,
    UnrealizableLabelError,
    build_priority_graphs,
    load_dataset,
    make_dataset,
    make_embeddings,
    repair_labels,
)
from attnmech.data.dataset import parse_embeddings_spec, unrealizable_samples
from attnmech.errors import FileFormatError, InvalidParameterError

# ----------------------------------------------------------------------------- construction


def test_from_lists_stores_csr_arrays(ragged_with_repeats):
    ds = ragged_with_repeats
    assert ds.tokens.tolist() == [0, 1, 0, 4, 0, 1, 4, 0, 2, 4, 2, 3, 4, 4, 2, 3, 4, 3, 2]
    assert ds.offsets.tolist() == [0, 4, 7, 10, 14, 17, 19]
    assert ds.labels.tolist() == [0, 1, 0, 2, 3, 3]
    assert ds.lengths.tolist() == [4, 3, 3, 4, 3, 2]
    assert ds.last_tokens.tolist() == [4, 4, 4, 4, 4, 2]
    assert ds.sample_of_token.tolist() == [0] * 4 + [1] * 3 + [2] * 3 + [3] * 4 + [4] * 3 + [5] * 2
    assert ds.sequence(3).tolist() == [2, 3, 4, 4]
    assert [s.tolist() for s in ds.sequences][5] == [3, 2]
    assert (ds.n_samples, ds.vocab_size, ds.embedding_dim, ds.max_length) == (6, 5, 5, 4)
    assert len(ds) == 6
    assert repr(ds) == "Dataset(n_samples=6, vocab_size=5, embedding_dim=5, length=2..4)"


def test_dtypes_and_read_only(ragged_with_repeats):
    ds = ragged_with_repeats
    assert ds.tokens.dtype == np.int64 and ds.labels.dtype == np.int64
    assert ds.embeddings.dtype == np.float64
    for array in (ds.tokens, ds.offsets, ds.labels, ds.embeddings):
        with pytest.raises(ValueError):
            array[0] = 1


def test_padded_and_mask(ragged_with_repeats):
    ds = ragged_with_repeats
    padded = ds.padded()
    assert padded.tolist()[1] == [0, 1, 4, -1]
    assert padded.tolist()[5] == [3, 2, -1, -1]
    assert ds.padded(fill=7)[5].tolist() == [3, 2, 7, 7]
    np.testing.assert_array_equal(ds.padded_mask(), padded >= 0)


def test_from_padded_array_equals_from_lists(ragged_with_repeats):
    ds = ragged_with_repeats
    again = Dataset(ds.padded(), ds.labels, ds.embeddings)
    assert again == ds
    # integral floats are accepted as token ids
    assert Dataset(ds.padded().astype(np.float64), ds.labels, ds.embeddings) == ds


def test_equality_and_unhashable(unbalanced_cycle, balanced_cycle):
    assert unbalanced_cycle == Dataset([[0, 1]] * 3, [0, 0, 1], np.eye(2))
    assert unbalanced_cycle != balanced_cycle
    with pytest.raises(TypeError):
        hash(unbalanced_cycle)


def test_subset_and_with_embeddings(ragged_with_repeats):
    ds = ragged_with_repeats
    sub = ds.subset([5, 0])
    assert [s.tolist() for s in sub.sequences] == [[3, 2], [0, 1, 0, 4]]
    assert sub.labels.tolist() == [3, 0]
    mask = np.array([False, True, False, False, False, True])
    assert ds.subset(mask).labels.tolist() == [1, 3]
    E = 2.0 * np.eye(5)
    other = ds.with_embeddings(E)
    np.testing.assert_array_equal(other.embeddings, E)
    assert other.tokens.tolist() == ds.tokens.tolist()
    with pytest.raises(InvalidDatasetError, match="subset selects no samples"):
        ds.subset([])
    with pytest.raises(InvalidDatasetError, match="subset selects no samples"):
        ds.subset(np.zeros(6, dtype=bool))
    with pytest.raises(InvalidDatasetError, match="bad subset of a dataset with 6 samples"):
        ds.subset([0, 6])
    with pytest.raises(InvalidDatasetError, match="new embeddings have 3 rows"):
        ds.with_embeddings(np.eye(3))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(0, 5), min_size=1, max_size=7).flatmap(
            lambda seq: st.tuples(st.just(seq), st.sampled_from(seq))
        ),
        min_size=1,
        max_size=8,
    )
)
def test_list_and_padded_inputs_agree(samples):
    sequences = [seq for seq, _ in samples]
    labels = [y for _, y in samples]
    ds = Dataset(sequences, labels, np.eye(6))
    assert [s.tolist() for s in ds.sequences] == sequences
    assert ds.last_tokens.tolist() == [seq[-1] for seq in sequences]
    assert Dataset(ds.padded(), labels, np.eye(6)) == ds


# ----------------------------------------------------------------------------- validation


def test_unrealizable_raise_names_samples():
    with pytest.raises(UnrealizableLabelError, match=r"labels of samples \[1, 3\]") as info:
        Dataset([[0, 1], [0, 1], [2, 1], [2, 1]], [0, 2, 2, 0], np.eye(3))
    assert info.value.samples == [1, 3]
    assert "on_unrealizable='drop'" in str(info.value)
    assert isinstance(info.value, InvalidDatasetError) and isinstance(info.value, ValueError)


def test_unrealizable_drop():
    ds = Dataset([[0, 1], [0, 1], [2, 1], [2, 1]], [0, 2, 2, 0], np.eye(3), on_unrealizable="drop")
    assert [s.tolist() for s in ds.sequences] == [[0, 1], [2, 1]]
    assert ds.labels.tolist() == [0, 2]
    assert ds.dropped.tolist() == [1, 3]
    with pytest.raises(InvalidDatasetError, match="every label is absent"):
        Dataset([[0, 1]], [2], np.eye(3), on_unrealizable="drop")


def test_unrealizable_repair_is_seeded_and_realizable():
    sequences = [[0, 1, 3], [0, 1], [2, 1, 3], [2, 1]]
    labels = [0, 2, 2, 0]
    a = Dataset(sequences, labels, np.eye(4), on_unrealizable="repair", seed=3)
    b = Dataset(sequences, labels, np.eye(4), on_unrealizable="repair", seed=3)
    assert a == b
    assert a.labels[0] == 0 and a.labels[2] == 2  # realizable labels are untouched
    assert a.labels[1] in (0, 1) and a.labels[3] in (2, 1)
    assert unrealizable_samples(a.tokens, a.offsets, a.labels).size == 0
    assert a.dropped.size == 0


def test_unrealizable_keep():
    ds = Dataset([[0, 1]], [2], np.eye(3), on_unrealizable="keep")
    assert ds.labels.tolist() == [2]


def test_on_unrealizable_value_checked_even_for_clean_data():
    with pytest.raises(InvalidParameterError, match="on_unrealizable must be one of"):
        Dataset([[0, 1]], [0], np.eye(2), on_unrealizable="ignore")


def test_unrealizable_samples_and_repair_labels():
    tokens = np.array([3, 3, 5, 1, 2])
    offsets = np.array([0, 2, 3, 5])
    labels = np.array([3, 4, 0])
    assert unrealizable_samples(tokens, offsets, labels).tolist() == [1, 2]
    repaired = repair_labels(tokens, offsets, labels, seed=0)
    assert repaired[0] == 3 and repaired[1] == 5 and repaired[2] in (1, 2)
    assert labels.tolist() == [3, 4, 0]  # input untouched


@pytest.mark.parametrize(
    ("sequences", "labels", "message"),
    [
        ([[0, 1], [0, 7], [9, 1]], [0, 0, 1], r"samples \[1, 2\] hold token ids outside \[0, 3\)"),
        ([[0, 1], [-1, 1]], [0, 1], r"samples \[1\] hold token ids outside"),
        ([[0, 1], [0, 1]], [0, 5], r"labels of samples \[1\] are outside \[0, 3\)"),
        ([[0, 1], [0, 1]], [-1, 0], r"labels of samples \[0\] are outside"),
        ([[0, 1], []], [0, 0], r"sequences of samples \[1\] are empty"),
        ([[0, 1], [0, 1]], [0], "got 2 sequences but 1 labels"),
        ([], [], "the dataset is empty"),
        ([[0, 1]], [[0]], "labels must be 1-D"),
        ([[0, 1]], [0.5], "labels must be integer token ids"),
        ([[0, 1], [[0, 1]]], [0, 0], "sequence of sample 1 must be 1-D"),
        ([[0, 1], [0.5, 1]], [0, 1], "sequence of sample 1 must hold integer token ids"),
        ([[0, 1], "ab"], [0, 1], r"sequence of sample 1 must be 1-D, got shape \(\)"),
        (5, [0], "sequences must be a list of token-id sequences"),
    ],
)
def test_invalid_sequences_and_labels(sequences, labels, message):
    with pytest.raises(InvalidDatasetError, match=message):
        Dataset(sequences, labels, np.eye(3))


def test_invalid_padded_arrays():
    with pytest.raises(InvalidDatasetError, match=r"samples \[1, 2\] have negative entries before"):
        Dataset(np.array([[0, 1, -1], [0, -1, 1], [-1, 0, 1]]), [0, 0, 0], np.eye(2))
    with pytest.raises(InvalidDatasetError, match=r"sequences of samples \[1\] are empty"):
        Dataset(np.array([[0, 1], [-1, -1]]), [0, 0], np.eye(2))
    with pytest.raises(InvalidDatasetError, match="the dataset is empty"):
        Dataset(np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64), np.eye(2))
    with pytest.raises(InvalidDatasetError, match="must hold integer token ids"):
        Dataset(np.array([[0.0, 0.5]]), [0], np.eye(2))
    with pytest.raises(InvalidDatasetError, match=r"got an array of shape \(1, 1, 2\)"):
        Dataset(np.zeros((1, 1, 2), dtype=np.int64), [0], np.eye(2))


@pytest.mark.parametrize(
    ("embeddings", "message"),
    [
        (
            np.array([[1.0, 0.0], [np.nan, 0.0], [0.0, np.inf]]),
            r"tokens \[1, 2\] contain NaN or inf",
        ),
        (np.ones(3), r"got shape \(3,\)"),
        (np.ones((3, 2, 1)), r"got shape \(3, 2, 1\)"),
        (np.ones((3, 0)), r"got shape \(3, 0\)"),
        ([["x", "y"]], "must be a numeric array"),
        ([[1.0, 2.0], [1.0]], "must be a numeric array"),
    ],
)
def test_invalid_embeddings(embeddings, message):
    with pytest.raises(InvalidDatasetError, match=message):
        Dataset([[0, 1]], [0], embeddings)


def test_token_id_must_fit_embedding_rows():
    with pytest.raises(InvalidDatasetError, match=r"vocab_size is the number of embedding rows, 2"):
        Dataset([[0, 2]], [0], np.eye(2))


# ----------------------------------------------------------------------------- files


def test_npz_round_trip(tmp_path, ragged_with_repeats):
    path = ragged_with_repeats.save(tmp_path / "data.npz")
    assert path == tmp_path / "data.npz"
    with np.load(path) as archive:
        assert sorted(archive.files) == ["embeddings", "labels", "meta", "sequences"]
        assert archive["sequences"].dtype == np.int64
        assert archive["sequences"][5].tolist() == [3, 2, -1, -1]
        assert archive["labels"].dtype == np.int64
        assert archive["embeddings"].dtype == np.float64
    assert load_dataset(path) == ragged_with_repeats
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz"]  # no temporary left


def test_npz_embeddings_override(tmp_path, unbalanced_cycle):
    path = unbalanced_cycle.save(tmp_path / "data.npz")
    E = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
    np.save(tmp_path / "E.npy", E)
    np.testing.assert_array_equal(load_dataset(path, embeddings=E).embeddings, E)
    np.testing.assert_array_equal(load_dataset(path, embeddings=tmp_path / "E.npy").embeddings, E)
    spec = load_dataset(path, embeddings="ortho:d=4,seed=2")
    np.testing.assert_allclose(spec.embeddings, make_embeddings("ortho", 2, 4, seed=2), rtol=1e-12)


def test_jsonl_round_trip_with_sibling_npy(tmp_path, ragged_with_repeats):
    path = ragged_with_repeats.save(tmp_path / "data.jsonl")
    sibling = tmp_path / "data.embeddings.npy"
    assert sibling.exists()
    lines = path.read_text().splitlines()
    assert json.loads(lines[5]) == {"sequence": [3, 2], "label": 3}
    assert len(lines) == 6
    assert load_dataset(path) == ragged_with_repeats


def test_jsonl_explicit_npy_path(tmp_path, acyclic_chain):
    emb = tmp_path / "emb" / "table.npy"
    acyclic_chain.save(tmp_path / "data.jsonl", embeddings_path=str(emb))
    assert emb.exists() and not (tmp_path / "data.embeddings.npy").exists()
    with pytest.raises(FileFormatError, match="needs embeddings"):
        load_dataset(tmp_path / "data.jsonl")
    assert load_dataset(tmp_path / "data.jsonl", embeddings=emb) == acyclic_chain
    assert load_dataset(tmp_path / "data.jsonl", embeddings=str(emb)) == acyclic_chain


def test_jsonl_with_generator_spec(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"sequence": [0, 3, 1], "label": 3}\n\n{"sequence": [2, 1], "label": 2}\n')
    ds = load_dataset(path, embeddings="random:d=8,seed=0")
    assert ds.vocab_size == 4  # largest id + 1
    np.testing.assert_array_equal(ds.embeddings, make_embeddings("random", 4, 8, seed=0))
    assert ds.labels.tolist() == [3, 2]


def test_load_applies_on_unrealizable(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"sequence": [0, 1], "label": 0}\n{"sequence": [0, 1], "label": 2}\n')
    with pytest.raises(UnrealizableLabelError, match=r"samples \[1\]"):
        load_dataset(path, embeddings="random:d=3")
    assert load_dataset(path, embeddings="random:d=3", on_unrealizable="drop").n_samples == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"sequence": [0, 1], "label": 0}\nnot json\n', "line 2: expected"),
        ('{"sequence": [0, 1]}\n', "line 1: expected"),
        ('{"sequence": "01", "label": 0}\n', "line 1: 'sequence' must be a list"),
        ('{"sequence": [0, 1.5], "label": 0}\n', "line 1: token ids and label must be integers"),
        ('{"sequence": [0, 1], "label": true}\n', "line 1: token ids and label must be integers"),
    ],
)
def test_bad_jsonl(tmp_path, text, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=message):
        load_dataset(path, embeddings="random:d=2")


def test_bad_files(tmp_path, unbalanced_cycle):
    with pytest.raises(FileFormatError, match="does not exist"):
        load_dataset(tmp_path / "missing.npz")
    (tmp_path / "data.csv").write_text("0,1\n")
    with pytest.raises(FileFormatError, match="use a .npz or .jsonl file"):
        load_dataset(tmp_path / "data.csv")
    with pytest.raises(InvalidParameterError, match="use a .npz or .jsonl file name"):
        unbalanced_cycle.save(tmp_path / "data.csv")
    np.savez(tmp_path / "nolabels.npz", sequences=np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(FileFormatError, match=r"lacks the keys \['embeddings', 'labels'\]"):
        load_dataset(tmp_path / "nolabels.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file")
    with pytest.raises(FileFormatError, match="garbage.npz: it is not an .npz file"):
        load_dataset(tmp_path / "garbage.npz")
    flat = np.zeros(3, dtype=np.int64)
    np.savez(tmp_path / "flat.npz", sequences=flat, labels=[0], embeddings=np.eye(2))
    with pytest.raises(FileFormatError, match="'sequences' must be 2-D"):
        load_dataset(tmp_path / "flat.npz")
    path = unbalanced_cycle.save(tmp_path / "ok.jsonl")
    with pytest.raises(FileFormatError, match="embeddings file .*missing.npy does not exist"):
        load_dataset(path, embeddings=tmp_path / "missing.npy")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("random", "write KIND:d=DIM"),
        ("random:seed=1", "write KIND:d=DIM"),
        ("random:d=4,colour=red", "write KIND:d=DIM"),
        ("random:d", "expected key=value"),
        ("random:d=four", "bad embeddings spec"),
        ("fancy:d=4", "kind must be one of random, ortho, equicorr, onehot, got 'fancy'"),
    ],
)
def test_bad_embeddings_spec(spec, message):
    with pytest.raises(InvalidParameterError, match=message):
        parse_embeddings_spec(spec, 3)


def test_embeddings_spec_values():
    E = parse_embeddings_spec("equicorr:d=5,rho=0.3,seed=4", 4)
    np.testing.assert_allclose(E @ E.T, 0.7 * np.eye(4) + 0.3, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- generators


def test_random_embeddings_are_unit_and_seeded():
    E = make_embeddings("random", 7, 5, seed=11)
    assert E.shape == (7, 5)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(E, make_embeddings("random", 7, 5, seed=11))
    assert not np.allclose(E, make_embeddings("random", 7, 5, seed=12))
    rng = np.random.default_rng(11)
    np.testing.assert_array_equal(E, make_embeddings("random", 7, 5, seed=rng))


def test_ortho_embeddings_are_orthonormal():
    E = make_embeddings("ortho", 4, 6, seed=0)
    np.testing.assert_allclose(E @ E.T, np.eye(4), rtol=0, atol=1e-12)
    square = make_embeddings("ortho", 5, 5, seed=1)
    np.testing.assert_allclose(square.T @ square, np.eye(5), rtol=0, atol=1e-12)


@pytest.mark.parametrize("rho", [-0.15, 0.0, 0.5, 0.9])
def test_equicorr_embeddings_have_the_wanted_gram(rho):
    E = make_embeddings("equicorr", 6, 8, rho=rho, seed=3)
    np.testing.assert_allclose(E @ E.T, (1 - rho) * np.eye(6) + rho, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("ortho", 5, 3), {}, "ortho embeddings need vocab_size <= embedding_dim, got 5 > 3"),
        (("equicorr", 5, 3), {}, "equicorr embeddings need vocab_size <= embedding_dim"),
        (("equicorr", 3, 3), {"rho": 1.0}, "needs -1/\\(vocab_size-1\\) < rho < 1"),
        (("equicorr", 3, 3), {"rho": -0.5}, "needs -1/\\(vocab_size-1\\) < rho < 1"),
        (("gaussian", 3, 3), {}, "kind must be one of random, ortho, equicorr, onehot, got 'gauss"),
        (("random", 0, 3), {}, "vocab_size must be a positive integer, got 0"),
        (("random", 3, 2.0), {}, "embedding_dim must be a positive integer or None, got 2.0"),
        (("random", True, 3), {}, "vocab_size must be a positive integer, got True"),
    ],
)
def test_bad_embedding_requests(args, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        make_embeddings(*args, **kwargs)


@pytest.mark.parametrize("graph", ["cyclic", "acyclic"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_make_dataset_graph_flag_holds(graph, seed):
    ds = make_dataset(6, 4, 6, 8, graph=graph, seed=seed)
    assert build_priority_graphs(ds).is_cyclic == (graph == "cyclic")
    assert (ds.n_samples, ds.vocab_size, ds.embedding_dim) == (6, 6, 8)
    assert ds.lengths.tolist() == [4] * 6


def test_make_dataset_sequences_and_labels():
    ds = make_dataset(50, 4, 6, 8, seed=5)
    padded = ds.padded()
    # T <= K: every sequence holds T distinct tokens
    assert all(len(set(row.tolist())) == 4 for row in padded)
    # labels are realizable
    assert (padded == ds.labels[:, None]).any(axis=1).all()
    np.testing.assert_allclose(np.linalg.norm(ds.embeddings, axis=1), 1.0, rtol=1e-12)


def test_make_dataset_seq_len_above_vocab():
    ds = make_dataset(20, 9, 4, 4, embeddings="ortho", seed=1)
    padded = ds.padded()
    assert padded.shape == (20, 9)
    # the first K positions are a permutation of all K tokens, the rest draws with replacement
    assert all(sorted(row[:4].tolist()) == [0, 1, 2, 3] for row in padded)
    assert ((padded >= 0) & (padded < 4)).all()
    assert (padded == ds.labels[:, None]).any(axis=1).all()


def test_make_dataset_is_reproducible():
    a = make_dataset(6, 4, 6, 8, graph="cyclic", seed=7)
    b = make_dataset(6, 4, 6, 8, graph="cyclic", seed=7)
    c = make_dataset(6, 4, 6, 8, graph="cyclic", seed=8)
    assert a == b
    assert a != c


def test_make_dataset_with_given_or_named_embeddings():
    E = make_embeddings("ortho", 5, 6, seed=0)
    ds = make_dataset(4, 3, 5, 6, embeddings=E, seed=0)
    np.testing.assert_array_equal(ds.embeddings, E)
    eq = make_dataset(4, 3, 5, 6, embeddings="equicorr", rho=0.25, seed=0)
    np.testing.assert_allclose(eq.embeddings @ eq.embeddings.T, 0.75 * np.eye(5) + 0.25, atol=1e-12)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (
            (4, 3, 5, 6),
            {"embeddings": np.eye(5)},
            r"embeddings have shape \(5, 5\), expected \(5, 6\)",
        ),
        ((4, 3, 5, 6), {"graph": "dag"}, "graph must be one of cyclic, acyclic, any, got 'dag'"),
        ((0, 3, 5, 6), {}, "n_samples must be a positive integer"),
        ((4, 0, 5, 6), {}, "seq_len must be a positive integer"),
        ((3, 1, 1, 1), {"graph": "cyclic", "max_tries": 5}, "no cyclic dataset found in 5 draws"),
    ],
)
def test_bad_make_dataset_requests(args, kwargs, message):
    # the embedding table's shape is content (InvalidDatasetError); the rest are parameters
    error = InvalidDatasetError if "embeddings have shape" in message else InvalidParameterError
    with pytest.raises(error, match=message):
        make_dataset(*args, **kwargs)


# ------------------------------------------------------------------ padding and id edge cases
def test_only_trailing_minus_one_is_padding():
    E = np.eye(4)
    ds = Dataset(np.array([[0, 1, 2], [3, 1, -1], [2, -1, -1]]), [0, 1, 2], E)
    assert ds.lengths.tolist() == [3, 2, 1] and ds.last_tokens.tolist() == [2, 1, 2]
    for bad in (-5, -2, -(2**62)):
        with pytest.raises(InvalidDatasetError, match=rf"sample 1 position 2: {bad}"):
            Dataset(np.array([[0, 1, 2], [3, 1, bad]]), [0, 1], E)


def test_unsigned_ids_never_wrap():
    E = np.eye(4)
    ok = Dataset(np.array([[0, 1, 2]], dtype=np.uint64), np.array([0], dtype=np.uint64), E)
    assert ok.tokens.tolist() == [0, 1, 2]
    with pytest.raises(InvalidDatasetError, match="unsigned id 18446744073709551615"):
        Dataset(np.array([[0, 1, 2**64 - 1]], dtype=np.uint64), [0], E)
    with pytest.raises(InvalidDatasetError, match="unsigned id"):
        Dataset([np.array([0, 2**64 - 1], dtype=np.uint64)], [0], E)


def test_out_of_range_ids_name_sample_and_position():
    with pytest.raises(InvalidDatasetError, match=r"sample 1 position 0: 9"):
        Dataset([[0, 1], [9, 1]], [0, 1], np.eye(4))


def test_file_errors_name_the_file(tmp_path, unbalanced_cycle):
    good = unbalanced_cycle.save(tmp_path / "good.npz")
    data = good.read_bytes()
    for cut in (1, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(data[:cut])
        with pytest.raises(FileFormatError, match=f"cut{cut}.npz") as info:
            load_dataset(path)
        assert info.value.path == str(path)
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(FileFormatError, match="is empty"):
        load_dataset(tmp_path / "empty.npz")
    np.save(tmp_path / "plain.npy", np.eye(2))
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")
    with pytest.raises(FileFormatError, match=r"\.npy format"):
        load_dataset(tmp_path / "plain.npz")
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(FileFormatError, match="not UTF-8"):
        load_dataset(tmp_path / "bin.jsonl", embeddings="random:d=2")
    np.savez(tmp_path / "bad_ids.npz", sequences=np.array([[0, -3]]), labels=[0],
             embeddings=np.eye(2))  # fmt: skip
    with pytest.raises(InvalidDatasetError, match=r"bad_ids.npz: negative token ids"):
        load_dataset(tmp_path / "bad_ids.npz")


def test_memory_is_estimated_before_drawing(monkeypatch):
    monkeypatch.setenv("ATTNMECH_MEMORY_LIMIT_GB", "0.001")
    with pytest.raises(InvalidParameterError, match=r"more than the limit of 0.001 GiB"):
        make_dataset(100_000, 4, 6, 8)
    assert make_dataset(10, 4, 6, 8).n_samples == 10

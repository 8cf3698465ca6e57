"""Tests for attnmech.theory.graphs: token-priority graphs, SCCs, priority levels and exports.

The property tests rebuild every ``G^(k)`` naively from the docs/theory.md#token-priority-graphs
definition with networkx (edge y -> j for every token j of X other than y) and check the vectorised
build against ``networkx.strongly_connected_components`` and longest paths in
``networkx.condensation``.
"""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnmech import Dataset, InvalidDatasetError, build_priority_graphs
from attnmech.theory.graphs import priority_edges, sorted_unique

MAX_VOCAB = 6


@st.composite
def datasets(draw):
    """Small realizable datasets: ragged sequences over a few tokens, with repeats."""
    vocab_size = draw(st.integers(1, MAX_VOCAB))
    token = st.integers(0, vocab_size - 1)
    n = draw(st.integers(1, 10))
    sequences = [draw(st.lists(token, min_size=1, max_size=6)) for _ in range(n)]
    labels = [draw(st.sampled_from(seq)) for seq in sequences]
    return sequences, labels, vocab_size


def naive_graphs(sequences, labels):
    """``G^(k)`` for each last token k, straight from the definition."""
    graphs: dict[int, nx.DiGraph] = {}
    for seq, y in zip(sequences, labels, strict=True):
        graph = graphs.setdefault(seq[-1], nx.DiGraph())
        graph.add_nodes_from(seq)
        graph.add_edges_from((y, j) for j in seq if j != y)
    return graphs


def naive_levels(graph: nx.DiGraph) -> dict[int, int]:
    """Level of each token: the longest path in the condensation that ends at its SCC."""
    dag = nx.condensation(graph)
    levels = {}
    for node in dag.nodes:
        upstream = dag.subgraph(nx.ancestors(dag, node) | {node})
        length = nx.dag_longest_path_length(upstream)
        levels.update(dict.fromkeys(dag.nodes[node]["members"], length))
    return levels


def build(sequences, labels, vocab_size):
    return build_priority_graphs(Dataset(sequences, labels, np.eye(vocab_size)))


# ----------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(datasets())
def test_sccs_partition_tokens_and_agree_with_networkx(data):
    sequences, labels, vocab_size = data
    pg = build(sequences, labels, vocab_size)
    reference = naive_graphs(sequences, labels)
    assert pg.queries.tolist() == sorted(reference)
    for k, graph in reference.items():
        sccs = pg.sccs(k)
        members = [t for scc in sccs for t in scc]
        assert sorted(members) == sorted(graph.nodes)  # a partition: each token exactly once
        assert pg.tokens(k).tolist() == sorted(graph.nodes)
        expected = {frozenset(c) for c in nx.strongly_connected_components(graph)}
        assert {frozenset(scc) for scc in sccs} == expected
        assert pg.scc_size[pg.scc_ids(k)].tolist() == [len(scc) for scc in sccs]
        assert [pg.scc_members(s) for s in pg.scc_ids(k).tolist()] == sccs
        assert set(pg.scc_query[pg.scc_ids(k)].tolist()) <= {k}


@settings(max_examples=60, deadline=None)
@given(datasets())
def test_scc_of_matches_membership(data):
    sequences, labels, vocab_size = data
    pg = build(sequences, labels, vocab_size)
    reference = naive_graphs(sequences, labels)
    queries, tokens = np.meshgrid(np.arange(vocab_size), np.arange(vocab_size), indexing="ij")
    ids = pg.scc_of(queries, tokens)  # (K, K)
    for k in range(vocab_size):
        graph = reference.get(k, nx.DiGraph())
        for t in range(vocab_size):
            if t not in graph:
                assert ids[k, t] == -1
            else:
                assert t in pg.scc_members(ids[k, t])
                assert pg.scc_query[ids[k, t]] == k


@settings(max_examples=60, deadline=None)
@given(datasets())
def test_levels_are_longest_paths_in_the_condensation(data):
    sequences, labels, vocab_size = data
    pg = build(sequences, labels, vocab_size)
    for k, graph in naive_graphs(sequences, labels).items():
        assert pg.levels(k) == naive_levels(graph)


@settings(max_examples=60, deadline=None)
@given(datasets())
def test_edges_and_dag_respect_priority(data):
    sequences, labels, vocab_size = data
    pg = build(sequences, labels, vocab_size)
    for k, graph in naive_graphs(sequences, labels).items():
        assert pg.edges(k) == sorted(graph.edges)
        levels = pg.levels(k)
        dag = pg.condensation(k)
        for s, t in dag.edges:
            assert pg.scc_level[s] < pg.scc_level[t]
        # the condensation has an edge between two SCCs iff some token edge crosses them
        crossing = {
            (int(pg.scc_of(k, i)), int(pg.scc_of(k, j)))
            for i, j in graph.edges
            if pg.scc_of(k, i) != pg.scc_of(k, j)
        }
        assert set(dag.edges) == crossing
        for i, j in graph.edges:
            assert levels[i] <= levels[j]
        # SCC ids under k run in priority order, ties broken by smallest member
        ids = pg.scc_ids(k).tolist()
        keys = [(int(pg.scc_level[s]), min(pg.scc_members(s))) for s in ids]
        assert keys == sorted(keys)


@settings(max_examples=60, deadline=None)
@given(datasets())
def test_cyclic_flag(data):
    sequences, labels, vocab_size = data
    pg = build(sequences, labels, vocab_size)
    reference = naive_graphs(sequences, labels)
    cyclic = sorted(
        k
        for k, g in reference.items()
        if any(len(c) > 1 for c in nx.strongly_connected_components(g))
    )
    assert pg.is_cyclic == bool(cyclic)
    assert pg.cyclic_queries.tolist() == cyclic
    assert pg.n_nodes == sum(g.number_of_nodes() for g in reference.values())
    assert pg.n_edges == sum(g.number_of_edges() for g in reference.values())
    assert pg.n_sccs == sum(nx.number_strongly_connected_components(g) for g in reference.values())


@settings(max_examples=100, deadline=None)
@given(datasets())
def test_to_networkx_matches_definition(data):
    sequences, labels, vocab_size = data
    pg = build(sequences, labels, vocab_size)
    for k, graph in naive_graphs(sequences, labels).items():
        exported = pg.to_networkx(k)
        assert sorted(exported.nodes) == sorted(graph.nodes)
        assert sorted(exported.edges) == sorted(graph.edges)
        for t, attrs in exported.nodes(data=True):
            assert attrs["scc"] == pg.scc_of(k, t)
            assert attrs["level"] == pg.levels(k)[t]


def parse_dot(text: str) -> dict:
    """A small DOT reader for the subset ``to_dot`` writes: clusters, nodes and edges.

    Fails on unbalanced braces, on an edge between undeclared nodes and on a node declared twice.
    """
    clusters: list[str] = []
    stack: list[str] = []
    nodes: dict[str, tuple[str, ...]] = {}
    labels: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if match := re.match(r"(digraph|subgraph) (\w+) \{", line):
            stack.append(match.group(2))
            if match.group(1) == "subgraph":
                assert match.group(2).startswith("cluster_")
                clusters.append(match.group(2))
        elif line == "}":
            stack.pop()
        elif match := re.fullmatch(r'"([^"]+)" -> "([^"]+)";', line):
            edges.append((match.group(1), match.group(2)))
        elif match := re.fullmatch(r'"([^"]+)" \[label="((?:[^"\\]|\\.)*)"\];', line):
            assert match.group(1) not in nodes, f"node {match.group(1)} declared twice"
            nodes[match.group(1)] = tuple(stack)
            labels[match.group(1)] = match.group(2)
        else:
            assert line.startswith("rankdir="), f"unexpected DOT line {line!r}"
    assert not stack, "unbalanced braces"
    for src, dst in edges:
        assert src in nodes and dst in nodes
    return {"clusters": clusters, "nodes": nodes, "labels": labels, "edges": edges}


@settings(max_examples=60, deadline=None)
@given(datasets())
def test_dot_export_has_one_cluster_per_scc(data):
    sequences, labels, vocab_size = data
    pg = build(sequences, labels, vocab_size)
    parsed = parse_dot(pg.to_dot())
    scc_clusters = [c for c in parsed["clusters"] if "_scc" in c]
    assert len(scc_clusters) == pg.n_sccs
    assert len(parsed["clusters"]) == pg.n_sccs + pg.queries.size
    assert len(parsed["nodes"]) == pg.n_nodes
    assert len(parsed["edges"]) == pg.n_edges
    for name, stack in parsed["nodes"].items():
        q, t = (int(x) for x in re.fullmatch(r"q(\d+)_t(\d+)", name).groups())
        assert stack[-1] == f"cluster_q{q}_scc{int(pg.scc_of(q, t))}"


# ----------------------------------------------------------------------------- hand-made


def test_hand_made_sccs_and_levels(ragged_with_repeats):
    pg = build_priority_graphs(ragged_with_repeats)
    assert pg.queries.tolist() == [2, 4]
    assert pg.sccs(4) == [(0, 1), (2, 3), (4,)]
    assert pg.levels(4) == {0: 0, 1: 0, 2: 1, 3: 1, 4: 2}
    assert pg.sccs(2) == [(3,), (2,)]
    assert pg.levels(2) == {2: 1, 3: 0}
    assert pg.edges(2) == [(3, 2)]
    assert pg.edges(4) == [(0, 1), (0, 2), (0, 4), (1, 0), (1, 4), (2, 3), (2, 4), (3, 2), (3, 4)]
    assert pg.sccs(0) == [] and pg.tokens(0).tolist() == []
    assert pg.is_cyclic and pg.cyclic_queries.tolist() == [4]
    # global SCC ids: query 2 first (levels 0, 1), then query 4
    assert pg.scc_query.tolist() == [2, 2, 4, 4, 4]
    assert pg.scc_level.tolist() == [0, 1, 0, 1, 2]
    assert pg.scc_size.tolist() == [1, 1, 2, 2, 1]
    assert pg.scc_of([4, 4, 4, 2, 2, 2], [0, 1, 4, 3, 2, 0]).tolist() == [2, 2, 4, 0, 1, -1]
    dag = pg.condensation(4)
    assert sorted(dag.edges) == [(2, 3), (2, 4), (3, 4)]
    assert dag.nodes[3]["members"] == (2, 3) and dag.nodes[4]["level"] == 2
    assert (pg.dag_src.tolist(), pg.dag_dst.tolist()) == ([0, 2, 2, 3], [1, 3, 4, 4])


def test_hand_made_summary(ragged_with_repeats):
    pg = build_priority_graphs(ragged_with_repeats)
    assert pg.summary() == (
        "2 last tokens, 7 nodes, 10 edges, 5 SCCs; cyclic (1 queries with an SCC of size > 1)\n"
        "  last token 2: {3} > {2}\n"
        "  last token 4: {0, 1} > {2, 3} > {4}"
    )
    assert pg.summary([4, 0], token_names="abcde").splitlines()[1:] == [
        "  last token e: {a, b} > {c, d} > {e}",
        "  last token a: (never a last token)",
    ]
    assert pg.summary(max_queries=1).splitlines()[-1] == "  ... 1 more last tokens"


def test_summary_puts_incomparable_sccs_on_one_level():
    pg = build_priority_graphs(Dataset([[2, 0, 1], [1, 2, 1]], [2, 2], np.eye(3)))
    assert pg.summary().splitlines()[1] == "  last token 1: {2} > {0} {1}"
    assert not pg.is_cyclic


def test_hand_made_dot(ragged_with_repeats):
    text = build_priority_graphs(ragged_with_repeats).to_dot(queries=[4], token_names="abcde")
    parsed = parse_dot(text)
    assert parsed["clusters"] == [
        "cluster_query_4",
        "cluster_q4_scc2",
        "cluster_q4_scc3",
        "cluster_q4_scc4",
    ]
    assert parsed["labels"] == {f"q4_t{t}": name for t, name in enumerate("abcde")}
    assert ("q4_t0", "q4_t1") in parsed["edges"] and len(parsed["edges"]) == 9
    assert 'label="last token e"' in text
    assert text.count("fillcolor=lightyellow") == 2  # the two SCCs of size 2 are shaded


def test_dot_escapes_names():
    pg = build_priority_graphs(Dataset([[0, 1]], [0], np.eye(2)))
    parsed = parse_dot(pg.to_dot(token_names=['say "hi"', "back\\slash"]))
    assert parsed["labels"]["q1_t0"] == 'say \\"hi\\"'


def test_fixture_graphs(unbalanced_cycle, balanced_cycle, acyclic_chain):
    for ds in (unbalanced_cycle, balanced_cycle):
        pg = build_priority_graphs(ds)
        assert pg.sccs(1) == [(0, 1)] and pg.is_cyclic
    chain = build_priority_graphs(acyclic_chain)
    assert chain.sccs(3) == [(0,), (1,), (2,), (3,)]
    assert chain.levels(3) == {0: 0, 1: 1, 2: 2, 3: 3}
    assert not chain.is_cyclic and chain.cyclic_queries.size == 0


def test_priority_edges(acyclic_chain):
    query, src, dst = priority_edges(acyclic_chain)
    assert query.tolist() == [3] * 6
    pairs = list(zip(src.tolist(), dst.tolist(), strict=True))
    assert pairs == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def test_single_token_sequences_have_no_edges():
    pg = build_priority_graphs(Dataset([[1], [1, 1]], [1, 1], np.eye(2)))
    assert pg.n_edges == 0 and pg.sccs(1) == [(1,)] and pg.levels(1) == {1: 0}


def test_bad_queries_and_input(ragged_with_repeats):
    pg = build_priority_graphs(ragged_with_repeats)
    for query in (5, -1):
        with pytest.raises(InvalidDatasetError, match=rf"query {query} is outside \[0, 5\)"):
            pg.sccs(query)
    with pytest.raises(InvalidDatasetError, match="expected an attnmech.Dataset, got list"):
        build_priority_graphs([[0, 1]])


def test_graph_arrays_are_read_only(ragged_with_repeats):
    pg = build_priority_graphs(ragged_with_repeats)
    with pytest.raises(ValueError):
        pg.node_scc[0] = 3


@given(st.lists(st.integers(-5, 5), max_size=30))
def test_sorted_unique_matches_numpy(values):
    array = np.array(values, dtype=np.int64)
    np.testing.assert_array_equal(sorted_unique(array), np.unique(array))

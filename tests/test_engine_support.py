"""The support merge (model/engine/support.py): exact, and it shrinks plans on sparse networks."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import brute_force, brute_force_joint, random_network
from model import load_network
from model.engine import InferenceEngine
from model.engine.support import SupportMerge


def tables_of(model):
    variables = [v for v in __import__("networkx").topological_sort(model)]
    cards, parents, tables = {}, {}, {}
    for v in variables:
        cpd = model.get_cpds(v)
        cards[v] = int(cpd.cardinality[0])
        parents[v] = list(cpd.variables[1:])
        tables[v] = np.asarray(cpd.get_values(), dtype=float).reshape(cpd.cardinality)
    return variables, cards, parents, tables


def sparse_chain():
    """a -> b (mostly zeros) -> c, and a finding d with parents a and b."""
    rng = np.random.default_rng(1)
    cards = {"a": 8, "b": 8, "c": 3, "d": 4}
    tb = np.zeros((8, 8))
    for i in range(8):
        tb[i, i] = 0.7
        tb[(i + 1) % 8, i] = 0.3
    tables = {
        "a": rng.dirichlet(np.ones(8)),
        "b": tb,
        "c": rng.dirichlet(np.ones(3), size=8).T,
        "d": rng.dirichlet(np.ones(4), size=(8, 8)).transpose(2, 0, 1),
    }
    parents = {"a": [], "b": ["a"], "c": ["b"], "d": ["a", "b"]}
    return ["a", "b", "c", "d"], cards, parents, tables


def test_sparse_child_is_merged_and_answers_are_unchanged():
    variables, cards, parents, tables = sparse_chain()
    merged = InferenceEngine(variables, cards, parents, tables)
    plain = InferenceEngine(variables, cards, parents, tables, merge_support=False)
    assert merged.merge is not None and merged.merge.groups["a"].members == ["a", "b"]
    assert merged.merge.cards["a"] == 16  # 16 possible (a, b) pairs instead of 64
    rng = np.random.default_rng(2)
    lik = {"c": rng.random((50, 3)), "d": np.eye(4)[rng.integers(0, 4, 50)], "b": rng.random((50, 8))}
    r1, r2 = merged.query(lik, variables), plain.query(lik, variables)
    for v in variables:
        np.testing.assert_allclose(r1.marginals[v], r2.marginals[v], atol=1e-12)
    np.testing.assert_allclose(r1.log_evidence, r2.log_evidence, atol=1e-12)
    np.testing.assert_allclose(merged.joint(lik, "a", "b"), plain.joint(lik, "a", "b"), atol=1e-12)
    np.testing.assert_allclose(merged.joint(lik, "b", "c"), plain.joint(lik, "b", "c"), atol=1e-12)


def test_dense_networks_are_left_alone():
    variables, cards, parents, tables = sparse_chain()
    tables = dict(tables, b=np.full((8, 8), 1 / 8))
    assert SupportMerge.build(variables, cards, parents, tables) is None


def test_evidence_on_two_members_of_one_group_multiplies():
    variables, cards, parents, tables = sparse_chain()
    eng = InferenceEngine(variables, cards, parents, tables)
    lik = {"a": np.eye(8)[2], "b": np.eye(8)[3]}
    plain = InferenceEngine(variables, cards, parents, tables, merge_support=False)
    np.testing.assert_allclose(eng.query(lik, ["c"]).log_evidence, plain.query(lik, ["c"]).log_evidence)
    impossible = {"a": np.eye(8)[2], "b": np.eye(8)[5]}  # P(b=5 | a=2) = 0
    res = eng.query(impossible, ["c"])
    assert not res.possible[0] and res.log_evidence[0] == -np.inf and np.isnan(res.marginals["c"]).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000))
def test_random_sparse_networks_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    model = random_network(rng, max_nodes=6, max_card=4, zero_prob=0.6)
    variables, cards, parents, tables = tables_of(model)
    eng = InferenceEngine(variables, cards, parents, tables)
    lik = {}
    for v in variables:
        r = rng.random()
        if r < 0.3:
            lik[v] = np.eye(cards[v])[rng.integers(cards[v])]
        elif r < 0.5:
            lik[v] = rng.random(cards[v]) + 0.01
    ref, log_ev = brute_force(model, lik, variables)
    res = eng.query(lik, variables)  # the single-case plan
    batch = {v: np.stack([L, np.ones_like(L), L]) for v, L in lik.items()}
    res_b = eng.query(batch, variables, n_cases=3)  # the batched plan (row 1: no evidence)
    if not np.isfinite(log_ev):
        assert not res.possible[0] and not res_b.possible[0] and not res_b.possible[2]
        return
    assert res.log_evidence[0] == pytest.approx(log_ev, abs=1e-9)
    assert res_b.log_evidence[2] == pytest.approx(log_ev, abs=1e-9)
    for v in variables:
        np.testing.assert_allclose(res.marginals[v][0], ref[v], atol=1e-9)
        np.testing.assert_allclose(res_b.marginals[v][0], ref[v], atol=1e-9)
        np.testing.assert_allclose(res_b.marginals[v][2], ref[v], atol=1e-9)
    if len(variables) >= 2:
        a, b = variables[0], variables[-1]
        ref_j = brute_force_joint(model, lik, a, b)
        np.testing.assert_allclose(eng.joint(lik, a, b)[0], ref_j, atol=1e-9)
        np.testing.assert_allclose(eng.joint(batch, a, b, n_cases=3)[2], ref_j, atol=1e-9)


def test_default_network_merged_equals_unmerged():
    net = load_network()
    cards = {v: len(s) for v, s in net.states.items()}
    parents = {v: net.parents(v) for v in net.variables}
    tables = net.knowledge.tables()
    merged = InferenceEngine(net.variables, cards, parents, tables)
    plain = InferenceEngine(net.variables, cards, parents, tables, merge_support=False)
    assert merged.merge is not None  # disease -> lesion_site is sparse
    rng = np.random.default_rng(3)
    n = 200
    lik = {}
    for v in net.observable:
        a = np.ones((n, cards[v]))
        m = rng.random(n) < 0.3
        a[m] = np.eye(cards[v])[rng.integers(0, cards[v], m.sum())]
        lik[v] = a
    r1, r2 = merged.query(lik, net.variables), plain.query(lik, net.variables)
    assert (r1.possible == r2.possible).all()
    ok = r1.possible
    for v in net.variables:
        np.testing.assert_allclose(r1.marginals[v][ok], r2.marginals[v][ok], atol=1e-10)
    np.testing.assert_allclose(r1.log_evidence[ok], r2.log_evidence[ok], atol=1e-9)
    assert merged.plan_info(net.observable, net.latent)["largest_node"] < plain.plan_info(net.observable, net.latent)["largest_node"]

"""Tests of model/explain.py: weight of evidence, conflict and MAP against brute force."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import brute_force, one_hot, random_network
from model import Network
from model.errors import EvidenceError, ImpossibleEvidenceError
from model.explain import explain, most_probable_explanation
from model.io import knowledge_from_pgmpy





def log_p(net, lik, target=None, states=()):
    """log P(lik, target in states) by brute force (states=() means target unconstrained)."""
    lik = dict(lik)
    if target is not None:
        card = len(net.states[target])
        lik[target] = lik.get(target, np.ones(card)) * np.isin(np.arange(card), list(states)).astype(float)
    return brute_force(net.model, lik, [])[1]


@st.composite
def cases(draw):
    model = random_network(draw, min_nodes=2, max_nodes=6, max_card=3)
    names = sorted(model.nodes())
    target = draw(st.sampled_from(names))
    others = [v for v in names if v != target]
    observed = draw(st.lists(st.sampled_from(others), unique=True, min_size=1, max_size=3))
    evidence = {v: f"s{draw(st.integers(0, model.get_cpds(v).cardinality[0] - 1))}" for v in observed}
    return model, target, evidence


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.booleans())
def test_weight_of_evidence_matches_definition(case, single_rival):
    model, target, evidence = case
    net = Network(knowledge_from_pgmpy(model))
    lik = {v: one_hot(len(net.states[v]), net.states[v].index(s)) for v, s in evidence.items()}
    if not np.isfinite(log_p(net, lik)):
        with pytest.raises(ImpossibleEvidenceError):
            explain(net, evidence, target=target)
        return
    full = explain(net, evidence, target=target)
    h = full.hypothesis
    states = net.states[target]
    rival = [s for s in states if s != h][0] if single_rival else None
    ex = explain(net, evidence, target=target, rival=rival)
    hi = [states.index(h)]
    ri = [states.index(rival)] if rival else [i for i in range(len(states)) if i != hi[0]]
    assert ex.rival == tuple(states[i] for i in ri)
    for f, row in ex.findings.iterrows():
        rest = {v: L for v, L in lik.items() if v != f}
        # log P(f | h, e\f) - log P(f | rival, e\f)
        expected = ((log_p(net, lik, target, hi) - log_p(net, rest, target, hi))
                    - (log_p(net, lik, target, ri) - log_p(net, rest, target, ri)))
        if np.isfinite(expected):
            assert row.woe == pytest.approx(expected, abs=1e-8)
            assert row.direction == ("neutral" if abs(row.woe) <= 1e-9 else ("for" if row.woe > 0 else "against"))
        else:
            assert row.woe == expected or (np.isnan(row.woe) and row.direction == "undefined")
        m, _ = brute_force(model, rest, [target])
        assert row.posterior_without == pytest.approx(m[target][hi[0]], abs=1e-9)
    # conflict: sum_i log P(e_i) - log P(e), and its leave-one-out change
    conf = sum(log_p(net, {v: L}) for v, L in lik.items()) - log_p(net, lik)
    assert ex.conflict == pytest.approx(conf, abs=1e-8)
    if abs(conf) > 1e-7:   # closer to 0 is rounding of independent findings: either flag is fine
        assert ex.conflicting == (conf > 0 and len(lik) >= 2)
    for f, row in ex.findings.iterrows():
        rest = {v: L for v, L in lik.items() if v != f}
        conf_rest = sum(log_p(net, {v: L}) for v, L in rest.items()) - log_p(net, rest)
        assert row.conflict_change == pytest.approx(conf - conf_rest, abs=1e-8)
    # sorted by |woe|
    w = np.abs(np.nan_to_num(ex.findings["woe"].to_numpy(), nan=-1.0))
    assert all(w[i] >= w[i + 1] or not np.isfinite(w[i]) for i in range(len(w) - 1))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(1, 6), st.integers(1, 4))
def test_map_equals_brute_force(case, n, batch):
    model, target, evidence = case
    net = Network(knowledge_from_pgmpy(model))
    lik = {v: one_hot(len(net.states[v]), net.states[v].index(s)) for v, s in evidence.items()}
    le0 = log_p(net, lik)
    if not np.isfinite(le0):
        return
    names = sorted(model.nodes())
    map_vars = [v for v in names if v not in evidence][:3] or [target]
    mp = most_probable_explanation(net, evidence, variables=map_vars, n=n, batch=batch)
    scores = []
    for combo in itertools.product(*(range(len(net.states[v])) for v in map_vars)):
        l2 = dict(lik)
        for v, k in zip(map_vars, combo):
            l2[v] = l2.get(v, np.ones(len(net.states[v]))) * one_hot(len(net.states[v]), k)
        scores.append((brute_force(model, l2, [])[1], combo))
    finite = sorted((s for s in scores if np.isfinite(s[0])), key=lambda t: -t[0])
    assert len(mp) == min(n, len(finite))
    assert np.allclose(mp["log_joint"].to_numpy(), [s for s, _ in finite[:len(mp)]], atol=1e-9)
    assert np.allclose(mp["probability"].to_numpy(), np.exp(mp["log_joint"].to_numpy() - le0))
    # each returned configuration really has the probability it claims
    lookup = {tuple(net.states[v][k] for v, k in zip(map_vars, c)): s for s, c in scores}
    for _, row in mp.iterrows():
        assert lookup[tuple(row[v] for v in map_vars)] == pytest.approx(row["log_joint"], abs=1e-9)


def tiny_conflict_network():
    """A -> B, A -> C: B=1 says A=1, C=1 says A=0, so B=1 and C=1 together conflict."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    m = DiscreteBayesianNetwork([("A", "B"), ("A", "C")])
    sn = {"A": ["0", "1"], "B": ["0", "1"], "C": ["0", "1"]}
    m.add_cpds(TabularCPD("A", 2, [[0.5], [0.5]], state_names={"A": sn["A"]}),
               TabularCPD("B", 2, [[0.9, 0.1], [0.1, 0.9]], evidence=["A"], evidence_card=[2],
                          state_names={"B": sn["B"], "A": sn["A"]}),
               TabularCPD("C", 2, [[0.1, 0.9], [0.9, 0.1]], evidence=["A"], evidence_card=[2],
                          state_names={"C": sn["C"], "A": sn["A"]}))
    return Network(knowledge_from_pgmpy(m))


def test_conflict_flag_and_drivers():
    net = tiny_conflict_network()
    ex = explain(net, {"B": "1", "C": "1"}, target="A")
    # P(B=1)=P(C=1)=0.5, P(B=1, C=1) = 0.5*0.9*0.1*2 = 0.09 -> conf = log(0.25/0.09)
    assert ex.conflict == pytest.approx(np.log(0.25 / 0.09))
    assert ex.conflicting and "conf" in ex.conflict_message and set(ex.conflict_drivers) == {"B", "C"}
    agree = explain(net, {"B": "1", "C": "0"}, target="A")
    assert agree.hypothesis == "1" and agree.conflict < 0 and not agree.conflicting
    assert (agree.findings["direction"] == "for").all()
    assert agree.findings.loc["B", "woe"] == pytest.approx(np.log(9.0))
    assert "weight of evidence" in str(agree)
    d = agree.to_dict()
    assert d["hypothesis"] == "1" and len(d["findings"]) == 2


def test_soft_evidence_and_bad_input():
    net = tiny_conflict_network()
    ex = explain(net, {"B": {"0": 0.2, "1": 0.8}}, target="A")
    assert ex.findings.loc["B", "state"] == "0:0.25,1:1"
    # soft finding with likelihood ratio 4 and P(B|A) ratio (0.1*0.2+0.9*0.8)/(0.9*0.2+0.1*0.8)
    assert ex.findings.loc["B", "woe"] == pytest.approx(np.log(0.74 / 0.26))
    with pytest.raises(EvidenceError):
        explain(net, {"B": "1"}, target="A", hypothesis="2")
    with pytest.raises(EvidenceError):
        explain(net, {"B": "1"}, target="A", hypothesis="1", rival="1")
    with pytest.raises(EvidenceError):
        most_probable_explanation(net, {}, variables=["Z"])
    with pytest.raises(EvidenceError):
        most_probable_explanation(net, {}, variables=["A", "B", "C"], max_evaluations=3)
    assert explain(net, {}, target="A").findings.empty


def test_network_methods_delegate():
    net = tiny_conflict_network()
    assert net.explain({"B": "1"}, target="A").hypothesis == "1"
    mp = net.most_probable_explanation({"B": "1"}, variables=["A", "C"], n=2)
    assert list(mp.columns) == ["A", "C", "probability", "log_joint"]
    assert mp.iloc[0]["A"] == "1" and mp.iloc[0]["C"] == "0"


def test_default_network_umn_signs_speak_for_umn():
    from model import load_network

    net = load_network()
    ex = net.explain({"babinski": "present", "reflexes_legs": "hyper"}, target="lesion_type")
    assert ex.hypothesis == "UMN"
    assert (ex.findings["direction"] == "for").all(), ex.findings
    mp = net.most_probable_explanation({"babinski": "present", "reflexes_legs": "hyper"}, n=3)
    assert list(mp.columns[:3]) == net.latent and len(mp) == 3
    assert mp["probability"].is_monotonic_decreasing

"""Tests of model/recommend.py: value of information against brute-force enumeration."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import brute_force, one_hot, random_network
from model import Network
from model.errors import EvidenceError, ImpossibleEvidenceError
from model.io import knowledge_from_pgmpy
from model.knowledge import TestGroup as Group
from model.recommend import outcome_table, recommend



# ----------------------------------------------------------------------------- brute force



def lik_of(net, evidence):
    """Likelihood vectors of hard (state name) and soft ({state: weight}) evidence."""
    out = {}
    for v, s in evidence.items():
        if isinstance(s, dict):
            out[v] = np.array([float(s.get(x, 0.0)) for x in net.states[v]])
        else:
            out[v] = one_hot(len(net.states[v]), net.states[v].index(s))
    return out


def hard(evidence):
    """The hard findings (a likelihood with one non-zero weight is hard evidence too)."""
    return {v: s for v, s in evidence.items()
            if not isinstance(s, dict) or sum(w > 0 for w in s.values()) == 1}


def brute_outcomes(net, evidence, variables, target):
    """[(outcome dict, P(o | e), P(target | e, o))] by full enumeration of the joint."""
    base = lik_of(net, evidence)
    _, l0 = brute_force(net.model, base, [target])
    out = []
    for combo in itertools.product(*(range(len(net.states[v])) for v in variables)):
        lik = dict(base)
        for v, k in zip(variables, combo):
            lik[v] = lik.get(v, np.ones(len(net.states[v]))) * one_hot(len(net.states[v]), k)
        m, l = brute_force(net.model, lik, [target])
        p = float(np.exp(l - l0)) if np.isfinite(l) else 0.0
        out.append(({v: net.states[v][k] for v, k in zip(variables, combo)}, p, m[target]))
    return out


def brute_stats(net, evidence, variables, target, threshold=0.9):
    m0, _ = brute_force(net.model, lik_of(net, evidence), [target])
    q0 = m0[target]
    h0 = -np.sum(q0[q0 > 0] * np.log2(q0[q0 > 0]))
    lead0 = int(np.flatnonzero(q0 >= q0.max() - 1e-12)[0])   # first state within 1e-12 of the max
    cond, change, thr = 0.0, 0.0, 0.0
    for _, p, q in brute_outcomes(net, evidence, variables, target):
        if p <= 0:
            continue
        cond += p * -np.sum(q[q > 0] * np.log2(q[q > 0]))
        change += p * (q[lead0] < q.max() - 1e-12)
        thr += p * (q.max() >= threshold - 1e-12)
    return h0 - cond, change, thr       # MI = H(T|e) - E_o H(T|e,o)


def make_net(model, tests=None):
    kb = knowledge_from_pgmpy(model)
    if tests:
        kb.tests = tests
    return Network(kb)


@st.composite
def cases(draw):
    model = random_network(draw, max_nodes=6, max_card=3)
    net_vars = list(model.nodes())
    target = draw(st.sampled_from(sorted(net_vars)))
    others = [v for v in sorted(net_vars) if v != target]
    observed = draw(st.lists(st.sampled_from(others), unique=True, max_size=2)) if others else []
    evidence = {}
    for v in observed:
        card = int(model.get_cpds(v).cardinality[0])
        if draw(st.booleans()):
            evidence[v] = f"s{draw(st.integers(0, card - 1))}"
        else:   # soft evidence: the variable can still be tested
            weights = draw(st.lists(st.sampled_from([0.0, 0.2, 0.5, 1.0]), min_size=card, max_size=card))
            if not any(weights):
                weights[0] = 1.0
            evidence[v] = {f"s{i}": w for i, w in enumerate(weights)}
    # test groups: random subsets (size 1-3) of the non-target variables
    groups = []
    for i in range(draw(st.integers(1, 3))):
        if not others:
            break
        vs = draw(st.lists(st.sampled_from(others), unique=True, min_size=1, max_size=3))
        groups.append(Group(name=f"T{i}", label=f"test {i}", variables=tuple(vs),
                                cost=draw(st.sampled_from([0.0, 0.5, 1.0, 3.0]))))
    return model, target, evidence, groups


# ----------------------------------------------------------------------------- property tests

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_gain_is_joint_mutual_information(case):
    model, target, evidence, groups = case
    net = make_net(model, groups)
    try:
        rec = recommend(net, evidence, target=target, k=None)
    except ImpossibleEvidenceError:
        assert brute_force(model, lik_of(net, evidence), [])[1] == -np.inf
        return
    expected = {g.name for g in groups if any(v not in hard(evidence) for v in g.variables)}
    assert set(rec.index) == expected
    for name, row in rec.iterrows():
        reveal = [v for v in dict.fromkeys(net.tests[[t.name for t in net.tests].index(name)].variables)
                  if v not in hard(evidence)]
        assert list(row.variables) == reveal                       # partly observed: reveals the rest
        mi, change, thr = brute_stats(net, evidence, reveal, target)
        assert row.gain == pytest.approx(mi, abs=1e-9)
        assert row.p_change == pytest.approx(change, abs=1e-9)
        assert row.p_threshold == pytest.approx(thr, abs=1e-9)
        # the preview: probabilities and posteriors of every joint outcome
        brute = brute_outcomes(net, evidence, reveal, target)
        assert len(row.outcomes) == len(brute)
        for got, (o, p, q) in zip(row.outcomes, brute):
            assert got["outcome"] == o
            assert got["probability"] == pytest.approx(p, abs=1e-9)
            if p > 0:
                assert np.allclose(list(got["posterior"].values()), q, atol=1e-9)
                assert got["evidence"] == {**evidence, **o}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_preview_equals_fresh_posterior(case):
    model, target, evidence, groups = case
    net = make_net(model, groups)
    try:
        rec = recommend(net, evidence, target=target, k=None)
    except ImpossibleEvidenceError:
        return
    for name, row in rec.iterrows():
        for o in row.outcomes:
            if o["probability"] <= 0:
                continue
            fresh = net.posterior(o["evidence"], target)[target]
            assert np.allclose(fresh.to_numpy(), list(o["posterior"].values()), atol=1e-9)
            assert o["leader"] in fresh.index


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_lookahead_pairs_are_joint_information(case):
    """The pair gain of (A, B) is I(T; A, B | e) by brute force, whatever the order."""
    model, target, evidence, groups = case
    net = make_net(model, groups)
    try:
        rec = recommend(net, evidence, target=target, k=None, lookahead=2, min_gain=0.0)
    except ImpossibleEvidenceError:
        return
    tests = {t.name: t for t in net.tests}
    for pair in rec.attrs["pairs"]:
        union = [v for v in dict.fromkeys(tests[pair["tests"][0]].variables + tests[pair["tests"][1]].variables)
                 if v not in hard(evidence)]
        mi, _, _ = brute_stats(net, evidence, union, target)
        assert pair["gain"] == pytest.approx(mi, abs=1e-9)
    for name, row in rec.iterrows():
        assert 0.0 <= row.p_stop_after <= 1.0 + 1e-12
        assert row.expected_next_gain >= 0.0
    # E_o1 gain(second | e, o1) = I(T; first, second | e) - I(T; first | e)
    for first, seconds in rec.attrs["second_gain"].items():
        for second, g in seconds.items():
            union = [v for v in dict.fromkeys(tests[first].variables + tests[second].variables)
                     if v not in hard(evidence)]
            mi, _, _ = brute_stats(net, evidence, union, target)
            assert g == pytest.approx(mi - rec.loc[first, "gain"], abs=1e-9)


# ----------------------------------------------------------------------------- fixed examples

def xor_network():
    """T, A uniform; B = T xor A. A or B alone say nothing about T; together, everything."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    m = DiscreteBayesianNetwork([("T", "B"), ("A", "B")])
    sn = {"T": ["0", "1"], "A": ["0", "1"], "B": ["0", "1"]}
    m.add_cpds(TabularCPD("T", 2, [[0.5], [0.5]], state_names={"T": sn["T"]}),
               TabularCPD("A", 2, [[0.5], [0.5]], state_names={"A": sn["A"]}),
               TabularCPD("B", 2, [[1, 0, 0, 1], [0, 1, 1, 0]], evidence=["T", "A"], evidence_card=[2, 2],
                          state_names=sn))
    return m


def test_group_gain_is_joint_not_sum():
    tests = [Group("pair", "A and B", ("A", "B"), cost=2.0),
             Group("a", "A", ("A",), cost=1.0), Group("b", "B", ("B",), cost=1.0)]
    net = make_net(xor_network(), tests)
    rec = recommend(net, {}, target="T", k=None, lookahead=2)
    assert rec.loc["pair", "gain"] == pytest.approx(1.0)
    assert rec.loc["a", "gain"] == pytest.approx(0.0, abs=1e-12)
    assert rec.loc["b", "gain"] == pytest.approx(0.0, abs=1e-12)
    assert rec.index[0] == "pair"
    assert rec.loc["pair", "p_threshold"] == pytest.approx(1.0)
    # after A is known, B settles T: the lookahead sees it
    assert rec.loc["a", "expected_next_gain"] == pytest.approx(1.0)
    assert {frozenset(p["tests"]) for p in rec.attrs["pairs"] if abs(p["gain"] - 1) < 1e-9} >= {frozenset({"a", "b"})}
    nxt = {o["next_test"] for o in rec.loc["a", "outcomes"]}
    assert nxt <= {"b", "pair"}
    # with A observed, the pair group only reveals B
    rec2 = recommend(net, {"A": "1"}, target="T", k=None)
    assert "a" not in rec2.index
    assert rec2.loc["pair", "variables"] == ("B",)
    assert rec2.loc["pair", "gain"] == pytest.approx(1.0)


def test_ranking_rules_and_stopping():
    tests = [Group("pair", "A and B", ("A", "B"), cost=4.0), Group("a", "A", ("A",), cost=1.0)]
    net = make_net(xor_network(), tests)
    rec = recommend(net, {}, target="T", rank_by="net_benefit", cost_weight=0.1)
    assert rec.loc["pair", "score"] == pytest.approx(1.0 - 0.4)
    assert "net_benefit" in rec.attrs["rank_rule"] and rec.attrs["cost_weight"] == 0.1
    assert list(rec["rank"]) == [1, 2]
    rec = recommend(net, {}, target="T")
    assert rec.loc["pair", "score"] == pytest.approx(0.25)
    assert rec.attrs["stop"] is False
    # only A left to test: A alone cannot change the leader -> stop
    only_a = make_net(xor_network(), [Group("a", "A", ("A",), cost=1.0)])
    rec = recommend(only_a, {}, target="T")
    assert rec.attrs["stop"] and "no available test can change" in rec.attrs["stop_reason"]
    # everything observed -> stop, empty frame
    rec = recommend(only_a, {"A": "0"}, target="T")
    assert rec.empty and rec.attrs["stop"]
    table = outcome_table(recommend(net, {}, target="T"), "pair")
    assert len(table) == 4 and table["probability"].sum() == pytest.approx(1.0)


def test_generic_network_tests_exclude_target_and_cap():
    net = make_net(xor_network())
    rec = recommend(net, {}, target="T", k=None)
    assert set(rec.index) == {"A", "B"}
    capped = recommend(make_net(xor_network(), [Group("pair", "p", ("A", "B"))]), {}, target="T",
                       max_outcomes=3)
    assert capped.empty and capped.attrs["skipped"][0]["test"] == "pair"


def test_soft_evidence_variable_can_still_be_tested():
    net = make_net(xor_network(), [Group("b", "B", ("B",))])
    rec = recommend(net, {"A": "0", "B": {"0": 0.8, "1": 0.2}}, target="T", k=None)
    row = rec.loc["b"]
    assert row.gain > 0
    probs = [o["probability"] for o in row.outcomes]
    assert probs == pytest.approx([0.8, 0.2])


def test_bad_input():
    net = make_net(xor_network())
    with pytest.raises(EvidenceError):
        recommend(net, {}, target="T", rank_by="cheapest")
    with pytest.raises(EvidenceError):
        recommend(net, {}, target="Q")
    with pytest.raises(EvidenceError):
        recommend(net, {"A": "2"}, target="T")
    with pytest.raises(EvidenceError):
        recommend(net, {}, target="T", lookahead=3)
    with pytest.raises(ImpossibleEvidenceError):
        recommend(net, {"A": "0", "T": "0", "B": "1"}, target="T")


def test_network_method_delegates():
    net = make_net(xor_network(), [Group("pair", "A and B", ("A", "B"))])
    assert net.recommend({}, target="T").loc["pair", "gain"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- default network

@pytest.fixture(scope="module")
def default_net():
    from model import load_network

    return load_network()


def _rank(rec, names):
    ranks = [int(rec.loc[n, "rank"]) for n in names if n in rec.index]
    return min(ranks) if ranks else None


def _find(net, *words):
    return [t.name for t in net.tests if any(w in (t.name + " " + t.label).lower() for w in words)]


def test_default_cord_lesion_mri_spine_before_emg(default_net):
    ev = {"onset_tempo": "acute", "time_since_onset": "lt_3d", "weakness_topography": "both_legs",
          "reflexes_legs": "absent", "tone": "flaccid", "sensory_loss": "sensory_level"}
    rec = recommend(default_net, ev, target="lesion_site", k=None)
    mri = [n for n in _find(default_net, "mri") if "spin" in n.lower() or "cord" in n.lower()]
    emg = [n for n in _find(default_net, "emg") if "needle" in n.lower() or n.lower().startswith("emg")]
    assert mri and emg, f"test table lacks MRI spine or needle EMG: {[t.name for t in default_net.tests]}"
    assert _rank(rec, mri) < _rank(rec, emg), rec[["gain", "cost", "score", "rank"]]


def test_default_myasthenia_serology_or_rns_before_mri_brain(default_net):
    ev = {"weakness_pattern": "fatigable", "ocular_ptosis_diplopia": "present", "bulbar_signs": "fatigable"}
    rec = recommend(default_net, ev, target="disease", k=None)
    nmj = _find(default_net, "achr", "repetitive", "rns")
    brain = [n for n in _find(default_net, "mri") if "brain" in n.lower() or "head" in n.lower()]
    assert nmj and brain, f"test table lacks AChR/RNS or MRI brain: {[t.name for t in default_net.tests]}"
    assert _rank(rec, nmj) < _rank(rec, brain), rec[["gain", "cost", "score", "rank"]]


# ----------------------------------------------------------------------------- CLI

@pytest.fixture()
def xor_bif(tmp_path):
    path = tmp_path / "xor.yaml"   # a knowledge file loads much faster than BIF
    make_net(xor_network()).export(path)
    return str(path)


def test_cli_recommend_and_explain(xor_bif, capsys):
    import json

    from model.cli import main

    assert main(["recommend", "--network", xor_bif, "-e", "A=1", "--target", "T", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == "T" and [t["test"] for t in out["tests"]] == ["B"]
    assert out["tests"][0]["gain"] == pytest.approx(1.0)
    assert out["tests"][0]["outcomes"][0]["evidence"] == {"A": "1", "B": "0"}
    assert main(["recommend", "--network", xor_bif, "--target", "T", "--lookahead", "2"]) == 0
    text = capsys.readouterr().out
    assert "rank" in text and "what if" in text and "stop:" in text
    assert main(["explain", "--network", xor_bif, "-e", "A=1", "B=0", "--target", "T"]) == 0
    assert "weight of evidence" in capsys.readouterr().out
    assert main(["explain", "--network", xor_bif, "-e", "A=1", "--target", "T", "--json", "--map", "T", "B"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hypothesis"] in ("0", "1") and len(out["most_probable_explanation"]) == 2   # B = T xor A: 2 possible


@pytest.mark.parametrize("argv", [
    ["recommend", "--target", "Q"],
    ["recommend", "--target", "T", "-e", "A=7"],
    ["recommend", "--target", "T", "--k", "0"],
    ["recommend", "--target", "T", "--threshold", "1.5"],
    ["recommend", "--target", "T", "-e", "A"],
    ["explain", "--target", "T", "--hypothesis", "9"],
    ["explain", "--target", "T", "--map", "nope"],
])
def test_cli_bad_input_exits_2(xor_bif, argv, capsys):
    from model.cli import main

    assert main([*argv, "--network", xor_bif]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lesionbn: error:")


def test_lookahead_first_limits_the_first_tests():
    tests = [Group("pair", "A and B", ("A", "B"), cost=2.0), Group("a", "A", ("A",), cost=1.0),
             Group("b", "B", ("B",), cost=1.5)]
    net = make_net(xor_network(), tests)
    full = recommend(net, {}, target="T", k=None, lookahead=2)
    part = recommend(net, {}, target="T", k=None, lookahead=2, lookahead_first=1)
    first = part.index[0]
    assert part.loc[first, "expected_next_gain"] == pytest.approx(full.loc[first, "expected_next_gain"])
    assert part.drop(index=first)["expected_next_gain"].isna().all()
    assert all(first in p["tests"] for p in part.attrs["pairs"])

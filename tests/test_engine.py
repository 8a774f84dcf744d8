"""Tests of model.engine.InferenceEngine against pgmpy VariableElimination and brute force.

References: pgmpy VE on the bnlearn networks bundled in the pgmpy wheel (read by path, CPD
columns renormalised), full-joint enumeration on random small networks (hypothesis), and
log-space closed forms for networks with many findings.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import (brute_force, brute_force_joint, example_model, one_hot, random_network,
                     ve_posterior)
from model.engine import EngineResult, InferenceEngine

TOL = 1e-9

_ENGINES: dict[str, InferenceEngine] = {}


def engine_for(name: str) -> InferenceEngine:
    if name not in _ENGINES:
        _ENGINES[name] = InferenceEngine.from_pgmpy(example_model(name))
    return _ENGINES[name]


def sample_cases(model, n, seed):
    """Forward samples (so hard evidence taken from them is possible)."""
    from pgmpy.sampling import BayesianModelSampling

    return BayesianModelSampling(model).forward_sample(n, show_progress=False, seed=seed)


def hard_lik(eng, v, state):
    return one_hot(eng.cards[v], eng.state_names[v].index(state))


# ------------------------------------------------------------------------------------------
# Agreement with pgmpy VariableElimination on the bundled networks
# ------------------------------------------------------------------------------------------

# (network, number of random evidence sets, targets checked per set)
VE_CASES = [("asia", 8, 8), ("alarm", 5, 6), ("child", 5, 6), ("insurance", 5, 6),
            ("hepar2", 2, 3), ("win95pts", 2, 3)]


@pytest.mark.parametrize("name,n_sets,n_targets", VE_CASES)
def test_hard_evidence_matches_variable_elimination(name, n_sets, n_targets):
    model = example_model(name)
    eng = engine_for(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    cases = sample_cases(model, n_sets, seed=7)
    checks = []
    for k in range(n_sets):
        n_obs = int(rng.integers(1, max(2, len(eng.variables) // 3)))
        obs = list(rng.choice(eng.variables, size=n_obs, replace=False))
        ev = {v: cases.iloc[k][v] for v in obs}
        lik = {v: hard_lik(eng, v, s) for v, s in ev.items()}
        free = [v for v in eng.variables if v not in ev]
        targets = list(rng.choice(free, size=min(n_targets, len(free)), replace=False))
        targets.append(obs[0])  # an observed target: its posterior is the one-hot
        res = eng.query(lik, targets)  # one case: the single-case plan
        assert res.possible.tolist() == [True]
        refs = {t: ve_posterior(model, ev, t) for t in targets[:-1]}
        for t, ref in refs.items():
            np.testing.assert_allclose(res.marginals[t][0], ref, atol=TOL, rtol=0)
        np.testing.assert_allclose(res.marginals[obs[0]][0], lik[obs[0]], atol=TOL, rtol=0)
        checks.append((lik, refs))
    # the same cases as one batch (the batched plan; unobserved = all-ones rows)
    union = sorted({v for lik, _ in checks for v in lik})
    batch = {v: np.stack([lik.get(v, np.ones(eng.cards[v])) for lik, _ in checks]) for v in union}
    targets = sorted({t for _, refs in checks for t in refs})
    res = eng.query(batch, targets)
    assert res.possible.all()
    for i, (_, refs) in enumerate(checks):
        for t, ref in refs.items():
            np.testing.assert_allclose(res.marginals[t][i], ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("name", ["asia", "alarm", "child", "insurance"])
def test_soft_evidence_matches_variable_elimination(name):
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.inference import VariableElimination

    model = example_model(name)
    eng = engine_for(name)
    ve = VariableElimination(model)
    rng = np.random.default_rng(11)
    for _ in range(3):
        obs = list(rng.choice(eng.variables, size=3, replace=False))
        lik = {v: rng.random(eng.cards[v]) + 0.01 for v in obs}
        virtual = [TabularCPD(v, eng.cards[v], lik[v].reshape(-1, 1),
                              state_names={v: eng.state_names[v]}) for v in obs]
        free = [v for v in eng.variables if v not in obs]
        targets = list(rng.choice(free, size=4, replace=False))
        res = eng.query(lik, targets)
        batch = eng.query({v: np.stack([L, np.ones_like(L), L]) for v, L in lik.items()}, targets)
        for t in targets:
            f = ve.query([t], virtual_evidence=virtual, show_progress=False)
            ref = np.array([f.get_value(**{t: s}) for s in eng.state_names[t]])
            np.testing.assert_allclose(res.marginals[t][0], ref, atol=TOL, rtol=0)
            np.testing.assert_allclose(batch.marginals[t][0], ref, atol=TOL, rtol=0)
            np.testing.assert_allclose(batch.marginals[t][2], ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("name", ["alarm", "child", "insurance"])
def test_log_evidence_matches_chain_rule_of_ve(name):
    """log P(e) = sum_i log P(e_i | e_1..e_{i-1}), each factor from pgmpy VE."""
    model = example_model(name)
    eng = engine_for(name)
    rng = np.random.default_rng(5)
    row = sample_cases(model, 1, seed=3).iloc[0]
    obs = list(rng.choice(eng.variables, size=6, replace=False))
    ref, ev = 0.0, {}
    for v in obs:
        p = ve_posterior(model, ev, v)
        ref += np.log(p[eng.state_names[v].index(row[v])])
        ev[v] = row[v]
    res = eng.query({v: hard_lik(eng, v, row[v]) for v in obs}, [])
    assert res.log_evidence[0] == pytest.approx(ref, abs=1e-9)


def test_all_marginals_in_one_query_alarm():
    model = example_model("alarm")
    eng = engine_for("alarm")
    row = sample_cases(model, 1, seed=21).iloc[0]
    ev = {v: row[v] for v in ["HRBP", "CVP", "PCWP", "SAO2", "EXPCO2", "MINVOL", "BP"]}
    res = eng.query({v: hard_lik(eng, v, s) for v, s in ev.items()}, eng.variables)
    assert set(res.marginals) == set(eng.variables)
    for t in eng.variables[::3]:
        if t not in ev:
            np.testing.assert_allclose(res.marginals[t][0], ve_posterior(model, ev, t), atol=TOL)
    for t in eng.variables:
        assert res.marginals[t].shape == (1, eng.cards[t])
        assert res.marginals[t].sum() == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------------------------------
# Batches
# ------------------------------------------------------------------------------------------


def random_batch(eng, model, n, seed, frac=0.3, soft=0.2):
    """Per-case likelihoods: sampled hard findings on ~frac of the variables, some soft,
    the rest all-ones rows (unobserved)."""
    rng = np.random.default_rng(seed)
    cases = sample_cases(model, n, seed=seed)
    lik = {}
    for v in eng.variables:
        idx = np.array([eng.state_names[v].index(s) for s in cases[v]])
        L = np.eye(eng.cards[v])[idx]
        r = rng.random(n)
        L[r > frac] = 1.0
        soft_rows = r < frac * soft
        L[soft_rows] = rng.random((int(soft_rows.sum()), eng.cards[v])) + 0.05
        lik[v] = L
    return lik


@pytest.mark.parametrize("name", ["alarm", "insurance"])
def test_batch_equals_per_case(name):
    model = example_model(name)
    eng = engine_for(name)
    n = 40
    lik = random_batch(eng, model, n, seed=2)
    targets = eng.variables[::2]
    batch = eng.query(lik, targets)
    assert batch.log_evidence.shape == (n,)
    for i in range(0, n, 3):
        one = eng.query({v: L[i] for v, L in lik.items()}, targets)
        assert one.log_evidence[0] == pytest.approx(batch.log_evidence[i], abs=1e-10)
        for t in targets:
            np.testing.assert_allclose(batch.marginals[t][i], one.marginals[t][0], atol=1e-12)


def test_batch_rows_match_ve_alarm():
    """Per-case hard evidence in one batch, each row checked against VE."""
    model = example_model("alarm")
    eng = engine_for("alarm")
    n = 6
    lik = random_batch(eng, model, n, seed=9, soft=0.0)
    res = eng.query(lik, ["LVFAILURE", "HYPOVOLEMIA", "INTUBATION"])
    for i in range(n):
        ev = {v: eng.state_names[v][int(np.argmax(L[i]))] for v, L in lik.items() if L[i].min() == 0}
        for t in res.marginals:
            if t in ev:
                continue
            np.testing.assert_allclose(res.marginals[t][i], ve_posterior(model, ev, t), atol=TOL)


def test_chunking_gives_same_answer():
    model = example_model("alarm")
    eng = engine_for("alarm")
    small = InferenceEngine.from_pgmpy(model, max_chunk=7)
    lik = random_batch(eng, model, 50, seed=4)
    a = eng.query(lik, eng.variables)
    b = small.query(lik, eng.variables)
    np.testing.assert_allclose(a.log_evidence, b.log_evidence, atol=1e-10)
    for t in eng.variables:
        np.testing.assert_allclose(a.marginals[t], b.marginals[t], atol=1e-12)


def test_shared_likelihood_broadcasts_with_n_cases():
    eng = engine_for("asia")
    lik = {"xray": np.array([0.0, 1.0]), "dysp": np.array([1.0, 0.0])}
    res = eng.query(lik, ["lung", "tub"], n_cases=4)
    single = eng.query(lik, ["lung", "tub"])
    assert res.marginals["lung"].shape == (4, 2)
    for t in ["lung", "tub"]:
        np.testing.assert_allclose(res.marginals[t], np.repeat(single.marginals[t], 4, axis=0))
    # mixing a shared row with per-case rows
    per_case = {"xray": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), "dysp": np.array([1.0, 0.0])}
    mixed = eng.query(per_case, ["lung"])
    assert mixed.marginals["lung"].shape == (3, 2)
    np.testing.assert_allclose(mixed.marginals["lung"][1], single.marginals["lung"][0], atol=1e-14)


def test_all_ones_rows_mean_unobserved():
    eng = engine_for("asia")
    prior = eng.query({}, ["lung"])
    ones = eng.query({"xray": np.ones((2, 2)), "smoke": np.array([[1.0, 1.0], [1.0, 0.0]])}, ["lung"])
    np.testing.assert_allclose(ones.marginals["lung"][0], prior.marginals["lung"][0], atol=1e-14)
    assert ones.log_evidence[0] == pytest.approx(0.0, abs=1e-12)
    assert not np.allclose(ones.marginals["lung"][1], prior.marginals["lung"][0])


def test_plans_are_cached():
    eng = InferenceEngine.from_pgmpy(example_model("asia"))
    eng.query({"xray": np.array([[1.0, 0.0], [0.0, 1.0]])}, ["lung"])
    eng.query({"xray": np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])}, ["lung"])
    assert len(eng._plans) == 1
    eng.query({"xray": np.array([[1.0, 0.0], [0.0, 1.0]])}, ["lung", "tub"])
    assert len(eng._plans) == 2
    # one case runs on its own (single-case) plan, cached the same way
    eng.query({"xray": np.array([1.0, 0.0])}, ["lung"])
    eng.query({"xray": np.array([0.0, 1.0])}, ["lung"])
    assert len(eng._plans) == 3


# ------------------------------------------------------------------------------------------
# Random small networks vs brute force (hypothesis)
# ------------------------------------------------------------------------------------------


@st.composite
def network_and_evidence(draw):
    model = random_network(draw, max_nodes=7, max_card=4)
    nodes = sorted(model.nodes(), key=lambda s: int(s[1:]))
    cards = {v: int(model.get_cpds(v).cardinality[0]) for v in nodes}
    lik = {}
    for v in nodes:
        kind = draw(st.sampled_from(["none", "none", "hard", "soft", "soft0"]))
        c = int(cards[v])
        if kind == "hard":
            lik[v] = one_hot(c, draw(st.integers(0, c - 1)))
        elif kind in ("soft", "soft0"):
            lo = 0.0 if kind == "soft0" else 0.01
            lik[v] = np.array(draw(st.lists(st.floats(lo, 5.0), min_size=c, max_size=c)))
    targets = draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=len(nodes), unique=True))
    return model, lik, targets


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network_and_evidence())
def test_random_networks_match_brute_force(data):
    model, lik, targets = data
    eng = InferenceEngine.from_pgmpy(model)
    ref, ref_logz = brute_force(model, lik, targets)
    single = eng.query(lik, targets)  # the single-case plan
    batch = eng.query({v: np.stack([L, L]) for v, L in lik.items()}, targets, n_cases=2)
    for res, rows in ((single, [0]), (batch, [0, 1])):
        if ref_logz == -np.inf:
            assert not res.possible.any()
            assert (res.log_evidence == -np.inf).all()
            for t in targets:
                assert np.isnan(res.marginals[t]).all()
            continue
        assert res.possible.all()
        for i in rows:
            assert res.log_evidence[i] == pytest.approx(ref_logz, abs=1e-9)
            for t in targets:
                np.testing.assert_allclose(res.marginals[t][i], ref[t], atol=TOL, rtol=0)
                assert res.marginals[t][i].sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_random_network_batches_with_impossible_cases(seed):
    """Zero CPT entries and hard evidence: impossible rows flagged, other rows exact."""
    rng = np.random.default_rng(seed)
    model = random_network(rng, max_nodes=7, max_card=3, min_nodes=4, zero_prob=0.3)
    eng = InferenceEngine.from_pgmpy(model)
    n = 25
    lik = {}
    for v in eng.variables:
        c = eng.cards[v]
        L = np.eye(c)[rng.integers(0, c, n)]
        L[rng.random(n) < 0.5] = 1.0
        lik[v] = L
    targets = list(eng.variables)
    res = eng.query(lik, targets)
    for i in range(n):
        ref, ref_logz = brute_force(model, {v: L[i] for v, L in lik.items()}, targets)
        if ref_logz == -np.inf:
            assert not res.possible[i] and res.log_evidence[i] == -np.inf
            assert all(np.isnan(res.marginals[t][i]).all() for t in targets)
        else:
            assert res.possible[i]
            assert res.log_evidence[i] == pytest.approx(ref_logz, abs=1e-9)
            for t in targets:
                np.testing.assert_allclose(res.marginals[t][i], ref[t], atol=TOL)


# ------------------------------------------------------------------------------------------
# Joint posteriors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_joint_matches_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    model = random_network(rng, max_nodes=7, max_card=4, min_nodes=3)
    eng = InferenceEngine.from_pgmpy(model)
    vs = eng.variables
    obs = list(rng.choice(vs, size=min(2, len(vs) - 2), replace=False))
    lik = {v: rng.random(eng.cards[v]) + 0.01 for v in obs}
    for a, b in [(vs[0], vs[-1]), tuple(rng.choice(vs, size=2, replace=False))]:
        j = eng.joint(lik, a, b)
        ref = brute_force_joint(model, lik, a, b)
        assert j.shape == (1, eng.cards[a], eng.cards[b])
        np.testing.assert_allclose(j[0], ref, atol=TOL)
    m = eng.query(lik, [vs[0]]).marginals[vs[0]][0]
    np.testing.assert_allclose(eng.joint(lik, vs[0], vs[0])[0], np.diag(m), atol=1e-12)


def test_joint_matches_ve_on_alarm_batch():
    from pgmpy.inference import VariableElimination

    model = example_model("alarm")
    eng = engine_for("alarm")
    ve = VariableElimination(model)
    ev = {"HRBP": "HIGH", "SAO2": "LOW"}
    lik = {v: np.stack([hard_lik(eng, v, s), np.ones(eng.cards[v])]) for v, s in ev.items()}
    a, b = "LVFAILURE", "INTUBATION"  # far apart: not in a common clique
    j = eng.joint(lik, a, b)
    for i, evi in enumerate([ev, {}]):
        f = ve.query([a, b], evidence=evi or None, show_progress=False)
        ref = np.array([[f.get_value(**{a: sa, b: sb}) for sb in eng.state_names[b]]
                        for sa in eng.state_names[a]])
        np.testing.assert_allclose(j[i], ref, atol=TOL)


# ------------------------------------------------------------------------------------------
# Impossible evidence, many findings, validation
# ------------------------------------------------------------------------------------------


def test_impossible_evidence_is_flagged_per_case():
    eng = engine_for("asia")  # either = tub OR lung (deterministic)
    imp = {"lung": "yes", "either": "no"}
    lik = {v: np.stack([hard_lik(eng, v, s), np.ones(2)]) for v, s in imp.items()}
    res = eng.query(lik, ["tub", "smoke", "lung"])
    assert res.possible.tolist() == [False, True]
    assert res.log_evidence[0] == -np.inf and np.isfinite(res.log_evidence[1])
    for t in res.marginals:
        assert np.isnan(res.marginals[t][0]).all()
        assert np.isfinite(res.marginals[t][1]).all()
        assert res.marginals[t][1].sum() == pytest.approx(1.0)
    j = eng.joint(lik, "tub", "smoke")
    assert np.isnan(j[0]).all() and np.isfinite(j[1]).all()


def naive_bayes(n_children, card_root=3, seed=0):
    """Root R with n children F_i (binary), strongly informative tables."""
    rng = np.random.default_rng(seed)
    variables = ["R"] + [f"F{i}" for i in range(n_children)]
    cards = {"R": card_root, **{f"F{i}": 2 for i in range(n_children)}}
    parents = {"R": [], **{f"F{i}": ["R"] for i in range(n_children)}}
    tables = {"R": np.full(card_root, 1.0 / card_root)}
    for i in range(n_children):
        p = rng.uniform(1e-10, 1e-8, card_root)
        p[i % card_root] = 0.5
        tables[f"F{i}"] = np.stack([p, 1 - p])
    return variables, cards, parents, tables


@pytest.mark.parametrize("n_children", [60, 200])
def test_many_findings_do_not_underflow(n_children):
    variables, cards, parents, tables = naive_bayes(n_children)
    eng = InferenceEngine(variables, cards, parents, tables)
    # every finding in its unlikely state: P(e) ~ 1e-6 ** n (far below the float64 range)
    lik = {f"F{i}": np.array([1.0, 0.0]) for i in range(n_children)}
    res = eng.query(lik, ["R", "F0"])
    logp = np.log(tables["R"]) + sum(np.log(tables[f"F{i}"][0]) for i in range(n_children))
    ref_logz = np.logaddexp.reduce(logp)
    assert ref_logz < np.log(np.finfo(float).tiny)  # direct products would underflow
    assert res.possible[0]
    assert res.log_evidence[0] == pytest.approx(ref_logz, rel=1e-12)
    np.testing.assert_allclose(res.marginals["R"][0], np.exp(logp - ref_logz), atol=1e-12)


@pytest.mark.parametrize("batch", [1, 3])
def test_long_chain_with_every_node_observed(batch):
    """P(e) ~ 1e-300 or less: a single case, and a batch (whose first, unscaled pass
    underflows and is redone with scaled messages)."""
    n = 800
    variables = [f"X{i}" for i in range(n)]
    cards = {v: 3 for v in variables}
    parents = {v: ([variables[i - 1]] if i else []) for i, v in enumerate(variables)}
    rng = np.random.default_rng(1)
    tables = {"X0": np.array([0.2, 0.3, 0.5])}
    for v in variables[1:]:
        t = rng.random((3, 3)) + 0.01
        tables[v] = t / t.sum(axis=0)
    eng = InferenceEngine(variables, cards, parents, tables)
    states = rng.integers(0, 3, n)
    soft = {v: np.eye(3)[states[i]] * 0.9 + 0.05 for i, v in enumerate(variables)}
    if batch > 1:
        soft = {v: np.tile(L, (batch, 1)) for v, L in soft.items()}
    res = eng.query(soft, [variables[0], variables[n // 2], variables[-1]])
    soft = {v: L.reshape(-1, 3)[0] for v, L in soft.items()}
    # log-space forward algorithm reference
    la = np.log(tables["X0"]) + np.log(soft["X0"])
    for i, v in enumerate(variables[1:], 1):
        la = np.logaddexp.reduce(np.log(tables[v]) + la[None, :], axis=1) + np.log(soft[v])
    ref = np.logaddexp.reduce(la)
    assert ref < -700
    for i in range(batch):
        assert res.log_evidence[i] == pytest.approx(ref, rel=1e-12)
        np.testing.assert_allclose(res.marginals[variables[-1]][i], np.exp(la - ref), atol=1e-12)


def test_validation_errors():
    eng = engine_for("asia")
    with pytest.raises(KeyError):
        eng.query({"nope": np.ones(2)}, ["lung"])
    with pytest.raises(KeyError):
        eng.query({}, ["nope"])
    with pytest.raises(ValueError):
        eng.query({"xray": np.ones(3)}, ["lung"])
    with pytest.raises(ValueError):
        eng.query({"xray": np.array([-1.0, 1.0])}, ["lung"])
    with pytest.raises(ValueError):
        eng.query({"xray": np.ones((3, 2)), "dysp": np.ones((4, 2)) * 0.5}, ["lung"])
    with pytest.raises(ValueError):
        eng.query({"xray": np.ones((3, 2))}, ["lung"], n_cases=5)
    with pytest.raises(ValueError):
        InferenceEngine(["a"], {"a": 2}, {"a": []}, {"a": np.ones(3)})


def test_result_type_and_no_evidence_prior():
    model = example_model("child")
    eng = engine_for("child")
    res = eng.query({}, eng.variables[:5], n_cases=3)
    assert isinstance(res, EngineResult) and res.n_cases == 3
    np.testing.assert_allclose(res.log_evidence, 0.0, atol=1e-12)
    for t in eng.variables[:5]:
        np.testing.assert_allclose(res.marginals[t][2], ve_posterior(model, {}, t), atol=TOL)


def test_empty_batch():
    eng = engine_for("asia")
    res = eng.query({"xray": np.full((0, 2), 0.5)}, ["lung", "tub"])
    assert res.marginals["lung"].shape == (0, 2) and res.log_evidence.shape == (0,)
    assert eng.joint({"xray": np.full((0, 2), 0.5)}, "lung", "tub").shape == (0, 2, 2)


def test_inputs_are_not_modified():
    """Likelihood arrays passed in (even ones that become messages as they are) stay intact."""
    model = example_model("alarm")
    eng = engine_for("alarm")
    lik = random_batch(eng, model, 30, seed=8)
    lik["HISTORY"] = np.array([3.0, 0.5])  # a shared soft row
    copies = {v: L.copy() for v, L in lik.items()}
    eng.query(lik, eng.variables)
    eng.joint(lik, "LVFAILURE", "HISTORY")
    tables = {v: t.copy() for v, t in eng.tables.items()}
    eng.query(lik, eng.variables[:3])
    for v in lik:
        np.testing.assert_array_equal(lik[v], copies[v])
    for v in tables:
        np.testing.assert_array_equal(eng.tables[v], tables[v])


def test_plan_cache_is_bounded():
    eng = InferenceEngine.from_pgmpy(example_model("asia"), max_plans=2)
    for t in ["lung", "tub", "bronc"]:
        eng.query({"xray": np.array([1.0, 0.0])}, [t])
    assert len(eng._plans) == 2
    ref = InferenceEngine.from_pgmpy(example_model("asia")).query({"xray": np.array([1.0, 0.0])}, ["lung"])
    np.testing.assert_allclose(eng.query({"xray": np.array([1.0, 0.0])}, ["lung"]).marginals["lung"],
                               ref.marginals["lung"], atol=1e-15)


def test_default_network_matches_variable_elimination():
    """The project's own network, one case at a time and as a batch, against pgmpy VE."""
    from model import load_network

    net = load_network()
    model = net.model
    eng = InferenceEngine.from_pgmpy(model)
    rng = np.random.default_rng(21)
    cases = sample_cases(model, 6, seed=13)
    checks = []
    for k in range(len(cases)):
        obs = [v for v in net.observable if rng.random() < 0.3]
        ev = {v: cases.iloc[k][v] for v in obs}
        lik = {v: hard_lik(eng, v, s) for v, s in ev.items()}
        targets = list(net.latent) + [v for v in net.observable if v not in ev][:2]
        res = eng.query(lik, targets)
        assert res.possible.tolist() == [True]
        refs = {t: ve_posterior(model, ev, t) for t in targets}
        for t, ref in refs.items():
            np.testing.assert_allclose(res.marginals[t][0], ref, atol=TOL, rtol=0)
        checks.append((lik, refs))
    batch = {v: np.stack([lik.get(v, np.ones(eng.cards[v])) for lik, _ in checks])
             for v in net.observable}
    targets = sorted({t for _, refs in checks for t in refs})
    res = eng.query(batch, targets)
    for i, (_, refs) in enumerate(checks):
        for t, ref in refs.items():
            np.testing.assert_allclose(res.marginals[t][i], ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("n", [1, 3])
def test_subnormal_likelihoods_give_the_same_posterior_as_scaled_ones(n):
    """Posteriors do not change when a likelihood is scaled, even down to subnormal numbers."""
    eng = engine_for("asia")
    tiny = {"xray": np.array([0.0, 1.1e-308]), "dysp": np.array([3e-310, 1e-309])}
    scaled = {"xray": np.array([0.0, 1.0]), "dysp": np.array([0.3, 1.0])}

    def ask(lik):
        return eng.query({v: np.tile(L, (n, 1)) for v, L in lik.items()}, ["lung", "tub", "smoke"])
    a, b = ask(tiny), ask(scaled)
    assert a.possible.all()
    for t in ("lung", "tub", "smoke"):
        np.testing.assert_allclose(a.marginals[t], b.marginals[t], atol=1e-12)


@pytest.mark.parametrize("zeros", [False, True])
def test_batch_with_hard_soft_and_missing_findings_matches_brute_force(zeros):
    """A star of findings (absorbed in log space as one block) with every kind of row in
    one batch: one-hot, all ones, soft, soft with zeros; tables with and without zeros."""
    from helpers import brute_force as bf
    rng = np.random.default_rng(7 + zeros)
    variables = ["R", "S"] + [f"F{i}" for i in range(6)]
    cards = {"R": 3, "S": 2, **{f"F{i}": 3 for i in range(6)}}
    parents = {"R": [], "S": ["R"], **{f"F{i}": ["R", "S"] for i in range(6)}}
    tables = {"R": np.array([0.5, 0.3, 0.2]), "S": np.array([[0.6, 0.1, 0.5], [0.4, 0.9, 0.5]])}
    for i in range(6):
        t = rng.random((3, 3, 2)) + 0.05
        if zeros:
            t[rng.random((3, 3, 2)) < 0.25] = 0.0
            t[0] += 0.01  # keep every column positive
        tables[f"F{i}"] = t / t.sum(axis=0)
    eng = InferenceEngine(variables, cards, parents, tables)
    model = eng_model(variables, cards, parents, tables)
    n = 40
    lik = {}
    for i in range(6):
        v = f"F{i}"
        kind = rng.integers(0, 4, n)
        L = np.eye(3)[rng.integers(0, 3, n)]
        L[kind == 1] = 1.0
        L[kind == 2] = rng.random(((kind == 2).sum(), 3)) + 0.1
        L[kind == 3] = rng.random(((kind == 3).sum(), 3)) * (rng.random(((kind == 3).sum(), 3)) < 0.6)
        lik[v] = L
    res = eng.query(lik, ["R", "S"])
    for i in range(n):
        row = {v: L[i] for v, L in lik.items()}
        ref, ref_logz = bf(model, row, ["R", "S"])
        one = eng.query(row, ["R", "S"])  # the single-case plan, independent code
        if ref_logz == -np.inf:
            assert not res.possible[i] and not one.possible[0]
            continue
        assert res.log_evidence[i] == pytest.approx(ref_logz, abs=1e-9)
        assert one.log_evidence[0] == pytest.approx(ref_logz, abs=1e-9)
        for t in ("R", "S"):
            np.testing.assert_allclose(res.marginals[t][i], ref[t], atol=TOL)
            np.testing.assert_allclose(one.marginals[t][0], ref[t], atol=TOL)


def eng_model(variables, cards, parents, tables):
    """A pgmpy model of plain tables (for the brute-force reference)."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork([(p, v) for v in variables for p in parents[v]])
    for v in variables:
        t = tables[v].reshape(cards[v], -1)
        model.add_cpds(TabularCPD(v, cards[v], t, evidence=parents[v] or None,
                                  evidence_card=[cards[p] for p in parents[v]] or None))
    return model


def test_one_case_falls_back_to_the_batched_plan_when_dense_potentials_are_too_big():
    model = example_model("alarm")
    dense, batched = InferenceEngine.from_pgmpy(model), InferenceEngine.from_pgmpy(model)
    batched._jt.single_max_elements = 0
    eng = engine_for("alarm")
    row = sample_cases(model, 1, seed=9).iloc[0]
    lik = {v: hard_lik(eng, v, row[v]) for v in ["HR", "BP", "CVP", "SAO2", "EXPCO2"]}
    targets = ["HYPOVOLEMIA", "LVFAILURE", "INTUBATION", "KINKEDTUBE"]
    a, b = dense.query(lik, targets), batched.query(lik, targets)
    assert a.log_evidence[0] == pytest.approx(b.log_evidence[0], abs=1e-12)
    for t in targets:
        np.testing.assert_allclose(a.marginals[t], b.marginals[t], atol=1e-12)
        np.testing.assert_allclose(a.marginals[t][0], ve_posterior(model, dict(
            (v, row[v]) for v in lik), t), atol=TOL)
    np.testing.assert_allclose(dense.joint(lik, "HR", "BP"), batched.joint(lik, "HR", "BP"),
                               atol=1e-12)


def test_greedy_contraction_order_gives_the_same_answers(monkeypatch):
    """Contractions with more operands than the exact path search takes use a greedy order."""
    import model.engine.contraction as contraction

    model = example_model("alarm")
    exact = InferenceEngine.from_pgmpy(model)
    monkeypatch.setattr(contraction, "_DP_MAX", 1)
    greedy = InferenceEngine.from_pgmpy(model)
    cases = sample_cases(model, 4, seed=5)
    obs = ["HR", "BP", "CVP", "SAO2", "EXPCO2", "PRESS", "MINVOL", "HRBP"]
    lik = {v: np.stack([hard_lik(exact, v, cases.iloc[i][v]) for i in range(4)]) for v in obs}
    targets = ["HYPOVOLEMIA", "LVFAILURE", "INTUBATION", "KINKEDTUBE", "VENTLUNG"]
    a, b = exact.query(lik, targets), greedy.query(lik, targets)
    np.testing.assert_allclose(a.log_evidence, b.log_evidence, atol=1e-9)
    for t in targets:
        np.testing.assert_allclose(a.marginals[t], b.marginals[t], atol=1e-12)

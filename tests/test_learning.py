"""Fitting: closed form, EM (monotone objective, exact expected counts), recovery, round trip, CLI."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import example_model_path, random_network
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model import load_network
from model import estep as estep_module
from model.cases import CASE_ID, decode, encode, read_cases, sample_codes, simulate
from model.estep import FamilyMarginals
from model.io import knowledge_from_pgmpy
from model.knowledge import from_tables
from model.knowledge_write import write_knowledge
from model.learning import fit
from model.network import Network


@pytest.fixture(scope="module")
def asia():
    return load_network(example_model_path("asia"))


def _structure(net):
    return net.variables, {v: len(net.states[v]) for v in net.variables}, {v: net.parents(v) for v in net.variables}


def _with_tables(net, tables, name="perturbed"):
    variables, _, parents = _structure(net)
    kb = from_tables(name, net.states, parents, tables)
    return Network(kb)


def _brute_family(net, tables, codes):
    """P(v, pa(v) | e) per case by enumerating the full joint (small networks only)."""
    variables, cards, parents = _structure(net)
    letters = {v: chr(97 + i) for i, v in enumerate(variables)}
    full = "".join(letters[v] for v in variables)
    joint = np.einsum(",".join("".join(letters[x] for x in (v, *parents[v])) for v in variables) + "->" + full,
                      *[tables[v] for v in variables])
    out = {v: [] for v in variables}
    logp = []
    for row in codes:
        j = joint
        for i, c in enumerate(row):
            if c >= 0:
                shape = [1] * len(variables)
                shape[i] = cards[variables[i]]
                j = j * (np.arange(cards[variables[i]]) == c).reshape(shape)
        z = j.sum()
        logp.append(np.log(z) if z > 0 else -np.inf)
        j = j / z if z > 0 else j * 0
        for v in variables:
            out[v].append(np.einsum(full + "->" + "".join(letters[x] for x in (v, *parents[v])), j))
    return {v: np.array(a) for v, a in out.items()}, np.array(logp)


# --------------------------------------------------------------------------- E-step

@pytest.mark.parametrize("split,fast", [(False, False), (True, False), (False, True), (True, True)])
def test_expected_counts_equal_brute_force(split, fast, monkeypatch):
    """Family posteriors and counts of the sparse junction tree equal full enumeration, with
    structural zeros (impossible cases), with the grouping of cases by split variables, and with
    childless cliques propagated as matrix products (forced on or off)."""
    if split:
        monkeypatch.setattr(estep_module, "SPLIT_MIN_SUPPORT", 0)
    monkeypatch.setattr(estep_module, "FAST_RATIO", 1 if fast else 10**9)
    rng = np.random.default_rng(11 * split + 3 * fast + 5)
    for _ in range(12):
        model = random_network(rng, max_nodes=6, max_card=3, zero_prob=0.15)
        net = Network(knowledge_from_pgmpy(model, "random"))
        variables, cards, parents = _structure(net)
        tables = net.knowledge.tables()
        codes = sample_codes(net, 40, rng)
        codes = np.where(rng.random(codes.shape) < 0.5, -1, codes)
        codes[:3] = [[rng.integers(cards[v]) for v in variables] for _ in range(3)]  # some maybe impossible
        fm = FamilyMarginals(variables, cards, parents)
        fam, logp = fm.family_marginals(tables, codes)
        bf, blogp = _brute_family(net, tables, codes)
        np.testing.assert_allclose(logp, blogp, rtol=1e-10, atol=1e-10)
        for v in variables:
            np.testing.assert_allclose(fam[v], bf[v], atol=1e-10)
        weights = rng.integers(1, 4, len(codes)).astype(float)
        counts, loglik, _ = fm.expected_counts(tables, codes, weights, threads=1)
        ok = np.isfinite(blogp)
        assert loglik == pytest.approx(float(np.dot(weights[ok], blogp[ok])), rel=1e-10)
        for v in variables:
            np.testing.assert_allclose(counts[v], np.tensordot(weights, bf[v], axes=1), atol=1e-9)


def test_estep_agrees_with_the_engine_joint(asia):
    """Cross-check on the public engine: P(v, parent | e) for one-parent families."""
    data, _ = read_cases(simulate(asia, 60, seed=4, missing=0.5), asia)
    codes = encode(data, asia)
    fam, logp = FamilyMarginals(*_structure(asia)).family_marginals(asia.knowledge.tables(), codes)
    from model.evidence import cases_to_likelihoods

    lik = cases_to_likelihoods(data, asia.states)
    res = asia.engine.query(lik, [], n_cases=len(data))
    np.testing.assert_allclose(logp, res.log_evidence, atol=1e-10)
    for v in asia.variables:
        if len(asia.parents(v)) == 1:
            joint = asia.engine.joint(lik, v, asia.parents(v)[0], n_cases=len(data))
            np.testing.assert_allclose(fam[v], joint, atol=1e-9)


# --------------------------------------------------------------------------- closed form

def test_closed_form_is_the_dirichlet_posterior_mean(asia):
    df = simulate(asia, 60, seed=2, missing="none")
    res = fit(asia, df, prior_strength=3.0, per_variable={"smoke": 7.0}, progress=False)
    assert res.method.startswith("closed form") and res.n_iter == 1
    expert = asia.knowledge.tables()
    fitted = res.network.knowledge.tables()
    for v in asia.variables:
        k = 7.0 if v == "smoke" else 3.0
        pa = asia.parents(v)
        for combo in itertools.product(*(asia.states[p] for p in pa)):
            rows = df
            for p, s in zip(pa, combo):
                rows = rows[rows[p] == s]
            idx = tuple(asia.states[p].index(s) for p, s in zip(pa, combo))
            for i, state in enumerate(asia.states[v]):
                n = (rows[v] == state).sum()
                want = (k * expert[v][(i, *idx)] + n) / (k + len(rows))
                assert fitted[v][(i, *idx)] == pytest.approx(want, abs=1e-11)


def test_prior_strength_zero_is_maximum_likelihood_and_keeps_unseen_rows(asia):
    df = simulate(asia, 40, seed=9, missing="none")
    res = fit(asia, df, prior_strength=0, progress=False)
    t = res.network.knowledge.tables()
    assert t["smoke"][0] == pytest.approx((df["smoke"] == asia.states["smoke"][0]).mean())
    if not (df["asia"] == "yes").any():  # a row without data keeps the expert values
        np.testing.assert_allclose(t["tub"][:, 0], asia.knowledge.tables()["tub"][:, 0])


# --------------------------------------------------------------------------- EM

@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), strength=st.sampled_from([0.0, 0.5, 5.0]), accelerate=st.booleans())
def test_em_objective_never_decreases(seed, strength, accelerate):
    """Plain EM (every step an EM step) and over-relaxed EM never decrease the objective; with
    prior strength 0 the objective is the log-likelihood."""
    rng = np.random.default_rng(seed)
    model = random_network(rng, max_nodes=6, max_card=3, min_nodes=3)
    net = Network(knowledge_from_pgmpy(model, "random"))
    truth = {v: rng.dirichlet(np.ones(t.shape[0]), size=t.shape[1:]).transpose(-1, *range(t.ndim - 1))
             if t.ndim > 1 else rng.dirichlet(np.ones(t.shape[0])) for v, t in net.knowledge.tables().items()}
    data = decode(sample_codes(net, 150, rng, truth), net)
    data = data.mask(rng.random(data.shape) < 0.35)
    data = data.drop(columns=[net.variables[0]])  # a latent variable
    data = data.loc[:, data.notna().any()]
    res = fit(net, data, prior_strength=strength, max_iter=25, tol=0, progress=False, accelerate=accelerate)
    obj = np.array(res.objective)
    assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[:-1]).max())
    if strength == 0.0:
        ll = np.array(res.log_likelihood)
        assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[:-1]).max())


def _weighted_kl(truth, fitted, weights):
    total = 0.0
    for v, t in truth.items():
        a = t.reshape(t.shape[0], -1)
        b = fitted[v].reshape(a.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.sum(np.where(a > 0, a * np.log(a / b), 0.0), axis=0)
        total += float(np.dot(weights[v], kl))
    return total


def test_parameter_recovery_kl_shrinks_with_more_cases(asia):
    rng = np.random.default_rng(3)
    truth = asia.knowledge.tables()
    start = {}
    for v, t in truth.items():
        flat = t.reshape(t.shape[0], -1)
        draw = rng.dirichlet(np.ones(flat.shape[0]), size=flat.shape[1]).T
        start[v] = np.where(flat > 0, 0.5 * flat + 0.5 * draw, 0.0)  # keep the structural zeros
        start[v] = (start[v] / start[v].sum(axis=0)).reshape(t.shape)
    start_net = _with_tables(asia, start)
    # weight each row by how often its parent configuration occurs under the truth
    big = sample_codes(asia, 50_000, np.random.default_rng(0))
    weights = {}
    for j, v in enumerate(asia.variables):
        pa = asia.parents(v)
        shape = truth[v].shape[1:]
        if pa:
            idx = np.ravel_multi_index(tuple(big[:, asia.variables.index(p)] for p in pa), shape)
            weights[v] = np.bincount(idx, minlength=int(np.prod(shape))) / len(big)
        else:
            weights[v] = np.ones(1)
    kls = []
    for n in (1000, 10_000):
        df = simulate(asia, n, seed=n, missing=0.3)
        df = df.drop(columns=["either"])  # a latent variable: EM
        res = fit(start_net, df, prior_strength=1.0, progress=False)
        assert res.method.startswith("EM")
        kls.append(_weighted_kl(truth, res.network.knowledge.tables(), weights))
    kl_start = _weighted_kl(truth, start, weights)
    assert kls[1] < kls[0] < kl_start
    assert kls[1] < 0.1 * kl_start


def test_impossible_cases_are_reported_not_silently_dropped(asia):
    df = simulate(asia, 50, seed=1, missing="none")
    df.loc[0, ["tub", "either"]] = ["yes", "no"]  # 'either' is tub OR lung: impossible
    res = fit(asia, df, prior_strength=2, progress=False)
    assert res.impossible == [df.loc[0, CASE_ID]]
    assert res.n_cases == 49
    assert "impossible" in res.summary()


def test_restarts_keep_the_best_run(asia):
    df = simulate(asia, 300, seed=5, missing=0.4).drop(columns=["either"])
    res = fit(asia, df, prior_strength=2, restarts=2, seed=1, progress=False)
    assert len(res.restarts) == 3
    assert res.objective[-1] == pytest.approx(max(res.restarts))


def test_bad_arguments(asia):
    df = simulate(asia, 20, seed=0)
    with pytest.raises(ValueError, match="prior_strength"):
        fit(asia, df, prior_strength=-1, progress=False)
    with pytest.raises(ValueError, match="Did you mean 'smoke'"):
        fit(asia, df, per_variable={"smok": 2}, progress=False)


# --------------------------------------------------------------------------- output

def test_fitted_network_round_trips_with_provenance(asia, tmp_path):
    df = simulate(asia, 400, seed=8, missing=0.2)
    res = asia.fit(df, prior_strength=4, progress=False)
    path = write_knowledge(res.network.knowledge, tmp_path / "fitted.yaml")
    back = load_network(path)
    for v in asia.variables:
        np.testing.assert_allclose(back.knowledge.tables()[v], res.network.knowledge.tables()[v], atol=1e-10)
        for rule in back.knowledge.rules[v]:
            assert "updated from 400 cases" in rule.note and "strength 4" in rule.note
            assert all(s in back.knowledge.sources or s == "expert estimate" for s in rule.source)
    assert list(back.cpt("dysp")["source"].unique()) == ["imported"]
    # the report lists the rows that moved most, sorted
    assert list(res.moved["kl"]) == sorted(res.moved["kl"], reverse=True)
    assert {"variable", "parents", "kl", "expected_cases"} <= set(res.moved.columns)


def test_prior_data_conflict_flags_rows_that_disagree(asia):
    tables = asia.knowledge.tables()
    wrong = dict(tables)
    wrong["smoke"] = tables["smoke"][::-1] * 0 + np.array([0.05, 0.95])  # expert says smokers are rare
    net = _with_tables(asia, wrong)
    df = simulate(asia, 500, seed=3, missing="none")  # data: half smoke
    res = fit(net, df, prior_strength=50, progress=False)
    top = res.conflicts.iloc[0]
    assert top["variable"] == "smoke" and top["flagged"]
    agree = fit(asia, df, prior_strength=50, progress=False)
    row = agree.conflicts[agree.conflicts["variable"] == "smoke"].iloc[0]
    assert row["p_value"] > 0.01
    # data drawn from the expert network itself: (almost) nothing flagged, no tiny rows tested
    assert agree.conflicts["flagged"].mean() <= 0.1
    assert (agree.conflicts["expected_cases"] >= 5).all()


# --------------------------------------------------------------------------- CLI

def test_cli_simulate_validate_fit(tmp_path, capsys):
    from model.cli import main

    bif = example_model_path("asia")
    cases = tmp_path / "c.csv"
    assert main(["simulate", "--network", bif, "--n", "300", "--seed", "1", "--missing", "0.2", str(cases)]) == 0
    assert main(["validate", "--network", bif, str(cases)]) == 0
    assert "300 case(s)" in capsys.readouterr().out
    out = tmp_path / "fitted.yaml"
    assert main(["fit", "--network", bif, str(cases), "--prior-strength", "5", "--out", str(out), "--quiet"]) == 0
    assert "EM" in capsys.readouterr().out
    assert load_network(out).variables == load_network(bif).variables
    bad = tmp_path / "bad.csv"
    bad.write_text("smoke,dysp\nyes,maybe\n")
    assert main(["validate", "--network", bif, str(bad)]) == 2
    err = capsys.readouterr().err
    assert "'maybe' is not a state of 'dysp'" in err
    assert main(["simulate", "--network", bif, "--n", "5", "--missing", "lots", str(cases)]) == 2
    assert main(["fit", "--network", bif, str(bad), "--prior-strength", "5", "--out", str(out)]) == 2

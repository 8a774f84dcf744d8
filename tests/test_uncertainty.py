"""Dirichlet credible intervals, test-ranking stability, sweeps (local and on a 2-worker Dask
cluster) and the ``lesionbn sensitivity`` command."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import brute_force, example_model

from model.io import knowledge_from_pgmpy
from model.network import Network
from model.sweep import evidence_grid, sweep
from model.uncertainty import (
    dirichlet_concentrations,
    interval_plot,
    posterior_intervals,
    recommendation_intervals,
    sample_tables,
)

EV = {"dysp": "yes", "xray": "yes"}


@pytest.fixture(scope="module")
def asia():
    return Network(knowledge_from_pgmpy(example_model("asia"), "asia"))


def test_intervals_contain_point_posterior_and_shrink(asia):
    weak = posterior_intervals(asia, EV, ["lung", "tub"], prior_strength=20, n_samples=300, seed=1)
    strong = posterior_intervals(asia, EV, ["lung", "tub"], prior_strength=2000, n_samples=300, seed=1)
    assert list(weak.columns) == ["target", "state", "posterior", "mean", "sd", "low", "high", "p_top"]
    post = asia.posterior(EV, ["lung", "tub"])
    for df in (weak, strong):
        np.testing.assert_allclose(df.posterior, np.concatenate([post["lung"], post["tub"]]), atol=1e-12)
        assert (df.low <= df.posterior + 1e-12).all() and (df.posterior <= df.high + 1e-12).all()
        assert ((df.low >= 0) & (df.high <= 1)).all()
    w_weak = (weak.high - weak.low).to_numpy()
    w_strong = (strong.high - strong.low).to_numpy()
    assert (w_weak > 0.02).all() and (w_weak < 0.9).all()  # sensible: neither a point nor everything
    assert (w_strong < w_weak / 3).all()  # sd ~ 1/sqrt(strength): 10x narrower expected
    # the samples' mean is close to the point posterior when the numbers are certain
    np.testing.assert_allclose(strong["mean"], strong.posterior, atol=0.01)
    # p_top sums to one per target
    assert weak.groupby("target").p_top.sum().to_numpy() == pytest.approx([1, 1])
    ax = interval_plot(weak, "lung")
    assert len(ax.patches) == 2


def test_seeded_and_batch_equals_single(asia):
    a = posterior_intervals(asia, EV, "lung", n_samples=50, seed=7)
    b = posterior_intervals(asia, EV, "lung", n_samples=50, seed=7)
    c = posterior_intervals(asia, EV, "lung", n_samples=50, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.low, c.low)
    cases = [EV, {"smoke": "yes"}, {}]
    many = posterior_intervals(asia, cases, "lung", n_samples=50, seed=7)
    assert list(many.case.unique()) == [0, 1, 2]
    for i, ev in enumerate(cases):
        one = posterior_intervals(asia, ev, "lung", n_samples=50, seed=7)
        part = many[many.case == i].drop(columns="case").reset_index(drop=True)
        pd.testing.assert_frame_equal(part, one, check_exact=False, rtol=1e-10, atol=1e-12)


def test_each_sample_is_an_exact_posterior(asia):
    """Sample s of the intervals is the brute-force posterior of the s-th sampled network."""
    from model.uncertainty import posterior_samples

    model = example_model("asia")
    _, samples = posterior_samples(asia, EV, ["lung"], n_samples=3, seed=4)
    for s, tabs in enumerate(sample_tables(asia, 3, seed=4)):
        m = model.copy()
        for cpd in m.get_cpds():
            cpd.values = tabs[cpd.variable].reshape(cpd.cardinality)
        lik = {v: np.eye(2)[asia.states[v].index(st)] for v, st in EV.items()}
        marg, _ = brute_force(m, lik, ["lung"])
        np.testing.assert_allclose(samples["lung"][s, 0], marg["lung"], atol=1e-10)


def test_dirichlet_moments_structural_zeros_and_counts(asia):
    s = 30.0
    tabs = list(sample_tables(asia, 3000, prior_strength=s, seed=0, variables=["lung", "either"]))
    lung = np.stack([t["lung"] for t in tabs])
    theta = asia.cpt("lung")[asia.states["lung"]].to_numpy().T  # (card, configs)
    np.testing.assert_allclose(lung.mean(axis=0), theta, atol=0.01)
    np.testing.assert_allclose(lung.var(axis=0), theta * (1 - theta) / (s + 1), rtol=0.15)
    either = np.stack([t["either"] for t in tabs])
    base = dirichlet_concentrations(asia, 1.0)["either"]
    assert np.all(either[:, base == 0] == 0)  # structural zeros stay zero
    np.testing.assert_allclose(either.sum(axis=1), 1.0)
    counts = {"lung": np.zeros_like(theta.reshape(2, 2))}
    counts["lung"][0, 0] = 1000.0  # many cases with lung=yes among smokers
    alpha = dirichlet_concentrations(asia, s, counts)["lung"]
    assert alpha[0, 0] == pytest.approx(s * theta[0, 0] + 1000)
    fitted = posterior_intervals(asia, {"smoke": "yes"}, "lung", prior_strength=s, counts=counts, n_samples=100)
    assert fitted["mean"].iloc[0] > 0.9
    with pytest.raises(ValueError, match="shape"):
        dirichlet_concentrations(asia, s, {"lung": np.zeros(3)})


def test_fitted_result_gives_the_posterior_dirichlet(asia):
    cases_mod = pytest.importorskip("model.cases")
    pytest.importorskip("model.learning")
    cases = cases_mod.simulate(asia, 400, seed=0, missing="none")
    res = asia.fit(cases, prior_strength=20, progress=False)
    alpha = dirichlet_concentrations(asia, counts=res)
    fitted = res.network.cpt("lung")[asia.states["lung"]].to_numpy().T
    np.testing.assert_allclose(alpha["lung"] / alpha["lung"].sum(axis=0), fitted, atol=1e-9)
    assert (alpha["lung"].sum(axis=0) > 20).all()  # prior strength plus the cases behind each row
    df = posterior_intervals(asia, {"dysp": "yes"}, "lung", counts=res, n_samples=100)
    point = res.network.posterior({"dysp": "yes"}, "lung")["lung"]
    np.testing.assert_allclose(df.posterior, point, atol=1e-12)
    prior_only = posterior_intervals(res.network, {"dysp": "yes"}, "lung", prior_strength=20, n_samples=100)
    assert (df.high - df.low).mean() < (prior_only.high - prior_only.low).mean()


def test_recommendation_intervals(asia):
    pytest.importorskip("model.recommend")
    rank = recommendation_intervals(asia, {"dysp": "yes"}, target="lung", n_samples=6, seed=0)
    n = len(rank)
    assert n >= 2 and rank["rank"].tolist() == list(range(1, n + 1))
    assert ((rank.rank_low >= 1) & (rank.rank_high <= n)).all()
    assert rank.p_first.sum() == pytest.approx(1.0)
    assert (rank.gain_low <= rank.gain_high).all()


def test_dask_sweep_equals_local(asia):
    distributed = pytest.importorskip("dask.distributed")
    grid = evidence_grid(asia, {"dysp": ["yes", "no"], "xray": ["yes", "no", None]})
    local_u = sweep(asia, grid, "uncertainty", targets="lung", n_samples=30, seed=2)
    local_e = sweep(asia, grid[:3], "evidence", target="lung")
    local_p = sweep(asia, grid, "posterior", targets=["lung", "tub"], chunk_size=2)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            dask_u = sweep(asia, grid, "uncertainty", scheduler=client, chunk_size=2, targets="lung",
                           n_samples=30, seed=2)
            dask_e = sweep(asia, grid[:3], "evidence", scheduler=cluster.scheduler_address, target="lung")
            dask_p = sweep(asia, grid, "posterior", scheduler=client, targets=["lung", "tub"])
            assert len(client.scheduler_info()["workers"]) == 2
    pd.testing.assert_frame_equal(local_u, dask_u, check_exact=False, rtol=1e-10, atol=1e-12)
    pd.testing.assert_frame_equal(local_e, dask_e, check_exact=False, rtol=1e-10, atol=1e-12)
    pd.testing.assert_frame_equal(local_p, dask_p, check_exact=False, rtol=1e-10, atol=1e-12)
    assert list(local_u.scenario.unique()) == [sid for sid, _ in grid]
    # the posterior sweep equals fresh posteriors
    row = local_p[(local_p.scenario == grid[0][0]) & (local_p.target == "lung")]
    assert row.posterior.to_numpy() == pytest.approx(asia.posterior(grid[0][1], "lung")["lung"].to_numpy())


def test_cli_writes_tables_figures_and_config(asia, tmp_path, capsys):
    from model.cli import main

    bif = tmp_path / "asia.bif"
    asia.export(bif)
    ev = ["-e", "dysp=yes", "xray=yes"]
    out = tmp_path / "p"
    assert main(["sensitivity", "parameters", "--network", str(bif), *ev, "--target", "lung", "--out", str(out),
                 "--parameter", "lung=yes|smoke=yes"]) == 0
    assert {"tornado.csv", "tornado.png", "admissible.csv", "function_1.csv", "config.json"} <= {p.name for p in out.iterdir()}
    tornado = pd.read_csv(out / "tornado.csv")
    direct = asia.sensitivity({"dysp": "yes", "xray": "yes"}, "lung")
    assert tornado.swing.iloc[0] == pytest.approx(direct.swing.iloc[0])
    out = tmp_path / "u"
    capsys.readouterr()
    assert main(["sensitivity", "uncertainty", "--network", str(bif), *ev, "--target", "lung", "--out", str(out),
                 "--samples", "20", "--seed", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["arguments"]["seed"] == 3
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["arguments"]["samples"] == 20 and cfg["network"]["name"] == "asia"
    again = posterior_intervals(asia, {"dysp": "yes", "xray": "yes"}, "lung", n_samples=20, seed=3)
    assert [r["high"] for r in doc["result"]] == pytest.approx(again.high.tolist())
    out = tmp_path / "e"
    cases = tmp_path / "cases.csv"
    pd.DataFrame({"case_id": ["a", "b"], "dysp": ["yes", "no"], "xray": ["yes", ""]}).to_csv(cases, index=False)
    assert main(["sensitivity", "evidence", "--network", str(bif), "--cases", str(cases), "--target", "lung",
                 "--out", str(out)]) == 0
    sw = pd.read_csv(out / "evidence_sweep.csv")
    assert set(sw.scenario) == {"a", "b"}
    assert main(["sensitivity", "evidence", "--network", str(bif), "-e", "dysp=maybe", "--out", str(out)]) == 2

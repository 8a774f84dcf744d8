"""Network: posteriors, soft evidence, P(evidence) and clear errors, against independent references."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import brute_force, example_model_path, random_network
from model import EvidenceError, ImpossibleEvidenceError, Network, load_network
from model.io import knowledge_from_pgmpy


@pytest.fixture(scope="module")
def asia():
    return load_network(example_model_path("asia"))


def net_of(model):
    return Network(knowledge_from_pgmpy(model))


def test_posterior_matches_pgmpy_variable_elimination(asia):
    from pgmpy.inference import VariableElimination

    ve = VariableElimination(asia.model)
    evidence = {"smoke": "yes", "xray": "yes", "dysp": "no"}
    post = asia.posterior(evidence, targets=["lung", "tub", "bronc", "either"])
    for t, series in post.items():
        f = ve.query([t], evidence=evidence, show_progress=False)
        ref = [f.get_value(**{t: s}) for s in asia.states[t]]
        np.testing.assert_allclose(series.to_numpy(), ref, atol=1e-9)
        assert list(series.index) == asia.states[t]


def test_soft_evidence_equals_brute_force(asia):
    lik = {"xray": np.array([0.8, 0.2]), "smoke": np.array([1.0, 0.0])}
    post = asia.posterior({"xray": {"yes": 0.8, "no": 0.2}, "smoke": "yes"}, targets=["lung"])
    ref, log_ev = brute_force(asia.model, lik, ["lung"])
    np.testing.assert_allclose(post["lung"].to_numpy(), ref["lung"], atol=1e-9)
    np.testing.assert_allclose(asia.log_probability_of_evidence({"xray": [0.8, 0.2], "smoke": "yes"}), log_ev, atol=1e-9)


def test_default_targets_are_every_node_for_networks_without_roles(asia):
    assert set(asia.posterior({})) == set(asia.variables)


def test_unknown_variable_and_state_suggest_closest(asia):
    with pytest.raises(EvidenceError, match=r"unknown variable 'smokes'\. Did you mean 'smoke'"):
        asia.posterior({"smokes": "yes"})
    with pytest.raises(EvidenceError, match=r"smoke='yse'.*valid: yes, no.*Did you mean 'yes'"):
        asia.posterior({"smoke": "yse"})
    with pytest.raises(EvidenceError, match="unknown variable 'lungs'"):
        asia.posterior({}, targets=["lungs"])
    with pytest.raises(EvidenceError, match="needs 2 numbers"):
        asia.posterior({"smoke": [0.2, 0.3, 0.5]})
    with pytest.raises(EvidenceError, match="zero for every state"):
        asia.posterior({"smoke": {"yes": 0}})
    with pytest.raises(EvidenceError, match="must be a mapping"):
        asia.posterior(["smoke", "yes"])


def test_missing_values_mean_unobserved(asia):
    a = asia.posterior({"smoke": "yes", "xray": None, "dysp": float("nan"), "asia": ""}, targets=["lung"])
    b = asia.posterior({"smoke": "yes"}, targets=["lung"])
    pd.testing.assert_series_equal(a["lung"], b["lung"])


def test_impossible_evidence_is_a_clear_error_not_nan(asia):
    # 'either' is a deterministic OR of tub and lung
    evidence = {"tub": "yes", "either": "no"}
    with pytest.raises(ImpossibleEvidenceError, match="probability zero"):
        asia.posterior(evidence)
    assert asia.probability_of_evidence(evidence) == 0.0
    assert asia.log_probability_of_evidence(evidence) == -np.inf


def test_probability_of_evidence(asia):
    lik = {"smoke": np.array([1.0, 0.0]), "xray": np.array([1.0, 0.0])}
    _, log_ev = brute_force(asia.model, lik, [])
    assert asia.probability_of_evidence({"smoke": "yes", "xray": "yes"}) == pytest.approx(np.exp(log_ev), abs=1e-12)
    assert asia.probability_of_evidence({}) == 1.0


def test_batch_equals_one_case_at_a_time(asia):
    cases = pd.DataFrame(
        {"case_id": ["a", "b", "c"], "smoke": ["yes", None, "no"], "xray": ["yes", "no", None]}
    )
    res = asia.posterior_batch(cases, targets=["lung"])
    for cid, smoke, xray in cases.itertuples(index=False):
        one = asia.posterior({"smoke": smoke, "xray": xray}, targets=["lung"])["lung"]
        np.testing.assert_allclose(res.posteriors["lung"].loc[cid].to_numpy(), one.to_numpy(), atol=1e-12)
    assert res.possible.all()


def test_batch_cells_of_every_kind_read_like_single_cases(asia):
    """Exact names, padded names, blanks, None/NaN/NA and soft evidence in one table: each row
    gives the posterior of the same evidence asked one case at a time."""
    cases = pd.DataFrame({
        "smoke": ["yes", " no ", "", None, np.nan, pd.NA, "no", "yes"],
        "xray": [None, "yes", "no", " yes", "no", {"yes": 0.2, "no": 0.8}, {"yes": 1.0, "no": 0.5}, None],
    })
    res = asia.posterior_batch(cases, targets=["lung", "tub"])
    for i, row in enumerate(cases.itertuples(index=False)):
        ev = {k: v for k, v in zip(cases.columns, row)
              if not (v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                      or (isinstance(v, str) and not v.strip()))}
        one = asia.posterior(ev, targets=["lung", "tub"])
        for t in ("lung", "tub"):
            np.testing.assert_allclose(res.posteriors[t].iloc[i].to_numpy(), one[t].to_numpy(),
                                       atol=1e-12)


def test_batch_flags_impossible_cases(asia):
    cases = pd.DataFrame({"tub": ["yes", "yes"], "either": ["no", "yes"]})
    with pytest.raises(ImpossibleEvidenceError, match="1 case"):
        asia.posterior_batch(cases)
    res = asia.posterior_batch(cases, on_impossible="flag")
    assert list(res.possible) == [False, True]
    assert res.log_evidence.iloc[0] == -np.inf


def test_batch_reports_bad_cells_with_row_and_column(asia):
    cases = pd.DataFrame({"smoke": ["yes", "maybe"], "xrey": ["yes", "no"]})
    with pytest.raises(EvidenceError, match=r"column 'xrey'.*Did you mean 'xray'"):
        asia.posterior_batch(cases)
    cases = pd.DataFrame({"smoke": ["yes", "maybe"]})
    with pytest.raises(EvidenceError, match=r"row 2 .*column 'smoke'.*'maybe'"):
        asia.posterior_batch(cases)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_posteriors_sum_to_one_and_match_brute_force(data):
    model = random_network(data.draw, max_nodes=6, max_card=3)
    net = net_of(model)
    evidence, lik = {}, {}
    for v in net.variables:
        kind = data.draw(st.sampled_from(["none", "none", "hard", "soft"]))
        card = len(net.states[v])
        if kind == "hard":
            k = data.draw(st.integers(0, card - 1))
            evidence[v] = net.states[v][k]
            lik[v] = np.eye(card)[k]
        elif kind == "soft":
            w = data.draw(st.lists(st.floats(0.05, 1.0), min_size=card, max_size=card))
            evidence[v] = w
            lik[v] = np.array(w)
    ref, log_ev = brute_force(model, lik, net.variables)
    post = net.posterior(evidence, targets=net.variables)
    for v in net.variables:
        assert post[v].sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(post[v].to_numpy(), ref[v], atol=1e-9)
    assert net.log_probability_of_evidence(evidence) == pytest.approx(log_ev, abs=1e-9)


def test_describe_and_cpt_tables(asia):
    d = asia.describe()
    assert list(d.columns) == ["variable", "role", "states", "parents", "description"]
    assert len(d) == 8
    cpt = asia.cpt("either")
    assert list(cpt.index.names) == ["lung", "tub"] and "source" in cpt.columns
    np.testing.assert_allclose(cpt[["yes", "no"]].sum(axis=1), 1.0)


def test_batch_in_slices_equals_one_pass_and_counts_rows_across_slices(asia, monkeypatch):
    import model.network as network

    rng = np.random.default_rng(4)
    cases = pd.DataFrame({"smoke": rng.choice(["yes", "no", None], 23),
                          "xray": rng.choice(["yes", "no", None], 23)})
    whole = asia.posterior_batch(cases, targets=["lung", "tub"])
    monkeypatch.setattr(network, "BATCH_ROWS", 5)
    sliced = asia.posterior_batch(cases, targets=["lung", "tub"])
    for t in ("lung", "tub"):
        pd.testing.assert_frame_equal(whole.posteriors[t], sliced.posteriors[t], atol=1e-12)
    np.testing.assert_allclose(whole.log_evidence, sliced.log_evidence, atol=1e-12)
    cases.loc[17, "xray"] = "maybe"
    with pytest.raises(EvidenceError, match=r"row 18 .*column 'xray'"):
        asia.posterior_batch(cases)
    assert asia.posterior_batch(cases.iloc[:0]).possible.size == 0

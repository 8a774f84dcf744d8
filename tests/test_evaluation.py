"""Evaluation: metrics against hand computations, cross-validation that never sees the label."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import example_model_path

from model import load_network
from model.cases import simulate
from model.errors import CaseDataError
from model.evaluation import (
    brier_score,
    calibration_table,
    confusion_matrix,
    evaluate,
    expected_calibration_error,
    log_loss,
    top_k_accuracy,
)

PROBS = np.array([
    [0.7, 0.2, 0.1, 0.0],
    [0.1, 0.5, 0.3, 0.1],
    [0.25, 0.25, 0.4, 0.1],
    [0.05, 0.15, 0.2, 0.6],
])
TRUTH = np.array([0, 2, 1, 0])


def test_metrics_equal_hand_computations():
    assert top_k_accuracy(PROBS, TRUTH, 1) == pytest.approx(1 / 4)
    # top-3: row 0 yes, row 1 yes (0.3 is 2nd), row 2: 0.25/0.25 tie -> states 0 and 1 both in top 3, yes;
    # row 3: 0.05 is last, no
    assert top_k_accuracy(PROBS, TRUTH, 3) == pytest.approx(3 / 4)
    assert log_loss(PROBS, TRUTH) == pytest.approx(-(np.log(0.7) + np.log(0.3) + np.log(0.25) + np.log(0.05)) / 4)
    brier = [
        0.3**2 + 0.2**2 + 0.1**2 + 0,
        0.1**2 + 0.5**2 + 0.7**2 + 0.1**2,
        0.25**2 + 0.75**2 + 0.4**2 + 0.1**2,
        0.95**2 + 0.15**2 + 0.2**2 + 0.6**2,
    ]
    assert brier_score(PROBS, TRUTH) == pytest.approx(np.mean(brier))
    # ECE with 10 bins: confidences 0.7 (correct), 0.5 (wrong), 0.4 (wrong), 0.6 (wrong), one per bin
    assert expected_calibration_error(PROBS, TRUTH, 10) == pytest.approx((0.3 + 0.5 + 0.4 + 0.6) / 4)
    # 2 bins: [0, 0.5] holds 0.5 and 0.4 (both wrong), (0.5, 1] holds 0.7 (right) and 0.6 (wrong)
    table = calibration_table(PROBS, TRUTH, 2)
    assert list(table["n"]) == [2, 2]
    assert table["confidence"].tolist() == pytest.approx([0.45, 0.65])
    assert table["accuracy"].tolist() == pytest.approx([0.0, 0.5])
    assert expected_calibration_error(PROBS, TRUTH, 2) == pytest.approx(0.5 * 0.45 + 0.5 * 0.15)
    cm = confusion_matrix(PROBS, TRUTH, ["a", "b", "c", "d"])
    assert cm.loc["a", "a"] == 1 and cm.loc["c", "b"] == 1 and cm.loc["b", "c"] == 1 and cm.loc["a", "d"] == 1
    assert cm.to_numpy().sum() == 4
    assert log_loss(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(-np.log(1e-15))


@pytest.fixture(scope="module")
def asia():
    return load_network(example_model_path("asia"))


@pytest.fixture(scope="module")
def asia_result(asia):
    cases = simulate(asia, 400, seed=1, missing=0.2)
    return cases, evaluate(asia, cases, targets=["lung", "tub"], folds=3, prior_strength=5, seed=0)


def test_cross_validation_scores_every_labelled_case(asia_result):
    cases, result = asia_result
    m = result.metrics.set_index(["target", "model"])
    assert set(m.index) == {("lung", "expert"), ("lung", "fitted"), ("tub", "expert"), ("tub", "fitted")}
    for t in ("lung", "tub"):
        assert m.loc[(t, "expert"), "n"] == cases[t].notna().sum() == m.loc[(t, "fitted"), "n"]
        assert result.excluded[t] == cases[t].isna().sum()
    assert ((m["top1"] >= 0) & (m["top1"] <= 1)).all()
    assert (m["top3"] >= m["top1"]).all()


def test_targets_are_hidden_when_predicting(asia, asia_result):
    cases, result = asia_result
    # the expert predictions equal posteriors computed with both targets removed from the evidence
    scored = cases[cases["lung"].notna() & cases["tub"].notna()].head(5)
    labelled = cases.index[cases["lung"].notna() & cases["tub"].notna()]
    pos = [list(cases.index[cases["lung"].notna()]).index(i) for i in labelled[:5]]
    for (_, row), k in zip(scored.iterrows(), pos):
        evidence = {v: s for v, s in row.drop(["case_id", "lung", "tub"]).items() if isinstance(s, str)}
        post = asia.posterior(evidence, ["lung"])["lung"].to_numpy()
        np.testing.assert_allclose(result.predictions[("lung", "expert")][k], post, atol=1e-9)
    # a model that saw its label would put probability 1 on it: the log loss would be ~0
    assert result.metrics["log_loss"].min() > 1e-3


def test_save_writes_only_into_the_named_folder(asia_result, tmp_path):
    _, result = asia_result
    out = tmp_path / "report"
    written = result.save(out)
    assert all(p.parent == out for p in written)
    names = {p.name for p in written}
    for t in ("lung", "tub"):
        assert f"calibration_{t}.png" in names and f"confusion_{t}_fitted.csv" in names
        assert f"confusion_{t}_expert.png" in names
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 4
    assert set(p.name for p in tmp_path.iterdir()) == {"report"}


def test_bad_evaluation_input(asia):
    cases = simulate(asia, 30, seed=2)
    with pytest.raises(CaseDataError, match="not a column"):
        evaluate(asia, cases.drop(columns=["lung"]), targets="lung", folds=2)
    with pytest.raises(CaseDataError, match="at least 50 cases"):
        evaluate(asia, cases, targets="lung", folds=50)
    with pytest.raises(ValueError, match="folds"):
        evaluate(asia, cases, targets="lung", folds=1)


def test_default_network_targets_need_labels():
    net = load_network()
    unlabelled = simulate(net, 20, seed=0)
    with pytest.raises(CaseDataError, match="no target to evaluate"):
        evaluate(net, unlabelled, folds=2)


def test_cli_evaluate(tmp_path, capsys):
    from model.cli import main

    bif = example_model_path("asia")
    cases = tmp_path / "c.csv"
    assert main(["simulate", "--network", bif, "--n", "150", "--seed", "3", "--missing", "none", str(cases)]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", "--network", bif, str(cases), "--folds", "2", "--target", "lung", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "top1" in text and "fitted" in text
    assert (out / "metrics.csv").exists() and (out / "calibration_lung.png").exists()
    assert main(["evaluate", "--network", bif, str(cases), "--target", "nonsense"]) == 2

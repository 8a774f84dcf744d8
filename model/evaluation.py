"""Honest evaluation: k-fold cross-validation of the expert network against the fitted one.

For each target variable recorded in the case data (a confirmed lesion type, site or disease),
the cases are split into ``folds`` parts; for each part the network is fitted on the other
parts (:func:`model.learning.fit`) and both the expert network and the fitted one predict the
part's targets *with every target column hidden* (the model never sees a label it is scored
on). The scores, averaged over all held-out cases::

* top-1 / top-3 accuracy: the true state is the most probable / among the three most probable;
* log loss: mean ``-log p(true state)`` (probabilities clipped at 1e-15);
* Brier score: mean ``sum_k (p_k - y_k)^2`` over the target's states;
* expected calibration error (ECE): the top-state confidence against its accuracy in
  ``bins`` equal-width bins, ``sum_b (n_b / n) |accuracy_b - confidence_b|``.

    >>> from model import load_network
    >>> from model.cases import simulate
    >>> net = load_network()
    >>> cases = simulate(net, 300, seed=0, label_latent=True)
    >>> result = evaluate(net, cases, folds=3, progress=False)     # doctest: +SKIP
    >>> result.metrics[["target", "model", "top1"]]                # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .cases import CASE_ID, read_cases
from .errors import CaseDataError, valid_list

MODELS = ("expert", "fitted")
EPS = 1e-15


# --------------------------------------------------------------------------- metrics

def top_k_accuracy(probs: np.ndarray, truth: np.ndarray, k: int = 1) -> float:
    """Share of rows whose true state index is among the ``k`` largest probabilities (ties are
    broken towards the lower state index, as ``numpy.argsort`` with a stable sort)."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean((order == truth[:, None]).any(axis=1)))


def log_loss(probs: np.ndarray, truth: np.ndarray) -> float:
    """Mean negative log probability of the true state (clipped at 1e-15)."""
    p = probs[np.arange(len(truth)), truth]
    return float(np.mean(-np.log(np.clip(p, EPS, 1.0))))


def brier_score(probs: np.ndarray, truth: np.ndarray) -> float:
    """Mean over rows of ``sum_k (p_k - 1[k = truth])^2``."""
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(truth)), truth] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def calibration_table(probs: np.ndarray, truth: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Top-state confidence against accuracy in equal-width bins (empty bins omitted)."""
    conf = probs.max(axis=1)
    pred = np.argmax(probs, axis=1)
    correct = (pred == truth).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        m = which == b
        if m.any():
            rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "n": int(m.sum()),
                         "confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean())})
    return pd.DataFrame(rows, columns=["bin_low", "bin_high", "n", "confidence", "accuracy"])


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """``sum_b (n_b / n) |accuracy_b - confidence_b|`` over equal-width confidence bins."""
    table = calibration_table(probs, truth, bins)
    if table.empty:
        return float("nan")
    return float(np.sum(table["n"] / table["n"].sum() * np.abs(table["accuracy"] - table["confidence"])))


def confusion_matrix(probs: np.ndarray, truth: np.ndarray, states: Sequence[str]) -> pd.DataFrame:
    """Counts: rows = true state, columns = most probable state."""
    k = len(states)
    pred = np.argmax(probs, axis=1)
    m = np.zeros((k, k), dtype=int)
    np.add.at(m, (truth, pred), 1)
    return pd.DataFrame(m, index=pd.Index(states, name="true"), columns=pd.Index(states, name="predicted"))


def score(probs: np.ndarray, truth: np.ndarray, bins: int = 10) -> dict:
    """All scalar metrics for one target and one model."""
    return {
        "n": int(len(truth)),
        "top1": top_k_accuracy(probs, truth, 1),
        "top3": top_k_accuracy(probs, truth, 3),
        "log_loss": log_loss(probs, truth),
        "brier": brier_score(probs, truth),
        "ece": expected_calibration_error(probs, truth, bins),
    }


# --------------------------------------------------------------------------- cross-validation

@dataclass
class EvaluationResult:
    """Cross-validated scores of the expert and fitted networks.

    ``metrics``: one row per (target, model). ``predictions[(target, model)]``: held-out
    probabilities (rows = scored cases, in case order). ``truth[target]``: true state indices.
    ``excluded[target]``: cases not scored (label not recorded, or impossible evidence).
    """

    metrics: pd.DataFrame
    predictions: dict
    truth: dict
    states: dict
    excluded: dict
    folds: int
    prior_strength: float
    bins: int = 10
    notes: list = field(default_factory=list)

    def confusion(self, target: str, model: str = "fitted") -> pd.DataFrame:
        return confusion_matrix(self.predictions[(target, model)], self.truth[target], self.states[target])

    def calibration(self, target: str, model: str = "fitted") -> pd.DataFrame:
        return calibration_table(self.predictions[(target, model)], self.truth[target], self.bins)

    def summary(self) -> str:
        lines = [f"{self.folds}-fold cross-validation, prior strength {self.prior_strength:g}; targets hidden "
                 "when predicting", ""]
        lines.append(self.metrics.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
        for t, n in self.excluded.items():
            if n:
                lines.append(f"{t}: {n} case(s) not scored (label not recorded or evidence impossible)")
        lines.extend(self.notes)
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write metrics.csv, and per target confusion matrices and calibration tables (CSV) and
        plots (PNG), into ``out_dir`` only (created if needed). Returns the written paths."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "metrics.csv"]
        self.metrics.to_csv(written[0], index=False)
        for target in self.truth:
            fig, ax = plt.subplots(figsize=(5, 5))
            ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
            for model in MODELS:
                table = self.calibration(target, model)
                path = out / f"calibration_{target}_{model}.csv"
                table.to_csv(path, index=False)
                written.append(path)
                ax.plot(table["confidence"], table["accuracy"], marker="o", label=model)
            ax.set_xlabel("confidence of the most probable state")
            ax.set_ylabel("accuracy")
            ax.set_title(f"Calibration: {target}")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.legend()
            fig.tight_layout()
            path = out / f"calibration_{target}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
            for model in MODELS:
                cm = self.confusion(target, model)
                path = out / f"confusion_{target}_{model}.csv"
                cm.to_csv(path)
                written.append(path)
                k = len(cm)
                fig, ax = plt.subplots(figsize=(max(4, 0.45 * k + 2), max(4, 0.45 * k + 2)))
                ax.imshow(cm.to_numpy(), cmap="Blues")
                ax.set_xticks(range(k), cm.columns, rotation=90, fontsize=7)
                ax.set_yticks(range(k), cm.index, fontsize=7)
                ax.set_xlabel("predicted (most probable)")
                ax.set_ylabel("true")
                ax.set_title(f"{target} ({model})")
                fig.tight_layout()
                path = out / f"confusion_{target}_{model}.png"
                fig.savefig(path, dpi=110)
                plt.close(fig)
                written.append(path)
        return written


def evaluate(net, cases, targets: str | Sequence[str] | None = None, folds: int = 5,
             prior_strength: float = 10.0, seed: int | None = 0, bins: int = 10,
             progress: bool = True, **fit_kwargs) -> EvaluationResult:
    """k-fold cross-validated comparison of the expert network and the network fitted on the
    training folds, for each labelled target.

    Parameters
    ----------
    net : Network
    cases : DataFrame or path (checked with :func:`model.cases.read_cases`)
    targets : variables to score; default: the network's latent variables recorded in the data.
    folds : number of folds (>= 2, at most the number of cases).
    prior_strength : passed to :func:`model.learning.fit`, with ``fit_kwargs``.
    seed : shuffles the cases into folds.

    Returns
    -------
    EvaluationResult
    """
    from .learning import fit

    data, _ = read_cases(cases, net)
    variables = [c for c in data.columns if c != CASE_ID]
    if targets is None:
        targets = [v for v in net.latent if v in variables]
        if not targets:
            raise CaseDataError(
                "no target to evaluate: the case data record none of the latent variables "
                f"({valid_list(net.latent)}); add a column with confirmed labels, or name targets"
            )
    elif isinstance(targets, str):
        targets = [targets]
    targets = list(targets)
    for t in targets:
        if t not in variables:
            raise CaseDataError(f"target {t!r} is not a column of the case data (columns: {valid_list(variables)})")
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if folds > len(data):
        raise CaseDataError(f"{folds} folds need at least {folds} cases; the data have {len(data)}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(data), dtype=int)
    fold_of[rng.permutation(len(data))] = np.arange(len(data)) % folds

    n = len(data)
    preds = {(t, m): np.full((n, len(net.states[t])), np.nan) for t in targets for m in MODELS}
    hidden = data.copy()
    for t in targets:
        hidden[t] = None
    expert_post = net.posterior_batch(hidden, targets, on_impossible="flag")
    for t in targets:
        preds[(t, "expert")] = expert_post.posteriors[t].to_numpy()
    notes = []
    fit_kwargs.setdefault("progress", False)
    for k in range(folds):
        train = data[fold_of != k].reset_index(drop=True)
        test = hidden[fold_of == k].reset_index(drop=True)
        fitted = fit(net, train, prior_strength=prior_strength, seed=seed, **fit_kwargs)
        post = fitted.network.posterior_batch(test, targets, on_impossible="flag")
        for t in targets:
            preds[(t, "fitted")][fold_of == k] = post.posteriors[t].to_numpy()
        if fitted.impossible:
            notes.append(f"fold {k + 1}: {len(fitted.impossible)} training case(s) impossible under the expert "
                         "network were not used for fitting")

    rows, predictions, truth, excluded = [], {}, {}, {}
    for t in targets:
        labels = pd.Categorical(data[t], categories=net.states[t]).codes
        usable = labels >= 0
        for m in MODELS:
            usable &= np.isfinite(preds[(t, m)]).all(axis=1)
        excluded[t] = int((~usable).sum())
        truth[t] = labels[usable].astype(int)
        for m in MODELS:
            p = preds[(t, m)][usable]
            predictions[(t, m)] = p
            rows.append({"target": t, "model": m, **score(p, truth[t], bins)})
    metrics = pd.DataFrame(rows, columns=["target", "model", "n", "top1", "top3", "log_loss", "brier", "ece"])
    return EvaluationResult(metrics=metrics, predictions=predictions, truth=truth,
                            states={t: list(net.states[t]) for t in targets}, excluded=excluded, folds=folds,
                            prior_strength=float(prior_strength), bins=bins, notes=notes)

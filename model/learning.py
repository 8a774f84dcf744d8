"""Learning from case data: expert CPTs as a Dirichlet prior, updated by cases (closed form or EM).

Each row of each conditional probability table (one parent configuration) gets a Dirichlet
prior whose mean is the expert row and whose strength ``K`` (the *equivalent sample size*) says
how many cases the expert row is worth: ``alpha = K * theta_expert``. The fitted row is the
posterior mean ``(alpha + n) / (K + sum(n))``, where ``n`` are the row's counts in the data.

* Complete data: the counts are counted, and the posterior mean is exact (closed form).
* Missing values or unobserved (latent) variables: EM. The E-step computes expected counts
  ``sum_cases P(v, parents(v) | case)`` for every family at once on a calibrated junction tree
  (:mod:`model.estep`), over the distinct rows of the data; the M-step is the posterior mean
  above. This is EM for the posterior mode of ``log P(data | theta) + sum alpha log theta``
  (the posterior mean under ``Dirichlet(alpha)`` is the mode under ``Dirichlet(alpha + 1)``),
  so that *objective* never decreases; with ``K = 0`` it is the log-likelihood itself.

    >>> from model import load_network
    >>> from model.cases import simulate
    >>> net = load_network()
    >>> result = net.fit(simulate(net, 300, seed=0), prior_strength=20, progress=False)
    >>> result.network.cpt("babinski").shape[1] >= 2
    True
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from .cases import CaseReport, encode, read_cases
from .errors import CaseDataError, did_you_mean
from .estep import FamilyMarginals
from .knowledge import Knowledge, Rule, parent_configurations

#: concentration of the random Dirichlet perturbation of the start used by restarts
RESTART_CONCENTRATION = 10.0
#: rows with a prior-data conflict p-value below this are flagged
CONFLICT_LEVEL = 0.01
#: rows informed by fewer (expected) cases than this are not checked for conflict
CONFLICT_MIN_CASES = 5.0


@dataclass
class FitResult:
    """The outcome of :func:`fit`.

    Attributes
    ----------
    network : Network
        The fitted network (its knowledge can be written with ``write_knowledge``).
    objective : list of float
        EM objective per iteration, ``log P(data | theta) + sum alpha log theta`` (never
        decreases); for the closed form, one value.
    log_likelihood : list of float
        ``log P(data | theta)`` per iteration.
    moved : DataFrame
        One row per CPT row: KL(fitted || expert) and the expected number of cases that informed
        it, sorted by KL (largest first).
    conflicts : DataFrame
        Prior-data conflict per CPT row: the posterior predictive p-value of the row's counts under
        the prior Dirichlet-multinomial; sorted by p-value (smallest first), ``flagged`` when below
        :data:`CONFLICT_LEVEL`.
    """

    network: object
    method: str
    objective: list[float]
    log_likelihood: list[float]
    n_iter: int
    converged: bool
    n_cases: int
    n_distinct: int
    impossible: list[str]
    prior_strength: float
    per_variable: dict[str, float]
    case_report: CaseReport | None
    moved: pd.DataFrame
    conflicts: pd.DataFrame
    restarts: list[float] = field(default_factory=list)

    def summary(self, top: int = 10) -> str:
        lines = [
            f"{self.method}: {self.n_cases} case(s) ({self.n_distinct} distinct), prior strength "
            f"{self.prior_strength:g}" + (f" (overrides: {self.per_variable})" if self.per_variable else ""),
            f"iterations: {self.n_iter}, converged: {self.converged}, final log-likelihood "
            f"{self.log_likelihood[-1]:.4f} ({self.log_likelihood[-1] / max(self.n_cases, 1):.4f} per case), "
            f"objective {self.objective[-1]:.4f}",
        ]
        if len(self.restarts) > 1:
            lines.append("restarts (final objective): " + ", ".join(f"{x:.3f}" for x in self.restarts))
        if self.impossible:
            lines.append(f"{len(self.impossible)} case(s) impossible under the starting network, not used: "
                         f"{self.impossible[:10]}")
        lines.append("")
        lines.append(f"rows that moved most from the expert values (KL fitted || expert, top {top}):")
        lines.append(self.moved.head(top).to_string(index=False) if len(self.moved) else "  (none)")
        flagged = self.conflicts[self.conflicts["flagged"]] if len(self.conflicts) else self.conflicts
        lines.append("")
        lines.append(f"prior-data conflicts (p < {CONFLICT_LEVEL}): {len(flagged)} row(s)")
        if len(flagged):
            lines.append(flagged.head(top).to_string(index=False))
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- public API

def fit(net, cases, prior_strength: float = 10.0, per_variable: Mapping[str, float] | None = None,
        max_iter: int = 200, tol: float = 1e-6, seed: int | None = None, restarts: int = 0,
        progress: bool = True, conflict_draws: int = 2000, accelerate: bool = True) -> FitResult:
    """Update ``net``'s tables from case data, with its current tables as a Dirichlet prior.

    Parameters
    ----------
    net : Network
    cases : DataFrame or path
        Case data (checked with :func:`model.cases.read_cases`).
    prior_strength : float
        Equivalent sample size ``K`` of every expert row (how many cases it is worth); 0 gives
        maximum likelihood (rows with no data then keep the expert values).
    per_variable : mapping variable -> float, optional
        Overrides of ``K`` for some variables.
    max_iter, tol : EM stops after ``max_iter`` iterations or when the objective gains less than
        ``tol`` per case.
    seed, restarts : ``restarts`` extra EM runs from random Dirichlet perturbations of the expert
        tables (seeded); the run with the best objective is kept.
    progress : show a tqdm progress bar on stderr.
    accelerate : over-relaxed EM steps, kept only when the objective does not decrease (default);
        ``False`` gives plain EM.

    Returns
    -------
    FitResult

    Examples
    --------
    >>> res = fit(net, "data/example_cohort.csv", prior_strength=20, progress=False)  # doctest: +SKIP
    >>> res.network.export("fitted.yaml")                                              # doctest: +SKIP
    """
    if not (isinstance(prior_strength, (int, float)) and math.isfinite(prior_strength) and prior_strength >= 0):
        raise ValueError(f"prior_strength must be a finite number >= 0, got {prior_strength!r}")
    per_variable = dict(per_variable or {})
    for v, k in per_variable.items():
        if v not in net.states:
            raise ValueError(f"per_variable names unknown variable {v!r}.{did_you_mean(v, net.states)}")
        if not (math.isfinite(float(k)) and float(k) >= 0):
            raise ValueError(f"per_variable[{v!r}] must be a finite number >= 0, got {k!r}")
    if max_iter < 1:
        raise ValueError("max_iter must be >= 1")
    data, report = read_cases(cases, net)
    codes = encode(data, net)
    n_cases = len(codes)
    distinct, inverse, weights = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    weights = weights.astype(np.float64)

    variables = net.variables
    cards = {v: len(net.states[v]) for v in variables}
    parents = {v: net.parents(v) for v in variables}
    expert = {v: np.asarray(t, dtype=np.float64) for v, t in net.knowledge.tables().items()}
    strength = {v: float(per_variable.get(v, prior_strength)) for v in variables}
    alpha = {v: strength[v] * expert[v] for v in variables}

    complete = bool((distinct >= 0).all())
    fm = FamilyMarginals(variables, cards, parents)
    # cases impossible under the expert network cannot be used (their E-step is undefined)
    counts0, ll0, logp0 = fm.expected_counts(expert, distinct, weights)  # impossible cases add nothing
    bad = ~np.isfinite(logp0)
    impossible: list[str] = []
    if bad.any():
        rows = np.flatnonzero(bad[inverse])
        ids = data["case_id"].to_numpy()[rows] if "case_id" in data.columns else rows + 1
        impossible = [str(x) for x in ids]
        if bad.all():
            raise CaseDataError("every case has probability zero under the network; nothing to learn from")
        distinct, weights = distinct[~bad], weights[~bad]

    if complete:
        counts = _complete_counts(distinct, weights, variables, cards, parents)
        tables = _m_step(counts, alpha, expert)
        ll = _complete_loglik(tables, distinct, weights, variables, parents)
        obj = ll + _log_prior(tables, alpha)
        best = (tables, [obj], [ll], 1, True, counts)
        restart_objs = [obj]
        method = "closed form (complete data)"
    else:
        rng = np.random.default_rng(seed)
        runs = []
        for r in range(restarts + 1):
            start = expert if r == 0 else _perturb(expert, rng)
            desc = "EM" if restarts == 0 else f"EM run {r + 1}/{restarts + 1}"
            runs.append(_em(fm, start, alpha, expert, distinct, weights, max_iter, tol, progress, desc,
                            accelerate=accelerate, first=(counts0, ll0) if r == 0 else None))
        best = max(runs, key=lambda run: run[1][-1])
        restart_objs = [run[1][-1] for run in runs]
        method = "EM (missing values / latent variables)"
    tables, objective, loglik, n_iter, converged, counts = best

    fitted = _fitted_network(net, tables, counts, strength, n_cases - len(impossible))
    moved = _moved(net, expert, tables, counts)
    conflicts = _conflicts(net, alpha, counts, np.random.default_rng(seed), conflict_draws)
    return FitResult(
        network=fitted, method=method, objective=objective, log_likelihood=loglik, n_iter=n_iter,
        converged=converged, n_cases=n_cases - len(impossible), n_distinct=len(distinct),
        impossible=impossible, prior_strength=float(prior_strength), per_variable=per_variable,
        case_report=report, moved=moved, conflicts=conflicts, restarts=restart_objs,
    )


# --------------------------------------------------------------------------- EM pieces

def _m_step(counts, alpha, previous):
    """Posterior mean per row; a row with no prior and no data keeps its previous values."""
    out = {}
    for v, n in counts.items():
        a = alpha[v] + n
        tot = a.sum(axis=0, keepdims=True)
        out[v] = np.where(tot > 0, a / np.where(tot > 0, tot, 1.0), previous[v])
    return out


def _log_prior(tables, alpha) -> float:
    """``sum alpha log theta`` (0 log 0 = 0)."""
    total = 0.0
    for v, t in tables.items():
        a = alpha[v]
        with np.errstate(divide="ignore"):
            total += float(np.sum(np.where(a > 0, a * np.log(np.where(a > 0, t, 1.0)), 0.0)))
    return total


def _em(fm, start, alpha, expert, distinct, weights, max_iter, tol, progress, desc, accelerate=True, first=None):
    """EM with adaptive over-relaxation (Salakhutdinov & Roweis, 2003), kept monotone.

    Each iteration proposes ``theta + eta * (EM(theta) - theta)`` (rows that would leave the
    simplex take the plain EM step); ``eta`` grows by 1.5 after every accepted proposal. A
    proposal whose objective is lower than the current one is rejected and the plain EM step
    (``eta = 1``, which never decreases the objective) is taken instead, so the recorded
    objective never decreases. ``accelerate=False`` gives plain EM.
    """
    from tqdm.auto import tqdm

    n = float(weights.sum())
    tables = {v: t.copy() for v, t in start.items()}
    counts, ll = first if first is not None else fm.expected_counts(tables, distinct, weights)[:2]
    obj = ll + _log_prior(tables, alpha)
    objective, loglik = [obj], [ll]
    converged = False
    eta = 1.0
    bar = tqdm(total=max_iter, desc=desc, disable=not progress, leave=False, unit="it")
    try:
        for _ in range(max_iter):
            em = _m_step(counts, alpha, tables)
            trial = _extrapolate(tables, em, eta) if eta > 1 else em
            c2, ll2, _ = fm.expected_counts(trial, distinct, weights)
            obj2 = ll2 + _log_prior(trial, alpha)
            if eta > 1 and not obj2 >= obj:
                eta = 1.0
                trial = em
                c2, ll2, _ = fm.expected_counts(trial, distinct, weights)
                obj2 = ll2 + _log_prior(trial, alpha)
            elif accelerate:
                eta = min(eta * 1.5, 8.0)
            gain = obj2 - obj
            tables, counts, obj = trial, c2, obj2
            objective.append(obj)
            loglik.append(ll2)
            bar.update(1)
            bar.set_postfix(loglik=f"{ll2 / n:.5f}/case", step=f"{eta:.2f}")
            if gain < tol * n:
                converged = True
                break
    finally:
        bar.close()
    return tables, objective, loglik, len(objective) - 1, converged, counts


def _extrapolate(old, em, eta):
    out = {}
    for v, t in old.items():
        x = t + eta * (em[v] - t)
        bad = (x < 0).any(axis=0, keepdims=True) | ((em[v] > 0) & (x <= 0)).any(axis=0, keepdims=True)
        x = np.where(bad, em[v], x)
        out[v] = x / x.sum(axis=0, keepdims=True)
    return out


def _perturb(expert, rng):
    out = {}
    for v, t in expert.items():
        flat = t.reshape(t.shape[0], -1)
        draw = rng.gamma(RESTART_CONCENTRATION * flat * flat.shape[0] + 0.5)
        draw = np.where(flat > 0, draw, 0.0)  # keep the expert's structural zeros
        out[v] = (draw / draw.sum(axis=0, keepdims=True)).reshape(t.shape)
    return out


def _complete_counts(codes, weights, variables, cards, parents):
    idx = {v: j for j, v in enumerate(variables)}
    counts = {}
    for v in variables:
        shape = (cards[v], *[cards[p] for p in parents[v]])
        flat = np.ravel_multi_index(tuple(codes[:, idx[x]].astype(np.intp) for x in (v, *parents[v])), shape)
        counts[v] = np.bincount(flat, weights=weights, minlength=math.prod(shape)).reshape(shape)
    return counts


def _complete_loglik(tables, codes, weights, variables, parents) -> float:
    idx = {v: j for j, v in enumerate(variables)}
    total = np.zeros(len(codes))
    with np.errstate(divide="ignore"):
        for v in variables:
            t = tables[v]
            total += np.log(t[tuple(codes[:, idx[x]].astype(np.intp) for x in (v, *parents[v]))])
    return float(np.dot(weights, total))


# --------------------------------------------------------------------------- output

def _config_label(config: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={s}" for k, s in config.items()) or "(prior)"


def _fitted_network(net, tables, counts, strength, n_cases):
    from .network import Network

    kb: Knowledge = net.knowledge
    rules = {}
    for v in net.variables:
        var = kb.variables[v]
        configs = parent_configurations(kb, v)
        sources = kb.row_sources(v)
        flat = tables[v].reshape(var.card, -1)
        used = counts[v].reshape(var.card, -1).sum(axis=0)
        rows = []
        for j, config in enumerate(configs):
            probs = _clean_row(flat[:, j])
            note = (f"posterior mean: the expert row ({'; '.join(sources[j])}) as a Dirichlet prior of strength "
                    f"{strength[v]:g}, updated from {n_cases} cases ({used[j]:.1f} expected in this configuration)")
            rows.append(Rule(when={p: (s,) for p, s in config.items()}, probabilities=dict(zip(var.states, probs)),
                             source=tuple(sources[j]), note=note))
        rules[v] = rows
    strengths = sorted(set(strength.values()))
    desc = (kb.description + "\n\n" if kb.description else "") + (
        f"Fitted by lesionbn from {n_cases} cases with the expert tables as a Dirichlet prior of strength "
        f"{', '.join(f'{k:g}' for k in strengths)}.")
    fitted = dataclasses.replace(kb, rules=rules, description=desc, path=None,
                                 version=(kb.version + "+fitted") if kb.version else "fitted")
    return Network(fitted)


def _clean_row(row: np.ndarray) -> list[float]:
    """Round to 12 decimals (as the writer does) and put the rounding error on the largest entry."""
    r = np.round(np.clip(row, 0.0, 1.0), 12)
    r[int(np.argmax(r))] += 1.0 - r.sum()
    return [float(x) for x in r]


def _moved(net, expert, tables, counts) -> pd.DataFrame:
    records = []
    for v in net.variables:
        e = expert[v].reshape(expert[v].shape[0], -1)
        f = tables[v].reshape(e.shape)
        n = counts[v].reshape(e.shape).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(f > 0, f * np.log(f / e), 0.0).sum(axis=0)
        states = net.states[v]
        for j, config in enumerate(parent_configurations(net.knowledge, v)):
            records.append({
                "variable": v, "parents": _config_label(config), "kl": float(kl[j]), "expected_cases": float(n[j]),
                "expert": _fmt(states, e[:, j]), "fitted": _fmt(states, f[:, j]),
            })
    df = pd.DataFrame(records, columns=["variable", "parents", "kl", "expected_cases", "expert", "fitted"])
    return df.sort_values("kl", ascending=False, kind="stable").reset_index(drop=True)


def _fmt(states, probs) -> str:
    return ", ".join(f"{s}:{p:.3f}" for s, p in zip(states, probs))


def _deviance(counts: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``2 sum n log(n / (m p))`` per count row (last axis); ``inf`` where ``p = 0 < n``."""
    m = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log(counts / (m * mean)), 0.0)
    return 2.0 * terms.sum(axis=-1)


def _round_counts(counts: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total``, proportional to ``counts`` (largest remainders)."""
    scaled = counts * (total / counts.sum())
    out = np.floor(scaled)
    rest = int(total - out.sum())
    if rest > 0:
        out[np.argsort(-(scaled - out), kind="stable")[:rest]] += 1
    return out


def _conflicts(net, alpha, counts, rng, draws: int) -> pd.DataFrame:
    """Prior predictive check of each row's counts.

    Under the prior, a row's counts follow a Dirichlet-multinomial with the row's alpha. The
    statistic is the deviance of the counts from the expert row; the p-value is the share of
    simulated count vectors (same total) with a deviance at least as large. Expected counts from
    EM are fractional; they are rounded to integers (largest remainders) first. Rows informed by
    fewer than :data:`CONFLICT_MIN_CASES` expected cases are not tested.
    """
    records = []
    for v in net.variables:
        a = alpha[v].reshape(alpha[v].shape[0], -1).T  # (rows, card)
        n = counts[v].reshape(counts[v].shape[0], -1).T
        m = n.sum(axis=1)
        mi = np.round(m).astype(np.int64)
        configs = parent_configurations(net.knowledge, v)
        for j in range(a.shape[0]):
            if m[j] < CONFLICT_MIN_CASES or a[j].sum() <= 0:
                continue
            mean = a[j] / a[j].sum()
            t_obs = _deviance(_round_counts(n[j], mi[j]), mean)
            g = rng.gamma(np.where(a[j] > 0, a[j], 1.0), size=(draws, a.shape[1])) * (a[j] > 0)
            p = g / g.sum(axis=1, keepdims=True)
            sims = rng.multinomial(mi[j], p)
            t_sim = _deviance(sims.astype(float), mean)
            pval = (1 + np.sum(t_sim >= t_obs - 1e-9)) / (draws + 1)
            records.append({
                "variable": v, "parents": _config_label(configs[j]), "p_value": float(pval),
                "expected_cases": float(m[j]), "expert": _fmt(net.states[v], mean),
                "observed": _fmt(net.states[v], n[j] / m[j]),
            })
    df = pd.DataFrame(records, columns=["variable", "parents", "p_value", "expected_cases", "expert", "observed"])
    df["flagged"] = df["p_value"] < CONFLICT_LEVEL
    return df.sort_values(["p_value", "expected_cases"], ascending=[True, False], kind="stable").reset_index(drop=True)

"""Uncertainty: credible intervals on posteriors (and on test rankings) from CPT uncertainty.

Each CPT row is treated as uncertain: ``row ~ Dirichlet(prior_strength * row + counts)``, where
``prior_strength`` is how many cases the row is worth (its equivalent sample size) and
``counts`` are optional case counts (after fitting). Sampling whole networks from these
Dirichlets and recomputing the exact posterior for each sample gives a Monte Carlo picture of
how much the posterior moves with the numbers it was built from::

    >>> from model import load_network
    >>> net = load_network()
    >>> df = posterior_intervals(net, {"babinski": "present"}, "lesion_type", n_samples=100, seed=0)
    >>> list(df.columns)                                   # doctest: +NORMALIZE_WHITESPACE
    ['target', 'state', 'posterior', 'mean', 'sd', 'low', 'high', 'p_top']

Entries that are exactly 0 stay 0 (structural zeros). Each variable draws from its own seeded
stream (``numpy.random.default_rng([seed, crc32(variable name)])``), so a variable's samples do
not depend on which other variables a query needs, nor on the order of variables in the file: results are identical whether cases are
processed all at once or in chunks on a cluster. Only the ancestors of the evidence and the
targets are sampled (the other tables cannot change the answer). Every sample builds a fresh
compiled engine from its tables (a few milliseconds).
"""
from __future__ import annotations

import zlib
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import EvidenceError, ImpossibleEvidenceError
from .evidence import Evidence, check_variable, to_likelihoods
from .sensitivity import _ancestors, engine_with_tables, network_tables

__all__ = [
    "DEFAULT_PRIOR_STRENGTH",
    "dirichlet_concentrations",
    "sample_tables",
    "posterior_samples",
    "posterior_intervals",
    "recommendation_intervals",
    "interval_plot",
]

#: default equivalent sample size of an expert CPT row
DEFAULT_PRIOR_STRENGTH = 20.0


# --------------------------------------------------------------------------- Dirichlet
def _fit_counts(net, result) -> dict[str, np.ndarray]:
    """Concentrations implied by a :class:`model.learning.FitResult` (posterior-mean tables and
    the expected number of cases behind each row)."""
    fitted = result.network
    moved = result.moved
    per_var = dict(getattr(result, "per_variable", {}) or {})
    strength0 = float(result.prior_strength)
    tables = network_tables(fitted)
    n_cases = {(r.variable, r.parents): float(r.expected_cases) for r in moved.itertuples()}
    out = {}
    import itertools

    for v in net.variables:
        t = tables[v].reshape(len(net.states[v]), -1)
        parents = net.parents(v)
        labels = [", ".join(f"{p}={s}" for p, s in zip(parents, combo)) or "(prior)"
                  for combo in itertools.product(*(net.states[p] for p in parents))]
        total = np.array([per_var.get(v, strength0) + n_cases.get((v, lab), 0.0) for lab in labels])
        out[v] = (t * total[None, :]).reshape(tables[v].shape)
    return out


def _is_fit(counts) -> bool:
    return counts is not None and hasattr(counts, "network") and hasattr(counts, "moved")


def dirichlet_concentrations(net, prior_strength: float = DEFAULT_PRIOR_STRENGTH,
                             counts: Mapping[str, np.ndarray] | Any | None = None) -> dict[str, np.ndarray]:
    """Dirichlet parameters of every CPT row: ``prior_strength * table + counts``.

    ``counts`` is a mapping variable -> array shaped like the table (``(card, *parent cards)``),
    or a fitted result of :func:`model.learning.fit` (then its fitted tables and the expected
    cases behind each row are used, and ``prior_strength`` is the one used in fitting).
    """
    if _is_fit(counts):
        return _fit_counts(net, counts)
    if not np.isfinite(prior_strength) or prior_strength <= 0:
        raise ValueError(f"prior_strength must be a positive number (cases a CPT row is worth), got {prior_strength!r}")
    tables = network_tables(net)
    out = {}
    for v, t in tables.items():
        alpha = prior_strength * t
        if counts is not None and v in counts:
            c = np.asarray(counts[v], dtype=np.float64)
            if c.shape != t.shape:
                raise ValueError(f"counts of {v!r} have shape {c.shape}, expected {t.shape} (states x parent configurations)")
            if np.any(c < 0) or not np.all(np.isfinite(c)):
                raise ValueError(f"counts of {v!r} must be finite and non-negative")
            alpha = alpha + c
        out[v] = alpha
    if counts is not None:
        unknown = [v for v in counts if v not in tables]
        if unknown:
            raise EvidenceError(f"counts name unknown variable(s) {unknown}")
    return out


def _draw(alpha: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of a table whose columns are Dirichlet(alpha column); zeros stay zero."""
    card = alpha.shape[0]
    a = alpha.reshape(card, -1)
    pos = a > 0
    g = rng.standard_gamma(np.where(pos, a, 1.0), size=(n, *a.shape))
    g = np.where(pos, g, 0.0)
    tot = g.sum(axis=1, keepdims=True)
    mean = a / a.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(tot > 0, g / tot, mean[None])  # all-underflow column: fall back to the mean
    return out.reshape((n, *alpha.shape))


def _stream(seed: int, variable: str) -> np.random.Generator:
    """The random stream of one variable: depends on the seed and the variable's name only."""
    return np.random.default_rng([seed, zlib.crc32(variable.encode("utf-8"))])


def sample_tables(net, n_samples: int, prior_strength: float = DEFAULT_PRIOR_STRENGTH, counts=None,
                  seed: int | None = 0, variables: Sequence[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Yield ``n_samples`` full table dicts with the rows of ``variables`` (default: all) drawn from
    their Dirichlet; the other tables are the network's."""
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    alpha = dirichlet_concentrations(net, prior_strength, counts)
    base = dict(network_tables(net))
    variables = list(net.variables if variables is None else variables)
    seed = 0 if seed is None else int(seed)
    draws = {v: _draw(alpha[v], int(n_samples), _stream(seed, v)) for v in variables}
    for s in range(int(n_samples)):
        tabs = dict(base)
        for v in variables:
            tabs[v] = draws[v][s]
        yield tabs


# --------------------------------------------------------------------------- posteriors
def _targets(net, targets) -> list[str]:
    if targets is None:
        return list(net.latent)
    if isinstance(targets, str):
        targets = [targets]
    return [check_variable(t, net.states) for t in targets]


def _stack(net, evidence) -> tuple[dict[str, np.ndarray], int, pd.Index | None]:
    """Likelihoods for one evidence mapping (N=1, no case index) or a DataFrame / list of cases."""
    from .evidence import cases_to_likelihoods

    if isinstance(evidence, pd.DataFrame):
        index = pd.Index(evidence["case_id"], name="case") if "case_id" in evidence.columns else \
            pd.Index(evidence.index, name="case")
        return cases_to_likelihoods(evidence, net.states), len(evidence), index
    if isinstance(evidence, (list, tuple)):
        n = len(evidence)
        lik: dict[str, np.ndarray] = {}
        for i, e in enumerate(evidence):
            for v, vec in to_likelihoods(e, net.states).items():
                if v not in lik:
                    lik[v] = np.ones((n, len(net.states[v])))
                lik[v][i] = vec
        return lik, n, pd.RangeIndex(n, name="case")
    return to_likelihoods(evidence, net.states), 1, None


def posterior_samples(net, evidence: Evidence | pd.DataFrame | None = None, targets=None,
                      prior_strength: float = DEFAULT_PRIOR_STRENGTH, n_samples: int = 200, seed: int | None = 0,
                      counts=None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Posterior of each target under ``n_samples`` sampled networks.

    Returns ``(point, samples)``: ``point[t]`` is ``(N, card)`` under the network's own tables,
    ``samples[t]`` is ``(n_samples, N, card)`` (NaN where a case is impossible).
    """
    if _is_fit(counts):
        net = counts.network  # the point posterior is the fitted network's
    targets = _targets(net, targets)
    lik, n, _ = _stack(net, evidence)
    point = net.engine.query(lik, targets, n_cases=n)
    relevant = _ancestors(net, list(lik) + targets)
    out = {t: np.empty((n_samples, n, len(net.states[t]))) for t in targets}
    for s, tabs in enumerate(sample_tables(net, n_samples, prior_strength, counts, seed, relevant)):
        res = engine_with_tables(net, tabs).query(lik, targets, n_cases=n)
        for t in targets:
            out[t][s] = res.marginals[t]
    return {t: np.asarray(point.marginals[t]) for t in targets}, out


def posterior_intervals(net, evidence: Evidence | pd.DataFrame | None = None, targets=None,
                        prior_strength: float = DEFAULT_PRIOR_STRENGTH, n_samples: int = 200,
                        level: float = 0.9, seed: int | None = 0, counts=None) -> pd.DataFrame:
    """Credible intervals of the posterior of each target state under CPT uncertainty.

    Parameters
    ----------
    net : Network
    evidence : mapping, DataFrame or list of mappings
        One case (variable -> state or likelihood) or many (a cases table as for
        ``net.posterior_batch``, or a list of evidence mappings): then a ``case`` column is added
        and all cases share the same sampled networks (one batched query per sample).
    targets : str or list, optional
        Default: the latent variables.
    prior_strength : float
        Equivalent sample size of each CPT row (larger = more certain numbers, narrower intervals).
    n_samples : int
        Sampled networks.
    level : float
        Central credible level (0.9 gives the 5% and 95% quantiles).
    seed : int
        Seed of the sampling; the same seed gives the same numbers.
    counts : mapping or FitResult, optional
        Case counts added to the Dirichlet parameters (see :func:`dirichlet_concentrations`). With
        a ``FitResult`` the fitted network (``result.network``) gives the point posterior and the
        posterior Dirichlet of its rows is sampled (``prior_strength`` is then the fit's).

    Returns
    -------
    DataFrame with columns ``[case,] target, state, posterior`` (under the network's own tables),
    ``mean, sd, low, high`` (over samples) and ``p_top`` (share of samples in which the state is
    the most probable one). ``df.attrs`` records the settings.

    Examples
    --------
    >>> df = posterior_intervals(net, {"dysp": "yes"}, "lung", prior_strength=20, n_samples=200, seed=1)  # doctest: +SKIP
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    targets = _targets(net, targets)
    lik, n, index = _stack(net, evidence)
    point, samples = posterior_samples(net, evidence, targets, prior_strength, n_samples, seed, counts)
    if index is None and not np.isfinite(point[targets[0]][0]).all():
        raise ImpossibleEvidenceError("the evidence has probability zero under the network; no posterior exists")
    q = [(1 - level) / 2, (1 + level) / 2]
    frames = []
    for t in targets:
        smp = samples[t]  # (S, N, card)
        card = smp.shape[2]
        with np.errstate(invalid="ignore"):
            lo, hi = np.nanquantile(smp, q, axis=0) if np.isfinite(smp).any() else (np.full((n, card), np.nan),) * 2
            mean = np.nanmean(smp, axis=0) if np.isfinite(smp).any() else np.full((n, card), np.nan)
            sd = np.nanstd(smp, axis=0) if np.isfinite(smp).any() else np.full((n, card), np.nan)
        top = np.nan_to_num(smp, nan=-1.0).argmax(axis=2)  # (S, N)
        p_top = np.stack([(top == k).mean(axis=0) for k in range(card)], axis=1)
        df = pd.DataFrame({
            "target": t,
            "state": np.tile(np.array(net.states[t], dtype=object), n),
            "posterior": point[t].ravel(),
            "mean": mean.ravel(), "sd": sd.ravel(), "low": lo.ravel(), "high": hi.ravel(),
            "p_top": p_top.ravel(),
        })
        if index is not None:
            df.insert(0, "case", np.repeat(index.to_numpy(), card))
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    if index is not None:
        out = out.sort_values(["case", "target"], kind="mergesort").reset_index(drop=True) \
            if len(targets) > 1 else out
    out.attrs.update(prior_strength=prior_strength, n_samples=n_samples, level=level, seed=seed,
                     counts=counts is not None)
    return out


# --------------------------------------------------------------------------- test rankings
def _with_engine(net, engine):
    """A shallow copy of ``net`` whose (cached) engine is ``engine``: every Network method and
    every function of model/ that queries ``net.engine`` then sees the sampled tables."""
    import copy

    twin = copy.copy(net)
    twin.__dict__["engine"] = engine
    return twin


def recommendation_intervals(net, evidence: Evidence | None = None, target: str | None = None,
                             prior_strength: float = DEFAULT_PRIOR_STRENGTH, n_samples: int = 100,
                             level: float = 0.9, seed: int | None = 0, counts=None, **recommend_options) -> pd.DataFrame:
    """How stable the ranking of recommended tests is under CPT uncertainty.

    Runs :func:`model.recommend.recommend` on the network and on ``n_samples`` sampled networks.
    One row per test (best first under the network's own numbers): ``rank`` and ``gain``
    (point), ``mean_rank``, ``rank_low``, ``rank_high``, ``p_first`` (share of samples in which
    it ranks first), ``gain_mean``, ``gain_low``, ``gain_high``.
    """
    if not hasattr(net, "recommend"):  # pragma: no cover - before model/recommend.py landed
        raise NotImplementedError("test recommendations (net.recommend, model/recommend.py) are not available "
                                  "in this version of lesionbn")

    def recommend(network, evidence, **kw):
        return network.recommend(evidence, **kw)

    if _is_fit(counts):
        net = counts.network
    opts = dict(recommend_options)
    opts.setdefault("k", None)
    opts["preview"] = False
    base = recommend(net, evidence, target=target, **opts)
    tests = list(base.index)
    lik = to_likelihoods(evidence, net.states)
    tgt = base.attrs.get("target", target)
    tvars = {v for t in net.tests for v in t.variables}
    relevant = _ancestors(net, list(lik) + list(tvars) + ([tgt] if tgt else []))
    ranks = np.full((n_samples, len(tests)), np.nan)
    gains = np.full((n_samples, len(tests)), np.nan)
    pos = {t: i for i, t in enumerate(tests)}
    for s, tabs in enumerate(sample_tables(net, n_samples, prior_strength, counts, seed, relevant)):
        rec = recommend(_with_engine(net, engine_with_tables(net, tabs)), evidence, target=tgt, **opts)
        for r, name in enumerate(rec.index):
            if name in pos:
                ranks[s, pos[name]] = r + 1
                gains[s, pos[name]] = rec.loc[name, "gain"]
    q = [(1 - level) / 2, (1 + level) / 2]
    out = pd.DataFrame({
        "test": tests,
        "rank": np.arange(1, len(tests) + 1),
        "gain": base["gain"].to_numpy(dtype=float),
        "mean_rank": np.nanmean(ranks, axis=0),
        "rank_low": np.nanquantile(ranks, q[0], axis=0),
        "rank_high": np.nanquantile(ranks, q[1], axis=0),
        "p_first": (ranks == 1).mean(axis=0),
        "gain_mean": np.nanmean(gains, axis=0),
        "gain_low": np.nanquantile(gains, q[0], axis=0),
        "gain_high": np.nanquantile(gains, q[1], axis=0),
    })
    if "label" in base.columns:
        out.insert(1, "label", base["label"].to_numpy())
    out.attrs.update(target=tgt, prior_strength=prior_strength, n_samples=n_samples, level=level, seed=seed)
    return out


# --------------------------------------------------------------------------- plot
def interval_plot(intervals: pd.DataFrame, target: str | None = None, ax=None):
    """Bars of the point posterior with the credible interval as error bars (one target, one case)."""
    import matplotlib.pyplot as plt

    df = intervals
    if "case" in df.columns:
        df = df[df["case"] == df["case"].iloc[0]]
    target = target or df["target"].iloc[0]
    df = df[df["target"] == target]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.4 * len(df) + 1.5))
    y = np.arange(len(df))[::-1]
    p = df["posterior"].to_numpy()
    err = np.vstack([np.clip(p - df["low"].to_numpy(), 0, None), np.clip(df["high"].to_numpy() - p, 0, None)])
    ax.barh(y, p, xerr=err, color="#4C72B0", alpha=0.8, ecolor="k", capsize=3)
    ax.set_yticks(y)
    ax.set_yticklabels(df["state"], fontsize=8)
    ax.set_xlim(0, 1)
    lvl = intervals.attrs.get("level", "")
    ax.set_xlabel(f"P({target} | e)" + (f" with {int(round(100 * lvl))}% credible interval" if lvl else ""))
    ax.figure.tight_layout()
    return ax

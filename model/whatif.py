"""What if: the posterior had a finding been missing or different, or had a whole group of CPT
rows been more or less extreme.

* :func:`evidence_sensitivity`: for each observed finding, the posterior of a target if it had
  not been observed and if it had taken each other state, all in one batched engine query; which
  single changed finding would flip the leading state.
* :func:`odds_scaling`: multiply the odds of one state of a variable in several CPT rows at once
  (e.g. every row of a helper variable for the first days after onset) and recompute exactly.

Both are re-exported by :mod:`model.sensitivity`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import EvidenceError, ImpossibleEvidenceError, did_you_mean
from .evidence import Evidence, check_variable, state_index, to_likelihoods
from .sensitivity import _configs, _covaried, _target, engine_with_tables, network_tables

__all__ = ["evidence_sensitivity", "odds_scaling"]


def odds_scaling(net, variable: str, value: str, factors: Sequence[float], evidence: Evidence | None = None,
                 targets: str | Sequence[str] | None = None,
                 where: Mapping[str, str | Sequence[str]] | None = None) -> pd.DataFrame:
    """Several rows at once: multiply the odds of ``P(variable=value | u)`` by each factor in every
    row ``u`` matching ``where`` (parent -> state or list of states; default every row), the other
    entries of each row co-varied proportionally, and recompute the posteriors exactly.

    Rows where the entry is 0 or 1 keep it (their odds cannot scale). Returns a long DataFrame:
    factor, target, state, posterior (``factor == 1`` is the network as it is).

    >>> odds_scaling(net, "lung", "yes", [0.5, 1, 2], {"dysp": "yes"}, "lung")   # doctest: +SKIP
    """
    check_variable(variable, net.states)
    x = state_index(variable, value, net.states)
    if isinstance(targets, str):
        targets = [targets]
    targets = [check_variable(t, net.states) for t in (targets or net.latent)]
    parents = net.parents(variable)
    where = dict(where or {})
    for p_, allowed in where.items():
        if p_ not in parents:
            raise EvidenceError(f"where names {p_!r}, which is not a parent of {variable!r} "
                                f"(parents: {', '.join(parents) or 'none'}).{did_you_mean(p_, parents)}")
        for a in ([allowed] if isinstance(allowed, str) else allowed):
            state_index(p_, a, net.states)
    allowed_sets = {p_: {a} if isinstance(a, str) else set(a) for p_, a in where.items()}
    cols = [j for j, cfg in enumerate(_configs(net, variable))
            if all(cfg[parents.index(p_)] in ok for p_, ok in allowed_sets.items())]
    if not cols:
        raise EvidenceError(f"no parent configuration of {variable!r} matches where={where}")
    lik = to_likelihoods(evidence, net.states)
    tables = network_tables(net)
    base = tables[variable].reshape(len(net.states[variable]), -1)
    rows = []
    for f in factors:
        f = float(f)
        if not np.isfinite(f) or f <= 0:
            raise ValueError(f"odds factors must be positive numbers, got {f!r}")
        t2 = base.copy()
        for j in cols:
            t0 = base[x, j]
            if 0 < t0 < 1:
                o = f * t0 / (1 - t0)
                t2[:, j] = _covaried(base[:, j], x, o / (1 + o))
        tabs = dict(tables)
        tabs[variable] = t2.reshape(tables[variable].shape)
        res = engine_with_tables(net, tabs).query(lik, targets, n_cases=1)
        for t in targets:
            for s_, p_ in zip(net.states[t], np.asarray(res.marginals[t])[0]):
                rows.append((f, t, s_, float(p_)))
    out = pd.DataFrame(rows, columns=["factor", "target", "state", "posterior"])
    out.attrs.update(variable=variable, value=net.states[variable][x], where=where, rows=len(cols))
    return out


# --------------------------------------------------------------------------- evidence
def evidence_sensitivity(net, evidence: Evidence, target: str | None = None) -> pd.DataFrame:
    """What each finding contributes: the posterior of ``target`` had it not been observed, and had
    it taken each other state (one batched engine query).

    One row per scenario: finding, observed, change ("as observed", "not observed" or
    "set to <state>"), new_state, possible, leader, p_leader, flips (the leader differs from the
    one under the actual evidence), then one column per state of ``target``. Scenarios whose
    evidence is impossible have ``possible=False`` and NaN probabilities.
    """
    target = _target(net, target)
    lik = to_likelihoods(evidence, net.states)
    if not lik:
        raise EvidenceError("evidence sensitivity needs at least one observed finding")
    scen = [("", "", "as observed", "")]
    for f, vec in lik.items():
        hard = np.count_nonzero(vec) == 1
        observed = net.states[f][int(np.argmax(vec))] if hard else "soft"
        scen.append((f, observed, "not observed", ""))
        for k, s in enumerate(net.states[f]):
            if hard and vec[k] > 0:
                continue
            scen.append((f, observed, f"set to {s}", s))
    n = len(scen)
    L = {v: np.tile(vec, (n, 1)) for v, vec in lik.items()}
    for i, (f, _, kind, s) in enumerate(scen):
        if kind == "not observed":
            L[f][i] = 1.0
        elif kind.startswith("set to"):
            L[f][i] = 0.0
            L[f][i, net.states[f].index(s)] = 1.0
    res = net.engine.query(L, [target], n_cases=n)
    marg = np.asarray(res.marginals[target])
    possible = np.asarray(res.possible, dtype=bool)
    if not possible[0]:
        raise ImpossibleEvidenceError("the evidence has probability zero under the network; no posterior exists")
    names = np.array(net.states[target], dtype=object)
    lead = np.where(possible, names[np.nanargmax(np.nan_to_num(marg, nan=-1.0), axis=1)], "")
    out = pd.DataFrame(scen, columns=["finding", "observed", "change", "new_state"])
    out["possible"] = possible
    out["leader"] = lead
    out["p_leader"] = np.where(possible, np.nanmax(np.nan_to_num(marg, nan=-1.0), axis=1), np.nan)
    out["flips"] = possible & (out["leader"] != lead[0])
    for k, s in enumerate(net.states[target]):
        out[s] = marg[:, k]
    out.attrs.update(target=target, leader=str(lead[0]))
    return out

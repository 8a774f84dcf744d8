"""Why does the network believe what it believes? Weights of evidence, conflict, and MAP.

* :func:`explain` -- for a hypothesis ``h`` of a target (default: the leading state) against
  its rival (default: every other state, "not h"), the *weight of evidence* of each observed
  finding ``f`` in the presence of the others::

      WoE(f) = log [ P(f | h, e\\f) / P(f | rival, e\\f) ]
             = log O(h : rival | e) - log O(h : rival | e\\f)      (natural log)

  positive = speaks *for* h; with the posterior of ``h`` had ``f`` not been observed. And the
  data-conflict measure ``conf(e) = log( prod_i P(e_i) / P(e) )``: above 0, the findings are
  less probable together than apart (they conflict under the model); the findings that drive it
  are those whose removal lowers ``conf`` most.
* :func:`most_probable_explanation` -- the ``n`` most probable joint configurations of a set of
  variables (default: the latent ones) given the evidence, exactly, with every other variable
  summed out (a marginal MAP): best-first search over partial configurations, whose
  probabilities ``P(m_1..m_j, e)`` bound every completion, expanded in batches.

All numbers come from batched exact engine queries (one query for :func:`explain`).

    >>> from model import load_network
    >>> net = load_network()
    >>> ex = explain(net, {"babinski": "present", "reflexes_legs": "hyper"}, target="lesion_type")
    >>> ex.hypothesis
    'UMN'
    >>> list(ex.findings.columns[:3])
    ['state', 'woe', 'likelihood_ratio']
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import EvidenceError, ImpossibleEvidenceError
from .evidence import check_variable, state_index, to_likelihoods
from .recommend import default_target

__all__ = ["explain", "Explanation", "most_probable_explanation"]

#: |WoE| below this (nats) is reported as neutral
NEUTRAL = 1e-9
#: conf(e) must exceed this (nats) to be flagged: independent findings give 0 up to rounding
CONFLICT_TOL = 1e-9


@dataclass
class Explanation:
    """The result of :func:`explain` (``to_dict()`` gives plain JSON types)."""

    target: str
    hypothesis: str
    rival: tuple[str, ...]
    posterior: pd.Series
    log_odds: float
    findings: pd.DataFrame
    conflict: float
    conflicting: bool
    conflict_message: str
    conflict_drivers: list[str] = field(default_factory=list)

    @property
    def rival_label(self) -> str:
        others = [s for s in self.posterior.index if s != self.hypothesis]
        if sorted(self.rival) == sorted(others):
            return f"not {self.hypothesis}"
        return " or ".join(self.rival)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "hypothesis": self.hypothesis,
            "rival": list(self.rival),
            "posterior": {str(k): float(v) for k, v in self.posterior.items()},
            "log_odds": self.log_odds,
            "findings": self.findings.reset_index().to_dict(orient="records"),
            "conflict": self.conflict,
            "conflicting": self.conflicting,
            "conflict_message": self.conflict_message,
            "conflict_drivers": list(self.conflict_drivers),
        }

    def __str__(self) -> str:
        p = float(self.posterior[self.hypothesis])
        lines = [f"{self.target} = {self.hypothesis} (P = {p:.3f}) versus {self.rival_label}",
                 "weight of evidence (natural log of the likelihood ratio, given the other findings):"]
        if self.findings.empty:
            lines.append("  (no findings)")
        for f, r in self.findings.iterrows():
            lines.append(f"  {r['direction']:>7}  {r['woe']:+7.3f}  {f}={r['state']}  "
                         f"(P({self.hypothesis}) without it: {r['posterior_without']:.3f})")
        lines.append(self.conflict_message)
        return "\n".join(lines)


def _log(x):
    with np.errstate(divide="ignore"):
        return np.log(x)


def _state_label(vec: np.ndarray, states: Sequence[str]) -> str:
    nz = np.flatnonzero(vec)
    if len(nz) == 1:
        return states[int(nz[0])]
    w = vec / vec.max()
    return ",".join(f"{states[i]}:{w[i]:.3g}" for i in nz)


def explain(
    net,
    evidence: Mapping[str, Any] | None,
    target: str | None = None,
    hypothesis: str | None = None,
    rival: str | Sequence[str] | None = None,
) -> Explanation:
    """Weight of evidence of every observed finding for ``hypothesis`` versus ``rival``, and the
    conflict measure of the evidence.

    Parameters
    ----------
    net : Network
    evidence : mapping
        The findings (state names or soft likelihoods).
    target : str, optional
        Default :func:`model.recommend.default_target`.
    hypothesis : str, optional
        A state of ``target``; default the most probable one given the evidence.
    rival : str or list of str, optional
        The state(s) ``hypothesis`` is compared with; default all the others ("not h").

    Returns
    -------
    Explanation, whose ``findings`` frame (index: finding) holds ``state, woe,
    likelihood_ratio, direction (for/against/neutral/undefined), posterior_without, conflict_change``,
    sorted by |woe| (largest first).

    Examples
    --------
    >>> explain(net, {"babinski": "present"}, target="lesion_type").findings   # doctest: +SKIP
    """
    target = default_target(net) if target is None else check_variable(target, net.states)
    evidence = dict(evidence or {})
    lik = to_likelihoods(evidence, net.states)
    tstates = list(net.states[target])
    finds = [v for v in lik if v != target]
    n = len(finds)
    # rows: 0 = e; 1..n = e without f_i; n+1..2n = f_i alone
    rows = 1 + 2 * n
    arrays = {}
    for i, v in enumerate(finds):
        a = np.ones((rows, len(net.states[v])))
        a[0] = lik[v]
        a[1:1 + n] = lik[v]
        a[1 + i] = 1.0
        a[1 + n + i] = lik[v]
        arrays[v] = a
    if target in lik:
        arrays[target] = np.broadcast_to(lik[target], (rows, len(tstates)))
    res = net.engine.query(arrays, [target], n_cases=rows)
    if not bool(res.possible[0]):
        from .network import _impossible_message

        raise ImpossibleEvidenceError(_impossible_message(evidence))
    q = np.asarray(res.marginals[target], dtype=float)
    le = np.asarray(res.log_evidence, dtype=float)

    h = int(np.argmax(q[0])) if hypothesis is None else state_index(target, hypothesis, net.states)
    if rival is None:
        r_idx = [i for i in range(len(tstates)) if i != h]
    else:
        names = [rival] if isinstance(rival, str) else list(rival)
        r_idx = sorted({state_index(target, s, net.states) for s in names})
        if h in r_idx:
            raise EvidenceError(f"the rival must not contain the hypothesis {tstates[h]!r}")
        if not r_idx:
            raise EvidenceError("the rival must name at least one state")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds = _log(q[:, h]) - _log(q[:, r_idx].sum(axis=1))
        woe = log_odds[0] - log_odds[1:1 + n]
    woe = np.where(np.isnan(woe), np.nan, woe)
    # conflict: sum_i log P(e_i) - log P(e), and leave-one-out
    single = le[1 + n:1 + 2 * n]
    conf = float(single.sum() - le[0]) if n else 0.0
    conf_without = np.array([single.sum() - single[i] - le[1 + i] for i in range(n)]) if n else np.zeros(0)
    change = conf - conf_without
    direction = np.where(np.isnan(woe), "undefined",   # h or its rival impossible with and without f
                         np.where(np.abs(woe) <= NEUTRAL, "neutral", np.where(woe > 0, "for", "against")))
    frame = pd.DataFrame(
        {
            "state": [_state_label(lik[v], net.states[v]) for v in finds],
            "woe": woe,
            "likelihood_ratio": np.exp(woe),
            "direction": direction,
            "posterior_without": q[1:1 + n, h],
            "conflict_change": change,
        },
        index=pd.Index(finds, name="finding"),
    )
    if n:
        key = np.nan_to_num(np.abs(woe), nan=-1.0, posinf=np.finfo(float).max)
        frame = frame.iloc[np.argsort(-key, kind="stable")]
    flagged = n >= 2 and conf > CONFLICT_TOL
    drivers = [f for f, c in sorted(zip(finds, change), key=lambda t: -t[1]) if c > 0] if flagged else []
    if n < 2:
        message = "conflict: needs at least two findings (conf = 0)."
    elif flagged:
        shown = ", ".join(f"{f} (removing it lowers conf by {change[finds.index(f)]:.2f})" for f in drivers[:3])
        message = (f"conflict: conf = {conf:.2f} > 0 -- the findings are less probable together than "
                   "apart under the model: an unusual combination (a rare presentation, two processes, "
                   "or a finding recorded wrongly)." + (f" Driven most by: {shown}." if shown else ""))
    else:
        message = f"conflict: conf = {conf:.2f} <= 0 -- the findings fit together (no conflict)."
    return Explanation(
        target=target,
        hypothesis=tstates[h],
        rival=tuple(tstates[i] for i in r_idx),
        posterior=pd.Series(q[0], index=tstates, name=target),
        log_odds=float(log_odds[0]),
        findings=frame,
        conflict=conf,
        conflicting=bool(flagged),
        conflict_message=message,
        conflict_drivers=drivers,
    )


# --------------------------------------------------------------------------- MAP

def most_probable_explanation(
    net,
    evidence: Mapping[str, Any] | None = None,
    variables: Sequence[str] | None = None,
    n: int = 5,
    batch: int = 256,
    max_evaluations: int = 2_000_000,
) -> pd.DataFrame:
    """The ``n`` most probable joint configurations of ``variables`` given the evidence (exact).

    Every variable not in ``variables`` is summed out (marginal MAP; with all unobserved
    variables it is the MPE). Best-first search: a partial configuration's ``P(m_1..m_j, e)``
    bounds all its completions, so a complete configuration popped first is the best left.
    Up to ``batch`` partial configurations are expanded per engine query.

    Returns a DataFrame, best first: one column per variable, ``probability`` = P(m | e) and
    ``log_joint`` = log P(m, e). Raises :class:`EvidenceError` when more than
    ``max_evaluations`` partial configurations would have to be scored.

    >>> most_probable_explanation(net, {"babinski": "present"}, n=3)   # doctest: +SKIP
    """
    if variables is None:
        variables = net.latent
    elif isinstance(variables, str):
        variables = [variables]
    variables = list(dict.fromkeys(check_variable(v, net.states) for v in variables))
    if not variables:
        raise EvidenceError("most_probable_explanation needs at least one variable")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise EvidenceError(f"n must be a positive integer, got {n!r}")
    evidence = dict(evidence or {})
    base = to_likelihoods(evidence, net.states)
    le0 = float(net.engine.query(base, [], n_cases=1).log_evidence[0]) if base else 0.0
    if not np.isfinite(le0):
        from .network import _impossible_message

        raise ImpossibleEvidenceError(_impossible_message(evidence))
    # states allowed per variable: those with non-zero likelihood
    allowed = []
    for v in variables:
        L = base.get(v)
        allowed.append(np.arange(len(net.states[v])) if L is None else np.flatnonzero(L))
    d = len(variables)
    heap: list = [(-le0, 0, ())]
    counter, evaluated, found = 1, 0, []
    while heap and len(found) < n:
        if len(heap[0][2]) == d:
            neg, _, conf = heapq.heappop(heap)
            found.append((conf, -neg))
            continue
        expand = []
        while heap and len(expand) < batch and len(heap[0][2]) < d:
            expand.append(heapq.heappop(heap)[2])
        children = [pre + (s,) for pre in expand for s in allowed[len(pre)]]
        evaluated += len(children)
        if evaluated > max_evaluations:
            raise EvidenceError(
                f"most_probable_explanation: more than {max_evaluations} partial configurations "
                f"of {d} variables; choose fewer variables or raise max_evaluations")
        arrays = {}
        for v, L in base.items():
            arrays[v] = np.broadcast_to(L, (len(children), len(L))).copy()
        for j, v in enumerate(variables):
            idx = [(r, c[j]) for r, c in enumerate(children) if len(c) > j]
            if not idx:
                continue
            if v not in arrays:
                arrays[v] = np.ones((len(children), len(net.states[v])))
            rr = np.array([r for r, _ in idx])
            ss = np.array([s for _, s in idx])
            keep = arrays[v][rr, ss]
            arrays[v][rr] = 0.0
            arrays[v][rr, ss] = keep
        le = np.asarray(net.engine.query(arrays, [], n_cases=len(children)).log_evidence, dtype=float)
        for c, l in zip(children, le):
            if np.isfinite(l):
                heapq.heappush(heap, (-float(l), counter, c))
                counter += 1
    rows = []
    for conf, lj in found:
        row = {v: net.states[v][s] for v, s in zip(variables, conf)}
        row["probability"] = math.exp(lj - le0)
        row["log_joint"] = lj
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*variables, "probability", "log_joint"])
    out.attrs.update({"variables": variables, "evidence": evidence, "exact": True, "evaluated": evaluated})
    return out

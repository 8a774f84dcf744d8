"""Which test next? Value of information with costs, and a "what if" preview of every outcome.

For each orderable test group (``net.tests``: variables revealed together, with a cost) this
module computes, exactly, what the test is expected to tell about a target variable ``T``
given the current evidence ``e``:

* ``gain``: the mutual information ``I(T; G | e)`` in bits, where ``G`` is the *joint* outcome
  of the group's unobserved variables (not the sum of their separate informations);
* ``p_change``: the probability that the leading state of ``T`` is a different one after the test;
* ``p_threshold``: the probability that, after the test, the leading state has probability
  ``>= threshold``;
* ``outcomes``: for every joint outcome ``o``, ``P(o | e)`` and the posterior ``P(T | e, o)``,
  with the evidence to apply if that outcome is observed (the preview a UI shows).

All of it comes from a few batched exact engine queries. Every single-variable test is answered
by ONE query whose rows are ``e`` and ``e + (T = t)`` for each state ``t`` with every such
variable ``X`` as a target (then ``P(t, x | e) = P(t | e) P(x | t, e)``); a multi-variable group is
one query whose rows are ``e`` plus each joint outcome ``o`` (``P(o | e) = exp(log P(e, o) -
log P(e))``, the row's marginal is ``P(T | e, o)``). Both are exact; instantiating only ``e``, ``T``
and one group per query keeps the engine's plans small (one batch over the union of all groups'
variables is 3-4x slower on the default network: 79 vs 23 ms CPU for a 23-group case).

    >>> from model import load_network
    >>> net = load_network()
    >>> rec = recommend(net, {"weakness_topography": "both_legs"}, target="lesion_site", k=3)
    >>> list(rec.columns[:3])
    ['label', 'variables', 'n_outcomes']
    >>> rec.attrs["rank_rule"]                               # doctest: +ELLIPSIS
    'gain_per_cost = gain / cost ...'

Ranking: ``rank_by="gain_per_cost"`` (bits per cost unit; a free test with positive gain ranks
first) or ``rank_by="net_benefit"`` (``gain - cost_weight * cost``; ``cost_weight`` in bits per
cost unit, by default one bit per the cost of the most expensive available test).
``lookahead=2`` adds, for each first test, the best second test after each of its outcomes and
the best pair of tests overall (their joint information, by the chain rule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .errors import EvidenceError, ImpossibleEvidenceError
from .evidence import check_variable, to_likelihoods
from .lookahead import _lookahead

RANK_RULES = ("gain_per_cost", "net_benefit")
#: groups with more joint outcomes than this are left out (and named in ``attrs["skipped"]``)
DEFAULT_MAX_OUTCOMES = 4096
#: two numbers closer than this are a tie (leading state unchanged)
_TIE = 1e-12

__all__ = ["recommend", "outcome_table", "default_target", "RANK_RULES"]


def default_target(net) -> str:
    """``lesion_site`` when the network has it, else its first latent variable."""
    return "lesion_site" if "lesion_site" in net.states else net.latent[0]


@dataclass
class _Candidate:
    test: Any                 # TestGroup
    reveal: tuple[str, ...]   # its variables not yet observed (hard), in order
    outcomes: np.ndarray      # (n_outcomes, len(reveal)) state indices, C order


def _hard_observed(lik: Mapping[str, np.ndarray]) -> set[str]:
    return {v for v, L in lik.items() if np.count_nonzero(L) == 1}


def _outcome_grid(cards: list[int]) -> np.ndarray:
    """All joint outcomes as an ``(prod(cards), len(cards))`` index array (last varies fastest)."""
    if not cards:
        return np.zeros((1, 0), dtype=np.intp)
    grids = np.indices(cards).reshape(len(cards), -1).T
    return np.ascontiguousarray(grids, dtype=np.intp)


def _candidates(net, observed: set[str], target: str, max_outcomes: int):
    generic = not net.knowledge.tests
    out, skipped = [], []
    for test in net.tests:
        reveal = tuple(v for v in dict.fromkeys(test.variables) if v not in observed)
        if not reveal or (generic and reveal == (target,)):
            continue
        cards = [len(net.states[v]) for v in reveal]
        n = math.prod(cards)
        if n > max_outcomes:
            skipped.append({"test": test.name, "n_outcomes": n,
                            "reason": f"{n} joint outcomes > max_outcomes={max_outcomes}"})
            continue
        out.append(_Candidate(test, reveal, _outcome_grid(cards)))
    return out, skipped


def _as_batch(base: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Every likelihood as an ``(n, card)`` array."""
    return {v: np.broadcast_to(np.atleast_2d(L), (n, np.shape(L)[-1])) for v, L in base.items()}


def _outcome_posteriors(net, base: Mapping[str, np.ndarray], n_base: int, target: str, cands):
    """Exact ``P(o | e_b)`` and ``P(target | e_b, o)`` for every joint outcome ``o`` of every
    candidate, for ``n_base`` evidence cases ``e_b`` (``base``: var -> ``(n_base, card)``).

    Returns ``(log P(e_b) (B,), P(target | e_b) (B, ct), p (B, R), q (B, R, ct))``, the ``R``
    outcome rows laid out candidate after candidate.

    Single-variable groups are all answered by ONE batched query whose rows are
    ``e_b`` and ``e_b + (target = t)`` for every state ``t``, with every such variable ``X`` a
    query target: ``P(t, x | e) = P(t | e) P(x | t, e)`` gives both ``P(x | e)`` and
    ``P(t | e, x)`` (Bayes). A multi-variable group is one batched query per group whose rows
    are ``e_b`` plus each joint outcome (``P(o | e) = exp(log P(e, o) - log P(e))``). That keeps
    every query's plan small (only the evidence, the target and that group are instantiated),
    which is much faster than one batch over the union of all groups' variables.
    """
    ct = len(net.states[target])
    B = n_base
    singles = [i for i, c in enumerate(cands) if len(c.reveal) == 1]
    svars = list(dict.fromkeys(cands[i].reveal[0] for i in singles))
    reps = ct + 1 if svars else 1
    lik = {v: np.repeat(a, reps, axis=0) for v, a in base.items()}
    if svars:
        tl = np.tile(np.vstack([np.ones((1, ct)), np.eye(ct)]), (B, 1))
        lik[target] = tl * lik[target] if target in lik else tl
    res = net.engine.query(lik, [target, *svars], n_cases=B * reps)
    le_all = np.asarray(res.log_evidence, dtype=float).reshape(B, reps)
    le0 = le_all[:, 0]
    q0 = np.asarray(res.marginals[target], dtype=float).reshape(B, reps, ct)[:, 0]
    q0 = np.nan_to_num(q0, nan=0.0)
    sizes = [len(c.outcomes) for c in cands]
    offs = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
    p = np.zeros((B, int(offs[-1])))
    q = np.repeat(q0[:, None, :], int(offs[-1]), axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in singles:
            v = cands[i].reveal[0]
            px_t = np.asarray(res.marginals[v], dtype=float).reshape(B, reps, -1)[:, 1:]   # (B, ct, cx)
            joint = np.nan_to_num(q0[:, :, None] * px_t, nan=0.0)                          # P(t, x | e)
            px = joint.sum(axis=1)                                                        # (B, cx)
            ok = px > 0
            post = np.where(ok[:, None, :], joint / np.where(ok, px, 1.0)[:, None, :], q0[:, :, None])
            p[:, offs[i]:offs[i + 1]] = px / np.maximum(px.sum(axis=1, keepdims=True), 1e-300)
            q[:, offs[i]:offs[i + 1]] = post.transpose(0, 2, 1)
        for i, c in enumerate(cands):
            if len(c.reveal) == 1:
                continue
            n = sizes[i]
            glik = {v: np.repeat(a, n, axis=0) for v, a in base.items()}
            for j, v in enumerate(c.reveal):
                onehot = np.tile(np.eye(len(net.states[v]))[c.outcomes[:, j]], (B, 1))
                glik[v] = glik[v] * onehot if v in glik else onehot
            r = net.engine.query(glik, [target], n_cases=B * n)
            le = np.asarray(r.log_evidence, dtype=float).reshape(B, n)
            po = np.where(np.isfinite(le), np.exp(le - le0[:, None]), 0.0)
            po = po / np.where(po.sum(axis=1, keepdims=True) > 0, po.sum(axis=1, keepdims=True), 1.0)
            qo = np.asarray(r.marginals[target], dtype=float).reshape(B, n, ct)
            p[:, offs[i]:offs[i + 1]] = po
            q[:, offs[i]:offs[i + 1]] = np.where((po > 0)[:, :, None], qo, q0[:, None, :])
    return le0, q0, p, q


def _row_stats(q: np.ndarray, q0: np.ndarray, lead0: np.ndarray, threshold: float):
    """Per row: KL(q || q0) in bits, whether the leader changed, whether max q >= threshold.

    ``q0`` and ``lead0`` are per row (the posterior the row's outcome is compared with)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log2(q / q0), 0.0)
    kl = np.maximum(np.nan_to_num(terms.sum(axis=1), nan=0.0), 0.0)
    qmax = q.max(axis=1)
    lead_q = q[np.arange(len(q)), lead0]
    changed = lead_q < qmax - _TIE
    return kl, changed, qmax >= threshold - _TIE


def leader(q: np.ndarray) -> int:
    """Index of the leading state: the first whose probability is within ``_TIE`` of the
    maximum, so that rounding noise between exact engines never decides a tie."""
    q = np.asarray(q, dtype=float)
    return int(np.flatnonzero(q >= q.max() - _TIE)[0])


def _segment_sum(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    if len(starts) == 0:
        return np.zeros(0)
    return np.add.reduceat(x, starts)


def recommend(
    net,
    evidence: Mapping[str, Any] | None = None,
    target: str | None = None,
    k: int | None = 10,
    rank_by: str = "gain_per_cost",
    cost_weight: float | None = None,
    threshold: float = 0.9,
    lookahead: int = 1,
    min_gain: float = 0.01,
    max_outcomes: int = DEFAULT_MAX_OUTCOMES,
    preview: bool = True,
    lookahead_first: int | None = None,
) -> pd.DataFrame:
    """Rank the available tests by their expected information about ``target`` (with costs).

    Parameters
    ----------
    net : Network
    evidence : mapping, optional
        Current findings (state names or soft likelihoods). A test group whose variables are
        all observed (hard) is skipped; a partly observed group reveals the rest. A variable
        with soft evidence can still be tested (the test observes it exactly).
    target : str, optional
        Any variable; default :func:`default_target`.
    k : int or None
        Number of rows returned (the best ``k``); None for all. The stopping rule in ``attrs``
        always considers every available test.
    rank_by : {"gain_per_cost", "net_benefit"}
    cost_weight : float, optional
        Bits per cost unit for ``net_benefit`` (default: 1 / the largest available cost).
    threshold : float
        Probability a leading state must reach to count as settled (``p_threshold``).
    lookahead : {1, 2}
        2 adds ``expected_next_gain`` / ``p_stop_after`` per test, the best next test after each
        outcome (in ``outcomes``), ``attrs["best_pair"]`` / ``attrs["pairs"]`` (joint gains), and
        ``attrs["second_gain"][first][second]``: the expected gain of ``second`` once ``first`` is
        done (compare with ``second``'s own gain to see a cheap test make an expensive one moot).
    min_gain : float
        Expected gains (bits) below this count as worthless for the stopping rule.
    max_outcomes : int
        Groups with more joint outcomes are left out and listed in ``attrs["skipped"]``.
    lookahead_first : int, optional
        With ``lookahead=2``, consider only the ``lookahead_first`` best tests (one-step rank) as
        first tests (faster; the others get NaN lookahead columns, and ``best_pair`` is the best
        pair containing one of them). Default: every test (the full, exact search).
    preview : bool
        Build the per-outcome preview column ``outcomes`` (a list of dicts per test, each with
        ``outcome``, ``probability``, ``posterior``, ``leader``, ``leader_probability``,
        ``leader_changes`` and ``evidence`` = the evidence to apply for that outcome).

    Returns
    -------
    pandas.DataFrame indexed by test name, best first, with columns ``label, variables,
    n_outcomes, gain, p_change, p_threshold, cost, invasiveness, time_to_result, source,
    score, rank`` (+ lookahead columns) and ``outcomes``. ``attrs`` holds the target, the
    current posterior and leader, the rank rule, ``stop`` / ``stop_reason`` and ``skipped``.

    Examples
    --------
    >>> rec = recommend(net, {"babinski": "present"}, target="lesion_type")   # doctest: +SKIP
    >>> outcome_table(rec, rec.index[0])                                    # doctest: +SKIP
    """
    if rank_by not in RANK_RULES:
        raise EvidenceError(f"rank_by={rank_by!r} is not one of {', '.join(RANK_RULES)}")
    if lookahead not in (1, 2):
        raise EvidenceError(f"lookahead must be 1 or 2, got {lookahead!r}")
    if not 0.0 < threshold <= 1.0:
        raise EvidenceError(f"threshold must be in (0, 1], got {threshold!r}")
    if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
        raise EvidenceError(f"k must be a positive integer or None, got {k!r}")
    if cost_weight is not None and not (math.isfinite(cost_weight) and cost_weight >= 0):
        raise EvidenceError(f"cost_weight must be a finite number >= 0, got {cost_weight!r}")
    target = default_target(net) if target is None else check_variable(target, net.states)
    evidence = dict(evidence or {})
    base = to_likelihoods(evidence, net.states)
    cands, skipped = _candidates(net, _hard_observed(base), target, max_outcomes)
    tstates = net.states[target]

    # ---- exact outcome probabilities and posteriors of every group (see _outcome_posteriors)
    sizes = np.array([len(c.outcomes) for c in cands], dtype=np.intp)
    seg = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp) if len(cands) else sizes
    le0, q0s, ps, qs = _outcome_posteriors(net, _as_batch(base, 1), 1, target, cands)
    if not np.isfinite(le0[0]):
        from .network import _impossible_message

        raise ImpossibleEvidenceError(_impossible_message(evidence))
    q0, p, q = q0s[0], ps[0], qs[0]
    lead0 = leader(q0)
    kl, changed, settled = _row_stats(q, q0[None, :], np.full(len(q), lead0), threshold)
    gain = _segment_sum(p * kl, seg)
    p_change = _segment_sum(p * changed, seg)
    p_thr = _segment_sum(p * settled, seg)

    costs = np.array([float(c.test.cost) for c in cands])
    if rank_by == "net_benefit" and cost_weight is None:
        cmax = costs.max() if len(costs) else 0.0
        cost_weight = 1.0 / cmax if cmax > 0 else 0.0
    score = _score(gain, costs, rank_by, cost_weight)
    rule = (
        "gain_per_cost = gain / cost (bits per cost unit; cost 0 with positive gain ranks first)"
        if rank_by == "gain_per_cost"
        else f"net_benefit = gain - cost_weight * cost (cost_weight = {cost_weight:.6g} bits per cost unit)"
    )

    order = np.lexsort((np.arange(len(cands)), costs, -gain, -score))   # best first
    cols: dict[str, Any] = {
        "label": [c.test.label for c in cands],
        "variables": [c.reveal for c in cands],
        "n_outcomes": sizes,
        "gain": gain,
        "p_change": np.clip(p_change, 0.0, 1.0),
        "p_threshold": np.clip(p_thr, 0.0, 1.0),
        "cost": costs,
        "invasiveness": [c.test.invasiveness for c in cands],
        "time_to_result": [c.test.time_to_result for c in cands],
        "source": ["; ".join(c.test.source) for c in cands],
        "score": score,
        "rank": np.empty(len(cands), dtype=np.intp),
    }
    cols["rank"][order] = np.arange(1, len(cands) + 1)
    outcomes = _previews(net, evidence, cands, seg, p, q, lead0, tstates) if preview else None

    attrs: dict[str, Any] = {
        "target": target,
        "evidence": evidence,
        "posterior": dict(zip(tstates, map(float, q0))),
        "leader": tstates[lead0],
        "leader_probability": float(q0[lead0]),
        "entropy": float(-np.sum(np.where(q0 > 0, q0 * np.log2(np.where(q0 > 0, q0, 1)), 0.0))),
        "threshold": threshold,
        "threshold_reached": bool(q0[lead0] >= threshold - _TIE),
        "rank_by": rank_by,
        "rank_rule": rule,
        "cost_weight": cost_weight,
        "min_gain": min_gain,
        "max_outcomes": max_outcomes,
        "skipped": skipped,
        "lookahead": lookahead,
    }
    if lookahead == 2:
        cols["expected_next_gain"] = np.zeros(len(cands))
        cols["p_stop_after"] = np.ones(len(cands))
        attrs["best_pair"], attrs["pairs"], attrs["second_gain"] = None, [], {}
    if lookahead == 2 and cands:
        firsts = set(order[: lookahead_first].tolist()) if lookahead_first else set(range(len(cands)))
        extra = _lookahead(net, target, base, cands, seg, p, q, threshold, rank_by,
                           cost_weight, min_gain, gain, costs, firsts)
        cols["expected_next_gain"] = extra["expected_next_gain"]
        cols["p_stop_after"] = extra["p_stop_after"]
        if outcomes is not None:
            for i, rows in enumerate(outcomes):
                for j, row in enumerate(rows):
                    row["next_test"], row["next_gain"] = extra["next"][i][j]
        attrs["best_pair"] = extra["best_pair"]
        attrs["pairs"] = extra["pairs"]
        attrs["second_gain"] = extra["second_gain"]
    if outcomes is not None:
        cols["outcomes"] = outcomes
    attrs["stop"], attrs["stop_reason"] = _stopping(gain, p_change, min_gain)

    keep = order if k is None else order[: int(k)]
    frame = pd.DataFrame(
        {name: _take(col, keep) for name, col in cols.items()},
        index=pd.Index([cands[i].test.name for i in keep], name="test", dtype=object),
    )
    frame.attrs.update(attrs)
    return frame


def _take(col, idx):
    if isinstance(col, np.ndarray):
        return col[idx]
    out = np.empty(len(idx), dtype=object)   # element-wise: lists and tuples stay whole
    for j, i in enumerate(idx):
        out[j] = col[i]
    return out


def _score(gain, costs, rank_by, cost_weight):
    if rank_by == "net_benefit":
        return gain - cost_weight * costs
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(costs > 0, gain / np.where(costs > 0, costs, 1.0),
                        np.where(gain > 0, np.inf, 0.0))


def _stopping(gain: np.ndarray, p_change: np.ndarray, min_gain: float) -> tuple[bool, str | None]:
    if len(gain) == 0:
        return True, "no test is left to order (every test's variables are already observed)"
    if not (p_change > _TIE).any():
        return True, "no available test can change the leading hypothesis"
    if not (gain >= min_gain).any():
        return True, f"every expected information gain is below min_gain = {min_gain:g} bits"
    return False, None


def _previews(net, evidence, cands, seg, p, q, lead0, tstates):
    out = []
    tstates = list(tstates)
    for c, s in zip(cands, seg):
        rows = []
        names = [net.states[v] for v in c.reveal]
        for j, o in enumerate(c.outcomes):
            r = s + j
            qr = q[r]
            lead = leader(qr) if qr[lead0] < qr.max() - _TIE else lead0
            outcome = {v: names[i][o[i]] for i, v in enumerate(c.reveal)}
            rows.append(
                {
                    "outcome": outcome,
                    "probability": float(p[r]),
                    "posterior": dict(zip(tstates, qr.tolist())),
                    "leader": tstates[lead],
                    "leader_probability": float(qr[lead]),
                    "leader_changes": lead != lead0,
                    "evidence": {**evidence, **outcome},
                }
            )
        out.append(rows)
    return out


def outcome_table(result: pd.DataFrame, test: str) -> pd.DataFrame:
    """The "what if" preview of one test of a :func:`recommend` result as a table.

    One row per joint outcome (most probable first): the revealed variables' states,
    ``probability``, the leader after it and the target posterior (one column per state).
    ``row["evidence"]`` of ``result.loc[test, "outcomes"]`` is what to apply.
    """
    if "outcomes" not in result.columns:
        raise EvidenceError("this result was computed with preview=False; no outcomes to show")
    if test not in result.index:
        raise EvidenceError(f"test {test!r} is not in this result (tests: {', '.join(result.index)})")
    rows = []
    for o in result.at[test, "outcomes"]:
        row = dict(o["outcome"])
        row.update(probability=o["probability"], leader=o["leader"],
                   leader_probability=o["leader_probability"])
        if "next_test" in o:
            row.update(next_test=o["next_test"], next_gain=o["next_gain"])
        row.update({f"P({s})": v for s, v in o["posterior"].items()})
        rows.append(row)
    return pd.DataFrame(rows).sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)

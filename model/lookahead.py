"""Two-step lookahead for :func:`model.recommend.recommend` (``lookahead=2``).

One-step value of information ranks each test by what it tells about the target on its own. The
two-step lookahead asks what happens *after* each test: for every first test ``A`` (all of them,
or the ``lookahead_first`` best) and every outcome ``a`` of it with ``P(a | e) > 0``, it computes
exactly, in one batched engine query per first test, the gain ``I(T; B | e, A = a)`` of every other
test ``B`` (over the variables ``B`` reveals that ``A`` did not). From these it reports:

* ``next``: for each outcome of ``A``, the best second test (by the same ranking rule as the first
  step) and its gain, or none when the target is already settled (leading state ``>= threshold``)
  or no test gains at least ``min_gain``;
* ``expected_next_gain``: the expected gain of that best second test, ``sum_a P(a | e) gain(a)``;
* ``p_stop_after``: the probability that no second test is worth doing after ``A``;
* ``second_gain``: the expected gain of each second test ``B`` after ``A``, ``I(T; B | A, e)``;
* ``best_pair`` / ``pairs``: the best pairs of tests by their joint information, by the chain rule
  ``I(T; A, B | e) = I(T; A | e) + I(T; B | A, e)``, scored on the sum of their costs (a pair is
  listed once: its joint gain does not depend on the order).

The helpers it shares with the one-step ranking live in :mod:`model.recommend` and are imported
inside the function (``recommend`` imports this module at load time).
"""
from __future__ import annotations

import numpy as np

from .errors import EvidenceError

#: the two-step lookahead is refused when it would need more rows than this in one batch
DEFAULT_MAX_LOOKAHEAD_ROWS = 500_000


def _lookahead(net, tname, base, cands, seg, p, q, threshold, rank_by, cost_weight, min_gain,
               gain1, costs, firsts):
    """Second tests after each possible outcome of each first test (one batch set per first test)."""
    from .recommend import (_Candidate, _outcome_grid, _outcome_posteriors, _row_stats, _score,
                            _segment_sum, _TIE, leader)

    second = {}   # (first i, outcome row r) -> list of (second j, gain of j given e and that outcome)
    for i, c in enumerate(cands):
        if i not in firsts:
            continue
        rows = [seg[i] + jo for jo in range(len(c.outcomes)) if p[seg[i] + jo] > 0]
        if not rows:
            continue
        first = set(c.reveal)
        seconds, cands2 = [], []
        for j, c2 in enumerate(cands):
            reveal2 = tuple(v for v in c2.reveal if v not in first)
            if j == i or not reveal2:
                continue
            outs2 = c2.outcomes if reveal2 == c2.reveal else _outcome_grid([len(net.states[v]) for v in reveal2])
            seconds.append(j)
            cands2.append(_Candidate(c2.test, reveal2, outs2))
        if not cands2:
            continue
        B = len(rows)
        n_rows = B * (len(net.states[tname]) + 1 + sum(len(c2.outcomes) for c2 in cands2))
        if n_rows > DEFAULT_MAX_LOOKAHEAD_ROWS:
            raise EvidenceError(
                f"the two-step lookahead after {c.test.name!r} needs {n_rows} rows (> {DEFAULT_MAX_LOOKAHEAD_ROWS}); "
                "use lookahead=1 or lower max_outcomes")
        b_lik = {v: np.broadcast_to(np.atleast_2d(L), (B, len(net.states[v]))).copy() for v, L in base.items()}
        outs1 = c.outcomes[[r - seg[i] for r in rows]]
        for jv, v in enumerate(c.reveal):
            onehot = np.eye(len(net.states[v]))[outs1[:, jv]]
            b_lik[v] = b_lik[v] * onehot if v in b_lik else onehot
        _, q1, p2, q2 = _outcome_posteriors(net, b_lik, B, tname, cands2)
        sizes2 = np.array([len(c2.outcomes) for c2 in cands2], dtype=np.intp)
        seg2 = np.concatenate([[0], np.cumsum(sizes2)[:-1]]).astype(np.intp)
        for b, r in enumerate(rows):
            kl, _, _ = _row_stats(q2[b], q1[b][None, :], np.full(q2.shape[1], leader(q1[b])), threshold)
            g2 = _segment_sum(p2[b] * kl, seg2)
            second[(i, r)] = list(zip(seconds, map(float, g2)))

    n = len(cands)
    expected_next = np.zeros(n)
    p_stop = np.zeros(n)
    pair_gain = {}
    nxt = []
    for i, c in enumerate(cands):
        per = []
        if i not in firsts:
            expected_next[i] = p_stop[i] = np.nan
            nxt.append([(None, np.nan)] * len(c.outcomes))
            continue
        for jo in range(len(c.outcomes)):
            r = seg[i] + jo
            options = second.get((i, r), [])
            settled = q[r].max() >= threshold - _TIE
            best = None
            if options and not settled:
                js = np.array([o[0] for o in options])
                gs = np.array([o[1] for o in options])
                sc = _score(gs, costs[js], rank_by, cost_weight)
                b = int(np.lexsort((costs[js], -gs, -sc))[0])
                if gs[b] >= min_gain:
                    best = (cands[js[b]].test.name, float(gs[b]))
            if best is None:
                p_stop[i] += p[r]
                per.append((None, 0.0))
            else:
                expected_next[i] += p[r] * best[1]
                per.append(best)
            for j, g in options:
                pair_gain[(i, j)] = pair_gain.get((i, j), float(gain1[i])) + p[r] * g
        nxt.append(per)
    second_gain: dict[str, dict[str, float]] = {}
    for (i, j), g in pair_gain.items():
        second_gain.setdefault(cands[i].test.name, {})[cands[j].test.name] = float(g - gain1[i])
    pairs = []
    for (i, j), g in pair_gain.items():
        if i > j and (j, i) in pair_gain:
            continue   # the joint gain of a pair does not depend on the order
        cost = float(costs[i] + costs[j])
        sc = float(_score(np.array([g]), np.array([cost]), rank_by, cost_weight)[0])
        pairs.append({"tests": (cands[i].test.name, cands[j].test.name), "gain": float(g), "cost": cost, "score": sc})
    pairs.sort(key=lambda d: (-d["score"], -d["gain"], d["cost"]))
    return {
        "expected_next_gain": expected_next,
        "p_stop_after": np.clip(p_stop, 0.0, 1.0),
        "next": nxt,
        "best_pair": pairs[0] if pairs else None,
        "pairs": pairs[:10],
        "second_gain": second_gain,
    }

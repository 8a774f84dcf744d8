"""``InferenceEngine``: the engine the rest of lesionbn uses.

It merges sparse parent-child structure into compound variables first (:mod:`.support`), then
runs the junction-tree engine (:mod:`.core`) on the merged network, translating evidence in
and marginals out. Callers only ever see the original variables.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Sequence

import numpy as np

from .contraction import blas_controller
from .core import _SINGLE_THREAD_FROM, EngineResult, JunctionTreeEngine
from .support import SupportMerge

__all__ = ["InferenceEngine"]


class InferenceEngine:
    """Exact, batched inference on a discrete Bayesian network.

    Parameters
    ----------
    variables : list of str, in topological order
    cards : dict variable -> number of states
    parents : dict variable -> list of parents
    tables : dict variable -> array of shape ``(card[v], *[card[p] for p in parents[v]])``
    merge_support : bool, default True
        Fuse near-deterministic parent-child pairs into compound variables over their possible
        joint states when that shrinks the junction tree (see :mod:`model.engine.support`).
    **options
        ``max_chunk``, ``max_elements``, ``max_plans`` of :class:`.core.JunctionTreeEngine`.

    Examples
    --------
    >>> import numpy as np
    >>> eng = InferenceEngine(["a", "b"], {"a": 2, "b": 2}, {"a": [], "b": ["a"]},
    ...                       {"a": np.array([0.3, 0.7]), "b": np.array([[0.9, 0.2], [0.1, 0.8]])})
    >>> res = eng.query({"b": np.array([1.0, 0.0])}, ["a"])
    >>> res.marginals["a"].round(3)
    array([[0.659, 0.341]])
    """

    def __init__(self, variables, cards, parents, tables, *, merge_support: bool = True,
                 state_names=None, **options):
        self.variables = list(variables)
        self.cards = {v: int(cards[v]) for v in self.variables}
        self.parents = {v: list(parents.get(v, ())) for v in self.variables}
        self.tables = {v: np.asarray(tables[v], dtype=np.float64) for v in self.variables}
        self.state_names = dict(state_names) if state_names else None
        # the junction-tree engine validates shapes, values and topological order
        plain = JunctionTreeEngine(self.variables, self.cards, self.parents, self.tables, **options)
        self.merge = SupportMerge.build(self.variables, self.cards, self.parents, self.tables) if merge_support else None
        if self.merge is None:
            self._jt = plain
        else:
            m = self.merge
            self._jt = JunctionTreeEngine(m.variables, m.cards, m.parents, m.tables, **options)

    from_pgmpy = classmethod(JunctionTreeEngine.from_pgmpy.__func__)

    @property
    def _plans(self):
        """The compiled-plan cache (of the junction-tree engine underneath)."""
        return self._jt._plans

    # ------------------------------------------------------------------ translation
    def _inner(self, likelihoods: Mapping[str, Any], names: Sequence[str]):
        for v in list(likelihoods) + list(names):
            if v not in self.cards:
                raise KeyError(f"unknown variable {v!r}")
        if self.merge is None:
            return dict(likelihoods), list(names)
        lik = self.merge.likelihoods(likelihoods)
        groups = list(dict.fromkeys(self.merge.group_of[t] for t in names))
        return lik, groups

    def query(self, likelihoods: Mapping[str, Any], targets: Sequence[str],
              n_cases: int | None = None) -> EngineResult:
        """Posterior marginals of ``targets`` and ``log P(e)`` for a batch of cases.

        ``likelihoods`` maps a variable to a ``(card,)`` array (same for every case) or an
        ``(N, card)`` array (one row per case); missing variables and all-ones rows are
        unobserved. Returns an :class:`EngineResult` (``marginals``, ``log_evidence``,
        ``possible``; NaN rows and ``-inf`` for impossible cases).
        """
        targets = list(dict.fromkeys(targets))
        with _blas_for(likelihoods, n_cases):
            lik, inner_targets = self._inner(likelihoods, targets)
            res = self._jt.query(lik, inner_targets, n_cases=n_cases)
            if self.merge is None:
                return res
            marg = {t: self.merge.marginal(t, res.marginals[self.merge.group_of[t]])
                    for t in targets}
        return EngineResult(marg, res.log_evidence, res.possible)

    def joint(self, likelihoods: Mapping[str, Any], a: str, b: str,
              n_cases: int | None = None) -> np.ndarray:
        """Joint posterior ``P(a, b | e)`` per case, shape ``(N, card[a], card[b])`` (NaN rows
        for impossible cases)."""
        with _blas_for(likelihoods, n_cases):
            lik, _ = self._inner(likelihoods, [a, b])
            if self.merge is None:
                return self._jt.joint(lik, a, b, n_cases=n_cases)
            ga, gb = self.merge.group_of[a], self.merge.group_of[b]
            if ga == gb:
                res = self._jt.query(lik, [ga], n_cases=n_cases)
                return self.merge.pair_from_group(a, b, res.marginals[ga])
            return self.merge.pair_from_groups(a, b, self._jt.joint(lik, ga, gb, n_cases=n_cases))

    def plan_info(self, evidence: Sequence[str], targets: Sequence[str]) -> dict:
        """Size of the compiled plan for an evidence set and targets (for diagnostics)."""
        if self.merge is not None:
            evidence = list(dict.fromkeys(self.merge.group_of[v] for v in evidence))
            targets = list(dict.fromkeys(self.merge.group_of[v] for v in targets))
        info = self._jt.plan_info(evidence, targets)
        info["merged_groups"] = {} if self.merge is None else {
            g: list(grp.members) for g, grp in self.merge.groups.items() if len(grp.members) > 1}
        return info


def _blas_for(likelihoods, n_cases):
    """BLAS limited to one thread for a large batch (see ``JunctionTreeEngine._run``): the
    products are small and many, and idle OpenBLAS threads spin on the other core."""
    n = n_cases or max((np.shape(L)[0] for L in likelihoods.values() if np.ndim(L) == 2),
                       default=1)
    ctl = blas_controller() if n >= _SINGLE_THREAD_FROM else None
    return ctl.limit(limits=1, user_api="blas") if ctl is not None else contextlib.nullcontext()

"""Reference inference with pgmpy's VariableElimination, behind the engine's interface.

Slow but independent of the compiled engine: the tests check every engine answer against it,
and the benchmarks time it. ``query`` has the same signature and result as
:meth:`model.engine.InferenceEngine.query`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass
class ReferenceResult:
    marginals: dict[str, np.ndarray]
    log_evidence: np.ndarray
    possible: np.ndarray


class ReferenceEngine:
    """Exact posteriors and P(evidence) by pgmpy VariableElimination, one case at a time.

    Soft evidence is passed to pgmpy as virtual evidence. log P(e) is computed by the chain
    rule, P(e) = prod_i sum_x P(X_i = x | e_1..e_{i-1}) L_i(x).
    """

    def __init__(self, model):
        from pgmpy.inference import VariableElimination

        self.model = model
        self.states = {v: list(model.get_cpds(v).state_names[v]) for v in model.nodes()}
        self._ve = VariableElimination(model)

    def _split(self, lik: Mapping[str, np.ndarray]):
        from pgmpy.factors.discrete import TabularCPD

        hard, virtual = {}, []
        for v, vec in lik.items():
            vec = np.asarray(vec, dtype=float)
            if np.count_nonzero(vec) == 1:
                hard[v] = self.states[v][int(np.argmax(vec))]
            elif not np.all(vec == vec[0]):
                norm = vec / vec.sum()
                virtual.append(TabularCPD(v, len(vec), norm.reshape(-1, 1), state_names={v: self.states[v]}))
        return hard, virtual

    def _marginal(self, target: str, lik: Mapping[str, np.ndarray]) -> np.ndarray:
        hard, virtual = self._split(lik)
        if target in hard:
            out = np.zeros(len(self.states[target]))
            out[self.states[target].index(hard[target])] = 1.0
            return out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = self._ve.query([target], evidence=hard or None, virtual_evidence=virtual or None,
                               show_progress=False)
        return np.array([f.values[f.state_names[target].index(s)] for s in self.states[target]])

    def query_one(self, lik: Mapping[str, np.ndarray], targets: Sequence[str]):
        lik = {v: np.asarray(x, dtype=float) for v, x in lik.items()}
        log_ev = 0.0
        seen: dict[str, np.ndarray] = {}
        for v, vec in lik.items():
            if np.all(vec == vec[0]):
                log_ev += float(np.log(vec[0]))
                continue
            p = self._marginal(v, seen) if seen else self._prior(v)
            if not np.all(np.isfinite(p)):
                return None, -np.inf
            z = float(p @ vec)
            if z <= 0:
                return None, -np.inf
            log_ev += float(np.log(z))
            seen[v] = vec
        marg = {}
        for t in targets:
            m = self._marginal(t, lik)
            if t in lik:
                m = m * lik[t]
            marg[t] = m / m.sum()
        return marg, log_ev

    def _prior(self, v: str) -> np.ndarray:
        return self._marginal(v, {})

    def query(self, likelihoods: Mapping[str, np.ndarray], targets: Sequence[str], n_cases: int | None = None):
        arrays = {v: np.atleast_2d(np.asarray(x, dtype=float)) for v, x in likelihoods.items()}
        n = n_cases or max([a.shape[0] for a in arrays.values()] + [1])
        marginals = {t: np.full((n, len(self.states[t])), np.nan) for t in targets}
        log_ev = np.full(n, -np.inf)
        for i in range(n):
            case = {v: (a[i] if a.shape[0] > 1 else a[0]) for v, a in arrays.items()}
            marg, le = self.query_one(case, targets)
            log_ev[i] = le
            if marg is not None:
                for t in targets:
                    marginals[t][i] = marg[t]
        return ReferenceResult(marginals, log_ev, np.isfinite(log_ev))

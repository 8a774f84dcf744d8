"""The inference engine: plan compilation (junction forest + contractions) and batched runs.

See the package docstring (:mod:`model.engine`) for the algorithm.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .contraction import blas_controller, normalise
from .forest import build_forest
from .plan import BatchPlan, compile_batch_plan
from .single import SingleCasePlan

__all__ = ["JunctionTreeEngine", "EngineResult", "DEFAULT_MAX_CHUNK", "DEFAULT_MAX_ELEMENTS"]

#: Batches of at least this many cases run with BLAS limited to one thread.
_SINGLE_THREAD_FROM = 64
#: Cases per chunk never exceed this (larger chunks stop paying off once arrays leave cache).
DEFAULT_MAX_CHUNK = 4096
#: Element budget for the largest intermediate array of one chunk (8 bytes each).
DEFAULT_MAX_ELEMENTS = 1 << 18
#: An unscaled chunk (see _run_chunk) whose root mass falls below this for a case is redone.
_UNSCALED_MIN = 1e-250
#: Dense single-case plans up to this many node states in all (32 MB); larger run batched.
DEFAULT_SINGLE_MAX = 1 << 22
_TOO_BIG = object()



@dataclass(frozen=True)
class EngineResult:
    """Result of :meth:`InferenceEngine.query` for ``N`` cases.

    ``marginals[t]`` is an ``(N, card[t])`` array whose rows sum to one (NaN rows for impossible
    cases); ``log_evidence`` is ``log P(e)`` per case (``-inf`` when impossible); ``possible``
    is ``P(e) > 0`` per case.
    """

    marginals: dict[str, np.ndarray]
    log_evidence: np.ndarray
    possible: np.ndarray

    @property
    def n_cases(self) -> int:
        return int(self.log_evidence.shape[0])


class JunctionTreeEngine:
    """Exact batched inference on a discrete Bayesian network (junction forest, no merging;
    :class:`model.engine.InferenceEngine` adds the support merge of :mod:`.support`).

    See the package docstring of :mod:`model.engine` for the algorithm.  Plans are cached per
    (evidence variables, targets), least recently used first out beyond ``max_plans``.  The
    engine is not modified by queries other than through that cache, so one instance can be
    shared (e.g. by every session of a Streamlit app).
    """

    def __init__(self, variables, cards, parents, tables, *, max_chunk: int = DEFAULT_MAX_CHUNK,
                 max_elements: int = DEFAULT_MAX_ELEMENTS, max_plans: int = 512,
                 state_names=None, threads: int | None = None):
        """variables: list[str] in topological order; cards: dict var->int; parents: dict
        var->list[str]; tables: dict var->array of shape ``(card[v], *[card[p] for p in
        parents[v]])``.  Tables are taken as given (the caller normalises)."""
        self.variables = list(variables)
        self.cards = {v: int(cards[v]) for v in self.variables}
        self.parents = {v: list(parents.get(v, ())) for v in self.variables}
        self.state_names = dict(state_names) if state_names else None
        self._rank = {v: i for i, v in enumerate(self.variables)}
        self.tables = {}
        for v in self.variables:
            t = np.asarray(tables[v], dtype=np.float64)
            want = (self.cards[v], *[self.cards[p] for p in self.parents[v]])
            if t.shape != want:
                raise ValueError(f"table of {v!r} has shape {t.shape}, expected {want}")
            if not np.all(np.isfinite(t)) or np.any(t < 0):
                raise ValueError(f"table of {v!r} has negative or non-finite entries")
            self.tables[v] = t
        for v in self.variables:
            for p in self.parents[v]:
                if self._rank[p] >= self._rank[v]:
                    raise ValueError(f"variables are not in topological order ({p!r} -> {v!r})")
        self.max_chunk = int(max_chunk)
        self.max_elements = int(max_elements)
        self.max_plans = int(max_plans)
        #: chunks of a large batch run on this many threads (default: the cores this process
        #: may use, at most DEFAULT_MAX_THREADS)
        self.threads = int(threads) if threads else default_threads()
        #: one case uses a dense single-case plan up to this many node states in all
        self.single_max_elements = DEFAULT_SINGLE_MAX
        self._plans: OrderedDict = OrderedDict()

    # ----------------------------------------------------------------------------------------
    @classmethod
    def from_pgmpy(cls, model, **kwargs) -> "JunctionTreeEngine":
        """Build an engine from a pgmpy ``DiscreteBayesianNetwork`` (tables as stored)."""
        import networkx as nx

        order = list(nx.lexicographical_topological_sort(model))
        cards, parents, tables, states = {}, {}, {}, {}
        for v in order:
            cpd = model.get_cpds(v)
            vs = list(cpd.variables)
            cards[v] = int(cpd.cardinality[0])
            parents[v] = vs[1:]
            tables[v] = np.asarray(cpd.get_values(), dtype=np.float64).reshape(
                [int(c) for c in cpd.cardinality])
            states[v] = list(cpd.state_names[v]) if cpd.state_names else list(range(cards[v]))
        return cls(order, cards, parents, tables, state_names=states, **kwargs)

    # ----------------------------------------------------------------------------------------
    def _compile(self, evidence: frozenset, targets: tuple, pair: tuple | None) -> BatchPlan:
        return compile_batch_plan(self.variables, self.cards, self.parents, self.tables, self._rank,
                                  evidence, targets, pair)

    def _compile_single(self, evidence: frozenset, targets: tuple, pair):
        """A :class:`SingleCasePlan`, or ``_TOO_BIG`` when its dense node potentials would
        exceed ``single_max_elements`` states in all (one case then runs the batched plan)."""
        fo = build_forest(self.variables, self.cards, self.parents, self._rank, evidence,
                          targets, pair)
        if sum(fo.size(sc) for sc in fo.scope.values()) > self.single_max_elements:
            return _TOO_BIG
        return SingleCasePlan(fo, self.cards, self.parents, self.tables, self._rank,
                              sorted(evidence, key=self._rank.get), targets, pair)

    def _plan(self, evidence: frozenset, targets: tuple, pair=None, single: bool = False):
        key = (evidence, targets, pair, single)
        plan = self._plans.get(key)
        if plan is None:
            plan = (self._compile_single if single else self._compile)(evidence, targets, pair)
            self._plans[key] = plan
            while len(self._plans) > self.max_plans:
                self._plans.popitem(last=False)
        else:
            try:
                self._plans.move_to_end(key)
            except KeyError:  # evicted meanwhile by another thread
                pass
        return plan

    # ----------------------------------------------------------------------------------------
    def _prepare(self, likelihoods, n_cases):
        """Validate likelihoods; return (dict var -> (card,) or (N, card) array, N, largest
        entry).  Variables whose likelihood is all ones (unobserved in every case) are dropped."""
        arrs, n = {}, None
        for v, L in likelihoods.items():
            if v not in self.cards:
                raise KeyError(f"unknown variable {v!r}")
            a = np.asarray(L, dtype=np.float64)
            c = self.cards[v]
            if a.ndim == 1:
                if a.shape != (c,):
                    raise ValueError(f"likelihood of {v!r} has shape {a.shape}, expected ({c},)")
            elif a.ndim == 2:
                if a.shape[1] != c:
                    raise ValueError(f"likelihood of {v!r} has shape {a.shape}, expected (N, {c})")
                if n is not None and a.shape[0] != n:
                    raise ValueError(f"likelihoods disagree on the number of cases ({n} vs {a.shape[0]})")
                n = a.shape[0]
            else:
                raise ValueError(f"likelihood of {v!r} must be 1-D or 2-D")
            arrs[v] = a
        if n_cases is not None:
            if n is not None and n != n_cases:
                raise ValueError(f"n_cases={n_cases} but likelihoods have {n} rows")
            n = int(n_cases)
        n = 1 if n is None else n
        if not arrs or n == 0:
            return dict(arrs), n, math.inf
        names = list(arrs)
        if n <= 64:  # small arrays: one concatenation, a handful of numpy calls in all
            flat = np.concatenate([arrs[v].reshape(-1) for v in names])
            sizes = [arrs[v].size for v in names]
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            lo = np.minimum.reduceat(flat, starts).tolist()
            hi = np.maximum.reduceat(flat, starts).tolist()
        else:  # large arrays: two reductions per variable, no copy
            lo = [float(arrs[v].min()) for v in names]
            hi = [float(arrs[v].max()) for v in names]
        out = {}
        peak = 0.0
        for v, a_lo, a_hi in zip(names, lo, hi):
            if not (a_lo >= 0.0 and a_hi < math.inf):  # also catches NaN
                raise ValueError(f"likelihood of {v!r} has negative or non-finite entries")
            if a_lo == 1.0 and a_hi == 1.0:
                continue  # unobserved everywhere: no information
            out[v] = arrs[v]  # (card,) shared by every case, or (N, card)
            peak = max(peak, a_hi)
        return out, n, peak

    def _run(self, plan: BatchPlan, lik: dict, n: int, peak: float = math.inf):
        """Run a plan over all cases in chunks; return (outputs per key, log_evidence, possible).

        Large batches run with BLAS limited to one thread: the matrix products here are small
        and many, and OpenBLAS threads only add contention (3x slower on a busy 2-core box).
        """
        if n >= _SINGLE_THREAD_FROM:
            ctl = blas_controller()
            if ctl is not None:
                with ctl.limit(limits=1, user_api="blas"):
                    return self._run_chunks(plan, lik, n, peak)
        return self._run_chunks(plan, lik, n, peak)

    def _run_chunks(self, plan: BatchPlan, lik: dict, n: int, peak: float):
        chunk = max(1, min(self.max_chunk, self.max_elements // max(plan.per_case, 1)))
        # Per-case arrays are laid out batch-last: (*states, N).
        leaves = set(plan.leaf_order)

        def batch_last(a):
            return np.broadcast_to(a[:, None], (a.shape[0], n)) if a.ndim == 1 else a.T

        lik_t = {v: np.ascontiguousarray(batch_last(a)) for v, a in lik.items()
                 if v not in leaves}
        # per block: its findings' likelihood rows (batch-last), sorted into hard/missing/soft
        ev = [b.prepare([batch_last(lik[f]) for f in b.findings]) for b in plan.blocks]
        # Messages need no per-case scaling when no per-case input exceeds 1 (see _run_chunk).
        scaled = peak > 1.0
        bounds = [(a, min(n, a + chunk)) for a in range(0, n, chunk)]
        pool = _pool(self.threads) if len(bounds) > 1 else None
        if pool is None:
            parts = [self._run_chunk(plan, lik_t, ev, a, b, scaled) for a, b in bounds]
        else:
            parts = list(pool.map(lambda ab: self._run_chunk(plan, lik_t, ev, *ab, scaled), bounds))
        outs: dict = {k: [p[0][k] for p in parts] for _, readers in plan.groups
                      for k, _ in readers}
        logz = np.concatenate([p[1] for p in parts]) if parts else np.empty(0)
        possible = np.isfinite(logz)
        logz[~possible] = -np.inf
        res = {}
        for k, parts in outs.items():
            if not parts:  # an empty batch
                shape = (self.cards[k],) if isinstance(k, str) else tuple(
                    self.cards[v] for v in dict.fromkeys(k))
                parts = [np.empty((0, *shape))]
            r = np.concatenate(parts) if len(parts) > 1 else np.ascontiguousarray(parts[0])
            r[~possible] = np.nan
            res[k] = r
        return res, logz, possible

    def _run_chunk(self, plan: BatchPlan, lik_t: dict, ev, start: int, stop: int,
                   scaled: bool = True):
        """Propagate cases ``start:stop``; return ({key: (m, ...) posterior}, log P(e)).

        ``scaled=False`` skips dividing every message by its per-case total.  It is only
        asked for when every per-case input is at most 1 (then no intermediate can overflow,
        and one that underflows carries less than 1e-308 of mass into results that sum to
        the root's mass); a chunk in which some case's root mass falls below 1e-250 (deep
        underflow, or impossible evidence) is run again scaled.
        """
        m = stop - start
        part = {v: a[:, start:stop] for v, a in lik_t.items()}
        msgs: dict = {}
        lz = np.zeros(m)
        for bi, (b, state) in enumerate(zip(plan.blocks, ev)):
            pot, shift = b.potential(state, start, stop)
            msgs[("block", bi)] = pot
            lz += shift
        outs = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            for edge, con, is_collect in plan.schedule:
                msg = con(part, msgs, m)
                if scaled:
                    msg, tot = normalise(msg)
                    if is_collect:
                        lz += np.log(tot)
                msgs[edge] = msg
            joints = [con(part, msgs, m) for con, _ in plan.groups]
            for kind, x in plan.roots:
                if kind == "own":
                    mass = x(part, msgs, m).reshape(m)
                else:
                    j = joints[x]
                    mass = j.reshape(-1, m).sum(axis=0) if j.ndim > 1 else j
                if not scaled and not (mass >= _UNSCALED_MIN).all():
                    return self._run_chunk(plan, lik_t, ev, start, stop, scaled=True)
                lz += np.log(mass)
            for j, (_, readers) in zip(joints, plan.groups):
                for k, axes in readers:
                    r = j.sum(axis=axes) if axes else j
                    outs[k] = np.moveaxis(normalise(r)[0], -1, 0)
        return outs, lz

    def query(self, likelihoods: Mapping[str, Any], targets: Sequence[str],
              n_cases: int | None = None) -> EngineResult:
        """Posterior marginals of ``targets`` and ``log P(e)`` for a batch of cases.

        ``likelihoods`` maps a variable to a ``(card,)`` array (same for every case) or an
        ``(N, card)`` array (one row per case); missing variables and all-ones rows are
        unobserved.  See :class:`EngineResult`.
        """
        targets = tuple(dict.fromkeys(targets))
        for t in targets:
            if t not in self.cards:
                raise KeyError(f"unknown target variable {t!r}")
        lik, n, peak = self._prepare(likelihoods, n_cases)
        if n == 1:
            res, logz, possible = self._run_single(frozenset(lik), targets, None, lik)
        else:
            plan = self._plan(frozenset(lik), targets)
            res, logz, possible = self._run(plan, lik, n, peak)
        return EngineResult(res, logz, possible)

    def _run_single(self, evidence: frozenset, targets: tuple, pair, lik: dict):
        """One case through a :class:`SingleCasePlan`; same outputs as :meth:`_run`."""
        plan = self._plan(evidence, targets, pair, single=True)
        if plan is _TOO_BIG:
            return self._run(self._plan(evidence, targets, pair), lik, 1)
        out = plan.run(lik)
        if out is None:  # impossible evidence
            res = {}
            for k in plan.holder:
                shape = (self.cards[k],) if not isinstance(k, tuple) else tuple(
                    self.cards[v] for v in dict.fromkeys(k))
                res[k] = np.full((1, *shape), np.nan)
            return res, np.array([-np.inf]), np.array([False])
        res, lz = out
        return res, np.array([lz]), np.array([True])

    def joint(self, likelihoods: Mapping[str, Any], a: str, b: str,
              n_cases: int | None = None) -> np.ndarray:
        """Joint posterior ``P(a, b | e)`` per case, shape ``(N, card[a], card[b])``.

        Rows of impossible cases are NaN.
        """
        for t in (a, b):
            if t not in self.cards:
                raise KeyError(f"unknown variable {t!r}")
        lik, n, peak = self._prepare(likelihoods, n_cases)
        pair = (a, b)
        if n == 1:
            res, _, _ = self._run_single(frozenset(lik), (), pair, lik)
        else:
            plan = self._plan(frozenset(lik), (), pair)
            res, _, _ = self._run(plan, lik, n, peak)
        r = res[pair]
        if a == b:
            out = np.zeros((n, self.cards[a], self.cards[a]))
            idx = np.arange(self.cards[a])
            out[:, idx, idx] = r
            return out
        return r

    def plan_info(self, evidence: Sequence[str], targets: Sequence[str]) -> dict:
        """Size of the compiled plan for an evidence set and targets (for diagnostics)."""
        p = self._plan(frozenset(evidence), tuple(dict.fromkeys(targets)))
        return {"nodes": p.n_nodes, "messages": len(p.schedule), "largest_node": p.max_scope,
                "largest_intermediate_per_case": p.per_case}


#: the default thread count never exceeds this (gains beyond two cores are unmeasured)
DEFAULT_MAX_THREADS = 4


def default_threads() -> int:
    """Cores this process may run on (its CPU affinity), at most ``DEFAULT_MAX_THREADS``."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, DEFAULT_MAX_THREADS))


_POOLS: dict = {}
_POOL_LOCK = threading.Lock()


def _pool(threads: int):
    """A shared thread pool of ``threads`` workers (None for one thread).  numpy releases
    the GIL inside its loops and BLAS calls, so chunks of one batch run in parallel."""
    if threads <= 1:
        return None
    with _POOL_LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="lesionbn-engine")
        return pool

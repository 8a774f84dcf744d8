"""The inference engine: plan compilation (junction forest + contractions) and batched runs.

See the package docstring (:mod:`model.engine`) for the algorithm.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import opt_einsum as oe

from .contraction import Contraction, blas_controller, normalise, sum_axes
from .triangulate import ancestral_set, best_elimination, junction_forest, moral_graph

__all__ = ["JunctionTreeEngine", "EngineResult", "DEFAULT_MAX_CHUNK", "DEFAULT_MAX_ELEMENTS"]

#: Batches of at least this many cases run with BLAS limited to one thread.
_SINGLE_THREAD_FROM = 64
#: Cases per chunk never exceed this (larger chunks stop paying off once arrays leave cache).
DEFAULT_MAX_CHUNK = 4096
#: Element budget for the largest intermediate array of one chunk (8 bytes each).
DEFAULT_MAX_ELEMENTS = 1 << 20
#: A junction-tree node gets at most this many children (helper nodes take the rest).
_MAX_CHILDREN = 3



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


@dataclass
class _Plan:
    """A compiled propagation schedule for one (evidence set, targets) pair."""

    schedule: list  # (edge, contraction, is_collect); run in order
    roots: list  # per tree: ("own", contraction to a scalar) or ("group", index in groups)
    groups: list  # (contraction to a joint over held targets, [(key, axes to sum out)])
    per_case: int  # largest intermediate per case, in elements
    n_nodes: int
    max_scope: int


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
                 state_names=None):
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
    def _compile(self, evidence: frozenset, targets: tuple, pair: tuple | None) -> _Plan:
        """Compile a plan: prune, triangulate, build and root the junction forest, bound the
        fan-out with helper nodes, assign factors, then compile every message (collect, then
        distribute towards target holders), each holder's joint and each root's total."""
        keep = ancestral_set(set(evidence) | set(targets) | set(pair or ()), self.parents)
        nodes = [v for v in self.variables if v in keep]
        adj = moral_graph(nodes, self.parents)
        if pair is not None and pair[0] != pair[1]:
            a, b = pair
            adj[a].add(b)
            adj[b].add(a)
        scope, nbrs = junction_forest(best_elimination(adj, self.cards, self._rank))

        # Assign each table (and likelihood) to the smallest node holding its family.
        def size(s):
            return math.prod(self.cards[v] for v in s)

        holder: dict[str, int] = {}
        for v in nodes:
            fam = {v, *self.parents[v]}
            holder[v] = min((i for i in scope if fam <= scope[i]), key=lambda i: (size(scope[i]), i))
        tabs: dict[int, list[str]] = {i: [] for i in scope}
        liks: dict[int, list[str]] = {i: [] for i in scope}
        for v in nodes:
            tabs[holder[v]].append(v)
            if v in evidence:
                liks[holder[v]].append(v)

        # Root each tree at the node holding most targets (then the biggest node).
        tset = set(targets) | (set(pair) if pair else set())
        parent: dict[int, int | None] = {}
        order: list[int] = []  # preorder over the forest
        roots: list[int] = []
        unseen = set(scope)
        while unseen:
            comp, stack = [], [min(unseen)]
            seen = {stack[0]}
            while stack:
                u = stack.pop()
                comp.append(u)
                for w in nbrs[u]:
                    if w not in seen:
                        seen.add(w)
                        stack.append(w)
            unseen -= seen
            root = max(comp, key=lambda i: (len(scope[i] & tset), size(scope[i]), -i))
            roots.append(root)
            parent[root] = None
            stack = [root]
            while stack:
                u = stack.pop()
                order.append(u)
                for w in sorted(nbrs[u]):
                    if w != parent[u]:
                        parent[w] = u
                        stack.append(w)
        children = {u: [w for w in order if parent[w] == u] for u in order}

        # Bound the fan-out: cluster the children of a busy node under factor-free helper
        # nodes, merging first the two groups whose separators have the smallest union.
        next_id = max(scope) + 1
        for u in list(order):
            groups = [(w, scope[w] & scope[u]) for w in children[u]]
            if len(groups) <= _MAX_CHILDREN:
                continue
            while len(groups) > _MAX_CHILDREN:
                best = None
                for i in range(len(groups)):
                    for j in range(i + 1, len(groups)):
                        un = groups[i][1] | groups[j][1]
                        key = (size(un), i, j)
                        if best is None or key < best[0]:
                            best = (key, i, j, un)
                _, i, j, un = best
                h = next_id
                next_id += 1
                scope[h], tabs[h], liks[h] = un, [], []
                children[h] = [groups[i][0], groups[j][0]]
                for w in children[h]:
                    parent[w] = h
                parent[h] = u
                groups = [g for k, g in enumerate(groups) if k not in (i, j)] + [(h, un)]
            children[u] = [g[0] for g in groups]
        # Recompute a preorder including helper nodes.
        order = []
        for r in roots:
            stack = [r]
            while stack:
                u = stack.pop()
                order.append(u)
                stack.extend(children[u])
        nb_all = {u: ([parent[u]] if parent[u] is not None else []) + children[u] for u in order}

        # Static factors of each node: its tables, a table being multiplied into another one
        # of the node when its scope is contained in that one's (so no factor grows).
        static: dict[int, list[tuple[np.ndarray, tuple[str, ...]]]] = {}
        for u in order:
            facs: list[tuple[np.ndarray, tuple[str, ...]]] = []
            for v in sorted(tabs[u], key=lambda v: -len(self.parents[v])):
                t, vs = self.tables[v], (v, *self.parents[v])
                for k, (arr, avs) in enumerate(facs):
                    if set(vs) <= set(avs):
                        letters = {x: oe.get_symbol(i) for i, x in enumerate(avs)}
                        sa = "".join(letters[x] for x in avs)
                        facs[k] = (np.einsum(f"{sa},{''.join(letters[x] for x in vs)}->{sa}", arr, t), avs)
                        break
                else:
                    facs.append((t, vs))
            static[u] = facs

        def inputs(u, exclude):
            ins = []
            for arr, vs in static[u]:
                ins.append((("static", arr), vs))
            for v in liks[u]:
                ins.append((("lik", v), (v,)))
            for w in nb_all[u]:
                if w != exclude:
                    ins.append((("msg", (w, u)), layout[(w, u)]))
            return ins

        def sep(u, w):
            return tuple(sorted(scope[u] & scope[w], key=self._rank.get))

        # Messages keep the axis order their contraction produces; consumers (always compiled
        # after the producer) read it from ``layout``.
        schedule = []
        layout: dict[tuple[int, int], tuple[str, ...]] = {}

        def message(u, w, is_collect):
            con = Contraction(inputs(u, w), sep(u, w), self.cards, keep_layout=True)
            layout[(u, w)] = con.out_layout
            schedule.append(((u, w), con, is_collect))

        for u in reversed(order):  # collect: children before parents
            if parent[u] is not None:
                message(u, parent[u], True)
        # Target holders: for each target, the node containing it that is cheapest to reach,
        # counting its own size plus the parent sizes of distribute messages not yet scheduled.
        need: set[int] = set()

        def holder_for(vs):
            best, best_cost = None, None
            for u in order:
                if not vs <= scope[u]:
                    continue
                cost, w = size(scope[u]), u
                while parent[w] is not None and w not in need:
                    cost += size(scope[parent[w]])
                    w = parent[w]
                if best_cost is None or cost < best_cost:
                    best, best_cost = u, cost
            w = best
            while parent[w] is not None and w not in need:
                need.add(w)
                w = parent[w]
            return best

        tnodes: dict[Any, int] = {}
        for t in targets:
            tnodes[t] = holder_for({t})
        if pair is not None:
            tnodes[pair] = holder_for(set(pair))
        for u in order:  # distribute: parents before children, only towards target holders
            if u in need:
                message(parent[u], u, False)
        # Targets held by the same node are read off one contraction to their joint; when that
        # node is a root, the same joint also gives the log-evidence of its tree.
        held: dict[int, list] = {}
        for k, u in tnodes.items():
            held.setdefault(u, []).append(k)
        groups = []
        for u, keys in held.items():
            if keys == [pair]:
                outv = (pair[0],) if pair[0] == pair[1] else pair
                con = Contraction(inputs(u, None), outv, self.cards)
                readers = [(pair, None)]
            else:
                outv = tuple(sorted(keys, key=self._rank.get))
                con = Contraction(inputs(u, None), outv, self.cards, keep_layout=True)
                lay = con.out_layout
                readers = [(k, tuple(i + 1 for i, x in enumerate(lay) if x != k)) for k in keys]
            groups.append((u, con, readers))
        root_of_group = {u: gi for gi, (u, _, _) in enumerate(groups)}
        root_c = []
        for r in roots:
            if r in root_of_group:
                root_c.append(("group", root_of_group[r]))
            else:
                root_c.append(("own", Contraction(inputs(r, None), (), self.cards)))
        conts = ([c for _, c, _ in schedule] + [c for _, c, _ in groups]
                 + [c for kind, c in root_c if kind == "own"])
        per_case = max([c.largest for c in conts] + [1])
        return _Plan(schedule, root_c, [(c, readers) for _, c, readers in groups], per_case,
                     len(order), max((size(scope[u]) for u in order), default=1))

    def _plan(self, evidence: frozenset, targets: tuple, pair=None) -> _Plan:
        key = (evidence, targets, pair)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._compile(evidence, targets, pair)
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
        """Validate likelihoods; return (dict var -> (N, card) array, N).  All-ones dropped."""
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
            if not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(f"likelihood of {v!r} has negative or non-finite entries")
            arrs[v] = a
        if n_cases is not None:
            if n is not None and n != n_cases:
                raise ValueError(f"n_cases={n_cases} but likelihoods have {n} rows")
            n = int(n_cases)
        n = 1 if n is None else n
        out = {}
        for v, a in arrs.items():
            if np.all(a == 1.0):
                continue  # unobserved everywhere: no information
            out[v] = np.broadcast_to(a, (n, self.cards[v])) if a.ndim == 1 else a
        return out, n

    def _run(self, plan: _Plan, lik: dict, n: int):
        """Run a plan over all cases in chunks; return (outputs per key, log_evidence, possible).

        Large batches run with BLAS limited to one thread: the matrix products here are small
        and many, and OpenBLAS threads only add contention (3x slower on a busy 2-core box).
        """
        if n >= _SINGLE_THREAD_FROM:
            ctl = blas_controller()
            if ctl is not None:
                with ctl.limit(limits=1, user_api="blas"):
                    return self._run_chunks(plan, lik, n)
        return self._run_chunks(plan, lik, n)

    def _run_chunks(self, plan: _Plan, lik: dict, n: int):
        chunk = max(1, min(self.max_chunk, self.max_elements // max(plan.per_case, 1)))
        outs: dict = {k: [] for _, readers in plan.groups for k, _ in readers}
        logz = np.empty(n)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            m = stop - start
            part = {v: a[start:stop] for v, a in lik.items()}
            msgs: dict = {}
            lz = np.zeros(m)
            with np.errstate(divide="ignore", invalid="ignore"):
                for edge, con, is_collect in plan.schedule:
                    msg, tot = normalise(con(part, msgs, m))
                    msgs[edge] = msg
                    if is_collect:
                        lz += np.log(tot)
                joints = [con(part, msgs, m) for con, _ in plan.groups]
                for kind, x in plan.roots:
                    if kind == "own":
                        lz += np.log(x(part, msgs, m).reshape(m))
                    else:
                        j = joints[x]
                        lz += np.log(sum_axes(j, range(1, j.ndim)))
                for j, (_, readers) in zip(joints, plan.groups):
                    for k, axes in readers:
                        r = sum_axes(j, axes) if axes else j
                        outs[k].append(normalise(r)[0])
            logz[start:stop] = lz
        possible = np.isfinite(logz)
        logz[~possible] = -np.inf
        res = {}
        for k, parts in outs.items():
            if not parts:  # an empty batch
                shape = (self.cards[k],) if isinstance(k, str) else tuple(
                    self.cards[v] for v in dict.fromkeys(k))
                parts = [np.empty((0, *shape))]
            r = np.concatenate(parts) if len(parts) > 1 else parts[0]
            r[~possible] = np.nan
            res[k] = r
        return res, logz, possible

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
        lik, n = self._prepare(likelihoods, n_cases)
        plan = self._plan(frozenset(lik), targets)
        res, logz, possible = self._run(plan, lik, n)
        return EngineResult(res, logz, possible)

    def joint(self, likelihoods: Mapping[str, Any], a: str, b: str,
              n_cases: int | None = None) -> np.ndarray:
        """Joint posterior ``P(a, b | e)`` per case, shape ``(N, card[a], card[b])``.

        Rows of impossible cases are NaN.
        """
        for t in (a, b):
            if t not in self.cards:
                raise KeyError(f"unknown variable {t!r}")
        lik, n = self._prepare(likelihoods, n_cases)
        pair = (a, b)
        plan = self._plan(frozenset(lik), (), pair)
        res, _, _ = self._run(plan, lik, n)
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

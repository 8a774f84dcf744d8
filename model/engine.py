"""Compiled, batched, exact inference for discrete Bayesian networks.

The engine answers, for a batch of ``N`` cases at once, the posterior marginals of a set of
target variables and the log-probability of each case's evidence.  It knows nothing about any
particular domain: it takes a network as plain tables (``InferenceEngine(variables, cards,
parents, tables)``) or converts a pgmpy ``DiscreteBayesianNetwork`` (``from_pgmpy``).

Evidence as likelihoods
-----------------------
Every finding is a *likelihood vector* ``L_v`` over the states of ``v``: a one-hot row is hard
evidence, any non-negative row is soft (virtual) evidence, and an all-ones row means "not
observed".  Because a case-specific missing finding is just an all-ones row, all cases of a
batch share the same compiled plan whatever subset of findings each one observes, and the whole
batch is processed by the same few vectorised numpy calls.  The probability of the evidence is
``P(e) = sum_x P(x) prod_v L_v(x_v)``.

Algorithm (Shafer-Shenoy propagation on a junction tree, with a batch axis)
---------------------------------------------------------------------------
A *plan* is compiled once per (set of variables carrying likelihoods, targets) and cached:

1. **Pruning.**  Only the ancestors of the evidence and target variables matter; every other
   node is barren (its table sums to one) and is dropped.  Likelihoods that are all ones in
   every case are dropped before the plan is looked up, so "nothing observed" costs nothing.
2. **Triangulation.**  The pruned network is moralised and variables are eliminated greedily by
   *min-fill* (fewest fill-in edges), ties broken by *min-weight* (smallest clique state
   space) and then by network order, so that plans are deterministic.
3. **Junction tree.**  Each elimination step gives a clique; the clique of ``v`` is attached
   to the clique of the first-eliminated variable among its other members (this satisfies
   the running-intersection property), and cliques contained in a neighbour are merged away.
   A disconnected network gives a forest; each tree is handled independently.  Every
   conditional table and every likelihood is assigned to the smallest clique that holds its
   variables.  A clique with many neighbours (a root with dozens of findings hanging from it)
   is *binarised*: its children are hung from a chain of factor-free helper nodes whose scopes
   are the union of the separators below them.  That keeps each message a product of at most
   two incoming messages, so propagation stays linear in the number of findings and no
   message multiplies dozens of small numbers together.
4. **Messages as contractions.**  The message from node ``u`` to neighbour ``w`` is one einsum
   over the batch axis: (product of ``u``'s tables) x (likelihoods assigned to ``u``) x
   (messages into ``u`` from every neighbour but ``w``), summed down to the separator.  Each
   contraction is compiled into a sequence of pairwise steps, ordered by opt_einsum from
   the shapes, that run as BLAS ``tensordot`` when the batch axis is on one side only (a leaf
   finding's message is a matrix product ``L @ P(f | parents)``) and ``numpy.einsum`` otherwise.
   The clique potential of a whole batch is never materialised unless it is the cheapest way.
5. **Collect / distribute.**  Messages flow leaves -> root (collect) and then root -> the nodes
   holding targets only (distribute).  A target's marginal is the contraction of its (smallest)
   node's factors with all its incoming messages; a joint ``P(a, b | e)`` uses a plan in which
   ``a`` and ``b`` were made adjacent before triangulation, so they share a clique.

Scaling.  Every message is divided, per case, by its sum over the separator.  The logarithms
of the collect-phase divisors plus the log of the total mass at each root give
``log P(e)`` exactly, and no quantity ever underflows however many findings are observed (the
binarisation above bounds how many normalised messages are multiplied in one step).  A case
whose evidence is impossible gets a zero message; its divisor is left at one, its
``log_evidence`` is ``-inf``, ``possible`` is False and its marginal rows are NaN.  Other cases
in the batch are unaffected.

Chunking.  A batch is processed in chunks whose size keeps the largest per-case intermediate
below a fixed element budget (``max_elements``), so memory stays bounded for any ``N``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import opt_einsum as oe

__all__ = ["InferenceEngine", "EngineResult"]

#: Cases per chunk never exceed this (larger chunks stop paying off once arrays leave cache).
DEFAULT_MAX_CHUNK = 4096
#: Element budget for the largest intermediate array of one chunk (8 bytes each).
DEFAULT_MAX_ELEMENTS = 1 << 20
#: Batch size used to choose contraction orders (the order is reused for any batch size).
_NOMINAL_BATCH = 1024
#: A junction-tree node gets at most this many children (helper nodes take the rest).
_MAX_CHILDREN = 3


_SINGLE_THREAD_FROM = 64
#: Axes up to this length are summed by adding slices (see _sum_axes).
_SLICE_SUM_MAX = 4
_CONTROLLER: list = []


def _blas_controller():
    """A cached threadpoolctl controller (None when threadpoolctl is not installed)."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER.append(ThreadpoolController())
        except Exception:  # pragma: no cover - optional dependency
            _CONTROLLER.append(None)
    return _CONTROLLER[0]


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


# --------------------------------------------------------------------------------------------
# Graph compilation: pruning, triangulation, junction tree
# --------------------------------------------------------------------------------------------


def _ancestral_set(keep: set[str], parents: Mapping[str, Sequence[str]]) -> set[str]:
    """``keep`` and all its ancestors."""
    out, stack = set(), list(keep)
    while stack:
        v = stack.pop()
        if v not in out:
            out.add(v)
            stack.extend(parents[v])
    return out


def _moral_graph(nodes: Sequence[str], parents: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    """Undirected moral graph: each family becomes a clique."""
    adj: dict[str, set[str]] = {v: set() for v in nodes}
    for v in nodes:
        fam = [v, *parents[v]]
        for i, a in enumerate(fam):
            for b in fam[i + 1:]:
                adj[a].add(b)
                adj[b].add(a)
    return adj


def _elimination_cliques(adj: dict[str, set[str]], cards: Mapping[str, int],
                         rank: Mapping[str, int], heuristic: str = "min_fill"
                         ) -> list[tuple[str, frozenset[str]]]:
    """Greedy elimination on an undirected graph.

    ``heuristic`` is ``"min_fill"`` (fewest fill-in edges, ties: smallest clique weight) or
    ``"min_weight"`` (smallest clique state space, ties: fewest fill-ins); final ties go to
    ``rank``.  Returns ``(v, clique)`` per eliminated variable, in elimination order, where
    ``clique`` is ``v`` with its neighbours at the time it is eliminated.
    """
    adj = {v: set(n) for v, n in adj.items()}
    logc = {v: math.log(cards[v]) for v in adj}
    out = []
    while adj:
        best, best_key = None, None
        for v, nb in adj.items():
            fill = 0
            nbl = list(nb)
            for i, a in enumerate(nbl):
                na = adj[a]
                for b in nbl[i + 1:]:
                    if b not in na:
                        fill += 1
            weight = round(logc[v] + sum(logc[u] for u in nb), 9)
            key = (fill, weight, rank[v]) if heuristic == "min_fill" else (weight, fill, rank[v])
            if best_key is None or key < best_key:
                best, best_key = v, key
        nb = adj.pop(best)
        for a in nb:
            adj[a].discard(best)
            adj[a].update(nb - {a})
        out.append((best, frozenset(nb | {best})))
    return out


def _best_elimination(adj, cards, rank):
    """Run both heuristics; keep the order whose cliques have the smallest total state space."""
    best, best_cost = None, None
    for h in ("min_fill", "min_weight"):
        elim = _elimination_cliques(adj, cards, rank, h)
        cost = sum(math.prod(cards[v] for v in c) for _, c in elim)
        if best_cost is None or cost < best_cost:
            best, best_cost = elim, cost
    return best


def _junction_forest(elim: list[tuple[str, frozenset[str]]]) -> tuple[dict[int, frozenset[str]],
                                                                        dict[int, set[int]]]:
    """Junction forest (scopes and undirected adjacency) from an elimination sequence."""
    pos = {v: i for i, (v, _) in enumerate(elim)}
    scope = {i: c for i, (_, c) in enumerate(elim)}
    nbrs: dict[int, set[int]] = {i: set() for i in scope}
    for i, (v, c) in enumerate(elim):
        rest = c - {v}
        if rest:
            j = min(pos[u] for u in rest)
            nbrs[i].add(j)
            nbrs[j].add(i)
    # Merge every clique that is contained in a neighbour into that neighbour.
    changed = True
    while changed:
        changed = False
        for a in list(scope):
            if a not in scope:
                continue
            for b in nbrs[a]:
                if scope[a] <= scope[b]:
                    for c in nbrs[a] - {b}:
                        nbrs[c].discard(a)
                        nbrs[c].add(b)
                        nbrs[b].add(c)
                    nbrs[b].discard(a)
                    del scope[a], nbrs[a]
                    changed = True
                    break
    return scope, nbrs


# --------------------------------------------------------------------------------------------
# Compiled contractions
# --------------------------------------------------------------------------------------------


class _Contraction:
    """One einsum over a batch, compiled into pairwise numpy steps.

    ``inputs`` is a list of ``(source, vars)``; ``source`` is ``("static", array)`` (no batch
    axis), ``("lik", var)`` or ``("msg", edge)`` (both ``(N, ...)`` arrays found at run time).
    The output is ``(N, *out_vars)``.
    """

    def __init__(self, inputs, out_vars, cards):
        letters: dict[Any, str] = {None: oe.get_symbol(0)}  # None = batch axis
        for _, vs in inputs:
            for v in vs:
                letters.setdefault(v, oe.get_symbol(len(letters)))
        for v in out_vars:
            letters.setdefault(v, oe.get_symbol(len(letters)))
        if len(letters) > 52:
            raise ValueError("clique too large for einsum subscripts")
        present = {v for _, vs in inputs for v in vs}
        inputs = list(inputs)
        for v in out_vars:  # output variables no factor mentions: the result is flat along them
            if v not in present:
                inputs.append((("static", np.ones(cards[v])), (v,)))
        self.batched = any(src[0] != "static" for src, _ in inputs)
        subs, shapes = [], []
        for src, vs in inputs:
            s = "".join(letters[v] for v in vs)
            shp = tuple(cards[v] for v in vs)
            if src[0] != "static":
                s, shp = letters[None] + s, (_NOMINAL_BATCH, *shp)
            subs.append(s)
            shapes.append(shp)
        out = "".join(letters[v] for v in out_vars)
        if self.batched:
            out = letters[None] + out
        self.sources = [src for src, _ in inputs]
        self.out_vars = tuple(out_vars)
        eq = ",".join(subs) + "->" + out
        _, info = oe.contract_path(eq, *shapes, shapes=True, optimize="auto")
        self.largest = int(info.largest_intermediate) // (_NOMINAL_BATCH if self.batched else 1)
        # Follow the path, tracking the actual axis order of every intermediate: each step
        # writes its result in whatever order is cheapest for it, and only the final result
        # is transposed to the requested order.
        sizes = {c: (_NOMINAL_BATCH if c == letters[None] else cards[v])
                 for v, c in letters.items() if v is None or v in cards}
        layouts = list(subs)
        self.steps = []
        for inds, _, step_eq, _, _ in info.contraction_list:
            ins = [layouts.pop(i) for i in inds]
            want = step_eq.split("->")[1]
            fn, lay = self._compile_step(ins, want, letters[None], sizes)
            self.steps.append((tuple(inds), fn))
            layouts.append(lay)
        final = layouts[0]
        self.final_perm = None if final == out else tuple(final.index(c) for c in out)

    @staticmethod
    def _compile_step(ins: list[str], want: str, batch: str, sizes: Mapping[str, int]):
        """A callable for one step of the path, and the axis order of its result.

        ``ins`` are the operands' axis labels, ``want`` the labels to keep.  A pairwise step
        ``x, y`` runs as one (possibly stacked) matrix product: labels are split into H (in
        both operands and kept: stacked axes, such as the batch axis), K (in both, summed), A
        (only in x) and B (only in y); x is laid out as (H, A, K), y as (H, K, B), and the
        result comes out as (H, A, B) with no transpose.  x is the larger operand, and H, A and
        K follow its axis order, so that it is usually reshaped without a copy.  Labels found
        in one operand only and not kept are summed out first.  This beats ``numpy.einsum``'s
        generic loop by 2-10x on batched small cliques.  Without K the step is a broadcast
        product.  Unary steps use ``numpy.einsum``.
        """
        if len(ins) != 2:
            eq = ",".join(ins) + "->" + want
            return (lambda *ops, eq=eq: np.einsum(eq, *ops)), want
        a, b = ins

        def vol(lab):
            return math.prod(sizes[c] for c in lab)

        # x: the batched operand if only one is, else the larger one.
        swap = (batch in b and batch not in a) or (
            (batch in a) == (batch in b) and vol(b) > vol(a))
        if swap:
            a, b = b, a
        pre_a = tuple(i for i, c in enumerate(a) if c not in b and c not in want)
        pre_b = tuple(i for i, c in enumerate(b) if c not in a and c not in want)
        a2 = "".join(c for c in a if c in b or c in want)
        b2 = "".join(c for c in b if c in a or c in want)
        if set(b2) <= set(a2):
            # y only holds labels of x: multiply in x's layout (y becomes a broadcast view),
            # then sum the labels not kept.  No copy of the larger operand.
            yperm = tuple(sorted(range(len(b2)), key=lambda i: a2.index(b2[i])))
            yshape_idx = [a2.index(c) for c in sorted(b2, key=a2.index)]
            red = tuple(i for i, c in enumerate(a2) if c not in want)
            out_lab = "".join(c for c in a2 if c in want)
            nd = len(a2)

            def absorb(x, y):
                if swap:
                    x, y = y, x
                if pre_a:
                    x = _sum_axes(x, pre_a)
                if pre_b:
                    y = _sum_axes(y, pre_b)
                y = y.transpose(yperm)
                shp = [1] * nd
                for i, d in zip(yshape_idx, y.shape):
                    shp[i] = d
                r = x * y.reshape(shp)
                return _sum_axes(r, red) if red else r
            return absorb, out_lab
        H = [c for c in a2 if c in b2 and c in want]
        H.sort(key=lambda c: c != batch)  # the batch axis leads
        K = [c for c in a2 if c in b2 and c not in want]
        A = [c for c in a2 if c not in b2]
        B = [c for c in b2 if c not in a2]

        if not K:
            # Nothing summed: a broadcast product of two views, written batch-first.
            out_lab = sorted(set(a2) | set(b2), key=lambda c: (c != batch, a2.find(c) % 99,
                                                               b2.find(c)))
            out_lab = "".join(out_lab)

            def view_plan(lab):
                perm = tuple(sorted(range(len(lab)), key=lambda i: out_lab.index(lab[i])))
                idx = tuple(slice(None) if c in lab else None for c in out_lab)
                return perm, idx
            (px, ix), (py, iy) = view_plan(a2), view_plan(b2)

            def outer(x, y):
                if swap:
                    x, y = y, x
                if pre_a:
                    x = _sum_axes(x, pre_a)
                if pre_b:
                    y = _sum_axes(y, pre_b)
                return x.transpose(px)[ix] * y.transpose(py)[iy]
            return outer, out_lab

        perm_a = tuple(a2.index(c) for c in H + A + K)
        perm_b = tuple(b2.index(c) for c in H + K + B)
        ident_a = perm_a == tuple(range(len(perm_a)))
        ident_b = perm_b == tuple(range(len(perm_b)))
        nh, na, nk = len(H), len(A), len(K)
        res = H + A + B
        # keep the batch axis first: move it there (with a copy) if the product buried it
        fix = None
        if batch in res and res[0] != batch:
            fix = (res.index(batch),) + tuple(i for i, c in enumerate(res) if c != batch)
            res = [batch] + [c for c in res if c != batch]

        def step(x, y):
            if swap:
                x, y = y, x
            if pre_a:
                x = _sum_axes(x, pre_a)
            if pre_b:
                y = _sum_axes(y, pre_b)
            if not ident_a:
                x = x.transpose(perm_a)
            if not ident_b:
                y = y.transpose(perm_b)
            hs = x.shape[:nh]
            as_ = x.shape[nh:nh + na]
            bs = y.shape[nh + nk:]
            p, q = math.prod(as_), math.prod(bs)
            k = math.prod(x.shape[nh + na:])
            r = np.matmul(x.reshape(hs + (p, k)), y.reshape(hs + (k, q)))
            r = r.reshape(hs + as_ + bs)
            return r if fix is None else np.ascontiguousarray(r.transpose(fix))
        return step, "".join(res)

    def __call__(self, lik: Mapping[str, np.ndarray], msgs: Mapping[Any, np.ndarray], n: int):
        ops = []
        for kind, key in self.sources:
            ops.append(key if kind == "static" else (lik[key] if kind == "lik" else msgs[key]))
        for inds, fn in self.steps:
            args = [ops.pop(i) for i in inds]
            ops.append(fn(*args))
        res = ops[0]
        if self.final_perm is not None:
            res = res.transpose(self.final_perm)
        if not self.batched:
            res = np.broadcast_to(res, (n, *res.shape))
        return res


def _sum_axes(x: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """``x.sum(axis=axes)``, with short axes summed as slice additions.

    numpy reduces a short axis (2-4 states, the common case here) 5-30x slower than adding
    its slices, most of all when it is the innermost axis.
    """
    for ax in sorted(axes, reverse=True):
        d = x.shape[ax]
        if d <= _SLICE_SUM_MAX:
            idx = [slice(None)] * x.ndim
            idx[ax] = 0
            r = x[tuple(idx)].copy() if d == 1 else None
            for i in range(1, d):
                idx[ax] = i
                if r is None:
                    j = list(idx)
                    j[ax] = 0
                    r = x[tuple(j)] + x[tuple(idx)]
                else:
                    r += x[tuple(idx)]
            x = r
        else:
            x = x.sum(axis=ax)
    return x


def _normalise(m: np.ndarray):
    """Divide each case's array by its total; return (normalised, total) (total 0 -> kept 0)."""
    n = m.shape[0]
    tot = _sum_axes(m, range(1, m.ndim)) if m.ndim > 1 else m.copy()
    safe = np.where(tot > 0, tot, 1.0)
    return m / safe.reshape((n,) + (1,) * (m.ndim - 1)), tot


@dataclass
class _Plan:
    """A compiled propagation schedule for one (evidence set, targets) pair."""

    schedule: list  # (edge, contraction, is_collect); run in order
    roots: list  # per tree: ("own", contraction to a scalar) or ("group", index in groups)
    groups: list  # (contraction to a joint over held targets, [(key, axes to sum out)])
    per_case: int  # largest intermediate per case, in elements
    n_nodes: int
    max_scope: int


class InferenceEngine:
    """Exact batched inference on a discrete Bayesian network (see the module docstring)."""

    def __init__(self, variables, cards, parents, tables, *, max_chunk: int = DEFAULT_MAX_CHUNK,
                 max_elements: int = DEFAULT_MAX_ELEMENTS, state_names=None):
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
        self._plans: dict = {}

    # ----------------------------------------------------------------------------------------
    @classmethod
    def from_pgmpy(cls, model, **kwargs) -> "InferenceEngine":
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
        keep = _ancestral_set(set(evidence) | set(targets) | set(pair or ()), self.parents)
        nodes = [v for v in self.variables if v in keep]
        adj = _moral_graph(nodes, self.parents)
        if pair is not None and pair[0] != pair[1]:
            a, b = pair
            adj[a].add(b)
            adj[b].add(a)
        scope, nbrs = _junction_forest(_best_elimination(adj, self.cards, self._rank))

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
                    ins.append((("msg", (w, u)), tuple(sorted(scope[w] & scope[u], key=self._rank.get))))
            return ins

        def sep(u, w):
            return tuple(sorted(scope[u] & scope[w], key=self._rank.get))

        schedule = []
        for u in reversed(order):  # collect: children before parents
            if parent[u] is not None:
                schedule.append(((u, parent[u]), _Contraction(inputs(u, parent[u]),
                                                              sep(u, parent[u]), self.cards), True))
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
                p = parent[u]
                schedule.append(((p, u), _Contraction(inputs(p, u), sep(p, u), self.cards), False))
        # Targets held by the same node are read off one contraction to their joint; when that
        # node is a root, the same joint also gives the log-evidence of its tree.
        held: dict[int, list] = {}
        for k, u in tnodes.items():
            held.setdefault(u, []).append(k)
        groups = []
        for u, keys in held.items():
            if keys == [pair]:
                outv = (pair[0],) if pair[0] == pair[1] else pair
                readers = [(pair, None)]
            else:
                outv = tuple(sorted(keys, key=self._rank.get))
                readers = [(k, tuple(i + 1 for i, x in enumerate(outv) if x != k)) for k in keys]
            groups.append((u, _Contraction(inputs(u, None), outv, self.cards), readers))
        root_of_group = {u: gi for gi, (u, _, _) in enumerate(groups)}
        root_c = []
        for r in roots:
            if r in root_of_group:
                root_c.append(("group", root_of_group[r]))
            else:
                root_c.append(("own", _Contraction(inputs(r, None), (), self.cards)))
        conts = ([c for _, c, _ in schedule] + [c for _, c, _ in groups]
                 + [c for kind, c in root_c if kind == "own"])
        per_case = max([c.largest for c in conts] + [1])
        return _Plan(schedule, root_c, [(c, readers) for _, c, readers in groups], per_case,
                     len(order), max((size(scope[u]) for u in order), default=1))

    def _plan(self, evidence: frozenset, targets: tuple, pair=None) -> _Plan:
        key = (evidence, targets, pair)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._compile(evidence, targets, pair)
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
            ctl = _blas_controller()
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
                    msg, tot = _normalise(con(part, msgs, m))
                    msgs[edge] = msg
                    if is_collect:
                        lz += np.log(tot)
                joints = [con(part, msgs, m) for con, _ in plan.groups]
                for kind, x in plan.roots:
                    if kind == "own":
                        lz += np.log(x(part, msgs, m).reshape(m))
                    else:
                        j = joints[x]
                        lz += np.log(_sum_axes(j, range(1, j.ndim)))
                for j, (_, readers) in zip(joints, plan.groups):
                    for k, axes in readers:
                        r = _sum_axes(j, axes) if axes else j
                        outs[k].append(_normalise(r)[0])
            logz[start:stop] = lz
        possible = np.isfinite(logz)
        logz[~possible] = -np.inf
        res = {}
        for k, parts in outs.items():
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

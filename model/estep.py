"""Family marginals for EM: a batched, calibrated junction tree over the whole network.

EM needs, for every case and every family (a variable with its parents), the joint posterior
``P(x_v, x_pa(v) | e)``: its sum over cases is the expected count table of the family.
:class:`FamilyMarginals` computes all of them in one collect/distribute pass (Hugin
propagation with a batch axis), for a batch of cases given as integer codes (-1 = not
recorded)::

    >>> fm = FamilyMarginals(variables, cards, parents)        # structure only, built once
    >>> counts, loglik, logp = fm.expected_counts(tables, codes, weights)

Why not the inference engine? ``InferenceEngine.query`` gives single-variable marginals and
``joint`` gives pairs, so a family with ``k`` parents would need the parents' configurations
enumerated as one-hot evidence, one batched query per configuration (exact, and used in the
tests as a cross-check, but ``sum_v prod(card(pa(v)))`` queries per EM iteration). One
calibrated tree gives every clique's posterior at about the cost of two queries.

Algorithm
---------
1. Moralise, triangulate by greedy min-fill (ties: smallest clique, then network order), keep
   the maximal cliques and join them by a maximum-weight spanning tree on separator sizes
   (a junction tree; cliques of disconnected parts are joined by empty separators).
2. Each family's table and each variable's evidence are assigned to the smallest clique that
   holds the family.
3. Per chunk of cases: *collect* (leaves to root) multiplies each clique's tables and evidence
   by its children's messages and sends the sum over the separator, normalised per case (the
   logarithms of the normalisers plus the root's total give ``log P(e)`` without underflow);
   *distribute* (root to leaves) rescales each child by ``new separator / old separator``
   (0/0 = 0, which is exact in Hugin propagation). Each clique then holds ``P(clique | e)``.
4. Expected counts are summed over cases *before* marginalising to each family
   (``sum_n w_n P(C | e_n)`` is one ``tensordot`` per clique).
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np

from .engine.triangulate import elimination_cliques

#: elements (float64) of all clique potentials of one chunk
DEFAULT_BUDGET = 1 << 24
#: cases are grouped by the recorded states of the variables in cliques whose support is larger
#: than this (each group then propagates on a smaller support) ...
SPLIT_MIN_SUPPORT = 2000
#: ... as long as that makes at most this many groups
MAX_GROUPS = 256
#: a childless clique whose per-case factors span at most 1/FAST_RATIO of its support is
#: propagated as a matrix product instead of materialising its potential
FAST_RATIO = 4


def _letters(vs: Sequence[str], extra: Sequence[str] = ()) -> dict[str, str]:
    allv = list(dict.fromkeys([*vs, *extra]))
    if len(allv) > 52:
        raise ValueError("a clique with more than 52 variables is not supported")
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return {v: alphabet[i] for i, v in enumerate(allv)}


class FamilyMarginals:
    """Exact batched family posteriors and expected counts for a discrete network.

    Parameters
    ----------
    variables : list of str
        In topological order (parents first).
    cards : mapping variable -> number of states
    parents : mapping variable -> list of parents (the order of a table's parent axes)
    """

    def __init__(self, variables: Sequence[str], cards: Mapping[str, int], parents: Mapping[str, Sequence[str]]):
        self.variables = list(variables)
        self.cards = {v: int(cards[v]) for v in self.variables}
        self.parents = {v: list(parents[v]) for v in self.variables}
        self.rank = {v: i for i, v in enumerate(self.variables)}
        self._build()

    # ------------------------------------------------------------------ structure
    def _size(self, vs) -> int:
        return math.prod(self.cards[v] for v in vs)

    def _build(self) -> None:
        adj: dict[str, set[str]] = {v: set() for v in self.variables}
        for v in self.variables:
            fam = [v, *self.parents[v]]
            for a in fam:
                for b in fam:
                    if a != b:
                        adj[a].add(b)
        has_child = {p for v in self.variables for p in self.parents[v]}
        # leaves with parents are absorbed: their evidence becomes a per-case gather from their
        # table into the clique holding their parents (the parents stay married in the graph)
        self.leaves = [v for v in self.variables if v not in has_child and self.parents[v]]
        leafset = set(self.leaves)
        for f in self.leaves:
            for a in adj.pop(f):
                adj[a].discard(f)
        # the engine's greedy min-fill elimination (ties: smallest clique, then network order)
        cliques = [c for _, c in elimination_cliques(adj, self.cards, self.rank, "min_fill")]
        maximal = []
        for c in sorted(set(cliques), key=lambda c: (-len(c), sorted(self.rank[v] for v in c))):
            if not any(c <= m for m in maximal):
                maximal.append(c)
        k = len(maximal)
        # maximum-weight spanning tree (Kruskal) on separator size; empty separators join parts
        edges = sorted(((len(maximal[i] & maximal[j]), i, j) for i in range(k) for j in range(i + 1, k)),
                       key=lambda e: (-e[0], e[1], e[2]))
        comp = list(range(k))

        def find(i):
            while comp[i] != i:
                comp[i] = comp[comp[i]]
                i = comp[i]
            return i

        nbrs: dict[int, list[int]] = {i: [] for i in range(k)}
        for _, i, j in edges:
            ri, rj = find(i), find(j)
            if ri != rj:
                comp[ri] = rj
                nbrs[i].append(j)
                nbrs[j].append(i)
        self.scope = [tuple(sorted(c, key=self.rank.get)) for c in maximal]
        root = max(range(k), key=lambda i: (self._size(self.scope[i]), -i))
        self.root = root
        self.parent: dict[int, int | None] = {root: None}
        self.order: list[int] = []  # pre-order
        stack = [root]
        while stack:
            u = stack.pop()
            self.order.append(u)
            for w in sorted(nbrs[u]):
                if w not in self.parent:
                    self.parent[w] = u
                    stack.append(w)
        self.children = {u: [w for w in self.order if self.parent[w] == u] for u in self.order}
        self.sep = {u: tuple(v for v in self.scope[u] if v in self.scope[self.parent[u]])
                    for u in self.order if self.parent[u] is not None}
        self.holder: dict[str, int] = {}
        for v in self.variables:
            fam = set(self.parents[v]) if v in leafset else {v, *self.parents[v]}
            self.holder[v] = min((i for i in range(k) if fam <= set(self.scope[i])),
                                 key=lambda i: (self._size(self.scope[i]), i))
        self.assigned = {u: [v for v in self.variables if self.holder[v] == u and v not in leafset] for u in range(k)}
        self.hosted = {u: [v for v in self.leaves if self.holder[v] == u] for u in range(k)}
        self.leaf_scope = {f: tuple(sorted(self.parents[f], key=self.rank.get)) for f in self.leaves}
        self.per_case = sum(self._size(s) for s in self.scope) + sum(self._size(s) for s in self.sep.values())

    def info(self) -> dict:
        """Size of the junction tree (for diagnostics and the benchmark)."""
        sizes = [self._size(s) for s in self.scope]
        return {"cliques": len(self.scope), "largest_clique": max(sizes), "total_clique_size": sum(sizes),
                "largest_clique_variables": list(self.scope[int(np.argmax(sizes))])}

    # ------------------------------------------------------------------ helpers
    def _shape_in(self, u: int, vs: Sequence[str]) -> tuple[int, ...]:
        """Broadcast shape of an array over ``vs`` inside clique ``u``."""
        s = set(vs)
        return tuple(self.cards[x] if x in s else 1 for x in self.scope[u])

    def _static(self, tables: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Product of the tables assigned to each clique, as a dense array over the clique."""
        out = []
        for u, scope in enumerate(self.scope):
            letters = _letters(scope)
            ops, subs = [], []
            for v in self.assigned[u]:
                ops.append(np.asarray(tables[v], dtype=np.float64))
                subs.append("".join(letters[x] for x in (v, *self.parents[v])))
            shape = tuple(self.cards[x] for x in scope)
            mentioned = {x for v in self.assigned[u] for x in (v, *self.parents[v])}
            present = [x for x in scope if x in mentioned]
            if ops:
                arr = np.einsum(",".join(subs) + "->" + "".join(letters[x] for x in present), *ops)
                arr = arr.reshape(self._shape_in(u, present)) * np.ones(shape)
            else:
                arr = np.ones(shape)
            out.append(np.ascontiguousarray(arr))
        return out

    # ------------------------------------------------------------------ sparse layout
    def _split_variables(self, base: list[np.ndarray], codes: np.ndarray) -> list[str]:
        """Variables to group the cases by: recorded in some case and members of a big clique."""
        observed = (codes >= 0).any(axis=0) if len(codes) else np.zeros(len(self.variables), bool)
        cand: set[str] = set()
        for u, rows in enumerate(base):
            if len(rows) > SPLIT_MIN_SUPPORT:
                cand |= {x for x in self.scope[u] if observed[self.rank[x]]}
        split = sorted(cand, key=self.rank.get)
        while split:
            cols = codes[:, [self.rank[x] for x in split]]
            if len(np.unique(cols, axis=0)) <= MAX_GROUPS:
                break
            split = split[:-1]
        return split

    def _layout(self, static: list[np.ndarray], base: list[np.ndarray], fixed: Mapping[str, int]) -> list[dict]:
        """Per clique: its support, separator index maps and summation matrices.

        The support is the set of configurations with positive probability given the ``fixed``
        states (found by one propagation on the configurations with a non-zero table product):
        a configuration outside it has posterior zero for every case of the group, and leaving
        it out changes no message that matters (its separator slice is zero elsewhere).
        """
        rows = []
        for u, scope in enumerate(self.scope):
            shape = tuple(self.cards[x] for x in scope)
            conf = np.stack(np.unravel_index(base[u], shape), axis=1).astype(np.intp)
            keep = np.ones(len(base[u]), dtype=bool)
            for pos, x in enumerate(scope):
                if x in fixed:
                    keep &= conf[:, pos] == fixed[x]
            rows.append(base[u][keep])
        first = self._build_layout(rows)
        key = np.full((1, len(self.variables)), -1, dtype=np.int64)
        for x, c in fixed.items():
            key[0, self.rank[x]] = c
        beliefs, logz = self._calibrate(first, [static[u].ravel()[first[u]["rows"]] for u in range(len(self.scope))],
                                        [{} for _ in self.scope], key)
        if not np.isfinite(logz[0]):
            return first
        return self._build_layout([first[u]["rows"][self._dense(first, u, beliefs[u])[:, 0] > 0]
                                   for u in range(len(self.scope))])

    def _restricted_layout(self, fixed: Mapping[str, int]) -> list[dict]:
        """Layout on the prior support restricted to the ``fixed`` states of the split variables."""
        rows = []
        for u, scope in enumerate(self.scope):
            r = self._prior_rows[u]
            pos = [(i, fixed[x]) for i, x in enumerate(scope) if x in fixed]
            if pos:
                conf = np.unravel_index(r, tuple(self.cards[x] for x in scope))
                keep = np.ones(len(r), dtype=bool)
                for i, c in pos:
                    keep &= conf[i] == c
                r = r[keep]
            rows.append(r)
        return self._build_layout(rows)

    def _build_layout(self, supports: list[np.ndarray]) -> list[dict]:
        """Index maps of a layout. A separator is indexed by the configurations present in the
        *parent's* support (sorted dense indices, ``keys``); a child configuration whose
        separator value is not among them has probability zero and maps to an extra zero slot."""
        from scipy.sparse import csr_matrix

        def dense_index(conf, scope, sv):
            if not sv:
                return np.zeros(len(conf), dtype=np.intp)
            return np.ravel_multi_index(tuple(conf[:, scope.index(x)] for x in sv), tuple(self.cards[x] for x in sv))

        out = []
        for u, scope in enumerate(self.scope):
            shape = tuple(self.cards[x] for x in scope)
            rows = supports[u]
            conf = np.stack(np.unravel_index(rows, shape), axis=1).astype(np.intp)
            out.append({"rows": rows, "conf": conf, "nnz": len(rows), "keys": {}, "index": {}, "sum": {}})
        for u, scope in enumerate(self.scope):  # separators towards the children, from u's side
            lu = out[u]
            for sv in dict.fromkeys(self.sep[w] for w in self.children[u]):
                idx = dense_index(lu["conf"], scope, sv)
                keys, pos = np.unique(idx, return_inverse=True)
                pos = pos.ravel()
                lu["keys"][sv] = keys
                lu["index"][sv] = pos
                lu["sum"][sv] = csr_matrix((np.ones(lu["nnz"]), (pos, np.arange(lu["nnz"]))), shape=(len(keys), lu["nnz"]))
        for u, scope in enumerate(self.scope):  # the separator towards the parent, from u's side
            lu = out[u]
            par = self.parent[u]
            lu["per_case"] = lu["nnz"]
            if par is not None:
                keys = out[par]["keys"][self.sep[u]]
                idx = dense_index(lu["conf"], scope, self.sep[u])
                pos = np.searchsorted(keys, idx)
                found = pos < len(keys)
                found[found] = keys[pos[found]] == idx[found]
                pos[~found] = len(keys)
                lu["up_index"] = pos
                cols = np.flatnonzero(found)
                lu["up_sum"] = csr_matrix((np.ones(len(cols)), (pos[found], cols)), shape=(len(keys), lu["nnz"]))
                lu["per_case"] += 2 * len(keys)
            lu["evidence"] = [(v, scope.index(v)) for v in self.assigned[u] if v not in self._split_set]
            fam = {}
            for v in self.assigned[u]:
                fv = (v, *self.parents[v])
                fshape = tuple(self.cards[x] for x in fv)
                fidx = np.ravel_multi_index(tuple(lu["conf"][:, scope.index(x)] for x in fv), fshape)
                fam[v] = csr_matrix((np.ones(lu["nnz"]), (fidx, np.arange(lu["nnz"]))),
                                    shape=(math.prod(fshape), lu["nnz"]))
            lu["family"] = fam
            groups = {}
            for f in self.hosted[u]:
                sv = self.leaf_scope[f]
                if sv not in groups:
                    idx = dense_index(lu["conf"], scope, sv)
                    keys, pos = np.unique(idx, return_inverse=True)
                    groups[sv] = {"keys": keys, "pos": pos.ravel(), "leaves": [],
                                  "sum": csr_matrix((np.ones(lu["nnz"]), (pos.ravel(), np.arange(lu["nnz"]))),
                                                    shape=(len(keys), lu["nnz"]))}
                    lu["per_case"] += len(keys)
                g = groups[sv]
                states = np.unravel_index(g["keys"], tuple(self.cards[x] for x in sv))
                by_var = dict(zip(sv, states))
                col = np.ravel_multi_index(tuple(by_var[p] for p in self.parents[f]),
                                           tuple(self.cards[p] for p in self.parents[f]))
                g["leaves"].append((f, col))
            lu["leaf_groups"] = groups
            lu["fast"] = None
            if par is not None and not self.children[u]:
                # a clique without child cliques whose per-case factors (evidence, leaves) all live
                # on a small sub-scope T: its message is one matrix product M @ E_T
                tv = tuple(sorted({x for sv in groups for x in sv} | {v for v, _ in lu["evidence"]},
                                  key=self.rank.get))
                tkeys, tpos = np.unique(dense_index(lu["conf"], scope, tv), return_inverse=True)
                tpos = tpos.ravel()
                if len(tkeys) * FAST_RATIO <= lu["nnz"]:
                    n_t = len(tkeys)
                    for g in groups.values():
                        tmap = np.zeros(n_t, dtype=np.intp)
                        tmap[tpos] = g["pos"]
                        a = np.zeros((len(g["keys"]), n_t))
                        a[tmap, np.arange(n_t)] = 1.0
                        g["tmap"], g["A"] = tmap, a
                    evmap = {}
                    for v, pos in lu["evidence"]:
                        m = np.zeros(n_t, dtype=np.intp)
                        m[tpos] = lu["conf"][:, pos]
                        evmap[v] = m
                    lu["fast"] = {"tpos": tpos, "n_t": n_t, "evmap": evmap,
                                  "n_up": len(out[par]["keys"][self.sep[u]])}
        return out

    # per-clique views of a belief (dense (nnz, n) array, or the factored form of a fast clique)
    def _dense(self, lay, u, b):
        if not isinstance(b, tuple):
            return b
        m, e, r, psi = b
        r0 = np.concatenate([r, np.zeros((1, r.shape[1]))])
        return psi[:, None] * e[lay[u]["fast"]["tpos"]] * r0[lay[u]["up_index"]]

    def _belief_sum(self, lay, u, b, w):
        """``sum_n w_n P(clique configuration k | e_n)`` over the support."""
        if not isinstance(b, tuple):
            return b @ w
        m, e, r, psi = b
        g = e @ (r * w[None, :]).T  # (n_t, n_up)
        g = np.concatenate([g, np.zeros((g.shape[0], 1))], axis=1)
        return psi * g[lay[u]["fast"]["tpos"], lay[u]["up_index"]]

    def _group_post(self, lay, u, g, b):
        """``P(leaf-group scope | e)`` per case, ``(n_keys, n)``."""
        if not isinstance(b, tuple):
            return np.asarray(g["sum"] @ b)
        m, e, r, psi = b
        return g["A"] @ (e * (m[:-1].T @ r))

    def _leaf_values(self, tables, lay) -> list[dict]:
        """Per clique and leaf: the leaf's table on the parent configurations of the support,
        ``(card, n_keys)``."""
        out = []
        for lu in lay:
            vals = {}
            for g in lu["leaf_groups"].values():
                for f, col in g["leaves"]:
                    vals[f] = np.ascontiguousarray(np.asarray(tables[f], dtype=np.float64).reshape(self.cards[f], -1)[:, col])
            out.append(vals)
        return out

    # ------------------------------------------------------------------ propagation
    def _calibrate(self, lay: list[dict], svals: list[np.ndarray], leafvals: list[dict], codes: np.ndarray):
        """Beliefs ``P(C | e)`` on each clique's support, shape ``(nnz, N)`` (cases last, so
        every numpy loop runs over cases), and ``log P(e)`` (N,) for one chunk of cases."""
        n = codes.shape[0]
        pot: dict[int, np.ndarray] = {}
        msg: dict[int, np.ndarray] = {}
        raw: dict[int, np.ndarray] = {}
        logz = np.zeros(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            for u in reversed(self.order):  # collect
                lu = lay[u]
                if lu["fast"] is not None:
                    fa = lu["fast"]
                    e = np.ones((fa["n_t"], n))
                    for v, _ in lu["evidence"]:
                        col = codes[:, self.rank[v]]
                        if (col < 0).all():
                            continue
                        lik = (col[None, :] == np.arange(self.cards[v])[:, None]) | (col[None, :] < 0)
                        e *= lik[fa["evmap"][v]]
                    for g in lu["leaf_groups"].values():
                        lam = self._leaf_lambda(g, leafvals[u], codes)
                        if lam is not None:
                            e *= lam[g["tmap"]]
                    mm = np.zeros((fa["n_up"] + 1, fa["n_t"]))
                    np.add.at(mm, (lu["up_index"], fa["tpos"]), svals[u])
                    m = mm[:-1] @ e
                    pot[u] = (mm, e, svals[u])
                    z = m.sum(axis=0)
                    logz += np.log(z)
                    raw[u] = m
                    msg[u] = m / np.where(z > 0, z, 1.0)
                    continue
                p = np.repeat(svals[u][:, None], n, axis=1)
                for v, pos in lu["evidence"]:
                    col = codes[:, self.rank[v]]
                    if (col < 0).all():
                        continue
                    lik = (col[None, :] == np.arange(self.cards[v])[:, None]) | (col[None, :] < 0)
                    p *= lik[lu["conf"][:, pos]]
                for g in lu["leaf_groups"].values():
                    lam = self._leaf_lambda(g, leafvals[u], codes)
                    if lam is not None:
                        p *= lam[g["pos"]]
                by_sep: dict[tuple, np.ndarray] = {}
                for w in self.children[u]:
                    sv = self.sep[w]
                    by_sep[sv] = msg[w] if sv not in by_sep else by_sep[sv] * msg[w]
                for sv, m in by_sep.items():
                    p *= m[lu["index"][sv]]
                pot[u] = p
                if self.parent[u] is None:
                    logz += np.log(p.sum(axis=0))
                    continue
                m = np.asarray(lu["up_sum"] @ p)
                z = m.sum(axis=0)
                logz += np.log(z)
                raw[u] = m
                msg[u] = m / np.where(z > 0, z, 1.0)
            beliefs: dict[int, np.ndarray] = {}
            cache: dict = {}
            for u in self.order:  # distribute
                par = self.parent[u]
                if par is None:
                    z = pot[u].sum(axis=0)
                    beliefs[u] = pot[u] / np.where(z > 0, z, 1.0)
                    continue
                sv = self.sep[u]
                if (par, sv) not in cache:
                    cache[(par, sv)] = np.asarray(lay[par]["sum"][sv] @ beliefs[par])
                old = raw[u]
                ratio = np.where(old > 0, cache[(par, sv)] / np.where(old > 0, old, 1.0), 0.0)
                if isinstance(pot[u], tuple):
                    mm, e, psi = pot[u]
                    beliefs[u] = (mm, e, ratio, psi)
                    continue
                ratio = np.concatenate([ratio, np.zeros((1, n))])
                beliefs[u] = pot[u] * ratio[lay[u]["up_index"]]
        logz[~np.isfinite(logz)] = -np.inf
        return beliefs, logz

    def _leaf_lambda(self, g, vals, codes):
        """Product over a leaf group of ``theta_f(x_f | pa)`` per case, ``(n_keys, n)`` (None if no
        leaf of the group is recorded in these cases)."""
        lam = None
        for f, _ in g["leaves"]:
            col = codes[:, self.rank[f]]
            seen = col >= 0
            if not seen.any():
                continue
            v = vals[f][np.where(seen, col, 0)].T  # (n_keys, n)
            v = np.where(seen[None, :], v, 1.0)
            lam = v if lam is None else lam * v
        return lam

    def _groups(self, tables, codes):
        """Yield (layout, static values, case indices) per group of cases sharing the states of
        the split variables; layouts are cached across calls with the same support."""
        static = self._static(tables)
        base = [np.flatnonzero(s.ravel() > 0) for s in static]
        fingerprint = hash(tuple(hash(b.tobytes()) for b in base))
        if getattr(self, "_fingerprint", None) != fingerprint or not hasattr(self, "_split_set"):
            self._split_set = set()
            self._layouts = {}
            self._fingerprint = fingerprint
            self.split = self._split_variables(base, codes)
            self._split_set = set(self.split)
            # configurations with positive prior probability (one propagation); each group of
            # cases then keeps those that agree with its split states
            self._prior_rows = [lu["rows"] for lu in self._layout(static, base, {})]
        split = [x for x in self.split]
        if split:
            keys, inverse = np.unique(codes[:, [self.rank[x] for x in split]], axis=0, return_inverse=True)
            inverse = inverse.ravel()
            order = np.argsort(inverse, kind="stable")
            bounds = np.searchsorted(inverse[order], np.arange(len(keys) + 1))
        else:
            keys, order, bounds = np.zeros((1, 0), dtype=int), np.arange(len(codes)), np.array([0, len(codes)])
        for g, key in enumerate(keys):
            k = tuple(int(c) for c in key)
            # a split variable never recorded in the data is not split on
            if k not in self._layouts:
                self._layouts[k] = self._restricted_layout({x: c for x, c in zip(split, k) if c >= 0})
            lay = self._layouts[k]
            svals = [static[u].ravel()[lay[u]["rows"]] for u in range(len(self.scope))]
            yield lay, (svals, self._leaf_values(tables, lay)), order[bounds[g]:bounds[g + 1]]

    def _leaf_families(self, lay, vals, beliefs, codes, w=None):
        """Leaf families from the host cliques' beliefs: ``P(f, pa | e) = 1[f = x] P(pa | e)`` when
        ``f`` is recorded, ``theta(f | pa) P(pa | e)`` when not. With weights ``w``: the summed
        counts ``(card, n_columns)``; without: per case ``(n, card, n_columns)``."""
        out = {}
        n = codes.shape[0]
        for u, lu in enumerate(lay):
            for g in lu["leaf_groups"].values():
                post = self._group_post(lay, u, g, beliefs[u])  # P(pa | e), (n_keys, n)
                for f, col in g["leaves"]:
                    card = self.cards[f]
                    ncol = math.prod(self.cards[p] for p in self.parents[f])
                    x = codes[:, self.rank[f]]
                    seen = x >= 0
                    theta = vals[u][f]  # (card, n_keys)
                    if w is not None:
                        onehot = np.zeros((card, n))
                        onehot[x[seen], np.flatnonzero(seen)] = w[seen]
                        part = onehot @ post.T + theta * (post @ np.where(seen, 0.0, w))[None, :]
                        full = np.zeros((card, ncol))
                        full[:, col] = part
                        out[f] = full.ravel()
                    else:
                        per = np.where(seen[None, None, :], 0.0, theta[:, :, None] * post[None, :, :])
                        per[x[seen], :, np.flatnonzero(seen)] = post[:, seen].T
                        full = np.zeros((n, card, ncol))
                        full[:, :, col] = per.transpose(2, 0, 1)
                        out[f] = full
        return out

    def family_marginals(self, tables: Mapping[str, np.ndarray], codes: np.ndarray,
                         budget: int = DEFAULT_BUDGET) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per case ``P(v, pa(v) | e)`` as ``(N, card_v, *cards_pa)`` arrays, and ``log P(e)``.

        Impossible cases (``log P(e) = -inf``) have all-zero rows.
        """
        codes = np.asarray(codes)
        n = codes.shape[0]
        out = {v: np.zeros((n, self.cards[v], *[self.cards[p] for p in self.parents[v]])) for v in self.variables}
        logp = np.empty(n)
        leafset = set(self.leaves)
        for lay, (svals, leafvals), idx in self._groups(tables, codes):
            step = max(1, budget // max(sum(lu["per_case"] for lu in lay), 1))
            for start in range(0, len(idx), step):
                sel = idx[start:start + step]
                beliefs, lz = self._calibrate(lay, svals, leafvals, codes[sel])
                logp[sel] = lz
                for v in self.variables:
                    if v in leafset:
                        continue
                    u = self.holder[v]
                    fam = np.asarray(lay[u]["family"][v] @ self._dense(lay, u, beliefs[u]))  # (family size, n)
                    out[v][sel] = fam.T.reshape((len(sel), *out[v].shape[1:]))
                for f, arr in self._leaf_families(lay, leafvals, beliefs, codes[sel]).items():
                    out[f][sel] = arr.reshape((len(sel), *out[f].shape[1:]))
        return out, logp

    def expected_counts(self, tables: Mapping[str, np.ndarray], codes: np.ndarray,
                        weights: np.ndarray | None = None, budget: int = DEFAULT_BUDGET,
                        threads: int | None = None) -> tuple[dict[str, np.ndarray], float, np.ndarray]:
        """Expected family counts ``sum_n w_n P(v, pa(v) | e_n)``, the log-likelihood
        ``sum_n w_n log P(e_n)`` over the possible cases, and ``log P(e_n)`` per case.

        Impossible cases (``-inf``) contribute nothing to the counts or the log-likelihood; the
        caller reports them. Chunks of cases run on ``threads`` threads (default: up to 2; numpy
        and scipy release the GIL in the heavy loops).
        """
        from concurrent.futures import ThreadPoolExecutor

        codes = np.asarray(codes)
        n = codes.shape[0]
        weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        sizes = {v: math.prod(self.cards[x] for x in (v, *self.parents[v])) for v in self.variables}
        logp = np.empty(n)
        tasks = []
        for lay, vals, idx in self._groups(tables, codes):
            step = max(1, budget // max(sum(lu["per_case"] for lu in lay), 1))
            for start in range(0, len(idx), step):
                tasks.append((lay, vals, idx[start:start + step]))
        leafset = set(self.leaves)

        def run(task):
            lay, (svals, leafvals), sel = task
            sub = codes[sel]
            beliefs, lz = self._calibrate(lay, svals, leafvals, sub)
            w = np.where(np.isfinite(lz), weights[sel], 0.0)
            clique_sums = {u: self._belief_sum(lay, u, b, w) for u, b in beliefs.items()}
            fam = {v: lay[self.holder[v]]["family"][v] @ clique_sums[self.holder[v]]
                   for v in self.variables if v not in leafset}
            fam.update(self._leaf_families(lay, leafvals, beliefs, sub, w))
            return sel, lz, fam

        threads = threads or min(2, os.cpu_count() or 1)
        sums = {v: np.zeros(sizes[v]) for v in self.variables}
        # BLAS limited to one thread: its own threads would oversubscribe the cores (2-4x slower
        # on the small matrix products here, measured)
        with _single_blas_thread():
            if threads > 1 and len(tasks) > 1:
                with ThreadPoolExecutor(max_workers=threads) as pool:
                    results = list(pool.map(run, tasks))
            else:
                results = [run(task) for task in tasks]
        for sel, lz, fam in results:
            logp[sel] = lz
            for v in self.variables:
                sums[v] += fam[v]
        counts = {v: sums[v].reshape((self.cards[v], *[self.cards[p] for p in self.parents[v]]))
                  for v in self.variables}
        ok = np.isfinite(logp)
        loglik = float(np.dot(weights[ok], logp[ok]))
        return counts, loglik, logp


def _single_blas_thread():
    """Limit BLAS to one thread while our own worker threads run (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")

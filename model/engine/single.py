"""Single-case plans: one query, as few numpy calls as possible.

The batched plans of :mod:`.core` are built for thousands of cases: many small factors, each
multiplied in at the right moment, so that no case ever touches a whole clique.  For one case
the balance is the other way round: every numpy call costs microseconds of overhead whatever
its size, and the cliques of a diagnostic network are small (a few thousand states).  A
:class:`SingleCasePlan` gives every junction-tree node ``u`` one dense potential::

    phi_u = static_u  x  exp(e_u - max e_u)        e_u = sum over findings held by u of
                                                         row(finding, observed state)

``static_u`` is the product of the tables the node holds (computed once); ``e_u`` lives on
``E_u``, the few variables the node's findings depend on (the parents of its leaf findings,
and in-tree findings themselves), and is one gather-and-sum of precomputed log rows (``NEG``
for zeros), so the ``exp`` touches ``|E_u|`` numbers, not the clique.  Soft evidence adds
``log(L @ P)`` (leaves) or ``log L``.  Nodes without evidence, and collect messages out of
subtrees without evidence, are the same for every case of the plan and are computed when the
plan is compiled.

Each node's axes are ordered separator-to-parent first (targets first at a root), so that a
message is a product of broadcast views reshaped to ``(separator, rest)`` and summed along
its contiguous last axis; numpy sums short middle axes several times slower.  Messages are
divided by their totals and the logs of the totals, the potentials' shifts and each root's
mass give ``log P(e)``.
"""

from __future__ import annotations

import math

import numpy as np

from .blocks import IMPOSSIBLE, NEG

__all__ = ["SingleCasePlan"]


def _log(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        out = np.log(a)
    out[a == 0] = NEG
    return out


def _broadcast(table: np.ndarray, vs, scope: tuple, cards) -> np.ndarray:
    """``table`` over variables ``vs`` laid out over ``scope`` (missing axes of length 1)."""
    order = sorted(range(len(vs)), key=lambda i: scope.index(vs[i]))
    t = table.transpose(order)
    present = set(vs)
    return t.reshape([cards[v] if v in present else 1 for v in scope])


class SingleCasePlan:
    """A compiled plan for one case (see the module docstring).

    Built from a :class:`.forest.Forest`; :meth:`run` takes the likelihood arrays of one case
    and returns ``(marginals, log P(e))``, or None when the evidence is impossible.
    """

    def __init__(self, forest, cards, parents, tables, rank, evidence, targets, pair):
        fo = forest
        self.cards = cards
        self.nodes = list(fo.order)
        parent = fo.parent
        keys = list(targets) + ([pair] if pair is not None else [])
        key_vars = [v for k in keys for v in (k if isinstance(k, tuple) else (k,))]

        def by_rank(vs):
            return sorted(vs, key=rank.get)

        # axis order of each node: separator to the parent first (at a root: targets first)
        self.scope = {}
        for u in self.nodes:
            first = (fo.scope[u] & fo.scope[parent[u]]) if parent[u] is not None else \
                {v for v in key_vars if v in fo.scope[u]}
            first = by_rank(first)
            if parent[u] is None:
                first = [v for v in dict.fromkeys(key_vars) if v in first]
            self.scope[u] = tuple(first) + tuple(by_rank(fo.scope[u] - set(first)))
        self.shape = {u: tuple(cards[v] for v in self.scope[u]) for u in self.nodes}

        # static part and evidence rows of each node
        self.static: dict[int, np.ndarray] = {}
        self.static_shift: dict[int, float] = {}
        self.ev_scope: dict[int, tuple] = {}
        self.ev_shape: dict[int, tuple] = {}
        self.ev_view: dict[int, tuple] = {}
        self.rows: dict[int, np.ndarray] = {}
        self.row_of: dict[str, tuple[int, int]] = {}
        self.leaf_lin: dict[str, np.ndarray] = {}
        self.lik_view: dict[str, tuple] = {}
        ev_at: dict[int, list] = {u: [] for u in self.nodes}
        for u, fs in fo.leaf_groups.items():
            ev_at[u].extend(fs)
        for u in self.nodes:
            ev_at[u].extend(fo.liks[u])
        self.impossible_const = False
        for u in self.nodes:
            sc, shp = self.scope[u], self.shape[u]
            st = np.ones(shp)
            for v in fo.tabs[u]:
                st = st * _broadcast(tables[v], (v, *parents[v]), sc, cards)
            mx = float(st.max())
            if not mx > 0.0:
                self.impossible_const = True
                mx = 1.0
            self.static[u] = st / mx
            self.static_shift[u] = math.log(mx)
            if not ev_at[u]:
                continue
            need = set()
            for v in ev_at[u]:
                need |= set(parents[v]) if v in fo.leaf_groups.get(u, ()) else {v}
            esc = tuple(v for v in sc if v in need)
            eshp = tuple(cards[v] for v in esc)
            size = math.prod(eshp)
            self.ev_scope[u], self.ev_shape[u] = esc, eshp
            self.ev_view[u] = tuple(cards[v] if v in need else 1 for v in sc)
            rows = [np.zeros((1, size))]
            n_rows = 1
            for v in ev_at[u]:
                if v in fo.leaf_groups.get(u, ()):
                    t = _broadcast(tables[v], (v, *parents[v]), (v, *esc), cards)
                    lin = np.ascontiguousarray(
                        np.broadcast_to(t, (cards[v], *eshp)).reshape(cards[v], size))
                    self.leaf_lin[v] = lin
                    rows.append(_log(lin))
                else:
                    ax = esc.index(v)
                    ind = np.full((cards[v], *eshp), NEG)
                    for s in range(cards[v]):
                        idx = [slice(None)] * len(eshp)
                        idx[ax] = s
                        ind[(s, *idx)] = 0.0
                    rows.append(ind.reshape(cards[v], size))
                    self.lik_view[v] = tuple(cards[v] if x == v else 1 for x in esc)
                self.row_of[v] = (u, n_rows)
                n_rows += cards[v]
            self.rows[u] = np.ascontiguousarray(np.concatenate(rows))
        self.evidence = [v for v in evidence if v in self.row_of]

        # targets: the shallowest node holding each (then the smallest)
        depth = {}
        for u in self.nodes:
            depth[u] = 0 if parent[u] is None else depth[parent[u]] + 1
        self.holder = {}
        need_nodes = set()
        for k in keys:
            vs = set(k) if isinstance(k, tuple) else {k}
            u = min((x for x in self.nodes if vs <= fo.scope[x]),
                    key=lambda x: (depth[x], math.prod(self.shape[x]), x))
            self.holder[k] = u
            while parent[u] is not None:
                need_nodes.add(u)
                u = parent[u]
        self.roots = list(fo.roots)
        self.nbrs = {u: ([parent[u]] if parent[u] is not None else []) + fo.children[u]
                     for u in self.nodes}
        self.collect = [(u, parent[u]) for u in reversed(self.nodes) if parent[u] is not None]
        self.distribute = [(parent[u], u) for u in self.nodes if u in need_nodes]
        # message a -> b: a's product summed to the separator (laid out in a's axis order),
        # then seen in b's frame through a transpose and a broadcast shape
        self.msg_out = {}
        self.msg_in = {}
        for x, u in self.collect:
            for a, b in ((x, u), (u, x)):
                sep = fo.scope[a] & fo.scope[b]
                sa = self.scope[a]
                lead = all(v in sep for v in sa[:len(sep)])
                axes = tuple(i for i, v in enumerate(sa) if v not in sep)
                sep_order = tuple(v for v in sa if v in sep)
                sep_shape = tuple(cards[v] for v in sep_order)
                self.msg_out[(a, b)] = (lead, math.prod(sep_shape), sep_shape, axes)
                in_b = [v for v in self.scope[b] if v in sep]
                perm = tuple(sep_order.index(v) for v in in_b)
                shape_b = tuple(cards[v] if v in sep else 1 for v in self.scope[b])
                self.msg_in[(a, b)] = (None if perm == tuple(range(len(perm))) else perm, shape_b)

        # evidence-free parts: the same for every case of this plan
        held = {u: u in self.rows for u in self.nodes}
        quiet = {}
        for u in reversed(self.nodes):  # children first
            quiet[u] = not held[u] and all(quiet[w] for w in fo.children[u])
        self.msg_const: dict = {}
        self.lz_const = sum(self.static_shift.values())
        for a, b in self.collect:
            if quiet[a]:
                m, tot = self._message(a, b, self.static, self.msg_const)
                if not tot > 0.0:
                    self.impossible_const = True
                    tot = 1.0
                self.msg_const[(a, b)] = m / tot
                self.lz_const += math.log(tot)
        self.collect_live = [(a, b) for a, b in self.collect if not quiet[a]]
        self.live_nodes = [u for u in self.nodes if held[u]]

    # ------------------------------------------------------------------ running
    def run(self, lik: dict):
        """Posterior of every target (and the pair) for one case; ``lik`` maps evidence
        variables to ``(card,)`` or ``(1, card)`` likelihood arrays (values already checked
        to be finite and non-negative).  Returns ``(marginals, log P(e))``, or None when the
        evidence is impossible."""
        if self.impossible_const:
            return None
        picks: dict[int, list[int]] = {u: [] for u in self.live_nodes}
        soft = []
        for v in self.evidence:
            row = lik[v].tolist()
            if isinstance(row[0], list):
                row = row[0]
            u, r0 = self.row_of[v]
            if row.count(1.0) == 1 and sum(row) == 1.0:  # one-hot (entries are >= 0)
                picks[u].append(r0 + row.index(1.0))
            else:
                soft.append(v)
        lz = self.lz_const
        phi = dict(self.static)
        for u in self.live_nodes:
            p = picks[u]
            rows = self.rows[u]
            if not p:
                e = rows[0].copy()
            elif len(p) == 1:
                e = rows[p[0]].copy()
            else:
                e = rows[p[0]] + rows[p[1]]
                for i in p[2:]:
                    e += rows[i]
            for v in soft:
                if self.row_of[v][0] != u:
                    continue
                L = np.asarray(lik[v], dtype=np.float64).reshape(-1)
                if v in self.leaf_lin:
                    e += _log(L @ self.leaf_lin[v])
                else:
                    e += np.broadcast_to(_log(L).reshape(self.lik_view[v]),
                                         self.ev_shape[u]).reshape(-1)
            mx = e.max()
            if not mx > IMPOSSIBLE:
                return None
            e -= mx
            np.exp(e, out=e)
            phi[u] = self.static[u] * e.reshape(self.ev_view[u])
            lz += float(mx)
        msgs = dict(self.msg_const)
        for a, b in self.collect_live:
            m, tot = self._message(a, b, phi, msgs)
            if not tot > 0.0:
                return None
            m /= tot
            msgs[(a, b)] = m
            lz += math.log(tot)
        joints = {}
        for r in self.roots:  # a root's joint needs only collect messages
            j = self._product(r, phi, msgs, None)
            mass = float(j.sum())
            if not mass > 0.0:
                return None
            joints[r] = (j, mass)
            lz += math.log(mass)
        for a, b in self.distribute:
            m, tot = self._message(a, b, phi, msgs)
            m /= tot
            msgs[(a, b)] = m
        out = {}
        for k, u in self.holder.items():
            if u not in joints:
                j = self._product(u, phi, msgs, None)
                joints[u] = (j, float(j.sum()))
            j, mass = joints[u]
            sc = self.scope[u]
            keep = (k if k[0] != k[1] else k[:1]) if isinstance(k, tuple) else (k,)
            if sc[:len(keep)] == keep:
                r = j.reshape(math.prod(j.shape[:len(keep)]), -1).sum(axis=1)
                r = r.reshape(j.shape[:len(keep)])
            else:
                axes = tuple(i for i, v in enumerate(sc) if v not in keep)
                r = j.sum(axis=axes) if axes else j
                if len(keep) == 2 and sc.index(keep[0]) > sc.index(keep[1]):
                    r = r.T
            out[k] = (r / mass)[None]
        return out, lz

    def _product(self, u, phi, msgs, exclude):
        t = phi[u]
        for x in self.nbrs[u]:
            if x != exclude:
                m = msgs[(x, u)]
                perm, shape = self.msg_in[(x, u)]
                if perm is not None:
                    m = m.transpose(perm)
                t = t * m.reshape(shape)
        return t

    def _message(self, a, b, phi, msgs):
        """(message a -> b before normalisation, its total)."""
        t = self._product(a, phi, msgs, b)
        lead, size, shape, axes = self.msg_out[(a, b)]
        if not axes:
            m = t.copy()
        elif lead:
            m = t.reshape(size, -1).sum(axis=1).reshape(shape)
        else:
            m = t.sum(axis=axes)
        return m, float(m.sum())

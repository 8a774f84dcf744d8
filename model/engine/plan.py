"""Batched plans: the junction forest of a query compiled into contractions.

:func:`compile_batch_plan` takes the forest of a query (:mod:`.forest`), absorbs its leaf
findings into blocks (:mod:`.blocks`), bounds each node's fan-out with helper nodes, and
compiles every message, every target read-out and every root's total into a
:class:`.contraction.Contraction`.  :class:`.core.JunctionTreeEngine` caches and runs the
result (see the package docstring for the algorithm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import opt_einsum as oe

from .blocks import FindingBlock, group_leaves
from .contraction import Contraction
from .forest import build_forest

__all__ = ["BatchPlan", "compile_batch_plan"]

#: A junction-tree node gets at most this many children (helper nodes take the rest).
_MAX_CHILDREN = 3


@dataclass
class BatchPlan:
    """A compiled propagation schedule for one (evidence set, targets) pair."""

    schedule: list  # (edge, contraction, is_collect); run in order
    roots: list  # per tree: ("own", contraction to a scalar) or ("group", index in groups)
    groups: list  # (contraction to a joint over held targets, [(key, axes to sum out)])
    per_case: int  # largest intermediate per case, in elements
    n_nodes: int
    max_scope: int
    blocks: list  # FindingBlock per group of leaf findings (their columns follow leaf_order)
    leaf_order: list  # leaf findings, block by block


def compile_batch_plan(variables, cards, parents, tables, rank, evidence: frozenset, targets: tuple,
                       pair: tuple | None) -> BatchPlan:
    """Compile a plan: prune, triangulate, build and root the junction forest, bound the
    fan-out with helper nodes, assign factors, then compile every message (collect, then
    distribute towards target holders), each holder's joint and each root's total."""
    fo = build_forest(variables, cards, parents, rank, evidence,
                      targets, pair)
    scope, parent, order, roots, children = fo.scope, fo.parent, fo.order, fo.roots, fo.children
    tabs, liks, size = fo.tabs, fo.liks, fo.size
    blocks: list[tuple[int, FindingBlock]] = []
    for h in sorted(fo.leaf_groups):
        for group in group_leaves(fo.leaf_groups[h], parents, size):
            blocks.append((h, FindingBlock(group, cards, parents, tables,
                                           rank)))

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
        for v in sorted(tabs[u], key=lambda v: -len(parents[v])):
            t, vs = tables[v], (v, *parents[v])
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
        for bi in node_blocks.get(u, ()):
            ins.append((("msg", ("block", bi)), blocks[bi][1].vars))
        for w in nb_all[u]:
            if w != exclude:
                ins.append((("msg", (w, u)), layout[(w, u)]))
        return ins

    node_blocks: dict[int, list[int]] = {}
    for bi, (h, _) in enumerate(blocks):
        node_blocks.setdefault(h, []).append(bi)

    def sep(u, w):
        return tuple(sorted(scope[u] & scope[w], key=rank.get))

    # Messages keep the axis order their contraction produces; consumers (always compiled
    # after the producer) read it from ``layout``.
    schedule = []
    layout: dict[tuple[int, int], tuple[str, ...]] = {}

    def message(u, w, is_collect):
        con = Contraction(inputs(u, w), sep(u, w), cards, keep_layout=True)
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
            con = Contraction(inputs(u, None), outv, cards)
            readers = [(pair, None)]
        else:
            outv = tuple(sorted(keys, key=rank.get))
            con = Contraction(inputs(u, None), outv, cards, keep_layout=True)
            lay = con.out_layout
            readers = [(k, tuple(i for i, x in enumerate(lay) if x != k)) for k in keys]
        groups.append((u, con, readers))
    root_of_group = {u: gi for gi, (u, _, _) in enumerate(groups)}
    root_c = []
    for r in roots:
        if r in root_of_group:
            root_c.append(("group", root_of_group[r]))
        else:
            root_c.append(("own", Contraction(inputs(r, None), (), cards)))
    conts = ([c for _, c, _ in schedule] + [c for _, c, _ in groups]
             + [c for kind, c in root_c if kind == "own"])
    per_case = max([c.largest for c in conts] + [b.size for _, b in blocks] + [1])
    leaf_order = [f for _, b in blocks for f in b.findings]
    return BatchPlan(schedule, root_c, [(c, readers) for _, c, readers in groups], per_case,
                 len(order), max((size(scope[u]) for u in order), default=1),
                 [b for _, b in blocks], leaf_order)

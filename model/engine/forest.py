"""The junction forest of one query: pruning, leaf findings, triangulation, rooting.

Shared by the batched plans of :mod:`.core` and the single-case plans of :mod:`.single`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from .triangulate import ancestral_set, best_elimination, junction_forest, moral_graph

__all__ = ["Forest", "build_forest"]


@dataclass
class Forest:
    """A rooted junction forest over the *core* variables of a query.

    ``leaves`` are leaf findings (evidence variables with no children left after pruning, not
    targets): they are kept out of the tree, their parents married, and each is held by the
    smallest node containing its parents (``leaf_groups``: node -> leaves).  ``tabs`` and
    ``liks`` give, per node, the core variables whose table / likelihood it holds.
    """

    core: list
    leaves: list
    scope: dict  # node -> frozenset of variables
    parent: dict  # node -> parent node or None
    order: list  # preorder over the forest
    roots: list
    children: dict
    tabs: dict
    liks: dict
    leaf_groups: dict
    tset: set
    size: Callable


def build_forest(variables: Sequence[str], cards: Mapping[str, int],
                 parents: Mapping[str, Sequence[str]], rank: Mapping[str, int], evidence,
                 targets, pair) -> Forest:
    """Prune to the ancestors of evidence and targets, set leaf findings aside, triangulate
    the rest (min-fill / min-weight), build the junction forest and root each tree at the
    node holding most targets (then the biggest node)."""
    keep = ancestral_set(set(evidence) | set(targets) | set(pair or ()), parents)
    nodes = [v for v in variables if v in keep]
    tset = set(targets) | (set(pair) if pair else set())
    has_child = {p for v in nodes for p in parents[v]}
    leaves = [v for v in nodes if v in evidence and v not in tset and v not in has_child
              and parents[v]]
    leafset = set(leaves)
    core = [v for v in nodes if v not in leafset]
    adj = moral_graph(core, parents)
    for f in leaves:
        pa = parents[f]
        for i, a in enumerate(pa):
            for b in pa[i + 1:]:
                adj[a].add(b)
                adj[b].add(a)
    if pair is not None and pair[0] != pair[1]:
        a, b = pair
        adj[a].add(b)
        adj[b].add(a)
    scope, nbrs = junction_forest(best_elimination(adj, cards, rank))

    def size(s):
        return math.prod(cards[v] for v in s)

    def smallest_holding(fam):
        return min((i for i in scope if fam <= scope[i]), key=lambda i: (size(scope[i]), i))

    tabs: dict[int, list[str]] = {i: [] for i in scope}
    liks: dict[int, list[str]] = {i: [] for i in scope}
    for v in core:
        h = smallest_holding({v, *parents[v]})
        tabs[h].append(v)
        if v in evidence:
            liks[h].append(v)
    leaf_groups: dict[int, list[str]] = {}
    for f in leaves:
        leaf_groups.setdefault(smallest_holding(set(parents[f])), []).append(f)

    parent: dict[int, int | None] = {}
    order: list[int] = []
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
    return Forest(core, leaves, scope, parent, order, roots, children, tabs, liks, leaf_groups,
                  tset, size)

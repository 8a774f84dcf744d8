"""Exploiting structural zeros: merge a variable into its parents' group when their joint
support is sparse.

Many networks contain near-deterministic structure: in a diagnostic network a disease has
one to three possible sites, so P(site | disease) is mostly zeros, and the junction tree
carries ``card(disease) x card(site)`` states where only a few are possible. Before planning,
:class:`SupportMerge` fuses such a child into the group of its parents, giving one compound
variable whose states are only the *possible* joint configurations (its *support*).
Every clique holding the compound is then smaller by the sparsity factor.

Rules (greedy, in topological order):

* a variable ``y`` can join group ``G`` only when all of ``y``'s parents are members of ``G``
  (so the compound keeps the external parents of its first member, and the graph stays acyclic);
* the joint support of ``G`` and ``y`` must be at most ``max_ratio`` of ``|G| x card(y)``;
* the merge is kept only if it lowers the total clique state space of the whole network
  (measured by the same triangulation the engine uses), so it can never make a plan worse.

Evidence, targets and pair queries are translated between the original and merged variables:
a member's likelihood becomes a likelihood over the compound (gathered at the member's state
in each support row, multiplied over observed members), and a member's marginal is the
compound's marginal summed over the support rows with that member state. Results are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .triangulate import best_elimination, moral_graph

__all__ = ["SupportMerge"]

#: a merge is considered only when the joint support is at most this share of the full product
DEFAULT_MAX_RATIO = 0.6
#: at most this many candidate merges are evaluated (each costs one triangulation)
MAX_CANDIDATES = 64


@dataclass
class _Group:
    members: list[str]  # first member is the head (its parents are the group's external parents)
    support: np.ndarray  # (S, len(members)) state index of each member in each possible row
    table: np.ndarray  # (S, *cards of the head's parents): P(row | external parents)


class SupportMerge:
    """The merged network and the maps between original and merged variables.

    Build with :meth:`build`; ``None`` is returned when no merge helps. Attributes of the merged
    network: ``variables`` (group names, topological), ``cards``, ``parents``, ``tables``.
    """

    def __init__(self, variables, cards, parents, groups: dict[str, _Group]):
        self.original_cards = dict(cards)
        self.groups = groups
        self.group_of: dict[str, str] = {}
        self.column: dict[str, int] = {}
        for g, grp in groups.items():
            for c, m in enumerate(grp.members):
                self.group_of[m] = g
                self.column[m] = c
        self.variables = [v for v in variables if v in groups]
        self.cards = {g: int(groups[g].support.shape[0]) for g in self.variables}
        self.parents = {}
        self.tables = {}
        for g in self.variables:
            grp = groups[g]
            ext = list(parents[grp.members[0]])
            new_parents = list(dict.fromkeys(self.group_of[p] for p in ext))
            self.parents[g] = new_parents
            self.tables[g] = self._gather(grp.table, ext, new_parents)
        self._indicator: dict[str, np.ndarray] = {}
        self._identity = {g for g, grp in groups.items() if len(grp.members) == 1
                          and np.array_equal(grp.support[:, 0], np.arange(cards[grp.members[0]]))}

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, variables: Sequence[str], cards: Mapping[str, int], parents: Mapping[str, Sequence[str]],
              tables: Mapping[str, np.ndarray], max_ratio: float = DEFAULT_MAX_RATIO) -> "SupportMerge | None":
        """Greedy merges that shrink the junction tree; ``None`` when there is none."""
        groups = {v: _Group([v], np.arange(cards[v])[:, None], np.asarray(tables[v], dtype=np.float64))
                  for v in variables}
        group_of = {v: v for v in variables}
        rank = {v: i for i, v in enumerate(variables)}
        cost = _total_clique_size(variables, groups, group_of, parents, rank)
        merged = False
        tried = 0
        for y in variables:
            ps = list(parents[y])
            heads = {group_of[p] for p in ps}
            if len(heads) != 1 or group_of[y] != y or len(groups[y].members) > 1:
                continue
            g = heads.pop()
            grp = groups[g]
            # P(y | parents) for each support row of g: (card_y, S)
            idx = tuple(grp.support[:, grp.members.index(p)] for p in ps)
            ty = np.asarray(tables[y], dtype=np.float64)[(slice(None),) + idx]
            nz = ty > 0
            n_new = int(nz.sum())
            if n_new > max_ratio * grp.support.shape[0] * cards[y] or tried >= MAX_CANDIDATES:
                continue
            tried += 1
            rows, ys = np.nonzero(nz.T)  # sorted by support row, then state of y
            trial = dict(groups)
            extra = (1,) * (grp.table.ndim - 1)
            trial[g] = _Group(grp.members + [y], np.column_stack([grp.support[rows], ys]),
                              grp.table[rows] * ty[ys, rows].reshape(-1, *extra))
            del trial[y]
            trial_of = dict(group_of)
            trial_of[y] = g
            new_cost = _total_clique_size(variables, trial, trial_of, parents, rank)
            if new_cost < cost:
                groups, group_of, cost, merged = trial, trial_of, new_cost, True
        if not merged:
            return None
        return cls(variables, cards, parents, groups)

    # ------------------------------------------------------------------ translation
    def _gather(self, table: np.ndarray, orig_parents: Sequence[str], new_parents: Sequence[str]) -> np.ndarray:
        """Re-index the parent axes of ``table`` (own axis first) from original variables to groups."""
        r = len(new_parents)
        idx = [np.arange(table.shape[0]).reshape((-1,) + (1,) * r)]
        for p in orig_parents:
            g = self.group_of[p]
            j = new_parents.index(g)
            shape = [1] * (r + 1)
            shape[j + 1] = -1
            idx.append(self.groups[g].support[:, self.column[p]].reshape(shape))
        return table[tuple(idx)]

    def likelihoods(self, likelihoods: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Original-variable likelihoods -> compound likelihoods (product over observed members)."""
        out: dict[str, np.ndarray] = {}
        for v, L in likelihoods.items():
            if v not in self.group_of:
                raise KeyError(f"unknown variable {v!r}")
            g = self.group_of[v]
            L = np.asarray(L, dtype=np.float64)
            if L.shape[-1] != self.original_cards[v]:
                raise ValueError(f"likelihood of {v!r} has {L.shape[-1]} columns, expected {self.original_cards[v]}")
            grp = self.groups[g]
            if g in self._identity:
                part = L  # a group of one with every state possible: nothing to translate
            else:
                part = L[..., grp.support[:, self.column[v]]]
            if g in out:
                a, b = out[g], part
                if a.ndim == 2 and b.ndim == 2 and a.shape[0] != b.shape[0]:
                    raise ValueError(f"likelihoods disagree on the number of cases ({a.shape[0]} vs {b.shape[0]})")
                out[g] = a * b
            else:
                out[g] = part
        return out

    def indicator(self, v: str) -> np.ndarray:
        """(S, card_v) 0/1 matrix: which state of ``v`` each support row of its group holds."""
        if v not in self._indicator:
            g = self.group_of[v]
            col = self.groups[g].support[:, self.column[v]]
            m = np.zeros((len(col), self.original_cards[v]))
            m[np.arange(len(col)), col] = 1.0
            self._indicator[v] = m
        return self._indicator[v]

    def marginal(self, v: str, group_marginal: np.ndarray) -> np.ndarray:
        """A member's marginal from its group's marginal, shape (N, card_v)."""
        if len(self.groups[self.group_of[v]].members) == 1:
            return group_marginal
        return group_marginal @ self.indicator(v)

    def pair_from_group(self, a: str, b: str, group_marginal: np.ndarray) -> np.ndarray:
        """P(a, b | e) for two members of one group, shape (N, card_a, card_b)."""
        ia, ib = self.indicator(a), self.indicator(b)
        return np.einsum("ns,sa,sb->nab", group_marginal, ia, ib)

    def pair_from_groups(self, a: str, b: str, joint: np.ndarray) -> np.ndarray:
        """P(a, b | e) from the joint of their two groups, shape (N, card_a, card_b)."""
        return np.einsum("nst,sa,tb->nab", joint, self.indicator(a), self.indicator(b))


def _total_clique_size(variables, groups, group_of, parents, rank) -> int:
    """Total state space of the cliques the engine's triangulation finds on the merged graph."""
    nodes = [v for v in variables if v in groups]
    gparents = {g: list(dict.fromkeys(group_of[p] for p in parents[groups[g].members[0]])) for g in nodes}
    cards = {g: int(groups[g].support.shape[0]) for g in nodes}
    adj = moral_graph(nodes, gparents)
    elim = best_elimination(adj, cards, {g: rank[g] for g in nodes})
    return sum(math.prod(cards[x] for x in clique) for _, clique in elim)

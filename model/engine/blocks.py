"""Leaf findings absorbed by matrix products at the junction-tree node that holds them.

Most evidence in a diagnostic network sits on *leaf findings*: observed variables with no
children in the pruned network.  A leaf ``f`` with parents ``pa`` only ever contributes the
factor ``P(f = e | pa)`` (hard evidence), ``sum_s L(s) P(s | pa)`` (soft evidence) or 1 (not
observed).  Giving each leaf its own junction-tree node costs a message, an allocation and
several numpy calls per finding; instead the leaves held by one node with the same parents
(groups merged while their parents span at most ``SMALL_SCOPE`` states, see
:func:`group_leaves`) form a :class:`FindingBlock` with one per-case potential over the union
of their parents:

* up to ``LINEAR_MAX`` findings: the product of ``L_f @ P(f | pa)`` (one BLAS product per
  finding; an all-ones row gives 1, a one-hot row the table column), no logarithms;
* more: one matrix product in log space for all of them::

      log B[pa, n] = sum_f log P(f = e_nf | pa) = W[pa, :] @ X[:, n]

  where ``X`` holds the likelihood rows and ``W`` the log-tables broadcast to the parent
  union.  Rows are told apart once per query (:meth:`FindingBlock.prepare`): a missing
  finding's column sum of ``W`` is subtracted, a soft row gets ``log(L @ P)`` instead, and a
  zero table entry is the finite ``NEG`` (with zeros in the tables the non-hard rows are
  zeroed before the product, so that ``NEG`` never cancels).  Each case is shifted by its
  maximum before ``exp`` (the shift goes into ``log P(e)``), so nothing underflows however
  many findings a block holds; a case whose maximum is below ``IMPOSSIBLE`` is impossible.

Relative rounding error is about ``|log B| * 2**-52`` (1e-14 for 100 findings), far inside
the engine's 1e-9 agreement with pgmpy.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

__all__ = ["FindingBlock", "group_leaves", "NEG", "IMPOSSIBLE"]

#: log of a zero table entry: finite, so that an unobserved finding (X = 0) adds exactly 0
NEG = -1e300
#: a potential row whose maximum is below this has no possible configuration
IMPOSSIBLE = -1e250
#: blocks of at most this many findings multiply their tables directly (no log, no exp)
LINEAR_MAX = 6
#: groups of findings are merged into one block while their parents span at most this many states
SMALL_SCOPE = 64


class FindingBlock:
    """Leaf findings of one junction-tree node and their per-case potential.

    ``vars`` is the union of the findings' parents in network order, ``shape`` their cards.
    ``lin`` stacks the findings' tables broadcast to ``vars`` (shape ``(sum of cards, prod of
    shape)``); ``logw_t`` is the transpose of its logarithm (``NEG`` for zeros) and ``lin_t``
    of itself.  ``linear`` says which of the two ways of the module docstring the block uses.
    Call :meth:`prepare` once per query, then :meth:`potential` per chunk of cases.
    """

    def __init__(self, findings: Sequence[str], cards: Mapping[str, int],
                 parents: Mapping[str, Sequence[str]], tables: Mapping[str, np.ndarray],
                 rank: Mapping[str, int]):
        self.findings = list(findings)
        self.vars = tuple(sorted({p for f in findings for p in parents[f]}, key=rank.get))
        shape = tuple(cards[v] for v in self.vars)
        self.shape = shape
        self.size = math.prod(shape)
        rows = []
        for f in self.findings:
            pa = list(parents[f])
            t = np.asarray(tables[f], dtype=np.float64)
            order = sorted(range(len(pa)), key=lambda i: self.vars.index(pa[i]))
            t = t.transpose((0, *[i + 1 for i in order]))
            present = {pa[i] for i in order}
            t = t.reshape((cards[f], *[cards[v] if v in present else 1 for v in self.vars]))
            rows.append(np.broadcast_to(t, (cards[f], *shape)).reshape(cards[f], self.size))
        self.lin = np.ascontiguousarray(np.concatenate(rows))
        with np.errstate(divide="ignore"):
            logw = np.log(self.lin)
        logw[self.lin == 0] = NEG
        self.logw_t = np.ascontiguousarray(logw.T)
        self.lin_t = np.ascontiguousarray(self.lin.T)
        self.cards = [int(cards[f]) for f in self.findings]
        self.offsets = np.concatenate([[0], np.cumsum(self.cards)]).astype(int)
        self.cards_col = np.array(self.cards, dtype=np.float64)[:, None]
        self.has_zero = bool((self.lin == 0).any())
        self.segment_bounds = list(zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist()))
        self.segments = np.zeros((len(self.cards), int(self.offsets[-1])))
        for j in range(len(self.cards)):
            self.segments[j, self.offsets[j]:self.offsets[j + 1]] = 1.0
        # per finding, the sum of its log rows (what an all-ones row adds to W @ x)
        self.colsum_t = np.ascontiguousarray(np.stack(
            [logw[a:b].sum(axis=0) for a, b in zip(self.offsets[:-1], self.offsets[1:])]).T)
        # A few findings are multiplied in directly (a matrix product each, no exp), as long
        # as their smallest entries cannot underflow together.
        positive = self.lin[self.lin > 0]
        tiny = float(positive.min()) if positive.size else 1.0
        k = len(self.findings)
        self.linear = k <= LINEAR_MAX and k * math.log10(tiny) > -280

    @property
    def width(self) -> int:
        """Number of evidence columns (sum of the findings' cards)."""
        return int(self.offsets[-1])

    def prepare(self, x: np.ndarray):
        """Sort a batch's rows into hard, unobserved and soft, once per query.

        ``x`` lists the block's findings' batch-last likelihoods, ``(card, N)`` each, entries
        >= 0 (checked by the engine).  With entries >= 0 a segment is one-hot iff its sum and its sum of
        squares are 1, and all ones iff both equal its length; anything else is soft
        evidence.  Without zero table entries the product ``W @ x`` is later taken on the raw
        rows and each unobserved finding's column sum of ``W`` subtracted; with zeros
        (``NEG`` entries, which must not cancel) the non-hard segments are zeroed here.
        Returns the state :meth:`potential` reads.
        """
        if self.linear:  # x: one batch-last array per finding (views, no copy)
            return x, None, None, None
        x = np.concatenate(x, axis=0)
        s1 = self.segments @ x  # per-finding sums (a 0/1 matrix product beats reduceat)
        s2 = self.segments @ (x * x)
        hard = (s1 == 1.0) & (s2 == 1.0)
        unobserved = (s1 == self.cards_col) & (s2 == self.cards_col)
        soft = ~(hard | unobserved)
        soft = soft if soft.any() else None
        if self.has_zero:
            return x * np.repeat(hard, self.cards, axis=0), None, soft, x
        return x, unobserved.astype(np.float64), soft, x

    def potential(self, state, start: int, stop: int):
        """Per-case potential over ``vars`` for cases ``start:stop``, and the log of the shift
        taken out of it.

        ``state`` comes from :meth:`prepare`.  Returns ``(B, shift)``: ``B`` of shape
        ``(*shape, m)``, each case's maximum 1 (all zero for impossible cases), and ``shift``
        the per-case log factor taken out (0 when impossible, or for a single finding
        multiplied in directly).
        """
        xu, unobserved, soft, raw = state
        m = stop - start
        if self.linear:
            b = None
            for (lo, hi), xf in zip(self.segment_bounds, xu):
                f = self.lin_t[:, lo:hi] @ xf[:, start:stop]
                if b is None:
                    b = f
                else:
                    b *= f
            return b.reshape(self.shape + (m,)), 0.0
        x = xu[:, start:stop]
        logb = self.logw_t @ x
        if unobserved is not None:
            logb -= self.colsum_t @ unobserved[:, start:stop]
        if soft is not None and soft[:, start:stop].any():
            soft = soft[:, start:stop]
            for j in np.flatnonzero(soft.any(axis=1)):
                cols = np.flatnonzero(soft[j])
                lo, hi = self.offsets[j], self.offsets[j + 1]
                xs = raw[lo:hi, start:stop][:, cols]
                with np.errstate(divide="ignore"):
                    fix = np.log(self.lin_t[:, lo:hi] @ xs)
                if unobserved is not None:  # take out what W @ x put there
                    fix -= self.logw_t[:, lo:hi] @ xs
                logb[:, cols] += fix
        mx = logb.max(axis=0)
        ok = mx > IMPOSSIBLE
        if ok.all():
            logb -= mx
            np.exp(logb, out=logb)
        else:
            mx = np.where(ok, mx, 0.0)
            with np.errstate(invalid="ignore"):
                logb -= mx
                np.exp(logb, out=logb)
            logb[:, ~ok] = 0.0
        return logb.reshape(self.shape + (m,)), mx


def group_leaves(leaves, parents, size, small: int = SMALL_SCOPE):
    """Split the leaves held by one node into blocks.

    Leaves with the same parents form a group; two groups are merged (smallest union first)
    while their union has at most ``small`` states.  Merging a group into one over more
    parents would make every one of its findings pay for the larger scope (an ``exp`` per
    state and case in log space), so larger groups stay apart and the contraction planner
    multiplies them in where it is cheapest.
    """
    groups: dict[frozenset, list[str]] = {}
    for f in leaves:
        groups.setdefault(frozenset(parents[f]), []).append(f)
    items = list(groups.items())
    while len(items) > 1:
        best = None
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                un = items[i][0] | items[j][0]
                su = size(un)
                if su <= small and (best is None or su < best[0]):
                    best = (su, i, j, un)
        if best is None:
            break
        _, i, j, un = best
        merged = (un, items[i][1] + items[j][1])
        items = [it for k, it in enumerate(items) if k not in (i, j)] + [merged]
    return [fs for _, fs in items]

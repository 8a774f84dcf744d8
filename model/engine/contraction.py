"""Batched tensor contractions: the numeric kernels of the engine.

A :class:`Contraction` is one sum of products whose operands are static tables (no batch
axis) or per-case arrays.  **Per-case arrays keep the batch axis last**: ``(*vars, N)``.  Every
elementwise product then runs numpy's inner loop along the N cases (long, contiguous,
vectorised) whatever the shape of the clique, a static table broadcasts as one scalar per
inner loop, summing a variable adds contiguous slabs, and a static table times a per-case
array summed over shared variables is one matrix product ``T (A x K) @ X (K x B*N)`` (BLAS
gemm, stacked over shared kept variables when there are any).  With the batch axis first,
the inner loops ran along 2-7 states and the same contractions were 3-5x slower.

The pairwise order is chosen at compile time by dynamic programming over subsets of the
operands (greedy beyond ``_DP_MAX`` operands) with a cost model of these kernels: an
elementwise product costs one unit per element of the product (plus half a unit when
something is summed from it), a matrix product ``1/_GEMM_SPEEDUP`` unit per multiply-add plus
the elements it reads and writes, and products of static tables cost nothing (they are
computed once, when the contraction is compiled).
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Mapping

import numpy as np

__all__ = ["Contraction", "normalise", "blas_controller"]

#: a multiply-add inside BLAS gemm is about this many times cheaper than one elementwise op
_GEMM_SPEEDUP = 8.0
#: exact (subset dynamic programming) path search up to this many operands, greedy beyond
_DP_MAX = 9
#: an operand that must be permuted is copied first when the product is this many times larger
_COPY_RATIO = 4
_CONTROLLER: list = []


def blas_controller():
    """A cached threadpoolctl controller (None when threadpoolctl is not installed)."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER.append(ThreadpoolController())
        except Exception:  # pragma: no cover - optional dependency
            _CONTROLLER.append(None)
    return _CONTROLLER[0]


class _Op:
    """An operand during compilation: its labels (axis order), static value, source index."""

    __slots__ = ("labels", "static", "src", "origin")

    def __init__(self, labels, static=None, src=None, origin=None):
        self.labels = tuple(labels)
        self.static = static  # ndarray for static operands, else None
        self.src = src  # index into the runtime operand list, for per-case leaves
        self.origin = origin  # (x, y, step index) when made by a plain product of x and y


class Contraction:
    """One sum of products over a batch, compiled into numpy steps.

    ``inputs`` is a list of ``(source, vars)``; ``source`` is ``("static", array)`` (an array
    of shape ``cards of vars``), ``("lik", var)`` or ``("msg", key)`` (per-case arrays of shape
    ``(*cards of vars, N)``, found at run time in the ``lik`` and ``msgs`` mappings).  The
    result has shape ``(*cards of out_layout, N)``; ``out_layout`` is ``out_vars`` unless
    ``keep_layout`` is set, in which case it is whatever order the last step produced (it
    saves a transpose; consumers read ``out_layout``).
    """

    def __init__(self, inputs, out_vars, cards, keep_layout: bool = False):
        self.cards = cards
        out_vars = tuple(out_vars)
        ops: list[_Op] = []
        self.sources: list[tuple[str, Any]] = []
        for src, vs in inputs:
            vs = tuple(vs)
            if src[0] == "static":
                arr = np.asarray(src[1], dtype=np.float64)
                ops.append(_Op(vs, static=arr))
            else:
                ops.append(_Op(vs, src=len(self.sources)))
                self.sources.append(src)
        present = {v for op in ops for v in op.labels}
        for v in out_vars:  # output variables no factor mentions: the result is flat along them
            if v not in present:
                ops.append(_Op((v,), static=np.ones(cards[v])))
        if not ops:
            ops.append(_Op((), static=np.ones(())))
        self.batched = bool(self.sources)
        self.largest = 1
        self.steps: list = []  # (kind, fn, arg slots, result slot)
        self._n_slots = len(self.sources)
        tree = _best_tree([set(op.labels) for op in ops], [op.static is not None for op in ops],
                          set(out_vars), cards)
        final = self._emit(tree, ops, set(out_vars))
        self.steps = [st for st in self.steps if st is not None]
        layout = final.labels
        if final.static is not None:
            self.const = final.static
            self.result_slot = None
        else:
            self.const = None
            self.result_slot = final.src
        target = layout if keep_layout else out_vars
        self.final_perm = None if layout == target else tuple(layout.index(v) for v in target)
        self.out_layout = tuple(target)

    # ------------------------------------------------------------------ compilation
    def _new_slot(self) -> int:
        self._n_slots += 1
        return self._n_slots - 1

    def _size(self, labels) -> int:
        return math.prod(self.cards[v] for v in labels)

    def _emit(self, tree, ops: list[_Op], need: set) -> _Op:
        """Compile the steps of ``tree`` (an operand index or a pair of subtrees) into
        ``self.steps``; ``need`` holds the labels wanted above this subtree."""
        if isinstance(tree, int):
            op = ops[tree]
            return self._reduce(op, need)
        left, right = tree
        lv, rv = _labels_of(left, ops), _labels_of(right, ops)
        a = self._emit(left, ops, need | rv)
        b = self._emit(right, ops, need | lv)
        keep = tuple(v for v in dict.fromkeys(a.labels + b.labels) if v in need)
        if a.static is not None and b.static is not None:
            return _Op(keep, static=_static_product(a, b, keep))
        if a.static is not None or b.static is not None:
            t, x = (a, b) if a.static is not None else (b, a)
            summed = set(t.labels) & set(x.labels) - set(keep)
            if summed:
                return self._matmul(t, x, keep)
        return self._elementwise(a, b, keep)

    def _reduce(self, op: _Op, need: set) -> _Op:
        drop = [i for i, v in enumerate(op.labels) if v not in need]
        if not drop:
            return op
        labels = tuple(v for v in op.labels if v in need)
        if op.static is not None:
            return _Op(labels, static=op.static.sum(axis=tuple(drop)))
        slot = self._new_slot()
        axes = tuple(drop)
        self.steps.append((lambda x, axes=axes: x.sum(axis=axes), (op.src,), slot))
        self.largest = max(self.largest, self._size(op.labels))
        return _Op(labels, src=slot)

    def _matmul(self, t: _Op, x: _Op, keep: tuple) -> _Op:
        """Static ``t`` times per-case ``x``, summed over their shared labels not kept: one
        (stacked) matrix product with the cases folded into the columns."""
        H = [v for v in x.labels if v in t.labels and v in keep]
        K = [v for v in x.labels if v in t.labels and v not in keep]
        A = [v for v in t.labels if v not in x.labels]
        B = [v for v in x.labels if v not in t.labels]
        tt = t.static.transpose([t.labels.index(v) for v in H + A + K])
        h, a, k = self._size(H), self._size(A), self._size(K)
        tt = np.ascontiguousarray(tt.reshape(h, a, k) if H else tt.reshape(a, k))
        perm = tuple(x.labels.index(v) for v in H + K + B) + (len(x.labels),)
        ident = perm == tuple(range(len(perm)))
        b = self._size(B)
        shape_out = tuple(self.cards[v] for v in H + A + B)

        def step(xv, tt=tt, perm=perm, ident=ident, hk=(h, k), b=b, shape_out=shape_out,
                 stacked=bool(H)):
            if not ident:
                xv = np.ascontiguousarray(xv.transpose(perm))
            n = xv.shape[-1]
            if stacked:
                r = np.matmul(tt, xv.reshape(hk[0], hk[1], b * n))
            else:
                r = tt @ xv.reshape(hk[1], b * n)
            return r.reshape(shape_out + (n,))
        slot = self._new_slot()
        self.steps.append((step, (x.src,), slot))
        self.largest = max(self.largest, self._size(x.labels), self._size(H + A + B))
        return _Op(tuple(H + A + B), src=slot)

    def _elementwise(self, a: _Op, b: _Op, keep: tuple) -> _Op:
        """Product of two operands (at least one per case), then the labels not kept summed.

        With a sum it is one ``numpy.einsum`` (:meth:`_einsum_pair`).  Without one it is a
        broadcast product into a fresh C-ordered buffer; an operand whose axes must be
        permuted is first copied into that order when it is much smaller than the product (a
        strided read costs about twice a contiguous one)."""
        if any(v not in keep for v in a.labels + b.labels):
            return self._einsum_pair(a, b, keep)
        full = tuple(dict.fromkeys(a.labels + b.labels))
        shape = tuple(self.cards[v] for v in full)
        total = math.prod(shape)

        def view(op: _Op):
            perm = [op.labels.index(v) for v in full if v in op.labels]
            idx = tuple(slice(None) if v in op.labels else None for v in full)
            if op.static is None:
                copy = perm != sorted(perm) and _COPY_RATIO * self._size(op.labels) <= total
                return tuple(perm) + (len(op.labels),), idx + (slice(None),), None, copy
            arr = op.static.transpose(perm)[idx][..., None]
            return None, None, np.ascontiguousarray(arr), False

        pa, ia, ca, cpa = view(a)
        pb, ib, cb, cpb = view(b)

        def prep(x, perm, idx, copy):
            x = x.transpose(perm)
            if copy:
                x = np.ascontiguousarray(x)
            return x[idx]

        def step(*xs, pa=pa, ia=ia, ca=ca, pb=pb, ib=ib, cb=cb, shape=shape):
            it = iter(xs)
            xa = ca if ca is not None else prep(next(it), pa, ia, cpa)
            xb = cb if cb is not None else prep(next(it), pb, ib, cpb)
            n = max(xa.shape[-1], xb.shape[-1])
            return np.multiply(xa, xb, out=np.empty(shape + (n,)))
        args = tuple(op.src for op in (a, b) if op.static is None)
        slot = self._new_slot()
        self.steps.append((step, args, slot))
        self.largest = max(self.largest, total)
        origin = (a, b, len(self.steps) - 1) if a.static is None and b.static is None else None
        return _Op(full, src=slot, origin=origin)

    def _einsum_pair(self, a: _Op, b: _Op, keep: tuple) -> _Op:
        """Product of two operands summed over the labels not kept, as one ``numpy.einsum``
        on the operands as laid out (no transposed copies, no buffer of the full product).
        With the batch axis innermost in every operand its sum-of-products loop runs along
        the cases; it was about twice as fast as multiply-then-sum on the default network.
        When one operand is the plain product of two per-case arrays made just before, that
        product is folded in (three operands in one einsum: about half the time of the two
        steps; with four operands einsum's loop order turned slow, so it stops at three)."""
        ops = [a, b]
        for op in (a, b):
            if op.origin is not None and self.steps[op.origin[2]] is not None:
                ops.remove(op)
                ops.extend(op.origin[:2])
                self.steps[op.origin[2]] = None
                break
        out_labels = tuple(v for v in dict.fromkeys(a.labels + b.labels) if v in keep)
        ids = {v: i for i, v in enumerate(dict.fromkeys(x for op in ops for x in op.labels))}
        nb = len(ids)  # the batch axis
        specs = [[ids[v] for v in op.labels] + ([] if op.static is not None else [nb])
                 for op in ops]
        out_spec = [ids[v] for v in out_labels] + [nb]
        consts = [op.static for op in ops]

        def step(*xs, specs=specs, out_spec=out_spec, consts=consts):
            it = iter(xs)
            operands = []
            for c, sp in zip(consts, specs):
                operands.append(c if c is not None else next(it))
                operands.append(sp)
            return np.einsum(*operands, out_spec)
        args = tuple(op.src for op in ops if op.static is None)
        slot = self._new_slot()
        self.steps.append((step, args, slot))
        self.largest = max(self.largest, self._size(out_labels))
        return _Op(out_labels, src=slot)

    # ------------------------------------------------------------------ running
    def __call__(self, lik: Mapping[str, np.ndarray], msgs: Mapping[Any, np.ndarray], n: int):
        slots: list = [None] * self._n_slots
        for i, (kind, key) in enumerate(self.sources):
            slots[i] = lik[key] if kind == "lik" else msgs[key]
        for fn, args, out in self.steps:
            slots[out] = fn(*[slots[i] for i in args])
        if self.result_slot is None:
            res = np.broadcast_to(self.const[..., None], self.const.shape + (n,))
        else:
            res = slots[self.result_slot]
        if self.final_perm is not None:
            res = res.transpose(self.final_perm + (len(self.final_perm),))
        return res


# ---------------------------------------------------------------------- path search
def _labels_of(tree, ops) -> set:
    if isinstance(tree, int):
        return set(ops[tree].labels)
    return _labels_of(tree[0], ops) | _labels_of(tree[1], ops)


def _best_tree(labels: list[set], static: list[bool], out: set, cards):
    """The pairwise contraction tree of least estimated cost (see the module docstring)."""
    n = len(labels)
    size = {}

    def sz(vs):
        key = frozenset(vs)
        if key not in size:
            size[key] = math.prod(cards[v] for v in vs)
        return size[key]

    full = (1 << n) - 1
    lab = {}
    stat = {}
    for m in range(1, full + 1) if n <= _DP_MAX else ():
        vs: set = set()
        st = True
        for i in range(n):
            if m >> i & 1:
                vs |= labels[i]
                st = st and static[i]
        lab[m], stat[m] = vs, st

    def outside(m):
        vs = set(out)
        for i in range(n):
            if not m >> i & 1:
                vs |= labels[i]
        return vs

    def kept(m, vs=None):
        return (vs if vs is not None else lab[m]) & outside(m)

    def step_cost(ka, sa, kb, sb, keep):
        if sa and sb:
            return 0.0
        fl = sz(ka | kb)
        if (sa or sb) and (ka & kb) - keep:
            x = kb if sa else ka
            return fl / _GEMM_SPEEDUP + sz(x) + sz(keep)
        return fl * (1.5 if (ka | kb) - keep else 1.0)

    def leaf_cost(i, keep):
        if static[i] or keep == labels[i]:
            return 0.0
        return float(sz(labels[i]))

    if n <= _DP_MAX:
        best: dict[int, tuple[float, Any, set]] = {}
        for i in range(n):
            m = 1 << i
            k = kept(m)
            best[m] = (leaf_cost(i, k), i, k)
        for m in sorted(range(1, full + 1), key=lambda x: bin(x).count("1")):
            if m in best:
                continue
            keep = kept(m)
            low = m & -m
            sub = (m - 1) & m
            cand = None
            while sub:
                if sub & low:  # each split once: the part holding the lowest operand
                    other = m ^ sub
                    if other:
                        ca, ta, ka = best[sub]
                        cb, tb, kb = best[other]
                        c = ca + cb + step_cost(ka, stat[sub], kb, stat[other], keep)
                        if cand is None or c < cand[0]:
                            cand = (c, (ta, tb), keep)
                sub = (sub - 1) & m
            best[m] = cand
        return best[full][1]
    # greedy: repeatedly take the cheapest pair
    items = [(i, set(labels[i]), static[i]) for i in range(n)]
    while len(items) > 1:
        choice = None
        for (x, y) in combinations(range(len(items)), 2):
            (ta, la, sa), (tb, lb, sb) = items[x], items[y]
            rest = set(out).union(*[items[z][1] for z in range(len(items)) if z not in (x, y)])
            keep = (la | lb) & rest
            c = step_cost(la & rest | (la & lb), sa, lb & rest | (la & lb), sb, keep)
            if choice is None or c < choice[0]:
                choice = (c, x, y, keep)
        _, x, y, keep = choice
        (ta, _, sa), (tb, _, sb) = items[x], items[y]
        items = [it for z, it in enumerate(items) if z not in (x, y)] + [((ta, tb), keep, sa and sb)]
    return items[0][0]


def _static_product(a: _Op, b: _Op, keep: tuple) -> np.ndarray:
    ids = {v: i for i, v in enumerate(dict.fromkeys(a.labels + b.labels))}
    return np.einsum(a.static, [ids[v] for v in a.labels], b.static, [ids[v] for v in b.labels],
                     [ids[v] for v in keep])


def normalise(m: np.ndarray):
    """Divide each case's array (batch axis last) by its total; return (normalised, total).

    A case whose total is 0 is left at 0 (its total is reported as 0)."""
    n = m.shape[-1]
    if m.ndim == 1:
        tot = m.copy()
    elif m.flags.c_contiguous:
        tot = m.reshape(-1, n).sum(axis=0)
    else:
        tot = m.sum(axis=tuple(range(m.ndim - 1)))
    safe = np.where(tot > 0, tot, 1.0)  # divide (not multiply by 1/tot: subnormal totals)
    if m.flags.owndata and m.flags.writeable and m.flags.c_contiguous:
        m /= safe
        return m, tot
    return m / safe, tot

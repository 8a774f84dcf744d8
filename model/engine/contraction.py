"""Batched tensor contractions: the numeric kernels of the engine.

A :class:`Contraction` is one einsum whose operands are static tables (no batch axis) or
per-case arrays (batch axis first).  It is compiled once: opt_einsum picks the pairwise order
from the shapes (with a nominal batch size; the order is reused for any batch size), and each
pairwise step is mapped to the cheapest numpy kernel for its index pattern:

* *absorb* - one operand's labels are a subset of the other's: multiply in the larger
  operand's memory layout (the smaller one becomes a broadcast view), then sum the labels not
  kept.  No copy of the large operand;
* *outer* - nothing is summed: a broadcast product of two views, written batch-first;
* *matmul* - otherwise: labels are split into H (stacked, e.g. the batch axis), A, K (summed)
  and B, and the step is one stacked ``numpy.matmul`` of (H, A, K) by (H, K, B) (BLAS gemm
  when H is empty, e.g. a leaf finding's message ``L @ P(f | parents)``).

Every step writes its result in its natural order and records it, so the next step needs no
transpose unless its kernel does; the batch axis is kept first throughout.  Reductions over
short axes are done by adding slices (:func:`sum_axes`), which numpy's reduce does 5-30x
slower.  ``numpy.einsum``'s generic loop, which these kernels replace, was 2-10x slower on
batched small cliques.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import opt_einsum as oe

__all__ = ["Contraction", "sum_axes", "normalise", "blas_controller"]

#: Batch size used to choose contraction orders (the order is reused for any batch size).
_NOMINAL_BATCH = 1024
#: Axes up to this length are summed by adding slices (see sum_axes).
_SLICE_SUM_MAX = 4
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



class Contraction:
    """One einsum over a batch, compiled into pairwise numpy steps.

    ``inputs`` is a list of ``(source, vars)``; ``source`` is ``("static", array)`` (no batch
    axis), ``("lik", var)`` or ``("msg", edge)`` (both ``(N, ...)`` arrays found at run time).
    The output is ``(N, *out_vars)``; with ``keep_layout`` it is ``(N, *out_layout)``, the
    same variables in whatever order the last step produced (saves a transpose, and keeps
    messages contiguous so that they are cheap to normalise).
    """

    def __init__(self, inputs, out_vars, cards, keep_layout: bool = False):
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
        if keep_layout:
            target = (letters[None] if self.batched else "") + "".join(
                c for c in final if c != letters[None])
        else:
            target = out
        self.final_perm = None if final == target else tuple(final.index(c) for c in target)
        inv = {c: v for v, c in letters.items()}
        self.out_layout = tuple(inv[c] for c in target if c != letters[None])

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
                    x = sum_axes(x, pre_a)
                if pre_b:
                    y = sum_axes(y, pre_b)
                y = y.transpose(yperm)
                shp = [1] * nd
                for i, d in zip(yshape_idx, y.shape):
                    shp[i] = d
                r = x * y.reshape(shp)
                return sum_axes(r, red) if red else r
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
                    x = sum_axes(x, pre_a)
                if pre_b:
                    y = sum_axes(y, pre_b)
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
                x = sum_axes(x, pre_a)
            if pre_b:
                y = sum_axes(y, pre_b)
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


def sum_axes(x: np.ndarray, axes: Sequence[int]) -> np.ndarray:
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


def normalise(m: np.ndarray):
    """Divide each case's array by its total; return (normalised, total) (total 0 -> kept 0)."""
    n = m.shape[0]
    if m.ndim == 1:
        tot = m.copy()
    elif m.flags.c_contiguous:
        tot = m.reshape(n, -1).sum(axis=1)  # one long inner loop per case
    else:
        tot = sum_axes(m, range(1, m.ndim))
    inv = 1.0 / np.where(tot > 0, tot, 1.0)
    inv = inv.reshape((n,) + (1,) * (m.ndim - 1))
    if m.flags.owndata and m.flags.writeable:  # a fresh result of ours: scale it in place
        m *= inv
        return m, tot
    return m * inv, tot

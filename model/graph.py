"""Graph helpers for networks given as ``{node: parents}`` mappings.

Plain Python, no dependencies: ``find_cycle`` reports one directed cycle (used by
the knowledge-file validator), and ``topological_order`` puts parents before
children while keeping the given order otherwise (so variables keep their file
order where the structure allows)::

    >>> topological_order({"b": ["a"], "a": []})
    ['a', 'b']
    >>> find_cycle({"a": ["b"], "b": ["a"]})
    ['a', 'b', 'a']
"""
from __future__ import annotations

from typing import Iterable, Mapping


def find_cycle(parents: Mapping[str, Iterable[str]]) -> list[str] | None:
    """Return one directed cycle (as a list of names, first repeated at the end), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {v: WHITE for v in parents}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        colour[v] = GREY
        stack.append(v)
        for p in parents[v]:
            if colour.get(p) == GREY:
                return stack[stack.index(p):] + [p]
            if colour.get(p) == WHITE:
                found = visit(p)
                if found:
                    return found
        stack.pop()
        colour[v] = BLACK
        return None

    for v in parents:
        if colour[v] == WHITE:
            found = visit(v)
            if found:
                # the walk follows child -> parent; report it parent -> child
                return list(reversed(found))
    return None


def topological_order(parents: Mapping[str, Iterable[str]]) -> list[str]:
    """Parents before children, otherwise keeping the given order."""
    done: set[str] = set()
    order: list[str] = []

    def visit(v: str) -> None:
        if v in done:
            return
        done.add(v)
        for p in parents[v]:
            visit(p)
        order.append(v)

    for v in parents:
        visit(v)
    return order

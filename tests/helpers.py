"""Shared test utilities (import with ``from helpers import ...``; tests/ is on sys.path).

- ``example_model(name)``: a bnlearn network bundled with pgmpy, read by path (never
  downloaded), every CPD column renormalised to sum to 1 (bnlearn tables are off by up to
  3e-7), cached per process.
- ``random_network(rng_or_draw, max_nodes, max_card)``: a random DiscreteBayesianNetwork with
  string state names; accepts a ``numpy.random.Generator`` or a hypothesis ``draw``.
- ``brute_force(model, likelihoods, targets)``: exact marginals and log P(e) by enumerating
  the full joint (log space, so it is also a reference for many findings on small networks).
- ``ve_posterior(model, hard_evidence, target)``: pgmpy VariableElimination, one target.
"""

from __future__ import annotations

import functools
import itertools
import os
import warnings

import numpy as np

warnings.filterwarnings("ignore", category=FutureWarning, module="pgmpy")

EXAMPLE_NETWORKS = ("asia", "alarm", "child", "insurance", "hepar2", "win95pts")


def example_model_path(name: str) -> str:
    """Path of a ``.bif.gz`` network bundled in the pgmpy wheel."""
    import pgmpy

    path = os.path.join(os.path.dirname(pgmpy.__file__), "utils", "example_models", f"{name}.bif.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return path


def normalise_model(model):
    """Renormalise every CPD column of ``model`` in place to sum to exactly 1; return it."""
    for cpd in model.get_cpds():
        vals = np.asarray(cpd.get_values(), dtype=np.float64)
        vals = vals / vals.sum(axis=0, keepdims=True)
        cpd.values = vals.reshape(cpd.cardinality)
    return model


@functools.lru_cache(maxsize=None)
def example_model(name: str):
    """Bundled bnlearn network ``name`` as a normalised pgmpy DiscreteBayesianNetwork (cached:
    BIF parsing takes seconds).  Treat the returned model as read-only."""
    import gzip
    import tempfile

    from pgmpy.readwrite import BIFReader

    with gzip.open(example_model_path(name), "rt") as fh:
        text = fh.read()
    with tempfile.NamedTemporaryFile("w", suffix=".bif", delete=False) as tmp:
        tmp.write(text)
        tmp_path = tmp.name
    try:
        model = BIFReader(tmp_path).get_model()
    finally:
        os.unlink(tmp_path)
    return normalise_model(model)


def _integers(src, lo, hi):
    """Integer in [lo, hi] from a numpy Generator or a hypothesis draw."""
    if isinstance(src, np.random.Generator):
        return int(src.integers(lo, hi + 1))
    from hypothesis import strategies as st

    return src(st.integers(lo, hi))


def _floats(src, n):
    if isinstance(src, np.random.Generator):
        return src.random(n)
    from hypothesis import strategies as st

    return np.array(src(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))


def random_network(src, max_nodes: int = 7, max_card: int = 4, min_nodes: int = 1,
                   max_parents: int = 3, zero_prob: float = 0.0):
    """Random discrete BN with nodes ``X0..Xk`` (topological by index), cards 2..max_card,
    up to ``max_parents`` parents each, random CPTs with state names ``s0, s1, ...``.

    ``src`` is a ``numpy.random.Generator`` or a hypothesis ``draw``.  ``zero_prob`` sets that
    fraction of CPT entries to zero (numpy source only), to exercise impossible evidence.
    """
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    n = _integers(src, min_nodes, max_nodes)
    names = [f"X{i}" for i in range(n)]
    cards = [_integers(src, 2, max_card) for _ in range(n)]
    parents = []
    for i in range(n):
        ps = [j for j in range(i) if _integers(src, 0, 2) == 0][:max_parents]
        parents.append(ps)
    model = DiscreteBayesianNetwork()
    model.add_nodes_from(names)
    model.add_edges_from((names[j], names[i]) for i in range(n) for j in parents[i])
    for i in range(n):
        ncol = int(np.prod([cards[j] for j in parents[i]])) if parents[i] else 1
        vals = _floats(src, cards[i] * ncol).reshape(cards[i], ncol) + 0.05
        if zero_prob and isinstance(src, np.random.Generator):
            vals[src.random(vals.shape) < zero_prob] = 0.0
            vals[0, vals.sum(axis=0) == 0] = 1.0
        vals = vals / vals.sum(axis=0, keepdims=True)
        states = {names[i]: [f"s{k}" for k in range(cards[i])]}
        for j in parents[i]:
            states[names[j]] = [f"s{k}" for k in range(cards[j])]
        model.add_cpds(TabularCPD(names[i], cards[i], vals,
                                  evidence=[names[j] for j in parents[i]] or None,
                                  evidence_card=[cards[j] for j in parents[i]] or None,
                                  state_names=states))
    model.check_model()
    return model


def _model_tables(model):
    """(variables, cards, parents, tables) with tables shaped (card, *parent_cards)."""
    variables = list(model.nodes())
    cards, parents, tables = {}, {}, {}
    for v in variables:
        cpd = model.get_cpds(v)
        cards[v] = int(cpd.cardinality[0])
        parents[v] = list(cpd.variables[1:])
        tables[v] = np.asarray(cpd.get_values(), dtype=np.float64).reshape(cpd.cardinality)
    return variables, cards, parents, tables


def brute_force(model, likelihoods, targets):
    """Marginals and log P(e) by enumerating the full joint, in log space.

    ``likelihoods``: var -> (card,) array (one case).  Returns ``(marginals, log_evidence)``;
    for impossible evidence the marginals are NaN and log_evidence is ``-inf``.
    Only for small networks (the joint is materialised).
    """
    variables, cards, parents, tables = _model_tables(model)
    axis = {v: i for i, v in enumerate(variables)}
    shape = [cards[v] for v in variables]
    logj = np.zeros(shape)
    with np.errstate(divide="ignore"):
        for v in variables:
            fam = [v, *parents[v]]
            t = np.log(tables[v])
            # move the table's axes into joint order and broadcast
            order = sorted(range(len(fam)), key=lambda k: axis[fam[k]])
            t = np.transpose(t, order)
            bshape = [1] * len(variables)
            for k in order:
                bshape[axis[fam[k]]] = cards[fam[k]]
            logj = logj + t.reshape(bshape)
        for v, L in likelihoods.items():
            bshape = [1] * len(variables)
            bshape[axis[v]] = cards[v]
            logj = logj + np.log(np.asarray(L, dtype=np.float64)).reshape(bshape)
    m = logj.max()
    if not np.isfinite(m):
        return {t: np.full(cards[t], np.nan) for t in targets}, -np.inf
    p = np.exp(logj - m)
    z = p.sum()
    marg = {}
    for t in targets:
        other = tuple(i for i in range(len(variables)) if i != axis[t])
        marg[t] = p.sum(axis=other) / z
    return marg, float(m + np.log(z))


def brute_force_joint(model, likelihoods, a, b):
    """Joint posterior P(a, b | e) for one case by full enumeration (a != b)."""
    variables, cards, parents, tables = _model_tables(model)
    axis = {v: i for i, v in enumerate(variables)}
    letters = {v: chr(ord("a") + i) for i, v in enumerate(variables)}
    ops, subs = [], []
    for v in variables:
        ops.append(tables[v])
        subs.append("".join(letters[x] for x in (v, *parents[v])))
    for v, L in likelihoods.items():
        ops.append(np.asarray(L, dtype=np.float64))
        subs.append(letters[v])
    j = np.einsum(",".join(subs) + "->" + letters[a] + letters[b], *ops)
    del axis
    return j / j.sum()


def ve_posterior(model, hard_evidence, target):
    """pgmpy VariableElimination posterior of ``target`` as an array in state order.

    ``hard_evidence``: var -> state name.  Uses pgmpy's default (greedy) elimination order.
    """
    from pgmpy.inference import VariableElimination

    infer = _ve_cache(model)
    if not isinstance(infer, VariableElimination):  # pragma: no cover
        raise TypeError
    f = infer.query([target], evidence=dict(hard_evidence) or None, show_progress=False)
    cpd = model.get_cpds(target)
    return np.array([f.get_value(**{target: s}) for s in cpd.state_names[target]])


_VE: dict[int, object] = {}


def _ve_cache(model):
    from pgmpy.inference import VariableElimination

    key = id(model)
    if key not in _VE:
        _VE[key] = (model, VariableElimination(model))
    return _VE[key][1]


def one_hot(card: int, k: int) -> np.ndarray:
    v = np.zeros(card)
    v[k] = 1.0
    return v


def all_assignments(cards):
    """Every joint assignment of the given cards (small cases only)."""
    return itertools.product(*[range(c) for c in cards])
